"""The driver: starts the encode process and one process per language rank
(``multiprocessing`` spawn), stands in for the front end (submits the
requests) and the model (checks what prefill got), injects the kill -9 of
the heartbeat fault, and checks the processes' merged traces.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .common import DeployConfig, digest, dumps, loads, source_embedding


def realistic_lengths(n: int, seed: int, lo: int = 256, hi: int = 16384) -> list[int]:
    """Embedding lengths spread like image token counts: log-uniform between
    ``lo`` and ``hi`` (a few hundred for a small image, tens of thousands for
    a large one or a video)."""
    import random

    rnd = random.Random(seed)
    return [int(round(lo * (hi / lo) ** rnd.random())) for _ in range(n)]


@dataclass
class DeployResult:
    config: dict
    trace_dir: str
    seconds: float
    outcomes: dict[int, str] = field(default_factory=dict)   # req -> handed | failed
    mismatches: list[str] = field(default_factory=list)
    killed: int | None = None                                 # req at whose transfer encode died
    tokens_handed: int = 0
    bytes_handed: int = 0
    verdicts: dict[str, dict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(v.get("verdict") == "conforms"
                                           for v in self.verdicts.values())

    def to_json(self) -> dict:
        return {"ok": self.ok, "seconds": round(self.seconds, 3), "trace_dir": self.trace_dir,
                "handed": sum(1 for o in self.outcomes.values() if o == "handed"),
                "failed": sum(1 for o in self.outcomes.values() if o == "failed"),
                "outcomes": {str(k): v for k, v in sorted(self.outcomes.items())},
                "mismatches": self.mismatches, "killed_at_req": self.killed,
                "tokens_handed": self.tokens_handed, "bytes_handed": self.bytes_handed,
                "verdicts": self.verdicts, "config": self.config}


class DeployError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def trace_files(trace_dir: str | Path) -> list[str]:
    """The per-process logs of a run, encode first, then the ranks in order."""
    d = Path(trace_dir)
    files = sorted(d.glob("language-*.jsonl"), key=lambda f: int(f.stem.split("-")[1]))
    enc = d / "encode.jsonl"
    return [str(f) for f in ([enc] if enc.exists() else []) + files]


def deploy(cfg: DeployConfig, out: str | Path,
           probe: Callable[[str, dict[str, int]], None] | None = None) -> DeployResult:
    """Run one deployed scenario; traces go to ``out``/trace/.  Raises
    DeployError when the run cannot finish (a process died unexpectedly,
    the timeout passed).  ``probe`` (the benchmarks' CPU split) is called
    with ``"start"`` just before the first request goes to the language
    side and with ``"end"`` once every rank has ended every request, each
    time with the processes' pids ({"encode": pid, "language/1": pid, ...})."""
    import zmq

    from .encode import main as encode_main
    from .language import main as language_main

    cfg.validate()
    if cfg.device == "auto":
        import torch

        cfg.device = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.fault == "heartbeat" and cfg.trace_flush is None:
        cfg.trace_flush = True   # kill -9: only lines already written survive
    trace_dir = Path(out) / "trace"
    trace_dir.mkdir(parents=True, exist_ok=True)
    for f in trace_dir.glob("*.jsonl"):
        f.unlink()
    (Path(out) / "logs").mkdir(exist_ok=True)
    zctx = zmq.Context()
    inbox = zctx.socket(zmq.PULL)
    addr = f"tcp://127.0.0.1:{inbox.bind_to_random_port('tcp://127.0.0.1')}"
    dist_addr = f"tcp://127.0.0.1:{_free_port()}"
    spawn = mp.get_context("spawn")
    cfg_dict = cfg.to_json()
    procs = {"encode": spawn.Process(target=encode_main, args=(cfg_dict, addr, str(trace_dir)),
                                     name="encode", daemon=True)}
    for s in range(1, cfg.ranks + 1):
        procs[f"language/{s}"] = spawn.Process(
            target=language_main, args=(cfg_dict, s, addr, str(trace_dir), dist_addr),
            name=f"language/{s}", daemon=True)
    t0 = time.monotonic()
    deadline = t0 + cfg.timeout_s
    for pr in procs.values():
        pr.start()
    socks: dict[str, zmq.Socket] = {}
    result = DeployResult(cfg_dict, str(trace_dir), 0.0)
    try:
        def recv() -> dict:
            while True:
                if inbox.poll(timeout=200):
                    return loads(inbox.recv())
                if time.monotonic() > deadline:
                    raise DeployError(f"timed out after {cfg.timeout_s} s")
                for name, pr in procs.items():
                    if pr.exitcode not in (None, 0) and not (name == "encode" and result.killed):
                        raise DeployError(f"process {name} exited with {pr.exitcode} "
                                          f"(its stderr: {_log_of(out, name)})")

        hellos: dict[str, dict] = {}
        while len(hellos) < len(procs):
            m = recv()
            hellos[m["proc"]] = m
        for name, h in hellos.items():
            sk = zctx.socket(zmq.PUSH)
            sk.setsockopt(zmq.LINGER, 0)
            sk.connect(h["inbox"])
            socks[name] = sk
        peers = {"t": "peers", "encode": hellos["encode"]["inbox"],
                 "ranks": {str(s): hellos[f"language/{s}"] for s in range(1, cfg.ranks + 1)}}
        for sk in socks.values():
            sk.send(dumps(peers))
        t0 = time.monotonic()
        def submit(r: int) -> None:
            if not cfg.preencode:
                socks["encode"].send(dumps({"t": "req", "req": r, "total": cfg.lengths[r - 1]}))
            socks["language/1"].send(dumps({"t": "req", "req": r}))

        ends: dict[tuple[int, int], dict] = {}
        if cfg.preencode:       # the encoder's work done before the transfers start
            for r, total in enumerate(cfg.lengths, 1):
                socks["encode"].send(dumps({"t": "req", "req": r, "total": total}))
            encoded = 0
            while encoded < len(cfg.lengths):
                encoded += recv()["t"] == "encoded"
        pids = {name: h["pid"] for name, h in hellos.items()}
        if probe is not None:
            probe("start", pids)
        for r in ([1] if cfg.sequential else range(1, len(cfg.lengths) + 1)):
            submit(r)
        while len(ends) < len(cfg.lengths) * cfg.ranks:
            m = recv()
            if m["t"] == "kill_point":
                os.kill(m["pid"], signal.SIGKILL)       # kill -9 mid-transfer
                result.killed = m["req"]
            elif m["t"] == "end":
                ends[(m["req"], m["session"])] = m
                r = m["req"]
                if (cfg.sequential and r < len(cfg.lengths)
                        and all((r, s) in ends for s in range(1, cfg.ranks + 1))):
                    submit(r + 1)
        result.seconds = time.monotonic() - t0
        if probe is not None:
            probe("end", pids)
        for name in procs:
            if name == "encode" and result.killed:
                continue
            socks[name].send(b'{"t":"stop"}')
        for name, pr in procs.items():
            pr.join(timeout=max(1.0, deadline - time.monotonic()))
            if pr.exitcode is None:
                raise DeployError(f"process {name} did not stop")
            if pr.exitcode != 0 and not (name == "encode" and result.killed):
                raise DeployError(f"process {name} exited with {pr.exitcode} "
                                  f"(its stderr: {_log_of(out, name)})")
    finally:
        for pr in procs.values():
            if pr.is_alive():
                pr.kill()
        zctx.destroy(linger=0)
    _verify(cfg, ends, result)
    return result


def _log_of(out: str | Path, proc: str) -> str:
    return str(Path(out) / "logs" / (proc.replace("/", "-") + ".log"))


def _verify(cfg: DeployConfig, ends: dict, result: DeployResult) -> None:
    """Every rank of a request ended the same way; what prefill got equals the
    source bytes; only the request a fault hit (or, after kill -9, those not
    finished) failed."""
    for r, total in enumerate(cfg.lengths, 1):
        got = [ends[(r, s)] for s in range(1, cfg.ranks + 1)]
        oks = {g["ok"] for g in got}
        if len(oks) != 1:
            result.mismatches.append(f"req {r}: the ranks ended differently: {got}")
            continue
        if oks == {True}:
            result.outcomes[r] = "handed"
            want = digest(source_embedding(cfg.seed, r, total, cfg.hidden)) if cfg.verify else ""
            for g in got:
                if g["tokens"] != total or (cfg.verify and g["sha"] != want):
                    result.mismatches.append(
                        f"req {r} rank {g['session']}: prefill got {g['tokens']} tokens "
                        f"(sha {g['sha'][:12]}), the source has {total} (sha {want[:12]})")
            result.tokens_handed += total
            result.bytes_handed += total * cfg.hidden * 2 * cfg.ranks
        else:
            result.outcomes[r] = "failed"
            if cfg.fault is None or (cfg.fault != "heartbeat" and r != cfg.fault_req):
                result.mismatches.append(f"req {r} failed ({got[0].get('reason')}) "
                                         f"without a fault that explains it")


def check_traces(trace_dir: str, checkers: tuple[str, ...] = ("native",),
                 tlc_timeout: int = 300) -> dict[str, dict]:
    """The merged per-process traces checked by each checker: {checker: verdict JSON}."""
    files = trace_files(trace_dir)
    out: dict[str, dict] = {}
    if "native" in checkers:
        from resumespec.conformance.checker_native import check_native

        out["native"] = check_native(files).to_json()
    if "tlc" in checkers:
        from resumespec.conformance.tlc_trace import check_tlc

        out["tlc"] = check_tlc(files, timeout=tlc_timeout).to_json()
    return out
