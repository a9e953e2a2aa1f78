"""The inductive invariant of the corrected design (spec/ResumeCorrectedInductive.tla).

TLC checks the induction step on the bounded constants of the manifest's
``corrected_inductive`` model: every state satisfying IndInv is an initial
state, and every step from one must satisfy IndInv and Safety again. The
base case (Init => IndInv) is ``corrected_inductive_init``. A check that
passes whatever the invariant says would prove nothing, so the invariant is
also weakened (the blocks' contents dropped from it) and TLC must then find
a step out of it.

TLC enumerates the initial states from IndInit, IndInv with filters that
bind each variable element by element; the filters must leave out no state
of IndInv. Where IndInv itself can be enumerated (one request, one session,
one block) both give the same states; ``corrected_inductive``'s recorded
count (85,134) was measured both ways.
"""

from __future__ import annotations

import pytest

from resumespec.spec import manifest as mf
from resumespec.spec import tlc
from resumespec.spec.cli import model_run_for

MANIFEST = mf.load_manifest()


@pytest.fixture(scope="module")
def settings() -> tlc.TlcSettings:
    return tlc.prepare_settings(workers=1, timeout_s=1200)


def _entry(name: str) -> mf.ModelEntry:
    entry = MANIFEST.by_name(name)
    assert entry is not None, f"spec/manifest.json lists no model {name!r}"
    return entry


def test_induction_step_holds(settings):
    entry = _entry("corrected_inductive")
    result = tlc.check_model(model_run_for(MANIFEST, entry), settings)
    assert result.kind == "success", result.verdict
    # the initial states are all the states of IndInv; a step that left the
    # bounded domains would show as a state found at depth 2
    assert result.distinct_states == entry.distinct_states
    assert result.depth == 1


def test_init_implies_the_invariant(settings):
    entry = _entry("corrected_inductive_init")
    cfg = entry.cfg.read_text()
    assert "IndInv" in cfg.split("INVARIANT", 1)[1]
    result = tlc.check_model(model_run_for(MANIFEST, entry), settings)
    assert result.kind == "success", result.verdict
    assert mf.compare(entry, result.kind, result.property, result.distinct_states) == []


def test_weakened_invariant_is_not_inductive(settings):
    """Without what the blocks hold, a poll can read other tokens out of them."""
    entry = _entry("corrected_inductive")
    base = model_run_for(MANIFEST, entry)
    cfg = entry.cfg.read_text().replace("CONSTANTS\n", "CONSTANTS\n  CheckData <- DontCheckData\n", 1)
    assert cfg != entry.cfg.read_text()
    weak = tlc.ModelRun(base.module, base.cfg, label="corrected_inductive weakened",
                        check_deadlock=base.check_deadlock, library_dirs=base.library_dirs, cfg_text=cfg)
    result = tlc.check_model(weak, settings)
    assert result.kind == "safety", result.verdict
    assert result.property in {"IndInv", "Safety"}, result.verdict
    # a counterexample to induction is one step from a state of the invariant
    assert result.trace is not None and len(result.trace.states) == 2
    action = result.trace.states[-1].action
    reads = {"PollSuccess", "PollTransferringCorrected", "CorrectedCache", "ReceiverPoll"}
    assert action is not None and action.name in reads, action


def _with(entry: mf.ModelEntry, label: str, **changes: str) -> tlc.ModelRun:
    """``entry``'s model with cfg lines ``NAME = value`` / ``SPECIFICATION`` replaced."""
    base = model_run_for(MANIFEST, entry)
    lines = entry.cfg.read_text().splitlines()
    for key, value in changes.items():
        hits = [i for i, line in enumerate(lines) if line.split("=")[0].split()[:1] == [key]]
        assert len(hits) == 1, (key, lines)
        lines[hits[0]] = f"  {key} = {value}" if key != "SPECIFICATION" else f"SPECIFICATION {value}"
    return tlc.ModelRun(base.module, base.cfg, label=label, check_deadlock=base.check_deadlock,
                        library_dirs=base.library_dirs, cfg_text="\n".join(lines) + "\n")


def test_fast_enumeration_leaves_out_no_state_of_the_invariant(settings):
    """IndInit (IndInv + per-element filters) and IndInv itself: the same states."""
    entry = _entry("corrected_inductive_two_blocks")   # no faults
    counts = {}
    for spec in ("IndSpec", "IndSpecPlain"):
        result = tlc.check_model(_with(entry, f"inductive one block {spec}", NBlocks="1", SPECIFICATION=spec),
                                 settings)
        assert result.kind == "success", result.verdict
        assert result.depth == 1
        counts[spec] = result.distinct_states
    assert counts["IndSpec"] == counts["IndSpecPlain"] > 1000, counts


@pytest.mark.parametrize("name", ["corrected_inductive_two_blocks", "corrected_inductive_two_requests",
                                  "corrected_inductive_two_sessions",
                                  "corrected_inductive_two_blocks_heartbeat",
                                  "corrected_inductive_two_blocks_write_error"])
def test_init_implies_the_invariant_on_the_wider_domains(settings, name):
    """The base case where the step is checked on a wider domain: every
    reachable state (Init included) satisfies IndInv."""
    entry = _entry(name)
    result = tlc.check_model(_with(entry, f"{name} from Init", SPECIFICATION="InitSpec"), settings)
    assert result.kind == "success", result.verdict
    assert result.depth > 5 and result.distinct_states > 10


@pytest.mark.deep
@pytest.mark.parametrize("name", ["corrected_inductive_two_blocks"])
def test_induction_step_holds_on_a_wider_domain(settings, name):
    """Minutes: every state of IndInv on the wider domain, one step each."""
    entry = _entry(name)
    result = tlc.check_model(model_run_for(MANIFEST, entry), settings)
    assert result.kind == "success", result.verdict
    assert result.distinct_states == entry.distinct_states
    assert result.depth == 1
