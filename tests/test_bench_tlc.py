"""The ratios of ``python -m bench tlc --compare`` (bench/bench_tlc.py):
which one counts the states of the space a VIEW model covers, and when
the bench has to count that space itself; the time to the verdict and the
CPU ratio, the median of repeated runs, and ``throughput`` entries recorded
by either version of ``--record`` read back in one set of names; the
before model of a model resized since the before revision, and which
comparisons are start-up bound."""

from __future__ import annotations

import dataclasses

import pytest

from bench.bench_tlc import (
    Measured,
    NotComparable,
    before_model,
    median_run,
    ratios,
    recorded,
    startup_bound,
    summary_line,
)


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


def test_the_time_to_a_counterexample_leaves_out_the_trace_printed_after_it():
    # failing model: the verdict message came at 1.2 s and 0.4 s, the runs ended later
    before = dataclasses.replace(run(105, 3.0, search=0.6), verdict_s=1.2, cpu_s=1.6)
    after = dataclasses.replace(run(105, 2.0, search=0.2), verdict_s=0.4, cpu_s=0.8)
    r = ratios(before, after, False, 90.0, never)
    assert r["time_to_verdict_ratio"] == 3.0       # 1.2 / 0.4, not 3.0 / 2.0
    assert r["search_ratio"] == 3.0 and r["cpu_ratio"] == 2.0


def test_the_median_of_repeats_takes_median_times_and_keeps_the_count():
    runs = [dataclasses.replace(run(1325, w, search=w - 2), verdict_s=w - 0.1, cpu_s=c)
            for w, c in ((9.0, 1.5), (5.0, 1.2), (6.0, 1.4))]
    m = median_run(runs)
    assert m.distinct == 1325 and m.complete
    assert (m.wall_s, m.verdict_s, m.search_s, m.cpu_s) == (6.0, 5.9, 4.0, 1.4)
    assert m.rate == 1325 / 6.0                    # the rate over the median wall time


def test_a_finished_run_outranks_stopped_ones_in_the_median():
    stopped = run(500, 90.0, complete=False)
    done = run(2000, 80.0)
    assert median_run([stopped, done]).complete


def test_entries_of_either_record_version_read_in_one_set_of_names():
    coverage_version = {"before_rev": "e32fa3e", "after_over_before": 6.25, "view": True,
                        "time_to_verdict_ratio": 10.6, "time_to_verdict_at_least": False,
                        "coverage_over_before": 10.6, "search_ratio": 15.2, "before_complete": True}
    time_version = {"before_rev": "e32fa3e", "after_over_before": 1.4, "repeat": 3,
                    "time_metric": "time_to_counterexample", "time_before_over_after": 1.6,
                    "tlc_time_before_over_after": 1.9, "cpu_before_over_after": 1.6,
                    "before_tlc_verdict_s": 0.43, "before_complete": True}
    a = recorded("a", coverage_version, False, True)
    b = recorded("b", time_version, True, False)
    assert a["claim"] == "coverage_ratio" and a[a["claim"]] == 10.6 and a["cpu_ratio"] is None
    assert b["claim"] == "time_to_verdict_ratio" and b[b["claim"]] == 1.6
    assert (b["search_ratio"], b["cpu_ratio"], b["before_search_s"]) == (1.9, 1.6, 0.43)
    assert b["coverage_ratio"] == 1.4 and b["repeat"] == 3 and not b["time_to_verdict_at_least"]
    # a VIEW model recorded before coverage existed gets no coverage ratio
    assert recorded("c", {"after_over_before": 6.0}, False, True)["coverage_ratio"] is None


OLD_TLA = """---- MODULE MC_m ----
EXTENDS ResumeProtocol
MCTotal == <<5, 3>>
MCFaults == {}
====
"""
OLD_CFG = """CONSTANTS
  NReq = 2
  NBlocks = 3
  Variant = "corrected"
  Total <- MCTotal
SPECIFICATION Spec
PROPERTY EveryRequestEnds
"""


def current(total: str = "<<9, 7>>", nreq: int = 2, fork: str = "FALSE") -> tuple[str, str]:
    tla = f"---- MODULE MC_m ----\nEXTENDS ResumeCorrected\nMCTotal == {total}\nMCFaults == {{}}\n====\n"
    cfg = (f"CONSTANTS\n  NReq = {nreq}\n  NBlocks = 3\n  ForkSender = {fork}\n  Total <- MCTotal\n"
           "SPECIFICATION SpecProgress\nVIEW CorrectedView\n")
    return tla, cfg


def test_a_resized_model_runs_before_with_the_current_constants_and_the_old_checks():
    tla, cfg, changed = before_model(OLD_TLA, OLD_CFG, *current(nreq=3, total="<<9, 7, 1>>"))
    assert changed == ["NReq", "MCTotal"]
    assert "MCTotal == <<9, 7, 1>>" in tla and "EXTENDS ResumeProtocol" in tla
    assert "  NReq = 3" in cfg and '  Variant = "corrected"' in cfg      # the old spec's constant kept
    assert "SPECIFICATION Spec\n" in cfg and "PROPERTY EveryRequestEnds" in cfg
    assert "ForkSender" not in cfg and "VIEW" not in cfg


def test_an_unchanged_model_runs_before_as_it_was():
    tla, cfg, changed = before_model(OLD_TLA, OLD_CFG, *current(total="<<5, 3>>"))
    assert changed == [] and tla == OLD_TLA and cfg == OLD_CFG


def test_a_constant_the_old_spec_lacks_is_comparable_only_at_its_old_meaning():
    with pytest.raises(NotComparable, match="ForkSender"):
        before_model(OLD_TLA, OLD_CFG, *current(fork="TRUE"))


def test_a_comparison_is_start_up_bound_when_the_search_is_short():
    assert startup_bound(0.23, 0.71)                 # 105 states to a counterexample
    assert startup_bound(1.4, 2.3)                    # under 2 s of search
    assert startup_bound(2.5, 6.0)                    # more start-up (3.5 s) than search
    assert not startup_bound(8.0, 9.5)
    assert startup_bound(None, 9.5) is None           # a stopped after run: unknown


def test_the_summary_counts_models_at_x10_and_names_the_start_up_bound_ones():
    rows = [{"model": "a", "claim": "coverage_ratio", "coverage_ratio": 12.0, "startup_bound": False},
            {"model": "b", "claim": "coverage_ratio", "coverage_ratio": 4.1, "startup_bound": True},
            {"model": "c", "claim": "time_to_verdict_ratio", "time_to_verdict_ratio": None,
             "startup_bound": None}]
    line = summary_line(rows)
    assert "1 of 2 model(s)" in line and line.endswith("start-up bound: b")


def test_a_recorded_entry_without_the_flag_gets_it_from_its_times():
    t = {"after_over_before": 4.1, "after_search_s": 1.4, "after_verdict_s": 2.3}
    assert recorded("m", t, False, False)["startup_bound"] is True
    assert recorded("m", {"after_over_before": 20.0}, False, False)["startup_bound"] is None
