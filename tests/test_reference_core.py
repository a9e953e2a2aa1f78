"""The reference takes no protocol decision: it is the core plus an interpreter.

A spy sits on the protocol core's step functions and on everything the
reference can do to the world (allocate and free blocks in the pool
checkers, read blocks, send control and status messages, issue writes).
Over seeded runs of every design, with faults, several ranks and every
allocator order, each step of the run must be explained by the core:

* the receiver's and every room's state after the step is the state of an
  outcome the core returned during that step (a chain of them from the state
  before: the corrected poll takes a cache and a resume step per rank), or
  unchanged (then only the outcomes that change nothing, ``PollReadOnly``,
  are carried out);
* the effects the interpreter carried out are exactly those outcomes'
  effects, in order (plus the host's ``NoBlocks``: the allocator said None);
* every allocation, free, read, message and write the world saw is one of
  those effects, in the same order, with the same blocks and fields.

A reference that sized a round, picked a resume's blocks, retried, sent a
status or freed a block on its own would break one of these.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import pytest

from resumespec.reference import protocol as core
from resumespec.reference import scheduler
from resumespec.reference.effects import NoBlocks
from resumespec.reference.protocol import (
    Alloc,
    Free,
    Read,
    SendCtl,
    SendStatus,
    WriteBlock,
)
from resumespec.reference.protocol.designs import VARIANTS
from resumespec.reference.world import Config, World

RX_FUNCS = ("receiver_init", "deliver_status", "receiver_poll", "prefill_done", "abort")
TX_FUNCS = ("sender_recv_init", "sender_recv_resume", "sender_recv_abort", "sender_start_round",
            "sender_end_round", "write_error")


class SpiedWorld(World):
    """A world that records the core's answers and the world's actions per step."""

    def __init__(self, cfg: Config, calls: list, seen: list) -> None:
        super().__init__(cfg)
        self.calls, self.seen = calls, seen
        self.fx.journal = []
        net = self.transport
        send_ctl, send_status, issue = net.send_ctl, net.send_status, net.issue_write

        def spy_ctl(req, s, msg):
            seen.append(("ctl", req, s, msg))
            send_ctl(req, s, msg)

        def spy_status(req, s, msg):
            seen.append(("status", req, s, msg))
            send_status(req, s, msg)

        def spy_issue(req, s, src, dst, tokens, pos, with_aux):
            seen.append(("write", req, s, dst, pos, tokens, with_aux))
            return issue(req, s, src, dst, tokens, pos, with_aux)
        net.send_ctl, net.send_status, net.issue_write = spy_ctl, spy_status, spy_issue
        for s, checker in self.checkers.items():
            for name in ("on_alloc", "on_free", "on_read"):
                orig = getattr(checker, name)

                def spy(req, blocks, _orig=orig, _name=name, _s=s):
                    seen.append((_name, _s, tuple(blocks)))
                    _orig(req, blocks)
                setattr(checker, name, spy)

    def apply(self, step: dict) -> None:
        rx0, rooms0 = self.receiver.rx, dict(self.sender.rooms)
        del self.calls[:], self.seen[:], self.fx.journal[:]
        super().apply(step)
        check_step(self, step, rx0, rooms0)


def _chain(start, end, answers) -> list:
    """The outcomes leading from ``start`` to ``end``: (input, outcome) pairs
    the core returned, walked back from the end state."""
    out = []
    cur = end
    while cur is not start:
        found = [(inp, o) for inp, o in answers if o.state is cur]
        assert found, "the host holds a state no core call of this step returned"
        inp, o = found[-1]
        out.append(o)
        cur = inp
    return out[::-1]


def _observed(world: World, effects: list) -> list:
    """What the world must have seen, effect by effect."""
    bs = world.cfg.block_size
    out: list = []
    for e in effects:
        if isinstance(e, Alloc):
            out.append(("on_alloc", e.session, e.blocks))
        elif isinstance(e, Free) and e.blocks:
            out.append(("on_free", e.session, e.blocks))
        elif isinstance(e, Read):
            n = max(0, min(e.tokens, len(e.blocks) * bs))
            touched = e.blocks[:-(-n // bs)] if n else (e.blocks[:1] if e.purpose == "probe" else ())
            out.append(("on_read", e.session, tuple(touched)))
        elif isinstance(e, SendCtl):
            out.append(("ctl", e.req, e.session, e.msg))
        elif isinstance(e, SendStatus):
            out.append(("status", e.req, e.session, e.msg))
        elif isinstance(e, WriteBlock):
            out.append(("write", e.req, e.session, e.block, e.first, e.count, e.aux > 0))
            out.append(("on_write_issue",))
    return [o for o in out if o != ("on_write_issue",)]


def check_step(world: World, step: dict, rx0, rooms0) -> None:
    rx_answers = [(inp, o) for kind, inp, outs in world.calls if kind == "rx" for o in outs]
    chosen = _chain(rx0, world.receiver.rx, rx_answers)
    if not chosen:      # a poll where no rank acts: every rank's read-only step (state unchanged)
        chosen = [o for inp, o in rx_answers if inp is rx0 and o.state is rx0]
    tx_chosen = []
    for req, room in world.sender.rooms.items():
        answers = [(inp, o) for kind, inp, outs in world.calls if kind == ("tx", req) for o in outs]
        tx_chosen += _chain(rooms0[req], room, answers)
    expected = [e for o in tx_chosen + chosen for e in o.effects]
    carried = [e for e in world.fx.journal if not isinstance(e, NoBlocks)]
    assert carried == expected, (step, carried, expected)
    for e in world.fx.journal:
        if isinstance(e, NoBlocks):   # only where the core asked the allocator, or a resume is due
            assert step["step"] in ("ReceiverInit", "ReceiverPoll"), step
    assert world.seen == _observed(world, expected), (step, world.seen)


@pytest.fixture
def spied(monkeypatch):
    calls: list = []
    seen: list = []

    def wrap_rx(name):
        f = getattr(core, name)

        def spy(rx, *a, **k):
            res = f(rx, *a, **k)
            calls.append(("rx", rx, res if isinstance(res, list) else [res]))
            return res
        monkeypatch.setattr(core, name, spy)

    def wrap_tx(name):
        f = getattr(core, name)

        def spy(tx, *a, **k):
            res = f(tx, *a, **k)
            calls.append((("tx", tx.req), tx, [res] if res is not None else []))
            return res
        monkeypatch.setattr(core, name, spy)

    for n in RX_FUNCS:
        wrap_rx(n)
    for n in TX_FUNCS:
        wrap_tx(n)
    hb = core.heartbeat

    def spy_hb(rx, tx, r):
        res = hb(rx, tx, r)
        if res is not None:
            calls.append(("rx", rx, [res[0]]))
            calls.append((("tx", tx.req), tx, [res[1]]))
        return res
    monkeypatch.setattr(core, "heartbeat", spy_hb)
    monkeypatch.setattr(scheduler, "World", lambda cfg: SpiedWorld(cfg, calls, seen))
    return calls


CASES = [
    dict(tokens=[7, 5], block_size=2, pool=4, sessions=2, cap=1, order="fifo"),
    dict(tokens=[6], block_size=1, pool=3, sessions=3, cap=0, order="random",
         faults=("abort", "alloc_fail")),
    dict(tokens=[9, 4], block_size=3, pool=3, sessions=2, cap=2, order="lifo",
         faults=("write_error", "heartbeat"), resume_order="free_first", barrier=False),
    dict(tokens=[5, 3, 4], block_size=2, pool=5, sessions=2, cap=1, order="random",
         faults=("alloc_fail", "abort", "heartbeat"), resume_order="alloc_first"),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_step_is_the_cores(spied, variant, case):
    kw = dict(CASES[case])
    if variant == "corrected":
        kw["barrier"] = True
    steps = 0
    for seed in range(4):
        r = scheduler.run(Config(variant=variant, seed=seed, hidden=8, **kw))
        steps += len(r.steps)
        assert r.outcome != "error"
    assert steps > 40


def test_the_spy_catches_a_decision_outside_the_core(spied, monkeypatch):
    """The check above fails when the reference decides something itself: here
    the sender writes one token fewer than the core's round asked for."""
    from resumespec.reference import effects

    orig = effects.Interpreter._WriteBlock

    def short(self, e, picks, action):
        if e.count > 1:
            e = WriteBlock(e.req, e.session, e.block, e.first, e.count - 1, e.aux)
        orig(self, e, picks, action)
    monkeypatch.setattr(effects.Interpreter, "_WriteBlock", short)
    with pytest.raises(AssertionError):
        scheduler.run(Config(variant="corrected", tokens=[7], block_size=2, pool=4, cap=1,
                             hidden=8, seed=0))


def test_the_hosts_use_no_sizing_or_decision_helper():
    """Belt and braces for the spy: the receiver and sender hosts name none of
    the helpers a host would need to size a round or a resume, merge a status
    or take a historical design's decision itself."""
    from pathlib import Path

    import resumespec.reference.receiver as rxmod
    import resumespec.reference.sender as txmod
    helpers = ("round_tokens", "round_may_start", "round_writes", "resume_tokens", "blocks_for",
               "nblk", "historical_view", "merge_status", "alloc_choices", "corrected_cache_due")
    for mod in (rxmod, txmod):
        text = Path(mod.__file__).read_text()
        assert not [h for h in helpers if h in text], mod.__name__
