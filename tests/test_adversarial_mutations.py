"""A small mutation campaign: both checkers on blind and coordinated mutants of
valid one- and two-session traces (conformance/mutate.py) must agree on the
verdict and, where both can name it, the property.  TLC runs two at a time.
The long campaign is ``python -m bench mutations --count=1000``."""

from __future__ import annotations

import random

import pytest

from resumespec.conformance import mutate
from resumespec.conformance.checker_native import check_native

BASES = mutate.base_traces(seed=3)


def test_bases_are_valid_one_and_two_session_traces(tmp_path):
    from resumespec.conformance import synth

    assert {n[-3:] for n, _ in BASES if n.startswith("synth")} >= {"1.0", "2.0"}
    assert any(n.startswith("corrected") for n, _ in BASES)
    for name, events in BASES:
        path = tmp_path / f"{name}.jsonl"
        synth.write(path, events)
        v = check_native([str(path)])
        # a reference run of a historical design may break a property (its bug)
        assert v.verdict in ("conforms", "violates"), (name, v.message)
        if name.startswith(("synth", "corrected", "once")):
            assert v.verdict == "conforms", (name, v.message)


@pytest.mark.parametrize("kind", mutate.KINDS)
def test_every_kind_changes_a_trace(kind):
    rng = random.Random(5)
    made = [mutate.mutate(events, kind, rng) for _, events in BASES]
    changed = [m for m, (_, e) in zip(made, BASES) if m is not None and m != e]
    assert changed, kind
    for m in changed:     # seq renumbered per process, configs first
        seqs: dict = {}
        for e in m:
            assert e["seq"] == seqs.get(e["proc"], 0)
            seqs[e["proc"]] = e["seq"] + 1


def test_coordinated_mutation_changes_both_sides_of_a_message():
    rng = random.Random(11)
    name, events = next((n, e) for n, e in BASES if n == "synth1.0")
    for _ in range(20):
        m = mutate._coordinated([e for e in events if e["event"] != "config"], rng)
        for a, b in mutate.pairs(m):
            for k in ("blocks", "sent_tokens", "allocated_tokens", "status", "round"):
                if k in m[a] and k in m[b]:
                    assert m[a][k] == m[b][k]


def test_small_campaign_checkers_agree(tmp_path):
    res = mutate.campaign(BASES, 18, seed=2, workers=2, folder=str(tmp_path), timeout=300)
    assert res["traces"] == 18
    assert not res["no_tlc_verdict"], res["no_tlc_verdict"]
    assert not res["disagree"], res["disagree"]
    assert len(res["kinds"]) == len(mutate.KINDS)     # every kind, twice
