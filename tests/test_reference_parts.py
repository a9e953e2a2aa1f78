"""Parts of the reference implementation: allocator, buffers, checks, trace, CLI."""

from __future__ import annotations

import json
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import argparse

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resumespec import exitcodes
from resumespec.reference import cli as reference_cli


def cli_main(argv: list[str]) -> int:
    """``resumespec`` with only this part's subcommand registered (the
    reference part is testable without the others' dependencies)."""
    parser = argparse.ArgumentParser(prog="resumespec")
    reference_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
from resumespec.reference.allocator import BlockAllocator, CorePicker
from resumespec.reference.buffers import BlockBuffers, BlockCopy, make_source_embedding
from resumespec.reference.checks import PoolChecker, Violation, check_handoff
from resumespec.reference.device import choose_device
from resumespec.reference.scheduler import run
from resumespec.reference.world import Config

DEV = choose_device("auto")


# -- allocator -------------------------------------------------------------------
def test_allocator_all_or_nothing_block_granularity():
    a = BlockAllocator(4, block_size=3)
    assert a.alloc(7) == [0, 1, 2]          # ceil(7/3) = 3 blocks
    assert a.alloc(4) is None               # needs 2, 1 free: nothing taken
    assert a.available() == 1


@pytest.mark.parametrize("order,expected", [("fifo", [2]), ("lifo", [1])])
def test_allocator_reuse_order(order, expected):
    a = BlockAllocator(3, block_size=1, order=order)
    a.alloc(3)
    a.free([1])
    a.free([2])
    assert a.alloc(1) == ([1] if order == "fifo" else [2])
    assert a.alloc(1) == ([2] if order == "fifo" else [1]) or expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["fifo", "lifo", "random"]), st.integers(1, 3), st.integers(0, 50),
       st.lists(st.tuples(st.booleans(), st.integers(0, 7)), max_size=30))
def test_core_picker_picks_what_the_engine_allocator_takes(order, bs, seed, ops):
    """The reference's allocator (``CorePicker``: picks from the core's free
    list, changes nothing until the host takes the pick) takes the same
    blocks as the engine's allocator over any run of allocations and frees."""
    engine = BlockAllocator(6, bs, order, seed=seed)
    picker = CorePicker(bs, order, seed=seed)
    free = tuple(range(6))
    held: list[int] = []
    for is_alloc, n in ops:
        if is_alloc:
            first = picker.pick(free, n)
            assert picker.pick(free, n) == first          # asking again changes nothing
            got = engine.alloc(n)
            assert (None if first is None else list(first[0])) == got
            if first is not None:
                picker.took(free, first[0])
                free = first[1]
                held += got
        elif held:
            back = held[: n % len(held) + 1]
            held = held[len(back):]
            engine.free(back)
            free = free + tuple(back)
        assert list(free) == list(engine.free_list)
    picker.fail_next = True
    assert picker.pick(free, 0) is None
    picker.failed()
    assert picker.pick(free, 0) == ((), free)


def test_allocator_random_is_seeded_and_free_is_unchecked():
    picks = [BlockAllocator(8, 1, "random", seed=3).alloc(4) for _ in range(2)]
    assert picks[0] == picks[1] and len(set(picks[0])) == 4
    a = BlockAllocator(2, 1)
    b = a.alloc(1)
    a.free(b)
    a.free(b)  # the engine's deque accepts a double free ...
    assert a.alloc(2) == [1, 0] and a.alloc(1) == [0]  # ... and hands the block out twice


# -- buffers -------------------------------------------------------------------------
def test_gather_takes_length_from_aux_and_blocks_are_never_cleared():
    src = BlockBuffers(3, 2, 4, DEV)
    emb, ids, mrope = make_source_embedding(1, 5, 4, DEV, seed=0)
    for i in range(3):
        src.load(i, emb[2 * i:2 * i + 2], ids[2 * i:2 * i + 2], mrope[:, 2 * i:2 * i + 2])
    src.write_aux(0, 5, 0)
    dst = BlockBuffers(3, 2, 4, DEV)
    for i, b in enumerate([2, 0, 1]):
        dst.copy_block_from(src, i, b, min(2, 5 - 2 * i), with_aux=i == 0)
    g = dst.gather([2, 0, 1])
    assert g.aux_total == 5 and g.tokens == 5
    assert torch.equal(g.fill_ids, ids) and torch.equal(g.mrope, mrope)
    assert torch.equal(g.embeddings.view(torch.int16), emb.view(torch.int16))
    # a later reader of block 2 sees the stale total, also after a full-block
    # write that does not carry the aux row
    dst.copy_block_from(src, 1, 2, 2, with_aux=False)
    assert dst.gather([2, 0]).aux_total == 5 and dst.gather([2, 0]).tokens == 4
    assert torch.equal(dst.fill_ids[2], ids[2:4])


def _random_pool(num_blocks: int, block_size: int, hidden: int, seed: int, **kw) -> BlockBuffers:
    """A pool whose every byte is random (stale data from earlier writers)."""
    pool = BlockBuffers(num_blocks, block_size, hidden, DEV, **kw)
    gen = torch.Generator().manual_seed(seed)
    pool.rows.copy_(torch.randint(0, 256, tuple(pool.rows.shape), dtype=torch.uint8, generator=gen))
    pool.aux.copy_(torch.randint(0, 1 << 20, tuple(pool.aux.shape), dtype=torch.int32, generator=gen))
    return pool


def _same_bytes(a: BlockBuffers, b: BlockBuffers) -> bool:
    return torch.equal(a.rows, b.rows) and torch.equal(a.aux, b.aux)


def _per_block_ops(bs: int, copies) -> int:
    return sum((1 if c.tokens == bs else 3) + c.with_aux for c in copies)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3), st.sampled_from([4, 8]), st.integers(0, 2**16), st.data())
def test_batched_copy_equals_one_copy_per_block_in_order(bs, hidden, seed, data):
    copies = data.draw(st.lists(st.builds(BlockCopy, st.integers(0, 5), st.integers(0, 5),
                                          st.integers(1, bs), st.booleans()), max_size=12))
    src = _random_pool(6, bs, hidden, seed)
    one_by_one = _random_pool(6, bs, hidden, seed + 1)
    batched = _random_pool(6, bs, hidden, seed + 1)
    ops = sum(one_by_one.copy_block_from(src, *c) for c in copies)
    assert ops == _per_block_ops(bs, copies)
    assert batched.copy_blocks_from(src, copies) <= ops
    assert _same_bytes(batched, one_by_one)


@pytest.mark.parametrize("src,dst,ops", [
    ([4, 5, 6, 7], [1, 2, 3, 4], 1),            # one run: one slice copy
    ([4, 5, 6, 7], [5, 6, 7, 0], 2),            # FIFO wrapping round: two slices
    ([4, 5, 6, 7], [3, 0, 6, 1], 2),            # scattered: ids upload + index_copy_
    ([0, 2, 4, 6], [5, 3, 1, 0], 4),            # both scattered, 4 runs: 4 slices
    ([0, 2, 4, 6, 7], [5, 3, 1, 0, 2], 4)])     # 5 runs: 2 uploads + index_select + index_copy_
def test_batched_copy_takes_the_fewest_ops(src, dst, ops):
    src_pool = _random_pool(8, 2, 4, 1)
    pool = _random_pool(8, 2, 4, 2)
    stale_aux = pool.aux.clone()
    copies = [BlockCopy(s, d, 2, False) for s, d in zip(src, dst)]
    assert pool.copy_blocks_from(src_pool, copies) == ops
    for c in copies:
        assert torch.equal(pool.rows[c.dst_block], src_pool.rows[c.src_block])
    assert torch.equal(pool.aux, stale_aux)   # the writes carry no aux row


def test_batched_copy_keeps_the_order_of_writes_into_one_block():
    # block 2 is written twice in one batch (freed and given out again in
    # between): the later write wins, although it reads a lower source block
    src = _random_pool(4, 2, 4, 3)
    pool = _random_pool(4, 2, 4, 4)
    pool.copy_blocks_from(src, [BlockCopy(3, 2, 2, True), BlockCopy(1, 0, 2, False),
                                BlockCopy(0, 2, 2, True)])
    assert torch.equal(pool.rows[2], src.rows[0]) and torch.equal(pool.aux[2], src.aux[0])


def test_batched_landing_waits_for_a_read_and_reads_settle_first():
    src = _random_pool(2, 2, 4, 5)
    src.write_aux(0, 7, 0)
    pool = BlockBuffers(3, 2, 4, DEV, batch_landings=True)
    pool.land(src, BlockCopy(0, 1, 2, True))
    pool.land(src, BlockCopy(1, 2, 2, False))
    assert pool.queued_landings == 2 and pool.aux[1, 0].item() == 0   # not copied yet
    assert pool.aux_total(1) == 7                                     # a read copies first
    assert pool.queued_landings == 0 and [len(b) for _, b in pool.landing_batches] == [2]
    assert torch.equal(pool.rows[1:], src.rows) and torch.equal(pool.aux[1], src.aux[0])
    assert not pool.aux[2].any()   # that write did not carry the aux row
    per_block = BlockBuffers(3, 2, 4, DEV)
    per_block.land(src, BlockCopy(0, 1, 2, True))
    assert per_block.queued_landings == 0 and per_block.aux[1, 0].item() == 7


# -- checks --------------------------------------------------------------------------
def test_pool_checker_catches_each_violation():
    c = PoolChecker(1, 3)
    c.on_alloc(1, [0])
    with pytest.raises(Violation, match="shared_block"):
        c.on_alloc(2, [0])
    c.on_free(1, [0])
    with pytest.raises(Violation, match="double_free"):
        c.on_free(1, [0])
    with pytest.raises(Violation, match="write_into_unowned"):
        c.on_write_land(1, 0)
    c.on_alloc(1, [1])
    c.on_write_issue(1)
    with pytest.raises(Violation, match="read_during_write"):
        c.on_read(1, [1])
    with pytest.raises(Violation, match="leak"):
        c.check_no_leak([0, 2])


def test_handoff_check_catches_one_flipped_bit():
    emb, ids, mrope = make_source_embedding(2, 6, 8, DEV, seed=1)
    check_handoff(2, 1, (emb.clone(), ids.clone(), mrope.clone()), (emb, ids, mrope))
    bad = emb.clone()
    bad.view(torch.int16)[3, 5] ^= 1
    with pytest.raises(Violation, match="corruption"):
        check_handoff(2, 1, (bad, ids, mrope), (emb, ids, mrope))
    with pytest.raises(Violation, match="corruption"):
        check_handoff(2, 1, (emb[:5], ids[:5], mrope[:, :5]), (emb, ids, mrope))


# -- trace -----------------------------------------------------------------------------
@pytest.mark.parametrize("variant,faults", [("corrected", ("abort", "heartbeat", "write_error", "alloc_fail")),
                                            ("sent_tokens", ()), ("once", ("abort",))])
def test_trace_validates_against_the_conformance_schema(tmp_path, variant, faults):
    from resumespec.conformance.trace import load_schema, read_trace, validate_event
    try:  # a project dependency; absent on a bare GPU image, where validate_event still checks
        import jsonschema
        validator = jsonschema.Draft202012Validator(load_schema())
    except ImportError:
        validator = None
    for seed in range(6):
        cfg = Config(variant=variant, tokens=[5, 3], block_size=2, pool=3, sessions=2, cap=1,
                     faults=faults, seed=seed)
        r = run(cfg)
        path = tmp_path / f"t{seed}.jsonl"
        r.world.trace.write_jsonl(str(path))
        lines = path.read_text().splitlines()
        assert len(lines) == len(r.world.trace.events) > 10
        for i, line in enumerate(lines, start=1):
            ev = json.loads(line)
            validate_event(ev, i)
            if validator is not None:
                validator.validate(ev)
        assert sum(1 for _ in read_trace(str(path))) == len(lines)


def test_trace_logs_poll_before_its_decision_and_one_status_per_session():
    r = run(Config(tokens=[3], block_size=1, pool=2, sessions=2, cap=1, seed=4))
    lang = [e for e in r.world.trace.events if e["proc"] == "language/1"]
    for i, e in enumerate(lang):
        if e["event"] == "resume_sent":
            before = [x["event"] for x in lang[:i]]
            last_poll = len(before) - 1 - before[::-1].index("poll")
            assert lang[last_poll]["decision"] == "resume"
    sent = [e for e in r.world.trace.events if e["event"] == "status_sent"]
    assert sorted({e["session"] for e in sent}) == [1, 2]
    seqs = {}
    for e in r.world.trace.events:
        assert e["seq"] == seqs.get(e["proc"], 0)
        seqs[e["proc"]] = e["seq"] + 1


# -- CLI -------------------------------------------------------------------------------
def test_cli_ok_and_failed_runs(tmp_path, capsys):
    assert cli_main(["simulate", "--tokens", "5,4", "--block-size", "2", "--cap", "1",
                     "--sessions", "2", "--json"]) == exitcodes.OK
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "ok" and out["rounds"]["1"] == 3 and out["bytes_moved"] > 0
    sched = tmp_path / "s.json"
    assert cli_main(["simulate", "--variant", "once", "--tokens", "3", "--cap", "1",
                     "--save-schedule", str(sched), "--trace", str(tmp_path / "t.jsonl")]) == exitcodes.SIM_FAILED
    assert "hang" in capsys.readouterr().out
    # the saved schedule replays to the same outcome
    assert cli_main(["simulate", "--variant", "once", "--tokens", "3", "--cap", "1",
                     "--schedule", str(sched), "--json"]) == exitcodes.SIM_FAILED
    assert json.loads(capsys.readouterr().out)["outcome"] == "hang"


def test_cli_batched_and_per_block_landing_report_the_same_run(capsys):
    argv = ["simulate", "--tokens", "9,7", "--block-size", "2", "--pool", "5", "--cap", "2",
            "--sessions", "2", "--seed", "3", "--json"]
    summaries = []
    for flag in ("--batch-writes", "--no-batch-writes"):
        assert cli_main(argv + [flag]) == exitcodes.OK
        summaries.append(json.loads(capsys.readouterr().out))
    batched, per_block = summaries
    assert batched["batch_writes"] and not per_block["batch_writes"]
    for key in ("outcome", "steps", "rounds", "resumes", "bytes_moved", "block_writes"):
        assert batched[key] == per_block[key], key
    assert per_block["write_ops"] > per_block["block_writes"] > 0   # + the aux rows
    assert batched["write_ops"] < per_block["write_ops"]


def test_cli_counterexample_replay(capsys):
    assert cli_main(["simulate", "--counterexample", "flag_double_free", "--json"]) == exitcodes.SIM_FAILED
    assert json.loads(capsys.readouterr().out)["outcome"] == "double_free"
    assert cli_main(["simulate", "--counterexample", "flag_double_free", "--variant", "corrected"]) == exitcodes.OK


@pytest.mark.parametrize("argv,code,needle", [
    (["--order", "sideways"], exitcodes.USAGE, "unknown order"),
    (["--tokens", "3,x"], exitcodes.USAGE, "--tokens"),
    (["--variant", "nope"], exitcodes.USAGE, "unknown variant"),
    (["--faults", "meteor"], exitcodes.USAGE, "unknown fault"),
    (["--counterexample", "nope"], exitcodes.USAGE, "unknown counterexample"),
])
def test_cli_bad_input_one_line(argv, code, needle, capsys):
    assert cli_main(["simulate"] + argv) == code
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


def test_cli_bad_schedule_file_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("ReceiverInit req=1\nFlyAway req=1\n")
    assert cli_main(["simulate", "--schedule", str(bad)]) == exitcodes.BAD_INPUT
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "unknown step" in err
    stuck = tmp_path / "stuck.txt"
    stuck.write_text("SenderStartRound req=1\n")
    assert cli_main(["simulate", "--schedule", str(stuck)]) == exitcodes.BAD_INPUT
    assert "not enabled" in capsys.readouterr().err
    assert cli_main(["simulate", "--schedule", str(tmp_path / "missing.txt")]) == exitcodes.BAD_INPUT
