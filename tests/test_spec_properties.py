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
    known |= set(properties.INDUCTIVE) | set(properties.FAULT_CONTAINMENT)
    for cfg in (SPEC.parent / "models").glob("MC_*.cfg"):
        for line in cfg.read_text().splitlines():
            if line.startswith(("INVARIANT", "PROPERTY")):
                names = set(line.split()[1:])
                assert names <= known, f"{cfg.name}: {names - known}"


def test_fault_containment_names_are_defined_in_the_base():
    defined = spec_definitions("(* Containment of faults", "(* Liveness properties")
    defined -= {"FaultHits"}      # a helper (faults counted per room), not a property
    assert set(properties.FAULT_CONTAINMENT) == defined


def test_liveness_as_safety_names_are_defined_in_the_spec():
    base = SPEC.read_text()
    for design in DESIGNS:        # in the base, or in every design's module
        text = base + design.read_text()
        for name in properties.LIVENESS_AS_SAFETY:
            assert re.search(rf"^{name} ==", text, flags=re.M), (design.name, name)


# ---------------------------------------------------------------------------
# The spec in modules: each model checks its design's module, and the
# corrected design's module reads without the historical designs
# ---------------------------------------------------------------------------
def _code(text: str) -> str:
    """A module's text without its comments."""
    text = re.sub(r"\(\*.*?\*\)", "", text, flags=re.S)
    return re.sub(r"\\\*.*", "", text)


def test_every_model_extends_the_module_of_its_design():
    import json
    manifest = json.loads((SPEC.parent / "manifest.json").read_text())
    for m in manifest["models"]:
        module = (SPEC.parent / m["module"]).read_text()
        want = "ResumeCorrected" if m["variant"] == "corrected" else "ResumeHistorical"
        ext = re.search(r"^EXTENDS (\w+)$", module, flags=re.M)
        assert ext, m["name"]
        if ext.group(1) != want:      # a module on top of the design's (the induction check)
            top = (SPEC.parent / f"{ext.group(1)}.tla").read_text()
            assert re.search(rf"^EXTENDS {want}\b", top, flags=re.M), (m["name"], want)
        cfg = (SPEC.parent / m["cfg"]).read_text()
        # the corrected design's module has no Variant nor ResumeOrder to bind
        assert ("Variant =" in cfg) == (m["variant"] != "corrected"), m["name"]


def _names(code: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z_]){name}(?![A-Za-z_])", code) is not None


# the historical designs' own receiver state: rxDesign's fields and their accessors
HISTORICAL_FIELDS = ["pSent", "pTotal", "flag", "lastIdx", "lastSent",
                     "PSent", "PTotal", "Flag", "LastIdx", "LastSent"]


def test_corrected_module_names_nothing_of_the_historical_designs():
    code = _code((SPEC.parent / "ResumeCorrected.tla").read_text())
    historical_only = ["Variant", "ResumeOrder", *HISTORICAL_FIELDS,
                       "PollTransferringHistorical", "PollReadOnly", "Rule", "ResumeHistorical"]
    for name in historical_only:
        assert not _names(code, name), name
    # and the check can fail: the historical module does name them
    historical = _code((SPEC.parent / "ResumeHistorical.tla").read_text())
    for name in HISTORICAL_FIELDS:
        assert _names(historical, name), name


def test_each_design_carries_only_its_own_receiver_state():
    # the base declares one variable for a design's own receiver state and never
    # looks inside it; each design's module gives it its own fields, and only those
    base = _code(SPEC.read_text())
    variables = base[base.index("VARIABLES"):base.index("rxVars ==")]
    assert _names(variables, "rxDesign")
    for old in ["rxInfo", "rxRound", "rxPSent", "rxPTotal", "rxFlag", "rxLastIdx", "rxLastSent"]:
        assert not _names(base, old), old
    assert not re.search(r"rxDesign\s*('|\[)", base)      # no step here reads or sets it
    assert not re.search(r"^Init ==", base, flags=re.M)     # each design's Init sets it
    fields = {"ResumeCorrected": {"info", "round"},
              "ResumeHistorical": {"info", "pSent", "pTotal", "flag", "lastIdx", "lastSent"}}
    for design, own in fields.items():
        code = _code((SPEC.parent / f"{design}.tla").read_text())
        init = re.search(r"^DesignInit ==(.*?)\n(?=\S)", code, flags=re.M | re.S)
        assert init, design
        assert set(re.findall(r"(\w+) \|->", init.group(1))) == own, design
        assert re.search(r"^Init == BaseInit /\\ rxDesign = ", code, flags=re.M), design
        # every field it reads or sets is one of its own
        used = set(re.findall(r"rxDesign\[\w+\]\[\w+\]\.(\w+)", code))
        used |= set(re.findall(r"!\[\w+\]\[\w+\]\.(\w+)", code))
        used |= set(re.findall(r"!\.(\w+) =", code))
        assert used and used <= own, (design, used - own)


def test_design_modules_list_their_steps_in_next_inline():
    # TLC names a step after the operator Next calls (tests/test_core_equivalence.py
    # reads those names): each design's Next names every step itself
    for design, own in [("ResumeCorrected", ["SenderRecvAbort", "DeliverStatus", "ReceiverPoll"]),
                        ("ResumeHistorical", ["DeliverStatus", "ReceiverPoll"])]:
        code = _code((SPEC.parent / f"{design}.tla").read_text())
        nxt = code[code.index("\nNext =="):code.index("\nFairness ==")]
        for step in ["ReceiverInit", "PrefillDone", "SenderStartRound", "SenderEndRound",
                     "SenderRecvInit", "SenderRecvResume", "WriteLand", "WriteError",
                     "Heartbeat", "Abort", *own]:
            assert re.search(rf"\b{step}\(", nxt), (design, step)
