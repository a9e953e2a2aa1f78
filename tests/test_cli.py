"""The `resumespec` program as a whole: subcommands, version, closed pipes."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "resumespec"]


def run(*args, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, **kw)


def test_help_lists_every_subcommand():
    out = run("--help").stdout
    for command in ("check", "counterexample", "simulate", "conform", "report"):
        assert command in out, f"{command} missing from resumespec --help"


def test_version():
    from resumespec import __version__

    result = run("--version")
    assert result.returncode == 0
    first, tlc_line = result.stdout.strip().splitlines()
    assert first == f"resumespec {__version__}"
    assert tlc_line.startswith("TLC: ") and "tla2tools.jar" in tlc_line


def test_no_subcommand_is_a_usage_error():
    result = run()
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_reader_closing_the_pipe_early_is_not_a_traceback():
    # Many traces, so the output is longer than what the reader takes.
    traces = sorted(str(p) for p in (ROOT / "conformance/corpus/sglang").glob("*/*.jsonl")) * 20
    assert len(traces) > 10
    proc = subprocess.Popen([*CLI, "conform", *traces], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `| head -1` does
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in stderr
    assert code in (141, 0, 10, 11), code
