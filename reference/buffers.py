"""Block buffers shaped like the engine's.

A pool of ``num_blocks`` blocks; block ``b`` holds

* ``embeddings[b]``: ``block_size x hidden`` (bf16), one row per token,
* ``fill_ids[b]``: ``block_size`` int32, one id per token,
* ``mrope[b]``: ``3 x block_size`` int32, three position rows,
* ``aux[b]``: 16 int32; slot 0 = total embedding length, slot 1 = mrope delta.

The sender owns one pool of *source* buffers; every receiving session
(language rank) owns its own pool of *destination* buffers. Blocks are never
cleared: a freed block keeps whatever its last writer put there.

All copies are whole-block slice copies (``Tensor.copy_``), never per-token
Python work, so the same code is the data path on CPU and on CUDA.

Landing. A data write lands through ``land``. In per-block landing it is
copied at once (one copy per block). In batched landing its bytes wait in
the pool's landing queue until something reads the pool (``aux_total``,
``gather``, ``gather_into`` first ``settle``) or the run ends; ``settle``
then copies every queued write with a few tensor ops (``copy_blocks_from``:
one slice per run of consecutive blocks, or one ``index_copy_``). The
protocol bookkeeping (which write landed when, the self-checks) happens at
each landing either way, and no read sees a pool with queued writes, so a
run is the same, byte for byte, in both modes. Read a pool's bytes only
through those three methods (or call ``settle`` first).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .device import synchronize

AUX_SLOTS = 16
AUX_TOTAL = 0        # slot holding the embedding's total length
AUX_MROPE_DELTA = 1  # slot holding the mrope position delta


def _raw_width(t: torch.Tensor) -> int:
    """The widest integer (bytes) that divides the tensor's size and offset."""
    nbytes = t.numel() * t.element_size()
    offset = t.storage_offset() * t.element_size()
    for width in (8, 4, 2, 1):
        if nbytes % width == 0 and offset % width == 0:
            return width
    return 1


_INT_OF_WIDTH = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}


def copy_bytes(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst.copy_(src)`` for same-dtype tensors; contiguous ones are copied
    as flat raw integers, as wide as alignment allows (a plain memory copy:
    the bf16 copy kernel is several times slower on CPU)."""
    if dst.is_contiguous() and src.is_contiguous() and dst.dtype == src.dtype:
        width = min(_raw_width(dst), _raw_width(src))
        if width >= dst.element_size():
            dtype = _INT_OF_WIDTH[width]
            dst.reshape(-1).view(dtype).copy_(src.reshape(-1).view(dtype), non_blocking=True)
            return
    dst.copy_(src, non_blocking=True)


class BlockCopy(NamedTuple):
    """One data write as a pool sees it: the first ``tokens`` token slots of
    source block ``src_block`` (and its aux row when ``with_aux``) into
    destination block ``dst_block``."""

    src_block: int
    dst_block: int
    tokens: int
    with_aux: bool


def index_tensor(values: list[int], device: torch.device) -> torch.Tensor:
    """Block ids as a long tensor on ``device``. Built on the host and sent
    without waiting (a blocking upload would first wait for every copy
    already queued on the GPU); a no-op move on CPU."""
    return torch.tensor(values, dtype=torch.long).to(device, non_blocking=True)


def copy_rows(dst: torch.Tensor, src: torch.Tensor, pairs: list[tuple[int, int]]) -> int:
    """``dst[d] = src[s]`` for every ``(s, d)`` in ``pairs`` (distinct ``d``),
    rows of 2-D tensors, in as few tensor ops as possible. Either one slice
    copy per run of pairs whose source and destination rows are both
    consecutive, or one ``index_copy_`` (after uploading its block ids, and
    gathering the source rows first when they are not consecutive): whichever
    issues fewer ops, slices on a tie (a slice is a plain memory copy; on CPU
    ``index_copy_`` moves bytes at about half that speed, on a GPU every op
    costs a launch). Returns the number of tensor ops issued."""
    pairs = sorted(pairs)
    runs: list[list[int]] = []   # [first src row, first dst row, rows]
    for s, d in pairs:
        if runs and s == runs[-1][0] + runs[-1][2] and d == runs[-1][1] + runs[-1][2]:
            runs[-1][2] += 1
        else:
            runs.append([s, d, 1])
    srcs = [s for s, _ in pairs]
    src_consecutive = srcs == list(range(srcs[0], srcs[0] + len(srcs)))
    index_ops = 2 if src_consecutive else 4
    if len(runs) <= index_ops:
        for s, d, n in runs:
            dst[d:d + n].copy_(src[s:s + n], non_blocking=True)
        return len(runs)
    if src_consecutive:
        rows = src[srcs[0]:srcs[0] + len(srcs)]       # a view: no gathered copy
    else:
        rows = src.index_select(0, index_tensor(srcs, src.device))
    dst.index_copy_(0, index_tensor([d for _, d in pairs], dst.device), rows)
    return index_ops


@dataclass
class Gathered:
    """Tokens read out of a list of blocks (what ``get_buf`` returns)."""

    embeddings: torch.Tensor   # tokens x hidden
    fill_ids: torch.Tensor     # tokens
    mrope: torch.Tensor        # 3 x tokens
    aux_total: int             # slot 0 of the first block's aux row

    @property
    def tokens(self) -> int:
        return int(self.fill_ids.shape[0])


class BlockBuffers:
    """One pool of blocks on one device."""

    def __init__(self, num_blocks: int, block_size: int, hidden: int,
                 device: torch.device, pin: bool = False, batch_landings: bool = False,
                 time_landings: bool = False) -> None:
        if num_blocks < 1 or block_size < 1 or hidden < 1:
            raise ValueError("num_blocks, block_size and hidden must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.hidden = hidden
        self.device = device
        # Pinned host memory makes a host->GPU copy asynchronous and faster;
        # only meaningful when the pool stays on the CPU while a GPU exists.
        pin = bool(pin and device.type == "cpu" and torch.cuda.is_available())
        kw = dict(device=device, pin_memory=pin) if pin else dict(device=device)
        # One byte row per block, holding its three data areas one after the
        # other (each 8-byte aligned), so that a full block's data is one
        # contiguous range and so is a run of consecutive blocks: a full
        # block's write is one copy, a run of them one copy too. The aux rows
        # live in a tensor of their own (a write carries one only in the first
        # block of the first round). The areas are typed views, shaped as the
        # engine's buffers.
        def pad8(n: int) -> int:
            return -(-n // 8) * 8
        e_bytes = block_size * hidden * 2
        f_bytes = block_size * 4
        m_bytes = 3 * block_size * 4
        self._f_off = pad8(e_bytes)
        self._m_off = self._f_off + pad8(f_bytes)
        self.row_bytes = self._m_off + pad8(m_bytes)
        # empty + zero_ (not zeros): the pages are touched now, as a registered
        # transfer buffer's are, not on the first write of a run.
        self.rows = torch.empty(num_blocks, self.row_bytes, dtype=torch.uint8, **kw).zero_()
        r = self.rows
        self.embeddings = r[:, :e_bytes].view(torch.bfloat16).unflatten(1, (block_size, hidden))
        self.fill_ids = r[:, self._f_off:self._f_off + f_bytes].view(torch.int32)
        self.mrope = r[:, self._m_off:self._m_off + m_bytes].view(torch.int32).unflatten(1, (3, block_size))
        self.aux = torch.empty(num_blocks, AUX_SLOTS, dtype=torch.int32, **kw).zero_()
        # the rows as 8-byte words, and one view per block made once: a full
        # block's write is then a single copy call (on a GPU the Python that
        # issues a copy costs about as much as a 7 MiB copy itself)
        self._words = r.view(torch.int64)
        self._row_words = list(self._words.unbind(0))
        self._aux_rows = list(self.aux.unbind(0))
        # landing (see the module docstring)
        self.batch_landings = batch_landings
        self._queued: list[tuple[BlockBuffers, BlockCopy]] = []
        self.landing_batches: list[tuple[BlockBuffers, list[BlockCopy]]] = []  # what settle copied
        self.landing_ops = 0          # copy ops issued by landings (both modes)
        self.time_landings = time_landings
        self._landing_seconds = 0.0
        self._landing_events: list = []

    @property
    def nbytes(self) -> int:
        return self.rows.numel() + self.aux.numel() * self.aux.element_size()

    # -- writes ---------------------------------------------------------
    def load(self, block: int, embeddings: torch.Tensor, fill_ids: torch.Tensor,
             mrope: torch.Tensor) -> None:
        """Fill the first ``len(fill_ids)`` token slots of ``block``."""
        n = int(fill_ids.shape[0])
        self.embeddings[block, :n].copy_(embeddings)
        self.fill_ids[block, :n].copy_(fill_ids)
        self.mrope[block, :, :n].copy_(mrope)

    def write_aux(self, block: int, total: int, mrope_delta: int) -> None:
        self.aux[block, AUX_TOTAL] = total
        self.aux[block, AUX_MROPE_DELTA] = mrope_delta

    def copy_block_from(self, src: BlockBuffers, src_block: int, dst_block: int,
                        tokens: int, with_aux: bool) -> int:
        """One data write: the first ``tokens`` slots of a source block land in
        a destination block (plus the aux row when the sender writes it).
        Returns the number of copy ops issued."""
        if tokens == self.block_size and src.row_bytes == self.row_bytes:
            # a full block: its areas are one byte range
            self._row_words[dst_block].copy_(src._row_words[src_block], non_blocking=True)
            if with_aux:
                self._aux_rows[dst_block].copy_(src._aux_rows[src_block], non_blocking=True)
                return 2
            return 1
        copy_bytes(self.embeddings[dst_block, :tokens], src.embeddings[src_block, :tokens])
        copy_bytes(self.fill_ids[dst_block, :tokens], src.fill_ids[src_block, :tokens])
        copy_bytes(self.mrope[dst_block, :, :tokens], src.mrope[src_block, :, :tokens])
        if with_aux:
            copy_bytes(self.aux[dst_block], src.aux[src_block])
            return 4
        return 3

    def copy_blocks_from(self, src: BlockBuffers, copies: list[BlockCopy]) -> int:
        """Several data writes, in order, as a few tensor ops. Writes into
        distinct blocks commute, so each stretch of the list without a
        repeated destination block is copied at once: full blocks as rows of
        8-byte words, then the aux rows of those that carry one (both with
        ``copy_rows``), a partial block by its areas. A repeated destination
        (a block written again, e.g. after it was freed and given out anew)
        starts a new stretch, so the later write wins as it does one by one.
        Returns the number of tensor ops issued."""
        ops = 0
        stretch: list[BlockCopy] = []
        targets: set[int] = set()
        for c in copies:
            if c.dst_block in targets:
                ops += self._copy_stretch(src, stretch)
                stretch, targets = [], set()
            stretch.append(c)
            targets.add(c.dst_block)
        if stretch:
            ops += self._copy_stretch(src, stretch)
        return ops

    def _copy_stretch(self, src: BlockBuffers, copies: list[BlockCopy]) -> int:
        ops = 0
        full, aux = [], []
        for c in copies:
            if c.tokens == self.block_size and src.row_bytes == self.row_bytes:
                full.append((c.src_block, c.dst_block))
                if c.with_aux:
                    aux.append((c.src_block, c.dst_block))
            else:   # a partial block: only its first tokens' slots
                ops += self.copy_block_from(src, c.src_block, c.dst_block, c.tokens, c.with_aux)
        if full:
            ops += copy_rows(self._words, src._words, full)
        if aux:
            ops += copy_rows(self.aux, src.aux, aux)
        return ops

    # -- landing ----------------------------------------------------------
    def land(self, src: BlockBuffers, copy: BlockCopy) -> None:
        """A data write lands: copied now (per-block landing) or queued until
        the next read or ``settle`` (batched landing)."""
        if self.batch_landings:
            if self._queued and self._queued[-1][0] is not src:
                self.settle()  # one source per batch
            self._queued.append((src, copy))
        else:
            self.settle()  # nothing queued unless the mode was switched mid-run
            self._timed(self.copy_block_from, src, *copy)

    def settle(self) -> None:
        """Copy every queued write's bytes (one batch)."""
        if not self._queued:
            return
        src = self._queued[0][0]
        batch = [c for _, c in self._queued]
        self._queued = []
        self.landing_batches.append((src, batch))
        self._timed(self.copy_blocks_from, src, batch)

    @property
    def queued_landings(self) -> int:
        return len(self._queued)

    def _timed(self, copy, *args) -> None:
        if not self.time_landings:
            self.landing_ops += copy(*args)
        elif self.device.type == "cuda":
            # device time of the copies, not their launch: CUDA events around them
            start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            start.record()
            self.landing_ops += copy(*args)
            end.record()
            self._landing_events.append((start, end))
        else:
            t0 = time.perf_counter()
            self.landing_ops += copy(*args)
            self._landing_seconds += time.perf_counter() - t0

    @property
    def landing_seconds(self) -> float:
        """Time the landings' copies took (``time_landings``): wall time on
        CPU, device time between CUDA events on a GPU."""
        if self._landing_events:
            synchronize(self.device)
            return self._landing_seconds + sum(a.elapsed_time(b) for a, b in self._landing_events) / 1e3
        return self._landing_seconds

    # -- reads ----------------------------------------------------------
    def aux_total(self, block: int) -> int:
        self.settle()
        return int(self.aux[block, AUX_TOTAL].item())

    def gather(self, blocks: list[int], length: int | None = None) -> Gathered:
        """Read ``length`` tokens from ``blocks`` in order, ``min(block_size,
        remaining)`` per block. Without ``length`` the length comes from aux
        slot 0 of the first block, as the engine's ``get_buf`` does (a stale
        value when that block's aux row was not written for this request)."""
        if not blocks:
            raise ValueError("gather needs at least one block")
        self.settle()
        aux_total = self.aux_total(blocks[0])
        want = aux_total if length is None else length
        want = max(0, min(want, len(blocks) * self.block_size))
        full, rest = divmod(want, self.block_size)
        idx = torch.tensor(blocks[:full], dtype=torch.long, device=self.device)
        parts_e = [self.embeddings.index_select(0, idx).reshape(-1, self.hidden)]
        parts_f = [self.fill_ids.index_select(0, idx).reshape(-1)]
        parts_m = [self.mrope.index_select(0, idx).permute(1, 0, 2).reshape(3, -1)]
        if rest:
            b = blocks[full]
            parts_e.append(self.embeddings[b, :rest])
            parts_f.append(self.fill_ids[b, :rest])
            parts_m.append(self.mrope[b, :, :rest])
        return Gathered(torch.cat(parts_e), torch.cat(parts_f), torch.cat(parts_m, dim=1), aux_total)

    def gather_into(self, blocks: list[int], length: int, out_e: torch.Tensor,
                    out_f: torch.Tensor, out_m: torch.Tensor, offset: int) -> None:
        """Copy ``length`` tokens from ``blocks`` straight into preallocated
        output tensors at token ``offset`` (one slice copy per block)."""
        self.settle()
        done = 0
        for b in blocks:
            n = min(self.block_size, length - done)
            if n <= 0:
                break
            lo = offset + done
            copy_bytes(out_e[lo:lo + n], self.embeddings[b, :n])
            copy_bytes(out_f[lo:lo + n], self.fill_ids[b, :n])
            copy_bytes(out_m[:, lo:lo + n], self.mrope[b, :, :n])
            done += n


def token_ids(req: int, total: int, device: torch.device) -> torch.Tensor:
    """Identity of each token: ``req * ID_STRIDE + position`` (1-based), so a
    read can name which request and position every token slot came from."""
    return (torch.arange(1, total + 1, dtype=torch.int32, device=device)
            + req * ID_STRIDE)


ID_STRIDE = 1 << 20  # positions per request in a token id; requests < 2**11


def make_source_embedding(req: int, total: int, hidden: int, device: torch.device,
                          seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A request's embedding, fill ids and mrope rows, deterministic per seed."""
    gen = torch.Generator(device="cpu").manual_seed(seed * 7919 + req)
    emb = torch.randn(total, hidden, generator=gen, dtype=torch.bfloat16)
    ids = token_ids(req, total, torch.device("cpu"))
    pos = torch.arange(total, dtype=torch.int32)
    mrope = torch.stack([pos, pos + 1, pos + 2]) + req
    return emb.to(device), ids.to(device), mrope.to(device)
