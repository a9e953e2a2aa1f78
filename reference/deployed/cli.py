"""``resumespec deploy``: run the corrected design as separate processes
over real ZMQ and the real Mooncake transfer engine, check what prefill got
and check the processes' merged traces (docs/deployed.md).

Exit codes: 0 every handed-off embedding equals the source and the traces
conform; ``SIM_FAILED`` (20) the run failed (a process died, a timeout, a
request ended wrong or prefill got other bytes); ``VIOLATES`` /
``INCOMPLETE`` / ``MALFORMED`` the traces do not conform;
``CHECKERS_DISAGREE`` native and TLC differ; ``USAGE`` bad arguments;
``NEEDS_TORCH`` a part of the ``deployed`` extra is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from resumespec import exitcodes

_VERDICT_CODE = {"violates": exitcodes.VIOLATES, "incomplete": exitcodes.INCOMPLETE,
                 "malformed": exitcodes.MALFORMED}


def _lengths(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--lengths: expected a comma list of token counts, got {text!r}") from None
    if not out:
        raise ValueError("--lengths: no length given")
    return out


def register(sub) -> None:
    p = sub.add_parser(
        "deploy", help="run the corrected design as processes over ZMQ and Mooncake, "
                       "check the bytes and the traces",
        description="Start an encode process and one process per language rank (real pyzmq "
                    "control messages, real Mooncake TCP transfers on loopback, a gloo "
                    "all-reduce across the ranks), submit requests, check that prefill got "
                    "the source bytes, and check the merged per-process traces.")
    p.add_argument("--ranks", type=int, default=2, help="language ranks (default 2)")
    p.add_argument("--requests", type=int, default=20,
                   help="requests, lengths spread log-uniformly (default 20)")
    p.add_argument("--min-tokens", type=int, default=256, help="shortest embedding (default 256)")
    p.add_argument("--max-tokens", type=int, default=16384,
                   help="longest embedding (default 16384)")
    p.add_argument("--lengths", help="comma list of embedding lengths (instead of --requests)")
    p.add_argument("--block-size", type=int, default=64, help="tokens per block (default 64)")
    p.add_argument("--hidden", type=int, default=256,
                   help="embedding width, bf16 elements per token (default 256)")
    p.add_argument("--pool-blocks", type=int, default=512,
                   help="destination blocks per language rank (default 512)")
    p.add_argument("--init-tokens", type=int, default=1024,
                   help="tokens allocated before the length is known (default 1024)")
    p.add_argument("--cap", type=int, default=32,
                   help="blocks per resume at most, 0 = all remaining (default 32)")
    p.add_argument("--fault", choices=("none", "heartbeat", "write_error", "abort"), default="none",
                   help="heartbeat: kill -9 of the encode process mid-transfer; write_error: a "
                        "Mooncake write fails; abort: the receiver aborts mid-transfer")
    p.add_argument("--fault-req", type=int, default=None,
                   help="the request the fault hits (default: the longest)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the block buffers live (auto: CUDA when torch sees a GPU)")
    p.add_argument("--handoff-rows", type=int, default=None,
                   help="token rows of prefill's input buffers each rank sets up when it starts "
                        "(default: as many as the run's embeddings hold; 0: each embedding is "
                        "copied into fresh memory)")
    p.add_argument("--write-wait", choices=("submit", "sync"), default="submit",
                   help="how the encode process waits for a round's writes: submit (all sessions' "
                        "writes in flight, sleep between looks; default) or sync (Mooncake's "
                        "spinning batch_transfer_sync_write, one session after the other)")
    p.add_argument("--collectives", type=int, choices=(1, 2), default=1,
                   help="collectives the language ranks run per loop iteration: 1 (one "
                        "all-reduce carrying rank 1's commands; default) or 2 (a broadcast of "
                        "the commands, then the all-reduce)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for the run (default 600)")
    p.add_argument("--check", choices=("native", "tlc", "both", "none"), default="native",
                   help="checker(s) for the merged traces (default native; TLC only for short runs)")
    p.add_argument("--out", default="deploy-out",
                   help="output folder: trace/ (one log per process) and result.json")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from .common import DeployConfig
    from .driver import DeployError, check_traces, deploy, realistic_lengths

    try:
        lengths = (_lengths(args.lengths) if args.lengths else
                   realistic_lengths(args.requests, args.seed, args.min_tokens, args.max_tokens))
        fault_req = args.fault_req or (max(range(len(lengths)), key=lengths.__getitem__) + 1)
        cfg = DeployConfig(ranks=args.ranks, lengths=lengths, block_size=args.block_size,
                           hidden=args.hidden, pool_blocks=args.pool_blocks,
                           src_blocks=max(4096, 2 * sum(-(-n // args.block_size) for n in lengths)),
                           init_tokens=args.init_tokens, cap=args.cap,
                           fault=None if args.fault == "none" else args.fault,
                           fault_req=fault_req, seed=args.seed, timeout_s=args.timeout,
                           device=args.device, write_wait=args.write_wait,
                           handoff_rows=(sum(lengths) if args.handoff_rows is None
                                         else args.handoff_rows),
                           collectives=args.collectives)
        cfg.validate()
    except ValueError as exc:
        print(f"resumespec deploy: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    out = Path(args.out)
    try:
        result = deploy(cfg, out)
    except DeployError as exc:
        print(f"resumespec deploy: the run failed: {exc}", file=sys.stderr)
        return exitcodes.SIM_FAILED
    if args.check != "none":
        checkers = ("native", "tlc") if args.check == "both" else (args.check,)
        result.verdicts = check_traces(result.trace_dir, checkers, tlc_timeout=int(args.timeout))
    summary = result.to_json()
    (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"deployed run: {cfg.ranks} rank(s), {len(lengths)} requests, "
              f"{sum(lengths)} tokens, fault {args.fault}")
        print(f"  handed to prefill: {summary['handed']}, failed: {summary['failed']}, "
              f"in {summary['seconds']} s ({result.bytes_handed / 1e6:.1f} MB handed)")
        print(f"  prefill got the source bytes: {'yes' if not result.mismatches else 'NO'}")
        for m in result.mismatches:
            print(f"    {m}")
        for name, v in result.verdicts.items():
            line = f"  {name} checker: {v['verdict']} ({v['events']} events)"
            if v["verdict"] != "conforms":
                line += f": {v.get('message')}"
            print(line)
        print(f"  traces: {result.trace_dir}")
    if result.mismatches:
        return exitcodes.SIM_FAILED
    verdicts = {v["verdict"] for v in result.verdicts.values()}
    if len(verdicts) > 1:
        return exitcodes.CHECKERS_DISAGREE
    for v in verdicts:
        if v in _VERDICT_CODE:
            return _VERDICT_CODE[v]
        if v == "error":
            return exitcodes.TLC_ERROR
    return exitcodes.OK
