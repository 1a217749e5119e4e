"""Bit-plane statistics of a window of float weights (indicator W5, MG504).

In trained float weights the lowest mantissa byte is close to uniform and the least
significant bit is set half the time; text, executables and other structured payloads
written into the low bytes (EvilModel, MaleficNet; arXiv 2310.01969) are not. These
statistics cost a histogram (`np.bincount` holds the GIL and runs at about 3 GB/s), so the
tensor pass computes them only on windows its cheap screens flag, on a deterministic sample of
windows and on small tensors. Encrypted payloads in genuine float32 are uniform too: they
cannot be seen this way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["WindowStats", "bitplane_stats", "chi2_dof"]

# Low bits tested for uniformity, per float type. A short mantissa is not uniform in its low
# bits (the value density varies across an octave): measured on 524288 Gaussian float16
# values, chi-square of the low 8 bits is ~1500-1600 (255 dof), of the low 5 bits 52-67
# (31 dof); bfloat16 (7 mantissa bits) fails even on its low 2 bits, so it is not tested.
_LOW_BITS = {"F64": 8, "F32": 8, "F16": 5}
# Low bits that are zero in a value of narrower origin (fp16 in float32, fp32 in float64).
_NARROW = {"F32": 0x1FFF, "F64": 0x1FFFFFFF}
# Bit index (in the element) of the top mantissa bit.
_TOP_MANTISSA_BIT = {"F64": 51, "F32": 22, "F16": 9, "BF16": 6}
# (exponent shift, exponent mask, mantissa bits) per float type.
_LAYOUT = {
    "F32": (23, 0xFF, 23),
    "F64": (52, 0x7FF, 52),
    "F16": (10, 0x1F, 10),
    "BF16": (7, 0xFF, 7),
}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Statistics of one window of a tensor (byte range within the tensor).

    Attributes:
        start: first byte of the window within the tensor.
        end: end of the window (exclusive) within the tensor.
        reason: why it was examined: `flagged` (the cheap screen fired), `sampled` or
            `whole` (small tensor).
        screen_z: z-score of the cheap bit-count screen (0.0 when not computed).
        chi2: chi-square of the low-byte histogram against uniform (nan: not computed),
            over the full-precision values (those whose fp16-width low bits are not all
            zero: upcast rows of narrower origin are excluded).
        chi2_dof: its degrees of freedom (255, or 31 for float16: its low 5 bits).
        lsb_z: z-score of the count of set least-significant bits against one half (same
            values as chi2).
        low16_zero: share of values whose low 16 bits are zero (float32 only, else nan).
        low8_zero: share of values whose low byte is zero.
        mantissa_top: share of values whose top mantissa bit is set (about 0.41 for trained
            weights, 0.5 for random bits).
        kept: values the chi-square and LSB tests used.
        grid: share of values lying on the absolute grid of the window's largest exponent
            (1.0 for untrained uniform initialisation; a window at or above `grid_min` is not
            tested for uniformity). Computed only when a test exceeded its threshold.
    """

    start: int
    end: int
    reason: str
    screen_z: float = 0.0
    chi2: float = math.nan
    chi2_dof: int = 255
    lsb_z: float = math.nan
    low16_zero: float = math.nan
    low8_zero: float = math.nan
    mantissa_top: float = math.nan
    kept: int = 0
    grid: float = math.nan


def chi2_dof(dtype: str) -> int:
    """Return the degrees of freedom of the low-byte chi-square for `dtype`."""
    return (1 << _LOW_BITS.get(dtype, 8)) - 1  # bfloat16 is not tested


def bitplane_stats(
    data: npt.NDArray[np.uint8],
    dtype: str,
    start: int,
    reason: str,
    screen_z: float = 0.0,
    *,
    chi2_max: float = 0.0,
    lsb_z_max: float = 0.0,
    grid_min: float = 0.99,
) -> WindowStats:
    """Compute the bit-plane statistics of a window of float `dtype` values.

    Args:
        data: the window's raw little-endian bytes (a whole number of elements).
        dtype: F64, F32, F16 or BF16 (bfloat16: no chi-square and LSB test, see _LOW_BITS).
        start: the window's first byte within the tensor.
        reason: why the window is examined (see `WindowStats.reason`).
        screen_z: the screen's z-score, carried into the result.
        chi2_max: the chi-square threshold for 255 dof (scaled to the dtype's dof); the
            grid-origin check (which voids the tests) runs only when a test exceeds it.
        lsb_z_max: the LSB threshold, used the same way.
        grid_min: share of values on one absolute grid from which the window is of grid
            origin (untrained initialisation) and the uniformity tests do not apply.

    Raises:
        KeyError: `dtype` is not one of the four float types.
    """
    import numpy as np

    itemsize = _ITEMSIZE[dtype]
    n = len(data) // itemsize
    end = start + n * itemsize
    bits = _LOW_BITS.get(dtype, 8)
    if n == 0:
        return WindowStats(start, end, reason, screen_z, chi2_dof=(1 << bits) - 1)
    udt = np.dtype(f"<u{itemsize}")
    words = data[: n * itemsize].view(udt)
    # one histogram of every value's low byte gives the zero share, the histogram of the
    # values kept and, folded, the histogram of the low `bits` bits
    low_hist = np.bincount(data[: n * itemsize : itemsize], minlength=256)
    low8_zero = float(low_hist[0]) / n
    kept = n if dtype in _LOW_BITS else 0
    narrow = _NARROW.get(dtype)
    if narrow is not None and kept:
        # values of narrower origin (fp16/bf16 rows upcast and untouched since: unused
        # embedding rows) have zero low bits by design; uniformity applies to the others.
        # Their low byte is zero (the narrow mask covers it): they leave bin 0 only.
        dropped = n - int(np.count_nonzero(words & udt.type(narrow)))
        low_hist[0] -= dropped
        kept -= dropped
    chi2 = lsb_z = grid = math.nan
    if kept:
        hist = low_hist.reshape(-1, 1 << bits).sum(axis=0).astype(np.float64)
        probs = np.full(1 << bits, 1.0 / (1 << bits))
        if narrow is not None:
            # a uniform value whose narrow bits are all zero was excluded: bin 0 is rarer
            probs[0] -= 1.0 / (narrow + 1)
            probs /= probs.sum()
        expected = kept * probs
        chi2 = float(((hist - expected) ** 2 / expected).sum())
        ones = float(hist[1::2].sum())
        lsb_z = (ones - kept / 2) / math.sqrt(kept / 4)
        if chi2 > chi2_max * ((1 << bits) - 1) / 255 or abs(lsb_z) > lsb_z_max:
            grid = _grid_share(words, dtype)
            if grid >= grid_min or _uniform_like(data[: n * itemsize], dtype):
                # every value lies on one absolute grid (untrained uniform initialisation:
                # torch's uniform_ draws 24-bit fractions, so small values have zero low
                # bits): the low bits are not free, the tests do not apply.
                chi2 = lsb_z = math.nan
    top = words & udt.type(1 << _TOP_MANTISSA_BIT[dtype])
    mantissa_top = float(np.count_nonzero(top)) / n
    low16 = math.nan
    if dtype == "F32":
        low16 = 1.0 - np.count_nonzero(words & np.uint32(0xFFFF)) / n
    return WindowStats(
        start,
        end,
        reason,
        screen_z,
        chi2,
        (1 << bits) - 1,
        lsb_z,
        low16,
        low8_zero,
        mantissa_top,
        kept,
        grid,
    )


_FLOAT_VIEW = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}
_UNIFORM_SHARE = 0.4


def _uniform_like(data: npt.NDArray[np.uint8], dtype: str) -> bool:
    """Return True when the values are spread like an untrained uniform initialisation.

    torch's uniform_ draws (kaiming/xavier/default Linear and Conv init) scale 24-bit
    fractions by a bound that is not a power of two, so their low bits are structured. Such
    values fill [-b, b] evenly: about half lie above b/2 in magnitude, where trained or
    Gaussian weights have a few percent. Payload bytes in the low bits do not change this
    (the carvers and printable-run search still look at them).
    """
    import numpy as np

    view = _FLOAT_VIEW.get(dtype)
    if view is None or not len(data):
        return False
    values = np.abs(data.view(view).astype(np.float64))
    values = values[np.isfinite(values)]
    if not len(values):
        return False
    top = float(values.max())
    if top == 0.0:
        return False
    return float(np.count_nonzero(values > top / 2)) / len(values) >= _UNIFORM_SHARE


def _grid_share(words: npt.NDArray[np.unsignedinteger[Any]], dtype: str) -> float:
    """Share of values whose mantissa has zero bits below the largest exponent's unit."""
    import numpy as np

    layout = _LAYOUT.get(dtype)
    if layout is None or not len(words):
        return math.nan
    shift, exp_mask, mant_bits = layout
    udt = words.dtype.type
    exps = (words >> udt(shift)) & udt(exp_mask)
    need = np.minimum(exps.max() - exps, udt(mant_bits))
    masks = (udt(1) << need) - udt(1)
    return float(np.count_nonzero((words & masks) == 0)) / len(words)
