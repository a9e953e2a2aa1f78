"""Import the fork's disaggregation modules for a *deployed* run (one OS
process per side, real sockets, the real Mooncake engine).

Unlike ``sglang_loader.load_fork`` (one process, everything in memory), this
loader keeps every part of the transfer path real:

* ``zmq`` is pyzmq, ``requests`` and ``aiohttp`` are the real libraries: the
  fork's bootstrap server (``MooncakeEmbeddingBootstrapServer``, aiohttp)
  runs in the encode process, the language ranks find the encode rank through
  it over HTTP, and their heartbeat checker polls its ``/health``;
* ``sglang/srt/disaggregation/mooncake/transfer_engine.py`` is the fork's own
  wrapper around ``mooncake.engine.TransferEngine`` (PyPI
  ``mooncake-transfer-engine-non-cuda``).  The one change: the wrapper passes
  the protocol ``"rdma"`` to ``TransferEngine.initialize``; ``TcpTransferEngine``
  (the class the wrapper gets when it imports ``mooncake.engine.TransferEngine``)
  turns that argument into ``"tcp"`` and passes everything else through.
  It is also where a failing write is injected (``fail_next``): the batch's
  last destination address is moved out of the memory the peer registered,
  and Mooncake's TCP transport refuses the write (a real error return).

What stays stubbed is what the transfer path never touches: the package
``__init__`` files (they import the whole server), ``sglang.srt.utils`` (a
few helpers; ``get_free_port`` really asks the OS for a free port here),
``server_args`` and the scheduler's record classes (``schedule_batch``).
"""

from __future__ import annotations

import os
import socket
import sys
import types
from pathlib import Path
from typing import Any

from .sglang_loader import (
    Fork,
    ForkLoadError,
    _stub_schedule_batch,
    find_python_root,
    import_real,
    sglang_stubs,
    stub_srt_utils,
)

DEPLOYED_REAL_MODULES = (
    "sglang.srt.disaggregation.base.conn",
    "sglang.srt.disaggregation.fake.conn",
    "sglang.srt.disaggregation.common.utils",
    "sglang.srt.disaggregation.utils",
    "sglang.srt.disaggregation.mooncake.transfer_engine",
    "sglang.srt.disaggregation.mooncake.conn_multimodal",
    "sglang.srt.disaggregation.multimodal_language",
    "sglang.srt.disaggregation.multimodal_embedding",
)


class TcpTransferEngine:
    """``mooncake.engine.TransferEngine`` with the protocol argument "rdma"
    replaced by "tcp" (loopback, no RDMA hardware).  Everything else is the
    real engine's.  ``fail_next``: the next ``batch_transfer_sync_write`` has
    its last destination moved 1 GiB below the address asked (memory the
    peer never registered), so the real engine fails it."""

    instances: list[TcpTransferEngine] = []

    def __init__(self) -> None:
        self._engine = _REAL_ENGINE()
        self.protocol_asked: str | None = None
        self.fail_next = False
        self.failed_writes = 0
        TcpTransferEngine.instances.append(self)

    def initialize(self, hostname: str, metadata: str, protocol: str, device: str) -> int:
        self.protocol_asked = protocol
        if protocol == "rdma":
            protocol = "tcp"          # the adapter's one change to the fork's call
        return self._engine.initialize(hostname, metadata, protocol, device)

    def batch_transfer_sync_write(self, session_id, buffers, peer_addresses, lengths):
        if self.fail_next and len(peer_addresses):
            self.fail_next = False
            self.failed_writes += 1
            peer_addresses = list(peer_addresses)
            peer_addresses[-1] = int(peer_addresses[-1]) - (1 << 30)
        return self._engine.batch_transfer_sync_write(session_id, buffers, peer_addresses,
                                                      lengths)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_fork_deployed(checkout: str | os.PathLike) -> Fork:
    """Import the fork's real modules from ``checkout`` with real zmq,
    requests, aiohttp and Mooncake (once per process)."""
    if "sglang.srt.disaggregation.multimodal_language" in sys.modules:
        raise ForkLoadError("a fork is already loaded in this process; load one checkout "
                            "per process")
    root = find_python_root(Path(checkout).resolve())
    try:
        import mooncake.engine as mc_engine
    except ImportError as e:
        raise ForkLoadError(f"the Mooncake transfer engine cannot be imported ({e}); "
                            "pip install mooncake-transfer-engine-non-cuda and "
                            "apt-get install libibverbs1") from None
    global _REAL_ENGINE
    if mc_engine.TransferEngine is not TcpTransferEngine:
        _REAL_ENGINE = mc_engine.TransferEngine
        mc_engine.TransferEngine = TcpTransferEngine   # type: ignore[misc]

    schedule_batch = _stub_schedule_batch()

    class FINISH_LENGTH:
        def __init__(self, length: int = 0):
            self.length = length

    schedule_batch.FINISH_LENGTH = FINISH_LENGTH
    schedule_batch.get_global_server_args = lambda: types.SimpleNamespace(
        max_micro_batch_size=64)
    sys.modules.update(sglang_stubs(root, schedule_batch, stub_srt_utils(_free_port)))
    real = import_real(root, DEPLOYED_REAL_MODULES)
    fork = Fork(
        root=root, network=None, bootstrap=None,
        base=real["sglang.srt.disaggregation.base.conn"],
        fake=real["sglang.srt.disaggregation.fake.conn"],
        common=real["sglang.srt.disaggregation.common.utils"],
        utils=real["sglang.srt.disaggregation.utils"],
        conn=real["sglang.srt.disaggregation.mooncake.conn_multimodal"],
        language=real["sglang.srt.disaggregation.multimodal_language"],
        schedule_batch=schedule_batch,
    )
    fork.embedding = real["sglang.srt.disaggregation.multimodal_embedding"]  # type: ignore[attr-defined]
    fork.transfer_engine = real[  # type: ignore[attr-defined]
        "sglang.srt.disaggregation.mooncake.transfer_engine"]
    return fork


_REAL_ENGINE: Any = None

__all__ = ["load_fork_deployed", "TcpTransferEngine", "DEPLOYED_REAL_MODULES"]
