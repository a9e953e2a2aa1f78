"""The trace catalogue, schema file, streaming reader, writer and recorder."""

from __future__ import annotations

import io
import json
import threading

import jsonschema
import pytest

from resumespec.conformance import recorder as recorder_mod
from resumespec.conformance.trace import (
    EVENTS, FIELDS, MalformedTrace, TraceWriter, json_schema, load_schema, read_trace,
    schema_text, SCHEMA_FILE,
)

GOOD = {"v": 1, "proc": "encode", "seq": 0, "event": "round_end", "req": 1, "session": 1,
        "sent_tokens": 8, "ok": True}


def lines(*objs) -> bytes:
    return b"".join((json.dumps(o) if not isinstance(o, bytes) else o) .encode()
                    if not isinstance(o, bytes) else o + b"\n" for o in objs)


def read_bytes(data: bytes):
    return list(read_trace(io.BytesIO(data), path="t.jsonl"))


def test_shipped_schema_is_generated_from_catalogue():
    assert SCHEMA_FILE.read_text() == schema_text()
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_every_event_has_an_action_and_known_fields():
    for name, spec in EVENTS.items():
        assert spec.action and spec.meaning, name
        for f in spec.required + spec.optional:
            assert f in FIELDS


def test_writer_output_validates_against_json_schema_and_reader():
    buf = io.StringIO()
    enc = TraceWriter(buf, "encode")
    lang = TraceWriter(buf, "language/1")
    lang.write("alloc", rank=1, req=1, tokens=8, blocks=[0])
    lang.write("init_sent", req=1, session=1, blocks=[0], allocated_tokens=8)
    enc.write("init_recv", req=1, session=1, blocks=[0], allocated_tokens=8)
    enc.write("round_start", req=1, session=1, sent_tokens=0, tokens=8, total=8,
              src_blocks=[0], dst_blocks=[0], partial=False, aux_written=True)
    lang.write("alloc", rank=1, req=2, tokens=8, blocks=None)
    validator = jsonschema.Draft202012Validator(json_schema())
    data = buf.getvalue()
    for line in data.splitlines():
        validator.validate(json.loads(line))
    events = [e for _, e in read_trace(io.BytesIO(data.encode()))]
    assert [e["seq"] for e in events] == [0, 1, 0, 1, 2]
    assert [e["proc"] for e in events][:3] == ["language/1", "language/1", "encode"]


def test_writer_rejects_unknown_event_and_bad_field():
    w = TraceWriter(io.StringIO(), "encode")
    with pytest.raises(ValueError):
        w.write("no_such_event", req=1)
    with pytest.raises(MalformedTrace, match="sent_tokens"):
        w.write("round_end", req=1, session=1, sent_tokens=-1, ok=True)
    with pytest.raises(MalformedTrace, match="language process"):
        w.write("alloc", rank=1, req=1, tokens=1, blocks=[1])
    with pytest.raises(ValueError):
        TraceWriter(io.StringIO(), "language/0")


@pytest.mark.parametrize("data, field, words", [
    (b"", None, None),
    (b"\x00\xff\xfe\x80garbage\n", None, "UTF-8"),
    (b"not json\n", None, "JSON object"),
    (b"[1, 2]\n", None, "JSON object"),
    (json.dumps(GOOD).encode()[:-5], None, "truncated"),
    (json.dumps(dict(GOOD, event="explode")).encode() + b"\n", "event", "one of"),
    (json.dumps(dict(GOOD, sent_tokens="8")).encode() + b"\n", "sent_tokens", "integer"),
    (json.dumps(dict(GOOD, ok=1)).encode() + b"\n", "ok", "true or false"),
    (json.dumps(dict(GOOD, v=2)).encode() + b"\n", "v", "version 1"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "req"}).encode() + b"\n", "req", "required"),
    (json.dumps(dict(GOOD, sent_tokn=3)).encode() + b"\n", "sent_tokn", "no such field"),
    (json.dumps(dict(GOOD, proc="language/1")).encode() + b"\n", "proc", "encode process"),
    (b"[" * 100000 + b"\n", None, "JSON"),
])
def test_bad_input_gives_line_and_field(data, field, words):
    if words is None:
        assert read_bytes(data) == []
        return
    with pytest.raises(MalformedTrace) as info:
        read_bytes(data)
    err = info.value
    assert err.line == 1
    assert err.field == field
    assert words in str(err)
    assert str(err).startswith("t.jsonl:1:")


def test_error_line_number_counts_blank_lines_and_extension_fields_pass():
    good = json.dumps(dict(GOOD, x_engine_note="hi", ts=1.5)).encode()
    data = good + b"\n\n" + good + b"\n{bad\n"
    it = read_trace(io.BytesIO(data))
    assert next(it)[0] == 1
    assert next(it)[0] == 3
    with pytest.raises(MalformedTrace) as info:
        next(it)
    assert info.value.line == 4


def test_last_line_without_newline_is_fine_when_complete():
    assert len(read_bytes(json.dumps(GOOD).encode())) == 1


def test_reader_streams_across_chunk_boundaries(tmp_path):
    line = json.dumps(GOOD).encode() + b"\n"
    n = (3 << 20) // len(line) + 7   # > 3 chunks of 1 MiB
    p = tmp_path / "big.jsonl"
    p.write_bytes(line * n)
    count = sum(1 for _ in read_trace(p))
    assert count == n


def test_recorder_disabled_is_null(monkeypatch):
    monkeypatch.delenv("RESUMESPEC_TRACE", raising=False)
    rec = recorder_mod.recorder_for("encode")
    assert rec is recorder_mod.NULL and not rec.enabled
    assert rec.log("alloc", anything=1) is None


def test_recorder_per_process_files_thread_safe(tmp_path, monkeypatch):
    monkeypatch.setenv("RESUMESPEC_TRACE", str(tmp_path / "tr"))
    rec = recorder_mod.recorder_for("language/2")
    assert rec is recorder_mod.recorder_for("language/2")

    def work(k):
        for i in range(200):
            rec.log("fail", req=k * 1000 + i + 1, reason="x" * 50)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder_mod.close_all()
    events = [e for _, e in read_trace(tmp_path / "tr" / "language-2.jsonl")]
    assert sorted(e["seq"] for e in events) == list(range(800))
    assert [e["seq"] for e in events] == list(range(800))


def test_recorder_single_file(tmp_path, monkeypatch):
    target = tmp_path / "all.jsonl"
    monkeypatch.setenv("RESUMESPEC_TRACE", str(target))
    a = recorder_mod.recorder_for("encode")
    b = recorder_mod.recorder_for("language/1")
    b.log("abort", req=1)
    a.log("write_error", req=1)
    recorder_mod.close_all()
    procs = [e["proc"] for _, e in read_trace(target)]
    assert procs == ["language/1", "encode"]


def test_huge_file_without_newlines_is_rejected_after_reading_little(tmp_path):
    # a sparse 10 GB file of NUL bytes: the reader must stop at the line limit
    # (16 MiB) instead of reading the file whole
    p = tmp_path / "huge.jsonl"
    with open(p, "wb") as f:
        f.truncate(10 * 1024 ** 3)
    with open(p, "rb") as f:
        with pytest.raises(MalformedTrace, match="at most 16777216 bytes"):
            next(read_trace(f, path=str(p)))
        assert f.tell() < 64 * 1024 ** 2
