"""An engine loop driving the corrected design through the protocol core.

One request of 7 tokens, two language ranks (TP=2) with 3 blocks of 2
tokens each, init allocation of one block, at most one block per resume:
the embedding goes over in 4 rounds.  Plain Python containers stand in for
the engine's buffers, its ZMQ queues and its RDMA writes.
Run: python docs/examples/engine_loop.py
"""
from collections import deque

from resumespec.reference import protocol as core

P = core.Params("corrected", n_sessions=2, block_size=2, init_tokens=2, cap=1)
REQ, TOTAL, POOL = 1, 7, range(3)
SOURCE = [f"e{i}" for i in range(1, TOTAL + 1)]             # the encoder's embedding rows

rx = core.RxState.initial(P, [REQ], POOL)                   # language side, all ranks
tx = core.TxRoom.initial(P, REQ, TOTAL)                     # encode side, the room
buf = {s: {b: [None] * P.block_size for b in POOL} for s in P.sessions}  # block contents
aux = {s: {b: 0 for b in POOL} for s in P.sessions}         # aux row of each block
ctl, st, wire = deque(), deque(), deque()                   # to encode, to language, RDMA
cache = {s: [] for s in P.sessions}                         # rows copied out so far
handed = {}


def carry_out(effects):
    """The host's half: do what the core asked, in order."""
    for e in effects:
        if isinstance(e, core.SendCtl):
            ctl.append(e)
        elif isinstance(e, core.SendStatus):
            st.append(e)
        elif isinstance(e, core.WriteBlock):
            wire.append(e)
        elif isinstance(e, core.Read):
            bs = P.block_size
            rows = [buf[e.session][e.blocks[i // bs]][i % bs] for i in range(e.tokens)]
            if e.purpose == "cache":
                cache[e.session] += rows
            elif e.purpose == "handoff":
                handed[e.session] = cache[e.session] + rows
        elif isinstance(e, core.HandOff):
            print(f"req {e.req}: handed to prefill")


first = core.receiver_init(rx, REQ)[0]                      # allocate init blocks, send init
rx = first.state
carry_out(first.effects)
for _tick in range(100):                                    # a stalled protocol stops here
    if handed:
        break
    while ctl:                                              # encode: init / resume arrive
        m = ctl.popleft()
        recv = core.sender_recv_init if m.msg.type == "init" else core.sender_recv_resume
        tx = recv(tx, m.session, m.msg).state
    if (step := core.sender_start_round(tx)) is not None:   # encode: write a round
        tx = step.state
        carry_out(step.effects)
        print(f"round {tx.round}: " + ", ".join(
            f"rank {w.session} block {w.block} <- tokens {w.first}..{w.first + w.count - 1}"
            for w in wire))
    while wire:                                             # the writes land
        w = wire.popleft()
        buf[w.session][w.block][:w.count] = SOURCE[w.first - 1:w.first - 1 + w.count]
        aux[w.session][w.block] = w.aux or aux[w.session][w.block]
    if (step := core.sender_end_round(tx, writes_in_flight=bool(wire))) is not None:
        tx = step.state
        carry_out(step.effects)
    while st:                                               # language: statuses arrive
        m = st.popleft()
        rx = core.deliver_status(rx, m.req, m.session, m.msg).state
    while steps := core.receiver_poll(rx, REQ):             # language: the scheduler polls
        rx = steps[0].state
        carry_out(steps[0].effects)
        if handed:
            break
rx = core.prefill_done(rx, REQ)[0].state                    # blocks back to the pools
ok = all(handed[s] == SOURCE for s in P.sessions)
print(f"rounds: {tx.round}; handed on every rank: {' '.join(handed[1])}; equals source: {ok}")
print("free blocks after prefill:", {s: list(rx.pools[s - 1].free) for s in P.sessions})
raise SystemExit(0 if ok else 1)
