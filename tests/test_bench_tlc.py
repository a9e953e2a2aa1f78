"""The ratios of ``python -m bench tlc --compare`` (bench/bench_tlc.py):
which one counts the states of the space a VIEW model covers, and when
the bench has to count that space itself."""

from __future__ import annotations

from bench.bench_tlc import Measured, ratios


def run(distinct: int, wall: float, complete: bool = True, search: float | None = None) -> Measured:
    # compare() sets tlc_s to the wall time: the rates are wall-clock rates
    return Measured("m", distinct, distinct * 2, wall, wall, complete, "success" if complete else "timeout",
                    search)


def never() -> int | None:
    raise AssertionError("the space's size was not needed")


def test_a_view_model_gets_coverage_from_the_before_runs_count():
    before = run(2776, 36.0, search=32.0)
    after = run(1631, 3.6, search=2.0)          # fewer states: the view merged some
    r = ratios(before, after, True, 90.0, never)
    assert r["ratio"] < 10                       # distinct states per second alone: below x10
    assert r["unreduced_distinct_states"] == 2776
    assert r["time_to_verdict_ratio"] == 10.0 and not r["time_to_verdict_at_least"]
    assert r["coverage_ratio"] == 10.0           # the same space per second: x10
    assert r["search_ratio"] == 16.0


def test_a_stopped_before_run_makes_the_bench_count_the_space():
    before = run(29652, 90.0, complete=False)    # rate from its last progress report
    before.tlc_s = 76.0
    after = run(62564, 35.0)
    asked = []

    def count() -> int:
        asked.append(True)
        return 444115
    r = ratios(before, after, True, 90.0, count)
    assert asked and r["unreduced_distinct_states"] == 444115
    assert r["coverage_per_s"] == round(444115 / 35.0, 1)
    assert r["coverage_ratio"] == round((444115 / 35.0) / (29652 / 76.0), 2)
    assert r["time_to_verdict_at_least"] and r["time_to_verdict_ratio"] == round(90.0 / 35.0, 2)
    assert r["search_ratio"] is None


def test_without_a_view_coverage_is_the_distinct_rate():
    before = run(3459, 90.0, complete=False)
    after = run(138367, 140.0)
    r = ratios(before, after, False, 90.0, never)
    assert r["coverage_ratio"] == r["ratio"] and r["unreduced_distinct_states"] == 138367


def test_a_stopped_after_run_claims_only_its_fingerprinted_states():
    before = run(3459, 90.0, complete=False)
    after = run(50000, 90.0, complete=False)
    r = ratios(before, after, True, 90.0, never)
    # each fingerprinted state stands for at least one state of the space
    assert r["coverage_ratio"] == r["ratio"] and r["unreduced_distinct_states"] is None
    assert r["time_to_verdict_ratio"] is None


def test_a_view_model_whose_space_cannot_be_counted_has_no_coverage_beyond_its_rate():
    before = run(100, 90.0, complete=False)
    after = run(1000, 10.0)
    r = ratios(before, after, True, 90.0, lambda: None)
    assert r["coverage_ratio"] == r["ratio"]
