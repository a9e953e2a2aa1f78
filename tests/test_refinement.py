"""The native checker checks refinement of the declared design (issue 9).

Two traces that a property monitor passes and TLC rejects: a mainline
(``once``) run that resumes a second time, and a corrected-design run whose
resume names the wrong round.  The native checker replays each rank's
decisions through the protocol core and must reject both at the right event,
saying what the design would have done.  Then the other decision points:
an init of the wrong size, a resume with the wrong offset, an allocation that
returned None although the design had enough blocks, and historical designs
resuming when they believe they already did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumespec.conformance.checker_native import NativeChecker, check_native

CORPUS = Path(__file__).resolve().parent.parent / "conformance" / "corpus"


def load(name: str) -> list[dict]:
    """A corpus trace without its timestamps and its polls that decided wait."""
    out = []
    for line in (CORPUS / name).read_text().splitlines():
        ev = json.loads(line)
        ev.pop("ts", None)
        if ev["event"] == "poll" and ev["decision"] == "wait":
            continue
        out.append(ev)
    return out


def renumber(events: list[dict]) -> list[dict]:
    seq: dict[str, int] = {}
    for ev in events:
        ev["seq"] = seq.get(ev["proc"], 0)
        seq[ev["proc"]] = ev["seq"] + 1
    return events


def L(event: str, **f) -> dict:
    return dict({"v": 1, "proc": "language/1", "seq": 0, "event": event}, **f)


def E(event: str, **f) -> dict:
    return dict({"v": 1, "proc": "encode", "seq": 0, "event": event}, **f)


def write(tmp_path: Path, events: list[dict], name: str = "t.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(e) + "\n" for e in renumber(events)))
    return p


def line_of(events: list[dict], pred) -> int:
    return next(i + 1 for i, e in enumerate(events) if pred(e))


def once_resumes_twice() -> list[dict]:
    """ref_once_hang (cap 1: the mainline design caches round 1, resumes, and
    then hangs on round 2) carried on as if the engine resumed round 2 too."""
    ev = load("ref_once_hang.jsonl")
    ev += [
        L("poll", req=1, status="Transferring", decision="resume"),
        L("alloc", rank=1, req=1, tokens=1, blocks=[2]),
        L("free", rank=1, req=1, blocks=[1]),
        L("resume_sent", req=1, session=1, blocks=[2], sent_tokens=2, allocated_tokens=1),
        E("resume_recv", req=1, session=1, blocks=[2], sent_tokens=2, allocated_tokens=1),
        E("round_start", req=1, session=1, sent_tokens=2, tokens=1, src_blocks=[2],
          dst_blocks=[2], total=3, partial=False, aux_written=False),
        E("round_end", req=1, session=1, sent_tokens=3, ok=True),
        E("status_sent", req=1, session=1, status="Success"),
        L("status_recv", req=1, session=1, status="Success"),
        L("poll", req=1, status="Success", decision="handoff"),
        L("buffer_read", req=1, session=1, blocks=[2], aux_total=0, tokens=1, ids=[[1, 3]]),
        L("handoff", req=1, session=1, tokens=3, ids=[[1, 1], [1, 2], [1, 3]]),
        L("prefill_done", req=1),
        L("free", rank=1, req=1, blocks=[2]),
    ]
    return ev


def corrected_wrong_round() -> list[dict]:
    """ref_corrected with req 1's resume (and its receipt) naming round 2
    where the status it answers named round 1: changed on both sides."""
    ev = load("ref_corrected.jsonl")
    for e in ev:
        if e["event"] in ("resume_sent", "resume_recv") and e["req"] == 1:
            e["round"] = 2
    return ev


# ---------------------------------------------------------------------------
# The two traces of issue 9
# ---------------------------------------------------------------------------
def test_once_resuming_twice_violates_at_the_second_poll(tmp_path):
    events = once_resumes_twice()
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates", v.to_json()
    assert v.prop == "SpecStep"
    bad = [i + 1 for i, e in enumerate(events)
           if e["event"] == "poll" and e["decision"] == "resume"][1]
    assert v.line == bad and v.event["event"] == "poll"
    assert "design once does not resume here" in v.message
    assert "cached 1 token" in v.message
    assert "resume only if nothing is cached yet" in v.expected and "already resumed" in v.expected


def test_corrected_resume_naming_the_wrong_round_violates(tmp_path):
    events = corrected_wrong_round()
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates", v.to_json()
    assert v.prop == "SpecStep"
    assert v.line == line_of(events, lambda e: e["event"] == "resume_sent" and e["req"] == 1)
    assert "round 2" in v.message and "cannot send here" in v.message
    assert "round 1" in v.expected and "sent_tokens 2" in v.expected


def test_unchanged_traces_still_conform(tmp_path):
    for name in ("ref_once.jsonl", "ref_corrected.jsonl", "ref_flag.jsonl",
                 "ref_indices.jsonl", "ref_cached_sent.jsonl"):
        v = check_native([str(write(tmp_path, load(name), name))])
        assert v.verdict == "conforms", (name, v.to_json())


# ---------------------------------------------------------------------------
# Other decision points and message fields
# ---------------------------------------------------------------------------
def test_resume_offset_the_design_cannot_send(tmp_path):
    """A coordinated change: both sides agree on sent_tokens 1, the design says 2."""
    events = load("ref_corrected.jsonl")
    for e in events:
        if e["req"] == 2 if "req" in e else False:
            if e["event"] in ("resume_sent", "resume_recv"):
                e["sent_tokens"] = 1
            if e["event"] == "round_start" and e["sent_tokens"] == 2:
                e["sent_tokens"] = 1
                e["tokens"] = 2
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates"
    assert v.event["event"] == "resume_sent" and v.event["req"] == 2
    assert "sent_tokens 2" in v.expected and "round 1" in v.expected


def test_historical_resume_that_believes_it_already_resumed(tmp_path):
    """Design flag resumes at most once: a flag trace relabelled, resuming round 2."""
    events = once_resumes_twice()
    for e in events:
        if e["event"] == "config":
            e["variant"] = "flag"
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates"
    assert v.event["event"] == "poll"
    assert "design flag does not resume here" in v.message
    assert "resume at most once" in v.expected


def test_init_of_the_wrong_size(tmp_path):
    events = load("ref_once.jsonl")
    for e in events:
        if e["event"] == "config":
            e["init_tokens"] = 4
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates"
    assert v.event["event"] == "alloc"     # (its alloc asks for 2 tokens, not 4)
    assert "4 tokens: ReceiverInit allocates init_tokens" in v.expected


def test_alloc_none_with_enough_blocks_free(tmp_path):
    """A free_first resume whose allocation says None (the request then
    fails) while the pool had room: the design resumes there."""
    events = load("ref_flag.jsonl")
    i = line_of(events, lambda e: e["event"] == "alloc" and e["req"] == 1 and e["tokens"] == 3) - 1
    events.insert(i, L("alloc", rank=1, req=1, tokens=3, blocks=None))
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates"
    assert v.event["event"] == "alloc" and v.event["blocks"] is None
    assert "returned None with 4 block(s) free" in v.message
    assert "allocates 2 block(s)" in v.expected


def test_alloc_none_allocating_first_is_a_retry(tmp_path):
    """Allocating first, a None is the resume not taken now (the reference's
    injected alloc_fail): allowed, the next poll resumes."""
    events = load("ref_once.jsonl")
    i = line_of(events, lambda e: e["event"] == "poll" and e["req"] == 1
                and e["decision"] == "resume") - 1
    events[i:i] = [L("poll", req=1, status="Transferring", decision="retry_alloc"),
                   L("buffer_read", req=1, session=1, blocks=[0], aux_total=5, tokens=2),
                   L("alloc", rank=1, req=1, tokens=3, blocks=None)]
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "conforms", v.to_json()


def test_without_a_declared_design_only_properties_are_checked(tmp_path):
    events = [e for e in once_resumes_twice() if e["event"] != "config"]
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "conforms"


def test_core_state_is_forgotten_with_the_request(tmp_path):
    events = load("ref_corrected.jsonl")
    c = NativeChecker()
    for i, e in enumerate(renumber(events)):
        assert c.feed(i + 1, e) is None
    assert not c.state.rx_core and not c.state.rx_ctx
    assert c.finish().verdict == "conforms"


@pytest.mark.parametrize("build", [once_resumes_twice, corrected_wrong_round])
def test_tlc_agrees(tmp_path, build):
    from resumespec.conformance.tlc_trace import check_tlc

    p = write(tmp_path, build())
    assert check_tlc([str(p)]).verdict == "violates"


def test_handoff_read_of_the_wrong_length(tmp_path):
    """The mainline design hands over its cached total less what it cached:
    3 tokens of the last round, not 2 (the ids are left out: only the count)."""
    events = load("ref_once.jsonl")
    for e in events:
        if e["event"] == "buffer_read" and e["req"] == 1 and e["blocks"] == [2, 3]:
            e["tokens"] = 2
            del e["ids"]
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates"
    assert v.event["event"] == "buffer_read" and v.event["req"] == 1
    assert "but design once reads 3 there" in v.message


def test_init_alloc_of_the_wrong_size(tmp_path):
    """The alloc of a new request asks for init_tokens (a campaign mutant
    that TLC rejected: tokens 1 where init_tokens is 2, the same one block)."""
    events = load("ref_once.jsonl")
    events[2]["tokens"] = 1
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates" and v.line == 3
    assert "2 tokens: ReceiverInit allocates init_tokens" in v.expected


# ---------------------------------------------------------------------------
# Which blocks an allocation returns: the core's free list (pool.FreeList)
# ---------------------------------------------------------------------------
def swap_blocks(events: list[dict], a: int, b: int, order: str | None = None) -> list[dict]:
    """The trace with block ids ``a`` and ``b`` swapped everywhere (a run as
    consistent as before, but for the allocator's order); ``order``: the
    config's allocator order instead."""
    sw = {a: b, b: a}
    out = []
    for ev in events:
        ev = dict(ev)
        for k in ("blocks", "dst_blocks"):
            if ev.get(k):
                ev[k] = [sw.get(x, x) for x in ev[k]]
        if ev["event"] == "config" and order is not None:
            ev["order"] = order
        out.append(ev)
    return out


def test_fifo_allocator_returning_another_free_block(tmp_path):
    events = swap_blocks(load("ref_once.jsonl"), 0, 5)
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates" and v.prop == "SpecStep"
    assert v.line == line_of(events, lambda e: e["event"] == "alloc")
    assert "returned blocks [5]" in v.message and "fifo allocator returns [0]" in v.message
    assert v.expected.startswith("blocks [0]: the fifo allocator")


def test_any_order_allows_any_free_blocks(tmp_path):
    events = swap_blocks(load("ref_once.jsonl"), 0, 5, order="any")
    assert check_native([str(write(tmp_path, events))]).verdict == "conforms"
    events = swap_blocks(load("ref_once.jsonl"), 0, 5, order="fifo")
    assert check_native([str(write(tmp_path, events, "b.jsonl"))]).verdict == "violates"


def test_lifo_allocator_takes_the_tail(tmp_path):
    # The same run declared lifo: its first allocation takes block 0, the
    # head of the free list; lifo takes the tail (the highest id, 5).
    events = swap_blocks(load("ref_once.jsonl"), 0, 0, order="lifo")
    v = check_native([str(write(tmp_path, events))])
    assert v.verdict == "violates" and "lifo allocator returns [5]" in v.message
    assert v.line == line_of(events, lambda e: e["event"] == "alloc")


def test_tlc_agrees_on_the_allocator_order(tmp_path):
    from resumespec.conformance.tlc_trace import check_tlc

    events = swap_blocks(load("ref_once.jsonl"), 0, 5)
    p = write(tmp_path, events)
    assert check_tlc([str(p)]).verdict == "violates"
    p = write(tmp_path, swap_blocks(load("ref_once.jsonl"), 0, 5, order="any"), "b.jsonl")
    assert check_tlc([str(p)]).verdict == "conforms"
