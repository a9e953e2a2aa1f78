"""Adversarial traces (issue 14): the classes on which the two checkers used to
disagree, each run through both (`conform --checker both`, exit 13 on a
disagreement), and the strictness fixes of issue 9 (blocks held at the end,
a write error after the aux row may have landed).

Each case says what the spec (spec/ResumeProtocol.tla) makes of the trace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumespec import exitcodes
from resumespec.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "conformance" / "corpus"


class Log:
    """Builds a merged trace: ``add(proc, event, **fields)`` numbers ``seq``."""

    def __init__(self, **config):
        self.events: list[dict] = []
        self.seq: dict[str, int] = {}
        if config:
            self.add("encode", "config", **config)
            self.add("language/1", "config", **config)

    def add(self, proc: str, event: str, **fields) -> Log:
        n = self.seq.get(proc, 0)
        self.seq[proc] = n + 1
        self.events.append({"v": 1, "proc": proc, "seq": n, "event": event, **fields})
        return self

    def lang(self, event: str, **fields) -> Log:
        return self.add("language/1", event, **fields)

    def enc(self, event: str, **fields) -> Log:
        return self.add("encode", event, **fields)

    def write(self, path: Path, extra: str = "") -> Path:
        path.write_text("".join(json.dumps(e) + "\n" for e in self.events) + extra)
        return path


def corpus_lines(name: str, n: int | None = None) -> str:
    lines = (CORPUS / name).read_text().splitlines(keepends=True)
    return "".join(lines if n is None else lines[:n])


def both(capsys, path: Path) -> tuple[int, dict]:
    """Both checkers on one trace: (exit code, the JSON of the trace's result)."""
    code = cli_main(["conform", "--quiet", "--json", "--checker", "both", str(path)])
    doc = json.loads(capsys.readouterr().out)
    result = doc["traces"][0]
    assert code != exitcodes.CHECKERS_DISAGREE, result
    assert result["tlc"]["verdict"] == result["verdict"], result
    return code, result


def test_config_and_alloc_only_is_incomplete(capsys, tmp_path):
    # The allocation is the first part of ReceiverInit; the log ends inside
    # that step and the block is still held: incomplete, not conforms.
    path = tmp_path / "t.jsonl"
    path.write_text(corpus_lines("valid_one_round.jsonl", 3))
    code, r = both(capsys, path)
    assert code == exitcodes.INCOMPLETE
    assert r["property"] == "BlocksEventuallyFree"


def test_config_only_is_incomplete(capsys, tmp_path):
    # The spec has at least one request (ASSUME NReq >= 1): a log of the
    # configuration alone is the prefix of a run in which no request began.
    path = tmp_path / "t.jsonl"
    path.write_text(corpus_lines("valid_one_round.jsonl", 2))
    code, r = both(capsys, path)
    assert code == exitcodes.INCOMPLETE
    assert r["property"] == "EveryRequestEnds"


def test_historical_abort_with_a_write_in_flight_cut_before_its_free(capsys, tmp_path):
    # Abort frees the blocks in the same step; the log ends after `abort`,
    # before its `free`: the step has not happened yet (incomplete).
    path = tmp_path / "t.jsonl"
    path.write_text(corpus_lines("ref_flag_abort.jsonl", 7))
    code, _ = both(capsys, path)
    assert code == exitcodes.INCOMPLETE
    # with its free, the write in flight lands in a free block: a violation
    path.write_text(corpus_lines("ref_flag_abort.jsonl"))
    code, r = both(capsys, path)
    assert code == exitcodes.VIOLATES and r["property"] == "WritesOnlyIntoOwnedBlocks"


def test_historical_abort_cut_before_its_free_then_a_bad_line(capsys, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(corpus_lines("ref_flag_abort.jsonl", 7)
                    + '{"v":1,"proc":"language/1","seq":4,"event":"free","rank":1}\n')
    code, r = both(capsys, path)
    assert code == exitcodes.MALFORMED
    assert r["line"] == 8


def test_poll_seeing_failed_with_no_status_received(capsys, tmp_path):
    # One rank: the combined status is the rank's own, WaitingForInput.  No
    # continuation explains a poll that saw Failed, even if the log ends there.
    log = Log(block_size=2, nblocks=4, nsess=1, variant="once", cap=0,
              faults=["write_error"])
    log.lang("alloc", rank=1, req=1, tokens=2, blocks=[0])
    log.lang("init_sent", req=1, session=1, blocks=[0], allocated_tokens=2)
    log.enc("init_recv", req=1, session=1, blocks=[0], allocated_tokens=2)
    log.enc("round_start", req=1, session=1, sent_tokens=0, tokens=2, total=3,
            src_blocks=[0], dst_blocks=[0], partial=True, aux_written=True)
    log.enc("write_error", req=1)
    log.enc("status_sent", req=1, session=1, status="Failed")
    log.lang("poll", req=1, status="Failed", decision="fail")
    code, r = both(capsys, log.write(tmp_path / "cut.jsonl"))
    assert code == exitcodes.VIOLATES and r["property"] == "SpecStep"
    log.lang("free", rank=1, req=1, blocks=[0]).lang("fail", req=1)
    code, r = both(capsys, log.write(tmp_path / "whole.jsonl"))
    assert code == exitcodes.VIOLATES and r["property"] == "SpecStep"


def test_duplicated_failed_round_end_after_the_request_closed(capsys, tmp_path):
    # A round ends (with an error) only while it is being written: a second
    # `round_end ok=false` for the same round is no step of the spec.
    events = [json.loads(x) for x in
              (CORPUS / "sglang" / "cca20b094" / "write_error.jsonl").read_text().splitlines()]
    dup = dict(next(e for e in events if e["event"] == "round_end" and not e["ok"]))
    dup["seq"] = max(e["seq"] for e in events if e["proc"] == "encode") + 1
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events + [dup]))
    code, r = both(capsys, path)
    assert code == exitcodes.VIOLATES and r["property"] == "SpecStep"


def _two_session_write_error(second_ok: bool) -> Log:
    log = Log(block_size=2, nblocks=2, nsess=2, variant="once", cap=0,
              faults=["write_error"])
    log.add("language/2", "config", block_size=2, nblocks=2, nsess=2, variant="once", cap=0,
            faults=["write_error"])
    for s in (1, 2):
        p = f"language/{s}"
        log.add(p, "alloc", rank=s, req=1, tokens=2, blocks=[0])
        log.add(p, "init_sent", req=1, session=s, blocks=[0], allocated_tokens=2)
    for s in (1, 2):
        log.enc("init_recv", req=1, session=s, blocks=[0], allocated_tokens=2)
    for s in (1, 2):
        log.enc("round_start", req=1, session=s, sent_tokens=0, tokens=2, total=2,
                src_blocks=[0], dst_blocks=[0], partial=False, aux_written=True)
    log.enc("round_end", req=1, session=1, sent_tokens=0, ok=False)
    log.enc("round_end", req=1, session=2, sent_tokens=2 if second_ok else 0, ok=second_ok)
    log.enc("write_error", req=1)
    for s in (1, 2):
        log.enc("status_sent", req=1, session=s, status="Failed")
    for s in (1, 2):
        p = f"language/{s}"
        log.add(p, "status_recv", req=1, session=s, status="Failed")
        log.add(p, "poll", req=1, status="Failed", decision="fail")
        log.add(p, "free", rank=s, req=1, blocks=[0])
        log.add(p, "fail", req=1)
    return log


def test_every_session_of_a_failed_round_may_end_with_an_error(capsys, tmp_path):
    # WriteError fails the whole room: the other session's round, still being
    # written, may log its end with an error too (not with success).
    code, _ = both(capsys, _two_session_write_error(False).write(tmp_path / "a.jsonl"))
    assert code == exitcodes.OK
    code, r = both(capsys, _two_session_write_error(True).write(tmp_path / "b.jsonl"))
    assert code == exitcodes.VIOLATES and r["property"] == "SpecStep"


def _stale_aux_run(read_aux: int) -> Log:
    """Corrected design, one rank, two blocks.  Req 1 writes aux 2 into block 0
    and lands it; req 2's first round writes aux 5 into block 0 and fails
    (WriteLand may come before WriteError: 5 may be there); req 3 starts in
    block 1 and resumes into block 0, and its handoff reads block 0."""
    log = Log(block_size=2, nblocks=2, nsess=1, variant="corrected", cap=0,
              faults=["write_error"])
    # req 1: one round, Success
    log.lang("alloc", rank=1, req=1, tokens=2, blocks=[0])
    log.lang("init_sent", req=1, session=1, blocks=[0], allocated_tokens=2)
    log.enc("init_recv", req=1, session=1, blocks=[0], allocated_tokens=2)
    log.enc("round_start", req=1, session=1, sent_tokens=0, tokens=2, total=2,
            src_blocks=[0], dst_blocks=[0], partial=False, aux_written=True)
    log.enc("round_end", req=1, session=1, sent_tokens=2, ok=True)
    log.enc("status_sent", req=1, session=1, status="Success", round=1, sent_tokens=2, total=2)
    log.lang("status_recv", req=1, session=1, status="Success", round=1, sent_tokens=2,
             total=2)
    log.lang("poll", req=1, status="Success", decision="handoff")
    log.lang("buffer_read", req=1, session=1, blocks=[0], aux_total=2, tokens=2)
    log.lang("handoff", req=1, session=1, tokens=2)
    log.lang("prefill_done", req=1).lang("free", rank=1, req=1, blocks=[0])
    # req 2: its first round (aux 5 into block 0) fails
    log.lang("alloc", rank=1, req=2, tokens=2, blocks=[0])
    log.lang("init_sent", req=2, session=1, blocks=[0], allocated_tokens=2)
    log.enc("init_recv", req=2, session=1, blocks=[0], allocated_tokens=2)
    log.enc("round_start", req=2, session=1, sent_tokens=0, tokens=2, total=5,
            src_blocks=[0], dst_blocks=[0], partial=True, aux_written=True)
    log.enc("write_error", req=2)
    log.enc("status_sent", req=2, session=1, status="Failed")
    log.lang("status_recv", req=2, session=1, status="Failed")
    log.lang("poll", req=2, status="Failed", decision="fail")
    log.lang("free", rank=1, req=2, blocks=[0]).lang("fail", req=2)
    # req 3: block 1, then a resume into block 0 (no aux row in round 2)
    log.lang("alloc", rank=1, req=3, tokens=2, blocks=[1])
    log.lang("init_sent", req=3, session=1, blocks=[1], allocated_tokens=2)
    log.enc("init_recv", req=3, session=1, blocks=[1], allocated_tokens=2)
    log.enc("round_start", req=3, session=1, sent_tokens=0, tokens=2, total=4,
            src_blocks=[0], dst_blocks=[1], partial=True, aux_written=True)
    log.enc("round_end", req=3, session=1, sent_tokens=2, ok=True)
    log.enc("status_sent", req=3, session=1, status="Transferring", round=1, sent_tokens=2,
            total=4)
    log.lang("status_recv", req=3, session=1, status="Transferring", round=1, sent_tokens=2,
             total=4)
    log.lang("poll", req=3, status="Transferring", decision="resume")
    log.lang("buffer_read", req=3, session=1, blocks=[1], aux_total=4, tokens=2)
    log.lang("free", rank=1, req=3, blocks=[1])
    log.lang("alloc", rank=1, req=3, tokens=2, blocks=[0])
    log.lang("resume_sent", req=3, session=1, blocks=[0], sent_tokens=2, allocated_tokens=2,
             round=1)
    log.enc("resume_recv", req=3, session=1, blocks=[0], sent_tokens=2, allocated_tokens=2,
            round=1)
    log.enc("round_start", req=3, session=1, sent_tokens=2, tokens=2, total=4,
            src_blocks=[1], dst_blocks=[0], partial=False, aux_written=False)
    log.enc("round_end", req=3, session=1, sent_tokens=4, ok=True)
    log.enc("status_sent", req=3, session=1, status="Success", round=2, sent_tokens=4, total=4)
    log.lang("status_recv", req=3, session=1, status="Success", round=2, sent_tokens=4,
             total=4)
    log.lang("poll", req=3, status="Success", decision="handoff")
    log.lang("buffer_read", req=3, session=1, blocks=[0], aux_total=read_aux, tokens=2)
    log.lang("handoff", req=3, session=1, tokens=4)
    log.lang("prefill_done", req=3).lang("free", rank=1, req=3, blocks=[0])
    return log


@pytest.mark.parametrize("read_aux, code", [
    (2, exitcodes.OK),          # req 2's aux write did not land
    (5, exitcodes.OK),          # it landed before the write error
    (7, exitcodes.VIOLATES),    # nobody wrote 7 there
])
def test_write_error_after_the_aux_row_may_have_landed(capsys, tmp_path, read_aux, code):
    got, r = both(capsys, _stale_aux_run(read_aux).write(tmp_path / "t.jsonl"))
    assert got == code, r
    if code == exitcodes.VIOLATES:
        assert r["property"] == "SpecStep" and r["line"] == len(_stale_aux_run(7).events) - 3


def test_trace_ending_with_blocks_held_is_incomplete(capsys, tmp_path):
    # valid_one_round without its last line (the free after prefill)
    path = tmp_path / "t.jsonl"
    path.write_text(corpus_lines("valid_one_round.jsonl", 13))
    code, r = both(capsys, path)
    assert code == exitcodes.INCOMPLETE and r["property"] == "BlocksEventuallyFree"


# ---------------------------------------------------------------------------
# Messages: what the reader and the CLI say about odd input
# ---------------------------------------------------------------------------
def conform(capsys, *argv) -> tuple[int, str]:
    code = cli_main(["conform", "--quiet", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_unknown_field_with_an_empty_name_is_named(capsys, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(corpus_lines("valid_one_round.jsonl", 2)
                    + '{"v":1,"proc":"language/1","seq":1,"event":"prefill_done","req":1,'
                      '"":3}\n')
    code, out = conform(capsys, "--json", path)
    assert code == exitcodes.MALFORMED
    trace = json.loads(out)["traces"][0]
    assert trace["line"] == 3 and trace["event"] == {"field": ""}
    assert "field '': " in trace["message"]


def test_carriage_return_line_endings_get_their_own_message(capsys, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(corpus_lines("valid_one_round.jsonl", 3).replace("\n", "\r").encode())
    code, out = conform(capsys, path)
    assert code == exitcodes.MALFORMED
    assert "carriage returns" in out and "truncated" not in out
    # CRLF line endings are fine (\r is JSON whitespace)
    path.write_bytes(corpus_lines("valid_one_round.jsonl").replace("\n", "\r\n").encode())
    assert conform(capsys, path)[0] == exitcodes.OK


def test_nul_only_file_gets_its_own_message(capsys, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\0" * 4096)
    code, out = conform(capsys, path)
    assert code == exitcodes.MALFORMED
    assert "only NUL bytes" in out and "truncated" not in out
    path.write_bytes(corpus_lines("valid_one_round.jsonl", 2).encode() + b'{"v":1\0}\n')
    code, out = conform(capsys, path)
    assert code == exitcodes.MALFORMED and ":3:" in out and "NUL byte (one at column 7)" in out


def test_dev_null_is_not_called_missing(capsys):
    code, out = conform(capsys, "/dev/null")
    assert code == exitcodes.BAD_INPUT
    assert "character device" in out and "no such file" not in out


def test_fifo_streams_to_the_native_checker_and_is_refused_for_two_readings(capsys, tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    text = corpus_lines("valid_one_round.jsonl").encode()

    def writer():
        with open(fifo, "wb") as f:
            f.write(text)

    t = threading.Thread(target=writer)
    t.start()
    code, out = conform(capsys, fifo)
    t.join(timeout=10)
    assert code == exitcodes.OK and "CONFORMS" in out
    code, out = conform(capsys, "--checker", "both", fifo)   # nothing opens the pipe
    assert code == exitcodes.BAD_INPUT
    assert "FIFO" in out and "read only once" in out and "no such file" not in out


def test_missing_file_and_dangling_link(capsys, tmp_path):
    code, out = conform(capsys, tmp_path / "nope.jsonl")
    assert code == exitcodes.BAD_INPUT and "no such file or directory" in out
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "gone.jsonl")
    code, out = conform(capsys, link)
    assert code == exitcodes.BAD_INPUT and "symbolic link" in out


def test_a_rank_logging_another_sessions_part(capsys, tmp_path):
    # (found by the mutation campaign, there with a buffer_read) language/1
    # logs a handoff of session 2: a rank hands over, reads, allocates, sends
    # and receives only for itself; no spec step explains it.
    events = [json.loads(x) for x in
              (CORPUS / "valid_two_sessions.jsonl").read_text().splitlines()]
    k = next(i for i, e in enumerate(events)
             if e["proc"] == "language/1" and e["event"] == "handoff")
    events[k]["session"] = 2
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    code, r = both(capsys, path)
    assert code == exitcodes.VIOLATES and r["property"] == "SpecStep"
    assert r["line"] == k + 1


def test_a_resumed_round_waits_for_every_sessions_resume(capsys, tmp_path):
    # (found by the mutation campaign) with the barrier, SenderStartRound of a
    # later round needs every session's resume; the native checker used to
    # look only at the session whose round_start it was.
    from resumespec.conformance import synth

    events = list(synth.generate(2, nsess=2, seed=1, block_size=2, nblocks=8, max_total=5))
    k = next(i for i, e in enumerate(events)
             if e["event"] == "resume_recv" and e["session"] == 2)
    req = events[k]["req"]
    j = next(i for i in range(k, len(events)) if events[i]["event"] == "round_start"
             and events[i]["req"] == req and events[i]["session"] == 1)
    events.insert(k, events.pop(j))      # session 1's round starts before session 2 resumed
    path = tmp_path / "t.jsonl"
    synth.write(path, synth.renumber(events))
    code, r = both(capsys, path)
    assert code == exitcodes.VIOLATES and r["property"] == "SpecStep"
    assert r["line"] == k + 1


def test_write_error_naming_a_session_the_room_lacks(capsys, tmp_path):
    # Found by the 1000-mutant campaign (seed 7): a one-session trace whose
    # write_error names session 2.  WriteError needs the room writing, which
    # needs every session's init; a session with no init is no spec step.
    lines = corpus_lines("valid_write_error.jsonl").splitlines(keepends=True)
    out = []
    for ln in lines:
        ev = json.loads(ln)
        if ev["event"] == "write_error":
            ev["session"] = 2
            ln = json.dumps(ev, separators=(",", ":")) + "\n"
        out.append(ln)
    path = tmp_path / "t.jsonl"
    path.write_text("".join(out))
    code, r = both(capsys, path)
    assert code == exitcodes.VIOLATES and r["property"] == "SpecStep"
    assert "session 2" in r["message"] or "session 2" in json.dumps(r)


def _round_with_an_unlogged_session(read_rank: int) -> Log:
    """Two sessions; the sender logs only session 1's round_start, then rank
    ``read_rank`` polls (Waiting: no status yet) and reads its block."""
    cfg = dict(block_size=2, nblocks=4, nsess=2, variant="once", cap=0)
    log = Log(**cfg)
    log.add("language/2", "config", **cfg)
    for s in (1, 2):
        p = f"language/{s}"
        log.add(p, "alloc", rank=s, req=1, tokens=2, blocks=[0])
        log.add(p, "init_sent", req=1, session=s, blocks=[0], allocated_tokens=2)
    for s in (1, 2):
        log.enc("init_recv", req=1, session=s, blocks=[0], allocated_tokens=2)
    log.enc("round_start", req=1, session=1, sent_tokens=0, tokens=2, total=2,
            src_blocks=[0], dst_blocks=[0], partial=False, aux_written=True)
    p = f"language/{read_rank}"
    log.add(p, "poll", req=1, status="WaitingForInput", decision="wait")
    log.add(p, "buffer_read", req=1, session=read_rank, blocks=[0], aux_total=0, tokens=0)
    return log


def test_a_read_during_a_rounds_unlogged_part(capsys, tmp_path):
    # Issue 14's open disagreement (1000-mutant campaign, seed 7): session 2's
    # round_start is missing from the sender's log.  SenderStartRound is one
    # step over every session, so once session 1's part is logged, session
    # 2's write into its init's block is in flight too: rank 2 reading that
    # block violates NoReadDuringWrite (both checkers; the native one used to
    # count only logged writes and say incomplete).
    path = _round_with_an_unlogged_session(2).write(tmp_path / "t.jsonl")
    code, r = both(capsys, path)
    assert code == exitcodes.VIOLATES and r["property"] == "NoReadDuringWrite", r
    assert r["tlc"]["property"] == "NoReadDuringWrite", r
    assert r["line"] == len(_round_with_an_unlogged_session(2).events)
    assert "block 0 on rank 2" in r["message"]


def test_a_read_during_a_rounds_logged_part(capsys, tmp_path):
    # The same, rank 1 reading: its write was logged; the same verdict.
    path = _round_with_an_unlogged_session(1).write(tmp_path / "t.jsonl")
    code, r = both(capsys, path)
    assert code == exitcodes.VIOLATES and r["property"] == "NoReadDuringWrite", r
    assert "block 0 on rank 1" in r["message"]


# -- the benchmark's adversarial shapes are valid runs -----------------------
# bench/bench_conformance.py times these shapes at n and 4n and asserts they
# conform; a generator that drifts from the spec (an init of the wrong size,
# blocks off the declared fifo order) would turn the benchmark into a crash.
@pytest.mark.parametrize("shape", ["heartbeat_storm", "wide_request"])
def test_bench_shapes_conform(tmp_path, shape):
    from resumespec.conformance import synth
    from resumespec.conformance.checker_native import check_native

    gen = getattr(synth, shape)
    for n in (3, 12):
        path = tmp_path / f"{shape}-{n}.jsonl"
        events = synth.write(path, gen(n))
        verdict = check_native([str(path)])
        assert verdict.verdict == "conforms", (shape, n, verdict.to_json())
        assert events >= 7 * n


def test_heartbeat_storm_is_checked_for_block_order(tmp_path):
    """The storm declares fifo: one block taken out of order is caught."""
    from resumespec.conformance import synth
    from resumespec.conformance.checker_native import check_native

    events = list(synth.heartbeat_storm(4))
    allocs = [e for e in events if e["event"] == "alloc" and e.get("req") == 3]
    allocs[0]["blocks"] = [allocs[0]["blocks"][0] + 1]
    path = tmp_path / "storm.jsonl"
    synth.write(path, iter(events))
    verdict = check_native([str(path)])
    assert verdict.verdict == "violates"
    assert verdict.line is not None


# -- a resume poll whose buffer_read is not logged ----------------------------
# (campaign seed 21, cached_sent1:drop:10) The read is an observation: TLC's
# trace spec takes the design's read as it happens in the spec, logged or not.
# The native checker used to decide the historical resume from the logged aux
# row only, and with none logged called the resume one the design cannot send.
@pytest.mark.parametrize("name", ["ref_cached_sent.jsonl", "ref_sent_tokens.jsonl"])
def test_resume_poll_without_its_read_logged(tmp_path, name):
    from resumespec.conformance.checker_native import check_native
    from resumespec.conformance.tlc_trace import check_tlc

    lines = (CORPUS / name).read_text().splitlines()
    events = [json.loads(x) for x in lines]
    i = next(k for k, e in enumerate(events)
             if e["event"] == "buffer_read" and any(
                 f["event"] == "resume_sent" for f in events[k + 1:k + 5]))
    dropped = events[i]
    kept = [e for k, e in enumerate(events) if k != i]
    for e in kept:                 # renumber the process's seq after the gap
        if e["proc"] == dropped["proc"] and e["seq"] > dropped["seq"]:
            e["seq"] -= 1
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in kept))
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=300)
    assert (native.verdict, native.prop) == (tlc.verdict, tlc.prop), (native.message,
                                                                      tlc.message)
    if name == "ref_cached_sent.jsonl":          # a valid run, less one logged read
        assert native.verdict == "conforms", native.message


# -- a status received between an abort and its frees -------------------------
# (campaign seed 21, sent_tokens2:drop:261) Rank 1 logs `abort`, then takes a
# Success status from the channel (another thread), and the log ends before
# the abort's `free`. The status_recv is not the rank's next step, so the
# abort's step is still being logged: incomplete from both checkers (the
# native checker used to end the step there and call its frees partial).
def test_status_recv_between_an_abort_and_its_frees(tmp_path):
    from resumespec.conformance.checker_native import check_native
    from resumespec.conformance.tlc_trace import check_tlc

    src = ROOT / "tests" / "fixtures" / "adversarial" / "abort_frees_after_a_status_recv.jsonl"
    native = check_native([str(src)])
    tlc = check_tlc([str(src)], timeout=300)
    assert native.verdict == tlc.verdict == "incomplete", (native.message, tlc.message)
    # the same log going on with a poll on rank 1: that is the rank's next
    # step, and the abort's frees were never logged
    events = [json.loads(x) for x in src.read_text().splitlines()]
    events.append({"v": 1, "proc": "language/1", "seq": 8, "event": "poll", "req": 1,
                   "status": "Success", "decision": "wait"})
    path = tmp_path / "poll_after.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=300)
    assert native.verdict == tlc.verdict == "violates", (native.message, tlc.message)


# -- a heartbeat loss logged by one rank only ----------------------------------
# (campaign seed 21, once2:drop:819) Rank 2 learns of the lost heartbeat only
# through the all-reduced status (Failed) and logs no heartbeat_fail; both
# ranks then fail and free. The run is over: conforms from both checkers
# (TLC said incomplete while it counted every lockstep step a rank had not
# logged as cut off by the end of the log; a heartbeat is not such a step).
def test_heartbeat_loss_logged_by_one_rank_only():
    from resumespec.conformance.checker_native import check_native
    from resumespec.conformance.tlc_trace import check_tlc

    src = ROOT / "tests" / "fixtures" / "adversarial" / "heartbeat_logged_by_one_rank.jsonl"
    native = check_native([str(src)])
    tlc = check_tlc([str(src)], timeout=300)
    assert native.verdict == tlc.verdict == "conforms", (native.message, tlc.message)
