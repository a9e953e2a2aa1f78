"""Build the golden corpus: small hand-made traces, one per verdict and property.

    python conformance/corpus/build.py              # hand-made traces + expected.json
    python conformance/corpus/build.py --reference  # traces of reference/ (resumespec simulate)

Each trace is written out event by event below, so a reader sees exactly what
it contains; ``expected.json`` records the verdict (and the property, for
violations) that the checkers must give.  ``--reference`` adds the traces of
the reference implementation, with the reference's own verdict as expected.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from resumespec.reference.protocol.designs import VARIANTS

HERE = Path(__file__).parent


class T:
    """A trace under construction: numbers events per process."""

    def __init__(self, block_size=2, nblocks=4, nsess=1, variant="once", config=True, cap=0):
        self.events = []
        self.seq = {}
        if config:
            for p in ["encode"] + [f"language/{s}" for s in range(1, nsess + 1)]:
                self.emit(p, "config", block_size=block_size, nblocks=nblocks, nsess=nsess,
                          variant=variant, cap=cap)

    def emit(self, proc, event, **f):
        n = self.seq.get(proc, 0)
        self.seq[proc] = n + 1
        self.events.append(dict({"v": 1, "proc": proc, "seq": n, "event": event}, **f))
        return self

    def L(self, event, s=1, **f):
        return self.emit(f"language/{s}", event, **f)

    def E(self, event, **f):
        return self.emit("encode", event, **f)

    # -- building blocks (one protocol step each) --
    def init(self, r, blocks, s=1, tokens=2):
        self.L("alloc", s, rank=s, req=r, tokens=tokens, blocks=blocks)
        self.L("init_sent", s, req=r, session=s, blocks=blocks, allocated_tokens=2 * len(blocks))
        return self

    def init_recv(self, r, blocks, s=1):
        return self.E("init_recv", req=r, session=s, blocks=blocks,
                      allocated_tokens=2 * len(blocks))

    def round(self, r, sent, tokens, total, dst, s=1, status=None, end=True):
        partial = total - sent > tokens
        self.E("round_start", req=r, session=s, sent_tokens=sent, tokens=tokens, total=total,
               src_blocks=list(range(sent // 2, sent // 2 + len(dst))), dst_blocks=dst,
               partial=partial, aux_written=sent == 0)
        if end:
            self.E("round_end", req=r, session=s, sent_tokens=sent + tokens, ok=True)
            self.E("status_sent", req=r, session=s,
                   status=status or ("Transferring" if partial else "Success"))
        return self

    def resume(self, r, read_blocks, aux, got, new, remaining, old, s=1, ids=True):
        self.L("poll", s, req=r, status="Transferring", decision="resume")
        read = dict(req=r, session=s, blocks=read_blocks, aux_total=aux, tokens=got)
        if ids:
            read["ids"] = [[r, i] for i in range(1, got + 1)]
        self.L("buffer_read", s, **read)
        self.L("alloc", s, rank=s, req=r, tokens=remaining, blocks=new)
        self.L("free", s, rank=s, req=r, blocks=old)
        self.L("resume_sent", s, req=r, session=s, blocks=new, sent_tokens=got,
               allocated_tokens=2 * len(new))
        return self

    def resume_recv(self, r, new, got, s=1):
        return self.E("resume_recv", req=r, session=s, blocks=new, sent_tokens=got,
                      allocated_tokens=2 * len(new))

    def handoff(self, r, total, blocks, s=1, ids=True, tokens=None):
        self.L("poll", s, req=r, status="Success", decision="handoff")
        extra = {"ids": [[r, i] for i in range(1, total + 1)]} if ids else {}
        self.L("handoff", s, req=r, session=s, tokens=total if tokens is None else tokens,
               **extra)
        self.L("prefill_done", s, req=r)
        self.L("free", s, rank=s, req=r, blocks=blocks)
        return self


def two_rounds(t=None, r=1, first=(0,), second=(1,)):
    """req r: 3 tokens, blocks of 2: a partial round, a resume, a final round."""
    t = t or T()
    first, second = list(first), list(second)
    t.init(r, first).init_recv(r, first)
    t.round(r, 0, 2, 3, first)
    t.L("status_recv", req=r, session=1, status="Transferring")
    t.resume(r, first, 3, 2, second, 1, first)
    t.resume_recv(r, second, 2)
    t.round(r, 2, 1, 3, second)
    t.L("status_recv", req=r, session=1, status="Success")
    return t


CORPUS: dict = {}


def case(name, verdict, prop=None, args=None, doc=""):
    def wrap(fn):
        CORPUS[name] = (fn, {"verdict": verdict, "property": prop, "args": args or {},
                             "about": doc or fn.__doc__.strip()})
        return fn
    return wrap


@case("valid_two_rounds", "conforms")
def _():
    """A transfer in two rounds: partial, resume, success, prefill, free."""
    t = two_rounds()
    return t.handoff(1, 3, [1]).events


@case("valid_one_round", "conforms")
def _():
    """The embedding fits the first allocation: one round, Success."""
    t = T()
    t.init(1, [0]).init_recv(1, [0]).round(1, 0, 2, 2, [0])
    t.L("poll", req=1, status="WaitingForInput", decision="wait")
    t.L("status_recv", req=1, session=1, status="Success")
    return t.handoff(1, 2, [0]).events


@case("valid_two_requests_reuse_blocks", "conforms")
def _():
    """Two requests one after the other; the second reuses freed blocks."""
    t = two_rounds()
    t.handoff(1, 3, [1])
    two_rounds(t, r=2, first=(2,), second=(0,))
    return t.handoff(2, 3, [0]).events


@case("valid_write_error", "conforms")
def _():
    """A write fails: the room goes Failed, the receiver fails the request and frees."""
    t = T()
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 3, [0], end=False)
    t.E("write_error", req=1)
    t.E("status_sent", req=1, session=1, status="Failed")
    t.L("status_recv", req=1, session=1, status="Failed")
    t.L("poll", req=1, status="Failed", decision="fail")
    t.L("free", rank=1, req=1, blocks=[0])
    t.L("fail", req=1, reason="transfer failed")
    return t.events


@case("valid_two_sessions", "conforms")
def _():
    """Two language ranks (tensor parallel), one round each, per-rank logs merged."""
    t = T(nsess=2)
    for s in (1, 2):
        t.init(1, [0], s=s)
    for s in (1, 2):
        t.init_recv(1, [0], s=s)
    for s in (1, 2):
        t.E("round_start", req=1, session=s, sent_tokens=0, tokens=2, total=2,
            src_blocks=[0], dst_blocks=[0], partial=False, aux_written=True)
    for s in (1, 2):
        t.E("round_end", req=1, session=s, sent_tokens=2, ok=True)
    for s in (1, 2):
        t.E("status_sent", req=1, session=s, status="Success")
    for s in (1, 2):
        t.L("status_recv", s, req=1, session=s, status="Success")
    for s in (1, 2):
        t.handoff(1, 2, [0], s=s)
    return t.events


@case("no_shared_block", "violates", "NoSharedBlock")
def _():
    """The allocator hands block 0 to req 2 while req 1 still holds it."""
    t = T()
    t.init(1, [0]).init(2, [0])
    return t.events


@case("no_double_free", "violates", "NoDoubleFree")
def _():
    """Prefill's end frees block 1 twice."""
    t = two_rounds()
    t.handoff(1, 3, [1])
    t.L("free", rank=1, req=1, blocks=[1])
    return t.events


@case("no_free_and_held", "violates", "NoFreeAndHeld")
def _():
    """Req 2 gives back block 0, which req 1 holds."""
    t = T()
    t.init(1, [0]).init(2, [1])
    t.L("free", rank=1, req=2, blocks=[0])
    return t.events


@case("write_into_freed_block", "violates", "WritesOnlyIntoOwnedBlocks")
def _():
    """The receiver fails and frees while the sender's round still writes block 0."""
    t = T()
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 3, [0], end=False)
    t.L("abort", req=1)
    t.L("free", rank=1, req=1, blocks=[0])
    return t.events


@case("write_into_block_not_held", "violates", "WritesOnlyIntoOwnedBlocks")
def _():
    """A local abort frees block 0 before the sender took the init; the sender then
    writes the first round into block 0, which the request no longer holds."""
    t = T()
    t.init(1, [0])
    t.L("abort", req=1)
    t.L("free", rank=1, req=1, blocks=[0])
    t.L("fail", req=1, reason="aborted")
    t.init_recv(1, [0])
    t.round(1, 0, 2, 3, [0], end=False)
    return t.events


@case("read_during_write", "violates", "NoReadDuringWrite")
def _():
    """The receiver reads block 1 while the resumed round is still writing it
    (the status it acted on was the first round's Transferring)."""
    t = T(variant="sent_tokens")
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 5, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    t.resume(1, [0], 5, 2, [1, 2], 3, [0])
    t.resume_recv(1, [1, 2], 2)
    t.round(1, 2, 3, 5, [1, 2], end=False)
    t.L("poll", req=1, status="Transferring", decision="wait")
    t.L("buffer_read", req=1, session=1, blocks=[1, 2], aux_total=0, tokens=3)
    return t.events


@case("handed_wrong_length", "violates", "HandedDataIsSource")
def _():
    """Prefill gets 2 tokens of an embedding of 3."""
    t = two_rounds()
    return t.handoff(1, 3, [1], ids=False, tokens=2).events


@case("handed_wrong_tokens", "violates", "HandedDataIsSource")
def _():
    """The handed ids contain token 2 of req 2 (stale block contents)."""
    t = two_rounds()
    t.L("poll", req=1, status="Success", decision="handoff")
    t.L("handoff", req=1, session=1, tokens=3, ids=[[1, 1], [2, 2], [1, 3]])
    return t.events


@case("two_resumes_one_round", "violates", "AtMostOneResumePerRound")
def _():
    """The receiver resumes twice for the one round that ended partial."""
    t = T(nblocks=6, variant="sent_tokens")
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 5, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    t.resume(1, [0], 5, 2, [1, 2], 3, [0])
    t.L("poll", req=1, status="Transferring", decision="resume")
    t.L("alloc", rank=1, req=1, tokens=3, blocks=[3, 4])
    t.L("free", rank=1, req=1, blocks=[1, 2])
    t.L("resume_sent", req=1, session=1, blocks=[3, 4], sent_tokens=2, allocated_tokens=4)
    return t.events


@case("round_at_wrong_offset", "violates", "SenderOffsetFollowsResume")
def _():
    """The resume said offset 2; the sender restarts at 0."""
    t = T()
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 3, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    t.resume(1, [0], 3, 2, [1], 1, [0])
    t.resume_recv(1, [1], 2)
    t.E("round_start", req=1, session=1, sent_tokens=0, tokens=2, total=3, src_blocks=[0],
        dst_blocks=[1], partial=True, aux_written=True)
    return t.events


@case("aux_in_second_round", "violates", "AuxOnlyInFirstRound")
def _():
    """The second round writes the aux row again."""
    t = T()
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 3, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    t.resume(1, [0], 3, 2, [1], 1, [0])
    t.resume_recv(1, [1], 2)
    t.E("round_start", req=1, session=1, sent_tokens=2, tokens=1, total=3, src_blocks=[1],
        dst_blocks=[1], partial=False, aux_written=True)
    return t.events


@case("status_goes_back", "violates", "StatusMonotone")
def _():
    """After Success the sender sends Transferring for the same room."""
    t = T()
    t.init(1, [0]).init_recv(1, [0]).round(1, 0, 2, 2, [0])
    t.E("status_sent", req=1, session=1, status="Transferring")
    return t.events


@case("status_received_not_sent", "violates", "SpecStep")
def _():
    """The receiver logs a status that the sender never sent (a receive before its send)."""
    t = T()
    t.init(1, [0]).init_recv(1, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    return t.events


@case("resume_garbled", "violates", "SpecStep")
def _():
    """The sender receives a resume with another offset than the one sent."""
    t = T()
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 3, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    t.resume(1, [0], 3, 2, [1], 1, [0])
    t.resume_recv(1, [1], 1)
    return t.events


@case("ends_mid_transfer", "incomplete", "EveryRequestEnds")
def _():
    """The log stops after the first round: the request never ended."""
    t = T()
    t.init(1, [0]).init_recv(1, [0]).round(1, 0, 2, 3, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    return t.events


@case("waits_for_unrequested_round", "violates", "NoWaitForUnrequestedRound")
def _():
    """Mainline's hang: the resume allocation is capped at one block, so the second
    round ends partial too; the receiver resumed once already and waits, the sender
    waits for a resume."""
    t = T(nblocks=6, cap=1)
    t.init(1, [0]).init_recv(1, [0])
    t.round(1, 0, 2, 5, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    t.resume(1, [0], 5, 2, [1], 2, [0])
    t.resume_recv(1, [1], 2)
    t.round(1, 2, 2, 5, [1])
    t.L("status_recv", req=1, session=1, status="Transferring")
    t.L("poll", req=1, status="Transferring", decision="wait")
    return t.events


@case("unanswered_partial_round_bound", "incomplete", "NoWaitForUnrequestedRound",
      args={"bound": 4})
def _():
    """With --bound 4: the partial round is not answered within 4 events."""
    t = T()
    t.init(1, [0]).init_recv(1, [0]).round(1, 0, 2, 3, [0])
    t.L("status_recv", req=1, session=1, status="Transferring")
    for _ in range(4):
        t.L("poll", req=1, status="Transferring", decision="wait")
    return t.events


@case("blocks_never_freed", "incomplete", "BlocksEventuallyFree")
def _():
    """Prefill finished but the request's block was never given back."""
    t = two_rounds()
    t.L("poll", req=1, status="Success", decision="handoff")
    t.L("handoff", req=1, session=1, tokens=3)
    t.L("prefill_done", req=1)
    return t.events


RAW: dict = {
    "malformed_garbage": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe binary\n",
                          "A binary file, not text."),
    "malformed_truncated": (None, "The last line is cut off in the middle."),
    "malformed_wrong_type": (None, "sent_tokens is a string."),
    "malformed_unknown_event": (None, "An event the schema does not know."),
    "malformed_seq_gap": (None, "A line is missing from a process's log (seq jumps)."),
    "malformed_empty": (b"", "An empty file: no events at all."),
}


def _lines(events):
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()


def build(out: Path = HERE) -> dict:
    expected = {}
    for name, (fn, exp) in CORPUS.items():
        (out / f"{name}.jsonl").write_bytes(_lines(fn()))
        expected[f"{name}.jsonl"] = exp
    base = CORPUS["valid_two_rounds"][0]()
    raw = dict(RAW)
    full = _lines(base)
    raw["malformed_truncated"] = (full[:-25], RAW["malformed_truncated"][1])
    bad = [dict(e) for e in base]
    bad[5]["sent_tokens"] = "0"
    raw["malformed_wrong_type"] = (_lines(bad), RAW["malformed_wrong_type"][1])
    bad = [dict(e) for e in base]
    bad[4]["event"] = "teleport"
    raw["malformed_unknown_event"] = (_lines(bad), RAW["malformed_unknown_event"][1])
    raw["malformed_seq_gap"] = (_lines(base[:9] + base[10:]), RAW["malformed_seq_gap"][1])
    for name, (data, about) in raw.items():
        (out / f"{name}.jsonl").write_bytes(data)
        expected[f"{name}.jsonl"] = {"verdict": "malformed", "property": None, "args": {},
                                     "about": about}
    old = {}
    path = out / "expected.json"
    if path.exists():
        old = json.loads(path.read_text())
    # keep entries others added (reference traces)
    for k, v in old.items():
        if k not in expected and (out / k).exists():
            expected[k] = v
    path.write_text(json.dumps(dict(sorted(expected.items())), indent=2) + "\n")
    return expected


# ---------------------------------------------------------------------------
# Traces written by the reference implementation (reference/), one per
# variant and one per built-in counterexample.  The expected verdict is the
# reference's own judgement of the run (its outcome and property), so the
# corpus test checks that two independent implementations agree.
# ---------------------------------------------------------------------------
REFERENCE_RUNS = {f"ref_{v}": ["--variant", v, "--tokens", "5,3", "--block-size", "2",
                               "--pool", "6", "--seed", "1"]
                  for v in VARIANTS}
# Left out, with the reason (they come back once the reason is gone):
REFERENCE_LEFT_OUT = {
    "sent_tokens_stale_aux": "the reference logs its Success poll with decision 'fail' and then "
                             "hands over; the checker stops there (SpecStep) before it can "
                             "judge HandedDataIsSource",
}


def _verdict_of_outcome(outcome: str, prop) -> tuple[str, object]:
    if outcome == "ok":
        return "conforms", None
    if outcome == "hang":
        # each reference hang's log ends at a dead end (no spec step enabled,
        # no fault left): the liveness property is violated, not unfinished
        return "violates", prop
    return "violates", prop


def build_reference(out: Path = HERE) -> dict:
    import subprocess

    def simulate(args, trace):
        cmd = [sys.executable, "-m", "resumespec", "simulate", *args, "--json",
               "--trace", str(trace)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        return json.loads(res.stdout)

    listing = subprocess.run([sys.executable, "-m", "resumespec", "simulate",
                              "--counterexample", "list"], capture_output=True, text=True)
    runs = dict(REFERENCE_RUNS)
    for line in listing.stdout.splitlines():
        name = line.split()[0] if line.strip() else None
        if name and name not in REFERENCE_LEFT_OUT:
            runs[f"ref_{name}"] = ["--counterexample", name]
    expected = {}
    for name, args in runs.items():
        trace = out / f"{name}.jsonl"
        result = simulate(args, trace)
        verdict, prop = _verdict_of_outcome(result["outcome"], result.get("property"))
        expected[f"{name}.jsonl"] = {
            "verdict": verdict, "property": prop, "args": {},
            "about": f"reference implementation, `resumespec simulate {' '.join(args)}`: "
                     f"{result['outcome']}" + (f" ({result['where']})" if result.get("where")
                                               else ""),
            "source": "reference"}
    path = out / "expected.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old = {k: v for k, v in old.items() if v.get("source") != "reference"}
    old.update(expected)
    path.write_text(json.dumps(dict(sorted(old.items())), indent=2) + "\n")
    return expected


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--reference"]:
        exp = build_reference(Path(args[1]) if len(args) > 1 else HERE)
        print(f"wrote {len(exp)} reference traces")
    else:
        exp = build(Path(args[0]) if args else HERE)
        print(f"wrote {len(exp)} corpus traces")
