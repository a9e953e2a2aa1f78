"""TLC trace validation: time against the pool size, side by side.

    python -m bench tlc_trace [--old-timeout=SECONDS] [--landing] [--log] [--no-pools]

The same valid trace (2 requests, 25 events, allocator order "any", block
size 2, 4-token init allocations) logged with pools of 4, 16 and 64 blocks,
checked by TLC trace validation as it is, and as it was before block ids
were renumbered and the trace spec offered the allocator only the logged
blocks (``--old-timeout``, default 90 s, stops the old way early: reported
as ">").  The new times should stay flat; the old ones grew with the pool.

``--landing`` adds one corrected-design reference run whose rounds of several
blocks overlap, checked with the trace spec's writes landing a request's
group at a time (now) and one write per step (before).

``--no-pools`` leaves the pool table out (to run only the sections asked for).

``--log`` adds two of the patched engine's deployed runs (``kill``: 267
events; ``pressure``: 1,565 events, 906 spec steps; from
conformance/corpus/deployed/), checked with the trace spec reading the log
through ``Log`` (a definition TLC evaluates once) and, as before, through
the constant ``Trace`` itself (bound to the generated ``TraceData``, which
TLC evaluates again at every reference).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from resumespec.conformance import synth
from resumespec.conformance import tlc_trace as tt

POOLS = (4, 16, 64)


def _trace(folder: Path, nblocks: int) -> str:
    path = folder / f"pool{nblocks}.jsonl"
    synth.write(path, synth.generate(2, nsess=1, seed=4, block_size=2, nblocks=nblocks,
                                     max_total=4, init_tokens=4))
    return str(path)


def _old_way():
    """Undo both changes for one run: identity block ids, the spec's allocator."""
    saved = tt.block_map, tt.CFG

    def identity(events, nblocks, need, open_steps):
        named = {b for _, ev in events for k in ("blocks", "dst_blocks") for b in ev.get(k) or ()}
        top = max(nblocks, max(named, default=-1) + 1, 1)
        return {b: b + 1 for b in named}, top

    tt.block_map = identity
    tt.CFG = tt.CFG.replace("  AllocChoices <- TraceAllocChoices\n", "")
    return saved


def _timed(path: str, timeout: int) -> tuple[float, str]:
    return _timed_paths([path], timeout)


def main(argv: list[str]) -> int:
    old_timeout = 90
    for a in argv:
        if a.startswith("--old-timeout="):
            old_timeout = int(a.split("=", 1)[1])
    if "--no-pools" not in argv:
        _pools(old_timeout)
    if "--landing" in argv:
        _landing(old_timeout)
    if "--log" in argv:
        _log_read_once(old_timeout)
    return 0


def _pools(old_timeout: int) -> None:
    print("TLC trace validation of one 25-event trace, pool of N blocks (2 TLC runs each)")
    print(f"   {'blocks':>6} {'events':>6} {'now s':>7} {'verdict':>9} {'before s':>9} "
          f"{'verdict':>9} {'before/now':>10}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tlc-trace-") as tmp:
        for nb in POOLS:
            path = _trace(Path(tmp), nb)
            events = sum(1 for _ in open(path))
            now, v_now = _timed(path, 600)
            saved = _old_way()
            try:
                before, v_before = _timed(path, old_timeout)
            finally:
                tt.block_map, tt.CFG = saved
            mark = ">" if v_before == "timeout" else ""
            rows.append((nb, now))
            print(f"   {nb:>6} {events:>6} {now:>7.1f} {v_now:>9} {mark:>1}{before:>8.1f} "
                  f"{v_before:>9} {mark:>1}{before / now:>9.1f}x", flush=True)
    (n0, t0), (n1, t1) = rows[0], rows[-1]
    print(f"   pool x{n1 // n0} -> time x{t1 / t0:.2f} now")


# The trace spec lands a request's writes to a rank together (WritesLand);
# before, one write per step, in any order (the spec's WriteLand).
_GROUP = "\\/ \\E s \\in Sess : WritesLand(s)\n"
_ONE_BY_ONE = "\\/ \\E s \\in Sess : \\E w \\in wire[s] : ~NotLogged(w, s) /\\ WriteLand(s, w)\n"


def _spec_copy(folder: Path, change) -> Path:
    """A copy of the spec in ``folder``, the trace spec's text passed
    through ``change``."""
    folder.mkdir(parents=True)
    for f in tt.SPEC_DIR.glob("*.tla"):
        text = f.read_text()
        if f.name == "TraceResumeProtocol.tla":
            text = change(text)
        (folder / f.name).write_text(text)
    return folder


def one_write_per_step_spec(folder: Path) -> Path:
    """A copy of the spec whose trace spec lands one write per step, as before."""
    def one_by_one(text: str) -> str:
        if _GROUP not in text:
            raise RuntimeError("the trace spec's Unobserved changed: update the bench")
        return text.replace(_GROUP, _ONE_BY_ONE)
    return _spec_copy(folder, one_by_one)


def _landing_trace(folder: Path) -> str:
    """A corrected-design reference run whose rounds of several blocks overlap."""
    from resumespec.reference.scheduler import run
    from resumespec.reference.world import Config
    cfg = Config(variant="corrected", tokens=[12, 10, 9, 8], block_size=2, pool=16,
                 sessions=1, order="fifo", faults=(), seed=3)
    result = run(cfg)
    assert result.ok, result.where
    path = folder / "landing.jsonl"
    result.world.trace.write_jsonl(str(path))
    return str(path)


def _now_and_before(paths: list[str], old_spec: Path,
                    old_timeout: int) -> tuple[float, str, float, str]:
    """The trace checked with the spec as it is, then with ``old_spec``."""
    now, v_now = _timed_paths(paths, 600)
    saved = tt.SPEC_DIR
    tt.SPEC_DIR = old_spec
    try:
        before, v_before = _timed_paths(paths, old_timeout)
    finally:
        tt.SPEC_DIR = saved
    return now, v_now, before, v_before


_HEAD = (f"{'events':>6} {'now s':>7} {'verdict':>9} {'before s':>9} {'verdict':>9} "
         f"{'before/now':>10}")


def _row(events: int, now: float, v_now: str, before: float, v_before: str) -> str:
    mark = ">" if v_before == "timeout" else ""
    return (f"{events:>6} {now:>7.1f} {v_now:>9} {mark:>1}{before:>8.1f} {v_before:>9} "
            f"{mark:>1}{before / now:>9.1f}x")


def _landing(old_timeout: int) -> None:
    """The same trace checked with writes landing a group at a time (now) and
    one at a time (before), side by side."""
    print("Writes landing: a request's writes to a rank in one step (now) or one "
          "per step (before)")
    with tempfile.TemporaryDirectory(prefix="bench-tlc-landing-") as tmp:
        folder = Path(tmp)
        path = _landing_trace(folder)
        events = sum(1 for _ in open(path))
        times = _now_and_before([path], one_write_per_step_spec(folder / "spec"), old_timeout)
    print(f"   {_HEAD}")
    print(f"   {_row(events, *times)}", flush=True)


# The trace spec reads the log through Log == Trace; before, through Trace.
_LOG_DEF = "Log == Trace\n"
LOG_RUNS = tuple(Path(__file__).resolve().parent.parent / "conformance" / "corpus" / "deployed"
                 / "cca20b094-corrected" / name for name in ("kill", "pressure"))


def log_per_reference_spec(folder: Path) -> Path:
    """A copy of the spec whose trace spec reads the constant Trace at every
    reference, as before ``Log``."""
    import re

    def per_reference(text: str) -> str:
        if _LOG_DEF not in text:
            raise RuntimeError("the trace spec's Log changed: update the bench")
        head, body = text.split(_LOG_DEF, 1)
        return head + re.sub(r"\bLog\b", "Trace", body)
    return _spec_copy(folder, per_reference)


def _log_read_once(old_timeout: int) -> None:
    """Deployed runs checked with the log read once (now) and at every
    reference (before), side by side."""
    print("The log read once (Log, now) or at every reference (Trace, before)")
    print(f"   {'run':>28} {_HEAD}")
    with tempfile.TemporaryDirectory(prefix="bench-tlc-log-") as tmp:
        per_reference = log_per_reference_spec(Path(tmp) / "spec")
        for run in LOG_RUNS:
            paths = sorted(str(p) for p in run.glob("*.jsonl"))
            events = sum(1 for p in paths for _ in open(p))
            times = _now_and_before(paths, per_reference, old_timeout)
            print(f"   {run.parent.name + '/' + run.name:>28} {_row(events, *times)}",
                  flush=True)


def _timed_paths(paths: list[str], timeout: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    v = tt.check_tlc(paths, timeout=timeout)
    return time.perf_counter() - t0, v.verdict if v.verdict != "error" else "timeout"
