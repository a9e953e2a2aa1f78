"""Every model of the quick set in spec/manifest.json gives its expected
result: success (with the recorded number of distinct states), or the
expected violation of the expected property. A historical variant that stops
failing fails here, as does a fixed design that starts failing.

The deep set runs with ``resumespec check --deep`` (minutes), not here.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from resumespec.spec import manifest as mf
from resumespec.spec import properties, tlc
from resumespec.spec.cli import model_run_for

MANIFEST = mf.load_manifest()
QUICK = MANIFEST.in_set("quick")
NO_QUICK_MODELS = "<no quick models in spec/manifest.json>"


@pytest.fixture(scope="module")
def settings() -> tlc.TlcSettings:
    return tlc.prepare_settings(timeout_s=600)


def test_manifest_has_a_quick_set():
    assert QUICK, "spec/manifest.json lists no model in the quick set"


def test_manifest_has_an_expected_success_model():
    assert any(m.expected.kind == "success" for m in MANIFEST.models), \
        "spec/manifest.json has no model expected to pass"


def test_every_failing_model_says_why():
    for m in MANIFEST.models:
        if m.expected.kind != "success":
            assert m.why and m.why.strip(), m.name


@pytest.mark.parametrize("name", [m.name for m in QUICK] or [NO_QUICK_MODELS])
def test_quick_model_gives_expected_result(name, settings):
    entry = MANIFEST.by_name(name)
    if entry is None:
        pytest.fail("spec/manifest.json lists no model in the quick set")
    prefer = entry.expected.property if entry.expected.kind == "liveness" else None
    result = tlc.check_model(model_run_for(MANIFEST, entry), settings, prefer=prefer)
    assert result.kind == entry.expected.kind, f"{name}: expected {entry.expected}, got {result.verdict}"
    if entry.expected.property is not None:
        assert result.property == entry.expected.property, f"{name}: expected {entry.expected}, got {result.verdict}"
    if result.kind != "success":
        assert result.trace is not None and result.trace.states, f"{name}: no counterexample trace"
    assert mf.compare(entry, result.kind, result.property, result.distinct_states) == []


def _run_cli(capsys, *argv) -> tuple[int, str]:
    from resumespec.cli import main as resumespec_main
    code = resumespec_main(list(argv))
    return code, capsys.readouterr().out


def test_simulation_catches_a_historical_design(capsys):
    """Random behaviours find the abort bug of mainline: the same property as BFS."""
    code, out = _run_cli(capsys, "check", "--simulate", "--num", "200", "--depth", "40", "--workers", "1",
                         "--json", "-q", "once_abort")
    doc = json.loads(out)
    (res,) = doc["results"]
    assert code == 0 and res["ok"], res
    assert res["got"] == {"safety": "WritesOnlyIntoOwnedBlocks"} and res["mode"] == "simulate"
    assert res["simulation"]["behaviours"] is None          # stopped at the violation


def test_simulation_of_the_corrected_design_reports_its_rates(capsys):
    code, out = _run_cli(capsys, "check", "--simulate", "--num", "15", "--depth", "60", "--workers", "1",
                         "--json", "-q", "corrected_two_sessions")
    (res,) = json.loads(out)["results"]
    assert code == 0 and res["got"] == "success", res
    sim = res["simulation"]
    assert sim["behaviours"] == 15 and sim["depth"] == 60
    # a behaviour of corrected_two_sessions takes at least a dozen steps
    assert sim["states"] >= 15 * 12 and sim["states_per_s"] > 0 and sim["behaviours_per_s"] > 0


def test_simulation_and_update_manifest_do_not_mix(capsys):
    code, _ = _run_cli(capsys, "check", "--simulate", "--update-manifest", "once_abort")
    assert code == 2


# ---------------------------------------------------------------------------
# Liveness as safety (LivenessAtRest + StepsMakeProgress under SpecProgress)
# is what success models check instead of the temporal properties. It must
# give the same verdicts: the historical hangs are caught by it, and a
# success model is also a success with the temporal properties under Spec.

def _as_rest_check(entry) -> str:
    config = tlc.TlcConfig.read(entry.cfg)
    text = config.without("PROPERTY", "PROPERTIES", "SPECIFICATION", "INVARIANT", "INVARIANTS").render()
    return (text + "\nSPECIFICATION SpecProgress\nINVARIANT " + " ".join(properties.SAFETY)
            + " LivenessAtRest\nPROPERTY StepsMakeProgress StableOutcomes\n")


HANGS = [m.name for m in QUICK if m.expected.kind == "liveness"]


@pytest.mark.parametrize("name", HANGS or [NO_QUICK_MODELS])
def test_liveness_at_rest_catches_every_historical_hang(name, settings):
    entry = MANIFEST.by_name(name)
    assert entry is not None, "no quick model expected to violate liveness"
    run = dataclasses.replace(model_run_for(MANIFEST, entry), cfg_text=_as_rest_check(entry))
    result = tlc.run_tlc(run, settings)
    assert result.verdict == "safety:LivenessAtRest", f"{name}: {result.verdict}"


@pytest.mark.parametrize("name", ["corrected_capped_lifo", "corrected_faults", "corrected_two_sessions"])
def test_success_models_also_pass_the_temporal_properties_under_spec(name, settings):
    entry = MANIFEST.by_name(name)
    assert entry is not None and entry.expected.kind == "success"
    config = tlc.TlcConfig.read(entry.cfg)
    assert "LivenessAtRest" in config.invariants and config.properties == ["StepsMakeProgress", "StableOutcomes"]
    text = config.without("PROPERTY", "PROPERTIES", "SPECIFICATION", "INVARIANT", "INVARIANTS").render()
    text += ("\nSPECIFICATION Spec\nINVARIANT " + " ".join(properties.SAFETY) + "\nPROPERTY "
             + " ".join(properties.LIVENESS) + " StableOutcomes\n")
    run = dataclasses.replace(model_run_for(MANIFEST, entry), cfg_text=text)
    result = tlc.run_tlc(run, settings)
    assert result.verdict == "success", f"{name}: {result.verdict}"
    assert result.distinct_states == entry.distinct_states


# ---------------------------------------------------------------------------
# The corrected deep models fingerprint CorrectedView (block contents the
# design overwrites before it reads them are left out; ResumeCorrected.tla
# argues why that is sound). The quick corrected models check the whole
# state; with the view added they must give the same verdict, on no more
# fingerprinted states, and the view must merge states somewhere.

CORRECTED_QUICK = [m.name for m in QUICK if m.variant == "corrected" and m.expected.kind == "success"]


def test_deep_corrected_models_use_the_view_and_quick_ones_do_not():
    for entry in MANIFEST.models:
        if entry.variant != "corrected" or entry.mode != "bfs" or "inductive" in entry.name:
            continue
        has_view = tlc.TlcConfig.read(entry.cfg).has("VIEW")
        assert has_view == (entry.set == "deep"), entry.name


def test_the_view_keeps_every_quick_corrected_verdict(settings):
    assert CORRECTED_QUICK, "no quick corrected success model"
    fewer = []
    for name in CORRECTED_QUICK:
        entry = MANIFEST.by_name(name)
        assert entry is not None and entry.distinct_states
        config = tlc.TlcConfig.read(entry.cfg)
        run = dataclasses.replace(model_run_for(MANIFEST, entry),
                                  cfg_text=config.render() + "\nVIEW CorrectedView\n")
        result = tlc.run_tlc(run, settings)
        assert result.verdict == "success", f"{name} with the view: {result.verdict}"
        assert result.distinct_states is not None and 0 < result.distinct_states <= entry.distinct_states, name
        if result.distinct_states < entry.distinct_states:
            fewer.append(name)
    assert fewer, "the view merged no states on any quick model"


def test_a_view_model_run_by_several_workers_is_not_held_to_its_count():
    """Under a VIEW the count depends on which state of a class TLC explores
    first, which several workers make vary; the verdict is still compared."""
    entry = MANIFEST.by_name("corrected_deep_blocksize2")
    assert entry is not None and entry.distinct_states
    assert tlc.TlcConfig.read(entry.cfg).names("VIEW")
    off = entry.distinct_states + 7
    assert mf.compare(entry, "success", None, off) != []
    assert mf.compare(entry, "success", None, off, exact_count=False) == []
    assert mf.compare(entry, "safety", "NoDoubleFree", off, exact_count=False) != []
