"""An abstract host: the whole system in the spec's shape, driven by the core.

The core keeps the protocol's state (receiver, sender, pools); this host
keeps what the spec keeps besides and what an engine's I/O would hold:
block contents and aux rows (``data``, ``aux``), the cache and handed-over
tokens as token identities ``(r, i)``, the channels (``ctl``, ``st``), the
writes in flight (``wire``, a set per rank: they land in any order), the
faults used and the hazards observed (``errors``).

``successors(world)`` enumerates every step of the spec's ``Next`` from a
world by calling the core's functions and carrying out their effects; each
step is labelled as TLC labels it (``-dump dot,actionlabels``; a write
landing, written inside ``Next`` itself, is labelled ``Next``).
``to_spec``/``from_spec`` convert to and from the spec's variables as plain
Python values (sequences and functions on 1..n as tuples, sets as
frozensets, records as tuples of (field, value) pairs sorted by field), which is how the tests compare the core with
TLC's state graph, and how a checker can start from any spec state.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from . import receiver as rxm
from . import sender as txm
from .designs import FAULTS, AllocOrder, ResumeOrder, Status
from .heartbeat import heartbeat
from .messages import (
    CancelWrites,
    Ctl,
    Effect,
    Read,
    SendCtl,
    SendStatus,
    StatusMsg,
    WriteBlock,
)
from .params import Params
from .pool import Pool

Tok = tuple[int, int]
Rec = tuple[tuple[str, Any], ...]     # a record: its (field, value) pairs sorted by field


def _rec(d: dict[str, Any]) -> Rec:
    return tuple(sorted(d.items()))


def _fields(x: Any) -> Any:
    """A record given as (field, value) pairs, or anything indexed by field name."""
    return dict(x) if isinstance(x, tuple) and not hasattr(x, "keys") else x
NO_TOK: Tok = (0, 0)


@dataclass(frozen=True)
class Write:
    """The spec's ``Write(r, b, toks, aux)``: a write in flight to one rank."""

    r: int
    b: int
    toks: tuple[Tok, ...]
    aux: int


class Move(NamedTuple):
    """One step of ``Next``: TLC's label, the request (and session, write) it
    concerns, the world after.  A write landing (``WriteLand``) is labelled
    ``Next``, as TLC labels it."""

    action: str
    req: int
    session: int | None
    world: World
    write: Write | None = None


@dataclass(frozen=True)
class World:
    params: Params
    totals: tuple[int, ...]                       # Total, index r - 1
    n_blocks: int
    faults: frozenset[str]
    rx: rxm.RxState
    tx: Mapping[int, txm.TxRoom]
    data: tuple[tuple[tuple[Tok, ...], ...], ...]  # data[s-1][b-1][k-1]
    aux: tuple[tuple[int, ...], ...]               # aux[s-1][b-1]
    cache: Mapping[tuple[int, int], tuple[Tok, ...]]
    handed: Mapping[tuple[int, int], tuple[Tok, ...]]
    ctl: Mapping[tuple[int, int], tuple[Ctl, ...]]
    st: Mapping[tuple[int, int], tuple[StatusMsg, ...]]
    wire: tuple[frozenset[Write], ...]
    faults_used: frozenset[str] = frozenset()
    errors: frozenset[str] = frozenset()
    reqs: range = field(default=range(0))
    dead: frozenset[int] = frozenset()             # txDead: sessions the sender counts as dead

    @classmethod
    def initial(cls, params: Params, totals: tuple[int, ...], n_blocks: int,
                faults: frozenset[str] | set[str] = frozenset()) -> World:
        reqs = range(1, len(totals) + 1)
        keys = [(r, s) for r in reqs for s in params.sessions]
        bad = set(faults) - set(FAULTS)
        if bad:
            raise ValueError(f"unknown faults {sorted(bad)}; expected a subset of {FAULTS}")
        return cls(params, tuple(totals), n_blocks, frozenset(faults),
                   rxm.RxState.initial(params, reqs, range(1, n_blocks + 1)),
                   {r: txm.TxRoom.initial(params, r, totals[r - 1]) for r in reqs},
                   tuple(tuple((NO_TOK,) * params.block_size for _ in range(n_blocks))
                         for _ in params.sessions),
                   tuple((0,) * n_blocks for _ in params.sessions),
                   {k: () for k in keys}, {k: () for k in keys},
                   {k: () for k in keys}, {k: () for k in keys},
                   tuple(frozenset() for _ in params.sessions), reqs=reqs)

    @classmethod
    def from_model(cls, variant: str, constants: str) -> World:
        """The initial world of a model, from its constants as the manifest
        writes them: ``"NReq=2 NSess=1 Total=<<3, 2>> BlockSize=1 ..."``."""
        c = dict(re.findall(r"(\w+)=(<<[^>]*>>|\{[^}]*\}|\S+)", constants))
        try:
            totals = tuple(int(x) for x in re.findall(r"\d+", c["Total"]))
            faults = frozenset(x.strip() for x in c["Faults"].strip("{}").split(",") if x.strip())
            params = Params(variant, n_sessions=int(c["NSess"]), block_size=int(c["BlockSize"]),
                            init_tokens=int(c["InitTokens"]), cap=int(c["Cap"]),
                            order=AllocOrder(c["Order"]), resume_order=ResumeOrder(c["ResumeOrder"]),
                            barrier=c["Barrier"] == "True",
                            fork_sender=c.get("ForkSender", "False") == "True")
            if int(c["NReq"]) != len(totals):
                raise ValueError(f"NReq={c['NReq']} but Total has {len(totals)} entries")
            return cls.initial(params, totals, int(c["NBlocks"]), faults)
        except KeyError as e:
            raise ValueError(f"model constants {constants!r} lack {e.args[0]}") from None

    # -- observations the core asks for ------------------------------------
    def aux_seen(self, r: int) -> dict[int, int]:
        out = {}
        for s in self.params.sessions:
            b = self.rx.first_block(r, s)
            out[s] = self.aux[s - 1][b - 1] if b is not None else 0
        return out

    def writes_in_flight(self, r: int) -> bool:
        return any(w.r == r for ws in self.wire for w in ws)

    def read_buf(self, s: int, blocks: tuple[int, ...], n: int) -> tuple[Tok, ...]:
        bsz = self.params.block_size
        m = self.params.read_len(blocks, n)
        return tuple(self.data[s - 1][blocks[i // bsz] - 1][i % bsz] for i in range(m))

    # -- carrying out effects ---------------------------------------------
    def apply(self, effects: tuple[Effect, ...], **core: Any) -> World:
        """The world after the core's ``effects`` (``core``: its new rx/tx)."""
        w = replace(self, **core)
        cache, handed = dict(w.cache), dict(w.handed)
        ctl, st = dict(w.ctl), dict(w.st)
        wire = list(w.wire)
        errors = set(w.errors)
        for e in effects:
            if isinstance(e, Read):
                if any(x.b in e.blocks for x in self.wire[e.session - 1]):
                    errors.add("read_during_write")
                toks = self.read_buf(e.session, e.blocks, e.tokens)
                key = (e.req, e.session)
                if e.purpose == "cache":
                    cache[key] = cache[key] + toks
                elif e.purpose == "handoff":
                    handed[key] = cache[key] + toks
            elif isinstance(e, SendCtl):
                ctl[(e.req, e.session)] += (e.msg,)
            elif isinstance(e, SendStatus):
                st[(e.req, e.session)] += (e.msg,)
            elif isinstance(e, WriteBlock):
                toks = tuple((e.req, e.first + k) for k in range(e.count))
                wire[e.session - 1] = wire[e.session - 1] | {Write(e.req, e.block, toks, e.aux)}
            elif isinstance(e, CancelWrites):
                wire = [frozenset(x for x in ws if x.r != e.req) for ws in wire]
        return replace(w, cache=cache, handed=handed, ctl=ctl, st=st, wire=tuple(wire),
                       errors=frozenset(errors))

    def _tx(self, room: txm.TxRoom) -> dict[int, txm.TxRoom]:
        tx = dict(self.tx)
        tx[room.req] = room
        return tx

    def _pop_ctl(self, r: int, s: int) -> World:
        ctl = dict(self.ctl)
        ctl[(r, s)] = ctl[(r, s)][1:]
        return replace(self, ctl=ctl)

    def _pop_st(self, r: int, s: int) -> World:
        st = dict(self.st)
        st[(r, s)] = st[(r, s)][1:]
        return replace(self, st=st)

    # -- the spec's Next ----------------------------------------------------
    def successors(self) -> list[tuple[str, World]]:
        """Every step of ``Next`` from this world: (TLC's action label, world after)."""
        return [(m.action, m.world) for m in self.moves()]

    def moves(self) -> list[Move]:
        """Every step of ``Next``, with the request, session and write it concerns."""
        out: list[Move] = []
        avail = self.faults - self.faults_used
        for r in self.reqs:
            for step in rxm.receiver_init(self.rx, r):
                out.append(Move(step.action, r, None, self.apply(step.effects, rx=step.state)))
            for step in rxm.receiver_poll(self.rx, r, self.aux_seen(r)):
                nw = self.apply(step.effects, rx=step.state)
                if step.action == "PollReadOnly" and nw.errors == self.errors:
                    continue        # the spec takes a read-only poll only for its hazard
                out.append(Move(step.action, r, step.session, nw))
            for step in rxm.prefill_done(self.rx, r):
                out.append(Move(step.action, r, None, self.apply(step.effects, rx=step.state)))
            room = self.tx[r]
            for ts in (txm.sender_start_round(room, dead=self.dead),
                       txm.sender_end_round(room, self.writes_in_flight(r))):
                if ts is not None:
                    out.append(Move(ts.action, r, None, self.apply(ts.effects, tx=self._tx(ts.state))))
            if self.dead and self.params.fork_sender:
                out.extend(self._fail_dead_moves(room))
            if self.params.queued_rounds:
                busy = self.writes_in_flight(r)
                ts = txm.sender_queued_round(room, busy)
                if ts is not None:
                    out.append(Move(ts.action, r, None, self.apply(ts.effects, tx=self._tx(ts.state))))
                for s in self.params.sessions:
                    ts = txm.sender_write_session(room, s, self.dead, busy)
                    if ts is not None:
                        out.append(Move(ts.action, r, s,
                                        self.apply(ts.effects, tx=self._tx(ts.state))))
            if "write_error" in avail:
                # the fork's sender: the write to one session failed (each a step);
                # queued rounds: the session whose batch is being written
                for d in (self.params.sessions if self.params.fork_sender else (None,)):
                    if self.params.queued_rounds and d is not None \
                            and not any(x.r == r for x in self.wire[d - 1]):
                        continue
                    ts = txm.write_error(room, d)
                    if ts is None:
                        break
                    nw = self.apply(ts.effects, tx=self._tx(ts.state))
                    dead = self.dead if ts.dead is None else self.dead | {ts.dead}
                    out.append(Move(ts.action, r, d, replace(
                        nw, faults_used=self.faults_used | {"write_error"}, dead=dead)))
            # the encode side's death may fail every open room, one per step
            # (the spec's Heartbeat: enabled again after it fired)
            if "heartbeat" in self.faults and (both := heartbeat(self.rx, room, r)) is not None:
                step, ts = both
                nw = self.apply(ts.effects + step.effects, rx=step.state, tx=self._tx(ts.state))
                out.append(Move("Heartbeat", r, None,
                                replace(nw, faults_used=self.faults_used | {"heartbeat"})))
            if "abort" in avail:
                for step in rxm.abort(self.rx, r):
                    nw = self.apply(step.effects, rx=step.state)
                    out.append(Move(step.action, r, None, replace(nw, faults_used=self.faults_used | {"abort"})))
            for s in self.params.sessions:
                if self.ctl[(r, s)]:
                    m = self.ctl[(r, s)][0]
                    if m.type == "init":
                        ts = txm.sender_recv_init(room, s, m)
                    elif m.type == "resume":
                        ts = txm.sender_recv_resume(room, s, m)
                    else:
                        ts = txm.sender_recv_abort(room, s, m, self.writes_in_flight(r))
                    if ts is not None:
                        nw = self._pop_ctl(r, s)
                        out.append(Move(ts.action, r, s, nw.apply(ts.effects, tx=nw._tx(ts.state))))
                if self.st[(r, s)]:
                    step = rxm.deliver_status(self.rx, r, s, self.st[(r, s)][0])
                    out.append(Move(step.action, r, s, self._pop_st(r, s).apply(step.effects, rx=step.state)))
        for s in self.params.sessions:
            for x in self.wire[s - 1]:
                out.append(Move("Next", x.r, s, self.land(s, x), x))
        return out

    def _fail_dead_moves(self, room: txm.TxRoom) -> list[Move]:
        """SenderFailDead: every dead session ``d`` the room's order may meet
        first, every set of live sessions written before it; their writes
        land within the step (a write into a block its session does not
        hold is recorded as ``write_into_unowned``)."""
        out: list[Move] = []
        r = room.req
        live = [s for s in self.params.sessions if s not in self.dead]
        for d in sorted(self.dead):
            for k in range(len(live) + 1):
                for written in itertools.combinations(live, k):
                    ts = txm.sender_fail_dead(room, self.dead, d, written)
                    if ts is None:
                        continue
                    nw = self.apply(ts.effects, tx=self._tx(ts.state))
                    errors = set(nw.errors)
                    q = self.rx.requests[r]
                    for s in written:
                        for x in list(nw.wire[s - 1]):
                            if x.r != r:
                                continue
                            if q.phase not in (rxm.QUEUED, rxm.ABORTING) \
                                    or x.b not in q.session(s).blocks:
                                errors.add("write_into_unowned")
                            nw = nw.land(s, x)
                    out.append(Move(ts.action, r, d, replace(nw, errors=frozenset(errors))))
        return out

    # -- the spec's properties, on one world ----------------------------------
    def safety_violations(self) -> list[str]:
        """The spec's safety invariants (but TypeOK) this world violates, by name."""
        sess, reqs = self.params.sessions, self.reqs
        bad = []
        held = {(r, s): set(self.rx.held(r, s)) for r in reqs for s in sess}
        if any(held[(a, s)] & held[(b, s)] for s in sess for a in reqs for b in reqs if a != b):
            bad.append("NoSharedBlock")
        if any(held[(r, s)] & set(self.rx.pools[s - 1].free) for r in reqs for s in sess):
            bad.append("NoFreeAndHeld")
        if any(len(set(p.free)) != len(p.free) for p in self.rx.pools):
            bad.append("NoDoubleFree")
        for s in sess:
            for w in self.wire[s - 1]:
                q = self.rx.requests[w.r]
                if q.phase not in (rxm.QUEUED, rxm.ABORTING) or w.b not in q.session(s).blocks:
                    bad.append("WritesOnlyIntoOwnedBlocks")
                    break
            else:
                continue
            break
        if "write_into_unowned" in self.errors and "WritesOnlyIntoOwnedBlocks" not in bad:
            bad.append("WritesOnlyIntoOwnedBlocks")
        if "read_during_write" in self.errors:
            bad.append("NoReadDuringWrite")
        for r in reqs:
            source = tuple((r, i) for i in range(1, self.totals[r - 1] + 1))
            if self.rx.requests[r].phase in (rxm.PREFILL, rxm.DONE) and any(
                    self.handed[(r, s)] != source for s in sess):
                bad.append("HandedDataIsSource")
                break
        if any(self.rx.requests[r].session(s).resumes > self.tx[r].partials
               for r in reqs for s in sess):
            bad.append("AtMostOneResumePerRound")
        # the fault containment (checked where a model names it)
        # (FaultHits: a heartbeat loss counts once per room it failed)
        hits = len(self.faults_used - {"heartbeat"}) + sum(
            self.tx[r].phase == txm.DEAD for r in reqs)
        if sum(self.rx.requests[r].phase == rxm.FAILED for r in reqs) > hits:
            bad.append("EachFailureHasAFault")
        return bad

    def ended(self, r: int) -> bool:
        """The spec's ``Ended(r)``: handed to prefill, or failed."""
        return self.rx.requests[r].phase in (rxm.PREFILL, rxm.DONE, rxm.FAILED)

    def dead_wait(self, r: int) -> bool:
        """The spec's ``DeadWait(r)``: the receiver waits for data, the sender
        for a resume, and no message is on its way."""
        return (self.rx.requests[r].phase == rxm.QUEUED and self.tx[r].phase == txm.AWAIT
                and all(not self.ctl[(r, s)] and not self.st[(r, s)] for s in self.params.sessions))

    def land(self, s: int, x: Write) -> World:
        """WriteLand(s, w): the slots it covers are overwritten, the aux row if it carries one."""
        data = [list(map(list, d)) for d in self.data]
        aux = [list(a) for a in self.aux]
        for k, t in enumerate(x.toks):
            data[s - 1][x.b - 1][k] = t
        if x.aux > 0:
            aux[s - 1][x.b - 1] = x.aux
        wire = list(self.wire)
        wire[s - 1] = wire[s - 1] - {x}
        return replace(self, data=tuple(tuple(tuple(b) for b in d) for d in data),
                       aux=tuple(tuple(a) for a in aux), wire=tuple(wire))

    # -- the spec's variables -----------------------------------------------
    def to_spec(self) -> dict[str, Any]:
        """The spec's variables as plain, hashable values."""
        reqs, sess = list(self.reqs), list(self.params.sessions)

        def per_rs(f: Any) -> tuple[tuple[Any, ...], ...]:
            return tuple(tuple(f(r, s) for s in sess) for r in reqs)

        def rxs(r: int, s: int) -> rxm.RxSession:
            return self.rx.requests[r].session(s)

        def txs(r: int, s: int) -> txm.TxSession:
            return self.tx[r].session(s)

        def stmsg(m: StatusMsg) -> Rec:
            return _rec({"status": int(m.status), "round": m.round, "sent": m.sent, "total": m.total})

        def ctlmsg(m: Ctl) -> Rec:
            return _rec({"type": m.type, "blocks": m.blocks, "sent": m.sent, "alloc": m.alloc,
                         "round": m.round})

        corrected = self.params.variant == "corrected"

        def design(r: int, s: int) -> Rec:
            """rxDesign[r][s]: the design's own receiver state, in its module's shape."""
            x = rxs(r, s)
            if corrected:        # ResumeCorrected: the newest status, the last round cached
                return _rec({"info": stmsg(x.info), "round": x.round})
            return _rec({"info": stmsg(x.info), "pSent": x.p_sent, "pTotal": x.p_total,
                         "flag": x.flag, "lastIdx": x.last_idx, "lastSent": x.last_sent})

        return {
            "free": tuple(p.free for p in self.rx.pools),
            "data": self.data, "aux": self.aux,
            "rxPhase": tuple(self.rx.requests[r].phase for r in reqs),
            "rxStatus": per_rs(lambda r, s: int(rxs(r, s).status)),
            "rxDesign": per_rs(design),
            "rxBlocks": per_rs(lambda r, s: rxs(r, s).blocks),
            "rxCache": per_rs(lambda r, s: self.cache[(r, s)]),
            "rxResumes": per_rs(lambda r, s: rxs(r, s).resumes),
            "handed": per_rs(lambda r, s: self.handed[(r, s)]),
            "txPhase": tuple(self.tx[r].phase for r in reqs),
            "txSent": per_rs(lambda r, s: txs(r, s).sent),
            "txAlloc": per_rs(lambda r, s: txs(r, s).alloc),
            "txDst": per_rs(lambda r, s: txs(r, s).dst),
            "txReady": per_rs(lambda r, s: txs(r, s).ready),
            "txTok": per_rs(lambda r, s: txs(r, s).tok),
            "txRound": tuple(self.tx[r].round for r in reqs),
            "txPartials": tuple(self.tx[r].partials for r in reqs),
            "txPartial": tuple(self.tx[r].partial for r in reqs),
            "txDead": self.dead,
            "txQueue": tuple(self.tx[r].queue for r in reqs),
            "txLeft": tuple(frozenset(self.tx[r].left) for r in reqs),
            "ctl": per_rs(lambda r, s: tuple(ctlmsg(m) for m in self.ctl[(r, s)])),
            "st": per_rs(lambda r, s: tuple(stmsg(m) for m in self.st[(r, s)])),
            "wire": tuple(frozenset(_rec({"r": w.r, "b": w.b, "toks": w.toks, "aux": w.aux})
                                    for w in ws) for ws in self.wire),
            "faultsUsed": self.faults_used,
            "errors": self.errors,
        }

    @classmethod
    def from_spec(cls, params: Params, totals: tuple[int, ...], n_blocks: int,
                  faults: frozenset[str], v: Mapping[str, Any]) -> World:
        """A world from the spec's variables: ``to_spec``'s shapes, except that
        records are anything indexed by field name (a dict, a parsed TLC record)."""
        reqs = range(1, len(totals) + 1)
        sess = params.sessions

        def stmsg(x: Any) -> StatusMsg:
            m = _fields(x)
            return StatusMsg(m["status"], m["round"], m["sent"], m["total"])

        def ctlmsg(x: Any) -> Ctl:
            m = _fields(x)
            return Ctl(m["type"], tuple(m["blocks"]), m["sent"], m["alloc"], m["round"])

        def write(x: Any) -> Write:
            m = _fields(x)
            return Write(m["r"], m["b"], toks(m["toks"]), m["aux"])

        def session(i: int, s: int) -> rxm.RxSession:
            # rxDesign[r][s] has the fields of the design's module; the core keeps
            # every design's fields, the others at their initial values
            m = _fields(v["rxDesign"][i][s - 1])
            d = dict(m.items())
            init = rxm.RxSession()
            return rxm.RxSession(
                status=v["rxStatus"][i][s - 1], info=stmsg(d["info"]),
                blocks=tuple(v["rxBlocks"][i][s - 1]), cached=len(v["rxCache"][i][s - 1]),
                p_sent=d["pSent"] if "pSent" in d else init.p_sent,
                p_total=d["pTotal"] if "pTotal" in d else init.p_total,
                flag=d["flag"] if "flag" in d else init.flag,
                last_idx=tuple(d["lastIdx"]) if "lastIdx" in d else init.last_idx,
                last_sent=d["lastSent"] if "lastSent" in d else init.last_sent,
                round=d["round"] if "round" in d else init.round,
                resumes=v["rxResumes"][i][s - 1])

        requests = {}
        for r in reqs:
            i = r - 1
            requests[r] = rxm.RxRequest(v["rxPhase"][i], tuple(session(i, s) for s in sess))
        rx = rxm.RxState(params, requests, tuple(Pool(tuple(f)) for f in v["free"]))
        tx = {}
        for r in reqs:
            i = r - 1
            tx[r] = txm.TxRoom(params, r, totals[i], v["txPhase"][i], tuple(
                txm.TxSession(sent=v["txSent"][i][s - 1], alloc=v["txAlloc"][i][s - 1],
                              dst=tuple(v["txDst"][i][s - 1]), ready=v["txReady"][i][s - 1],
                              tok=v["txTok"][i][s - 1]) for s in sess),
                v["txRound"][i], v["txPartials"][i], v["txPartial"][i],
                v["txQueue"][i] if "txQueue" in v else 0,
                frozenset(v["txLeft"][i]) if "txLeft" in v else frozenset())

        def toks(x: Any) -> tuple[Tok, ...]:
            return tuple((int(t[0]), int(t[1])) for t in x)

        keys = [(r, s) for r in reqs for s in sess]
        return cls(
            params, tuple(totals), n_blocks, frozenset(faults), rx, tx,
            tuple(tuple(toks(b) for b in d) for d in v["data"]),
            tuple(tuple(a) for a in v["aux"]),
            {(r, s): toks(v["rxCache"][r - 1][s - 1]) for r, s in keys},
            {(r, s): toks(v["handed"][r - 1][s - 1]) for r, s in keys},
            {(r, s): tuple(ctlmsg(m) for m in v["ctl"][r - 1][s - 1]) for r, s in keys},
            {(r, s): tuple(stmsg(m) for m in v["st"][r - 1][s - 1]) for r, s in keys},
            tuple(frozenset(write(w) for w in ws) for ws in v["wire"]),
            frozenset(v["faultsUsed"]), frozenset(v["errors"]), reqs,
            frozenset(v.get("txDead", ())))


def status_name(x: int) -> str:
    return Status(x).label
