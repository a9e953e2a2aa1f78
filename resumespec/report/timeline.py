"""The neutral picture of one behaviour that every report is drawn from.

A ``Timeline`` is what a person needs to follow a counterexample or an
engine trace without reading TLA+: lanes (the sender, each receiving session,
each language rank's block pool), one ``Step`` per action or event with a
sentence saying what happened, the messages and data writes as ``Arrow``s
between lanes (from the step that sent them to the step that received or
landed them), the block pools after every step (owner and contents of each
block), and the ``Finding``: which property fails, at which step, and why.

Two builders fill it: ``counterexample_story`` (from a TLC trace) and
``trace_story`` (from an engine's JSON Lines trace and the conformance
checker's verdict). ``render_story`` prints it for a terminal; ``html``
draws it as one self-contained page.

Step numbering: step 0 is the initial state; step k (k >= 1) is the k-th
action (TLC's state k+1, the trace's k-th event), so step k leads to state
index k, the same index ITF gives that state (``#meta.index``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Lane:
    id: str          # "sender", "rx1", "pool1"
    title: str       # "Sender (encode)", "Session 1", "Pool, rank 1"
    kind: str        # "sender" | "session" | "pool"


@dataclass
class BlockCell:
    """One block of a language rank's pool after a step."""

    block: Any                  # block id (spec: 1..NBlocks; engine: from 0)
    owners: list = field(default_factory=list)   # requests that hold it
    on_free_list: int = 0       # how many times it is on the free list (2 = freed twice)
    content: str = ""           # "1.1,1.2" (token r.i per slot), "_" empty, "" unknown
    aux: str = ""               # the aux row's total, "" when 0 / unknown
    writing: bool = False       # a write into it is in flight
    writers: list = field(default_factory=list)  # requests whose writes into it are in flight
    changed: bool = False       # owner or content differs from the step before

    @property
    def anomaly(self) -> str:
        """Why this block is in a state the protocol forbids, or ''."""
        if self.on_free_list > 1:
            return "on the free list twice"
        if self.on_free_list and self.owners:
            return "free and held"
        if len(self.owners) > 1:
            return "held by two requests"
        if any(w not in self.owners for w in self.writers):
            return "written for a request that does not hold it"
        return ""

    def owner_text(self) -> str:
        who = "+".join(f"r{r}" for r in self.owners)
        if self.on_free_list:
            who = ("-" * self.on_free_list) + who
        return who or "?"

    def to_json(self) -> dict:
        return {"block": self.block, "owners": list(self.owners), "on_free_list": self.on_free_list,
                "content": self.content, "aux": self.aux, "writing": self.writing,
                "anomaly": self.anomaly or None}


@dataclass
class Mark:
    """A box on one lane at one step: what that party did."""

    lane: str
    text: str
    tone: str = "normal"        # "normal" | "bad" | "good"


@dataclass
class Arrow:
    """A message or a data write: sent at step ``start``, taken at ``end``.

    ``end`` None: still in flight when the behaviour ends. ``fate``:
    "received", "landed", "dropped" (the write was lost: the sender died),
    or "pending".
    """

    src: str
    dst: str
    start: int
    end: int | None
    label: str
    kind: str                   # "ctl" (init/resume/abort), "status", "write", "alloc", "free"
    fate: str = "received"
    bad: bool = False
    block: Any = None           # a write's target block (the arrow points at its cell)


@dataclass
class Step:
    index: int                  # 0 = initial state, k = after the k-th action / event
    action: str                 # spec action name or trace event name
    sentence: str               # what happened, in words
    marks: list[Mark] = field(default_factory=list)
    pools: dict[str, list[BlockCell]] = field(default_factory=dict)   # pool lane id -> blocks
    details: list[str] = field(default_factory=list)   # what changed, for the curious
    where: str = ""             # "ResumeBase:222" or "trace.jsonl:7"
    line: int | None = None     # trace line (traces only)
    tone: str = "normal"        # "normal" | "bad" (this step breaks a property)
    event: dict | None = None   # the trace event (traces only)

    def to_json(self) -> dict:
        return {"index": self.index, "action": self.action, "sentence": self.sentence,
                "where": self.where, "line": self.line, "tone": self.tone,
                "marks": [m.__dict__ for m in self.marks],
                "pools": {k: [c.to_json() for c in v] for k, v in self.pools.items()},
                "details": self.details}


@dataclass
class Finding:
    """The verdict a report explains."""

    verdict: str                # "violates", "hangs" (liveness), "conforms", "incomplete", "malformed", "success"
    prop: str | None = None     # the property's name
    meaning: str = ""           # the property in one sentence
    why: list[str] = field(default_factory=list)   # the short story of why it fails
    step: int | None = None     # the step to highlight (violating step / first unexplained event)
    hint: str = ""              # a human-written note (the manifest's "why", the corpus' "about")

    def headline(self) -> str:
        if self.verdict in ("conforms", "success"):
            return "no violation" if self.verdict == "success" else "the trace conforms to the spec"
        if self.prop:
            verb = {"violates": "fails", "hangs": "fails: the behaviour goes on forever without it",
                    "incomplete": "is not met by the end of the trace",
                    "malformed": "cannot be checked"}.get(self.verdict, "fails")
            return f"{self.prop} {verb}"
        return self.verdict

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "property": self.prop, "meaning": self.meaning,
                "why": self.why, "step": self.step, "hint": self.hint or None}


@dataclass
class Timeline:
    kind: str                   # "counterexample" | "trace"
    title: str
    subtitle: str = ""
    lanes: list[Lane] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    finding: Finding = field(default_factory=lambda: Finding("success"))
    loop_to: int | None = None  # lasso: after the last step the behaviour goes back to this step
    stuttering: bool = False    # lasso: the behaviour stays in the last state forever
    notes: list[str] = field(default_factory=list)

    @property
    def is_lasso(self) -> bool:
        return self.loop_to is not None or self.stuttering

    def to_json(self) -> dict:
        return {"kind": self.kind, "title": self.title, "subtitle": self.subtitle,
                "lanes": [lane.__dict__ for lane in self.lanes],
                "steps": [s.to_json() for s in self.steps],
                "arrows": [a.__dict__ for a in self.arrows],
                "finding": self.finding.to_json(),
                "loop_to": self.loop_to, "stuttering": self.stuttering,
                "story": story_lines(self)}


# What each property means, for a reader who has not read the spec
# (docs/model.md, spec/README.md "Properties").
PROPERTY_MEANING = {
    "TypeOK": "every variable has its type",
    "NoSharedBlock": "no block is held by two requests on one rank",
    "NoFreeAndHeld": "no block is both on the free list and held by a request",
    "NoDoubleFree": "a block is never freed twice (the free list never holds a block twice)",
    "WritesOnlyIntoOwnedBlocks": "every data write lands in a block its request still holds",
    "NoReadDuringWrite": "the receiver never reads a block while a write into it is in flight",
    "HandedDataIsSource": "prefill gets exactly the sender's embedding, in order",
    "AtMostOneResumePerRound": "a session sends at most one resume per round that ended partial",
    "EveryRequestEnds": "every request is eventually handed to prefill or failed",
    "BlocksEventuallyFree": "every block of an ended request eventually goes back to the pool",
    "NoWaitForUnrequestedRound": "never forever: the receiver waits for data while the sender waits "
                                 "for a resume nobody sends",
    "SenderRoomsClose": "the sender eventually closes every room",
    "AuxOnlyInFirstRound": "only the first round writes the total into the aux row",
}


def story_lines(t: Timeline) -> list[str]:
    """The numbered story: one line per step, the loop, then the verdict."""
    out = []
    for s in t.steps:
        if s.index == 0:
            continue
        mark = "  <== " + (t.finding.prop or t.finding.verdict) if t.finding.step == s.index else ""
        loop = "  (loop starts here)" if t.loop_to == s.index else ""
        out.append(f"{s.index}. {s.sentence}{loop}{mark}")
        if mark and t.kind == "trace" and s.index != t.steps[-1].index:
            out.append("   (the checker stopped at this event: the events below were not judged)")
    if t.loop_to is not None:
        out.append(f"... then back to step {t.loop_to}: the steps {t.loop_to}..{t.steps[-1].index} "
                   "repeat forever.")
    elif t.stuttering:
        out.append("... then nothing happens any more: the behaviour stays in the last state forever.")
    return out


def render_story(t: Timeline) -> str:
    """The report for a terminal."""
    out = [t.title]
    if t.subtitle:
        out.append(t.subtitle)
    f = t.finding
    out.append(f"Verdict: {f.headline()}" + (f" ({f.meaning})" if f.meaning and f.prop else ""))
    if f.hint:
        out.append(f"In short: {f.hint}")
    out.append("")
    out.extend(story_lines(t))
    if f.why:
        out.append("")
        out.append("Why:" if f.prop else "Result:")
        out.extend(f"  {w}" for w in f.why)
    for n in t.notes:
        out.append(n)
    return "\n".join(out)
