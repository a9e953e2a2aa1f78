"""The reference implementation: the corrected design is safe and live under
random sizes, orders, sessions, faults and schedules; every historical design
fails, found by hypothesis and reproduced by an explicit schedule.

Device: CUDA when present, else CPU (``device="auto"``); tensors are small.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st, find

from resumespec.reference.counterexamples import COUNTEREXAMPLES, config_of, steps_of
from resumespec.reference.receiver import HISTORICAL
from resumespec.reference.scheduler import run, shrink
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
        rounds = r.world.sender.rooms[req].rounds_started
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


def test_corrected_many_rounds_many_sessions():
    cfg = Config(tokens=[23, 17], block_size=2, pool=3, sessions=3, cap=1, order="lifo", seed=5)
    r = run(cfg)
    assert r.ok, r.where
    assert r.world.sender.rooms[1].rounds_started == 12  # 1 init block, then 1 block per round


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
