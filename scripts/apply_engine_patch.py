#!/usr/bin/env python3
"""Apply the corrected design's engine patch to a checkout of ZhengWG/sglang.

    python scripts/apply_engine_patch.py DIR [--patch FILE] [--check]

DIR holds ``python/sglang`` (a clone, or ``git archive cca20b094 python/sglang
| tar -x -C DIR``).  The patch (default
``conformance/engine_patch/cca20b094-corrected.patch``) is made against
commit ``cca20b094`` and applies to exactly that code: the script first checks
that every hunk applies, then applies them all; if one does not, nothing is
changed and it says which file and hunk, exit 9.  ``--check`` stops after the
check.  The patched code imports the protocol core
(``resumespec.reference.protocol``): install ``resumespec`` where it runs.
Needs ``git`` (``git apply`` works on a plain folder too).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATCH = REPO / "conformance" / "engine_patch" / "cca20b094-corrected.patch"
OK, USAGE, BAD_INPUT = 0, 2, 9


class PatchError(Exception):
    """The patch cannot be applied (the message says why)."""


def checkout_root(checkout: Path) -> Path:
    """The folder the patch's paths (``python/sglang/...``) are relative to."""
    if (checkout / "python" / "sglang" / "srt" / "disaggregation").is_dir():
        return checkout
    if (checkout / "sglang" / "srt" / "disaggregation").is_dir() and checkout.name == "python":
        return checkout.parent
    raise PatchError(f"{checkout}: no python/sglang/srt/disaggregation under it (give a checkout "
                     "of ZhengWG/sglang, e.g. `git archive cca20b094 python/sglang | tar -x -C DIR`)")


def _git_apply(root: Path, patch: Path, *extra: str) -> subprocess.CompletedProcess:
    git = shutil.which("git")
    if git is None:
        raise PatchError("git is not installed (apt-get install git): it applies the patch")
    # --unsafe-paths is not needed: every path is inside python/sglang;
    # GIT_DIR points nowhere so that a clone's index is not touched
    return subprocess.run([git, "apply", "--verbose", *extra, str(patch)], cwd=root,
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "GIT_DIR": str(root / ".no-git-dir")})


def apply_patch(checkout: str | Path, patch: str | Path = DEFAULT_PATCH,
                check_only: bool = False) -> list[str]:
    """Check, then apply, ``patch`` to ``checkout``; returns the files it
    changes.  PatchError (nothing changed) when a hunk does not apply."""
    patch = Path(patch).resolve()
    if not patch.is_file():
        raise PatchError(f"{patch}: no such patch file")
    root = checkout_root(Path(checkout).resolve())
    check = _git_apply(root, patch, "--check")
    if check.returncode != 0:
        lines = [ln[len("error: "):] for ln in (check.stderr + check.stdout).splitlines()
                 if ln.startswith("error:") and "while searching" not in ln]
        raise PatchError(f"{patch.name} does not apply to {root} (is it commit cca20b094, "
                         f"unpatched?): " + "; ".join(lines or [check.stderr.strip()]))
    files = [ln[len("Checking patch "):].rstrip(".") for ln in check.stderr.splitlines()
             if ln.startswith("Checking patch ")]
    if check_only:
        return files
    done = _git_apply(root, patch)
    if done.returncode != 0:        # (the check passed: only a race could get here)
        raise PatchError(f"applying {patch.name} to {root}: {done.stderr.strip()}")
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkout", help="checkout of ZhengWG/sglang at cca20b094 (holds python/sglang)")
    p.add_argument("--patch", default=str(DEFAULT_PATCH), help="patch file (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="only check that it applies")
    args = p.parse_args(argv)
    try:
        files = apply_patch(args.checkout, args.patch, args.check)
    except PatchError as e:
        print(f"apply_engine_patch: {e}", file=sys.stderr)
        return BAD_INPUT
    verb = "applies to" if args.check else "applied to"
    print(f"{Path(args.patch).name} {verb} {args.checkout}: " + ", ".join(files))
    return OK


if __name__ == "__main__":
    raise SystemExit(main())
