"""scripts/check_deployed_tlc.py: TLC on committed runs, compared with their
expected verdicts; --update records only verdicts that agree."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from resumespec import exitcodes

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "conformance" / "corpus"

_spec = importlib.util.spec_from_file_location("check_deployed_tlc",
                                               ROOT / "scripts" / "check_deployed_tlc.py")
assert _spec and _spec.loader
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


def _corpus(tmp_path: Path, runs: dict[str, tuple[str, dict]]) -> Path:
    """A corpus of one-file runs: name -> (corpus trace, expected entry)."""
    for name, (trace, _) in runs.items():
        (tmp_path / name).mkdir(parents=True)
        shutil.copy(CORPUS / trace, tmp_path / name / "encode.jsonl")
    expected = {name: {"events": 1, **want} for name, (_, want) in runs.items()}
    (tmp_path / "expected.json").write_text(json.dumps({"runs": expected}, indent=1))
    return tmp_path


def test_update_records_agreeing_verdicts_and_never_a_disagreement(tmp_path, capsys):
    corpus = _corpus(tmp_path, {
        "a/good": ("valid_one_round.jsonl", {"verdict": "conforms", "property": None}),
        # the native checker says NoDoubleFree here; this entry claims otherwise
        "a/wrong": ("no_double_free.jsonl", {"verdict": "conforms", "property": None}),
    })
    rc = script.main(["--missing", "--update", "--corpus", str(corpus), "--timeout", "120"])
    out = capsys.readouterr().out
    assert rc == exitcodes.CHECKERS_DISAGREE
    assert "a/good" in out and "agrees" in out and "DISAGREES" in out
    runs = json.loads((corpus / "expected.json").read_text())["runs"]
    assert runs["a/good"]["tlc"] == {"verdict": "conforms", "property": None}
    assert "tlc" not in runs["a/wrong"]
    # a recorded TLC verdict is what later checks compare with
    assert script.main(["a/good", "--corpus", str(corpus), "--json"]) == exitcodes.OK
    row = json.loads(capsys.readouterr().out)
    assert row["agrees"] is True and row["expected"] == "conforms"


def test_an_unknown_run_is_a_usage_error(tmp_path, capsys):
    corpus = _corpus(tmp_path, {})
    assert script.main(["no/such", "--corpus", str(corpus)]) == exitcodes.USAGE
    assert "unknown run(s): no/such" in capsys.readouterr().err
