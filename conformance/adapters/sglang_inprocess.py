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
from collections.abc import Callable
from typing import Any


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
        # endpoint -> messages a receive loop may still take before it is
        # told the queue is empty (None: no limit); lets a scenario deliver
        # messages one at a time
        self.budgets: dict[str, int] = {}
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
        budget = self.network.budgets.get(self.endpoint)
        if not inbox or (budget is not None and budget <= 0):
            raise Drained()
        if budget is not None:
            self.network.budgets[self.endpoint] = budget - 1
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
        self.dead = False          # the encode side stopped answering /health

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

    class Session:  # the heartbeat thread's HTTP session (GET /health)
        def get(self, url: str, **kw: Any) -> _Response:
            return _Response(503 if registry.dead else 200)

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
    write error); ``fail_to`` (a session id) the next batch to that session.
    """

    _by_session: dict[str, InProcessTransferEngine] = {}
    _ports = itertools.count(17000)
    observers: list[Callable[..., None]] = []

    def __init__(self, hostname: str, gpu_id: int = 0, ib_device: str | None = None):
        self.hostname = hostname
        self.session_id = f"{hostname}:{next(self._ports)}"
        self.regions: list[tuple[int, int]] = []
        self.fail_next = False
        self.fail_to: str | None = None    # fail the next batch to this session only
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
        if self.fail_next or (self.fail_to is not None and self.fail_to == session_id):
            self.fail_next = False
            self.fail_to = None
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


# ---------------------------------------------------------------------------
# Collectives of several ranks in one process
# ---------------------------------------------------------------------------
class RanksDiverged(RuntimeError):
    """The ranks did not make the same collective calls (a real SPMD bug)."""


class LockstepGroup:
    """A process group of ``n`` rank threads that take turns, for all-reduce.

    Exactly one rank thread runs at a time, in rank order, so a multi-rank
    step is as reproducible as a single-rank one: rank 0 runs until its first
    collective (or the end of its step), then rank 1, and so on; when the last
    rank reaches the collective, the result is computed and rank 0 continues.
    ``all_reduce`` has the signature of ``torch.distributed.all_reduce``.
    """

    def __init__(self, n: int, timeout: float = 10.0):
        self.n = n
        self.timeout = timeout
        self.cond = threading.Condition()
        self.turn = 0
        self.deposits: dict[int, Any] = {}
        self.result: Any = None
        self.generation = 0
        self.finished: set[int] = set()
        self.rank_of_thread: dict[int, int] = {}
        self.error: BaseException | None = None

    def _wait_turn(self, r: int) -> None:
        if not self.cond.wait_for(lambda: self.turn == r or self.error is not None,
                                  timeout=self.timeout):
            raise RanksDiverged(f"rank {r} waited {self.timeout}s for its turn")
        if self.error is not None:
            raise RanksDiverged(str(self.error))

    def _pass_turn(self, r: int) -> None:
        nxt = r + 1
        self.turn = nxt if nxt < self.n else 0
        self.cond.notify_all()

    def all_reduce(self, tensor, op=None, group=None, async_op=False):
        import torch
        import torch.distributed as dist

        r = self.rank_of_thread[threading.get_ident()]
        with self.cond:
            gen = self.generation
            self.deposits[r] = tensor.clone()
            if len(self.deposits) == self.n:
                stacked = torch.stack([self.deposits[i] for i in range(self.n)])
                if op == dist.ReduceOp.MAX:
                    self.result = stacked.max(dim=0).values
                elif op == dist.ReduceOp.MIN:
                    self.result = stacked.min(dim=0).values
                else:
                    self.result = stacked.sum(dim=0).to(tensor.dtype)
                self.deposits = {}
                self.generation += 1
                self.turn = 0
                self.cond.notify_all()
            else:
                if any(i in self.finished for i in range(self.n) if i not in self.deposits):
                    self.error = RanksDiverged(
                        f"rank {r} entered an all-reduce that another rank never joined")
                    self.cond.notify_all()
                    raise self.error
                self._pass_turn(r)
            if not self.cond.wait_for(lambda: (self.generation != gen and self.turn == r)
                                      or self.error is not None, timeout=self.timeout):
                raise RanksDiverged(f"rank {r} waited {self.timeout}s in an all-reduce")
            if self.error is not None:
                raise RanksDiverged(str(self.error))
            tensor.copy_(self.result)
        return None

    def run(self, steps: list[Callable[[], Any]]) -> list[Any]:
        """Run one step per rank, each in its own thread, taking turns."""
        results: list[Any] = [None] * self.n
        errors: list[BaseException | None] = [None] * self.n
        self.turn, self.deposits, self.finished, self.error = 0, {}, set(), None

        def body(r: int) -> None:
            self.rank_of_thread[threading.get_ident()] = r
            try:
                with self.cond:
                    self._wait_turn(r)
                results[r] = steps[r]()
            except BaseException as e:   # noqa: BLE001 - reported to the caller
                errors[r] = e
                with self.cond:
                    if self.error is None and not isinstance(e, RanksDiverged):
                        self.error = e
                    self.cond.notify_all()
            finally:
                with self.cond:
                    self.finished.add(r)
                    if self.deposits and all(i in self.finished or i in self.deposits
                                             for i in range(self.n)) \
                            and len(self.deposits) < self.n and self.error is None:
                        self.error = RanksDiverged(
                            f"rank {r} finished its step while others wait in an all-reduce")
                    if self.turn == r:
                        self._pass_turn(r)
                    self.cond.notify_all()

        threads = [threading.Thread(target=body, args=(r,), name=f"rank-{r}")
                   for r in range(self.n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for e in errors:
            if e is not None and not isinstance(e, RanksDiverged):
                raise e
        for e in errors:
            if e is not None:
                raise e
        return results


_real_all_reduce: Callable | None = None


def route_all_reduce_to_lockstep_groups() -> None:
    """Make ``torch.distributed.all_reduce`` hand LockstepGroup calls to the group.

    Calls with any other group go to torch unchanged.  Idempotent.
    """
    global _real_all_reduce
    import torch.distributed as dist

    if _real_all_reduce is not None:
        return
    _real_all_reduce = dist.all_reduce

    def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
        if isinstance(group, LockstepGroup):
            return group.all_reduce(tensor, op=op)
        return _real_all_reduce(tensor, op=op, group=group, async_op=async_op)

    dist.all_reduce = all_reduce
