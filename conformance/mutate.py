"""Mutations of valid traces, for checker tests and the mutation campaign.

Beyond the blind edits (drop, duplicate, swap or alter one event), the
*coordinated* mutations change a trace the way an engine bug would, keeping
it plausible: both sides of a message agree, the events stay in the order a
process logs them, only the decision or value is wrong.

* ``coordinated``: one value changed on the sending and on the receiving
  side of the same message (init, resume, status: blocks, offset,
  allocation, status, round), or on a round's start and end (its offset);
* ``insert_resume``: a second resume of the same round (resume_sent after
  the original, its resume_recv after the original's), which no design's
  "already resumed" test lets through, or a resume after a poll that waited;
* ``insert_free``: a free of blocks the request holds, logged right after
  one of its polls that waited (no step frees there);
* ``insert_status``: a status message sent and received again (the same
  status once more, or the next one up, Transferring -> Success);
* ``renumber_rounds``: every ``round`` field of one request shifted by one
  (the corrected design's status and resume name the round), or, in a trace
  without round numbers, one round's offset shifted on every event that
  names it (round_start, round_end, resume_sent, resume_recv).

``mutate(events, kind, rng)`` returns the mutated events with ``seq``
renumbered per process, or None when the trace offers no place for that
kind.  ``campaign`` runs the two checkers on mutants and compares them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from .synth import renumber

BLIND = ("drop", "duplicate", "swap", "alter")
COORDINATED = ("coordinated", "insert_resume", "insert_free", "insert_status",
               "renumber_rounds")
KINDS = BLIND + COORDINATED

_SENDS = {"init_sent": "init_recv", "resume_sent": "resume_recv",
          "status_sent": "status_recv", "abort_sent": "abort_recv"}
_STATUS_UP = {"WaitingForInput": "Transferring", "Transferring": "Success",
              "Bootstrapping": "WaitingForInput"}


def pairs(events: list[dict]) -> list[tuple[int, int]]:
    """(send index, receive index) of every message delivered in the trace:
    the k-th receive of a kind on (req, session) matches the k-th send."""
    sent: dict[tuple, list[int]] = {}
    got: dict[tuple, int] = {}
    out = []
    for i, e in enumerate(events):
        name = e["event"]
        if name in _SENDS:
            sent.setdefault((_SENDS[name], e["req"], e["session"]), []).append(i)
        elif name in _SENDS.values():
            key = (name, e["req"], e["session"])
            k = got.get(key, 0)
            got[key] = k + 1
            sends = sent.get(key, [])
            if k < len(sends):
                out.append((sends[k], i))
    return out


def blind(events: list[dict], kind: str, rng: random.Random) -> list[dict] | None:
    ev = list(events)
    i = rng.randrange(len(ev))
    if kind == "drop":
        del ev[i]
    elif kind == "duplicate":
        ev.insert(i, dict(ev[i]))
    elif kind == "swap":
        j = min(i + 1, len(ev) - 1)
        ev[i], ev[j] = ev[j], ev[i]
    else:
        e = dict(ev[i])
        keys = [k for k, v in e.items() if k not in ("v", "proc", "seq", "event")
                and type(v) in (int, bool, list)]
        if not keys:
            return None
        k = rng.choice(keys)
        v = e[k]
        if type(v) is bool:
            e[k] = not v
        elif type(v) is int:
            e[k] = v + rng.choice((1, -1)) if v > 1 else v + 1
        else:
            e[k] = list(v) + [rng.randrange(8)] if rng.random() < 0.5 else list(v)[1:]
        ev[i] = e
    return ev


def _coordinated(events: list[dict], rng: random.Random) -> list[dict] | None:
    choices = []
    for a, b in pairs(events):
        for k in ("blocks", "sent_tokens", "allocated_tokens", "status", "round"):
            if k in events[a] and k in events[b]:
                choices.append((a, b, k))
    # a round's offset: its round_start and the round_end that follows it
    open_start: dict[tuple, int] = {}
    for i, e in enumerate(events):
        if e["event"] == "round_start":
            open_start[(e["req"], e["session"])] = i
        elif e["event"] == "round_end" and (e["req"], e["session"]) in open_start:
            choices.append((open_start.pop((e["req"], e["session"])), i, "sent_tokens"))
    if not choices:
        return None
    a, b, k = rng.choice(choices)
    ev = [dict(e) for e in events]
    old = ev[a][k]
    if k == "blocks":
        blocks = list(old)
        if blocks and rng.random() < 0.6:
            j = rng.randrange(len(blocks))
            blocks[j] = (blocks[j] + rng.randint(1, 3)) % 8
        elif blocks and rng.random() < 0.5:
            blocks = blocks[:-1]
        else:
            blocks = blocks + [max(blocks, default=-1) + 1]
        new = blocks
    elif k == "status":
        new = rng.choice([s for s in ("Failed", "WaitingForInput", "Transferring", "Success")
                          if s != old])
    else:
        new = old + 1 if old == 0 or rng.random() < 0.5 else old - 1
    if ev[a]["event"] == "round_start":      # keep the round's end consistent
        ev[a][k] = new
        ev[b][k] = ev[b][k] + (new - old)
    else:
        ev[a][k] = new
        ev[b][k] = new
    return ev


def _insert_resume(events: list[dict], rng: random.Random) -> list[dict] | None:
    ps = [(a, b) for a, b in pairs(events) if events[a]["event"] == "resume_sent"]
    if ps:                                    # the same resume once more
        a, b = rng.choice(ps)
        ev = list(events)
        ev.insert(b + 1, dict(events[b]))
        ev.insert(a + 1, dict(events[a]))
        return ev
    # no resume in the trace: a poll that waited on Transferring resumes instead
    waits = [i for i, e in enumerate(events)
             if e["event"] == "poll" and e["status"] == "Transferring"
             and e["decision"] == "wait"]
    if not waits:
        return None
    i = rng.choice(waits)
    ev = [dict(e) for e in events]
    ev[i]["decision"] = "resume"
    req = ev[i]["req"]
    s = int(ev[i]["proc"].split("/")[1])
    init = next((e for e in events if e["event"] == "init_sent" and e["req"] == req
                 and e["session"] == s), None)
    if init is None:
        return None
    msg = {"req": req, "session": s, "blocks": init["blocks"], "sent_tokens": 0,
           "allocated_tokens": init["allocated_tokens"]}
    ev.insert(i + 1, {"v": 1, "proc": ev[i]["proc"], "seq": 0, "event": "resume_sent",
                      **msg})
    ev.insert(i + 2, {"v": 1, "proc": "encode", "seq": 0, "event": "resume_recv", **msg})
    return ev


def _held_after(events: list[dict], upto: int) -> dict[tuple, list]:
    """(rank, req) -> blocks held after events[:upto], as the log shows."""
    held: dict[tuple, list] = {}
    for e in events[:upto]:
        if e["event"] == "alloc" and e["blocks"]:
            held.setdefault((e["rank"], e["req"]), []).extend(e["blocks"])
        elif e["event"] == "free":
            cur = held.get((e["rank"], e["req"]), [])
            held[(e["rank"], e["req"])] = [b for b in cur if b not in e["blocks"]]
    return held


def _insert_free(events: list[dict], rng: random.Random) -> list[dict] | None:
    waits = [i for i, e in enumerate(events)
             if e["event"] == "poll" and e["decision"] in ("wait", "retry_alloc")]
    rng.shuffle(waits)
    for i in waits[:8]:
        e = events[i]
        rank = int(e["proc"].split("/")[1])
        blocks = _held_after(events, i + 1).get((rank, e["req"]))
        if blocks:
            ev = list(events)
            ev.insert(i + 1, {"v": 1, "proc": e["proc"], "seq": 0, "event": "free",
                              "rank": rank, "req": e["req"], "blocks": list(blocks)})
            return ev
    return None


def _insert_status(events: list[dict], rng: random.Random) -> list[dict] | None:
    ps = [(a, b) for a, b in pairs(events) if events[a]["event"] == "status_sent"]
    if not ps:
        return None
    a, b = rng.choice(ps)
    sent, got = dict(events[a]), dict(events[b])
    if rng.random() < 0.5 and sent["status"] in _STATUS_UP:
        sent["status"] = got["status"] = _STATUS_UP[sent["status"]]
    ev = list(events)
    ev.insert(b + 1, got)
    ev.insert(a + 1, sent)
    return ev


def _renumber_rounds(events: list[dict], rng: random.Random) -> list[dict] | None:
    reqs = sorted({e["req"] for e in events if "round" in e})
    ev = [dict(e) for e in events]
    if reqs:
        req = rng.choice(reqs)
        d = rng.choice((1, -1))
        for e in ev:
            if e.get("req") == req and "round" in e:
                e["round"] = max(0, e["round"] + d)
        return ev
    # no round numbers: shift one round's offset everywhere it is named
    starts = [i for i, e in enumerate(events)
              if e["event"] == "round_start" and e["sent_tokens"] > 0]
    if not starts:
        return None
    e0 = events[rng.choice(starts)]
    req, s, off = e0["req"], e0["session"], e0["sent_tokens"]
    d = rng.choice((1, -1))
    for e in ev:
        if (e.get("req") == req and e.get("session") == s
                and e["event"] in ("round_start", "resume_sent", "resume_recv")
                and e["sent_tokens"] == off):
            e["sent_tokens"] = off + d
        elif (e.get("req") == req and e.get("session") == s and e["event"] == "round_end"
              and e["sent_tokens"] - off == e0["tokens"]):
            e["sent_tokens"] += d
    return ev


_COORD: dict[str, Callable] = {
    "coordinated": _coordinated, "insert_resume": _insert_resume,
    "insert_free": _insert_free, "insert_status": _insert_status,
    "renumber_rounds": _renumber_rounds}


def mutate(events: list[dict], kind: str, rng: random.Random) -> list[dict] | None:
    """One mutation of ``kind`` (see KINDS); None when the trace has no place for it."""
    if not events:
        return None
    body = [e for e in events if e["event"] != "config"]
    head = [e for e in events if e["event"] == "config"]
    if not body:
        return None
    out = blind(body, kind, rng) if kind in BLIND else _COORD[kind](body, rng)
    return None if out is None else renumber(head + out)


def mutants(bases: list[tuple[str, list[dict]]], count: int, seed: int = 0,
            kinds: tuple = KINDS) -> Iterator[tuple[str, list[dict]]]:
    """``count`` mutants (label, events) of the base traces, the kinds taken in
    turn, the base and the place at random (reproducible from ``seed``)."""
    rng = random.Random(seed)
    made = tries = 0
    while made < count and tries < 20 * count:
        kind = kinds[tries % len(kinds)]
        tries += 1
        name, events = bases[rng.randrange(len(bases))]
        out = mutate(events, kind, rng)
        if out is not None and out != events:
            made += 1
            yield f"{name}:{kind}:{made}", out


def agree(native, tlc) -> bool:
    """Same verdict, and for a violation the same property, except where the
    spec cannot even take the step: TLC then says SpecStep while the native
    checker names the property the step would break (docs/conformance.md)."""
    if native.verdict != tlc.verdict:
        return False
    if native.verdict != "violates":
        return True
    return tlc.prop in (native.prop, "SpecStep")


def base_traces(sessions: tuple = (1, 2), seed: int = 0) -> list[tuple[str, list[dict]]]:
    """Valid short traces to mutate: generated mainline runs and reference runs
    of every design (TLC-sized: a few dozen events each)."""
    from . import synth

    out: list[tuple[str, list[dict]]] = []
    for nsess in sessions:
        for k in range(2):
            events = list(synth.generate(2, nsess=nsess, seed=seed + k, block_size=2,
                                         nblocks=8, max_total=5))
            out.append((f"synth{nsess}.{k}", events))
    try:
        from resumespec.reference.scheduler import run
        from resumespec.reference.world import Config
    except ImportError:       # the reference needs torch; the campaign runs without it
        return out
    import json
    import os
    import tempfile
    rng = random.Random(seed)
    for variant in ("flag", "indices", "sent_tokens", "cached_sent", "once", "corrected"):
        for nsess in sessions:
            faults = rng.choice(((), ("write_error",), ("heartbeat",), ("abort",)))
            cfg = Config(variant=variant, tokens=[rng.randint(2, 5)], block_size=2, pool=4,
                         sessions=nsess, order="fifo", faults=faults, seed=rng.randrange(1000))
            fd, path = tempfile.mkstemp(suffix=".jsonl")
            os.close(fd)
            try:
                run(cfg, strict=False).world.trace.write_jsonl(path)
                with open(path, encoding="utf-8") as f:
                    events = [json.loads(line) for line in f if line.strip()]
            finally:
                os.unlink(path)
            if len(events) <= 80:
                out.append((f"{variant}{nsess}", events))
    return out


def campaign(bases, count: int, *, seed: int = 0, workers: int = 2, timeout: int = 300,
             folder: str | None = None, progress=None) -> dict:
    """Run both checkers on ``count`` mutants; TLC runs ``workers`` at a time.
    Returns counts (verdict mix, disagreements with their files) and times."""
    import os
    import tempfile
    import time
    from concurrent.futures import ThreadPoolExecutor

    from . import synth
    from .checker_native import check_native
    from .tlc_trace import check_tlc

    own = folder is None
    tmp = tempfile.mkdtemp(prefix="mutations-") if own else folder
    items = []
    for n, (label, events) in enumerate(mutants(bases, count, seed)):
        path = os.path.join(tmp, f"m{n:05d}.jsonl")
        synth.write(path, events)
        items.append((label, path))
    t0 = time.perf_counter()

    def one(item):
        label, path = item
        native = check_native([path])
        tlc = check_tlc([path], timeout=timeout)
        return label, path, native, tlc

    result: dict = {"traces": len(items), "disagree": [], "no_tlc_verdict": [],
                    "mix": {}, "kinds": {}}
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for label, path, native, tlc in pool.map(one, items):
            done += 1
            kind = label.split(":")[1]
            key = native.verdict + ("/" + native.prop if native.prop and
                                    native.verdict == "violates" else "")
            result["mix"][key] = result["mix"].get(key, 0) + 1
            result["kinds"][kind] = result["kinds"].get(kind, 0) + 1
            if tlc.verdict == "error":
                result["no_tlc_verdict"].append({"trace": label, "file": path,
                                                 "tlc": tlc.message})
            elif not agree(native, tlc):
                result["disagree"].append({
                    "trace": label, "file": path,
                    "native": f"{native.verdict} {native.prop or ''}".strip(),
                    "native_line": native.line, "native_message": native.message,
                    "tlc": f"{tlc.verdict} {tlc.prop or ''}".strip(),
                    "tlc_message": tlc.message})
            if progress is not None:
                progress(done, len(items), time.perf_counter() - t0, result)
    result["seconds"] = time.perf_counter() - t0
    return result
