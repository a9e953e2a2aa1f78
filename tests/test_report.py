"""Reports of TLC counterexamples: the story, the verdict's "why", the HTML
page and the ``resumespec report counterexample`` command.

TLC runs once per model for the whole module (about 2 s each); the rest
works on those traces, or on copies of them changed on purpose to show that
the story is read from the states, not written per model.
"""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import sys

import pytest

from resumespec.reference.protocol.spechost import World
from resumespec.report import counterexample_story as cs
from resumespec.report.html import render_html
from resumespec.report.itf import trace_from_itf, trace_to_itf
from resumespec.report.sources import trace_from_json
from resumespec.report.timeline import render_story, story_lines
from resumespec.spec import manifest as mf
from resumespec.spec import tlc
from resumespec.spec.cli import model_run_for
from resumespec.spec.counterexample import ActionLabel, Trace, TraceState
from resumespec.spec.tla_values import Record, TlaSet

MANIFEST = mf.load_manifest()
MODELS = ["sent_tokens_corruption", "flag_double_free", "once_pool_deadlock", "once_no_barrier", "flag_capped_hang"]


@pytest.fixture(scope="module")
def runs():
    """model name -> (ModelEntry, TlcResult), one TLC run each."""
    settings = tlc.prepare_settings(workers=1, timeout_s=300)   # one worker: the same shortest trace every run
    out = {}
    for name in MODELS:
        entry = MANIFEST.by_name(name)
        assert entry is not None, f"spec/manifest.json lost the model {name}"
        prefer = entry.expected.property if entry.expected.kind == "liveness" else None
        result = tlc.check_model(model_run_for(MANIFEST, entry), settings, prefer=prefer)
        assert result.trace is not None and result.trace.states, f"{name}: no counterexample"
        out[name] = (entry, result)
    return out


def timeline(runs, name, trace=None):
    entry, result = runs[name]
    return cs.timeline_from_counterexample(trace or result.trace, title=name, prop=result.property,
                                           kind=result.kind, constants=entry.constants, hint=entry.why or "",
                                           variant=entry.variant)


def test_corruption_story_tells_the_double_resume_and_the_skipped_token(runs):
    t = timeline(runs, "sent_tokens_corruption")
    text = render_story(t)
    lines = story_lines(t)
    assert lines[0].startswith("1. Request 1 allocates block")
    assert any("resumes a second time with offset 2" in x for x in lines), text
    assert any("skips token 1.2" in x for x in lines), text
    assert "HandedDataIsSource fails: prefill got <<1,1>>,<<1,3>> instead of <<1,1>>,<<1,2>>,<<1,3>>" in text
    assert "Token 1.2 never reached prefill." in text
    # The violating step is the last state, and the story marks it.
    last = len(runs["sent_tokens_corruption"][1].trace.states) - 1
    assert t.finding.step == last
    assert lines[last - 1].startswith(f"{last}. ") and lines[last - 1].endswith("<== HandedDataIsSource")


def test_story_is_read_from_the_states(runs):
    """Change what prefill got in the last state: the explanation follows."""
    trace = copy.deepcopy(runs["sent_tokens_corruption"][1].trace)
    last = trace.states[-1].values
    handed = last["handed"]
    # handed[1][1] := <<1,1>>,<<1,2>>,<<2,2>> (a foreign token instead of 1.3)
    new_inner = ((((1, 1), (1, 2), (2, 2)),),) + tuple(handed[1:])
    last["handed"] = new_inner
    text = render_story(timeline(runs, "sent_tokens_corruption", trace))
    assert "prefill got <<1,1>>,<<1,2>>,<<2,2>> instead of <<1,1>>,<<1,2>>,<<1,3>>" in text
    assert "Token 1.3 never reached prefill." in text
    assert "Token 2.2 does not belong to request 1's embedding" in text


def test_double_free_story(runs):
    t = timeline(runs, "flag_double_free")
    text = render_story(t)
    assert "the failure path frees block" in text and "again" in text, text
    assert re.search(r"NoDoubleFree fails: block \d+ of rank 1 is on the free list 2 times", text), text
    # The pool drawn after the last step shows the block freed twice.
    cells = t.steps[-1].pools["pool1"]
    assert any(c.on_free_list == 2 and c.anomaly == "on the free list twice" for c in cells)


def test_liveness_deadlock_story(runs):
    t = timeline(runs, "once_pool_deadlock")
    assert t.finding.verdict == "hangs" and t.finding.prop == "EveryRequestEnds"
    assert t.stuttering and t.loop_to is None
    text = render_story(t)
    assert "nothing happens any more" in text
    assert "EveryRequestEnds fails for request 1" in text and "EveryRequestEnds fails for request 2" in text
    assert "Rank 1 has no free block left while request 1 holds block" in text
    page = render_html(t)
    assert 'class="loop stutter"' in page


def test_capped_hang_says_why_no_resume_comes(runs):
    t = timeline(runs, "flag_capped_hang")
    assert t.finding.prop == "NoWaitForUnrequestedRound" and t.stuttering
    text = render_story(t)
    assert "the sender waits for a resume, and no messages are in flight" in text
    # The decision is the core's (historical_view), the rule the design table's summary.
    assert ("Session 1 does not resume again: the flag design's test (a boolean resume_triggered: resume at "
            "most once) says no: its flag resume_triggered is TRUE, and it sees 0 of 0 tokens") in text, text
    assert "The sender has sent 2 of 3 tokens." in text


def test_no_barrier_story_names_the_stale_destination(runs):
    t = timeline(runs, "once_no_barrier")
    text = render_story(t)
    assert "WritesOnlyIntoOwnedBlocks fails" in text
    assert "has not reached the sender" in text, text
    # Both sessions and both pools are lanes.
    assert [lane.id for lane in t.lanes] == ["sender", "rx1", "rx2", "pool1", "pool2"]
    bad = [a for a in t.arrows if a.kind == "write" and a.fate == "pending"]
    assert bad, "the writes of the violating round are still in flight"


def test_every_step_is_told_by_the_protocol_core(runs):
    """Each step is the core's step between the two states, told by its
    effects: none falls back on the changed variables."""
    for name in MODELS:
        t = timeline(runs, name)
        assert not t.notes, (name, t.notes)
        for step in t.steps[1:]:
            assert "no step of the protocol core" not in step.sentence, (name, step.sentence)
            assert step.details[0].startswith(f"core: {step.action}") or step.action == "WriteLand", \
                (name, step.details[0])
    # The effects say what a diff of the states cannot: block 3 goes back to the
    # free list and is allocated again within one poll (the free list ends as it began).
    t = timeline(runs, "sent_tokens_corruption")
    resumes = [st for st in t.steps if "resumes" in st.sentence]
    assert resumes and all("frees and reallocates block 3" in st.sentence for st in resumes), \
        [st.sentence for st in resumes]
    assert {(a.kind, a.start) for a in t.arrows if a.kind in ("free", "alloc")} >= \
        {("free", st.index) for st in resumes} | {("alloc", st.index) for st in resumes}
    # The design's order shows: once allocates the new block before freeing the old.
    text = render_story(timeline(runs, "once_no_barrier"))
    assert "caches 1.1, allocates block 2, frees block 1 and resumes with offset 1" in text, text


def test_the_design_is_found_when_not_given(runs):
    entry, result = runs["flag_double_free"]
    given = cs.timeline_from_counterexample(result.trace, title="x", prop=result.property, kind=result.kind,
                                            constants=entry.constants, variant=entry.variant)
    found = cs.timeline_from_counterexample(result.trace, title="x", prop=result.property, kind=result.kind,
                                            constants=entry.constants)
    assert story_lines(given) == story_lines(found)


def test_a_state_no_core_step_reaches_is_told_from_its_variables(runs):
    """A last state changed by hand is no successor the core allows: the story
    says so instead of inventing a step, and the "why" still reads the state."""
    trace = copy.deepcopy(runs["sent_tokens_corruption"][1].trace)
    last = trace.states[-1].values
    last["handed"] = ((((1, 1), (1, 2), (2, 2)),),) + tuple(last["handed"][1:])
    t = timeline(runs, "sent_tokens_corruption", trace)
    assert "no step of the protocol core leads here; it changes handed, rxPhase" in t.steps[-1].sentence
    assert t.notes and f"steps {len(trace.states) - 1}:" in t.notes[0]
    assert all("no step of the protocol core" not in st.sentence for st in t.steps[:-1])


def test_steps_to_names_the_core_step_and_its_effects():
    """reference/protocol/steps.py: the core step between two worlds, with its
    effects exactly as the core's function returned them."""
    from resumespec.reference.protocol import receiver_init
    from resumespec.reference.protocol.steps import moves_with_effects, steps_to

    world = World.from_model("once", MANIFEST.by_name("once_pool_deadlock").constants)
    first = receiver_init(world.rx, 1)[0]
    (init,) = steps_to(world, world.apply(first.effects, rx=first.state).to_spec())
    assert init.move.action == "ReceiverInit" and init.move.req == 1
    assert init.effects == first.effects
    # Walk on: every move is found again from its successor's spec variables,
    # with the same effects; a landing write has none of the core's.
    lands = 0
    for _ in range(8):
        cands = moves_with_effects(world)
        assert cands
        for c in cands:
            found = steps_to(world, c.move.world.to_spec(), c.move.action)
            assert any(f.move.action == c.move.action and f.effects == c.effects for f in found), c.move.action
            if c.move.write is not None:
                lands += 1
                assert c.effects == ()
        world = cands[-1].move.world
    assert lands


def _tla(v):
    """``World.to_spec`` values as TLC's parsed values (records, sets)."""
    if isinstance(v, frozenset):
        return TlaSet(sorted((_tla(x) for x in v), key=repr))
    if isinstance(v, tuple) and v and all(type(x) is tuple and len(x) == 2 and isinstance(x[0], str) for x in v):
        return Record([(k, _tla(x)) for k, x in v])
    if isinstance(v, tuple):
        return tuple(_tla(x) for x in v)
    return v


@pytest.mark.parametrize("model", [m.name for m in MANIFEST.models if m.set == "quick"])
def test_every_step_of_a_core_walk_has_its_own_sentence(model):
    """Random behaviours of every quick model (corrected and fault models
    included, which have no counterexample to tell), written as TLC would
    print them: every step is found in the core and has its action's own
    sentence, never the fallback."""
    entry = MANIFEST.by_name(model)
    for seed in range(3):
        rnd = random.Random(seed)
        world = World.from_model(entry.variant, entry.constants)
        states = [TraceState(1, ActionLabel("Initial predicate"), {k: _tla(x) for k, x in world.to_spec().items()})]
        for i in range(40):
            moves = world.moves()
            if not moves:
                break
            m = rnd.choice(moves)
            world = m.world
            states.append(TraceState(i + 2, ActionLabel("WriteLand" if m.action == "Next" else m.action),
                                     {k: _tla(x) for k, x in world.to_spec().items()}))
        t = cs.timeline_from_counterexample(Trace(states), title=model, prop=None, kind="success",
                                            constants=entry.constants, variant=entry.variant)
        assert not t.notes, (model, seed, t.notes)
        for st in t.steps[1:]:
            assert not st.sentence.startswith(f"{st.action} of request"), (model, seed, st.sentence)
            assert "no step of the protocol core" not in st.sentence, (model, seed, st.sentence)


def test_lasso_is_drawn_as_a_loop(runs):
    """A trace that goes back to an earlier state: the loop is named and drawn."""
    trace = copy.deepcopy(runs["once_pool_deadlock"][1].trace)
    trace.stuttering = False
    trace.loop_to = trace.states[-3].number
    t = timeline(runs, "once_pool_deadlock", trace)
    k = len(trace.states) - 3
    assert t.loop_to == k and t.finding.step == k
    assert f"... then back to step {k}" in render_story(t)
    page = render_html(t)
    assert f'data-loop-to="{k}"' in page
    assert page.count('class="step in-loop') == 3


def test_html_is_self_contained(runs):
    page = render_html(timeline(runs, "sent_tokens_corruption"))
    assert page.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no external scripts, styles, images or fonts.
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "@import" not in page and "url(http" not in page
    assert re.search(r"<script>", page) and "<style>" in page and "<svg" in page
    # Exactly one highlighted story row, the violating step.
    last = len(runs["sent_tokens_corruption"][1].trace.states) - 1
    assert re.findall(r'class="step highlight" id="step-(\d+)" data-step="(\d+)"', page) == [(str(last), str(last))]


def test_itf_of_a_real_counterexample_round_trips(runs):
    entry, result = runs["once_pool_deadlock"]
    doc = trace_to_itf(result.trace, source=str(entry.module))
    assert doc["vars"] and len(doc["states"]) == len(result.trace.states)
    assert doc["states"][0]["#meta"]["index"] == 0
    assert doc["loop"] == len(doc["states"]) - 1        # stutters forever in its last state
    assert sorted(doc["states"][1]["rxPhase"]) == ["new", "queued"]   # one request started
    assert doc["states"][0]["txRound"] == [{"#bigint": "0"}, {"#bigint": "0"}]
    again = trace_to_itf(trace_from_itf(json.loads(json.dumps(doc))), source=str(entry.module))

    def without_labels(d):
        return [{k: ({"index": v["index"], "action": v["action"]} if k == "#meta" else v) for k, v in s.items()}
                for s in d["states"]]

    assert without_labels(again) == without_labels(doc)
    assert again["loop"] == doc["loop"] and again["vars"] == doc["vars"]


# ---------------------------------------------------------------------------
# The command


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "resumespec", "report", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def saved(runs, tmp_path_factory):
    """The counterexample of sent_tokens_corruption as `counterexample --json` writes it."""
    entry, result = runs["sent_tokens_corruption"]
    path = tmp_path_factory.mktemp("saved") / "sent_tokens_corruption.json"
    doc = {"model": entry.name, "variant": entry.variant, "constants": entry.constants,
           "result": result.to_json(), "trace": result.trace.to_json()}
    path.write_text(json.dumps(doc))
    return path


def test_saved_json_reads_back_as_the_same_trace(runs, saved):
    trace = trace_from_json(json.loads(saved.read_text())["trace"])
    original = runs["sent_tokens_corruption"][1].trace
    assert [s.values for s in trace.states] == [s.values for s in original.states]
    assert [s.action.name for s in trace.states] == [s.action.name for s in original.states]


def test_cli_writes_html_and_itf_from_saved_json(saved, tmp_path):
    html_path, itf_path = tmp_path / "r.html", tmp_path / "r.itf.json"
    p = _cli("counterexample", str(saved), "-o", str(html_path), "--itf", str(itf_path))
    assert p.returncode == 0, p.stderr
    assert "HandedDataIsSource fails: prefill got <<1,1>>,<<1,3>>" in p.stdout
    assert "skips token 1.2" in p.stdout
    assert 'data-render="pending"' in html_path.read_text()
    doc = json.loads(itf_path.read_text())
    assert doc["#meta"]["format"] == "ITF" and doc["#meta"]["property"] == "HandedDataIsSource"
    p = _cli("counterexample", str(saved), "--json")
    assert p.returncode == 0
    out = json.loads(p.stdout)
    assert out["finding"]["property"] == "HandedDataIsSource" and out["finding"]["step"] == len(out["steps"]) - 1


def test_cli_runs_a_model_by_name(tmp_path):
    p = _cli("counterexample", "sent_tokens_read_during_write", "-q", "-o", str(tmp_path / "x.html"))
    assert p.returncode == 0, p.stderr
    assert "NoReadDuringWrite fails" in p.stdout
    assert "while the write of" in p.stdout and "is still in flight" in p.stdout
    assert (tmp_path / "x.html").stat().st_size > 5000


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = _cli("counterexample", str(bad))
    assert p.returncode == 9 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "bad.json:1:" in p.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"trace": {"states": [{"number": 1}]}}')
    p = _cli("counterexample", str(wrong))
    assert p.returncode == 9 and "Traceback" not in p.stderr and "wrong.json" in p.stderr
    p = _cli("counterexample", "no_such_model")
    assert p.returncode == 2 and "unknown model 'no_such_model'" in p.stderr
    p = _cli("counterexample", str(tmp_path / "missing.json"))
    assert p.returncode == 9 and "no such file" in p.stderr
