"""The trace catalogue, schema file, streaming reader, writer and recorder."""

from __future__ import annotations

import io
import json
import threading

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from resumespec.conformance import recorder as recorder_mod
from resumespec.conformance import synth
from resumespec.conformance.trace import (
    DECISIONS,
    ENCODE,
    EVENTS,
    FAST_VALIDATORS,
    FAULTS,
    FIELDS,
    LANGUAGE,
    ORDERS,
    RESUME_ORDERS,
    SCHEMA_FILE,
    SCHEMA_VERSION,
    STATUSES,
    VARIANTS,
    MalformedTrace,
    TraceWriter,
    decode_lines,
    json_schema,
    load_schema,
    read_trace,
    read_trace_batches,
    schema_text,
    validate_event,
    validate_precisely,
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
    (json.dumps(dict(GOOD, event=["round_end"])).encode() + b"\n", "event", "one of"),
    (json.dumps(dict(GOOD, event={"a": 1})).encode() + b"\n", "event", "one of"),
    (json.dumps(dict(GOOD, v=True)).encode() + b"\n", "v", "version 1"),
    (json.dumps(dict(GOOD, ts=float("inf"))).encode() + b"\n", None, "JSON"),
    (json.dumps(dict(GOOD, ts="now")).encode() + b"\n", "ts", "a number"),
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


def test_reader_yields_the_events_before_a_malformed_line_of_a_chunk():
    # a chunk that decodes as a whole: its third line is not an event
    good = [dict(GOOD, seq=i) for i in range(5)]
    bad = dict(GOOD, seq=2, ok="yes")
    data = b"".join(json.dumps(o).encode() + b"\n" for o in good[:2] + [bad] + good[3:])
    it = read_trace(io.BytesIO(data), path="t.jsonl")
    assert [next(it)[0], next(it)[0]] == [1, 2]
    with pytest.raises(MalformedTrace, match="t.jsonl:3: field 'ok'"):
        next(it)
    batches = read_trace_batches(io.BytesIO(data), path="t.jsonl")
    before, events, text = next(batches)
    assert before == 0 and [e["seq"] for e in events] == [0, 1] and text is None
    with pytest.raises(MalformedTrace):
        next(batches)


def test_a_batch_text_decodes_to_its_events():
    data = b"".join(json.dumps(dict(GOOD, seq=i)).encode() + b"\n" for i in range(50))
    got = list(read_trace_batches(io.BytesIO(data), path="t.jsonl"))
    assert sum(len(events) for _, events, _ in got) == 50
    for _before, events, text in got:
        assert text is not None and decode_lines(text) == events


# ---------------------------------------------------------------------------
# Compiled validators (FAST_VALIDATORS) against the catalogue interpreted
# field by field (validate_precisely)
# ---------------------------------------------------------------------------
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
# any JSON value, biased to the near misses: wrong sign, bool for int, float for int
_ANY_JSON = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-3, 3) | hs.integers()
    | hs.floats(allow_nan=False, allow_infinity=False) | hs.sampled_from([1.0, 0.0, -0.0])
    | hs.text(max_size=6) | hs.sampled_from(STATUSES + DECISIONS + (ENCODE, "language/1",
                                                                  "language/0", "Language/2")),
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=3), inner,
                                                                max_size=2),
    max_leaves=6)


@hs.composite
def _valid_events(draw):
    spec = EVENTS[draw(hs.sampled_from(sorted(EVENTS)))]
    if spec.side == ENCODE:
        proc = ENCODE
    else:
        rank = draw(hs.integers(1, 12))
        proc = f"language/{rank}" if spec.side == LANGUAGE else draw(
            hs.sampled_from([ENCODE, f"language/{rank}"]))
    ev = {"v": SCHEMA_VERSION, "proc": proc, "seq": draw(hs.integers(0, 10**6)),
          "event": spec.name}
    for f in spec.required:
        ev[f] = draw(_VALUES[spec.types[f].name])
    for f in spec.optional + ("ts",):
        if draw(hs.booleans()):
            ev[f] = draw(_VALUES[spec.types[f].name])
    if draw(hs.integers(0, 9)) == 0:
        ev["x_engine"] = draw(_ANY_JSON)
    return ev


@hs.composite
def _mutated_events(draw):
    """A well-formed event with one or two near misses: a field set to a value
    of another type (or of its own), a field dropped, an unknown field added."""
    ev = dict(draw(_valid_events()))
    values = hs.one_of(_ANY_JSON, *_VALUES.values())
    for _ in range(draw(hs.integers(1, 2))):
        how = draw(hs.sampled_from(["set", "set", "set", "delete", "add"]))
        if how == "set":
            ev[draw(hs.sampled_from(sorted(ev)))] = draw(values)
        elif how == "delete":
            ev.pop(draw(hs.sampled_from(sorted(ev))), None)
        else:
            key = draw(hs.sampled_from(sorted(FIELDS)) | hs.text(max_size=4))
            ev[key] = draw(values)
    return ev


def _outcome(validate, ev):
    try:
        assert validate(dict(ev), 7, "t.jsonl") == ev
        return "ok"
    except MalformedTrace as e:
        return str(e)


@settings(max_examples=400, deadline=None)
@given(ev=_valid_events())
def test_compiled_validator_accepts_well_formed_events(ev):
    assert validate_precisely(ev, 1) is ev           # also records the process name as seen
    fast = FAST_VALIDATORS[ev["event"]](ev)
    assert fast == ("x_engine" not in ev)            # engine-private fields: the precise path
    assert validate_event(ev, 1) is ev


@settings(max_examples=800, deadline=None)
@given(ev=_mutated_events())
def test_compiled_validator_never_accepts_what_the_catalogue_rejects(ev):
    precise = _outcome(validate_precisely, ev)
    name = ev.get("event")
    if isinstance(name, str) and name in FAST_VALIDATORS and FAST_VALIDATORS[name](dict(ev)):
        assert precise == "ok", ev
    # and the reader's entry point gives the very same answer and message
    assert _outcome(validate_event, ev) == precise


def test_compiled_validators_take_every_event_of_a_generated_run():
    events = list(synth.generate(30, nsess=2, seed=5, concurrent=4))
    for i, ev in enumerate(events, 1):
        validate_event(ev, i)                         # the process names are now seen
    assert all(FAST_VALIDATORS[ev["event"]](ev) for ev in events)
    assert {ev["event"] for ev in events} >= {"alloc", "round_start", "poll", "handoff"}


@settings(max_examples=600, deadline=None)
@given(name=hs.sampled_from(sorted(FIELDS)), value=_ANY_JSON | hs.sampled_from([[0, 1], [[1, 2]]]))
def test_field_type_tests_agree_with_the_json_schema(name, value):
    ftype = FIELDS[name][0]
    if isinstance(value, str) and value.endswith("\n"):
        value = value[:-1]      # Python's re lets "$" match before a final newline
    fits = jsonschema.Draft202012Validator(ftype.schema).is_valid(value)
    if fits and _has_integral_float(value) and ftype.name != "number":
        # JSON Schema counts 1.0 as an integer; the reader insists on 1
        assert not ftype.check(value), (name, value)
        return
    assert ftype.check(value) == fits, (name, value)


def _has_integral_float(value) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


@settings(max_examples=200, deadline=None)
@given(n=hs.integers(1, 60), blanks=hs.sets(hs.integers(0, 80), max_size=8),
       bad=hs.none() | hs.integers(0, 80), newline_at_end=hs.booleans(),
       read=hs.sampled_from([64, 100, 1024]), batch=hs.sampled_from([1, 50, 300]))
def test_reader_batches_match_a_line_by_line_read(n, blanks, bad, newline_at_end, read, batch):
    # small read and batch sizes put every kind of line on a boundary
    import resumespec.conformance.trace as trace_mod
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trace_mod, "_READ", read)
        mp.setattr(trace_mod, "_BATCH", batch)
        _compare_with_line_by_line(n, blanks, bad, newline_at_end)


def _compare_with_line_by_line(n, blanks, bad, newline_at_end):
    rows = [json.dumps(dict(GOOD, seq=i, sent_tokens=i * 7)).encode() for i in range(n)]
    for k in sorted(blanks, reverse=True):
        rows.insert(min(k, len(rows)), b"")
    if bad is not None:
        rows.insert(min(bad, len(rows)), b'{"v": 1, "event": "round_end"}')
    data = b"\n".join(rows) + (b"\n" if newline_at_end else b"")
    expected, error_line = [], None
    for i, raw in enumerate(data.split(b"\n"), 1):
        if raw.strip():
            obj = json.loads(raw)
            if "proc" not in obj:
                error_line = i
                break
            expected.append((i, obj))
    got, err = [], None
    try:
        for item in read_trace(io.BytesIO(data), path="t.jsonl"):
            got.append(item)
    except MalformedTrace as e:
        err = e.line
    assert got == expected
    assert err == error_line


def test_rank_logging_table_covers_the_language_events():
    """The one table of how the ranks log the receiver's steps
    (trace.RANK_LOGGING, used by the native checker and TLC trace
    validation): every row a spec action, every language event in some
    row, an observed event never part of a scheduler step."""
    from resumespec.conformance.checker_native import SPEC_ACTIONS
    from resumespec.conformance.trace import (
        EVERY_RANK_LOGS,
        LANGUAGE_EVENTS,
        NOT_A_RANK_STEP,
        RANK_LOGGING,
    )

    assert set(RANK_LOGGING) <= set(SPEC_ACTIONS)
    logged = {e for r in RANK_LOGGING.values() for e in r.events}
    assert logged == set(LANGUAGE_EVENTS)
    observed = {e for r in RANK_LOGGING.values() if r.observer for e in r.events}
    stepped = {e for r in RANK_LOGGING.values() if not r.observer for e in r.events}
    assert not observed & stepped
    assert NOT_A_RANK_STEP == observed | {"free"}
    assert EVERY_RANK_LOGS == {a for a, r in RANK_LOGGING.items() if r.every_rank}
    assert not EVERY_RANK_LOGS & {a for a, r in RANK_LOGGING.items() if r.observer}
