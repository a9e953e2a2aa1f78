"""What a gloo collective costs the rank that reaches it late
(``python -m bench.probe_gloo_spin [--iters N] [--json]``).

Two processes in a gloo group run the language ranks' per-iteration
collectives ``iters`` times: with ``collectives`` 2 the old pair (a
broadcast from rank 0, then an all-reduce MIN), with 1 the single all-reduce
MIN that carries the commands too (``DeployConfig.collectives``).  Before each iteration, in mode ``late-root`` rank 0 sleeps
``delay_ms`` (the root of the broadcast arrives last), in ``late-other``
rank 1 does, in ``both`` both do (they arrive about together).  Printed: the
wall time and each rank's CPU seconds per thread (``cpu_split``).  What it
shows here: the rank that arrives late spends CPU in its ``gloo_tcp_loop``
thread while it is away, about as long as it is away; the one that waits
inside the collective does not.  See docs/deployed.md, "Throughput".
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

MODES = ("both", "late-root", "late-other")


def _rank(rank: int, port: int, mode: str, iters: int, delay_s: float, q,
          collectives: int = 2) -> None:
    import torch
    import torch.distributed as dist

    from bench import cpu_split

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    cmds = torch.zeros(513, dtype=torch.int64)
    dist.all_reduce(cmds)
    sleeper = {"both": (0, 1), "late-root": (0,), "late-other": (1,)}[mode]
    pids = {"rank": os.getpid()}
    before, t0 = cpu_split.snapshot(pids), time.perf_counter()
    for _ in range(iters):
        if rank in sleeper:
            time.sleep(delay_s)
        if collectives == 2:
            dist.broadcast(cmds, src=0)
            dist.all_reduce(torch.tensor([1, 2, 3], dtype=torch.int64), op=dist.ReduceOp.MIN)
        else:
            dist.all_reduce(torch.zeros(65 + 3, dtype=torch.int64), op=dist.ReduceOp.MIN)
    wall = time.perf_counter() - t0
    q.put((rank, wall, cpu_split.split(before, cpu_split.snapshot(pids), pids)["rank"]))
    dist.destroy_process_group()


def measure(mode: str, iters: int = 300, delay_ms: float = 2.0, collectives: int = 2) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    procs = [ctx.Process(target=_rank, args=(r, port, mode, iters, delay_ms / 1e3, q,
                                                       collectives))
             for r in range(2)]
    for p in procs:
        p.start()
    got = sorted(q.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    return {"mode": mode, "collectives": collectives, "iters": iters, "delay_ms": delay_ms,
            "wall_s": round(max(w for _, w, _ in got), 3),
            "cpu": {f"rank {r}": cpu for r, _, cpu in got}}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.probe_gloo_spin",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--delay-ms", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = [measure(m, args.iters, args.delay_ms, c) for c in (2, 1) for m in MODES]
    if args.json:
        print(json.dumps({"load": os.getloadavg()[0], "runs": out}, indent=2))
        return 0
    print(f"{args.iters} iterations of the collectives, {args.delay_ms} ms away before "
          f"each on the late rank(s); load {os.getloadavg()[0]:.2f}")
    for r in out:
        cpus = "; ".join(f"{k}: " + " ".join(f"{g} {v:.3f}" for g, v in c.items())
                         for k, c in r["cpu"].items())
        what = "broadcast + all-reduce" if r["collectives"] == 2 else "one all-reduce"
        print(f"  {what:22s} {r['mode']:10s} wall {r['wall_s']:.3f} s   CPU s {cpus}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
