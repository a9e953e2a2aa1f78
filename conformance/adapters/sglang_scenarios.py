"""Scenarios that drive the fork's real code through ``Cluster``.

Every scenario is one fixed interleaving.  The common rhythm (``settle``) is
the one a loaded server shows: each tick the language scheduler loop runs
twice (it polls far more often than a transfer round takes), then the encode
side runs its receive loop, sends what is ready and runs its transfer worker,
then prefill finishes for the requests handed over (unless held).  A run stops
when a tick changes nothing (no message in flight, allocator, queues and
statuses unchanged for QUIET_TICKS ticks in a row): that is either the end or
a hang, and the trace ends there.  A hung request keeps being polled during
those ticks, as it would be in a server, so a bounded-response check
(``resumespec conform --bound K``) sees it wait.

Sizes are tiny (block_size 4 tokens, hidden size 2) so that traces stay small;
the protocol does not depend on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .sglang_cluster import Cluster, Config

MAX_TICKS = 40
QUIET_TICKS = 5     # a run ends after this many ticks without progress


def fingerprint(c: Cluster) -> tuple:
    """Everything whose change means progress."""
    ranks = tuple((
        tuple(lr.alloc.free_blocks),
        tuple((q.req.bootstrap_room, tuple(q.embedding_indices or ()))
              for q in lr.transfer_queue.queue),
        tuple(q.req.bootstrap_room for q in lr.prealloc.queue),
        tuple(sorted((k, int(v)) for k, v in lr.mgr.request_status.items())),
        tuple(sorted(lr.handed)), tuple(sorted(lr.finished)),
    ) for lr in c.ranks)
    return (
        ranks,
        tuple(c.enc_alloc.free_blocks),
        tuple(sorted((k, int(v)) for k, v in c.enc_mgr.request_status.items())),
        tuple(c.enc_ready),
        c.pending_messages(),
    )


def tick(c: Cluster, hold: set[int] = frozenset()) -> None:
    c.language_step()
    c.language_step()
    c.encode_step()
    for room in sorted(c.handed):
        if room not in hold:
            c.prefill_done(room)


def settle(c: Cluster, hold: set[int] = frozenset(), max_ticks: int = MAX_TICKS) -> int:
    """Tick until nothing changes QUIET_TICKS times in a row; returns the ticks run."""
    quiet = 0
    for n in range(1, max_ticks + 1):
        before = fingerprint(c)
        tick(c, hold)
        quiet = quiet + 1 if fingerprint(c) == before else 0
        if quiet >= QUIET_TICKS:
            return n
    return max_ticks


def submit(c: Cluster, room: int, total: int, ready: bool = True) -> None:
    c.encode_submit(room, total)
    c.language_submit(room)
    if ready:
        c.encode_ready(room)


@dataclass
class Scenario:
    name: str
    config: Config
    drive: Callable[[Cluster], None]
    shows: str
    in_corpus: bool = True   # recorded by default and committed with a verdict


# ---------------------------------------------------------------------------
def two_rounds(c: Cluster) -> None:
    # 10 tokens, the receiver allocates one block (4 tokens) first: round 1
    # sends 4 (partial), the resume asks for the 6 left (2 blocks), round 2.
    submit(c, 1, 10)
    settle(c)


def stale_aux(c: Cluster) -> None:
    # Three short requests leave their aux rows (total = 3) in blocks 0, 1, 2.
    # Then a 10-token request starts in block 3 and resumes into blocks 0, 1,
    # whose aux row still says 3 (rounds after the first never write it).
    for room in (1, 2, 3):
        submit(c, room, 3)
        settle(c)
    submit(c, 4, 10)
    settle(c)


def capped_resume(c: Cluster) -> None:
    # The adapter caps each resume allocation at one block (Cap = 1 of the
    # model; the engine's allocator never does this): 14 tokens need rounds
    # of 4, 4, 4, 2, that is three resumes.
    submit(c, 1, 14)
    settle(c)


def alloc_fail_resume(c: Cluster) -> None:
    # Pool of 3 blocks: request 1 (10 tokens) and requests 2, 3 (3 tokens,
    # held in prefill for a while) take one block each.  Request 1's resume
    # needs 2 blocks while none is free.
    submit(c, 1, 10)
    submit(c, 2, 3)
    submit(c, 3, 3)
    for _ in range(3):
        tick(c, hold={2, 3})
    settle(c)
    # Two more short requests: with a doubly freed block in the free list,
    # both get the same block.
    submit(c, 4, 3)
    submit(c, 5, 3)
    settle(c)


def resume_needs_whole_pool(c: Cluster) -> None:
    # Pool of 2 blocks, one 10-token request: it holds 1 block and its resume
    # needs 2.  Freeing first makes room; allocating first can never succeed.
    submit(c, 1, 10)
    settle(c)


def abort(c: Cluster) -> None:
    # Pool of 2 blocks.  Requests 1 and 2 are initialised; request 1 is
    # aborted before its embedding is ready, its block is freed and reused
    # by request 3; the sender, never told, later writes request 1 into it.
    submit(c, 1, 3, ready=False)
    submit(c, 2, 3, ready=False)
    c.language_step()
    c.encode_step()
    c.abort(1)
    c.language_step()
    submit(c, 3, 3, ready=False)
    c.language_step()
    c.encode_step()
    c.encode_ready(3)
    c.encode_step()
    c.encode_ready(1)
    c.encode_step()
    c.encode_ready(2)
    settle(c)


def heartbeat(c: Cluster) -> None:
    # Round 1 of a 10-token request lands, the receiver resumes, and the
    # encode side dies before the second round: the language side's
    # heartbeat checker finds /health failing and fails the room.
    submit(c, 1, 10)
    tick(c)
    c.language_step()
    c.encode_dies()
    settle(c)


def tp2_two_rounds(c: Cluster) -> None:
    # Two language ranks (two receiving sessions of one room); the encode
    # side takes both resumes before its worker runs.
    submit(c, 1, 10)
    settle(c)


def tp2_resume_race(c: Cluster) -> None:
    # Two language ranks resume in the same scheduler step; the encode side's
    # receive loop takes the first resume and its transfer worker runs before
    # the second resume is taken (two threads on the encode side).
    submit(c, 1, 10)
    tick(c)                      # init on both ranks, round 1 to both sessions
    c.language_step()            # both ranks see Transferring and resume
    c.encode_recv(max_messages=1)
    c.encode_work()
    settle(c)


def write_error(c: Cluster) -> None:
    # Round 1 of a 10-token request lands; the transfer engine fails the
    # resumed round's writes: the sender fails the room and says so.
    submit(c, 1, 10)
    tick(c)
    c.fail_next_write()
    settle(c)


def dead_session(c: Cluster) -> None:
    # After the write error the sender counts rank 1's session as dead: a
    # later request on it is failed at once, without any write (until the
    # rank registers its buffers again).
    write_error(c)
    submit(c, 2, 3)
    settle(c)


def tp2_write_error(rank: int) -> Callable[[Cluster], None]:
    # Two language ranks; the resumed round's write to `rank`'s session fails.
    # The fork's sender writes the room's sessions one after the other: it
    # tells only the failing session Failed (the other rank learns it through
    # the all-reduce of the poll) and counts that session as dead.
    def run(c: Cluster) -> None:
        submit(c, 1, 10)
        tick(c)
        c.fail_next_write(rank)
        settle(c)
    return run


def tp2_dead_session(rank: int) -> Callable[[Cluster], None]:
    # After the write error of tp2_write_error, a new request on both ranks:
    # the sender fails it at its first round, telling only the dead session.
    def run(c: Cluster) -> None:
        tp2_write_error(rank)(c)
        submit(c, 2, 3)
        settle(c)
    return run


def tp2_abort(c: Cluster) -> None:
    # Two language ranks abort request 1 after its first round; request 2
    # then takes blocks as they come free.
    submit(c, 1, 10)
    tick(c)
    c.abort(1)
    submit(c, 2, 3)
    settle(c)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("two_rounds", Config(nblocks=4), two_rounds,
             "a request longer than the default allocation: two rounds, one resume"),
    Scenario("stale_aux", Config(nblocks=4), stale_aux,
             "the resume blocks carry aux rows left by earlier requests"),
    Scenario("capped_resume", Config(nblocks=4, cap=1), capped_resume,
             "resume allocations capped at one block (adapter knob, Cap=1): three resumes"),
    Scenario("alloc_fail_resume", Config(nblocks=3), alloc_fail_resume,
             "the resume allocation fails while other requests hold the pool"),
    Scenario("resume_needs_whole_pool", Config(nblocks=2), resume_needs_whole_pool,
             "the resume needs every block of the pool, one of which the request holds"),
    Scenario("abort", Config(nblocks=2, faults=("abort",)), abort,
             "a request aborted on the language side before its round"),
    Scenario("heartbeat", Config(nblocks=4, faults=("heartbeat",)), heartbeat,
             "the encode side dies after the resume; heartbeat loss fails the room"),
    Scenario("tp2_two_rounds", Config(nblocks=4, nsess=2), tp2_two_rounds,
             "two language ranks, one long request: both ranks resume, then one round"),
    Scenario("tp2_resume_race", Config(nblocks=4, nsess=2), tp2_resume_race,
             "two language ranks; the sender's worker runs between the two resumes"),
    Scenario("write_error", Config(nblocks=4, faults=("write_error",)), write_error,
             "the transfer engine fails the second round's writes"),
    Scenario("dead_session", Config(nblocks=4, faults=("write_error",)), dead_session,
             "after a write error, a new request on the same session"),
    # two ranks and a write error: the fork's sender (ForkSender), and
    # without the barrier its queued rounds (QueuedRounds)
    Scenario("tp2_write_error", Config(nblocks=4, nsess=2, faults=("write_error",)),
             tp2_write_error(1),
             "two language ranks; the resumed round's write to rank 1 fails"),
    Scenario("tp2_write_error_rank2", Config(nblocks=4, nsess=2, faults=("write_error",)),
             tp2_write_error(2),
             "two language ranks; the resumed round's write to rank 2 fails after rank 1's "
             "was written"),
    Scenario("tp2_dead_session", Config(nblocks=4, nsess=2, faults=("write_error",)),
             tp2_dead_session(1),
             "two language ranks; after rank 1's write error, a new request"),
    Scenario("tp2_dead_second_session", Config(nblocks=4, nsess=2, faults=("write_error",)),
             tp2_dead_session(2),
             "two language ranks; after rank 2's write error, a new request: the sender "
             "writes rank 1 before it meets the dead session"),
    Scenario("tp2_abort", Config(nblocks=4, nsess=2, faults=("abort",)), tp2_abort,
             "two language ranks abort a request between its rounds", in_corpus=False),
)}
