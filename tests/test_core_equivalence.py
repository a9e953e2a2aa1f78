"""The protocol core against the spec, state by state.

For every quick model of spec/manifest.json, TLC dumps the model's whole
state graph (safety only: no invariant stops it, no property is checked)
with action labels.  For every state, the core (through the abstract host
in ``reference/protocol/spechost.py``) computes every successor it allows;
that set of (action label, state) pairs must equal TLC's, both ways.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

import pytest

from resumespec.reference.protocol.spechost import World
from resumespec.spec import tlc
from resumespec.spec.tla_values import (
    Record,
    TlaFunction,
    TlaSet,
    iter_state_assignments,
    parse_value,
)

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"


def canon(v):
    """TLC's parsed values in the shapes ``World.to_spec`` gives."""
    if isinstance(v, TlaSet):
        return frozenset(canon(x) for x in v)
    if isinstance(v, Record):
        return tuple(sorted((k, canon(x)) for k, x in v.items()))
    if isinstance(v, TlaFunction):
        raise AssertionError(f"unexpected function value {v!r}")
    if isinstance(v, tuple):
        return tuple(canon(x) for x in v)
    return v


def freeze(v):
    """``to_spec``'s values, hashable (they already are but for the top-level dict)."""
    return tuple(sorted(v.items()))


_UNESCAPE = re.compile(r"\\(.)")


def _unescape(s: str) -> str:
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def dump_graph(model: dict, workdir: Path) -> tuple[dict, list[tuple[str, str, str]]]:
    """Run TLC on the model without invariants/properties; (states, edges)."""
    settings = tlc.prepare_settings()
    module = SPEC / model["module"]
    for spec_module in SPEC.glob("Resume*.tla"):     # the model's design module and the base
        shutil.copy(spec_module, workdir)
    shutil.copy(module, workdir)
    cfg = (SPEC / model["cfg"]).read_text()
    cfg = "\n".join(ln for ln in cfg.splitlines()
                    if not ln.startswith(("SPECIFICATION", "INVARIANT", "PROPERTY")))
    (workdir / "Dump.cfg").write_text(cfg + "\nINIT Init\nNEXT Next\n")
    cmd = [settings.java, "-XX:+UseParallelGC", "-cp", str(settings.jar.path), "tlc2.TLC",
           "-workers", "1", "-deadlock", "-config", "Dump.cfg", "-metadir", str(workdir / "meta"),
           "-dump", "dot,actionlabels", str(workdir / "graph"), module.name]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (workdir / "graph.dot").read_text()
    states = {}
    for m in re.finditer(r'^(-?\d+) \[label="((?:[^"\\]|\\.)*)"', text, re.M):
        states[m.group(1)] = {k: canon(parse_value(v))
                              for k, v in iter_state_assignments(_unescape(m.group(2)))}
    edges = re.findall(r'^(-?\d+) -> (-?\d+) \[label="(\w+)"', text, re.M)
    return states, edges


@cache
def quick_models() -> tuple:
    return tuple(m for m in json.loads((SPEC / "manifest.json").read_text())["models"] if m["set"] == "quick")


def check_model(model: dict, workdir: Path) -> dict:
    init = World.from_model(model["variant"], model["constants"])
    t0 = time.perf_counter()
    states, edges = dump_graph(model, workdir)
    t1 = time.perf_counter()
    tlc_succ: dict[str, set] = {sid: set() for sid in states}
    frozen = {sid: freeze(v) for sid, v in states.items()}
    for a, b, label in edges:
        tlc_succ[a].add((label, frozen[b]))
    problems = []
    n_edges = 0
    for sid, v in states.items():
        world = World.from_spec(init.params, init.totals, init.n_blocks, init.faults, v)
        assert freeze(world.to_spec()) == frozen[sid], f"state {sid} does not round-trip"
        core = {(label, freeze(w.to_spec())) for label, w in world.successors()}
        n_edges += len(core)
        if core != tlc_succ[sid]:
            only_core = sorted(lbl for lbl, _ in core - tlc_succ[sid])
            only_tlc = sorted(lbl for lbl, _ in tlc_succ[sid] - core)
            problems.append((sid, only_core, only_tlc))
    return {"states": len(states), "edges": n_edges, "problems": problems,
            "tlc_s": t1 - t0, "core_s": time.perf_counter() - t1}


@pytest.fixture(scope="module")
def workroot():
    d = Path(tempfile.mkdtemp(prefix="core_equiv_"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("name", [m["name"] for m in quick_models()])
def test_core_successors_equal_tlc(name, workroot):
    model = next(m for m in quick_models() if m["name"] == name)
    wd = workroot / name
    wd.mkdir()
    res = check_model(model, wd)
    if model["expected"] == "success":       # TLC's check explored the same whole graph
        assert res["states"] == model["distinct_states"]
    assert not res["problems"], (
        f"{name}: {len(res['problems'])} of {res['states']} states differ; first: "
        f"state {res['problems'][0][0]}: core-only {res['problems'][0][1]}, "
        f"TLC-only {res['problems'][0][2]}")


if __name__ == "__main__":   # timing: python tests/test_core_equivalence.py [model...]
    import sys
    names = sys.argv[1:] or [m["name"] for m in quick_models()]
    root = Path(tempfile.mkdtemp(prefix="core_equiv_"))
    for m in quick_models():
        if m["name"] in names:
            (root / m["name"]).mkdir()
            r = check_model(m, root / m["name"])
            print(f"{m['name']:32} states={r['states']:6} edges={r['edges']:6} "
                  f"tlc={r['tlc_s']:.1f}s core={r['core_s']:.1f}s problems={len(r['problems'])}"
                  + (f" first={r['problems'][0]}" if r["problems"] else ""))
