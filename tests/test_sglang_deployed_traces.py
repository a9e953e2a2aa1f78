"""The committed traces of the fork run as deployed get their expected verdicts.

Each folder ``conformance/corpus/deployed/<commit>/<scenario>/`` holds one
trace per process of one deployed run (``encode.jsonl``,
``language-<r>.jsonl``), recorded from the real code of ZhengWG/sglang by
``scripts/record_deployed_fork.py`` (docs/deployed-fork.md), and the driver's
``result.json``.  The fork is not needed here.  The native checker merges the
per-process logs and must give the verdict in ``expected.json``; where
``tlc`` is given, TLC trace validation must give it too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumespec.conformance.checker_native import check_native
from resumespec.conformance.trace import read_trace
from resumespec.reference.protocol.designs import BY_COMMIT, design

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "conformance" / "corpus" / "deployed"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())["runs"]



# Patched builds (conformance/engine_patch/): folder label -> (commit, design)
PATCHED = {"cca20b094-corrected": ("cca20b094", "corrected")}


def design_of_label(label: str):
    """The design a run's folder claims: a historical commit's, or the
    corrected design of a patched build."""
    if label in PATCHED:
        return design(PATCHED[label][1])
    return BY_COMMIT[label]


def traces(name: str) -> list[str]:
    return sorted(str(p) for p in (CORPUS / name).glob("*.jsonl"))


def test_every_committed_run_has_an_expected_verdict_and_back():
    on_disk = {p.parent.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*/*.jsonl")}
    assert on_disk == set(EXPECTED)
    assert {k.split("/")[0] for k in EXPECTED} <= set(BY_COMMIT) | set(PATCHED)
    for label, (commit, variant) in PATCHED.items():
        for name, want in EXPECTED.items():
            if name.startswith(label + "/"):
                assert (want["commit"], want["design"]) == (commit, variant), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_run_verdict_native(name):
    want = EXPECTED[name]
    v = check_native(traces(name))
    assert (v.verdict, v.prop) == (want["verdict"], want["property"]), (
        f"{name}: expected {want['verdict']} {want['property']} ({want['reason']}); "
        f"checker says {v.verdict} {v.prop}: {v.message}")


# TLC reruns here on every violation of the verdict table, on every run of
# the patched engine but its write_error (about 3 minutes alone) and on
# mainline's kill: 29 runs, about 4.5 minutes on the 2-core machine.  The
# other runs with a ``tlc`` verdict (historical runs that conform, and that
# write_error) were checked with scripts/check_deployed_tlc.py, which
# rechecks them all (docs/deployed-fork.md).
TLC_SLOW = ("cca20b094-corrected/write_error",)


def _tlc_here(name: str, want: dict) -> bool:
    return (want["verdict"] == "violates" or name.startswith("cca20b094-corrected/")
            or name == "cca20b094/kill") and name not in TLC_SLOW


TLC_RUNS = sorted(n for n, w in EXPECTED.items() if "tlc" in w and _tlc_here(n, w))


def test_every_run_tlc_reruns_here_has_a_tlc_verdict():
    """Every run TLC can take has a recorded TLC verdict, so the rule above
    picks all the runs it names (steady and tp2 are beyond TLC)."""
    from resumespec.conformance.tlc_trace import NotForTlc, _load, steps_of
    for name, want in EXPECTED.items():
        if "tlc" in want:
            continue
        with pytest.raises(NotForTlc):
            steps_of(_load(traces(name)))


@pytest.mark.parametrize("name", TLC_RUNS)
def test_run_verdict_tlc(name):
    from resumespec.conformance.tlc_trace import check_tlc

    want = EXPECTED[name]["tlc"]
    v = check_tlc(traces(name), timeout=600)
    assert (v.verdict, v.prop) == (want["verdict"], want["property"]), v.message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_file_per_process_and_the_design_of_its_commit(name):
    commit, _scenario = name.split("/")
    result = json.loads((CORPUS / name / "result.json").read_text())
    ranks = result["ranks"]
    names = {Path(p).name for p in traces(name)}
    assert names == {"encode.jsonl"} | {f"language-{r}.jsonl" for r in range(1, ranks + 1)}
    d = design_of_label(commit)
    variant, order, barrier = d.variant, d.resume_order.value, d.barrier
    for path in traces(name):
        procs, configs = set(), []
        for _, ev in read_trace(path):
            procs.add(ev["proc"])
            if ev["event"] == "config":
                configs.append(ev)
        assert len(procs) == 1, f"{path}: one process per file, got {procs}"
        assert len(configs) == 1
        c = configs[0]
        assert (c["variant"], c["resume_order"], c["barrier"]) == (variant, order, barrier)
        assert c["nsess"] == ranks
        # the fork's own sender (ForkSender); a patched build runs the
        # corrected design's sender
        assert c["fork_sender"] is (variant != "corrected")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_what_the_driver_saw(name):
    """No process crashed; every request the run saw end ended once; what
    the traces say about handoffs matches the driver's record."""
    want = EXPECTED[name]
    result = json.loads((CORPUS / name / "result.json").read_text())
    assert result["crashes"] == []
    assert result["outcomes"] == want["outcomes"]
    handed_equal: dict[int, bool] = {}
    for path in traces(name):
        for _, ev in read_trace(path):
            if ev["event"] == "handoff" and ev["proc"] == "language/1":
                handed_equal[ev["req"]] = ev["x_source_equal"]
    prefilled = {int(r) for r, e in result["ends"].items() if e["how"] == "prefill"}
    assert prefilled <= set(handed_equal)
    assert sorted(r for r in prefilled if not handed_equal[r]) == result["not_source"]
    if want["verdict"] == "conforms":
        assert result["not_source"] == [] and not result.get("hung")


PATCHED_RUNS = sorted(n for n in EXPECTED if n.split("/")[0] in PATCHED)


def test_the_patched_engine_has_every_scenario():
    from resumespec.conformance.adapters.sglang_deployed import SCENARIOS
    for label in PATCHED:
        assert {n.split("/")[1] for n in PATCHED_RUNS if n.startswith(label + "/")} == \
            set(SCENARIOS)


@pytest.mark.parametrize("name", PATCHED_RUNS)
def test_patched_run_conforms_ends_and_hands_the_source(name):
    """The patched engine deployed: every run conforms, every request ends
    (prefill or a clean fail), and every handoff is the exact source; its
    traces carry the patched messages (statuses naming round, offset and
    total; resumes naming their round)."""
    want = EXPECTED[name]
    assert (want["verdict"], want["property"]) == ("conforms", None), want["reason"]
    result = json.loads((CORPUS / name / "result.json").read_text())
    assert not result.get("hung") and not result.get("timeout")
    assert result["not_source"] == []
    assert sum(result["outcomes"].values()) == result["requests"]
    statuses = resumes = 0
    for path in traces(name):
        for _, ev in read_trace(path):
            if ev["event"] in ("status_sent", "status_recv"):
                assert {"round", "sent_tokens", "total"} <= set(ev), ev
                statuses += 1
            elif ev["event"] in ("resume_sent", "resume_recv"):
                assert "round" in ev, ev
                resumes += 1
    assert statuses > 0
    if want["scenario"] == "rounds":
        assert resumes > 0
