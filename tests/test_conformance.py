"""The native checker, the golden corpus, the merge of per-process logs and the CLI."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from resumespec import exitcodes
from resumespec.cli import main as cli_main
from resumespec.conformance import mutate as mutations
from resumespec.conformance import properties, synth
from resumespec.conformance.checker_native import (
    SPEC_ACTIONS,
    NativeChecker,
    check_native,
)
from resumespec.conformance.trace import MalformedTrace

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "conformance" / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


def write_events(path: Path, events) -> Path:
    synth.write(path, events)
    return path


def verdict_of(events, bound=None):
    c = NativeChecker(bound=bound)
    for i, e in enumerate(events, 1):
        if c.feed(i, e) is not None:
            break
    return c.finish()


# ---------------------------------------------------------------------------
# Golden corpus
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_trace_gives_expected_verdict(name):
    exp = EXPECTED[name]
    v = check_native([str(CORPUS / name)], bound=exp["args"].get("bound"))
    assert v.verdict == exp["verdict"], (v.message, v.story)
    if exp["verdict"] in ("violates", "incomplete"):
        assert v.prop == exp["property"], v.message


def test_corpus_covers_every_safety_property_and_verdict():
    props = {e["property"] for e in EXPECTED.values() if e["verdict"] == "violates"}
    assert set(properties.SAFETY_PROPERTIES) <= props
    assert "SpecStep" in props
    verdicts = {e["verdict"] for e in EXPECTED.values()}
    assert verdicts == {"conforms", "violates", "incomplete", "malformed"}


def test_corpus_files_are_what_the_builder_writes(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("corpus_build", CORPUS / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(tmp_path)
    for name in mod.CORPUS:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (CORPUS / f"{name}.jsonl").read_bytes()


# ---------------------------------------------------------------------------
# Names: one function per property, coverage actions exist in the spec
# ---------------------------------------------------------------------------
def test_one_check_function_per_property():
    for prop in properties.SAFETY_PROPERTIES:
        found = [n for n in dir(properties) if n == f"check_{prop}" or
                 n.startswith(f"check_{prop}_")]
        assert found, prop


def test_coverage_actions_are_spec_operators():
    tla = "\n".join((ROOT / "spec" / f"{m}.tla").read_text()
                    for m in ("ResumeBase", "ResumeHistorical", "ResumeCorrected"))
    for action in SPEC_ACTIONS:
        assert re.search(rf"^{action}\b.*==", tla, re.M), action


# ---------------------------------------------------------------------------
# Valid synthetic runs conform, merged or split per process
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("nsess", [1, 2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_synthetic_runs_conform(nsess, seed):
    events = list(synth.generate(8, nsess=nsess, seed=seed, ids=True))
    v = verdict_of(events, bound=500)
    assert v.verdict == "conforms", (v.message, v.story)
    assert v.coverage["SenderRecvResume"] > 0


def test_per_process_logs_are_merged_causally(tmp_path):
    events = list(synth.generate(10, nsess=2, seed=3))
    files = []
    # write the per-process logs in an order where the language ranks come
    # first: the merge must still deliver every send before its receive
    for proc, evs in sorted(synth.split_by_process(events).items(), reverse=True):
        files.append(str(write_events(tmp_path / (proc.replace("/", "-") + ".jsonl"), evs)))
    v = check_native(files)
    assert v.verdict == "conforms", v.message
    assert v.events == len(events)


def test_per_process_logs_with_a_receive_never_sent(tmp_path):
    events = list(synth.generate(3, nsess=1, seed=1))
    logs = synth.split_by_process(events)
    enc = [e for e in logs["encode"]]
    # drop every status_sent: the language side receives statuses nobody sent
    enc = synth.renumber([e for e in enc if e["event"] != "status_sent"])
    f1 = write_events(tmp_path / "encode.jsonl", enc)
    f2 = write_events(tmp_path / "language-1.jsonl", logs["language/1"])
    v = check_native([str(f1), str(f2)])
    assert v.verdict == "violates" and v.prop == "SpecStep"
    # both logs are stuck on a receive; the merge reports the first file's
    assert "resume_recv only after resume_sent" in v.expected
    v = check_native([str(f2), str(f1)])
    assert "status_recv only after the matching status_sent" in v.expected


def test_state_stays_bounded_on_long_runs():
    sizes = []
    for nreq in (200, 2000):
        c = NativeChecker()
        peak = 0
        for i, e in enumerate(synth.generate(nreq, nsess=2, seed=5, concurrent=4), 1):
            assert c.feed(i, e) is None
            if i % 97 == 0:
                st = c.state
                live = (len(st.owner) + len(st.inflight) + len(st.rx_phase) +
                        len(st.tx_session) + len(st.ctl) + len(st.st) + len(st.rx_blocks) +
                        len(st.tx_phase))
                peak = max(peak, live)
        assert c.finish().verdict == "conforms"
        sizes.append(peak)
    # ten times the trace, not ten times the state (only the finished-id set grows)
    assert sizes[1] <= sizes[0] * 1.5 + 20, sizes


# ---------------------------------------------------------------------------
# Mutations (hypothesis): never a crash, and the verdict can be explained
# ---------------------------------------------------------------------------
MUTATIONS = ("drop", "duplicate", "swap", "alter")


def mutate(events, kind, i, field_pick):
    """One blind mutation from the campaign's generator (conformance/mutate.py),
    drawn from (i, field_pick); the trace unchanged where the event has no field
    to alter; sequence numbers made consistent again."""
    out = mutations.blind(events, kind, random.Random(i * 1009 + field_pick))
    return synth.renumber(out if out is not None else list(events))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=hs.integers(0, 10_000), nsess=hs.integers(1, 2), kind=hs.sampled_from(MUTATIONS),
       i=hs.integers(0, 10_000), pick=hs.integers(0, 100))
def test_mutated_traces_never_crash(seed, nsess, kind, i, pick):
    events = list(synth.generate(3, nsess=nsess, seed=seed, ids=True, config=False))
    bad = mutate(events, kind, i, pick)
    v = verdict_of(bad)
    assert v.verdict in ("conforms", "violates", "incomplete")
    if v.verdict == "violates":
        assert v.message and v.expected and v.story
        assert v.prop in properties.SAFETY_PROPERTIES + ("SpecStep",)


def _verdict_fed(events, cuts, bound=None):
    """The verdict when ``events`` come in batches cut at ``cuts`` (feed_batch),
    checking on the way that the held-blocks index matches the block owners."""
    c = NativeChecker(bound=bound)
    start = 0
    try:
        for end in sorted(set(cuts)) + [len(events)]:
            if end <= start:
                continue
            if c.feed_batch(start, events[start:end], "t.jsonl") is not None:
                break
            held: dict = {}
            for (rank, block), req in c.state.owner.items():
                held.setdefault((rank, req), set()).add(block)
            assert c.state.held == held
            start = end
    except MalformedTrace as e:
        return {"malformed": str(e), "count": c.count}
    return dict(c.finish().to_json(), seconds=None)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=hs.integers(0, 10_000), nsess=hs.integers(1, 2), kind=hs.sampled_from(MUTATIONS),
       i=hs.integers(0, 10_000), pick=hs.integers(0, 100), renumber=hs.booleans(),
       cuts=hs.lists(hs.integers(0, 200), max_size=6), bound=hs.sampled_from([None, 3]))
def test_batches_give_the_verdict_of_single_events(seed, nsess, kind, i, pick, renumber, cuts,
                                                   bound):
    events = list(synth.generate(3, nsess=nsess, seed=seed, ids=True))
    bad = mutate(events, kind, i, pick) if renumber else events[:i % len(events)] + \
        events[i % len(events) + 1:]          # a dropped event without renumbering: bad seq
    one_by_one = _verdict_fed(bad, range(len(bad)), bound)
    assert _verdict_fed(bad, cuts, bound) == one_by_one
    if "malformed" not in one_by_one and one_by_one["verdict"] == "violates":
        assert one_by_one["file"] == "t.jsonl" and one_by_one["line"] >= 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=hs.integers(0, 10_000), i=hs.integers(0, 10_000), pick=hs.integers(0, 100),
       kind=hs.sampled_from(MUTATIONS), recent=hs.sampled_from([1, 5, 40, 4096]))
def test_story_from_a_file_equals_the_story_of_single_events(tmp_path_factory, seed, i, pick,
                                                             kind, recent):
    # check_native keeps each batch's text and decodes it again for the story;
    # feed keeps the events; both tell the same last events of the request
    import resumespec.conformance.checker_native as native
    events = mutate(list(synth.generate(12, nsess=2, seed=seed)), kind, i, pick)
    path = write_events(tmp_path_factory.mktemp("story") / "t.jsonl", events)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(native, "RECENT", recent)
        from_file = check_native([str(path)]).to_json()
        one_by_one = _verdict_fed(events, range(len(events)))
    from_file.pop("seconds")
    one_by_one.pop("seconds")
    if "file" in from_file:
        one_by_one["file"] = from_file["file"]
    assert from_file == one_by_one
    if from_file["verdict"] == "violates":      # the story ends with the violating event
        assert from_file["story"][-1].startswith(f"line {from_file['line']} (")
        if recent == 1:
            assert len(from_file["story"]) <= 2  # that event, maybe the marker


@settings(max_examples=60, deadline=None)
@given(seed=hs.integers(0, 10_000), i=hs.integers(0, 10_000))
def test_duplicated_message_or_allocation_is_caught(seed, i):
    events = list(synth.generate(3, nsess=1, seed=seed, config=False))
    picks = [k for k, e in enumerate(events)
             if e["event"] in ("alloc", "init_sent", "status_sent", "round_start",
                               "resume_sent") and e.get("blocks", 1) is not None]
    k = picks[i % len(picks)]
    bad = synth.renumber(events[:k + 1] + [dict(events[k])] + events[k + 1:])
    assert verdict_of(bad).verdict in ("violates", "incomplete")


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def run_cli(capsys, *argv):
    code = cli_main(["conform", "--quiet", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name, code", [
    ("valid_two_rounds.jsonl", exitcodes.OK),
    ("no_shared_block.jsonl", exitcodes.VIOLATES),
    ("ends_mid_transfer.jsonl", exitcodes.INCOMPLETE),
    ("malformed_garbage.jsonl", exitcodes.MALFORMED),
    ("malformed_empty.jsonl", exitcodes.MALFORMED),
])
def test_cli_exit_code_per_verdict(capsys, name, code):
    got, out, err = run_cli(capsys, CORPUS / name)
    assert got == code
    assert "Traceback" not in out + err


def test_cli_text_report_tells_the_story(capsys):
    code, out, _ = run_cli(capsys, CORPUS / "read_during_write.jsonl")
    assert code == exitcodes.VIOLATES
    assert "VIOLATES NoReadDuringWrite" in out
    assert "read_during_write.jsonl:18" in out
    assert "how it got there:" in out and "started a round of req 1" in out
    assert "the spec allows:" in out


def test_cli_json_and_junit(capsys, tmp_path):
    junit = tmp_path / "r.xml"
    code, out, _ = run_cli(capsys, CORPUS / "valid_two_rounds.jsonl",
                           CORPUS / "no_double_free.jsonl", CORPUS / "malformed_truncated.jsonl",
                           "--json", "--coverage", "--junit-xml", junit)
    assert code == exitcodes.MALFORMED       # the worst verdict wins
    doc = json.loads(out)
    verdicts = [t["verdict"] for t in doc["traces"]]
    assert verdicts == ["conforms", "violates", "malformed"]
    assert doc["traces"][1]["property"] == "NoDoubleFree"
    nlines = (CORPUS / "malformed_truncated.jsonl").read_bytes().count(b"\n") + 1
    assert doc["traces"][2]["line"] == nlines
    assert "WriteError" in doc["coverage"]["never"]
    assert "ReceiverInit" not in doc["coverage"]["never"]
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "1"
    cases = suite.findall("testcase")
    assert cases[0].find("failure") is None
    assert "NoDoubleFree" in cases[1].find("failure").get("message")


def test_cli_directory_of_per_process_logs(capsys, tmp_path):
    events = list(synth.generate(4, nsess=2, seed=9))
    d = tmp_path / "run"
    d.mkdir()
    for proc, evs in synth.split_by_process(events).items():
        write_events(d / (proc.replace("/", "-") + ".jsonl"), evs)
    code, out, _ = run_cli(capsys, d)
    assert code == exitcodes.OK, out
    files = sorted(str(p) for p in d.iterdir())
    code, out, _ = run_cli(capsys, "--merge", *files)
    assert code == exitcodes.OK, out


def test_cli_bound_turns_a_slow_answer_into_incomplete(capsys):
    path = CORPUS / "unanswered_partial_round_bound.jsonl"
    assert run_cli(capsys, path)[0] == exitcodes.INCOMPLETE   # the request never ends
    code, out, _ = run_cli(capsys, path, "--bound", 4, "--json")
    assert code == exitcodes.INCOMPLETE
    assert json.loads(out)["traces"][0]["property"] == "NoWaitForUnrequestedRound"
    code, out, _ = run_cli(capsys, CORPUS / "valid_two_rounds.jsonl", "--bound", 3)
    assert code == exitcodes.INCOMPLETE
    code, out, _ = run_cli(capsys, CORPUS / "valid_two_rounds.jsonl", "--bound", 8)
    assert code == exitcodes.OK


def test_cli_missing_file_is_bad_input(capsys, tmp_path):
    code, out, err = run_cli(capsys, tmp_path / "nope.jsonl")
    assert code == exitcodes.BAD_INPUT
    assert "nope.jsonl: no such file" in err and "Traceback" not in err


def test_malformed_error_names_line_and_field(tmp_path):
    p = tmp_path / "t.jsonl"
    events = list(synth.generate(1, seed=1))
    lines = [json.dumps(e) for e in events]
    e = dict(events[3])
    e["seq"] = "three"
    lines[3] = json.dumps(e)
    p.write_text("\n".join(lines) + "\n")
    v = check_native([str(p)])
    assert v.verdict == "malformed" and v.line == 4
    assert "field 'seq'" in v.message and "integer" in v.message


def test_seq_gap_is_malformed(tmp_path):
    events = list(synth.generate(1, seed=1, config=False))
    lang = [k for k, e in enumerate(events) if e["proc"] == "language/1"]
    del events[lang[-2]]
    with pytest.raises(MalformedTrace, match="an event is missing"):
        verdict_of(events)
