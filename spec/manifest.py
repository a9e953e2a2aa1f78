"""spec/manifest.json: every TLC model of the project and what it must give.

Format (documented in docs/checking.md)::

    {
      "format": 1,
      "models": [
        {
          "name": "once_engine",                  unique, used on the command line
          "module": "models/MC_once_engine.tla",  relative to the manifest's folder
          "cfg": "models/MC_once_engine.cfg",
          "variant": "once",                      docs/model.md Variant
          "constants": "NReq=2 NSess=2 ...",      one-line summary for people
          "set": "quick",                         "quick" or "deep"
          "mode": "bfs",                          or {"simulate": {"num": 1000, "depth": 60, "seed": 1}}
          "check_deadlock": true,
          "expected": "success",                  or "deadlock", {"safety": "Inv"}, {"liveness": "Prop"},
                                                  {"assumption": "..."}
          "distinct_states": 12345,               measured; compared exactly for bfs success models
          "depth": 17,                            measured
          "runtime_s": 3.4,                       measured
          "why": "one sentence"                   required unless expected is "success"
        }
      ]
    }

``load_manifest`` validates the file and raises ManifestError naming the
entry and field that is wrong. ``compare`` decides whether a TLC result
matches an entry's expectation. ``update_measurements`` writes measured
numbers back without touching expectations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resumespec import exitcodes

FORMAT = 1
SETS = ("quick", "deep")
NAMED_KINDS = ("safety", "liveness", "assumption")

_FIELDS = {
    "name", "module", "cfg", "variant", "constants", "set", "mode", "check_deadlock",
    "expected", "distinct_states", "depth", "runtime_s", "why", "notes", "throughput",
}


def default_manifest_path() -> Path:
    return Path(__file__).resolve().parent / "manifest.json"


class ManifestError(Exception):
    """The manifest is wrong; the message is one line naming entry and field."""

    exit_code = exitcodes.BAD_INPUT


@dataclass(frozen=True)
class Expected:
    kind: str                  # success, deadlock, safety, liveness, assumption
    property: str | None = None

    def __str__(self) -> str:
        return self.kind if self.property is None else f"{self.kind}:{self.property}"

    def to_json(self) -> Any:
        return self.kind if self.property is None else {self.kind: self.property}


@dataclass
class ModelEntry:
    name: str
    module: Path               # absolute
    cfg: Path                  # absolute
    variant: str
    constants: str
    set: str
    mode: str                  # "bfs" or "simulate"
    simulate: dict[str, Any] | None      # {"num", "depth", "seed"} when mode is simulate
    check_deadlock: bool
    expected: Expected
    distinct_states: int | None
    depth: int | None
    runtime_s: float | None
    why: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Manifest:
    path: Path
    models: list[ModelEntry]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    def by_name(self, name: str) -> ModelEntry | None:
        for m in self.models:
            if m.name == name:
                return m
        return None

    def in_set(self, *sets: str) -> list[ModelEntry]:
        return [m for m in self.models if m.set in sets]


def _where(path: Path, index: int | None, name: str | None, fld: str | None) -> str:
    where = str(path)
    if index is not None:
        where += f": models[{index}]"
        if name:
            where += f" ({name!r})"
    if fld:
        where += f" field {fld!r}"
    return where


def parse_expected(value: Any) -> Expected:
    if value in ("success", "deadlock"):
        return Expected(value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, prop),) = value.items()
        if kind in NAMED_KINDS and isinstance(prop, str) and prop:
            return Expected(kind, prop)
    raise ValueError(
        'expected "success", "deadlock", {"safety": "Name"}, {"liveness": "Name"} '
        f'or {{"assumption": "..."}}, got {json.dumps(value)}'
    )


def _entry(path: Path, index: int, obj: Any, root: Path) -> ModelEntry:
    if not isinstance(obj, dict):
        raise ManifestError(f"{_where(path, index, None, None)}: expected an object, got {type(obj).__name__}")
    name = obj.get("name")

    def bad(fld: str, what: str) -> ManifestError:
        return ManifestError(f"{_where(path, index, name if isinstance(name, str) else None, fld)}: {what}")

    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        return_err = bad(unknown[0], f"unknown field (known: {', '.join(sorted(_FIELDS))})")
        raise return_err
    for fld in ("name", "module", "cfg", "variant", "set", "expected"):
        if fld not in obj:
            raise bad(fld, "missing")
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise bad("name", "expected a non-empty name without spaces")
    for fld in ("module", "cfg", "variant"):
        if not isinstance(obj[fld], str) or not obj[fld]:
            raise bad(fld, "expected a non-empty string")
    module = (root / obj["module"]).resolve()
    cfg = (root / obj["cfg"]).resolve()
    if not obj["module"].endswith(".tla"):
        raise bad("module", "expected a path ending in .tla")
    if not obj["cfg"].endswith(".cfg"):
        raise bad("cfg", "expected a path ending in .cfg")
    if not module.is_file():
        raise bad("module", f"file not found: {module}")
    if not cfg.is_file():
        raise bad("cfg", f"file not found: {cfg}")
    constants = obj.get("constants", "")
    if not isinstance(constants, str):
        raise bad("constants", "expected a one-line string")
    if obj["set"] not in SETS:
        raise bad("set", f'expected "quick" or "deep", got {json.dumps(obj["set"])}')
    mode_value = obj.get("mode", "bfs")
    simulate = None
    if mode_value == "bfs":
        mode = "bfs"
    elif isinstance(mode_value, dict) and set(mode_value) == {"simulate"} and isinstance(mode_value["simulate"], dict):
        mode = "simulate"
        simulate = dict(mode_value["simulate"])
        extra = set(simulate) - {"num", "depth", "seed"}
        if extra:
            raise bad("mode", f"unknown simulate option {sorted(extra)[0]!r} (known: num, depth, seed)")
        for key in ("num", "depth"):
            if not isinstance(simulate.get(key), int) or isinstance(simulate.get(key), bool) or simulate[key] < 1:
                raise bad("mode", f"simulate.{key}: expected a positive integer")
        if "seed" in simulate and (not isinstance(simulate["seed"], int) or isinstance(simulate["seed"], bool)):
            raise bad("mode", "simulate.seed: expected an integer")
    else:
        raise bad("mode", f'expected "bfs" or {{"simulate": {{"num": N, "depth": D}}}}, got {json.dumps(mode_value)}')
    check_deadlock = obj.get("check_deadlock", True)
    if not isinstance(check_deadlock, bool):
        raise bad("check_deadlock", "expected true or false")
    try:
        expected = parse_expected(obj["expected"])
    except ValueError as exc:
        raise bad("expected", str(exc)) from exc
    if expected.kind == "deadlock" and not check_deadlock:
        raise bad("expected", '"deadlock" expected but check_deadlock is false')
    measured: dict[str, Any] = {}
    for fld, types in (("distinct_states", int), ("depth", int), ("runtime_s", (int, float))):
        value = obj.get(fld)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool) or value < 0):
            raise bad(fld, "expected a non-negative number or null")
        measured[fld] = value
    throughput = obj.get("throughput")
    if throughput is not None and not isinstance(throughput, dict):
        raise bad("throughput", "expected an object (written by python -m bench tlc --compare --record)")
    why = obj.get("why")
    if why is not None and (not isinstance(why, str) or not why.strip()):
        raise bad("why", "expected a one-sentence string")
    if expected.kind != "success" and not why:
        raise bad("why", f"missing: a model expected to give {expected} needs a one-sentence reason")
    return ModelEntry(
        name=name, module=module, cfg=cfg, variant=obj["variant"], constants=constants,
        set=obj["set"], mode=mode, simulate=simulate, check_deadlock=check_deadlock,
        expected=expected, distinct_states=measured["distinct_states"], depth=measured["depth"],
        runtime_s=measured["runtime_s"], why=why, raw=obj,
    )


def load_manifest(path: Path | str | None = None) -> Manifest:
    """Read and validate a manifest; raise ManifestError on the first problem."""
    path = Path(path) if path is not None else default_manifest_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object with \"format\" and \"models\"")
    if data.get("format") != FORMAT:
        raise ManifestError(f"{path}: field 'format': expected {FORMAT}, got {json.dumps(data.get('format'))}")
    models = data.get("models")
    if not isinstance(models, list):
        raise ManifestError(f"{path}: field 'models': expected a list")
    root = path.resolve().parent
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for i, obj in enumerate(models):
        entry = _entry(path, i, obj, root)
        if entry.name in seen:
            raise ManifestError(f"{_where(path, i, entry.name, 'name')}: duplicate model name")
        seen.add(entry.name)
        entries.append(entry)
    return Manifest(path=path, models=entries, raw=data)


# ---------------------------------------------------------------------------
# Comparing results with expectations


def verdict_matches(entry: ModelEntry, kind: str, prop: str | None) -> bool:
    """Result kind and (where named) property are the expected ones."""
    return kind == entry.expected.kind and (entry.expected.property is None or prop == entry.expected.property)


def compare(entry: ModelEntry, kind: str, prop: str | None, distinct_states: int | None,
            exact_count: bool = True) -> list[str]:
    """Reasons why a result does not match ``entry``; [] when it matches.

    ``exact_count=False``: the distinct state count is not compared (a model
    with a VIEW run by several TLC workers: which state of a view's class
    is explored first depends on the workers' timing, and so does the count;
    one worker gives the recorded count every time)."""
    problems: list[str] = []
    exp = entry.expected
    got = kind if prop is None or kind in ("success", "deadlock") else f"{kind}:{prop}"
    if kind != exp.kind:
        problems.append(f"expected {exp}, got {got}")
    elif exp.property is not None and prop != exp.property:
        problems.append(f"expected {exp}, got {got}")
    elif (exact_count and exp.kind == "success" and entry.mode == "bfs"
          and entry.distinct_states is not None
          and distinct_states is not None and distinct_states != entry.distinct_states):
        problems.append(
            f"expected {entry.distinct_states:,} distinct states, got {distinct_states:,} "
            "(the spec or model changed? record with --update-manifest)"
        )
    return problems


def update_measurements(manifest: Manifest, measured: dict[str, dict[str, Any]]) -> list[str]:
    """Write measured distinct_states/depth/runtime_s for the named models.

    ``measured`` maps model name -> {"distinct_states", "depth", "runtime_s"}.
    Expectations and all other fields stay as they are. Returns a line per
    changed number.
    """
    changes: list[str] = []
    for obj in manifest.raw.get("models", []):
        got = measured.get(obj.get("name"))
        if not got:
            continue
        for fld in ("distinct_states", "depth", "runtime_s"):
            if fld in got and got[fld] is not None and obj.get(fld) != got[fld]:
                if fld != "runtime_s":
                    changes.append(f"{obj['name']}: {fld} {obj.get(fld)} -> {got[fld]}")
                obj[fld] = got[fld]
    text = json.dumps(manifest.raw, indent=2) + "\n"
    tmp = manifest.path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(manifest.path)
    return changes
