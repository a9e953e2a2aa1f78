"""The reference implementation: the corrected design is safe and live under
random sizes, orders, sessions, faults and schedules; every historical design
fails, found by hypothesis and reproduced by an explicit schedule.

Device: CUDA when present, else CPU (``device="auto"``); tensors are small.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import pytest
import torch
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from resumespec.reference.counterexamples import COUNTEREXAMPLES, config_of, steps_of
from resumespec.reference.receiver import HISTORICAL, VARIANTS
from resumespec.reference.scheduler import run, shrink
from resumespec.reference.tlc_replay import config_of as tlc_config
from resumespec.reference.tlc_replay import stored_replays
from resumespec.reference.world import Config


def fast(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def configs(draw, variant: str = "corrected", faults=True):
    block_size = draw(st.integers(1, 3))
    nreq = draw(st.integers(1, 3))
    tokens = draw(st.lists(st.integers(1, 4 * block_size + 1), min_size=nreq, max_size=nreq))
    pool = draw(st.integers(1, 5))
    fault_set = draw(st.sets(st.sampled_from(["write_error", "heartbeat", "abort", "alloc_fail"]))) if faults else set()
    return Config(variant=variant, tokens=tokens, block_size=block_size, pool=pool,
                  sessions=draw(st.integers(1, 2)), order=draw(st.sampled_from(["fifo", "lifo", "random"])),
                  cap=draw(st.integers(0, 3)), resume_order=draw(st.sampled_from([None, "alloc_first", "free_first"])),
                  barrier=draw(st.booleans()), faults=tuple(sorted(fault_set)),
                  seed=draw(st.integers(0, 2**16)), hidden=draw(st.sampled_from([8, 16])))


# -- the corrected design -------------------------------------------------------
@fast(500)
@given(configs())
def test_corrected_never_corrupts_leaks_or_hangs(cfg):
    r = run(cfg)
    assert r.outcome == "ok", (r.outcome, r.where, cfg)
    # every request ended: handed to prefill and done, or failed by a fault
    for rq in r.world.receiver.requests.values():
        assert rq.phase == "done" or (rq.phase == "failed" and cfg.faults), (rq.phase, rq.fail_reason)


@fast(40)
@given(configs(faults=False))
def test_corrected_without_faults_hands_every_request_to_prefill(cfg):
    r = run(cfg)
    assert r.outcome == "ok", (r.outcome, r.where)
    assert all(rq.phase == "done" for rq in r.world.receiver.requests.values())
    bs = cfg.block_size
    for req, total in enumerate(cfg.tokens, start=1):
        rounds = r.world.sender.rooms[req].round
        assert rounds >= 1 and (rounds == 1) == (total <= bs)


@pytest.mark.parametrize("name", sorted(COUNTEREXAMPLES))
def test_corrected_survives_each_counterexample_prefix(name):
    cx = COUNTEREXAMPLES[name]
    r = run(config_of(cx, variant="corrected"), steps_of(cx), strict=False)
    assert r.outcome == "ok", (r.outcome, r.where)


@fast(150)
@given(configs(), st.data())
def test_corrected_under_schedules_drawn_step_by_step(cfg, data):
    # hypothesis picks every step among the enabled ones (faults included),
    # so it explores and shrinks schedules, not only seeds
    r = run(cfg, chooser=lambda cands: data.draw(st.integers(0, len(cands) - 1)))
    assert r.outcome == "ok", (r.outcome, r.where, cfg)


@pytest.mark.parametrize("variant", HISTORICAL)
def test_hypothesis_drawn_schedule_breaks_each_historical_design(variant):
    cfg = Config(variant=variant, tokens=[3, 2], block_size=1, pool=3, cap=1,
                 faults=("abort",), hidden=8)
    seen = []

    # only whether a failing schedule exists matters here: no shrinking
    @settings(max_examples=300, deadline=None, database=None, phases=[Phase.generate])
    @given(st.data())
    def search(data):
        r = run(cfg, chooser=lambda cands: data.draw(st.integers(0, len(cands) - 1)))
        seen.append(r.outcome)
        assert r.ok

    with pytest.raises(AssertionError):
        search()
    assert any(o != "ok" for o in seen)


# -- batched landing is invisible -------------------------------------------------
def _same_run(cfg: Config, schedule=None, choices=None, strict: bool = True) -> None:
    """The run with batched landing and the run with one copy per block
    (same configuration, same schedule) are the same run: steps, trace
    events, verdict, every handed tensor and every pool's final bytes."""
    runs = []
    for batch in (True, False):
        it = iter(choices or ())
        chooser = (lambda cands, it=it: next(it, 0)) if choices is not None else None
        runs.append(run(Config(**{**cfg.__dict__, "batch_writes": batch}), schedule,
                        strict=strict, chooser=chooser))
    a, b = runs
    assert (a.outcome, a.prop, a.where, a.stalled_at) == (b.outcome, b.prop, b.where, b.stalled_at)
    assert a.steps == b.steps
    assert a.world.trace.events == b.world.trace.events
    assert a.world.handed.keys() == b.world.handed.keys()
    for key, handed in a.world.handed.items():
        for x, y in zip(handed, b.world.handed[key]):
            assert torch.equal(x.view(torch.int16) if x.dtype == torch.bfloat16 else x,
                               y.view(torch.int16) if y.dtype == torch.bfloat16 else y), key
    for s, pool in a.world.pools.items():
        assert pool.queued_landings == 0
        assert torch.equal(pool.rows, b.world.pools[s].rows), s
        assert torch.equal(pool.aux, b.world.pools[s].aux), s
    assert a.world.bytes_landed == b.world.bytes_landed
    # batched landing never takes more copy ops than one copy per block
    assert a.world.write_ops <= b.world.write_ops


@fast(150)
@given(st.sampled_from(VARIANTS).flatmap(configs), st.data())
def test_batched_landing_gives_the_same_run_in_every_design(cfg, data):
    # historical designs read during writes, read stale aux rows and write into
    # freed blocks: their failures must come out the same, byte for byte
    if data.draw(st.booleans(), label="step-by-step schedule"):
        _same_run(cfg, choices=data.draw(st.lists(st.integers(0, 50), max_size=200), label="choices"))
    else:
        _same_run(cfg)


@pytest.mark.parametrize("name", sorted(COUNTEREXAMPLES))
def test_batched_landing_gives_the_same_counterexample_run(name):
    cx = COUNTEREXAMPLES[name]
    _same_run(config_of(cx, hidden=16), steps_of(cx))


def test_batched_landing_gives_the_same_tlc_replays():
    replays = stored_replays()
    assert replays
    for r in replays.values():
        _same_run(tlc_config(r, hidden=16), r["steps"])


@pytest.mark.parametrize("seed", range(4))
def test_batched_landing_gives_the_same_run_with_scattered_rounds(seed):
    # a random allocator and a big pool scatter a round over many blocks,
    # so its batch is copied with index_copy_, not slices
    cfg = Config(tokens=[30, 20], block_size=1, pool=12, sessions=2, order="random",
                 faults=("abort", "alloc_fail"), seed=seed)
    _same_run(cfg)
    world = run(cfg).world
    scattered = [b for pool in world.pools.values() for _, b in pool.landing_batches
                 if sum(1 for x, y in zip(sorted(b), sorted(b)[1:])
                        if (y.src_block, y.dst_block) != (x.src_block + 1, x.dst_block + 1)) >= 2]
    assert scattered


def test_batched_landing_copies_a_round_with_fewer_ops():
    # 4 blocks per round into a FIFO pool: rounds land as one or two slice
    # copies instead of one copy per block
    cfg = Config(tokens=[40], block_size=4, pool=6, cap=4, hidden=16, seed=3)
    batched, per_block = (run(Config(**{**cfg.__dict__, "batch_writes": b})) for b in (True, False))
    assert batched.ok and per_block.ok
    writes = len(batched.world.landed)
    assert per_block.world.write_ops == writes + 1    # + the first block's aux row
    assert batched.world.write_ops < writes
    batches = batched.world.pools[1].landing_batches
    assert max(len(b) for _, b in batches) == 4


def test_corrected_many_rounds_many_sessions():
    cfg = Config(tokens=[23, 17], block_size=2, pool=3, sessions=3, cap=1, order="lifo", seed=5)
    r = run(cfg)
    assert r.ok, r.where
    assert r.world.sender.rooms[1].round == 12  # 1 init block, then 1 block per round


# -- the historical designs -----------------------------------------------------
@pytest.mark.parametrize("name", sorted(COUNTEREXAMPLES))
def test_explicit_counterexample_reproduces_the_failure(name):
    cx = COUNTEREXAMPLES[name]
    r = run(config_of(cx), steps_of(cx))
    assert r.outcome == cx.outcome, (r.outcome, r.where)


@pytest.mark.parametrize("variant", HISTORICAL)
def test_hypothesis_finds_a_failing_schedule(variant):
    @st.composite
    def small(draw):
        return Config(variant=variant, tokens=[draw(st.integers(2, 5))], block_size=1,
                      pool=draw(st.integers(2, 4)), cap=draw(st.integers(0, 2)),
                      seed=draw(st.integers(0, 1000)), hidden=8)

    cfg = find(small(), lambda c: not run(c).ok,
               settings=settings(max_examples=300, deadline=None, database=None))
    first = run(cfg)
    assert not first.ok
    # the recorded schedule replays to the same failure, step for step
    again = run(cfg, first.steps)
    assert again.outcome == first.outcome and again.where == first.where


def test_every_historical_design_has_a_hang_and_a_safety_counterexample():
    by_variant = {}
    for cx in COUNTEREXAMPLES.values():
        by_variant.setdefault(cx.variant, set()).add(cx.outcome)
    for v in HISTORICAL:
        assert "hang" in by_variant[v]
        assert by_variant[v] - {"hang"}, v


def test_shrink_keeps_the_failure_and_drops_steps():
    cfg = Config(variant="flag", tokens=[5, 4], block_size=1, pool=4, cap=1, seed=11)
    r = run(cfg)
    assert r.outcome == "hang"
    small = shrink(cfg, r.steps, "hang")
    assert len(small) < len(r.steps)
    assert run(cfg, small, strict=False).outcome == "hang"


def test_runs_are_deterministic_per_seed():
    cfg = Config(tokens=[7, 5], block_size=2, pool=3, cap=1, order="random", seed=99,
                 faults=("abort", "alloc_fail"))
    a, b = run(cfg), run(cfg)
    assert a.steps == b.steps and a.world.trace.events == b.world.trace.events
