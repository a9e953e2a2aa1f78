"""The trace spec lands a request's writes to a rank in one step (WritesLand in
spec/TraceResumeProtocol.tla); the spec lands one write per step.  The
argument that no verdict changes is in the trace spec's comment; here TLC
checks traces both ways and the verdicts and properties must be equal: the
corpus traces whose verdicts hang on writes in flight (a read during a
write, a write into a freed block, a handoff of the wrong tokens, an abort
while the sender writes) and reference runs, with faults, whose rounds of
several blocks overlap.  The bench (`python -m bench tlc_trace --landing`) times both."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_tlc_trace import one_write_per_step_spec
from resumespec.conformance import tlc_trace
from resumespec.reference.scheduler import run
from resumespec.reference.world import Config

CORPUS = Path(__file__).resolve().parents[1] / "conformance" / "corpus"
TRACES = ["read_during_write.jsonl", "ref_sent_tokens_read_during_write.jsonl",
          "write_into_freed_block.jsonl", "handed_wrong_tokens.jsonl", "ref_once_abort.jsonl"]
RUNS = [("corrected", ("abort", "write_error")), ("once", ("abort",))]


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory):
    return one_write_per_step_spec(tmp_path_factory.mktemp("one-write-per-step") / "spec")


def _both(path: str, old_spec: Path, monkeypatch) -> tuple[tuple, tuple]:
    group = tlc_trace.check_tlc([path], timeout=300)
    with monkeypatch.context() as m:
        m.setattr(tlc_trace, "SPEC_DIR", old_spec)
        single = tlc_trace.check_tlc([path], timeout=300)
    return (group.verdict, group.prop), (single.verdict, single.prop)


@pytest.mark.parametrize("name", TRACES)
def test_corpus_verdicts_are_the_same_landing_a_group_at_a_time(name, one_by_one,
                                                                 monkeypatch):
    assert (CORPUS / name).is_file(), name
    group, single = _both(str(CORPUS / name), one_by_one, monkeypatch)
    assert group[0] != "error" and group == single, (group, single)


@pytest.mark.parametrize("variant,faults", RUNS)
def test_reference_runs_with_overlapping_rounds_agree(variant, faults, one_by_one,
                                                      monkeypatch, tmp_path):
    cfg = Config(variant=variant, tokens=[7, 6, 5], block_size=2, pool=8, sessions=1,
                 order="fifo", faults=faults, seed=5)
    result = run(cfg)
    path = tmp_path / "run.jsonl"
    result.world.trace.write_jsonl(str(path))
    text = path.read_text()
    assert text.count('"round_start"') >= 3
    group, single = _both(str(path), one_by_one, monkeypatch)
    assert group[0] != "error" and group == single, (group, single)
