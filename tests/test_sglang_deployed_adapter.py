"""The parts of the deployed-fork runner that need no fork checkout: the
Mooncake stand-in's one change ("rdma" -> "tcp") and its injected write
failure, against the real engine; the observed ZMQ sockets, against real
pyzmq; token identities; the scenarios; the recording script's usage errors.
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
    assert hooks.ids_of(own) == [[7, p] for p in range(1, 6)]
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
