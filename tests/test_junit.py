"""``resumespec conform --junit-xml`` writes reports that CI systems accept:
they validate against the JUnit XML schema of tests/fixtures/junit/junit.xsd
(the structure Jenkins' JUnit/xUnit plugins check, see the file's header),
whatever the verdicts, file names and messages are."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from resumespec.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = xmlschema.XMLSchema(ROOT / "tests/fixtures/junit/junit.xsd")
CORPUS = ROOT / "conformance/corpus"
ALL_TRACES = sorted(CORPUS.glob("*.jsonl")) + sorted(CORPUS.glob("sglang/*/*.jsonl"))


def conform_junit(tmp_path: Path, traces: list[Path], *extra: str) -> tuple[int, Path]:
    out = tmp_path / "report.xml"
    code = main(["conform", *map(str, traces), "--junit-xml", str(out), *extra])
    return code, out


def test_schema_rejects_what_ci_would_reject():
    good = '<testsuite name="s" tests="1"><testcase name="t" time="0.5"/></testsuite>'
    assert SCHEMA.is_valid(good)
    for bad in ['<testsuite name="s"><testcase name="t"/></testsuite>',            # no tests=
                '<testsuite name="s" tests="1"><testcase/></testsuite>',           # no name
                '<testsuite name="s" tests="1"><testcase name="t" time="x"/></testsuite>',
                '<testsuite name="s" tests="-1"/>',
                '<testsuite name="s" tests="1"><testcase name="t"><failure/>'
                '<skipped/></testcase></testsuite>',                               # order
                '<testsuite name="s" tests="1" verdict="x"/>',                     # unknown attribute
                '<report/>']:
        assert not SCHEMA.is_valid(bad), bad


def test_whole_corpus_report_is_valid_and_counts_agree(tmp_path, capsys):
    expected = json.loads((CORPUS / "expected.json").read_text())
    code, out = conform_junit(tmp_path, ALL_TRACES)
    capsys.readouterr()
    assert code != 0                     # the corpus holds violations and malformed traces
    SCHEMA.validate(str(out))
    suite = ET.parse(out).getroot()
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) == len(ALL_TRACES)
    assert [c.get("name") for c in cases] == [str(p) for p in ALL_TRACES]
    failures = [c for c in cases if c.find("failure") is not None]
    errors = [c for c in cases if c.find("error") is not None]
    assert int(suite.get("failures")) == len(failures) > 0
    assert int(suite.get("errors")) == len(errors) > 0
    by_name = {c.get("name"): c for c in cases}
    for name, want in expected.items():
        if not name.endswith(".jsonl"):
            continue
        case = by_name[str(CORPUS / name)]
        tag = {"conforms": None, "malformed": "error"}.get(want["verdict"], "failure")
        if tag is None:
            assert list(case) == [], name
        else:
            (el,) = list(case)
            assert el.tag == tag and el.get("type") == want["verdict"], name
            assert el.text and el.get("message").startswith(want["verdict"]), name


def test_odd_file_names_and_messages_stay_valid(tmp_path, capsys):
    odd_dir = tmp_path / "d"
    odd_dir.mkdir()
    named = odd_dir / 'ré & <x> "q" \'s\'.jsonl'
    shutil.copy(CORPUS / "read_during_write.jsonl", named)
    # An unknown event whose name holds control characters (not allowed in XML 1.0)
    # and characters outside the BMP: the message quotes it.
    ctl = odd_dir / "control\u0001\u001b.jsonl"
    ctl.write_text(json.dumps({"v": 1, "proc": "encode", "seq": 0,
                               "event": "bad\u0001\u001b\ud83d\ude00\ufffe"}) + "\n")
    # A name that is not UTF-8 (Python holds it with lone surrogates).
    latin = odd_dir / os.fsdecode(b"caf\xe9.jsonl")
    shutil.copy(CORPUS / "ref_corrected.jsonl", latin)
    # (--json: the text report cannot print such a name on a UTF-8 stdout.)
    code, out = conform_junit(tmp_path, [named, ctl, latin], "--json")
    capsys.readouterr()
    assert code == 12
    SCHEMA.validate(str(out))
    cases = ET.parse(out).getroot().findall("testcase")
    assert cases[0].get("name") == str(named)
    assert cases[0].find("failure").get("type") == "violates"
    # XML 1.0 cannot hold U+0001 or U+001B, even escaped: they are written as U+FFFD.
    assert cases[1].get("name") == str(ctl).replace("\u0001", "\ufffd").replace("\u001b", "\ufffd")
    message = cases[1].find("error").get("message")
    assert "bad" in message and "\u0001" not in message
    assert cases[2].get("name") == str(odd_dir / "caf\ufffd.jsonl") and list(cases[2]) == []


@pytest.mark.parametrize("trace", ["ref_corrected.jsonl", "malformed_garbage.jsonl"])
def test_single_trace_reports_are_valid(tmp_path, capsys, trace):
    _, out = conform_junit(tmp_path, [CORPUS / trace])
    capsys.readouterr()
    SCHEMA.validate(str(out))
