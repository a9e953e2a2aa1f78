"""A round that some sessions finished and the room never ended, in TLC's
grouping of a log into spec steps (conformance/tlc_trace.py).

Two ranks: the sender writes session 1's batch, then session 2's, and logs
``round_end`` for each before it sends the statuses.  When session 2's batch
fails, or the encode process dies before it returns, session 1's
``round_end`` began a SenderEndRound that never happens.  TLC's grouping
made those parts an impossible step, so TLC said SpecStep where the native
checker said conforms, on two deployed runs of the patched engine
(``conformance/corpus/deployed/cca20b094-corrected/tp2_write_error`` and
``tp2_kill``).  The traces here are the request that shows it, cut out of
those runs with the allocator order relaxed to ``any`` (the other requests'
allocations are cut out with them).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from resumespec.conformance.checker_native import check_native
from resumespec.conformance.merge import merge_files
from resumespec.conformance.tlc_trace import check_tlc, steps_of

DEPLOYED = (Path(__file__).resolve().parent.parent / "conformance" / "corpus" / "deployed"
            / "cca20b094-corrected")


def one_request(run: str, req: int) -> list[dict]:
    paths = sorted(str(p) for p in (DEPLOYED / run).glob("*.jsonl"))
    out = []
    for _, _, ev in merge_files(paths):
        if ev.get("req", req) == req:
            out.append(dict(ev, order="any") if ev["event"] == "config" else dict(ev))
    return out


def write(events: list[dict], path: Path) -> str:
    seq: Counter = Counter()
    lines = []
    for ev in events:
        lines.append(json.dumps(dict(ev, seq=seq[ev["proc"]])) + "\n")
        seq[ev["proc"]] += 1
    path.write_text("".join(lines))
    return str(path)


def sender_events(events: list[dict]) -> list[tuple]:
    return [(ev["event"], ev.get("session"), ev.get("ok")) for ev in events
            if ev["proc"] == "encode" and ev["event"] in ("round_end", "status_sent")]


def actions(path: str) -> list[str]:
    from resumespec.conformance.tlc_trace import _load
    return [st.action for st in steps_of(_load([path])).steps]


def test_a_write_error_in_the_second_session_ends_no_round(tmp_path):
    events = one_request("tp2_write_error", 1)
    # round 2: session 1's batch returned, session 2's failed, Failed to both
    assert sender_events(events)[-4:] == [("round_end", 1, True), ("round_end", 2, False),
                                         ("status_sent", 1, None), ("status_sent", 2, None)]
    path = write(events, tmp_path / "t.jsonl")
    assert "Impossible" not in actions(path)
    assert check_native([path]).verdict == "conforms"
    assert check_tlc([path], timeout=300).verdict == "conforms"


def test_the_failed_status_must_not_count_the_round_session_1_finished(tmp_path):
    events = one_request("tp2_write_error", 1)
    last = max(i for i, ev in enumerate(events)
               if ev["event"] == "status_sent" and ev["session"] == 1)
    events[last] = dict(events[last], sent_tokens=events[last]["total"])
    path = write(events, tmp_path / "t.jsonl")
    assert check_native([path]).verdict == "violates"
    assert check_tlc([path], timeout=300).verdict == "violates"


def test_an_encode_process_killed_inside_a_round_ends_no_round(tmp_path):
    events = one_request("tp2_kill", 1)
    # the last round: session 1's batch returned, then nothing from the sender
    assert sender_events(events)[-1] == ("round_end", 1, True)
    assert any(ev["event"] == "heartbeat_fail" for ev in events)
    path = write(events, tmp_path / "t.jsonl")
    assert "Impossible" not in actions(path)
    assert check_native([path]).verdict == "conforms"
    assert check_tlc([path], timeout=300).verdict == "conforms"
