"""Parts of the deployed reference that need no processes: prefill's input
arena (``common.Arena``) and the encode process's way of carrying out a
round's writes (``common.write_batches``, over two real Mooncake engines in
this process)."""

import pytest

torch = pytest.importorskip("torch")

from resumespec.reference.deployed.common import Arena, DeployConfig


def test_arena_first_fit_and_none_when_no_run_is_long_enough():
    a = Arena(10, 4)
    x, y = a.take(4), a.take(4)
    assert x.shape == (4, 4) and y.shape == (4, 4)
    assert y.data_ptr() == x.data_ptr() + 4 * 4 * 2      # packed, in order
    assert a.take(3) is None                              # 2 rows left
    z = a.take(2)
    assert z is not None and a.free == []
    assert a.give(x)
    assert a.take(5) is None                              # the free run is 4 long
    w = a.take(3)
    assert w.data_ptr() == x.data_ptr()                   # first fit reuses x's rows
    assert a.free == [(3, 1)]


def test_arena_give_merges_neighbours_and_ignores_foreign_tensors():
    a = Arena(12, 2)
    parts = [a.take(3) for _ in range(4)]
    assert a.free == []
    for i in (0, 2, 1, 3):               # the middle one joins both sides
        assert a.give(parts[i])
    assert a.free == [(0, 12)]
    assert not a.give(torch.empty(3, 2, dtype=torch.bfloat16))
    assert not a.give(parts[0])          # given back already
    assert a.take(12) is not None


def test_arena_memory_is_touched_when_made_and_rows_zero_means_none():
    a = Arena(5, 3)
    assert a.buf.shape == (5, 3) and bool((a.buf == 0).all())
    assert Arena(0, 3).take(1) is None


def test_config_rejects_unknown_write_wait_and_negative_rows():
    with pytest.raises(ValueError, match="write_wait"):
        DeployConfig(write_wait="spin").validate()
    with pytest.raises(ValueError, match="handoff_rows"):
        DeployConfig(handoff_rows=-1).validate()
    with pytest.raises(ValueError, match="collectives"):
        DeployConfig(collectives=3).validate()


def _rank_reduce(rank: int, port: int, q) -> None:
    from resumespec.reference.deployed.language import Group

    g = Group(rank, 2, f"tcp://127.0.0.1:{port}")
    try:
        got = []
        # rank 0's commands ride along; the values are MIN-combined
        mine = [(1, 7), (3, 0)] if rank == 0 else [(2, 99)]   # rank 1's are ignored
        got.append(g.all_reduce_min_cmds(mine, [1, 5 + rank, 9 - rank]))
        got.append(g.all_reduce_min_cmds([] if rank == 0 else [(4, 4)], []))
        big = 2**62
        got.append(g.all_reduce_min_cmds([(4, big)] if rank == 0 else [], [big, -big + rank]))
        q.put((rank, got))
    finally:
        g.close()


def test_one_all_reduce_carries_rank_0s_commands_and_combines_the_values():
    """``Group.all_reduce_min_cmds`` over two real gloo ranks: every rank
    gets rank 0's commands (none as well), whatever the others put in, and
    the MIN of the values."""
    import multiprocessing as mp
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_rank_reduce, args=(r, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    big = 2**62
    want = [([(1, 7), (3, 0)], [1, 5, 8]), ([], []), ([(4, big)], [big, -big])]
    assert got[0] == want and got[1] == want


def test_write_batches_lands_every_write_and_names_the_first_failed_batch():
    pytest.importorskip("mooncake.engine")
    from resumespec.reference.deployed.common import Blocks, mooncake_engine, write_batches

    a, _ = mooncake_engine()
    b, b_mc = mooncake_engine()
    src, dst = Blocks(8, 16, 32), Blocks(8, 16, 32)
    src.register(a)
    dst.register(b)
    src.emb.normal_()
    ok = [(b_mc, [src.emb_addr(i) for i in range(4)], [dst.emb_addr(i) for i in range(4)],
           [src.block_bytes] * 4),
          (b_mc, [src.emb_addr(5, 3)], [dst.emb_addr(5, 3)], [2 * src.token_bytes])]
    assert write_batches(a, ok) is None
    assert torch.equal(src.emb[:4], dst.emb[:4])
    assert torch.equal(src.emb[5, 3:5], dst.emb[5, 3:5])
    assert not dst.emb[5, :3].any() and not dst.emb[5, 5:].any()
    # the second batch's write goes where the target registered nothing:
    # the engine refuses it; the first batch still lands
    bad = [(b_mc, [src.emb_addr(6)], [dst.emb_addr(6)], [src.block_bytes]),
           (b_mc, [src.emb_addr(7)], [dst.emb.data_ptr() - (1 << 30)], [64])]
    assert write_batches(a, bad) == 1
    assert torch.equal(src.emb[6], dst.emb[6])
