"""The spec's counterexamples, replayed through the protocol core.

``reference/tlc_schedules/*.json`` hold the steps of TLC's counterexample
for every failing quick model.  Replayed step by step through the core (the
abstract host of ``reference/protocol/spechost.py``), each must be a step
the core allows, no checked invariant may fail before the last step, and
the end state must violate the model's property: its safety invariant, or
for a liveness property a dead end no continuation (without faults) gets
out of.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumespec.reference.protocol.spechost import Move, World

SCHEDULES = sorted((Path(__file__).resolve().parents[1] / "reference" / "tlc_schedules").glob("*.json"))
FAULT_ACTIONS = ("WriteError", "Heartbeat", "Abort")


def pick(world: World, step: dict) -> Move:
    """The one core step the schedule's step names."""
    kind, req, sess = step["step"], step.get("req"), step.get("session")
    moves = world.moves()
    if kind == "WriteLand":
        cands = [m for m in moves if m.action == "Next" and m.session == sess
                 and m.write is not None and m.write.r == req and m.write.b == step["dst"] + 1]
    elif kind == "ReceiverPoll":
        polls = [m for m in moves if m.action.startswith("Poll") and m.req == req]
        # a poll that acts, else a poll that only reads (it waits)
        cands = [m for m in polls if m.action != "PollReadOnly"] or polls
    else:
        cands = [m for m in moves if m.action == kind and m.req == req
                 and (sess is None or m.session == sess)]
    assert len(cands) == 1, f"{step}: the core allows {len(cands)} such steps: {[m.action for m in moves]}"
    return cands[0]


def stuck_forever(world: World, prop: str) -> bool:
    """Whether some request violates ``prop`` in every state reachable
    from ``world`` without faults (so every continuation violates it)."""
    seen = {}
    todo = [world]
    while todo:
        w = todo.pop()
        key = json.dumps(w.to_spec(), default=sorted, sort_keys=True)
        if key in seen:
            continue
        seen[key] = w
        assert len(seen) < 20_000, "state space too large for this check"
        todo.extend(m.world for m in w.moves() if m.action not in FAULT_ACTIONS)
    states = list(seen.values())
    test = (lambda w, r: w.dead_wait(r)) if prop == "NoWaitForUnrequestedRound" \
        else (lambda w, r: not w.ended(r))
    return any(all(test(w, r) for w in states) for r in world.reqs)


@pytest.mark.parametrize("path", SCHEDULES, ids=[p.stem for p in SCHEDULES])
def test_counterexample_replays_through_the_core(path):
    sched = json.loads(path.read_text())
    world = World.from_model(sched["variant"], sched["constants"])
    checked = set(sched["props"])
    for i, step in enumerate(sched["steps"]):
        assert not checked & set(world.safety_violations()), f"violated before step {i}"
        world = pick(world, step).world
    violated = set(world.safety_violations()) & checked
    if sched["property"] in ("NoWaitForUnrequestedRound", "EveryRequestEnds"):
        assert not violated
        assert stuck_forever(world, sched["property"])
    else:
        assert violated == {sched["property"]}


def test_corrected_design_never_gets_stuck_where_once_does():
    """The corrected design, run through the once_pool_deadlock schedule's
    constants, reaches no dead end: every request can still end."""
    sched = json.loads((SCHEDULES[0].parent / "once_pool_deadlock.json").read_text())
    world = World.from_model("corrected", sched["constants"])
    assert not stuck_forever(world, "EveryRequestEnds")
