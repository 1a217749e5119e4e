"""The every-element screen of the tensor pass: exact value counts and per-block triggers.

Every value of a window gets a few vectorised operations that release the GIL:

* one AND over 64-bit words keeps the screen bits (bits 7 and 15 of each float32: uniform in
  trained weights, zero in ASCII text and mostly zero in executables and headers) and, for
  float32 and float64, the exponent bits too;
* sums of rows of 128 masked words (`np.add.reduceat`) count every screen bit at once: each
  screen bit's count stays within its own byte (at most 128), so one 64-bit add sums all the
  lanes, and the exponents summed above them only carry upwards. The counts per block of
  `screen_block_bytes` give z-scores against one half (single blocks and pairs of adjacent
  blocks) that flag blocks for the exact tests;
* the minimum and maximum of the masked words (float32, float64; four reductions of the raw
  patterns for float16 and bfloat16) bound the window's exponents, which prove, for most
  windows, that it holds no NaN, infinity, zero, subnormal or "wild" value (a magnitude of at
  least `wild_abs_min`, which trained weights never reach but raw bytes stored as floats
  usually do); exact counts run only in windows that may hold any.

`float_windows` screens several consecutive windows with the same calls (fewer, larger NumPy
calls), with results identical to `float_window` on each. The exact tests (histogram, carving,
printable runs) run in `weights` on flagged blocks only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelguard.indicators._rows import EXPONENT_WORD, block_counts
from modelguard.indicators.carve import Carved
from modelguard.indicators.stego import WindowStats

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelguard.indicators.settings import IndicatorSettings

__all__ = ["FLOATS", "INTS", "Bits", "Win", "float_window", "float_windows", "int_window"]


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
    return _pattern(bits.itemsize, bits.screen_bits == 1, value)


@functools.lru_cache(maxsize=64)
def _pattern(itemsize: int, bfloat16: bool, value: float) -> int:
    import numpy as np

    types = {2: np.float16, 4: np.float32, 8: np.float64}
    if bfloat16:  # the top half of the float32 pattern
        return int(np.float32(value).view(np.uint32)) >> 16
    udt = np.dtype(f"<u{itemsize}")
    return int(np.array(value, types[itemsize]).view(udt))


def float_window(
    view: npt.NDArray[np.uint8],
    bits: Bits,
    start: int,
    scratch: npt.NDArray[np.uint8],
    settings: IndicatorSettings,
) -> Win:
    """Screen one window of float values (see the module docstring).

    Args:
        view: the window's bytes (whole values; a multiple of 8 bytes except at a tensor end).
        bits: the float type's layout.
        start: the window's first byte within the tensor.
        scratch: a buffer of at least len(view) bytes.
        settings: the thresholds.
    """
    import numpy as np

    size = bits.itemsize
    n = len(view) // size
    win = Win(start, start + n * size, n)
    if n == 0:
        return win
    u = view[: n * size].view(np.dtype(f"<u{size}"))
    whole = (n * size) // 8
    block = _block(settings)
    (triggers,), sums = _scan(u.reshape(1, n), view[: whole * 8], bits, block, scratch, settings)
    _values(win, u, bits, triggers, scratch, settings)
    if whole:
        per = block // size
        last = whole * 8 // size - (len(sums) - 1) * per
        total = _judge(win, sums, per, last, bits, block, settings.screen_z)
        if size == 4 and 4 * total < whole * 2 * bits.screen_bits:
            # below half the expected count: the window can be of narrower (bf16) origin,
            # count the zero low halves exactly
            _low16(win, u, block, scratch, settings)
    return win


def float_windows(
    view: npt.NDArray[np.uint8],
    bits: Bits,
    start: int,
    window: int,
    scratch: npt.NDArray[np.uint8],
    settings: IndicatorSettings,
) -> list[Win]:
    """Screen consecutive windows of `window` bytes (the last one may be shorter) at once.

    The same results as `float_window` on each window, with the passes over the values and
    the screen's bookkeeping done once for all the full windows (fewer, larger NumPy calls:
    less interpreter time per byte and longer stretches without the GIL).

    Args:
        view: the windows' bytes, from the first window's start.
        bits: the float type's layout.
        start: the first window's first byte within the tensor.
        window: bytes per window (a multiple of the item size and of 8).
        scratch: a buffer of at least len(view) bytes.
        settings: the thresholds.
    """
    import numpy as np

    size = bits.itemsize
    block = _block(settings)
    count = len(view) // window
    if count < 2 or window % block:
        return [
            float_window(view[at : at + window], bits, start + at, scratch, settings)
            for at in range(0, len(view), window)
        ]
    n = window // size
    body = view[: count * window]
    u = body.view(np.dtype(f"<u{size}")).reshape(count, n)
    triggers, flat = _scan(u, body, bits, block, scratch, settings)
    sums = flat.reshape(count, -1)
    per = block // size
    half = per * bits.screen_bits / 2
    dev = sums - half
    dmax, dmin = dev.max(axis=1).tolist(), dev.min(axis=1).tolist()
    pmax = pmin = [0.0] * count
    if sums.shape[1] > 1:
        pair = dev[:, :-1] + dev[:, 1:]
        pmax, pmin = pair.max(axis=1).tolist(), pair.min(axis=1).tolist()
    totals = sums.sum(axis=1).tolist()
    sd1 = math.sqrt(half / 2)
    limit = settings.screen_z
    wins: list[Win] = []
    for k, trigger in enumerate(triggers):
        win = Win(start + k * window, start + (k + 1) * window, n)
        _values(win, u[k], bits, trigger, scratch, settings)
        # the fast path of _judge, from the extremes computed for every window at once
        worst = max(dmax[k], -dmin[k]) / sd1
        if sums.shape[1] > 1:
            worst = max(worst, max(pmax[k], -pmin[k]) / (sd1 * math.sqrt(2)))
        win.screen_z = worst
        if worst > limit:
            _flag(win, sums[k], per, per, bits, block, limit)
        if size == 4 and 4 * totals[k] < (window // 8) * 2 * bits.screen_bits:
            _low16(win, u[k], block, scratch, settings)
        wins.append(win)
    if len(view) > count * window:
        rest = view[count * window :]
        wins.append(float_window(rest, bits, start + count * window, scratch, settings))
    return wins


def _block(settings: IndicatorSettings) -> int:
    """Return the screen block in bytes (a multiple of 2048, at least 2048)."""
    return max(2048, settings.screen_block_bytes - settings.screen_block_bytes % 2048)


# (uniform, any non-finite, any zero or subnormal, any wild magnitude) of a window: the last
# three may be false alarms (the exact counts decide), never misses.
_Triggers = tuple[bool, bool, bool, bool]


def _scan(
    u: npt.NDArray[np.unsignedinteger],
    data: npt.NDArray[np.uint8],
    bits: Bits,
    block: int,
    scratch: npt.NDArray[np.uint8],
    settings: IndicatorSettings,
) -> tuple[list[_Triggers], npt.NDArray[np.int64]]:
    """Return each window's triggers and the screen-bit count per block.

    Args:
        u: the windows' values as unsigned bit patterns, one row per window.
        data: the bytes the block counts cover (the rows' bytes, cut to a multiple of 8).
        bits: the float type's layout.
        block: bytes per block.
        scratch: a buffer of at least len(data) bytes (clobbered).
        settings: the thresholds.

    float32 and float64 take one AND with the exponent and screen bits for both: the row sums
    of the screen bits are not disturbed by the exponents above them (carries only go up), and
    the minimum and maximum of the masked values bound the exponents. Other types (and rows
    whose tail is not in `data`) take the four reductions over the raw patterns: unsigned
    and signed minimum and maximum, whose combinations give the magnitude extremes.
    """
    import numpy as np

    wild = _scalar(bits, min(settings.wild_abs_min, bits.wild_cap))
    fused = EXPONENT_WORD.get(bits.itemsize, 0) if data.nbytes == u.nbytes else 0
    if fused and len(data):
        sums = block_counts(data, bits, block, scratch, fused)
        masked = scratch[: len(data)].view(u.dtype).reshape(u.shape)
        tops, bottoms = masked.max(axis=1).tolist(), masked.min(axis=1).tolist()
        limit = wild & bits.exponent  # exponent at or above the wild value's: maybe wild
        triggers = [
            (hi == lo, hi >= bits.exponent, lo < bits.min_normal, hi >= limit)
            for hi, lo in zip(tops, bottoms, strict=True)
        ]
        return triggers, sums
    i = u.view(np.dtype(f"<i{bits.itemsize}"))
    sign = 1 << (8 * bits.itemsize - 1)
    triggers = []
    for umin, umax, imin, imax in zip(
        u.min(axis=1).tolist(),
        u.max(axis=1).tolist(),
        i.min(axis=1).tolist(),
        i.max(axis=1).tolist(),
        strict=True,
    ):
        big = max(imax, umax - sign if umax >= sign else -1)
        small = min(umin if umin < sign else sign, imin + sign if imin < 0 else sign)
        triggers.append((umin == umax, big >= bits.exponent, small < bits.min_normal, big >= wild))
    if not len(data):
        return triggers, np.zeros(0, np.int64)
    return triggers, block_counts(data, bits, block, scratch)


def _values(
    win: Win,
    u: npt.NDArray[np.unsignedinteger],
    bits: Bits,
    triggers: _Triggers,
    scratch: npt.NDArray[np.uint8],
    settings: IndicatorSettings,
) -> None:
    """Set the window's first value and constancy; count non-finite, zero and subnormal
    values and flag wild blocks where the triggers say there can be any."""
    import numpy as np

    uniform, nonfinite, small, wild = triggers
    win.first = int(u[0])
    # equal masked extremes (float32/64) only suggest a constant window: check every value
    win.uniform = uniform and bool((u == u[0]).all())
    if nonfinite:
        _nonfinite(win, u, bits)
    if small:
        udt = u.dtype.type
        sign = 1 << (8 * bits.itemsize - 1)
        low_exp = int(np.count_nonzero((u & udt(bits.exponent)) == 0))
        win.zero = win.n - int(np.count_nonzero(u & udt(sign - 1)))
        win.subnormal = low_exp - win.zero
    if wild:
        value = _scalar(bits, min(settings.wild_abs_min, bits.wild_cap))
        _wild_blocks(win, u, bits, value, _block(settings), scratch)


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


def _judge(
    win: Win,
    sums: npt.NDArray[np.int64],
    per: int,
    last: int,
    bits: Bits,
    block: int,
    limit: float,
) -> int:
    """Set the window's screen z (the worst block or pair of adjacent blocks) and flag the
    blocks above `limit`.

    Args:
        win: the window.
        sums: set screen bits per block.
        per: values per block.
        last: values in the last block.
        bits: the float type's layout.
        block: bytes per block.
        limit: the |z| above which blocks are flagged.

    Returns:
        The number of screen bits set in the window.
    """
    total = int(sums.sum())
    # z of a block: (count - bits/2) / sqrt(bits/4), bits = values * screen_bits; pairs of
    # full blocks: sqrt(2) times the sd. Fast path: compare the extremes with the limits.
    half = per * bits.screen_bits / 2
    sd1 = math.sqrt(half / 2)
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
    if worst > limit:
        _flag(win, sums, per, last, bits, block, limit)
    return total


def _flag(
    win: Win,
    sums: npt.NDArray[np.int64],
    per: int,
    last: int,
    bits: Bits,
    block: int,
    limit: float,
) -> None:
    """Flag the blocks whose |z|, alone or with a neighbour, exceeds `limit`."""
    import numpy as np

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
