"""Import the fork's real disaggregation modules from a checkout.

``load_fork(path)`` puts stub modules into ``sys.modules`` for exactly the
imports that the resume code paths do not use (or that need hardware or a
network), then imports these real files of the fork:

    sglang/srt/disaggregation/base/conn.py          KVPoll, KVArgs, base classes
    sglang/srt/disaggregation/fake/conn.py          FakeKVReceiver (isinstance checks)
    sglang/srt/disaggregation/common/utils.py       FastQueue
    sglang/srt/disaggregation/utils.py              allocator, buffers, poll_and_all_reduce
    sglang/srt/disaggregation/mooncake/conn_multimodal.py
                                                    manager, sender, receiver, worker loops
    sglang/srt/disaggregation/multimodal_language.py
                                                    prealloc queue, transfer queue (pop_transferred)

Stubbed (and why):

* package ``__init__`` files of ``sglang``, ``sglang.srt``,
  ``sglang.srt.disaggregation.{common,mooncake}``: they import the whole
  server (models, kernels); the submodules above are loaded from their real
  files through the packages' ``__path__``.
* ``sglang.srt.utils``: six small helpers (free port, env ints, local IP, a
  no-op grad-mode decorator, is_npu); the real module imports CUDA tooling.
* ``sglang.srt.server_args``: a type name only.
* ``sglang.srt.managers.schedule_batch``: ``FINISH_ABORT``, ``Modality``,
  ``MultimodalDataItem``, ``MultimodalInputs``, ``ScheduleBatch`` as plain
  record classes (the transfer queue only constructs and stores them).
* ``sglang.srt.mem_cache.base_prefix_cache``,
  ``sglang.srt.model_executor.forward_batch_info``: type names only.
* ``sglang.srt.disaggregation.mooncake.transfer_engine``: the RDMA engine,
  replaced by ``InProcessTransferEngine``.
* ``zmq``, ``requests``, ``aiohttp``: in-process sockets and bootstrap
  registry (``sglang_inprocess``).

torch (and torch.distributed with a real one-process gloo group) and numpy
are the real libraries.
"""

from __future__ import annotations

import enum
import functools
import importlib
import itertools
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sglang_inprocess import (
    BootstrapRegistry,
    InProcessTransferEngine,
    Network,
    make_fake_requests,
    make_fake_zmq,
)

REAL_MODULES = (
    "sglang.srt.disaggregation.base.conn",
    "sglang.srt.disaggregation.fake.conn",
    "sglang.srt.disaggregation.common.utils",
    "sglang.srt.disaggregation.utils",
    "sglang.srt.disaggregation.mooncake.conn_multimodal",
    "sglang.srt.disaggregation.multimodal_language",
)


class ForkLoadError(Exception):
    """The checkout cannot be imported (missing file, missing dependency)."""


@dataclass
class Fork:
    """The fork's real modules plus the in-process world they talk through."""

    root: Path
    network: Network
    bootstrap: BootstrapRegistry
    base: Any            # sglang.srt.disaggregation.base.conn
    fake: Any            # ...fake.conn
    common: Any          # ...common.utils
    utils: Any           # ...utils
    conn: Any            # ...mooncake.conn_multimodal
    language: Any        # ...multimodal_language
    schedule_batch: Any  # the stub


def find_python_root(checkout: Path) -> Path:
    """The folder that holds ``sglang/`` (``<checkout>/python`` or the checkout)."""
    for cand in (checkout / "python", checkout):
        if (cand / "sglang" / "srt" / "disaggregation" / "multimodal_language.py").is_file():
            return cand
    raise ForkLoadError(
        f"{checkout}: no sglang/srt/disaggregation/multimodal_language.py under it or "
        "under its python/ folder (give a checkout of ZhengWG/sglang, e.g. "
        "`git archive <commit> python/sglang | tar -x -C DIR`)")


def _package(name: str, path: Path | None) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)] if path is not None else []
    mod.__resumespec_stub__ = True
    return mod


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    mod.__resumespec_stub__ = True
    return mod


def stub_srt_utils(free_port: Callable[[], int]) -> types.ModuleType:
    """``sglang.srt.utils``: the few helpers the disaggregation code calls.
    ``free_port`` gives the ports the fork asks ``get_free_port`` for: a
    counter in process, a port the OS left free when the processes are
    deployed."""

    def get_int_env_var(name: str, default: int = 0) -> int:
        value = os.getenv(name)
        return int(value) if value not in (None, "") else default

    def get_bool_env_var(name: str, default: str = "false") -> bool:
        return os.getenv(name, default).lower() in ("1", "true", "yes")

    def DynamicGradMode(*a: Any, **k: Any):  # decorator factory, no-op here
        return lambda fn: fn

    return _module(
        "sglang.srt.utils",
        is_npu=lambda: False,
        get_free_port=free_port,
        get_int_env_var=get_int_env_var,
        get_bool_env_var=get_bool_env_var,
        get_local_ip_by_remote=lambda: "127.0.0.1",
        maybe_wrap_ipv6_address=lambda a: a,
        DynamicGradMode=DynamicGradMode,
    )


def _stub_schedule_batch() -> types.ModuleType:
    class FINISH_ABORT:
        def __init__(self, message: str = "", status_code: Any = None, err_type: Any = None):
            self.message = message
            self.status_code = status_code

    class Modality(enum.Enum):
        IMAGE = 1
        VIDEO = 2
        AUDIO = 3

    class MultimodalDataItem:
        def __init__(self, modality: Any = None, model_specific_data: Any = None, **kw: Any):
            self.modality = modality
            self.model_specific_data = model_specific_data or {}

    class MultimodalInputs:
        def __init__(self, mm_items: Any = None, **kw: Any):
            self.mm_items = mm_items or []
            self.mrope_positions = None
            self.mrope_position_delta = None

    class ScheduleBatch:
        pass

    class Req:
        pass

    return _module("sglang.srt.managers.schedule_batch", FINISH_ABORT=FINISH_ABORT,
                   Modality=Modality, MultimodalDataItem=MultimodalDataItem,
                   MultimodalInputs=MultimodalInputs, ScheduleBatch=ScheduleBatch, Req=Req)


def _placeholder_class(name: str) -> type:
    def _init(self, *a: Any, **k: Any) -> None:
        raise ForkLoadError(f"{name} is a placeholder in the adapter (not used by the "
                            "multimodal resume path)")
    return type(name, (), {"__init__": _init})


def sglang_stubs(root: Path, schedule_batch: types.ModuleType,
                 utils: types.ModuleType) -> dict[str, types.ModuleType]:
    """The ``sglang`` package tree as the fork's disaggregation code imports
    it: the real folders as packages, the rest of the engine (server args,
    scheduler batch, caches, model executor) as stubs.  Both loaders (in
    process and deployed) add their own transport modules to it."""
    srt = root / "sglang" / "srt"
    dis = srt / "disaggregation"
    stubs: dict[str, types.ModuleType] = {
        "sglang": _package("sglang", root / "sglang"),
        "sglang.srt": _package("sglang.srt", srt),
        "sglang.srt.disaggregation": _package("sglang.srt.disaggregation", dis),
        "sglang.srt.disaggregation.common": _package("sglang.srt.disaggregation.common",
                                                     dis / "common"),
        "sglang.srt.disaggregation.mooncake": _package("sglang.srt.disaggregation.mooncake",
                                                       dis / "mooncake"),
        "sglang.srt.utils": utils,
        "sglang.srt.server_args": _module("sglang.srt.server_args", ServerArgs=object),
        "sglang.srt.managers": _package("sglang.srt.managers", None),
        "sglang.srt.managers.schedule_batch": schedule_batch,
        "sglang.srt.mem_cache": _package("sglang.srt.mem_cache", None),
        "sglang.srt.mem_cache.base_prefix_cache": _module(
            "sglang.srt.mem_cache.base_prefix_cache", BasePrefixCache=object),
        "sglang.srt.model_executor": _package("sglang.srt.model_executor", None),
        "sglang.srt.model_executor.forward_batch_info": _module(
            "sglang.srt.model_executor.forward_batch_info",
            ForwardMode=enum.Enum("ForwardMode", "EXTEND DECODE IDLE")),
    }
    for name in ("MooncakeKVBootstrapServer", "MooncakeKVManager", "MooncakeKVReceiver",
                 "MooncakeKVSender"):
        setattr(stubs["sglang.srt.disaggregation.mooncake"], name, _placeholder_class(name))
    return stubs


def import_real(root: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """Import the fork's own modules ``names``, each of which must come from
    ``root`` (not from another sglang on the path)."""
    real: dict[str, Any] = {}
    for name in names:
        try:
            real[name] = importlib.import_module(name)
        except ImportError as e:
            raise ForkLoadError(f"importing {name} from {root}: {e}") from None
        if not str(getattr(real[name], "__file__", "")).startswith(str(root)):
            raise ForkLoadError(f"{name} was not loaded from {root}")
    return real


def load_fork(checkout: str | os.PathLike) -> Fork:
    """Import the fork's real modules from ``checkout`` (once per process)."""
    if "sglang" in sys.modules and not getattr(sys.modules["sglang"], "__resumespec_stub__",
                                               False):
        raise ForkLoadError("a real `sglang` package is already imported in this process; "
                            "run the recorder in a fresh interpreter")
    if "sglang.srt.disaggregation.multimodal_language" in sys.modules:
        raise ForkLoadError("a fork is already loaded in this process; load one checkout "
                            "per process")
    root = find_python_root(Path(checkout).resolve())

    network = Network()
    bootstrap = BootstrapRegistry()
    schedule_batch = _stub_schedule_batch()
    stubs = sglang_stubs(root, schedule_batch,
                         stub_srt_utils(functools.partial(next, itertools.count(23000))))
    stubs.update({
        "zmq": make_fake_zmq(network),
        "requests": make_fake_requests(bootstrap),
        "aiohttp": _module("aiohttp", web=_module("aiohttp.web")),
        "aiohttp.web": _module("aiohttp.web"),
        "sglang.srt.disaggregation.mooncake.transfer_engine": _module(
            "sglang.srt.disaggregation.mooncake.transfer_engine",
            MooncakeTransferEngine=InProcessTransferEngine),
    })
    sys.modules.update(stubs)
    real = import_real(root, REAL_MODULES)
    # `from sglang.srt.disaggregation.fake import FakeKVReceiver` inside
    # get_kv_class: the real fake/__init__.py re-exports these already; the
    # base package likewise.  Nothing else to wire.
    return Fork(
        root=root, network=network, bootstrap=bootstrap,
        base=real["sglang.srt.disaggregation.base.conn"],
        fake=real["sglang.srt.disaggregation.fake.conn"],
        common=real["sglang.srt.disaggregation.common.utils"],
        utils=real["sglang.srt.disaggregation.utils"],
        conn=real["sglang.srt.disaggregation.mooncake.conn_multimodal"],
        language=real["sglang.srt.disaggregation.multimodal_language"],
        schedule_batch=schedule_batch,
    )


def fork_sources(fork: Fork) -> dict[str, str]:
    """Which real file each module came from (for the recording's summary)."""
    return {m.__name__: str(Path(m.__file__).relative_to(fork.root))
            for m in (fork.base, fork.fake, fork.common, fork.utils, fork.conn, fork.language)}


__all__ = ["Fork", "ForkLoadError", "load_fork", "find_python_root", "fork_sources",
           "REAL_MODULES"]
