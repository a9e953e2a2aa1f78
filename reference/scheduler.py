"""The deterministic scheduler: who moves next.

Two modes, one loop:

* from a seed: at each point pick one enabled step at random (``random.Random
  (seed)``), faults with a small probability;
* from an explicit schedule: a list of steps with parameters (like a TLC
  counterexample); each entry names a spec action and some of its parameters
  and matches the first enabled step that agrees on all of them. After the
  list, the run goes on from the seed (``complete=True``) so that a prefix
  that leads into a hang is reported as one.

Progress: a step that leaves the state unchanged (a poll that waits) is a
stutter; a state is *quiescent* when every enabled non-fault step has just
stuttered. A quiescent state where some request or sender room is still open
is a **hang**, reported with the step where the run last made progress.
The executed steps are recorded, so any run can be replayed and shrunk.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

from .checks import Violation
from .world import FAULT_STEPS, STEP_NAMES, Config, World

FAULT_PROBABILITY = 0.05


class ScheduleError(ValueError):
    """A schedule entry cannot be taken (unknown step, or not enabled)."""


@dataclass
class RunResult:
    outcome: str                 # ok | hang | corruption | leak | double_free | shared_block | ...
    prop: str | None             # the spec property that failed
    where: str | None
    steps: list[dict] = field(default_factory=list)
    stalled_at: int | None = None
    elapsed_s: float = 0.0
    world: World | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def summary(self) -> dict:
        w = self.world
        rounds = {str(r): room.round for r, room in w.sender.rooms.items()}
        resumes = {str(r): rq.resumes for r, rq in w.receiver.requests.items()}
        ends = {str(r): rq.phase if rq.phase != "failed" else f"failed ({rq.fail_reason})"
                for r, rq in w.receiver.requests.items()}
        total_rounds = max(1, sum(rounds.values()))
        return {
            "outcome": self.outcome, "property": self.prop, "where": self.where,
            "stalled_at_step": self.stalled_at, "steps": len(self.steps),
            "variant": w.cfg.variant, "resume_order": w.cfg.effective_resume_order(),
            "device": str(w.device),
            "rounds": rounds, "resumes": resumes, "requests": ends,
            "bytes_moved": w.bytes_landed, "block_writes": len(w.landed), "write_ops": w.write_ops,
            "batch_writes": w.cfg.batch_writes, "elapsed_s": round(self.elapsed_s, 6),
            "throughput_MBps": round(w.bytes_landed / self.elapsed_s / 1e6, 3) if self.elapsed_s else None,
            "us_per_round": round(self.elapsed_s / total_rounds * 1e6, 1),
        }


def _matches(entry: dict, step: dict) -> bool:
    return all(step.get(k) == v for k, v in entry.items())


def parse_schedule_entry(entry, where: str) -> dict:
    """A dict ``{"step": ..., ...}`` or a line ``"Name key=value ..."``."""
    if isinstance(entry, str):
        words = entry.split()
        if not words:
            raise ScheduleError(f"{where}: empty step")
        out: dict = {"step": words[0]}
        for w in words[1:]:
            if "=" not in w:
                raise ScheduleError(f"{where}: expected key=value, got {w!r}")
            k, v = w.split("=", 1)
            out[k] = int(v) if v.lstrip("-").isdigit() else v
        entry = out
    if not isinstance(entry, dict) or "step" not in entry:
        raise ScheduleError(f"{where}: expected an object with a \"step\" field")
    if entry["step"] not in STEP_NAMES:
        raise ScheduleError(f"{where}: unknown step {entry['step']!r}; expected one of {', '.join(STEP_NAMES)}")
    return entry


def load_schedule(path: str) -> list[dict]:
    """A JSON list of steps, or one step per line (JSON object or ``Name k=v``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ScheduleError(f"{path}: cannot read ({exc.strerror})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScheduleError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        return [parse_schedule_entry(e, f"{path}: entry {i + 1}") for i, e in enumerate(items)]
    steps = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ScheduleError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        else:
            entry = line
        steps.append(parse_schedule_entry(entry, f"{path}:{lineno}"))
    return steps


def run(cfg: Config, schedule: list[dict] | None = None, complete: bool = True,
        strict: bool = True, progress=None, chooser=None) -> RunResult:
    """Run one system to its end. ``chooser(candidates) -> index``, when
    given, picks each step instead of the seed (hypothesis drives schedules
    through it); faults are among its candidates."""
    world = World(cfg)
    rng = random.Random(cfg.seed)
    taken: list[dict] = []
    stuttered: set[tuple] = set()
    last_progress = 0
    fp = world.fingerprint()
    start = time.perf_counter()
    pending = list(schedule or [])
    result: RunResult | None = None

    def step_key(st: dict) -> tuple:
        return tuple(sorted(st.items()))

    while True:
        if len(taken) >= cfg.max_steps:
            result = RunResult("hang", "EveryRequestEnds",
                               f"step limit {cfg.max_steps} reached; {world.stuck_report()}",
                               stalled_at=last_progress)
            break
        enabled = world.enabled_steps()
        if pending:
            entry = pending.pop(0)
            choice = next((st for st in enabled if _matches(entry, st)), None)
            if choice is None:
                if strict:
                    names = sorted({st["step"] for st in enabled})
                    raise ScheduleError(f"schedule step {len(taken) + 1} {entry} is not enabled; "
                                        f"enabled now: {', '.join(names) or 'nothing'}")
                continue
        else:
            if schedule is not None and not complete:
                break
            fresh = [st for st in enabled if step_key(st) not in stuttered]
            normal = [st for st in fresh if st["step"] not in FAULT_STEPS]
            faulty = [st for st in fresh if st["step"] in FAULT_STEPS]
            if not normal:
                break  # quiescent
            if chooser is not None:
                candidates = normal + faulty
                choice = candidates[chooser(candidates) % len(candidates)]
            elif faulty and rng.random() < FAULT_PROBABILITY:
                choice = rng.choice(faulty)
            else:
                choice = rng.choice(normal)
        taken.append(choice)
        try:
            world.apply(choice)
            world.check_state()
        except Violation as v:
            result = RunResult(v.kind, v.prop, f"step {len(taken)} {choice['step']}: {v.where}")
            break
        new_fp = world.fingerprint()
        if new_fp == fp:
            stuttered.add(step_key(choice))
        else:
            stuttered.clear()
            fp = new_fp
            last_progress = len(taken)
        if progress is not None and len(taken) % 10000 == 0:
            progress(len(taken))
    # the last landed writes' bytes, when nothing read them yet (batched landing)
    world.settle_writes()
    if result is None:
        if world.finished():
            try:
                world.check_end()
                result = RunResult("ok", None, None)
            except Violation as v:
                result = RunResult(v.kind, v.prop, f"at the end: {v.where}")
        elif schedule is not None and not complete and not pending:
            result = RunResult("incomplete", None, "schedule ended before the run did")
        else:
            prop = _hang_property(world)
            result = RunResult("hang", prop,
                               f"no progress after step {last_progress}: {world.stuck_report()}",
                               stalled_at=last_progress)
    result.steps = taken
    result.world = world
    result.elapsed_s = time.perf_counter() - start
    return result


def _hang_property(world: World) -> str:
    """Which liveness property a hang violates: the most specific of those
    violated, among the run's selected properties when it selects some."""
    rx = world.receiver
    violated = []
    if any(world.dead_wait(r) for r in rx.requests):
        violated.append("NoWaitForUnrequestedRound")
    if any(rq.phase not in ("prefill", "done", "failed") for rq in rx.requests.values()):
        violated.append("EveryRequestEnds")
    if any(room.alive for room in world.sender.rooms.values()):
        violated.append("SenderRoomsClose")
    selected = [p for p in violated if world.cfg.props is None or p in world.cfg.props]
    return (selected or violated or ["EveryRequestEnds"])[0]


def shrink(cfg: Config, schedule: list[dict], outcome: str, max_tries: int = 2000) -> list[dict]:
    """Remove steps while the run still ends in ``outcome`` (greedy delta
    debugging; steps that are no longer enabled are skipped on replay)."""
    best = list(schedule)
    chunk = max(1, len(best) // 2)
    tries = 0
    while chunk >= 1 and tries < max_tries:
        i, changed = 0, False
        while i < len(best) and tries < max_tries:
            candidate = best[:i] + best[i + chunk:]
            tries += 1
            r = run(cfg, candidate, complete=True, strict=False)
            if r.outcome == outcome:
                best = candidate
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return best
