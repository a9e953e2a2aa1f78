"""Where a TLC verdict points: the event, its file and its line, also when the
trace is one file per process (line numbers repeat across the files), and
for a safety violation, how far the violating behaviour matched the log."""

from __future__ import annotations

import json
from pathlib import Path

from resumespec.conformance.tlc_trace import _load, check_tlc, steps_of

DEPLOYED = Path(__file__).resolve().parents[1] / "conformance" / "corpus" / "deployed"


def _run(name: str) -> list[str]:
    return sorted(str(p) for p in (DEPLOYED / name).glob("*.jsonl"))


def test_each_step_finds_its_own_event_among_files_that_share_line_numbers():
    paths = _run("cca20b094-corrected/abort")
    events = _load(paths)
    lines = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines[path] = f.read().splitlines()
    by_line = dict(events)
    assert len(by_line) == len(events)          # no event hides another
    assert len({int(ln) for ln, _ in events}) < len(events)   # numbers do repeat
    model = steps_of(events)
    for step in model.steps:
        ev = by_line[step.line]
        # the event is the one on that line of that file
        logged = json.loads(lines[step.line.path][int(step.line) - 1])
        assert (logged["proc"], logged["seq"]) == (ev["proc"], ev["seq"])


def test_a_violation_names_the_event_its_behaviour_had_reached():
    """d1bceb411's tp2_lag: the round of req 10 written into blocks that rank
    2's resume (one lockstep step with rank 1's, logged earlier) had freed."""
    v = check_tlc(_run("d1bceb411/tp2_lag"), timeout=300)
    assert (v.verdict, v.prop) == ("violates", "WritesOnlyIntoOwnedBlocks"), v.message
    assert Path(v.file).name == "encode.jsonl" and v.line == 171
    assert v.event["event"] == "round_start" and v.event["req"] == 10
    assert "matched the log's first 159 of 296 steps, to line 171 of encode.jsonl " \
           "(encode round_start, request 10), SenderWriteSession" in v.message
