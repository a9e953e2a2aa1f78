"""Load what a report is made from: a counterexample (from TLC, or the JSON
that ``resumespec counterexample --json`` printed) or an engine trace.
"""

from __future__ import annotations

from typing import Any

from resumespec.spec import tla_values as tv
from resumespec.spec.counterexample import ActionLabel, Trace, TraceState


class ReportInputError(Exception):
    """Input a report cannot be made from; the message is one line."""


def value_from_json(v: Any) -> Any:
    """The inverse of ``tla_values.to_json`` (docs/checking.md, --json)."""
    if isinstance(v, list):
        return tuple(value_from_json(x) for x in v)
    if isinstance(v, dict):
        if set(v) == {"set"} and isinstance(v["set"], list):
            return tv.TlaSet(value_from_json(x) for x in v["set"])
        if set(v) == {"function"} and isinstance(v["function"], list):
            return tv.TlaFunction((value_from_json(k), value_from_json(x)) for k, x in v["function"])
        if set(v) == {"model_value"}:
            return tv.ModelValue(v["model_value"])
        if set(v) == {"tla"}:
            return tv.Opaque(v["tla"])
        return tv.Record((k, value_from_json(x)) for k, x in v.items())
    return v


def _label(d: dict | None) -> ActionLabel | None:
    if not d:
        return None
    return ActionLabel(d.get("name") or "?", d.get("params"), d.get("module"), d.get("line"),
                       d.get("column"), via=d.get("via"))


def trace_from_json(doc: dict, where: str = "trace") -> Trace:
    """A Trace from the ``trace`` object of ``counterexample --json``."""
    try:
        states = [TraceState(int(s["number"]), _label(s.get("action")),
                             {k: value_from_json(x) for k, x in s["values"].items()})
                  for s in doc["states"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ReportInputError(f"{where}: expected states with number, action and values ({e})") from None
    return Trace(states=states, loop_to=doc.get("loop_to"), loop_action=_label(doc.get("loop_action")),
                 stuttering=bool(doc.get("stuttering")))
