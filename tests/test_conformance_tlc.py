"""Differential tests: the native checker and TLC trace validation give the same verdict.

On every trace of the golden corpus (hand-made, reference implementation,
engine fork; one and two sessions), on valid generated runs, and on
mutations of them.  TLC takes a few seconds per trace, so the corpus is
checked two traces at a time.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from test_conformance import MUTATIONS, mutate

from resumespec import exitcodes
from resumespec.cli import main as cli_main
from resumespec.conformance import synth
from resumespec.conformance.checker_native import check_native
from resumespec.conformance.tlc_trace import MAX_SESSIONS, _load, check_tlc, render, steps_of
from resumespec.conformance.trace import read_trace
from resumespec.reference.scheduler import run
from resumespec.reference.world import Config

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "conformance" / "corpus"

# deployed/: one file per process of a run, checked together by
# tests/test_sglang_deployed_traces.py, not one by one
ALL_CORPUS = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.jsonl")
                    if "deployed" not in p.relative_to(CORPUS).parts)


@pytest.fixture(scope="module")
def corpus_verdicts():
    """Both checkers on every corpus trace (TLC runs two at a time: one JVM per core)."""
    def both(name):
        path = str(CORPUS / name)
        return name, check_native([path]), check_tlc([path], timeout=300)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {name: (native, tlc) for name, native, tlc in pool.map(both, ALL_CORPUS)}


def test_corpus_holds_one_and_two_session_traces():
    wide = [n for n in ALL_CORPUS if b'"language/2"' in (CORPUS / n).read_bytes()]
    assert len(ALL_CORPUS) >= 100 and len(wide) >= 12


@pytest.mark.parametrize("name", ALL_CORPUS)
def test_native_and_tlc_agree_on_corpus(corpus_verdicts, name):
    native, tlc = corpus_verdicts[name]
    assert tlc.verdict == native.verdict, (tlc.message, native.message)
    # A violation TLC can reach names the same property; a trace the spec
    # cannot produce at all (e.g. an allocator handing out a held block) is
    # "no behaviour" (SpecStep) to TLC and the broken property to the native checker.
    if native.verdict == "violates" and tlc.prop != "SpecStep":
        assert tlc.prop == native.prop


def _mutants():
    for nsess in (1, 2):
        base = list(synth.generate(2, nsess=nsess, seed=4, block_size=2, nblocks=8,
                                   max_total=5))
        yield f"valid_{nsess}", base
        # the first resume_recv carries another offset than the resume sent
        k = next(i for i, e in enumerate(base) if e["event"] == "resume_recv")
        altered = [dict(e) for e in base]
        altered[k]["sent_tokens"] += 1
        yield f"altered_resume_{nsess}", altered
        # the last event (a free after prefill) is lost
        yield f"dropped_last_free_{nsess}", base[:-1]


@pytest.mark.parametrize("label, events", list(_mutants()), ids=lambda x: x if
                         isinstance(x, str) else "")
def test_native_and_tlc_agree_on_synthetic_and_mutated(tmp_path, label, events):
    path = tmp_path / f"{label}.jsonl"
    synth.write(path, synth.renumber(events))
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=120)
    assert native.verdict == tlc.verdict, (label, native.message, tlc.message)
    assert native.verdict == {"valid": "conforms", "altered_resume": "violates",
                              "dropped_last_free": "incomplete"}[label[:-2]]


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(variant=hs.sampled_from(["flag", "indices", "sent_tokens", "cached_sent", "once",
                                "corrected"]),
       tokens=hs.lists(hs.integers(1, 5), min_size=1, max_size=2),
       pool=hs.integers(2, 4), sessions=hs.integers(1, 2),
       faults=hs.sets(hs.sampled_from(["write_error", "heartbeat"])),
       seed=hs.integers(0, 2**16))
def test_native_and_tlc_agree_on_reference_runs(tmp_path_factory, variant, tokens, pool,
                                                sessions, faults, seed):
    """Valid behaviours of every design (bugs included: a design's corruption is
    still a behaviour of that design), one and two sessions."""
    cfg = Config(variant=variant, tokens=tokens, block_size=2, pool=pool, sessions=sessions,
                 order="fifo", faults=tuple(sorted(faults)), seed=seed)
    path = tmp_path_factory.mktemp("ref") / "t.jsonl"
    run(cfg, strict=False).world.trace.write_jsonl(str(path))
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=300)
    assert native.verdict == tlc.verdict, (cfg, native.message, tlc.message)


def test_generated_module_extends_the_spec_and_numbers_blocks_from_one():
    model = steps_of(_load([str(CORPUS / "valid_two_rounds.jsonl")]))
    module, cfg = render(model)
    assert "EXTENDS TraceResumeProtocol" in module and "TraceData ==" in module
    assert "Trace <- TraceData" in cfg and "AllocChoices <- TraceAllocChoices" in cfg
    assert '[a |-> "ReceiverInit", r |-> 1, s |-> 0' in module
    assert "p |-> <<[known |-> TRUE, blocks |-> <<1>>, sent |-> 2, tokens |-> 2" in module
    assert "INVARIANTS\n  SafetyWatch" in cfg and "CONSTRAINT NoViolationYet" in cfg
    assert model.constants["BlockSize"] == 2 and model.constants["Total"] == [3]


def test_lockstep_steps_take_every_ranks_part():
    """Each rank logs its own part of a receiver step; one spec step holds them all."""
    model = steps_of(_load([str(CORPUS / "valid_two_sessions.jsonl")]))
    assert model.constants["NSess"] == 2
    actions = [st.action for st in model.steps]
    assert actions.count("ReceiverInit") == 1 and actions.count("PollSuccess") == 1
    assert actions.count("PrefillDone") == 1 and actions.count("SenderStartRound") == 1
    assert actions.count("DeliverStatus") == 2          # one per session
    success = next(st for st in model.steps if st.action == "PollSuccess")
    assert sorted(success.parts) == [1, 2]
    assert all(p.tokens == 2 and p.known for p in success.parts.values())
    done = next(st for st in model.steps if st.action == "PrefillDone")
    assert [done.parts[s].freed for s in (1, 2)] == [[1], [1]]


def _reorder_second_rank_late(events):
    """Rank 2's status_recv logged after rank 1's poll: the merged order of
    two logs may say so although the all-reduce put it before."""
    ev = [dict(e) for e in events]
    k = next(i for i, e in enumerate(ev) if e["event"] == "status_recv"
             and e["session"] == 2 and e["status"] == "Success")
    moved = ev.pop(k)
    j = next(i for i, e in enumerate(ev) if e["event"] == "poll" and e["proc"] == "language/2"
             and e["status"] == "Success")
    ev.insert(j, moved)
    return ev


def test_status_logged_late_by_one_rank_still_conforms(tmp_path):
    events = [e for _, e in read_trace(CORPUS / "valid_two_sessions.jsonl")]
    path = tmp_path / "late.jsonl"
    synth.write(path, synth.renumber(_reorder_second_rank_late(events)))
    assert check_native([str(path)]).verdict == "conforms"
    assert check_tlc([str(path)], timeout=120).verdict == "conforms"


def test_tlc_refuses_too_many_sessions_clearly(tmp_path):
    path = tmp_path / "wide.jsonl"
    synth.write(path, synth.generate(1, nsess=MAX_SESSIONS + 1, seed=1, block_size=2,
                                     nblocks=8, max_total=4))
    v = check_tlc([str(path)])
    assert v.verdict == "error" and v.exit_code == exitcodes.BAD_INPUT
    assert f"up to {MAX_SESSIONS} sessions" in v.message


def test_cli_checker_both(capsys):
    code = cli_main(["conform", "--quiet", "--checker", "both", "--json",
                     str(CORPUS / "valid_write_error.jsonl")])
    doc = json.loads(capsys.readouterr().out)
    assert code == exitcodes.OK
    assert doc["traces"][0]["verdict"] == "conforms"
    assert doc["traces"][0]["tlc"]["verdict"] == "conforms"


def test_cli_tlc_shows_progress_unless_quiet(capsys, monkeypatch):
    """A TLC trace check of minutes prints TLC's reports (once a minute) on
    stderr, naming the pass and the log's length; --quiet prints none.  The
    quiet period that keeps short checks silent is set to 0 here so that
    TLC's first report, a few seconds in, is shown."""
    from resumespec.spec import tlc as tlc_runner
    monkeypatch.setattr(tlc_runner.ProgressDisplay, "quiet_period", 0.0)
    trace = str(CORPUS / "valid_write_error.jsonl")
    steps = len(steps_of(_load([trace])).steps)
    assert cli_main(["conform", "--checker", "tlc", trace]) == exitcodes.OK
    err = capsys.readouterr().err
    assert "valid_write_error.jsonl: TLC pass 1 of 2" in err
    assert f"the log is {steps} spec steps" in err
    assert "distinct states" in err and "depth" in err
    assert "TLC pass 2 of 2 (the end of the log" in err
    assert cli_main(["conform", "--quiet", "--checker", "tlc", trace]) == exitcodes.OK
    assert "TLC pass" not in capsys.readouterr().err

@settings(max_examples=10, deadline=None, derandomize=True)
@given(base=hs.sampled_from(["ref_once", "ref_corrected", "ref_cached_sent",
                             "valid_two_sessions", "ref_once_no_barrier",
                             "sglang/cca20b094/tp2_two_rounds",
                             "sglang/2141e0842/tp2_resume_race"]),
       kind=hs.sampled_from(MUTATIONS), i=hs.integers(0, 10_000), pick=hs.integers(0, 100))
def test_native_and_tlc_agree_on_mutated_reference_traces(tmp_path_factory, base, kind, i,
                                                          pick):
    events = [e for _, e in read_trace(CORPUS / f"{base}.jsonl")]
    path = tmp_path_factory.mktemp("mut") / "t.jsonl"
    synth.write(path, mutate(events, kind, i, pick))
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=120)
    assert native.verdict == tlc.verdict, (base, kind, i, pick, native.message, tlc.message)


def test_a_violation_before_a_malformed_line_stands_for_both(tmp_path):
    """The streaming checker stops at the violation; TLC judges the well-formed
    prefix the same way instead of calling the whole file malformed."""
    text = (CORPUS / "write_into_freed_block.jsonl").read_text()
    path = tmp_path / "then_garbage.jsonl"
    path.write_text(text + '{"v": 1, "proc": "encode", "seq": \n')
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=120)
    assert native.verdict == tlc.verdict == "violates"
    assert tlc.prop == native.prop == "WritesOnlyIntoOwnedBlocks"
    clean = tmp_path / "garbage_only.jsonl"
    clean.write_text((CORPUS / "valid_one_round.jsonl").read_text() + "not json\n")
    assert check_native([str(clean)]).verdict == check_tlc([str(clean)]).verdict == "malformed"


def test_abort_taken_once_unlogged_writes_landed_conforms(tmp_path):
    """The sender takes an abort only when none of the room's writes is in
    flight; writes land unobserved, so an abort_recv after a round_start with
    no round_end is a behaviour (the writes landed first).  Found by running
    both checkers on a reference run with faults."""
    cfg = Config(variant="corrected", tokens=[5, 3], block_size=2, pool=4, sessions=2,
                 order="fifo", faults=("abort", "heartbeat", "write_error"), seed=1)
    path = tmp_path / "abort.jsonl"
    result = run(cfg)
    assert result.ok, result.where
    result.world.trace.write_jsonl(str(path))
    events = [e for _, e in read_trace(path)]
    k = next(i for i, e in enumerate(events) if e["event"] == "abort_recv")
    started = {e["req"] for e in events[:k] if e["event"] == "round_start"}
    ended = {e["req"] for e in events[:k] if e["event"] == "round_end"}
    assert events[k]["req"] in started - ended      # the case this test is about
    assert check_native([str(path)]).verdict == "conforms"
    assert check_tlc([str(path)], timeout=120).verdict == "conforms"


def _both(tmp_path, name, events):
    path = tmp_path / f"{name}.jsonl"
    synth.write(path, synth.renumber(events))
    return check_native([str(path)]).verdict, check_tlc([str(path)], timeout=120).verdict


def test_lagging_rank_read_and_repeated_heartbeat_agree(tmp_path):
    """Two-session logs where a rank's events trail another rank's part of the
    same lockstep step (found by mutating reference runs)."""
    cfg = Config(variant="flag", tokens=[5, 3], block_size=2, pool=4, sessions=2,
                 order="fifo", faults=("abort", "heartbeat", "write_error"), seed=2)
    path = tmp_path / "base.jsonl"
    run(cfg, strict=False).world.trace.write_jsonl(str(path))
    base = [e for _, e in read_trace(path)]
    # rank 2 logs its read before its poll that resumes, after rank 1's part
    k = next(i for i, e in enumerate(base) if e["event"] == "poll"
             and e["proc"] == "language/2" and e["decision"] == "resume")
    assert base[k + 1]["event"] == "buffer_read"
    early_read = base[:k] + [base[k + 1], base[k]] + base[k + 2:]
    assert _both(tmp_path, "early_read", early_read) == ("conforms", "conforms")
    # a rank logs the heartbeat loss of a request twice (in the first seeded
    # run from 3 on that loses the heartbeat at all)
    for seed in range(3, 30):
        cfg = Config(variant="flag", tokens=[5, 3], block_size=2, pool=4, sessions=2,
                     order="fifo", faults=("abort", "heartbeat", "write_error"), seed=seed)
        run(cfg, strict=False).world.trace.write_jsonl(str(path))
        base = [e for _, e in read_trace(path)]
        lost = [i for i, e in enumerate(base) if e["event"] == "heartbeat_fail"]
        if lost:
            break
    assert lost, "no seeded run lost the heartbeat"
    h = lost[0]
    twice = base[:h] + [dict(base[h])] + base[h:]
    assert _both(tmp_path, "twice", twice) == ("conforms", "conforms")


def test_round_starts_that_disagree_on_the_total_agree(tmp_path):
    events = [dict(e) for _, e in read_trace(CORPUS / "valid_two_sessions.jsonl")]
    k = next(i for i, e in enumerate(events) if e["event"] == "round_start"
             and e["session"] == 2)
    events[k]["total"] += 1
    assert _both(tmp_path, "total", events) == ("violates", "violates")


def test_two_write_errors_in_one_log_conform_for_both(tmp_path):
    """A model takes each fault once; a real engine's log may fail two
    rooms' writes (the patched engine's deployed write_error run does).
    TLC trace validation lets a log repeat a write error (the trace spec's
    TraceRepeatableFaults), as the native checker does."""
    lines = (CORPUS / "valid_write_error.jsonl").read_text().splitlines()
    seq = {}
    for line in lines:
        ev = json.loads(line)
        seq[ev["proc"]] = ev["seq"]
    second = []
    for line in lines[2:]:
        ev = json.loads(line)
        ev["req"] = 2
        seq[ev["proc"]] += 1
        ev["seq"] = seq[ev["proc"]]
        for key in ("blocks", "dst_blocks"):
            if key in ev:
                ev[key] = [1]
        second.append(json.dumps(ev))
    path = tmp_path / "two_write_errors.jsonl"
    path.write_text("\n".join(lines + second) + "\n")
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=120)
    assert native.verdict == tlc.verdict == "conforms", (native.message, tlc.message)
    assert sum(1 for line in second if '"write_error"' in line) == 1
