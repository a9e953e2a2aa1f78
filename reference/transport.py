"""Channels and data writes between the sender and the receiving sessions.

The messages are the protocol core's (``protocol.Ctl``, ``protocol.StatusMsg``):

* ``ctl[(req, session)]``: language -> encode (init, resume, abort), FIFO;
* ``st[(req, session)]``: encode -> language (status), FIFO;
* ``wire[session]``: one-sided data writes in flight to that rank's pool.
  They land in any order (``land_write`` picks one); nothing tells the
  receiver when a write lands.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .protocol.designs import STATUSES, merge_status  # noqa: F401 (merge_status re-exported)
from .protocol.designs import Status as StatusValue

# Status values, ordered as in the engine (base/conn.py): the one table
FAILED, BOOTSTRAPPING, WAITING, TRANSFERRING, SUCCESS = (int(s) for s in StatusValue)
STATUS_NAMES = dict(enumerate(STATUSES))


@dataclass
class Write:
    """One block write: ``tokens`` token slots of a source block (and the aux
    row when ``with_aux``) to a destination block of one rank."""

    id: int
    req: int
    session: int
    src_block: int
    dst_block: int
    tokens: int
    pos: int          # 1-based token position the sender believes it writes first
    with_aux: bool


@dataclass
class Transport:
    ctl: dict[tuple[int, int], deque] = field(default_factory=dict)
    st: dict[tuple[int, int], deque] = field(default_factory=dict)
    wire: dict[int, dict[int, Write]] = field(default_factory=dict)
    next_write_id: int = 0
    bytes_moved: int = 0

    def send_ctl(self, req: int, session: int, msg) -> None:
        self.ctl.setdefault((req, session), deque()).append(msg)

    def send_status(self, req: int, session: int, msg) -> None:
        self.st.setdefault((req, session), deque()).append(msg)

    def head_ctl(self, req: int, session: int):
        q = self.ctl.get((req, session))
        return q[0] if q else None

    def head_status(self, req: int, session: int):
        q = self.st.get((req, session))
        return q[0] if q else None

    def issue_write(self, req: int, session: int, src_block: int, dst_block: int,
                    tokens: int, pos: int, with_aux: bool) -> Write:
        w = Write(self.next_write_id, req, session, src_block, dst_block, tokens, pos, with_aux)
        self.next_write_id += 1
        self.wire.setdefault(session, {})[w.id] = w
        return w

    def pending_writes(self, req: int | None = None) -> list[Write]:
        return [w for ws in self.wire.values() for w in ws.values()
                if req is None or w.req == req]

    def drop_writes(self, req: int) -> list[Write]:
        """Writes of a room that will never land (write error, dead sender)."""
        dropped = self.pending_writes(req)
        for w in dropped:
            del self.wire[w.session][w.id]
        return dropped

    def take_write(self, session: int, write_id: int) -> Write:
        return self.wire[session].pop(write_id)
