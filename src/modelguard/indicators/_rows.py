"""Counts of the screen bits per block of 64-bit words, without a population count.

The screen bits of a float type (`_screen.Bits.screen`) are split into groups of one bit per
byte at the same position (`_groups`). After an AND with a group's mask, the sum of a row of
128 words holds each screen bit's count (at most 128) in the byte the bit sits in: one 64-bit
add sums every lane at once, and shifting and folding the row sums gives the counts.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelguard.indicators._screen import Bits

__all__ = ["EXPONENT_WORD", "block_counts"]

# Exponent bits of every value in a 64-bit word, for the types whose screen and exponent
# share one AND (see `_screen._scan`; float16 and bfloat16 exponents would overflow into the next
# value's screen-bit count).
EXPONENT_WORD = {4: 0x7F8000007F800000, 8: 0x7FF0000000000000}


def block_counts(
    data: npt.NDArray[np.uint8],
    bits: Bits,
    block: int,
    scratch: npt.NDArray[np.uint8],
    exponent: int = 0,
) -> npt.NDArray[np.int64]:
    """Return the number of set screen bits per block of `data` (a multiple of 8 bytes; the
    last block may be shorter).

    With `exponent` (the exponent bits of a 64-bit word; one screen group only), the AND
    keeps them too and leaves the masked words in `scratch` for the caller.
    """
    import numpy as np

    words = data.view(np.uint64)
    t = scratch[: len(data)].view(np.uint64)
    starts = _steps(len(words), _ROW_WORDS)
    rows: npt.NDArray[np.uint64] | None = None
    for mask, shift in _groups(bits.itemsize, bits.screen):
        np.bitwise_and(words, np.uint64(mask | exponent), out=t)
        lane = _lane_sums(np.add.reduceat(t, starts), mask, shift)
        rows = lane if rows is None else rows + lane
    assert rows is not None
    return np.add.reduceat(rows.astype(np.int64), _steps(len(rows), block // _ROW_BYTES))


_ROW_WORDS = 128
_ROW_BYTES = 8 * _ROW_WORDS
"""Words summed per row of the screen: each screen bit's count in a row (at most 128) fits
the byte it sits in, so one 64-bit add sums every lane at once."""


@functools.cache
def _groups(itemsize: int, screen: int) -> tuple[tuple[int, int], ...]:
    """Split the screen bits of a 64-bit word into (mask, shift) groups of one bit per byte.

    Within a group every bit has the same position in its byte (`shift`): after the AND and
    the row sums, shifting right by it leaves one count per byte, each below 256.
    """
    per_word = 0
    for k in range(8 // itemsize):
        per_word |= screen << (8 * itemsize * k)
    groups = []
    for shift in range(8):
        mask = per_word & (0x0101010101010101 << shift)
        if mask:
            groups.append((mask, shift))
    return tuple(groups)


@functools.lru_cache(maxsize=64)
def _steps(length: int, step: int) -> npt.NDArray[np.intp]:
    """Return the read-only index array 0, step, 2 * step, ... below `length` (cached)."""
    import numpy as np

    out = np.arange(0, length, step)
    out.flags.writeable = False
    return out


def _lane_sums(rows: npt.NDArray[np.uint64], mask: int, shift: int) -> npt.NDArray[np.uint64]:
    """Return, per row sum, the total of the byte-wide counts of the screen bits in `mask`
    (all at bit `shift` of their byte); other bits of the sums (exponents) are dropped."""
    import numpy as np

    low = np.uint64(0x00FF00FF00FF00FF)
    x = rows >> np.uint64(shift) if shift else rows
    x &= np.uint64((mask >> shift) * 0xFF)  # the bytes holding counts
    x = (x & low) + ((x >> np.uint64(8)) & low)  # four 16-bit lanes, each below 2**9
    x *= np.uint64(0x0001000100010001)  # their sum lands in the top lane (wraps mod 2**64)
    x >>= np.uint64(48)
    return x
