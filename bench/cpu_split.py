"""CPU time per process and thread, read from ``/proc`` (Linux), for the
benchmarks that run several processes (``bench_deployed``).

``snapshot({label: pid})`` reads every thread's run time so far
(``/proc/PID/task/TID/sched``: ``se.sum_exec_runtime``, in ms with us
resolution; ``stat``'s utime + stime in clock ticks where ``sched`` is
missing); ``split(before, after)`` gives the CPU seconds each process
spent between two snapshots, and how it divides between the process's main
thread and its other threads grouped by name.  Two snapshots cost a few ms
of the caller's CPU, taken outside the interval they bound.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict

_TICK = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _thread_cpu(pid: int, tid: int) -> float | None:
    base = f"/proc/{pid}/task/{tid}"
    try:
        with open(f"{base}/sched") as f:
            for line in f:
                if line.startswith("se.sum_exec_runtime"):
                    return float(line.split(":")[1]) / 1e3
    except OSError:
        pass
    try:
        with open(f"{base}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * _TICK
    except (OSError, IndexError, ValueError):
        return None


def _comm(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def snapshot(pids: dict[str, int]) -> dict[str, dict[int, tuple[str, float]]]:
    """{label: {tid: (thread name, CPU seconds so far)}} for each process."""
    out: dict[str, dict[int, tuple[str, float]]] = {}
    for label, pid in pids.items():
        threads: dict[int, tuple[str, float]] = {}
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            tids = []
        for tid in tids:
            cpu = _thread_cpu(pid, tid)
            if cpu is not None:
                threads[tid] = (_comm(pid, tid), cpu)
        out[label] = threads
    return out


def _group(name: str, main: bool) -> str:
    if main:
        return "main"
    return re.sub(r"[/_-]?\d+$", "", name) or name


def split(before: dict, after: dict, pids: dict[str, int]) -> dict[str, dict[str, float]]:
    """CPU seconds between the snapshots: {label: {"total": s, "main": s,
    thread group: s, ...}} (groups: the thread's name with a trailing number
    dropped, so a pool of workers counts as one)."""
    out: dict[str, dict[str, float]] = {}
    for label, threads in after.items():
        was = before.get(label, {})
        groups: dict[str, float] = defaultdict(float)
        for tid, (name, cpu) in threads.items():
            d = cpu - was.get(tid, (name, 0.0))[1]
            if d > 0:
                groups[_group(name, tid == pids[label])] += d
        total = sum(groups.values())
        out[label] = {"total": round(total, 4),
                      **{g: round(v, 4) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])}}
    return out
