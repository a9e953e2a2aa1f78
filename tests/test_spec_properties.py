"""The property names of resumespec.spec.properties are the spec's own."""

import re
from pathlib import Path

from resumespec.spec import properties

SPEC = Path(__file__).resolve().parents[1] / "spec" / "ResumeBase.tla"
# each model EXTENDS the module of its design, which EXTENDS ResumeBase
DESIGNS = [SPEC.parent / "ResumeHistorical.tla", SPEC.parent / "ResumeCorrected.tla"]


def spec_definitions(section_start: str, section_end: str) -> set[str]:
    text = SPEC.read_text()
    section = text[text.index(section_start):text.index(section_end)]
    return set(re.findall(r"^([A-Z][A-Za-z]*) ==", section, flags=re.M))


def test_safety_names_are_the_spec_invariants():
    defined = spec_definitions("(* Safety properties", "Safety ==")
    assert set(properties.SAFETY) == defined


def test_liveness_names_are_the_spec_temporal_properties():
    defined = spec_definitions("(* Liveness properties", "Liveness ==")
    defined -= {"Ended", "Freed", "Closed", "DeadWait"}  # helpers, not properties
    defined -= {"StableOutcomes"}   # the stability that makes their []<> form exact
    assert set(properties.LIVENESS) == defined


def test_every_model_checks_only_known_properties():
    known = set(properties.SAFETY) | set(properties.LIVENESS) | set(properties.LIVENESS_AS_SAFETY)
    for cfg in (SPEC.parent / "models").glob("MC_*.cfg"):
        for line in cfg.read_text().splitlines():
            if line.startswith(("INVARIANT", "PROPERTY")):
                names = set(line.split()[1:])
                assert names <= known, f"{cfg.name}: {names - known}"


def test_liveness_as_safety_names_are_defined_in_the_spec():
    base = SPEC.read_text()
    for design in DESIGNS:        # in the base, or in every design's module
        text = base + design.read_text()
        for name in properties.LIVENESS_AS_SAFETY:
            assert re.search(rf"^{name} ==", text, flags=re.M), (design.name, name)
