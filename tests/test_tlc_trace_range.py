"""TLC trace validation gives a verdict on every schema-valid trace: block ids
of any size are renumbered, token counts beyond its range are refused with a
clear message (exit 9), and no file name reaches TLA+ unescaped."""

from __future__ import annotations

from resumespec import exitcodes
from resumespec.cli import main as cli_main
from resumespec.conformance import synth
from resumespec.conformance.checker_native import check_native
from resumespec.conformance.tlc_trace import (
    MAX_TOKENS,
    _load,
    block_map,
    check_tlc,
    comment_safe,
    render,
    steps_of,
)


def _base(order=None, nblocks=4):
    events = list(synth.generate(1, nsess=1, seed=4, block_size=2, nblocks=nblocks,
                                 max_total=5))
    for e in events:
        if e["event"] == "config" and order:
            e["order"] = order
    return events


def _shift(events, f, nblocks=None):
    out = [dict(e) for e in events]
    for e in out:
        for key in ("blocks", "dst_blocks", "src_blocks"):
            if e.get(key):
                e[key] = [f(b) for b in e[key]]
        if e["event"] == "config" and nblocks:
            e["nblocks"] = nblocks
    return out


def _write(tmp_path, name, events):
    path = tmp_path / name
    synth.write(path, events)
    return str(path)


def test_block_map_keeps_named_blocks_and_short_runs():
    events = [(1, {"event": "alloc", "blocks": [3, 10]}), (2, {"event": "free", "blocks": [0]})]
    bmap, n = block_map(events, nblocks=2**31, need=2, open_steps=0)
    # 0 | 1 2 | 3 | 4..9 (6 blocks, 2 kept) | 10 | the rest (2 kept)
    assert bmap == {0: 1, 3: 4, 10: 7} and n == 9
    # a pool the trace fills is left as it is
    assert block_map(events, nblocks=11, need=8, open_steps=0) == ({0: 1, 3: 4, 10: 11}, 11)
    # the runs grow with the steps the end of the log may leave to the spec
    assert block_map(events, nblocks=2**31, need=2, open_steps=1)[1] == 1 + 2 + 1 + 4 + 1 + 4


def test_block_id_2147483647_gets_a_verdict(tmp_path):
    """The same run logged with block ids near 2^31 in a pool of 2^31 blocks."""
    events = _shift(_base(), lambda b: 2147483647 - b, nblocks=2**31)
    assert max(b for e in events for b in e.get("blocks") or ()) == 2147483647
    path = _write(tmp_path, "huge_ids.jsonl", events)
    model = steps_of(_load([path]))
    assert model.constants["NBlocks"] < 20
    assert check_tlc([path], timeout=120).verdict == "conforms"
    assert check_native([path]).verdict == "conforms"


def test_renumbering_keeps_the_allocator_order(tmp_path):
    """fifo: a first allocation that skips blocks the trace never names is no
    step of the spec, however far away those blocks are."""
    good = _shift(_base("fifo"), lambda b: b, nblocks=2**31)
    path = _write(tmp_path, "fifo_good.jsonl", good)
    assert check_tlc([path], timeout=120).verdict == "conforms"
    assert check_native([path]).verdict == "conforms"
    skipped = _shift(_base("fifo"), lambda b: b + 10**9, nblocks=2**31)
    path = _write(tmp_path, "fifo_skips.jsonl", skipped)
    # (the native checker judges the fifo order of reused blocks only, so it
    # lets this one pass; the spec's free list starts 0, 1, 2, ...)
    tlc = check_tlc([path], timeout=120)
    assert tlc.verdict == "violates" and tlc.prop == "SpecStep"


def test_token_count_beyond_range_is_refused_clearly(tmp_path, capsys):
    events = [dict(e) for e in _base()]
    k = next(i for i, e in enumerate(events) if e["event"] == "round_start")
    events[k]["total"] = 2**40
    path = _write(tmp_path, "big_total.jsonl", events)
    v = check_tlc([path])
    assert v.verdict == "error" and v.exit_code == exitcodes.BAD_INPUT
    assert "total = 1099511627776" in v.message and f"{MAX_TOKENS:,}" in v.message
    assert v.line == k + 1 and v.file == path
    assert cli_main(["conform", "--quiet", "--checker", "tlc", path]) == exitcodes.BAD_INPUT
    assert "beyond the range of TLC trace validation" in capsys.readouterr().out
    # the native checker has no such limit
    assert check_native([path]).verdict in ("conforms", "violates", "incomplete")


def test_a_file_name_with_a_newline_is_not_pasted_into_tla(tmp_path):
    path = _write(tmp_path, "two\nlines *) \\* x.jsonl", _base())
    module, _ = render(steps_of(_load([path])), source=comment_safe("two\nlines *) \\* x"))
    assert "two?lines ?? ?? x" in module
    assert check_tlc([path], timeout=120).verdict == "conforms"


def test_block_size_and_conflicting_configs_beyond_range_are_refused(tmp_path):
    events = [dict(e) for e in _base()]
    for e in events:
        if e["event"] == "config":
            e["block_size"] = 5000
    v = check_tlc([_write(tmp_path, "wide_blocks.jsonl", events)])
    assert v.verdict == "error" and v.exit_code == exitcodes.BAD_INPUT
    assert "block_size = 5000" in v.message and v.line == 1
    # two processes with two configurations, one of them out of range
    events[0]["block_size"] = 2**40
    v = check_tlc([_write(tmp_path, "two_configs.jsonl", events)])
    assert v.exit_code == exitcodes.BAD_INPUT and "block_size = 1099511627776" in v.message
