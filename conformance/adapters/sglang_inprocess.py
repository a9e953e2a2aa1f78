"""In-process stand-ins for what the fork needs but one test process lacks.

Everything here replaces transport, never protocol logic:

* ``Network`` + ``FakeZmq``: PUSH/PULL message sockets as in-memory queues
  keyed by endpoint.  A receive on an empty queue raises ``Drained``, which
  ends the fork's ``while True`` receive loops so that the driver can run them
  on demand (see ``ManualThreads``).
* ``BootstrapRegistry`` + ``FakeRequests``: the HTTP bootstrap server the
  ranks use to find each other (PUT registers an encode rank, GET answers the
  parallel sizes and the rank's address).  Not part of the resume protocol.
* ``InProcessTransferEngine``: the mooncake transfer engine's interface
  (register, batch_transfer_sync, get_session_id); it copies the bytes
  between the registered tensors of the two sides with ``ctypes.memmove``
  after checking that both ranges lie in registered memory.
* ``ManualThreads``: the fork starts its receive loops and transfer workers
  with ``threading.Thread``; here ``start`` only records the target, and the
  driver runs it in its own thread until its queue is drained.  This makes a
  run deterministic: the scenario decides when each side makes progress.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import types
from collections import defaultdict, deque
from typing import Any, Callable


class Drained(BaseException):
    """Raised by an empty in-process queue to end a receive loop.

    A BaseException on purpose: the fork's transfer worker catches every
    ``Exception`` and turns it into a crash, which must not happen here.
    """


# ---------------------------------------------------------------------------
# Message sockets (zmq PUSH/PULL)
# ---------------------------------------------------------------------------
class Network:
    """Endpoint -> inbox of multipart messages; observers see every delivery."""

    def __init__(self) -> None:
        self.inboxes: dict[str, deque] = defaultdict(deque)
        # observers called with (endpoint, frames) when a message is *received*
        self.on_recv: list[Callable[[str, list], None]] = []

    @staticmethod
    def normalise(endpoint: str) -> str:
        return endpoint.replace("tcp://", "")

    def pending(self) -> int:
        return sum(len(q) for q in self.inboxes.values())


class FakeSocket:
    def __init__(self, network: Network, kind: int):
        self.network = network
        self.kind = kind
        self.endpoint: str | None = None

    def bind(self, endpoint: str) -> None:
        self.endpoint = Network.normalise(endpoint)

    def connect(self, endpoint: str) -> None:
        self.endpoint = Network.normalise(endpoint)

    def send_multipart(self, frames: list) -> None:
        if self.endpoint is None:
            raise RuntimeError("send on a socket that is not connected")
        self.network.inboxes[self.endpoint].append([bytes(f) for f in frames])

    def recv_multipart(self) -> list:
        inbox = self.network.inboxes[self.endpoint]
        if not inbox:
            raise Drained()
        frames = inbox.popleft()
        for observe in self.network.on_recv:
            observe(self.endpoint, frames)
        return frames


class FakeContext:
    def __init__(self, network: Network):
        self.network = network

    def socket(self, kind: int) -> FakeSocket:
        return FakeSocket(self.network, kind)


def make_fake_zmq(network: Network) -> types.ModuleType:
    mod = types.ModuleType("zmq")
    mod.PUSH = 8
    mod.PULL = 7
    mod.Context = lambda *a, **k: FakeContext(network)
    mod.__resumespec_stub__ = True
    return mod


# ---------------------------------------------------------------------------
# Bootstrap server (HTTP) and the requests module
# ---------------------------------------------------------------------------
class _Response:
    def __init__(self, status_code: int, payload: Any = None):
        self.status_code = status_code
        self._payload = payload
        self.text = "" if payload is None else str(payload)

    def json(self) -> Any:
        return self._payload


class BootstrapRegistry:
    """What the fork's bootstrap server answers, kept in a dict."""

    def __init__(self) -> None:
        self.ranks: dict[int, dict] = {}
        self.tp_size = 1
        self.dp_size = 1

    def put(self, url: str, json: dict | None = None, **_: Any) -> _Response:
        payload = json or {}
        self.tp_size = int(payload.get("tp_size", 1))
        self.dp_size = int(payload.get("dp_size", 1))
        self.ranks[int(payload.get("engine_rank", 0))] = {
            "rank_ip": payload["rank_ip"], "rank_port": payload["rank_port"]}
        return _Response(200)

    def get(self, url: str, **_: Any) -> _Response:
        query = dict(kv.split("=", 1) for kv in url.split("?", 1)[1].split("&")) \
            if "?" in url else {}
        engine_rank = int(query.get("engine_rank", "0"))
        if engine_rank == -1:
            return _Response(200, {"embedding_tp_size": self.tp_size,
                                   "embedding_dp_size": self.dp_size})
        info = self.ranks.get(engine_rank)
        if info is None:
            return _Response(404, "no such rank")
        return _Response(200, dict(info))


def make_fake_requests(registry: BootstrapRegistry) -> types.ModuleType:
    mod = types.ModuleType("requests")

    class Session:  # the heartbeat thread's pool; never pumped here
        def get(self, url: str, **kw: Any) -> _Response:
            return _Response(200)

    mod.get = registry.get
    mod.put = registry.put
    mod.Session = Session
    mod.__resumespec_stub__ = True
    return mod


# ---------------------------------------------------------------------------
# Transfer engine
# ---------------------------------------------------------------------------
class TransferFault(Exception):
    pass


class InProcessTransferEngine:
    """Byte copies between registered memory of engines in this process.

    ``observers`` are called with (engine, target session, src, dst, lengths)
    *before* the bytes are copied, so a trace can log the round's start.
    ``fail_next`` makes the next batch return an error without copying (a
    write error).
    """

    _by_session: dict[str, "InProcessTransferEngine"] = {}
    _ports = itertools.count(17000)
    observers: list[Callable[..., None]] = []

    def __init__(self, hostname: str, gpu_id: int = 0, ib_device: str | None = None):
        self.hostname = hostname
        self.session_id = f"{hostname}:{next(self._ports)}"
        self.regions: list[tuple[int, int]] = []
        self.fail_next = False
        self.batches = 0
        InProcessTransferEngine._by_session[self.session_id] = self

    @classmethod
    def reset(cls) -> None:
        cls._by_session = {}
        cls.observers = []

    def register(self, ptr: int, length: int) -> int:
        self.regions.append((int(ptr), int(length)))
        return 0

    def deregister(self, ptr: int) -> int:
        self.regions = [r for r in self.regions if r[0] != ptr]
        return 0

    def batch_register(self, ptrs, lengths) -> int:
        for p, n in zip(ptrs, lengths):
            self.register(p, n)
        return 0

    def get_session_id(self) -> str:
        return self.session_id

    def owns(self, addr: int, length: int) -> bool:
        return any(base <= addr and addr + length <= base + n for base, n in self.regions)

    def batch_transfer_sync(self, session_id: str, src_addrs, dst_addrs, lengths) -> int:
        target = self._by_session.get(session_id)
        if target is None:
            return -1
        for observe in list(self.observers):
            observe(self, session_id, list(src_addrs), list(dst_addrs), list(lengths))
        self.batches += 1
        if self.fail_next:
            self.fail_next = False
            return -1
        for s, d, n in zip(src_addrs, dst_addrs, lengths):
            if not self.owns(s, n):
                raise TransferFault(f"source range {s:#x}+{n} is not registered")
            if not target.owns(d, n):
                raise TransferFault(f"destination range {d:#x}+{n} is not registered "
                                    f"on {session_id}")
        for s, d, n in zip(src_addrs, dst_addrs, lengths):
            if n:
                ctypes.memmove(d, s, n)
        return 0

    def transfer_sync(self, session_id: str, src: int, dst: int, length: int) -> int:
        return self.batch_transfer_sync(session_id, [src], [dst], [length])


# ---------------------------------------------------------------------------
# Threads that run when the driver says so
# ---------------------------------------------------------------------------
class ManualThreads:
    """Stand-in for the ``threading`` module as the fork's connection code sees it."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Callable, tuple]] = []
        owner = self

        class Thread:
            def __init__(self, target=None, args=(), kwargs=None, daemon=None, name=None):
                self.target = target
                self.args = tuple(args)
                self.kwargs = kwargs or {}

            def start(self) -> None:
                owner.started.append((getattr(self.target, "__name__", "?"),
                                      self.target, self.args))

        self.module = types.SimpleNamespace(
            Thread=Thread, Lock=threading.Lock, RLock=threading.RLock,
            Condition=threading.Condition, Event=threading.Event)

    def targets(self, name: str, owner_args_filter: Callable[[tuple], bool] | None = None):
        return [(t, a) for n, t, a in self.started if n == name]

    @staticmethod
    def run_until_drained(target: Callable, args: tuple = ()) -> None:
        try:
            target(*args)
        except Drained:
            return


def make_draining_queue(base: type) -> type:
    """A subclass of the fork's FastQueue whose ``get`` raises Drained when empty."""

    class DrainingQueue(base):  # type: ignore[misc, valid-type]
        on_get = None   # observer called with each item taken

        def get(self):
            with self._cond:
                if not self._buf:
                    raise Drained()
                item = self._buf.popleft()
            if self.on_get is not None:
                self.on_get(item)
            return item

        def __len__(self) -> int:
            return len(self._buf)

    return DrainingQueue
