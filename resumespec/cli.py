"""The ``resumespec`` command line: one program, one subcommand per job.

Each part of the project registers its own subcommands:
    check, counterexample   -> resumespec.spec.cli
    simulate                -> resumespec.reference.cli
    conform                 -> resumespec.conformance.cli
    report                  -> resumespec.report.cli
"""

from __future__ import annotations

import argparse
import os
import sys

from resumespec import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resumespec",
        description="Model-check, run and conformance-test the embedding "
        "transfer resume protocol.",
    )
    parser.add_argument("--version", action="version", version=f"resumespec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # Imported here so that each part stays independent; torch is imported
    # lazily by the reference commands only.
    from resumespec.spec import cli as spec_cli

    spec_cli.register(sub)
    try:
        from resumespec.reference import cli as reference_cli
    except ImportError:  # part not built yet
        reference_cli = None
    if reference_cli is not None:
        reference_cli.register(sub)
    try:
        from resumespec.conformance import cli as conformance_cli
    except ImportError:
        conformance_cli = None
    if conformance_cli is not None:
        conformance_cli.register(sub)
    from resumespec.report import cli as report_cli

    report_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("resumespec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`resumespec conform ... | head`): stop quietly,
        # as other Unix tools do, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # killed by SIGPIPE, by shell convention


if __name__ == "__main__":
    raise SystemExit(main())
