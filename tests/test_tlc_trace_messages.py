"""TLC failures say what happened with the right exit code, and a failed
run's output is kept in one named place (nothing else is left behind)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from resumespec import exitcodes
from resumespec.cli import main as cli_main
from resumespec.conformance.tlc_trace import check_tlc

CORPUS = Path(__file__).resolve().parents[1] / "conformance" / "corpus"


def test_trace_check_with_a_tiny_heap_is_out_of_memory(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    v = check_tlc([str(CORPUS / "valid_one_round.jsonl")], timeout=60, heap="1m")
    assert v.verdict == "error" and v.exit_code == exitcodes.OUT_OF_MEMORY
    assert "cannot start with so small a heap" in v.message
    m = re.search(r"kept in (\S+)\)$", v.message)
    assert m, v.message
    kept = Path(m.group(1))
    assert sorted(p.name for p in kept.iterdir()) == [
        "TraceCheck.cfg", "TraceCheck.tla", "TraceCheckEnd.cfg", "tlc.log"]
    assert "Too small" in (kept / "tlc.log").read_text()
    # the log and the module are in that one folder; nothing else is left
    assert list(tmp.iterdir()) == [kept]


def test_model_check_with_a_tiny_heap_is_out_of_memory(tmp_path, monkeypatch, capsys):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    code = cli_main(["check", "--quiet", "--heap", "1m", "flag_double_free"])
    out = capsys.readouterr()
    assert code == exitcodes.OUT_OF_MEMORY, out
    text = out.out + out.err
    assert "cannot start with so small a heap" in text
    m = re.search(r"TLC output saved in (\S+)\)", text)
    assert m and Path(m.group(1)).is_file() and Path(m.group(1)).parent == tmp
