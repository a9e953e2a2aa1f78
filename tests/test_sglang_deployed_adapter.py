"""The parts of the deployed-fork runner that need no fork checkout: the
Mooncake stand-in's one change ("rdma" -> "tcp") and its injected write
failure, against the real engine; the observed ZMQ sockets, against real
pyzmq; token identities; the scenarios; the recording script's usage errors;
the encode hooks on a stand-in manager, historical and patched messages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resumespec.conformance.adapters import sglang_deployed_hooks as hooks
from resumespec.conformance.adapters import sglang_deployed_loader as loader
from resumespec.conformance.adapters.sglang_deployed import (
    SCENARIOS,
    RunConfig,
    design_config,
    lengths_spread,
    scenario_config,
)
from resumespec.conformance.adapters.sglang_observe import ids_of

REPO = Path(__file__).resolve().parent.parent


def test_tcp_engine_changes_only_the_protocol_and_fails_a_write_for_real():
    mc = pytest.importorskip("mooncake.engine")
    loader._REAL_ENGINE = loader._REAL_ENGINE or mc.TransferEngine
    a, b = loader.TcpTransferEngine(), loader.TcpTransferEngine()
    assert a.initialize("127.0.0.1", "P2PHANDSHAKE", "rdma", "") == 0
    assert b.initialize("127.0.0.1", "P2PHANDSHAKE", "rdma", "") == 0
    assert a.protocol_asked == "rdma"
    src = torch.arange(1024, dtype=torch.int32)
    dst = torch.zeros(1024, dtype=torch.int32)
    assert a.register_memory(src.data_ptr(), src.numel() * 4) == 0
    assert b.register_memory(dst.data_ptr(), dst.numel() * 4) == 0
    peer = f"127.0.0.1:{b.get_rpc_port()}"
    assert a.batch_transfer_sync_write(peer, [src.data_ptr()], [dst.data_ptr()], [4096]) == 0
    assert torch.equal(src, dst)
    dst.zero_()
    a.fail_next = True
    rc = a.batch_transfer_sync_write(peer, [src.data_ptr()], [dst.data_ptr()], [4096])
    assert rc != 0 and a.failed_writes == 1 and int(dst.abs().sum()) == 0
    # one write only: the next one goes through again
    assert a.batch_transfer_sync_write(peer, [src.data_ptr()], [dst.data_ptr()], [4096]) == 0
    assert torch.equal(src, dst)


def test_observed_socket_reports_every_frame_it_receives():
    zmq = pytest.importorskip("zmq")
    oz = hooks.ObservedZmq(zmq)
    pull = oz.Context().socket(oz.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = oz.Context().socket(oz.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    seen = []
    pull.hook = seen.append
    for i in range(3):
        push.send_multipart([str(i).encode(), b"x"])
    got = [pull.recv_multipart() for _ in range(3)]
    assert got == seen == [[str(i).encode(), b"x"] for i in range(3)]
    push.close(linger=0)
    pull.close(linger=0)


def test_token_identities():
    room = 7
    own = hooks.source_fill_ids(room, 5)
    assert ids_of(own, hooks.ID_BASE) == [[7, p] for p in range(1, 6)]
    assert hooks.ids_are_own(torch.tensor(own), room, first=1)
    assert hooks.ids_are_own(torch.tensor(own[2:]), room)          # a later round
    assert not hooks.ids_are_own(torch.tensor(own[2:]), room, first=1)
    assert not hooks.ids_are_own(torch.tensor(own[:2] + own[3:]), room)   # a gap
    assert not hooks.ids_are_own(torch.tensor(hooks.source_fill_ids(8, 3)), room)
    e1 = hooks.source_embedding(room, 4, 16, seed=7)
    assert e1.dtype == torch.bfloat16 and e1.shape == (4, 16)
    assert torch.equal(e1, hooks.source_embedding(room, 4, 16, seed=7))
    assert not torch.equal(e1, hooks.source_embedding(room + 1, 4, 16, seed=7))


def test_scenarios_and_their_config_events():
    lens = lengths_spread(500, 256, 16384, 3)
    assert min(lens) >= 256 and max(lens) <= 16384
    assert sum(n < 1024 for n in lens) > 50 and sum(n > 4096 for n in lens) > 50
    for name in SCENARIOS:
        cfg = scenario_config(name, "/x", "cca20b094")
        assert len(cfg.lengths) >= 8
        if cfg.fault:
            # the fault hits a request that needs a resume (its 2nd round exists)
            assert cfg.lengths[cfg.fault_req - 1] > cfg.init_tokens
            assert cfg.pool_blocks * cfg.block_size <= 65536     # TLC can check it
    c = design_config(RunConfig(commit="2141e0842", fault="kill"))
    assert (c["variant"], c["resume_order"], c["barrier"]) == ("cached_sent", "free_first",
                                                               False)
    assert c["faults"] == ["heartbeat"]
    c = design_config(RunConfig(commit="cca20b094", design="corrected"))
    assert c["variant"] == "corrected"


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "record_deployed_fork.py"),
                           *args], capture_output=True, text=True, timeout=120)


def test_record_script_usage_errors(tmp_path):
    r = _script("--fork", str(tmp_path), "--commit", "deadbeef1", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown commit" in r.stderr
    r = _script("--fork", str(tmp_path), "--commit", "cca20b094", "--out", str(tmp_path))
    assert r.returncode == 9 and "multimodal_language.py" in r.stderr
    r = _script("--fork", str(tmp_path), "--commit", "cca20b094", "--design", "nope",
                "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown variant" in r.stderr


class _Rec:
    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def log(self, event, **f):
        self.events.append((event, f))


class _FakeEncodeMgr:
    """The attributes of the fork's ENCODE manager the hooks wrap; with
    ``patched``, the patched engine's `_transfer` (a dead session's round
    fails there, no engine call) and status keywords."""

    ITEM = 4 * 4                     # fill-ids bytes per block (block_size 4)

    def __init__(self, patched: bool):
        import types
        self.server_socket = types.SimpleNamespace(hook=None)
        self.data_args = types.SimpleNamespace(aux_data_ptrs=[0, 10_000, 0, 20_000],
                                               aux_item_lens=[0, self.ITEM, 0, 8])
        self.engine = types.SimpleNamespace(batch_transfer_sync=self._engine_write)
        self.engine_calls = 0
        self.sent: list[tuple] = []
        self.dead: set[str] = set()
        if patched:
            self._transfer = self._patched_transfer

    def _engine_write(self, sid, src, dst, lengths):
        self.engine_calls += 1
        return 0

    def _patched_transfer(self, sid, src, dst, lengths):
        return -1 if sid in self.dead else self.engine.batch_transfer_sync(sid, src, dst,
                                                                           lengths)

    def send_embedding(self, sid, src_idx, dst_ptrs, dst_idx, total, block_size, sent=0,
                       allocated=None):
        tokens = min(total - sent, allocated)
        dst = [dst_ptrs[1] + b * self.ITEM for b in dst_idx]
        src = [self.data_args.aux_data_ptrs[1] + b * self.ITEM for b in src_idx[:len(dst)]]
        write = getattr(self, "_transfer", None) or self.engine.batch_transfer_sync
        return write(sid, src, dst, [tokens * 4] * len(dst)), total - sent > tokens

    def sync_status_to_language_endpoint(self, remote, dst_port, room, status, **kw):
        self.sent.append((room, int(status), kw))


def _send(mgr, sid="s1", room=3):
    hooks._current.room = room
    ptrs = [0, 50_000, 0, 60_000]
    return mgr.send_embedding(sid, [0], ptrs, [2], 4, 4, 0, 4)


def test_encode_hooks_observe_the_patched_messages_and_rounds():
    mgr, rec = _FakeEncodeMgr(patched=True), _Rec()
    h = hooks.EncodeHooks(None, mgr, rec, nblocks_lang=8, corrected=True)
    h.set_peers({"s1": 1}, {7001: 1})
    on_recv = mgr.server_socket.hook
    on_recv([b"3", b"ip", b"7001", b"s1", b"", b"abort"])
    on_recv([b"3", b"ip", b"7001", b"s1", b"4,5", b"1", b"8", b"8", b"2"])
    mgr.sync_status_to_language_endpoint("ip", 7001, 3, 3, round=2, sent=8, total=20)
    assert rec.events[0] == ("abort_recv", {"req": 3, "session": 1})
    assert rec.events[1][1]["round"] == 2 and rec.events[1][0] == "resume_recv"
    assert rec.events[2] == ("status_sent", {"req": 3, "session": 1, "status": "Transferring",
                                             "round": 2, "sent_tokens": 8, "total": 20})
    assert mgr.sent == [(3, 3, {"round": 2, "sent": 8, "total": 20})]   # passed through
    rec.events.clear()
    assert _send(mgr)[0] == 0 and mgr.engine_calls == 1
    assert [e for e, _ in rec.events] == ["round_start", "round_end"]
    assert rec.events[0][1]["dst_blocks"] == [2] and rec.events[0][1]["tokens"] == 4
    rec.events.clear()
    mgr.dead.add("s1")              # a dead session: the patch fails the round itself
    assert _send(mgr)[0] == -1 and mgr.engine_calls == 1
    assert [e for e, _ in rec.events] == ["round_start", "round_end", "write_error"]
    assert rec.events[1][1]["ok"] is False


def test_encode_hooks_keep_the_historical_messages():
    mgr, rec = _FakeEncodeMgr(patched=False), _Rec()
    h = hooks.EncodeHooks(None, mgr, rec, nblocks_lang=8)
    h.set_peers({"s1": 1}, {7001: 1})
    mgr.server_socket.hook([b"3", b"ip", b"7001", b"s1", b"4,5", b"1", b"8", b"8"])
    mgr.sync_status_to_language_endpoint("ip", 7001, 3, 4)
    assert rec.events[0] == ("resume_recv", {"req": 3, "session": 1, "blocks": [4, 5],
                                             "sent_tokens": 8, "allocated_tokens": 8})
    assert rec.events[1] == ("status_sent", {"req": 3, "session": 1, "status": "Success"})
    assert mgr.sent == [(3, 4, {})]
    rec.events.clear()
    assert _send(mgr)[0] == 0 and mgr.engine_calls == 1
    assert [e for e, _ in rec.events] == ["round_start", "round_end"]
