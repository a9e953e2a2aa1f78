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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
                 device: torch.device, pin: bool = False) -> None:
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
        # One byte row per block, holding its four areas one after the other
        # (each 8-byte aligned): a full block's write is then one copy. The
        # areas are typed views, shaped as the engine's buffers.
        def pad8(n: int) -> int:
            return -(-n // 8) * 8
        e_bytes = block_size * hidden * 2
        f_bytes = block_size * 4
        m_bytes = 3 * block_size * 4
        self._f_off = pad8(e_bytes)
        self._m_off = self._f_off + pad8(f_bytes)
        self._a_off = self._m_off + pad8(m_bytes)
        self.row_bytes = self._a_off + AUX_SLOTS * 4
        # empty + zero_ (not zeros): the pages are touched now, as a registered
        # transfer buffer's are, not on the first write of a run.
        self.rows = torch.empty(num_blocks, self.row_bytes, dtype=torch.uint8, **kw).zero_()
        r = self.rows
        self.embeddings = r[:, :e_bytes].view(torch.bfloat16).unflatten(1, (block_size, hidden))
        self.fill_ids = r[:, self._f_off:self._f_off + f_bytes].view(torch.int32)
        self.mrope = r[:, self._m_off:self._m_off + m_bytes].view(torch.int32).unflatten(1, (3, block_size))
        self.aux = r[:, self._a_off:].view(torch.int32)
        # the rows as 8-byte words, one view per block made once: a full
        # block's write is then a single copy call (on a GPU the Python that
        # issues a copy costs about as much as a 7 MiB copy itself)
        words = r.view(torch.int64)
        self._row_words = list(words.unbind(0))
        self._row_words_no_aux = list(words[:, :self._a_off // 8].unbind(0))

    @property
    def nbytes(self) -> int:
        return self.rows.numel()

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

    def copy_block_from(self, src: "BlockBuffers", src_block: int, dst_block: int,
                        tokens: int, with_aux: bool) -> None:
        """One data write: the first ``tokens`` slots of a source block land in
        a destination block (plus the aux row when the sender writes it)."""
        if tokens == self.block_size and src.row_bytes == self.row_bytes:
            # a full block: its areas are one byte range (the aux row last)
            if with_aux:
                self._row_words[dst_block].copy_(src._row_words[src_block], non_blocking=True)
            else:
                self._row_words_no_aux[dst_block].copy_(src._row_words_no_aux[src_block], non_blocking=True)
            return
        copy_bytes(self.embeddings[dst_block, :tokens], src.embeddings[src_block, :tokens])
        copy_bytes(self.fill_ids[dst_block, :tokens], src.fill_ids[src_block, :tokens])
        copy_bytes(self.mrope[dst_block, :, :tokens], src.mrope[src_block, :, :tokens])
        if with_aux:
            copy_bytes(self.aux[dst_block], src.aux[src_block])

    # -- reads ----------------------------------------------------------
    def aux_total(self, block: int) -> int:
        return int(self.aux[block, AUX_TOTAL].item())

    def gather(self, blocks: list[int], length: int | None = None) -> Gathered:
        """Read ``length`` tokens from ``blocks`` in order, ``min(block_size,
        remaining)`` per block. Without ``length`` the length comes from aux
        slot 0 of the first block, as the engine's ``get_buf`` does (a stale
        value when that block's aux row was not written for this request)."""
        if not blocks:
            raise ValueError("gather needs at least one block")
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
