"""The every-element screen of the tensor pass: exact value counts and per-block triggers.

Every value of a window gets a few vectorised operations that release the GIL:

* four integer reductions (minimum and maximum of the unsigned and of the signed view) give the
  largest and smallest magnitude of the window, which prove, for most windows, that it holds no
  NaN, infinity, zero, subnormal or "wild" value (a magnitude of at least `wild_abs_min`, which
  trained weights never reach but raw bytes stored as floats usually do); exact counts run only
  in windows that hold any;
* one AND and one population count over 64-bit words give, per block of `screen_block_bytes`,
  the number of set screen bits (bits 7 and 15 of each float32: uniform in trained weights, zero
  in ASCII text and mostly zero in executables and headers), whose z-scores against one half
  (single blocks and pairs of adjacent blocks) flag blocks for the exact tests.

The exact tests (histogram, carving, printable runs) run in `weights` on flagged blocks only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelguard.indicators.carve import Carved
from modelguard.indicators.stego import WindowStats

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelguard.indicators.settings import IndicatorSettings

__all__ = ["FLOATS", "INTS", "Bits", "Win", "float_window", "int_window"]


@dataclass(frozen=True, slots=True)
class Bits:
    """Bit layout of a float type and its screen bits.

    Attributes:
        itemsize: bytes per value.
        exponent: exponent field mask.
        mantissa: mantissa field mask.
        min_normal: bit pattern (magnitude) of the smallest normal value.
        screen: screen bits of one value (uniform in trained weights, p = 1/2 each).
        screen_bits: number of bits in `screen`.
        wild_cap: the largest `wild_abs_min` that applies to the type.
    """

    itemsize: int
    exponent: int
    mantissa: int
    min_normal: int
    screen: int
    screen_bits: int
    wild_cap: float


FLOATS = {
    "F32": Bits(4, 0x7F800000, 0x007FFFFF, 0x00800000, 0x8080, 2, math.inf),
    "F64": Bits(8, 0x7FF0000000000000, 0x000FFFFFFFFFFFFF, 1 << 52, 0x8080, 2, math.inf),
    # float16: bits 0, 1 and 7 (bit 7: text in the low byte clears it; close to uniform in weights)
    "F16": Bits(2, 0x7C00, 0x03FF, 0x0400, 0x0083, 3, 2048.0),
    # bfloat16: bit 7 is an exponent bit, the top mantissa bits are not uniform: bit 0 only
    "BF16": Bits(2, 0x7F80, 0x007F, 0x0080, 0x0001, 1, math.inf),
}
INTS = {"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass
class Win:
    """Counts of one window (byte range within the tensor) and what the exact tests found."""

    start: int
    end: int
    n: int
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    subnormal: int = 0
    zero: int = 0
    low16_zero: int = 0
    first: int = 0
    uniform: bool = True
    flagged: bool = False
    screen_z: float = 0.0
    blocks: list[tuple[int, int]] = field(default_factory=list)  # flagged byte ranges
    stats: WindowStats | None = None
    carved: list[tuple[int, Carved]] = field(default_factory=list)
    runs: list[tuple[int, int, str]] = field(default_factory=list)  # (offset, length, stream)


def _scalar(bits: Bits, value: float) -> int:
    """Return the magnitude bit pattern of `value` in the float type of `bits`."""
    import numpy as np

    types = {2: np.float16, 4: np.float32, 8: np.float64}
    if bits.screen_bits == 1:  # bfloat16: the top half of the float32 pattern
        return int(np.float32(value).view(np.uint32)) >> 16
    udt = np.dtype(f"<u{bits.itemsize}")
    return int(np.array(value, types[bits.itemsize]).view(udt))


def float_window(
    view: npt.NDArray[np.uint8],
    bits: Bits,
    start: int,
    scratch: npt.NDArray[np.uint8],
    counts: npt.NDArray[np.uint8],
    settings: IndicatorSettings,
) -> Win:
    """Screen one window of float values (see the module docstring).

    Args:
        view: the window's bytes (whole values; a multiple of 8 bytes except at a tensor end).
        bits: the float type's layout.
        start: the window's first byte within the tensor.
        scratch: a buffer of at least len(view) bytes.
        counts: a buffer of at least len(view) // 8 bytes.
        settings: the thresholds.
    """
    import numpy as np

    size = bits.itemsize
    n = len(view) // size
    win = Win(start, start + n * size, n)
    if n == 0:
        return win
    udt = np.dtype(f"<u{size}")
    u = view[: n * size].view(udt)
    i = u.view(np.dtype(f"<i{size}"))
    sign = 1 << (8 * size - 1)
    umin, umax, imin, imax = int(u.min()), int(u.max()), int(i.min()), int(i.max())
    win.first = int(u[0])
    win.uniform = umin == umax
    big = max(imax, umax - sign if umax >= sign else -1)
    small = min(umin if umin < sign else sign, imin + sign if imin < 0 else sign)
    if big >= bits.exponent:
        _nonfinite(win, u, bits)
    if small < bits.min_normal:
        low_exp = int(np.count_nonzero((u & udt.type(bits.exponent)) == 0))
        win.zero = n - int(np.count_nonzero(u & udt.type(sign - 1)))
        win.subnormal = low_exp - win.zero
    wild = _scalar(bits, min(settings.wild_abs_min, bits.wild_cap))
    block = max(2048, settings.screen_block_bytes - settings.screen_block_bytes % 2048)
    if big >= wild:
        _wild_blocks(win, u, bits, wild, block, scratch)
    whole = (n * size) // 8
    if whole:
        total = _bit_blocks(win, view[: whole * 8], bits, block, scratch, counts, settings)
        if size == 4 and 4 * total < whole * 2 * bits.screen_bits:
            # below half the expected count: the window can be of narrower (bf16) origin,
            # count the zero low halves exactly
            _low16(win, u, block, scratch, settings)
    return win


def _low16(
    win: Win,
    u: npt.NDArray[np.unsignedinteger],
    block: int,
    scratch: npt.NDArray[np.uint8],
    settings: IndicatorSettings,
) -> None:
    import numpy as np

    t = scratch[: 4 * len(u)].view(np.uint32)
    np.bitwise_and(u, np.uint32(0xFFFF), out=t)
    nonzero = t != 0
    count = int(np.count_nonzero(nonzero))
    win.low16_zero = win.n - count
    if win.low16_zero < settings.low16_zero_min * win.n:
        return
    # bf16-origin window: the bit screen's expectation does not hold; blocks with any set
    # low half are worth the exact tests, the precision check (MG503) judges the share
    win.blocks = []
    win.flagged = count > 0
    per = block // 4
    for k in np.unique(np.flatnonzero(nonzero) // per):
        lo = win.start + int(k) * block
        win.blocks.append((lo, min(lo + block, win.end)))


def _nonfinite(win: Win, u: npt.NDArray[np.unsignedinteger], bits: Bits) -> None:
    import numpy as np

    udt = u.dtype.type
    top = (u & udt(bits.exponent)) == bits.exponent
    mant = (u & udt(bits.mantissa)) != 0
    neg = (u >> udt(8 * bits.itemsize - 1)) != 0
    win.nan = int(np.count_nonzero(top & mant))
    inf = top & ~mant
    win.neginf = int(np.count_nonzero(inf & neg))
    win.posinf = int(np.count_nonzero(inf)) - win.neginf


def _wild_blocks(
    win: Win,
    u: npt.NDArray[np.unsignedinteger],
    bits: Bits,
    wild: int,
    block: int,
    scratch: npt.NDArray[np.uint8],
) -> None:
    """Flag the blocks holding finite values of wild magnitude (raw bytes stored as floats)."""
    import numpy as np

    udt = u.dtype.type
    mag = scratch[: len(u) * bits.itemsize].view(u.dtype)
    np.bitwise_and(u, udt((1 << (8 * bits.itemsize - 1)) - 1), out=mag)
    hit = (mag >= wild) & (mag < bits.exponent)
    per = block // bits.itemsize
    where = np.flatnonzero(hit)
    if len(where):
        win.flagged = True
        for k in np.unique(where // per):
            lo = win.start + int(k) * block
            win.blocks.append((lo, min(lo + block, win.end)))


def _bit_blocks(
    win: Win,
    data: npt.NDArray[np.uint8],
    bits: Bits,
    block: int,
    scratch: npt.NDArray[np.uint8],
    counts: npt.NDArray[np.uint8],
    settings: IndicatorSettings,
) -> int:
    """Count the screen bits per block; flag blocks and pairs whose |z| exceeds screen_z.

    Returns:
        The number of screen bits set in the window.
    """
    import numpy as np

    words = data.view(np.uint64)
    lanes = 8 // bits.itemsize
    mask = 0
    for k in range(lanes):
        mask |= bits.screen << (8 * bits.itemsize * k)
    t = scratch[: len(data)].view(np.uint64)
    np.bitwise_and(words, np.uint64(mask), out=t)
    c = counts[: len(words)]
    np.bitwise_count(t, out=c)
    per_word = lanes * bits.screen_bits  # at most this many bits per word
    group = 32 if per_word <= 7 else 16
    unit = 64 * group  # data bytes per partial sum
    nwords = len(words) - len(words) % (8 * group)
    parts: list[npt.NDArray[np.int64]] = []
    if nwords:
        lanes_sum = c[:nwords].view(np.uint64).reshape(-1, group).sum(axis=1)
        parts.append(lanes_sum.view(np.uint8).reshape(-1, 8).sum(axis=1, dtype=np.int64))
    if nwords < len(words):
        parts.append(np.array([c[nwords:].sum(dtype=np.int64)], np.int64))
    units = np.concatenate(parts) if len(parts) > 1 else parts[0]
    sums = np.add.reduceat(units, np.arange(0, len(units), block // unit))
    total = int(sums.sum())
    per = block // bits.itemsize
    last = len(data) // bits.itemsize - (len(sums) - 1) * per
    # z of a block: (count - bits/2) / sqrt(bits/4), bits = values * screen_bits; pairs of
    # full blocks: sqrt(2) times the sd. Fast path: compare the extremes with the limits.
    half = per * bits.screen_bits / 2
    sd1 = math.sqrt(half / 2)
    limit = settings.screen_z
    dev = sums[:-1] - half if last < per else sums - half
    pair = dev[:-1] + dev[1:]
    worst = 0.0
    if len(dev):
        worst = max(float(dev.max()), -float(dev.min())) / sd1
    if len(pair):
        worst = max(worst, max(float(pair.max()), -float(pair.min())) / (sd1 * math.sqrt(2)))
    if last < per:
        tail = (float(sums[-1]) - last * bits.screen_bits / 2) / math.sqrt(
            max(1.0, last * bits.screen_bits / 4)
        )
        worst = max(worst, abs(tail))
    win.screen_z = worst
    if worst <= limit:
        return total
    values = np.full(len(sums), per, np.int64)
    values[-1] = last
    nbits = values * bits.screen_bits
    z1 = (sums - nbits / 2) / np.sqrt(np.maximum(nbits, 1) / 4)
    z2 = (z1[:-1] + z1[1:]) / math.sqrt(2)
    hot = np.abs(z1) > limit
    if len(z2):
        both = np.abs(z2) > limit
        hot[:-1] |= both
        hot[1:] |= both
    win.flagged = True
    for index in np.flatnonzero(hot):
        lo = win.start + int(index) * block
        win.blocks.append((lo, min(lo + block, win.end)))
    win.blocks.sort()
    return total


def int_window(view: npt.NDArray[np.uint8], itemsize: int, start: int) -> Win:
    """Count zeros and check constancy of one window of integer values."""
    import numpy as np

    n = len(view) // itemsize
    win = Win(start, start + n * itemsize, n)
    if n == 0:
        return win
    u = view[: n * itemsize].view(np.dtype(f"<u{itemsize}"))
    win.zero = n - int(np.count_nonzero(u))
    win.first = int(u[0])
    win.uniform = bool((u[:64] == u[0]).all()) and bool((u == u[0]).all())
    return win
