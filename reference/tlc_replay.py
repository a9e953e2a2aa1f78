"""Replay the spec's TLC counterexamples on the reference implementation.

``resumespec counterexample MODEL --json`` prints TLC's trace: per state the
action's name and every variable's value. ``schedule_from_trace`` turns it
into a schedule of this implementation's steps, reading each step's
parameters from what changed between two states (which request's ``rxPhase``,
which ``ctl[r][s]`` queue shrank, which write left ``wire[s]``, ...).
``replay_from_trace`` runs that schedule under the model's constants and
checks only the model's safety properties (as its cfg does); the run must end
in the same verdict as TLC's.

Stored translations live in ``reference/tlc_schedules/<model>.json`` (the
spec's quick failing models); ``python -m resumespec.reference.tlc_replay
--write`` regenerates them by running TLC.

Block ids: the spec numbers blocks from 1, the implementation from 0.
The spec's historical polls act per session; one ReceiverPoll here acts on
all sessions of the request (later polls of the same round then wait).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from .checks import CONTAINMENT, PROPERTIES
from .world import Config

SCHEDULE_DIR = Path(__file__).with_name("tlc_schedules")

# the property TLC reports -> the outcome kind a run here ends in
OUTCOME_OF = {
    "NoSharedBlock": "shared_block", "NoFreeAndHeld": "double_free", "NoDoubleFree": "double_free",
    "WritesOnlyIntoOwnedBlocks": "write_into_unowned", "NoReadDuringWrite": "read_during_write",
    "HandedDataIsSource": "corruption", "AtMostOneResumePerRound": "double_resume",
    "BlocksEventuallyFree": "leak", "EveryRequestEnds": "hang",
    "NoWaitForUnrequestedRound": "hang", "SenderRoomsClose": "hang",
    "EachFailureHasAFault": "fault_spread",
}


class TraceError(ValueError):
    """A TLC trace this module cannot translate."""


def parse_constants(text: str) -> dict:
    """``"NReq=2 ... Total=<<3, 2>> ... Faults={abort}"`` -> Config fields."""
    kv = dict(re.findall(r"(\w+)=(<<[^>]*>>|\{[^}]*\}|\S+)", text))
    try:
        total = [int(x) for x in kv["Total"].strip("<>").split(",") if x.strip()]
        faults = tuple(sorted(f.strip().strip('"') for f in kv["Faults"].strip("{}").split(",") if f.strip()))
        order = kv["Order"].strip('"')
        return dict(tokens=total, sessions=int(kv["NSess"]), block_size=int(kv["BlockSize"]),
                    pool=int(kv["NBlocks"]), init_tokens=int(kv["InitTokens"]), cap=int(kv["Cap"]),
                    order="random" if order == "any" else order,
                    resume_order=kv["ResumeOrder"].strip('"'),
                    barrier=kv["Barrier"].upper() == "TRUE", faults=faults,
                    fork_sender=kv.get("ForkSender", "FALSE").upper() == "TRUE")
    except (KeyError, ValueError) as exc:
        raise TraceError(f"cannot read the model's constants {text!r}: {exc}") from None


def _set(v) -> list:
    return v["set"] if isinstance(v, dict) and "set" in v else list(v)


def _idx(n: int) -> range:
    return range(1, n + 1)


def _translate(name: str, p: dict, c: dict) -> dict | None:
    """One TLC step -> one step here (None: nothing to do here)."""
    nreq, nsess = len(c["rxPhase"]), len(c["ctl"][0])
    rs = [(r, s) for r in _idx(nreq) for s in _idx(nsess)]

    def shrank(var):
        return [(r, s) for r, s in rs if len(c[var][r - 1][s - 1]) < len(p[var][r - 1][s - 1])]

    if name == "ReceiverInit":
        r = next(r for r in _idx(nreq) if p["rxPhase"][r - 1] == "new" and c["rxPhase"][r - 1] != "new")
        return {"step": "ReceiverInit", "req": r}
    if name in ("SenderRecvInit", "SenderRecvResume", "SenderRecvAbort"):
        r, s = shrank("ctl")[0]
        return {"step": name, "req": r, "session": s}
    if name == "SenderStartRound":
        r = next(r for r in _idx(nreq) if c["txRound"][r - 1] > p["txRound"][r - 1])
        return {"step": name, "req": r}
    if name == "SenderEndRound":
        r = next(r for r in _idx(nreq) if p["txPhase"][r - 1] == "writing" and c["txPhase"][r - 1] != "writing")
        return {"step": name, "req": r}
    if name == "WriteLand":
        for s in _idx(nsess):
            before = _set(p["wire"][s - 1])
            after = _set(c["wire"][s - 1])
            gone = [w for w in before if w not in after]
            if gone:
                w = gone[0]
                return {"step": "WriteLand", "session": s, "req": w["r"], "dst": w["b"] - 1}
        raise TraceError("WriteLand with no write leaving the wire")
    if name == "DeliverStatus":
        r, s = shrank("st")[0]
        return {"step": name, "req": r, "session": s}
    if name == "PrefillDone":
        r = next(r for r in _idx(nreq) if p["rxPhase"][r - 1] == "prefill" and c["rxPhase"][r - 1] == "done")
        return {"step": name, "req": r}
    if name in ("WriteError", "Heartbeat", "SenderFailDead"):
        r = next(r for r in _idx(nreq) if p["txPhase"][r - 1] != c["txPhase"][r - 1])
        if name == "WriteError" and set(_set(c.get("txDead", []))) != set(_set(p.get("txDead", []))):
            # the fork's sender: the session whose write failed is the one marked dead
            (d,) = set(_set(c["txDead"])) - set(_set(p["txDead"]))
            return {"step": name, "req": r, "session": d}
        return {"step": name, "req": r}
    if name == "Abort":
        r = next(r for r in _idx(nreq) if p["rxPhase"][r - 1] == "queued" and c["rxPhase"][r - 1] != "queued")
        return {"step": name, "req": r}
    if name.startswith("Poll") or name == "ReceiverPoll":
        rx_vars = [v for v in ("rxPhase", "rxBlocks", "rxResumes", "rxCache", "rxDesign", "handed")
                   if v in c]
        changed = [r for r in _idx(nreq) if any(p[v][r - 1] != c[v][r - 1] for v in rx_vars)]
        if not changed:  # a read-only poll: only the error set changed
            changed = [r for r in _idx(nreq) if c["rxPhase"][r - 1] == "queued"]
        return {"step": "ReceiverPoll", "req": changed[0]}
    raise TraceError(f"unknown action {name!r} in the TLC trace")


def schedule_from_trace(states: list[dict]) -> list[dict]:
    steps = []
    for prev, cur in zip(states, states[1:]):
        step = _translate(cur["action"]["name"], prev["values"], cur["values"])
        if step is not None:
            steps.append(step)
    return steps


def _model_props(model: str) -> tuple[str, ...] | None:
    """The properties the model's cfg checks (from the manifest notes)."""
    try:
        from resumespec.spec.manifest import load_manifest
        entry = next(m for m in load_manifest().models if m.name == model)
    except Exception:
        return None
    notes = entry.raw.get("notes", "") or ""
    if "checks " not in notes:
        return None
    return tuple(p for p in notes.split("checks ", 1)[1].split()
                 if p in PROPERTIES or p in CONTAINMENT)


def replay_doc(doc: dict) -> dict:
    """A counterexample document (TLC's) -> a compact replay document."""
    if doc.get("trace") is None or not doc["trace"].get("states"):
        raise TraceError(f"{doc.get('model')}: no trace (TLC found no violation?)")
    got = doc.get("got") or {}
    prop = got.get("safety") or got.get("liveness")
    if prop is None:
        raise TraceError(f"{doc.get('model')}: the trace violates no named property")
    return {
        "model": doc["model"], "variant": doc["variant"], "constants": doc["constants"],
        "property": prop, "outcome": OUTCOME_OF[prop], "props": _model_props(doc["model"]),
        "steps": schedule_from_trace(doc["trace"]["states"]),
    }


def config_of(replay: dict, **overrides) -> Config:
    """The model's constants as a run's Config.  Asked for the corrected
    design, the run also gets its sender (``fork_sender`` off) unless told."""
    kw = parse_constants(replay["constants"])
    kw.update(variant=replay["variant"], props=tuple(replay["props"]) if replay.get("props") else None)
    if overrides.get("variant") == "corrected":
        kw["fork_sender"] = False
    kw.update(overrides)
    return Config(**kw)


def load_replay(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    return replay_doc(doc) if "trace" in doc else doc


def stored_replays() -> dict[str, dict]:
    return {p.stem: load_replay(p) for p in sorted(SCHEDULE_DIR.glob("*.json"))}


def run_tlc_counterexample(model: str) -> dict:
    """Run TLC through the spec part's CLI and return its JSON document.
    One worker: TLC's breadth-first search then reports a shortest
    counterexample (with several workers it may report one a step longer)."""
    proc = subprocess.run([sys.executable, "-m", "resumespec", "counterexample", model, "--json", "-q",
                           "--workers", "1"],
                          capture_output=True, text=True)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise TraceError(f"{model}: resumespec counterexample failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-300:]}") from None


def main(argv: list[str]) -> int:
    """``--write [MODEL...]``: run TLC on the failing quick models (or those
    named) and store their translated schedules."""
    if not argv or argv[0] != "--write":
        print("usage: python -m resumespec.reference.tlc_replay --write [MODEL...]", file=sys.stderr)
        return 2
    models = argv[1:]
    if not models:
        from resumespec.spec.manifest import load_manifest
        models = [m.name for m in load_manifest().models
                  if m.set == "quick" and m.variant != "corrected" and m.expected.kind != "success"]
    SCHEDULE_DIR.mkdir(exist_ok=True)
    for model in models:
        print(f"tlc_replay: {model}", file=sys.stderr, flush=True)
        replay = replay_doc(run_tlc_counterexample(model))
        with open(SCHEDULE_DIR / f"{model}.json", "w", encoding="utf-8") as fh:
            json.dump(replay, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
