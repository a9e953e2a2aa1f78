"""The spec's TLC counterexamples, replayed on the reference implementation.

Each failing quick model of spec/manifest.json has its TLC trace translated
into a schedule (reference/tlc_schedules/); replaying it under the model's
constants must end in the verdict TLC reported, with every step enabled in
order. The corrected design, given the same steps, must pass.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import pytest

from resumespec.reference.scheduler import run
from resumespec.reference.tlc_replay import (
    config_of,
    parse_constants,
    replay_doc,
    run_tlc_counterexample,
    stored_replays,
)

REPLAYS = stored_replays()


def test_every_failing_quick_model_has_a_stored_replay():
    from resumespec.spec.manifest import load_manifest
    models = [m for m in load_manifest().models
              if m.set == "quick" and m.variant != "corrected" and m.expected.kind != "success"]
    # QueuedRounds (the fork's sender without the barrier) is not run by the
    # torch interpreter (it says so); the core and both checkers have it
    queued = {m.name for m in models if "ForkSender=True" in m.constants
              and "Barrier=False" in m.constants}
    failing = {m.name for m in models} - queued
    assert failing and failing <= set(REPLAYS), sorted(failing - set(REPLAYS))
    assert queued, "no QueuedRounds model in the quick set"
    for m in models:
        if m.name in queued:
            with pytest.raises(ValueError, match="QueuedRounds"):
                config_of({"constants": m.constants, "variant": m.variant}).validate()
    for variant in ("flag", "indices", "sent_tokens", "cached_sent", "once"):
        assert any(r["variant"] == variant for r in REPLAYS.values()), variant


@pytest.mark.parametrize("model", sorted(REPLAYS))
def test_tlc_counterexample_reproduces_in_the_implementation(model):
    r = REPLAYS[model]
    res = run(config_of(r), r["steps"], strict=True)
    assert (res.outcome, res.prop) == (r["outcome"], r["property"]), res.where


@pytest.mark.parametrize("model", sorted(REPLAYS))
def test_corrected_design_passes_the_same_steps(model):
    r = REPLAYS[model]
    res = run(config_of(r, variant="corrected"), r["steps"], strict=False)
    assert res.outcome == "ok", (res.outcome, res.where)


def test_parse_constants():
    kw = parse_constants("NReq=2 NSess=2 Total=<<3, 2>> BlockSize=1 NBlocks=3 InitTokens=1 Cap=1 "
                         "Order=any ResumeOrder=alloc_first Barrier=False Faults={write_error,abort}")
    assert kw == dict(tokens=[3, 2], sessions=2, block_size=1, pool=3, init_tokens=1, cap=1,
                      order="random", resume_order="alloc_first", barrier=False,
                      faults=("abort", "write_error"), fork_sender=False)
    assert parse_constants("NReq=1 NSess=1 Total=<<1>> BlockSize=1 NBlocks=1 InitTokens=1 Cap=0 "
                           "Order=fifo ResumeOrder=alloc_first Barrier=True Faults={} "
                           "ForkSender=True")["fork_sender"] is True


def test_a_fresh_tlc_counterexample_replays_to_the_same_verdict():
    # one small model end to end: TLC -> JSON -> schedule -> the same verdict
    # (one TLC worker: a shortest trace, maybe another one of the same length)
    fresh = replay_doc(run_tlc_counterexample("flag_double_free"))
    assert fresh["property"] == "NoDoubleFree"
    assert len(fresh["steps"]) == len(REPLAYS["flag_double_free"]["steps"])
    res = run(config_of(fresh), fresh["steps"], strict=True)
    assert (res.outcome, res.prop) == ("double_free", "NoDoubleFree")
