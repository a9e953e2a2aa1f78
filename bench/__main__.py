"""Run the benchmarks: ``python -m bench [NAME...]`` (or ``make bench``).

Every module ``bench/bench_<name>.py`` defines ``main(argv: list[str]) -> int``
and prints its own ratios, measured side by side in the same run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[len("bench_"):]
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or available()
    flags = [a for a in argv if a.startswith("-")]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"bench: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    worst = 0
    for name in names:
        # with --json, stdout carries only the benchmarks' JSON documents
        print(f"== bench {name}", flush=True, file=sys.stderr if "--json" in flags else sys.stdout)
        module = importlib.import_module(f"bench.bench_{name}")
        worst = max(worst, int(module.main(flags) or 0))
    return worst


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
