"""scripts/setup-system.sh, the set-up that `make check`, `make test` and
.ci/run share: it says what is missing and, when it cannot install it (not
root, no apt-get), stops with the one command to run.

The script runs with a PATH of our making: links to the real tools it needs,
minus the ones a case leaves out, plus stand-ins for ``id`` (a non-root user)
and ``apt-get`` (records that it was called). Nothing is installed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/setup-system.sh"
TOOLS = ["bash", "sed", "head", "grep", "java", "python3.11", "make", "ldconfig", "chromium"]


def fake_path(tmp_path: Path, *, without=(), uid=1000, apt=True) -> tuple[dict, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    search = os.environ.get("PATH", "") + ":/sbin:/usr/sbin"
    for tool in TOOLS:
        if tool in without:
            continue
        # python3.11 may be a shim (pyenv): take the interpreter this venv was made from.
        real = os.path.realpath(sys.executable) if tool == "python3.11" else shutil.which(tool, path=search)
        assert real, f"{tool} is needed on this machine for the test (make test installs it)"
        (bin_dir / tool).symlink_to(real)
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    calls = tmp_path / "apt-calls"
    if apt:
        (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 99\n')
    for f in bin_dir.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return env, calls


def run(env, *args):
    return subprocess.run([shutil.which("bash"), str(SCRIPT), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_all_present_is_silent_success(tmp_path):
    env, calls = fake_path(tmp_path)
    proc = run(env, "test")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert not calls.exists()


def test_non_root_gets_the_one_command(tmp_path):
    env, calls = fake_path(tmp_path, without=("chromium",))
    proc = run(env, "test")
    assert proc.returncode == 3
    assert "chromium not found" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        "setup-system: run: sudo apt-get update && sudo apt-get install -y chromium"
    assert not calls.exists()            # nothing was installed


def test_check_needs_no_browser(tmp_path):
    env, _ = fake_path(tmp_path, without=("chromium",))
    assert run(env, "check").returncode == 0


def test_missing_java_and_python_name_their_packages(tmp_path):
    env, _ = fake_path(tmp_path, without=("java", "python3.11"))
    proc = run(env, "check")
    assert proc.returncode == 3
    assert "sudo apt-get install -y python3.11 python3.11-venv openjdk-17-jre-headless" in proc.stderr


def test_old_java_is_missing_java(tmp_path):
    env, _ = fake_path(tmp_path, without=("java",))
    java = Path(env["PATH"]) / "java"
    java.write_text('#!/bin/sh\necho \'java version "1.8.0_402"\' >&2\n')
    java.chmod(0o755)
    proc = run(env, "check")
    assert proc.returncode == 3 and "java is version '8', TLC needs 11+" in proc.stderr


def test_without_apt_get_lists_the_packages(tmp_path):
    env, _ = fake_path(tmp_path, without=("chromium",), apt=False)
    proc = run(env, "test")
    assert proc.returncode == 3
    assert "no apt-get here" in proc.stderr and "chromium" in proc.stderr


@pytest.mark.parametrize("arg", ["all", "--force"])
def test_unknown_argument_is_a_usage_error(tmp_path, arg):
    env, _ = fake_path(tmp_path)
    proc = run(env, arg)
    assert proc.returncode == 2 and "expected: check or test" in proc.stderr
