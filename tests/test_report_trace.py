"""Reports of engine traces: every corpus trace (hand-written and recorded
from the engine fork) gets a story whose highlighted step is the event the
conformance checker names; pools, arrows, the CLI. No TLC."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resumespec.conformance.checker_native import check_native, describe
from resumespec.report.html import render_html
from resumespec.report.itf import timeline_to_itf, value_from_itf
from resumespec.report.timeline import render_story
from resumespec.report.trace_story import timeline_from_trace

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "conformance" / "corpus"
TRACES = sorted(CORPUS.glob("*.jsonl")) + sorted(CORPUS.glob("sglang/*/*.jsonl"))


def report(files):
    files = [str(f) for f in files]
    v = check_native(files)
    return v, timeline_from_trace(files, v)


def test_corpus_is_there():
    assert len(TRACES) > 40


@pytest.mark.parametrize("path", TRACES, ids=[str(p.relative_to(CORPUS)) for p in TRACES])
def test_highlight_is_the_event_the_checker_names(path):
    v, t = report([path])
    f = t.finding
    assert f.verdict == v.verdict
    if v.verdict == "violates":
        assert f.prop == v.prop and f.step is not None
        step = t.steps[f.step]
        assert step.line == v.line and step.event == v.event
        assert step.tone == "bad"
        assert all(s.tone == "after" for s in t.steps[f.step + 1:])
    elif v.verdict == "incomplete":
        req = v.state.get("req")
        step = t.steps[f.step]
        assert req is None or step.event.get("req") == req
        assert all(s.event.get("req") != req for s in t.steps[f.step + 1:]) if req is not None else True
    elif v.verdict == "conforms":
        assert f.step is None and f.prop is None
    else:   # malformed: the offending line is highlighted when it is an event that was read
        assert "malformed" in " ".join(f.why)
        assert f.step is None or t.steps[f.step].line == v.line
    page = render_html(t)
    hl = f'class="step highlight" id="step-{f.step}"' if f.step is not None else None
    assert (hl in page) if hl else ('class="step highlight' not in page)
    text = render_story(t)
    assert text.startswith(str(path))


def test_violation_story_reads_like_the_protocol():
    v, t = report([CORPUS / "sglang" / "caff70bd5" / "tp2_resume_race.jsonl"])
    text = render_story(t)
    assert "WritesOnlyIntoOwnedBlocks fails" in text
    # Each event is told in the checker's own words (checker_native.describe), the
    # words its verdicts use, not in a second set of sentences.
    ev = t.steps[t.finding.step].event
    assert f"{t.finding.step}. {describe(ev)[:1].upper()}{describe(ev)[1:]}." in text
    assert f"{t.finding.step}. The sender started a round of req 1 for session 2: tokens 4..8" in text
    assert "(the checker stopped at this event" in text
    # The round's write arrow into rank 2's pool is marked bad: block 0 was freed there.
    bad = [a for a in t.arrows if a.kind == "write" and a.bad]
    assert bad and bad[0].dst == "pool2" and bad[0].start == t.finding.step
    # Messages are matched send -> receive.
    inits = [a for a in t.arrows if a.kind == "ctl" and a.label.startswith("init")]
    assert len(inits) == 2 and all(a.end is not None and a.end > a.start for a in inits)


def test_double_free_shows_in_the_pool():
    v, t = report([CORPUS / "no_double_free.jsonl"])
    assert v.prop == "NoDoubleFree"
    cells = [c for cells in t.steps[t.finding.step].pools.values() for c in cells]
    assert any(c.on_free_list == 2 and c.anomaly for c in cells)


def test_per_process_logs_get_the_same_story(tmp_path):
    merged = CORPUS / "sglang" / "caff70bd5" / "tp2_resume_race.jsonl"
    by_proc: dict[str, list[str]] = {}
    for line in merged.read_text().splitlines():
        by_proc.setdefault(json.loads(line)["proc"], []).append(line)
    files = []
    for proc, lines in by_proc.items():
        f = tmp_path / (proc.replace("/", "_") + ".jsonl")
        f.write_text("\n".join(lines) + "\n")
        files.append(f)
    v1, t1 = report([merged])
    v2, t2 = report(files)
    assert (v2.verdict, v2.prop) == (v1.verdict, v1.prop)
    assert t2.steps[t2.finding.step].event == t1.steps[t1.finding.step].event


def test_long_traces_are_cut_around_the_highlight():
    path = CORPUS / "sglang" / "caff70bd5" / "tp2_resume_race.jsonl"
    v = check_native([str(path)])
    t = timeline_from_trace([str(path)], v, max_steps=12)
    assert len(t.steps) == 13 and t.notes and "of 67" in t.notes[0]
    assert t.finding.step is not None and t.steps[t.finding.step].line == v.line


def test_itf_of_a_trace():
    v, t = report([CORPUS / "write_into_freed_block.jsonl"])
    doc = json.loads(json.dumps(timeline_to_itf(t, source="x")))
    assert doc["#meta"]["verdict"] == "violates" and doc["#meta"]["property"] == "WritesOnlyIntoOwnedBlocks"
    assert doc["vars"] == ["event", "pools"] and len(doc["states"]) == len(t.steps)
    ev = value_from_itf(doc["states"][t.finding.step]["event"])
    # the violation is the abort's free (the abort alone is the first half of
    # the spec's Abort step: a log cut there is incomplete, tests/test_adversarial.py)
    assert ev["event"] == "free" and ev["req"] == 1
    pools = value_from_itf(doc["states"][t.finding.step]["pools"])
    block0 = pools[1][0]
    assert block0["writing"] is True


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "resumespec", "report", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_trace(tmp_path):
    out, itf = tmp_path / "t.html", tmp_path / "t.itf.json"
    p = _cli("trace", str(CORPUS / "ends_mid_transfer.jsonl"), "-o", str(out), "--itf", str(itf))
    assert p.returncode == 0, p.stderr
    assert "EveryRequestEnds is not met by the end of the trace" in p.stdout
    assert out.read_text().count('class="step highlight"') == 1
    assert json.loads(itf.read_text())["#meta"]["verdict"] == "incomplete"
    p = _cli("trace", str(CORPUS / "valid_two_rounds.jsonl"), "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["finding"]["verdict"] == "conforms"
    p = _cli("trace", str(tmp_path / "nope.jsonl"))
    assert p.returncode == 9 and "no such file" in p.stderr and "Traceback" not in p.stderr
    p = _cli("trace", str(CORPUS / "malformed_garbage.jsonl"))
    assert p.returncode == 0 and "malformed" in p.stdout
