"""The recorder (conformance/recorder.py): its lines equal TraceWriter's, its
compiled fields check never accepts what the catalogue rejects, and what a
kill -9 leaves in the file in each mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from resumespec.conformance import recorder
from resumespec.conformance.trace import (
    DECISIONS,
    ENCODE,
    EVENTS,
    FAULTS,
    ORDERS,
    RESUME_ORDERS,
    STATUSES,
    VARIANTS,
    MalformedTrace,
    TraceWriter,
    read_trace,
    validate_event,
)


@pytest.fixture(autouse=True)
def _closed_after():
    yield
    recorder.close_all()


# --- the lines -------------------------------------------------------------

CALLS = [("alloc", dict(rank=1, req=2, tokens=8, blocks=[3, 4])),
         ("prefill_done", dict(req=3)), ("config", {}),
         ("fail", dict(req=1, reason="why \"quoted\" \u00e9")),
         ("alloc", dict(rank=1, req=5, tokens=8, blocks=None)),
         ("poll", dict(req=5, status="Transferring", decision="wait", x_note={"a": [1]})),
         ("buffer_read", dict(req=2, session=1, blocks=[1], aux_total=0, tokens=3,
                              ids=[[2, 1], [2, 2], [2, 3]]))]


@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize("flush", [True, False])
def test_lines_equal_the_trace_writers(tmp_path, check, flush):
    with TraceWriter(tmp_path / "writer.jsonl", "language/1") as w:
        for ev, f in CALLS:
            w.write(ev, **f)
    want = [json.loads(x) for x in (tmp_path / "writer.jsonl").read_text().splitlines()]
    d = tmp_path / "rec"
    rec = recorder.recorder_for("language/1", str(d), check=check, flush=flush)
    for ev, f in CALLS:
        rec.log(ev, **f)
    assert rec.seq == len(CALLS)
    rec.close()
    lines = (d / "language-1.jsonl").read_text(encoding="utf-8").splitlines()
    got = [json.loads(x) for x in lines]
    assert [list(g) for g in got] == [list(w) for w in want]          # key order
    assert [{**g, "ts": 0} for g in got] == [{**w, "ts": 0} for w in want]
    assert all(round(g["ts"], 6) == g["ts"] and abs(g["ts"] - time.time()) < 600 for g in got)
    assert all(" " not in x for x in lines if "quoted" not in x)       # compact
    assert [ev for _, ev in read_trace(d / "language-1.jsonl")] == got


def test_ts_has_six_decimals_and_is_the_clock(tmp_path):
    rec = recorder.recorder_for("encode", str(tmp_path), check=False)
    before = time.time()
    rec.log("write_error", req=1)
    after = time.time()
    rec.close()
    line = (tmp_path / "encode.jsonl").read_text()
    ts = line.split('"ts":')[1].split(",")[0]
    assert len(ts.split(".")[1]) == 6
    assert before - 1e-6 <= float(ts) <= after + 1e-6


def test_unknown_event_and_bad_fields_are_refused_with_the_readers_words(tmp_path):
    rec = recorder.recorder_for("language/1", str(tmp_path), check=True)
    with pytest.raises(ValueError, match="unknown trace event 'allocc'"):
        rec.log("allocc", rank=1)
    with pytest.raises(MalformedTrace, match="tokens"):
        rec.log("alloc", rank=1, req=2, tokens=-1, blocks=[])
    with pytest.raises(MalformedTrace, match="no such field in alloc"):
        rec.log("alloc", rank=1, req=2, tokens=1, blocks=[], token=1)
    with pytest.raises(MalformedTrace, match="proc"):             # an encode event
        rec.log("write_error", req=1)
    assert rec.seq == 0                                            # nothing was logged
    unchecked = recorder.recorder_for("language/2", str(tmp_path), check=False)
    unchecked.log("alloc", rank=1, req=2, tokens=-1, blocks=[])    # the caller's business
    with pytest.raises(ValueError, match="unknown trace event"):
        unchecked.log("allocc")


def test_closed_recorder_refuses(tmp_path):
    rec = recorder.recorder_for("encode", str(tmp_path))
    rec.close()
    with pytest.raises(ValueError, match="is closed"):
        rec.log("write_error", req=1)


# --- the compiled fields check against the catalogue ------------------------

_VALUES = {
    "nat": hs.integers(0, 10**6), "pos": hs.integers(1, 10**6), "int": hs.integers(),
    "bool": hs.booleans(), "str": hs.text(max_size=8),
    "number": hs.integers() | hs.floats(allow_nan=False, allow_infinity=False),
    "blocks": hs.lists(hs.integers(0, 99), max_size=4),
    "blocks_or_null": hs.none() | hs.lists(hs.integers(0, 99), max_size=4),
    "ids": hs.lists(hs.lists(hs.integers(0, 99), min_size=2, max_size=2), max_size=3),
    "status": hs.sampled_from(STATUSES), "decision": hs.sampled_from(DECISIONS),
    "variant": hs.sampled_from(VARIANTS), "order": hs.sampled_from(ORDERS),
    "resume_order": hs.sampled_from(RESUME_ORDERS),
    "faults": hs.lists(hs.sampled_from(FAULTS), max_size=3),
}
_NEAR_MISSES = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-3, 3) | hs.integers(-2**63, 2**63 - 1)
    | hs.floats(allow_nan=False, allow_infinity=False) | hs.sampled_from([1.0, 0.0, -0.0])
    | hs.text(max_size=6) | hs.sampled_from(STATUSES + DECISIONS + FAULTS),
    lambda inner: hs.lists(inner, max_size=3), max_leaves=6)


@hs.composite
def _calls(draw, mutate: bool):
    """(event, fields) as an engine would pass them to ``log``: well formed,
    or with one or two near misses (a value of another type, a field
    dropped, an unknown, common or engine-private field added)."""
    spec = EVENTS[draw(hs.sampled_from(sorted(EVENTS)))]
    fields = {f: draw(_VALUES[spec.types[f].name]) for f in spec.required}
    for f in spec.optional:
        if draw(hs.booleans()):
            fields[f] = draw(_VALUES[spec.types[f].name])
    if draw(hs.integers(0, 5)) == 0:
        fields["x_engine"] = draw(_NEAR_MISSES)
    for _ in range(draw(hs.integers(1, 2)) if mutate else 0):
        how = draw(hs.sampled_from(["set", "set", "delete", "add"]))
        if how == "set" and fields:
            fields[draw(hs.sampled_from(sorted(fields)))] = draw(_NEAR_MISSES)
        elif how == "delete" and fields:
            fields.pop(draw(hs.sampled_from(sorted(fields))))
        else:
            key = draw(hs.sampled_from(sorted({f for s in EVENTS.values() for f in s.all_fields}
                                              | {"x_", "x_y", "tokens_", "ts"})))
            fields[key] = draw(_NEAR_MISSES)
    return spec.name, fields


def _record(event: str, fields: dict) -> dict:
    proc = ENCODE if EVENTS[event].side == ENCODE else "language/1"
    return {"v": 1, "proc": proc, "seq": 0, "event": event, "ts": 1.5, **fields}


def _verdict(event: str, fields: dict) -> str:
    try:
        validate_event(_record(event, fields), 1)
        return "ok"
    except MalformedTrace as e:
        return str(e)


@settings(max_examples=300, deadline=None)
@given(call=_calls(mutate=False))
def test_fields_check_accepts_well_formed_calls(call):
    event, fields = call
    assert recorder.FIELDS_CHECKERS[event](fields)
    assert _verdict(event, fields) == "ok"


@settings(max_examples=1000, deadline=None)
@given(call=_calls(mutate=True))
def test_fields_check_never_accepts_what_the_catalogue_rejects(call):
    event, fields = call
    verdict = _verdict(event, fields)
    if recorder.FIELDS_CHECKERS[event](dict(fields)):
        assert verdict == "ok", (event, fields)
        assert "ts" not in fields
    elif not {"v", "proc", "seq", "ts"} & set(fields) and not any(k.startswith("x_")
                                                                  for k in fields):
        assert verdict != "ok", (event, fields)   # it says False only to a bad call


@settings(max_examples=200, deadline=None)
@given(call=_calls(mutate=True))
def test_checked_log_raises_exactly_what_the_reader_would(tmp_path_factory, call):
    event, fields = call
    if "ts" in fields or "event" in fields:
        return          # the recorder makes ts itself; "event" is log's own parameter
    proc = ENCODE if EVENTS[event].side == ENCODE else "language/1"
    d = tmp_path_factory.mktemp("log")
    rec = recorder.recorder_for(proc, str(d), check=True)
    verdict = _verdict(event, fields)
    written = False
    try:
        rec.log(event, **fields)
        got, written = "ok", True
    except MalformedTrace as e:
        got = str(e)
    except orjson.JSONEncodeError:   # an integer beyond 64 bits, after the check
        got = "ok"
    assert got == verdict
    rec.close()
    if written:
        [(_, ev)] = list(read_trace(d / trace_name(proc)))
        common = ("v", "proc", "seq", "event", "ts")
        assert {k: v for k, v in ev.items() if k not in common} \
            == json.loads(json.dumps({k: v for k, v in fields.items() if k not in common}))


def trace_name(proc: str) -> str:
    return proc.replace("/", "-") + ".jsonl"


# --- what is on disk when ---------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from resumespec.conformance.recorder import recorder_for
    target, flush, n, flush_at, sleep_s = sys.argv[1:]
    rec = recorder_for("encode", target, flush=flush == "1", check=True)
    for i in range(int(n)):
        rec.log("round_end", req=i + 1, session=1, sent_tokens=i, ok=True, x_round=i)
        if i + 1 == int(flush_at):
            rec.flush()
    time.sleep(float(sleep_s))
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _log_then_kill_9(tmp_path, *, flush: bool, n: int, flush_at: int = 0, sleep_s: float = 0.0,
                     interval_ms: str = "10") -> list[dict]:
    """A child process logs ``n`` events, calls flush() after the
    ``flush_at``-th, sleeps, and kills itself with SIGKILL; the events in
    its file (which must parse), in order."""
    env = dict(os.environ, RESUMESPEC_TRACE_FLUSH_MS=interval_ms)
    env.pop("RESUMESPEC_TRACE", None)
    p = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "1" if flush else "0",
                        str(n), str(flush_at), str(sleep_s)], env=env, timeout=120,
                       capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    f = tmp_path / "encode.jsonl"
    events = [ev for _, ev in read_trace(f)] if f.exists() else []
    assert [ev["seq"] for ev in events] == list(range(len(events)))
    assert [ev["req"] for ev in events] == list(range(1, len(events) + 1))
    return events


def test_kill_9_per_line_loses_nothing(tmp_path):
    assert len(_log_then_kill_9(tmp_path, flush=True, n=700)) == 700


def test_kill_9_buffered_keeps_every_full_buffer(tmp_path):
    # no timed writes: the lines go out 512 at a time; the 188 after the
    # last full buffer die with the process
    assert len(_log_then_kill_9(tmp_path, flush=False, n=1212, interval_ms="0")) == 1024


def test_kill_9_buffered_keeps_what_flush_wrote(tmp_path):
    assert len(_log_then_kill_9(tmp_path, flush=False, n=150, flush_at=100,
                                interval_ms="0")) == 100


def test_kill_9_buffered_keeps_lines_older_than_the_interval(tmp_path):
    # the flusher thread writes every 10 ms: after 1 s of silence everything
    # logged is in the file although nobody called flush()
    assert len(_log_then_kill_9(tmp_path, flush=False, n=300, sleep_s=1.0)) == 300


def test_flusher_thread_writes_without_a_flush_call(tmp_path):
    rec = recorder.recorder_for("language/1", str(tmp_path), flush=False)
    f = tmp_path / "language-1.jsonl"
    rec.log("prefill_done", req=4)
    deadline = time.monotonic() + 10
    while f.read_bytes() == b"" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [ev["req"] for _, ev in read_trace(f)] == [4]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_forked_child_does_not_write_its_parents_lines(tmp_path):
    rec = recorder.recorder_for("encode", str(tmp_path), flush=False)
    for i in range(5):
        rec.log("write_error", req=i + 1)
    pid = os.fork()
    if pid == 0:                                     # the child: its own events, then exit
        try:
            rec.log("write_error", req=100)
            recorder.close_all()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    recorder.close_all()
    reqs = [json.loads(x)["req"] for x in (tmp_path / "encode.jsonl").read_text().splitlines()]
    assert sorted(reqs) == [1, 2, 3, 4, 5, 100]


def test_bad_flush_interval_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RESUMESPEC_TRACE_FLUSH_MS", "soon")
    with pytest.raises(ValueError, match="RESUMESPEC_TRACE_FLUSH_MS must be a number"):
        recorder._interval_from_env()
    monkeypatch.setenv("RESUMESPEC_TRACE_FLUSH_MS", "-1")
    with pytest.raises(ValueError, match=">= 0"):
        recorder._interval_from_env()
    monkeypatch.setenv("RESUMESPEC_TRACE_FLUSH_MS", "2.5")
    assert recorder._interval_from_env() == 0.0025


def test_bad_flush_interval_matters_only_with_tracing_on(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder, "FLUSH_INTERVAL_S", None)      # not read yet
    monkeypatch.setenv("RESUMESPEC_TRACE_FLUSH_MS", "soon")
    monkeypatch.delenv("RESUMESPEC_TRACE", raising=False)
    assert recorder.recorder_for("encode") is recorder.NULL        # tracing off: not read
    with pytest.raises(ValueError, match="RESUMESPEC_TRACE_FLUSH_MS must be a number"):
        recorder.recorder_for("encode", str(tmp_path))


def test_flusher_thread_ends_with_the_last_file_and_comes_back(tmp_path):
    recorder.recorder_for("encode", str(tmp_path / "a"), flush=False).log("write_error", req=1)
    recorder.close_all()
    deadline = time.monotonic() + 10
    while recorder._flusher is not None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert recorder._flusher is None                  # no file open: no thread
    rec = recorder.recorder_for("encode", str(tmp_path / "b"), flush=False)
    assert recorder._flusher is not None and recorder._flusher.is_alive()
    rec.log("write_error", req=2)
    f = tmp_path / "b" / "encode.jsonl"
    while f.read_bytes() == b"" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [ev["req"] for _, ev in read_trace(f)] == [2]
