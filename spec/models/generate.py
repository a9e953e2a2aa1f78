"""Write the TLC models (MC_<name>.tla + .cfg) and their manifest entries.

The table below is the single place where a model is defined: its constants,
which properties it checks, the result it must give and why. Running

    python spec/models/generate.py

rewrites every MC_* file and the "models" of spec/manifest.json. Measured
fields already in the manifest (distinct_states, depth, runtime_s) are kept
for models whose constants and checks did not change; `resumespec check
--update-manifest` refreshes them.

Why generated: TLC 2.15 cannot read tuples or sets of strings from a .cfg,
so constants such as Total = <<3, 2>> go into a small module per model.
"""

from __future__ import annotations

import json
from pathlib import Path

from resumespec.reference.protocol.designs import COMMIT_OF, ENGINE_RESUME_ORDER
from resumespec.spec import properties

HERE = Path(__file__).resolve().parent
MANIFEST = HERE.parent / "manifest.json"

SAFETY = list(properties.SAFETY)
LIVENESS = list(properties.LIVENESS)

# The engine's defaults, scaled down: one block per init, all remaining
# tokens per resume, FIFO reuse, the sender's barrier on, no faults.
BASE = dict(
    NReq=2, NSess=1, Total=(3, 2), BlockSize=1, NBlocks=3, InitTokens=1, Cap=0,
    Order="fifo", ResumeOrder="alloc_first", Barrier=True, Faults=(), ForkSender=False,
)

# how each design orders the resume step in the engine, and its engine commit:
# the one table of designs (reference/protocol/designs.py)
ENGINE_ORDER = ENGINE_RESUME_ORDER
COMMIT = COMMIT_OF


def model(name, variant, set_="quick", expected="success", why=None,
          invariants=None, properties=None, mode="bfs", extends=None, spec=None,
          view=None, **constants):
    """One model: `expected` is "success", ("safety", Inv) or ("liveness", Prop).

    A model expected to fail checks only what it needs to show its bug: the
    expected liveness property alone (TLC does not say which temporal
    property failed), and by default every safety invariant, so that a
    design fails with the first hazard it reaches.
    """
    c = dict(BASE)
    c["ResumeOrder"] = ENGINE_ORDER[variant]
    c.update(constants)
    c["Variant"] = variant
    if expected == "success":
        invariants = invariants or SAFETY
        properties = properties if properties is not None else LIVENESS
    elif expected[0] == "safety":
        invariants = invariants or SAFETY
        properties = properties or []
    else:
        invariants = invariants or SAFETY
        properties = properties or [expected[1]]
    # A success model is checked under SpecProgress (one weak fairness
    # condition, implied by the spec's Fairness) and its liveness as safety:
    # StepsMakeProgress (every step increases a measure, so behaviours end)
    # and LivenessAtRest (where no protocol step is enabled, every request
    # ended, its blocks are free, no dead wait, every room closed). Together
    # they imply the four liveness properties under Spec (see the module).
    # A model that shows a liveness bug keeps Spec and the temporal property
    # itself, so that its counterexample is a behaviour the engine's
    # scheduler can produce and the verdict names that property.
    spec_override = spec
    spec = "Spec"
    if expected == "success" and properties:
        spec = "SpecProgress"
        invariants = list(invariants) + ["LivenessAtRest"]
        properties = ["StepsMakeProgress", "StableOutcomes"]
    if spec_override is not None:
        spec = spec_override
    return dict(name=name, variant=variant, set=set_, expected=expected, why=why,
                invariants=invariants, properties=properties, constants=c, spec=spec, mode=mode,
                extends=extends, view=view)


# the bounded constants of the induction check (docs/checking.md says what they cover)
INDUCTIVE = dict(NReq=1, NSess=1, Total=(2,), BlockSize=1, NBlocks=1, InitTokens=1, Cap=1,
                 Order="fifo", Faults=("write_error", "heartbeat", "abort"))
# larger domains for the step, one dimension at a time, without faults or with
# one (with every fault the sets of IndInv states are too large to enumerate here)
INDUCTIVE_WIDER = {
    "two_blocks": dict(INDUCTIVE, NBlocks=2, Faults=()),
    # two requests sharing the one-block pool (the second fits its init block)
    "two_requests": dict(INDUCTIVE, NReq=2, Total=(2, 1), Faults=()),
    # two sessions (ranks), one block each: the barrier, sessions at different stages
    "two_sessions": dict(INDUCTIVE, NSess=2, Faults=()),
    # one fault on a wider domain: the encode side dies, or a write fails
    "two_blocks_heartbeat": dict(INDUCTIVE, NBlocks=2, Faults=("heartbeat",)),
    "two_blocks_write_error": dict(INDUCTIVE, NBlocks=2, Faults=("write_error",)),
}

CORRECTED_VIEW = "CorrectedView"   # spec/ResumeCorrected.tla
WITHOUT_READ = [i for i in SAFETY if i != "NoReadDuringWrite"]
CONTAINED = SAFETY + list(properties.FAULT_CONTAINMENT)
ALL_FAULTS = ("write_error", "heartbeat", "abort")

MODELS = [
    # ---- d1bceb411: resume_triggered flag ----------------------------------
    model("flag_double_free", "flag", expected=("safety", "NoDoubleFree"), NBlocks=2,
          why="Free-first resume: the old block is freed, the allocation returns None, and "
              "the failure path frees embedding_indices, still the old block, a second time."),
    model("flag_capped_hang", "flag", expected=("liveness", "NoWaitForUnrequestedRound"),
          NReq=1, Total=(3,), Cap=1,
          why="With three rounds the flag, set by the first resume, stops the second: the "
              "receiver waits for data while the sender waits for a resume."),
    # ---- 7a7a71977: last_resume_indices -------------------------------------
    model("indices_double_free", "indices", expected=("safety", "NoDoubleFree"), NBlocks=2,
          why="Same free-first failure path as the flag design: the old blocks are freed twice."),
    model("indices_capped_hang", "indices", expected=("liveness", "NoWaitForUnrequestedRound"),
          NReq=1, Total=(3,), Cap=1,
          why="last_resume_indices is set to the new allocation, which is exactly the current "
              "block list, so every later Transferring poll looks already handled."),
    # ---- caff70bd5: sent_tokens read from the buffer -----------------------
    model("sent_tokens_read_during_write", "sent_tokens",
          expected=("safety", "NoReadDuringWrite"),
          why="Every Transferring poll reads the current blocks, also while the resumed "
              "round's writes into them are in flight."),
    # the same hazard with two-token blocks: 105 states to the violation, a
    # quick model (it was sent_tokens_deep_blocksize2 in the deep set, where
    # its ratio before/after issue 11 was TLC's start-up, not a search rate)
    model("sent_tokens_read_during_write_blocksize2", "sent_tokens",
          expected=("safety", "NoReadDuringWrite"), BlockSize=2, Total=(5, 3), InitTokens=2,
          why="With two-token blocks the stale read shows the same way: the poll reads blocks "
              "that the resumed round is writing."),
    model("sent_tokens_double_resume", "sent_tokens",
          expected=("safety", "AtMostOneResumePerRound"), invariants=WITHOUT_READ,
          Cap=1, Order="lifo",
          why="LIFO hands back the block just freed; its aux row still says the total, so "
              "the next poll counts a token that was never sent and resumes the same round "
              "again."),
    model("sent_tokens_corruption", "sent_tokens",
          expected=("safety", "HandedDataIsSource"),
          invariants=[i for i in WITHOUT_READ if i != "AtMostOneResumePerRound"],
          Cap=1, Order="lifo",
          why="The second resume of one round carries an offset one token too far; the sender "
              "obeys, a token is never sent, and prefill gets the wrong embedding."),
    # ---- 2141e0842: cached partial_sent_tokens -----------------------------
    model("cached_sent_capped_hang", "cached_sent",
          expected=("liveness", "NoWaitForUnrequestedRound"), NReq=1, Total=(3,), Cap=1,
          why="After the first resume the key is the cached offset, equal to the last resume's, "
              "so a second partial round is never answered."),
    # ---- cca20b094: mainline, resume only if nothing is cached --------------
    model("once_engine", "once",
          why=None),
    model("once_capped_hang", "once", expected=("liveness", "NoWaitForUnrequestedRound"),
          NReq=1, Total=(3,), Cap=1,
          why="At most one resume: with a capped allocation the third round is never asked for."),
    model("once_pool_deadlock", "once", expected=("liveness", "EveryRequestEnds"), NBlocks=2,
          why="Both requests hold one block and need more; allocate-first keeps the old block "
              "while it retries, so neither allocation can ever succeed."),
    model("once_abort", "once", expected=("safety", "WritesOnlyIntoOwnedBlocks"),
          NReq=1, Total=(3,), Faults=("abort",),
          why="An abort frees the blocks locally and tells nobody: the sender's writes still "
              "target them."),
    model("once_heartbeat_resurrects", "once", expected=("liveness", "EveryRequestEnds"),
          NReq=1, Total=(3,), Faults=("heartbeat",),
          why="Heartbeat loss sets Failed, then a Transferring status still in flight raises it "
              "again (max(Failed, Transferring)); the receiver resumes towards a dead sender and "
              "waits forever."),
    model("once_no_barrier", "once", expected=("safety", "WritesOnlyIntoOwnedBlocks"),
          NReq=1, NSess=2, Total=(3,), Cap=1, Barrier=False,
          why="Without the barrier the first session's resume starts a round for both; the "
              "second session's destination is the block list it already freed."),
    # ---- the fork's sender after a failed write (ForkSender; the sender of --
    # ---- all five commits, so shown on mainline) ------------------------------
    model("once_fork_dead_session", "once", expected=("safety", "EachFailureHasAFault"),
          invariants=CONTAINED, Total=(2, 1), Faults=("write_error",), ForkSender=True,
          why="A write of the first request fails; the sender counts the session as dead and "
              "fails the second request at its first round without writing it, though the "
              "encode side and the language rank are alive: two requests fail for one fault."),
    model("once_fork_two_sessions", "once", NReq=1, NSess=2, Total=(2,),
          Faults=("write_error",), ForkSender=True,
          why=None),
    # two sessions, two requests: the later request's round may write the
    # live session before it meets the dead one (SenderFailDead's W)
    model("once_fork_sessions_two_requests", "once", NSess=2, Total=(1, 1), NBlocks=2,
          Faults=("write_error",), ForkSender=True),
    # ---- the fork's sender without the barrier (the four pull/13 designs): --
    # ---- QueuedRounds, ForkSender and no Barrier (ResumeBase.tla) ---------------
    model("indices_fork_queued_rounds", "indices", NReq=1, NSess=2, Total=(3,), Cap=1,
          Barrier=False, ForkSender=True, expected=("safety", "WritesOnlyIntoOwnedBlocks"),
          why="The fork's sender without the barrier queues a round per resume and writes each "
              "session from what it holds when its walk reaches it: the first resume's round "
              "writes the other session, whose resume has not arrived, into the blocks its rank "
              "freed (per-session reading narrows the once_no_barrier window, it does not close "
              "it)."),
    model("indices_fork_queued_write_error", "indices", NReq=1, NSess=2, Total=(2,),
          Barrier=False, ForkSender=True, Faults=("write_error",),
          expected=("safety", "WritesOnlyIntoOwnedBlocks"),
          why="With a write error possible the first hazard is still the stale destination: a "
              "queued round writes a session whose resume has not arrived into freed blocks; "
              "after a write error the failed room's queued rounds run too (SenderWriteSession: "
              "live sessions written again, the dead one told Failed again)."),
    # ---- corrected design --------------------------------------------------
    model("corrected_fifo", "corrected"),
    model("corrected_capped_lifo", "corrected", Cap=1, Order="lifo"),
    model("corrected_any", "corrected", Order="any"),
    model("corrected_pool_pressure", "corrected", NBlocks=2),
    model("corrected_faults", "corrected", NReq=1, Total=(3,), Cap=1, Faults=ALL_FAULTS),
    model("corrected_two_sessions", "corrected", NReq=1, NSess=2, Total=(3,), Cap=1),
    # its own failure rule (ForkSender FALSE): a write error fails only its room
    model("corrected_write_error_contained", "corrected", invariants=CONTAINED, Total=(2, 1),
          Faults=("write_error",)),
    # the fork's sender under the corrected receiver: Failed to one session is
    # enough (the all-reduce), but the dead mark still spreads the failure
    model("corrected_fork_two_sessions", "corrected", NReq=1, NSess=2, Total=(3,), Cap=1,
          Faults=("write_error",), ForkSender=True),
    model("corrected_fork_dead_session", "corrected",
          expected=("safety", "EachFailureHasAFault"), invariants=CONTAINED, Total=(2, 1),
          Faults=("write_error",), ForkSender=True,
          why="The corrected receiver does not help against the fork's sender: after the first "
              "request's write error the second request fails without a fault of its own. The "
              "corrected design's sender (ForkSender FALSE) fails only the room of the error."),
    # ---- deep set ------------------------------------------------------------
    # the corrected deep models fingerprint CorrectedView (ResumeCorrected.tla
    # argues why it is sound: it leaves out block contents this design
    # overwrites before it reads them); the quick models above check the
    # whole state, and tests/test_models.py compares the two on them
    model("corrected_deep_faults", "corrected", set_="deep", view=CORRECTED_VIEW, Cap=1,
          Faults=ALL_FAULTS),
    model("corrected_deep_sessions", "corrected", set_="deep", view=CORRECTED_VIEW, NSess=2, Cap=1,
          Total=(3, 2)),
    model("corrected_deep_sessions_faults", "corrected", set_="deep", view=CORRECTED_VIEW, NReq=1,
          NSess=2, Total=(3,), Cap=1, Order="any", Faults=ALL_FAULTS),
    # two-token blocks, odd totals (a partial last block), one block per
    # resume: five and four rounds (37,910 states; at Total=(5, 3), 2,776
    # states, TLC's start-up was most of the run, before and after issue 11)
    model("corrected_deep_blocksize2", "corrected", set_="deep", view=CORRECTED_VIEW, BlockSize=2,
          NBlocks=3, Total=(9, 7), InitTokens=2, Cap=1, Order="lifo"),
    model("corrected_deep_three_requests", "corrected", set_="deep", view=CORRECTED_VIEW, NReq=3,
          Total=(2, 2, 2), NBlocks=3, Cap=1),
    # mainline, every allocator order, three requests on three blocks (48,511
    # states; with two requests, 2,053 states, TLC's start-up was a third of
    # the run after issue 11)
    model("once_deep_engine_any", "once", set_="deep", Order="any", NReq=3, Total=(2, 2, 1)),
    # mainline inside the engine's envelope, LIFO reuse, two ranks, three
    # requests competing for the three blocks (82,411 states; with two
    # requests, 1,325 states, TLC's start-up was most of the run)
    model("once_deep_engine_lifo_sessions", "once", set_="deep", NSess=2, Order="lifo", NReq=3,
          Total=(2, 2, 1)),
    model("flag_deep_engine_any", "flag", set_="deep", Order="any", NBlocks=4,
          why=None),
    # bigger corrected models, affordable since liveness is checked as safety
    model("corrected_deep_four_requests", "corrected", set_="deep", view=CORRECTED_VIEW, NReq=4,
          Total=(2, 1, 2, 1), NBlocks=3, Cap=1),
    model("corrected_deep_three_sessions", "corrected", set_="deep", view=CORRECTED_VIEW, NReq=1,
          NSess=3, Total=(3,), NBlocks=3, Cap=1, Faults=ALL_FAULTS),
    model("corrected_deep_six_blocks", "corrected", set_="deep", view=CORRECTED_VIEW, Total=(4, 3),
          NBlocks=6, Cap=2, Order="lifo", Faults=ALL_FAULTS),
    # too large to exhaust: TLC's random simulation (resumespec check --deep runs it)
    model("corrected_sim_eight_requests", "corrected", set_="deep",
          mode={"simulate": {"num": 40, "depth": 400, "seed": 1}}, NReq=8, NSess=4,
          Total=(3, 2, 3, 1, 2, 3, 1, 2), NBlocks=6, Cap=1, Faults=ALL_FAULTS),
    # ---- inductive invariant (spec/ResumeCorrectedInductive.tla) -------------
    # the induction step: from EVERY state satisfying IndInv, one step keeps
    # IndInv and Safety (IndInit is IndInv itself, so TLC's initial states are
    # all of them); and Init => IndInv, checked on every reachable state
    model("corrected_inductive", "corrected", set_="deep", extends="ResumeCorrectedInductive",
          spec="IndSpec", invariants=["IndInv", "Safety"], properties=[], **INDUCTIVE),
    model("corrected_inductive_init", "corrected", set_="deep", extends="ResumeCorrectedInductive",
          invariants=SAFETY + ["IndInv"], properties=[], **INDUCTIVE),
    *[model(f"corrected_inductive_{k}", "corrected", set_="deep", extends="ResumeCorrectedInductive",
            spec="IndSpec", invariants=["IndInv", "Safety"], properties=[], **c)
      for k, c in INDUCTIVE_WIDER.items()],
]


def tla_value(v):
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple) and all(isinstance(x, int) for x in v):
        return "<<" + ", ".join(str(x) for x in v) + ">>"
    if isinstance(v, tuple):
        return "{" + ", ".join(tla_value(x) for x in v) + "}"
    raise TypeError(v)


def summary(c):
    order = ["NReq", "NSess", "Total", "BlockSize", "NBlocks", "InitTokens", "Cap",
             "Order", "ResumeOrder", "Barrier", "Faults", "ForkSender"]
    parts = []
    for k in order:
        if k == "ForkSender" and not c[k]:
            continue        # (named only when on: the models before it keep their summary)
        v = c[k]
        if k == "Faults":
            v = "{" + ",".join(v) + "}"
        elif isinstance(v, tuple):
            v = tla_value(v)
        parts.append(f"{k}={v}")
    return " ".join(parts)


def design_module(variant):
    """The module of the design a model checks (each model EXTENDS it)."""
    return "ResumeCorrected" if variant == "corrected" else "ResumeHistorical"


# constants each design's module declares (the corrected design has no Variant,
# and no ResumeOrder: its resume step has one order of its own)
CFG_CONSTANTS = ["NReq", "NSess", "BlockSize", "NBlocks", "InitTokens", "Cap", "Order",
                 "Variant", "ResumeOrder", "Barrier", "ForkSender"]
CORRECTED_OMITS = ("Variant", "ResumeOrder")


def write_model(m):
    c = m["constants"]
    module = f"MC_{m['name']}"
    (HERE / f"{module}.tla").write_text(
        f"---- MODULE {module} ----\n"
        f"\\* Generated by spec/models/generate.py; edit the table there.\n"
        f"EXTENDS {m.get('extends') or design_module(m['variant'])}\n"
        f"MCTotal == {tla_value(tuple(c['Total']))}\n"
        f"MCFaults == {tla_value(tuple(c['Faults'])) if c['Faults'] else '{}'}\n"
        f"====\n"
    )
    lines = ["\\* Generated by spec/models/generate.py; edit the table there.", "CONSTANTS"]
    for k in CFG_CONSTANTS:
        if m["variant"] == "corrected" and k in CORRECTED_OMITS:
            continue
        lines.append(f"  {k} = {tla_value(c[k])}")
    lines += ["  Total <- MCTotal", "  Faults <- MCFaults", f"SPECIFICATION {m['spec']}"]
    if m["view"]:
        lines.append(f"VIEW {m['view']}")
    lines.append("INVARIANT " + " ".join(m["invariants"]))
    if m["properties"]:
        lines.append("PROPERTY " + " ".join(m["properties"]))
    (HERE / f"{module}.cfg").write_text("\n".join(lines) + "\n")
    return module


def manifest_entry(m, old):
    module = f"MC_{m['name']}"
    exp = m["expected"]
    expected = exp if exp == "success" else {exp[0]: exp[1]}
    entry = {
        "name": m["name"],
        "module": f"models/{module}.tla",
        "cfg": f"models/{module}.cfg",
        "variant": m["variant"],
        "constants": summary(m["constants"]),
        "set": m["set"],
        "mode": m["mode"],
        "check_deadlock": False,
        "expected": expected,
        "distinct_states": None,
        "depth": None,
        "runtime_s": None,
    }
    if m["why"]:
        entry["why"] = m["why"]
    entry["notes"] = (f"engine commit {COMMIT[m['variant']]}; {m['spec']} checks "
                      + " ".join(m["invariants"] + m["properties"])
                      + (f"; VIEW {m['view']}" if m["view"] else ""))
    # the state graph depends on the constants and the VIEW (named in the notes)
    # alone; the runtime also on what is checked
    def view_of(notes):
        return notes.split("; VIEW ")[1] if notes and "; VIEW " in notes else None
    if (old and all(old.get(k) == entry[k] for k in ("constants", "expected"))
            and view_of(old.get("notes")) == m["view"]):
        for k in ("distinct_states", "depth"):
            entry[k] = old.get(k)
        if old.get("notes") == entry["notes"]:
            entry["runtime_s"] = old.get("runtime_s")
    if old and old.get("throughput") and old.get("constants") == entry["constants"]:
        entry["throughput"] = old["throughput"]   # measured by python -m bench tlc --compare
    return entry


def main() -> int:
    names = [m["name"] for m in MODELS]
    assert len(names) == len(set(names)), "duplicate model names"
    for old_file in HERE.glob("MC_*"):
        if old_file.stem[3:] not in names:
            old_file.unlink()
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"format": 1}
    old = {e["name"]: e for e in manifest.get("models", [])}
    entries = []
    for m in MODELS:
        write_model(m)
        entries.append(manifest_entry(m, old.get(m["name"])))
    manifest["format"] = manifest.get("format", 1)
    manifest["models"] = entries
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(MODELS)} models and {MANIFEST.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
