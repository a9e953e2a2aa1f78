"""The protocol core's own contract: standard library only, the design
table, the pool, status merging, parameters, and the engine example."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from resumespec.reference import protocol as core
from resumespec.reference.protocol import designs

ROOT = Path(__file__).resolve().parents[1]
CORE_DIR = ROOT / "reference" / "protocol"


def _no_torch_env(tmp_path: Path) -> dict:
    """An environment in which ``import torch`` fails."""
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('torch is not allowed here')\n")
    return {"PYTHONPATH": str(fake), "PATH": "/usr/bin:/bin"}


def test_core_imports_only_the_standard_library():
    for path in sorted(CORE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            else:
                continue
            for m in mods:
                assert m.split(".")[0] in sys.stdlib_module_names, f"{path.name} imports {m}"


def test_core_and_checkers_load_without_torch(tmp_path):
    code = ("import resumespec.reference.protocol, resumespec.conformance.trace, "
            "resumespec.conformance.checker_native, sys; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_no_torch_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_engine_example_hands_off_the_source_without_torch(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "engine_loop.py")],
                         capture_output=True, text=True, env=_no_torch_env(tmp_path), cwd=tmp_path,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    rounds = [ln for ln in lines if ln.startswith("round ")]
    assert len(rounds) >= 3
    assert all("rank 1" in ln and "rank 2" in ln for ln in rounds)
    assert "rounds: 4; handed on every rank: e1 e2 e3 e4 e5 e6 e7; equals source: True" in lines
    assert "free blocks after prefill: {1: [1, 2, 0], 2: [1, 2, 0]}" in lines


def test_design_table_agrees_with_the_manifest_notes():
    manifest = json.loads((ROOT / "spec" / "manifest.json").read_text())
    for m in manifest["models"]:
        d = designs.design(m["variant"])
        assert m["notes"].startswith(f"engine commit {d.commit or 'none (our design)'};")


def test_design_table_rows():
    assert designs.VARIANTS == ("flag", "indices", "sent_tokens", "cached_sent", "once", "corrected")
    assert designs.HISTORICAL == designs.VARIANTS[:-1]
    assert [d.variant for d in designs.DESIGNS if d.resume_order is core.ResumeOrder.ALLOC_FIRST] \
        == ["once", "corrected"]
    only_corrected = [d.variant for d in designs.DESIGNS
                      if d.status_carries_round and d.failed_latches and d.abort_is_message]
    assert only_corrected == ["corrected"]
    assert designs.design_of_commit("cca20b0941234").variant == "once"
    with pytest.raises(KeyError):
        designs.design_of_commit("deadbeef1")
    with pytest.raises(ValueError, match="unknown variant 'nope'; expected one of flag"):
        designs.design("nope")
    assert [designs.STATUS_RANK[s.label] for s in core.Status] == [0, 1, 2, 3, 4]


def test_status_merge_latches_only_when_asked():
    F, T, S = core.Status.FAILED, core.Status.TRANSFERRING, core.Status.SUCCESS
    assert core.merge_status(T, F) == F
    assert core.merge_status(F, T) == T                      # historical: lifted out of Failed
    assert core.merge_status(F, T, failed_latches=True) == F
    assert core.merge_status(T, S) == S and core.merge_status(S, T) == S


def test_pool_orders():
    pool = core.Pool.of([1, 2, 3, 4])
    assert pool.alloc_choices(3, 2, "fifo") == [((1, 2), core.Pool((3, 4)))]
    assert pool.alloc_choices(3, 2, "lifo") == [((4, 3), core.Pool((1, 2)))]
    anys = pool.alloc_choices(3, 2, "any")
    assert len(anys) == 12 and ((3, 1), core.Pool((2, 4))) in anys
    assert pool.alloc_choices(9, 2, "fifo") == []              # None: all or nothing
    assert pool.alloc_choices(0, 2, "lifo") == [((), pool)]
    assert pool.free_blocks((1,)).free == (1, 2, 3, 4, 1)      # a double free is kept, on purpose


def test_params_reject_bad_values():
    with pytest.raises(ValueError, match="barrier"):
        core.Params("corrected", barrier=False)
    with pytest.raises(ValueError, match="block_size"):
        core.Params("once", block_size=0)
    assert core.Params("flag").resume_order is core.ResumeOrder.FREE_FIRST
    assert core.Params("flag", resume_order="alloc_first").alloc_first


def test_corrected_resume_names_the_round_and_waits_for_a_free_block():
    """Round 1 of 2 ends partial with no block free on the rank: the
    corrected receiver caches and frees, then resumes round 1 with what the
    pool gives back (here the block it just freed)."""
    p = core.Params("corrected", block_size=1, init_tokens=1)
    rx = core.RxState.initial(p, [1], [7])
    rx = core.receiver_init(rx, 1)[0].state
    assert rx.pools[0].free == ()
    rx = core.deliver_status(rx, 1, 1, core.StatusMsg(core.Status.TRANSFERRING, 1, 1, 2)).state
    (cache,) = core.receiver_poll(rx, 1)
    assert [type(e).__name__ for e in cache.effects] == ["Read", "Free"]
    (resume,) = core.receiver_poll(cache.state, 1)
    assert resume.effects[-1] == core.SendCtl(1, 1, core.Ctl("resume", (7,), 1, 1, 1))
    assert core.receiver_poll(resume.state, 1) == []           # once per round


def test_a_failed_status_names_the_total_only_once_a_round_started():
    """KnownTotal: before the first round the encode side may not have the
    embedding yet, so an abort answered then says round 0, offset 0, total
    0; a write error in round 1 names the real total."""
    p = core.Params("corrected", block_size=1, init_tokens=1, n_sessions=1)
    tx = core.TxRoom.initial(p, 1, 5)
    abort = core.sender_recv_abort(tx, 1, core.Ctl("abort", (), 0, 0, 0), False)
    assert abort.effects == (core.SendStatus(1, 1, core.StatusMsg(core.Status.FAILED, 0, 0, 0)),)
    tx = core.sender_recv_init(tx, 1, core.Ctl("init", (0,), 0, 1, 0)).state
    started = core.sender_start_round(tx).state
    (failed,) = core.write_error(started).effects[-1:]
    assert failed == core.SendStatus(1, 1, core.StatusMsg(core.Status.FAILED, 1, 0, 5))


def test_historical_poll_needs_the_aux_observation():
    """The once design decides from the aux row it reads: with a stale aux
    (0) it sees nothing to resume and only reads; with the total it resumes."""
    p = core.Params("once", block_size=1, init_tokens=1)
    rx = core.receiver_init(core.RxState.initial(p, [1], [0, 1, 2]), 1)[0].state
    rx = core.deliver_status(rx, 1, 1, core.StatusMsg(core.Status.TRANSFERRING)).state
    (wait,) = core.receiver_poll(rx, 1, {1: 0})
    assert wait.action == "PollReadOnly" and wait.state == rx
    assert wait.effects == (core.Read(1, 1, (0,), 0, "probe"),)
    (step,) = core.receiver_poll(rx, 1, {1: 3})
    assert step.action == "PollTransferringHistorical"
    assert step.effects[-1] == core.SendCtl(1, 1, core.Ctl("resume", (1, 2), 1, 2, 0))


def test_requests_come_and_go():
    p = core.Params("corrected")
    rx = core.RxState.initial(p, [], [0, 1]).add_request(5)
    with pytest.raises(ValueError, match="already exists"):
        rx.add_request(5)
    rx = core.receiver_init(rx, 5)[0].state
    with pytest.raises(ValueError, match="has not ended"):
        rx.drop_request(5)
    rx = core.deliver_status(rx, 5, 1, core.StatusMsg(core.Status.FAILED, 0, 0, 1)).state
    (failed,) = core.receiver_poll(rx, 5)
    assert failed.action == "PollFailed" and failed.effects[0] == core.Free(1, (0,))
    rx = failed.state.drop_request(5)
    assert rx.requests == {} and rx.pools[0].free == (1, 0)


# ---------------------------------------------------------------------------
# pool.FreeList (the streaming checker's free list) is pool.Pool
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["fifo", "lifo", "any"])
def test_free_list_follows_the_pool(order):
    import random

    from resumespec.reference.protocol.pool import FreeList, Pool

    for seed in range(200):
        rng = random.Random(seed)
        n = rng.randint(1, 7)
        pool, fl, held = Pool.of(range(n)), FreeList(n, order), []
        for _ in range(30):
            got = fl.as_pool().free
            assert (got if order != "any" else sorted(got)) == \
                (pool.free if order != "any" else sorted(pool.free))
            if held and rng.random() < 0.4:
                blocks = held.pop(rng.randrange(len(held)))
                pool, _ = pool.free_blocks(blocks), fl.give(blocks)
                continue
            k = rng.randint(0, 3)
            choices = pool.alloc_choices(k, 1, order)
            if not choices:
                assert fl.take(tuple(range(k)), k, 1) is not None     # too few free
                continue
            if order != "any" and len(choices[0][0]) and n > k:
                wrong = tuple(b for b in range(n) if b not in choices[0][0])[:k]
                if len(wrong) == k and pool.allows(wrong, k, 1, order) is None:
                    probe = FreeList(n, order)
                    probe.lo, probe.hi, probe.out = fl.lo, fl.hi, set(fl.out)
                    probe.freed = type(fl.freed)(fl.freed)
                    assert probe.take(wrong, k, 1) is not None      # not the order's choice
            blocks, after = rng.choice(choices)
            assert pool.allows(blocks, k, 1, order) is not None
            assert fl.take(blocks, k, 1) is None
            pool = after
            if blocks:
                held.append(blocks)
