"""``resumespec simulate``: run the reference implementation once and check it.

Prints a summary (text, or ``--json``); exits 0 when the run passes its
self-checks, ``exitcodes.SIM_FAILED`` when it ends in a hang, corruption,
leak, double free, ..., ``exitcodes.USAGE`` / ``BAD_INPUT`` on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from resumespec import exitcodes


def register(sub) -> None:
    p = sub.add_parser("simulate", help="run the reference implementation on real tensors and check it",
                       description="Run sender, receiving sessions, transport and faults under a "
                       "deterministic scheduler (from --seed or --schedule) and verify the run.")
    p.add_argument("--counterexample", default=None, metavar="NAME",
                   help="replay a built-in counterexample (its configuration and schedule); 'list' lists them")
    p.add_argument("--tlc", default=None, metavar="MODEL|FILE",
                   help="replay the spec's TLC counterexample of MODEL (stored in reference/tlc_schedules), "
                   "or a file written by 'resumespec counterexample MODEL --json'; 'list' lists them")
    p.add_argument("--variant", default=None,
                   help="receiver design: flag, indices, sent_tokens, cached_sent, once, corrected (default)")
    p.add_argument("--requests", type=int, default=None, help="number of requests (default: one per --tokens entry)")
    p.add_argument("--tokens", default="3",
                   help="tokens per request: one number for all, or a comma list (one per request)")
    p.add_argument("--block-size", type=int, default=1)
    p.add_argument("--pool", type=int, default=4, help="blocks in each language rank's pool")
    p.add_argument("--sessions", type=int, default=1, help="receiving sessions (language ranks) per request")
    p.add_argument("--order", default="fifo", help="allocator reuse order: fifo, lifo, random (= any)")
    p.add_argument("--cap", type=int, default=0, help="blocks per resume allocation at most (0 = all remaining)")
    p.add_argument("--resume-order", default=None,
                   help="alloc_first or free_first (default: the engine's order for the variant)")
    p.add_argument("--init-tokens", type=int, default=None, help="first allocation (default: one block)")
    p.add_argument("--barrier", action=argparse.BooleanOptionalAction, default=True,
                   help="sender starts a resumed round only when every session resumed (default on)")
    p.add_argument("--faults", default="",
                   help="comma list of faults that may happen: write_error, heartbeat, abort, alloc_fail")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", default=None,
                   help="replay this schedule (JSON list, or one step per line: 'Name key=value ...')")
    p.add_argument("--schedule-only", action="store_true",
                   help="stop when the schedule ends instead of completing the run from --seed")
    p.add_argument("--save-schedule", default=None, help="write the steps taken (JSON) to this file")
    p.add_argument("--shrink", action="store_true",
                   help="when the run fails, shrink its schedule (with --save-schedule: save the shrunk one)")
    p.add_argument("--trace", default=None, help="write the trace (JSON Lines) to this file")
    p.add_argument("--hidden", type=int, default=8)
    p.add_argument("--batch-writes", action=argparse.BooleanOptionalAction, default=True,
                   help="land a round's data writes with a few batched copies (default), or one copy "
                   "per block (--no-batch-writes); the run is the same either way")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=simulate)


def _fail(msg: str, code: int) -> int:
    print(f"resumespec simulate: {msg}", file=sys.stderr)
    return code


def build_config(args):
    from .world import Config
    try:
        tokens = [int(t) for t in str(args.tokens).split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--tokens: expected a number or a comma list of numbers, got {args.tokens!r}") from None
    n = args.requests if args.requests is not None else len(tokens)
    if n < 1:
        raise ValueError("--requests must be at least 1")
    if len(tokens) == 1:
        tokens = tokens * n
    elif len(tokens) != n:
        raise ValueError(f"--tokens lists {len(tokens)} requests but --requests is {n}")
    order = "random" if args.order == "any" else args.order
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    cfg = Config(variant=args.variant or "corrected", tokens=tokens, block_size=args.block_size, pool=args.pool,
                 sessions=args.sessions, order=order, cap=args.cap,
                 resume_order=args.resume_order, barrier=args.barrier, faults=faults,
                 seed=args.seed, hidden=args.hidden, device=args.device,
                 init_tokens=args.init_tokens, max_steps=args.max_steps,
                 batch_writes=args.batch_writes)
    cfg.validate()
    return cfg


def simulate(args) -> int:
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    from .counterexamples import COUNTEREXAMPLES, config_of, steps_of
    from .device import DeviceError, choose_device
    from .scheduler import ScheduleError, load_schedule, run, shrink
    if args.counterexample == "list":
        for cx in COUNTEREXAMPLES.values():
            print(f"{cx.name:32} {cx.variant:12} -> {cx.outcome:20} {cx.why}")
        return exitcodes.OK
    if args.tlc == "list":
        from .tlc_replay import stored_replays
        for name, r in stored_replays().items():
            print(f"{name:32} {r['variant']:12} -> {r['property']:28} {r['constants']}")
        return exitcodes.OK
    try:
        cfg = build_config(args)
        choose_device(cfg.device)
    except (ValueError, DeviceError) as exc:
        return _fail(str(exc), exitcodes.USAGE)
    schedule = None
    if args.counterexample:
        cx = COUNTEREXAMPLES.get(args.counterexample)
        if cx is None:
            return _fail(f"unknown counterexample {args.counterexample!r}; "
                         f"'--counterexample list' lists them", exitcodes.USAGE)
        over = dict(hidden=cfg.hidden, device=cfg.device, seed=cfg.seed, batch_writes=cfg.batch_writes)
        if args.variant:
            over["variant"] = args.variant
        cfg = config_of(cx, **over)
        schedule = steps_of(cx)
    expected = None
    if args.tlc:
        from .tlc_replay import SCHEDULE_DIR, TraceError, load_replay
        from .tlc_replay import config_of as tlc_config
        path = SCHEDULE_DIR / f"{args.tlc}.json"
        if not path.exists():
            path = args.tlc
        try:
            replay = load_replay(path)
        except OSError as exc:
            return _fail(f"{args.tlc}: no stored TLC model of that name and no such file ({exc.strerror})",
                         exitcodes.BAD_INPUT)
        except (ValueError, KeyError, TraceError) as exc:
            return _fail(f"{args.tlc}: not a TLC counterexample document ({exc})", exitcodes.BAD_INPUT)
        over = dict(hidden=cfg.hidden, device=cfg.device, seed=cfg.seed, batch_writes=cfg.batch_writes)
        if args.variant:
            over["variant"] = args.variant
        cfg = tlc_config(replay, **over)
        schedule = replay["steps"]
        expected = (replay["outcome"], replay["property"])
    if args.schedule:
        try:
            schedule = load_schedule(args.schedule)
        except ScheduleError as exc:
            return _fail(str(exc), exitcodes.BAD_INPUT)

    def progress(n: int) -> None:
        print(f"simulate: {n} steps", file=sys.stderr, flush=True)

    # Another design replaying a built-in schedule skips the steps it does not enable.
    strict = not ((args.tlc or args.counterexample) and args.variant)
    source = args.schedule or args.tlc or args.counterexample
    try:
        result = run(cfg, schedule, complete=not args.schedule_only, strict=strict, progress=progress)
    except ScheduleError as exc:
        return _fail(f"{source}: {exc}", exitcodes.BAD_INPUT)
    steps = result.steps
    if args.shrink and not result.ok and result.outcome != "incomplete":
        print(f"simulate: shrinking a {len(steps)}-step schedule ({result.outcome})", file=sys.stderr)
        steps = shrink(cfg, steps, result.outcome)
        result = run(cfg, steps, complete=True, strict=False)
        steps = steps
    if args.trace:
        try:
            result.world.trace.write_jsonl(args.trace)
        except OSError as exc:
            return _fail(f"{args.trace}: cannot write ({exc.strerror})", exitcodes.BAD_INPUT)
    if args.save_schedule:
        try:
            with open(args.save_schedule, "w", encoding="utf-8") as fh:
                json.dump(steps, fh, indent=0)
        except OSError as exc:
            return _fail(f"{args.save_schedule}: cannot write ({exc.strerror})", exitcodes.BAD_INPUT)
    summary = result.summary()
    summary["schedule_steps"] = len(steps)
    if expected is not None:
        summary["tlc_verdict"] = {"outcome": expected[0], "property": expected[1],
                                  "same": (result.outcome, result.prop) == expected}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_text(summary)
    if result.ok:
        return exitcodes.OK
    if result.outcome == "incomplete":
        return exitcodes.OK
    return exitcodes.SIM_FAILED


def _print_text(s: dict) -> None:
    print(f"outcome: {s['outcome']}" + (f" ({s['property']})" if s["property"] else ""))
    if s["where"]:
        print(f"where:   {s['where']}")
    if "tlc_verdict" in s:
        t = s["tlc_verdict"]
        print(f"TLC:     {t['outcome']} ({t['property']}): {'the same' if t['same'] else 'DIFFERENT'}")
    print(f"variant: {s['variant']} ({s['resume_order']}), device {s['device']}, {s['steps']} steps")
    for r in s["rounds"]:
        print(f"  req {r}: {s['rounds'][r]} round(s), {s['resumes'][r]} resume(s), {s['requests'][r]}")
    mbps = s["throughput_MBps"]
    print(f"bytes moved: {s['bytes_moved']} in {s['block_writes']} block writes, {s['write_ops']} copy ops "
          f"({'batched' if s['batch_writes'] else 'one per block'}), {s['elapsed_s']:.4f} s"
          + (f", {mbps} MB/s" if mbps is not None else "") + f", {s['us_per_round']} us/round")
