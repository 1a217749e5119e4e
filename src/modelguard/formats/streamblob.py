"""A blob over decompressed content that is too large to hold in memory.

`StreamBlob` decodes its compressed range once to learn its size and keep its head and tail
(what content sniffing reads), then serves other reads by decoding forward from where the
last read ended, restarting from the beginning only for a read that goes backwards. Readers
that move forward (the pickle machine, joblib's inline arrays, a legacy torch stream) pay
about one extra decoding pass; memory stays at a few MiB whatever the output size.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelguard.config import Limits
from modelguard.errors import LimitExceeded
from modelguard.formats.blob import Blob
from modelguard.formats.compress import (
    RATIO_FLOOR,
    TruncatedStream,
    iter_range,
)

__all__ = ["StreamBlob"]

_HEAD = 8 * 1024 * 1024
_TAIL = 64 * 1024 + 22  # a zip end record and the longest comment
_KEEP = 4 * 1024 * 1024  # bytes kept behind the last read, for short backward reads
# Each backward read decodes from the start again; a reader that keeps jumping back (an
# archive nested in a large compressed member, read out of order) is stopped, not waited on.
MAX_RESTARTS = 32


class StreamBlob:
    """Decoded `[start, start + length)` of `blob`, read on demand (see the module docstring).

    Raises (from the constructor):
        LimitExceeded: output above ``max_total_bytes`` or ``max_ratio``.
        TruncatedStream: the stream is cut or corrupt (``partial`` holds its first bytes).
    """

    def __init__(self, blob: Blob, start: int, length: int, codec: str, limits: Limits) -> None:
        self._source = (blob, start, length, codec)
        self._limits = limits
        by_ratio = limits.max_ratio * max(length, RATIO_FLOOR)
        if limits.max_total_bytes <= by_ratio:
            self._cap = (limits.max_total_bytes, "max_total_bytes")
        else:
            self._cap = (by_ratio, "max_ratio")
        head = bytearray()
        tail = bytearray()
        total = 0
        try:
            for piece in self._pieces():
                total += len(piece)
                if len(head) < _HEAD:
                    head += piece[: _HEAD - len(head)]
                tail += piece
                if len(tail) > 2 * _TAIL:
                    del tail[: len(tail) - _TAIL]
        except TruncatedStream as exc:
            raise TruncatedStream(str(exc), exc.offset, bytes(head)) from None
        self._size = total
        self._head = bytes(head)
        self._tail = bytes(tail[-_TAIL:])
        self._tail_start = total - len(self._tail)
        self._gen: Iterator[bytes] | None = None
        self._buf = bytearray()
        self._buf_start = 0  # output offset of self._buf[0]
        self._restarts = 0

    def _pieces(self) -> Iterator[bytes]:
        blob, start, length, codec = self._source
        return iter_range(blob, start, length, codec, self._limits, self._cap)

    @property
    def size(self) -> int:
        """Return the decoded size."""
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        """Return up to `n` decoded bytes from `offset`.

        Raises:
            LimitExceeded: more than `MAX_RESTARTS` backward reads (``max_total_bytes``: each
                one decodes the content again).
        """
        if offset < 0 or n <= 0 or offset >= self._size:
            return b""
        end = min(offset + n, self._size)
        if end <= len(self._head):
            return self._head[offset:end]
        if offset >= self._tail_start:
            return self._tail[offset - self._tail_start : end - self._tail_start]
        if self._gen is None or offset < self._buf_start:
            if self._gen is not None:
                self._restarts += 1
                if self._restarts > MAX_RESTARTS:
                    raise LimitExceeded(
                        "max_total_bytes",
                        f"more than {MAX_RESTARTS} backward reads in large compressed content "
                        "(each decodes it again)",
                        offset,
                    )
            self._gen = self._pieces()
            self._buf = bytearray()
            self._buf_start = 0
        while self._buf_start + len(self._buf) < end:
            piece = next(self._gen, None)
            if piece is None:
                break
            self._buf += piece
            # Keep only what a reader may still ask for: a little before `offset`.
            drop = min(offset - _KEEP, self._buf_start + len(self._buf) - _KEEP) - self._buf_start
            if drop > 0:
                del self._buf[:drop]
                self._buf_start += drop
        lo = offset - self._buf_start
        return bytes(self._buf[lo : lo + (end - offset)])
