"""Stream one tensor pair of a model diff: relative change, changed rows, delta rank energy.

`compare_tensors` reads a base and a candidate tensor chunk by chunk (whole rows, two
bounded buffers, float64 arithmetic; BF16 and FP8 decoded, integers widened) and returns a
`TensorDelta`. A changed matrix whose float32 delta fits `svd_memory_max_bytes` (a setting) is
collected during that same pass and decomposed in memory; a larger one is only flagged, and
`sketch_rank_energy` later re-streams its delta as row blocks for a randomised sketch.
Tensors whose dtype is not float-readable (quantised GGUF blocks) are compared byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modelguard.indicators.linalg import (
    effective_rank,
    energy_share,
    randomized_svd_energy,
    sketched_svd_energy,
)
from modelguard.indicators.settings import IndicatorSettings
from modelguard.indicators.tensors import TensorRef, numpy_dtype, read_ranges

__all__ = [
    "TensorDelta",
    "compare_tensors",
    "matrix_shape",
    "sketch_rank_energy",
]

"""A changed matrix whose float32 delta is at most this size is decomposed in memory; larger
ones are sketched by streaming row blocks (4 more reads of both tensors)."""

_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TensorDelta:
    """The comparison of one tensor present in both models with the same shape.

    Attributes:
        name: tensor name.
        shape: its shape.
        changed: relative change above `changed_rel_min` (or non-finite values appeared).
        rel_change: |candidate - base| / |base| (Frobenius); inf when the base is zero or a
            value became non-finite; nan when the dtype is not float-readable and bytes differ.
        max_abs: largest absolute element change (nan when not float-readable).
        rank_energy: for a changed matrix: share of the delta's energy in its top
            `lowrank_rank_max` singular values; None when not measured.
        effective_rank: fewest singular values holding `lowrank_energy_min` of the energy, if
            at most `lowrank_rank_max`; None otherwise or when not measured.
        rows_changed: rows (first axis) with any changed element, for matrices; else None.
        rows: the changed row indices when at most `embedding_rows_max` of them, else ().
    """

    name: str
    shape: tuple[int, ...]
    changed: bool
    rel_change: float
    max_abs: float
    rank_energy: float | None
    effective_rank: int | None
    rows_changed: int | None
    rows: tuple[int, ...] = ()


def _fp8_table(exp_bits: int, bias: int, finite_only: bool) -> npt.NDArray[np.float64]:
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    man_bits = 7 - exp_bits
    exp = (codes >> man_bits) & ((1 << exp_bits) - 1)
    man = codes & ((1 << man_bits) - 1)
    normal = (1.0 + man / (1 << man_bits)) * np.exp2(exp - bias)
    sub = (man / (1 << man_bits)) * np.exp2(1 - bias)
    table = sign * np.where(exp == 0, sub, normal)
    top = (1 << exp_bits) - 1
    if finite_only:  # E4M3FN: only S.1111.111 is NaN, no infinities
        table = np.where((exp == top) & (man == (1 << man_bits) - 1), np.nan, table)
    else:  # E5M2: IEEE-like
        table = np.where((exp == top) & (man == 0), sign * np.inf, table)
        table = np.where((exp == top) & (man != 0), np.nan, table)
    return np.asarray(table, dtype=np.float64)


_FP8 = {"F8_E4M3": _fp8_table(4, 7, True), "F8_E5M2": _fp8_table(5, 15, False)}


def _float_readable(dtype: str) -> bool:
    return dtype in _FP8 or numpy_dtype(dtype) is not None


def _as_float(raw: npt.NDArray[np.uint8], dtype: str) -> npt.NDArray[np.float64]:
    if dtype in _FP8:
        return _FP8[dtype][raw]
    view = raw.view(numpy_dtype(dtype))  # type: ignore[arg-type]  # checked by _float_readable
    if dtype == "BF16":
        return (view.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return view.astype(np.float64)


@dataclass
class _Acc:
    """Running sums of one tensor pair's comparison."""

    delta2: float = 0.0
    base2: float = 0.0
    max_abs: float = 0.0
    nonfinite: int = 0
    rows_changed: int = 0


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    if len(shape) < 2:
        return None
    rows = shape[0]
    cols = 1
    for dim in shape[1:]:
        cols *= dim
    return rows, cols


def _chunks(numel: int, cols: int) -> list[tuple[int, int]]:
    """Element ranges of at most one chunk, whole rows of `cols` elements each."""
    per = max(1, (_CHUNK_BYTES // 8) // max(cols, 1)) * max(cols, 1)
    return [(a, min(numel, a + per)) for a in range(0, numel, per)]


def _sumsq_finite(raw: npt.NDArray[np.uint8], dtype: str) -> float:
    """Sum of squares of the finite values of a chunk (float32 BLAS when it is finite)."""
    if dtype == "F32":
        values = raw.view("<f4")
        total = float(np.dot(values, values))
        if np.isfinite(total):
            return total
    wide = _as_float(raw, dtype)
    wide[~np.isfinite(wide)] = 0.0
    return float(np.dot(wide, wide))


def _delta_blocks(
    b: TensorRef, c: TensorRef, cols: int
) -> Iterator[tuple[int, int, float, npt.NDArray[np.float64] | None]]:
    """Yield `(first element, elements, base sum of squares, delta)` per row-aligned chunk.

    The delta is None where the two chunks are bitwise equal (no float conversion then); a
    NaN or infinity at the same place in both is no change.
    """
    per = max(1, (_CHUNK_BYTES // 8) // cols) * cols
    buf_b = np.empty(per * max(b.itemsize, 1), dtype=np.uint8)
    buf_c = np.empty(per * max(c.itemsize, 1), dtype=np.uint8)
    fd_b = os.open(b.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        fd_c = os.open(c.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            for start, end in _chunks(b.numel, cols):
                rb = (start * b.itemsize, end * b.itemsize)
                rc = (start * c.itemsize, end * c.itemsize)
                _, raw_b = next(read_ranges(b, [rb], buf_b, fd=fd_b))
                _, raw_c = next(read_ranges(c, [rc], buf_c, fd=fd_c))
                if b.dtype == c.dtype and np.array_equal(raw_b, raw_c):
                    yield start, end - start, _sumsq_finite(raw_b, b.dtype), None
                    continue
                vb = _as_float(raw_b, b.dtype)
                vc = _as_float(raw_c, c.dtype)
                same = None
                if not (np.isfinite(vc).all() and np.isfinite(vb).all()):
                    same = (vc == vb) | (np.isnan(vc) & np.isnan(vb))
                    vb_finite = np.where(np.isfinite(vb), vb, 0.0)
                    base2 = float(np.dot(vb_finite, vb_finite))
                else:
                    base2 = float(np.dot(vb, vb))
                delta = np.subtract(vc, vb, out=vc)
                if same is not None:
                    delta[same] = 0.0
                yield start, end - start, base2, delta
        finally:
            os.close(fd_c)
    finally:
        os.close(fd_b)


def compare_tensors(
    name: str, b: TensorRef, c: TensorRef, settings: IndicatorSettings
) -> tuple[TensorDelta, bool]:
    """Compare one tensor pair of equal shape, streaming both.

    Returns:
        `(delta, owed)`: the comparison, and whether the tensor is a changed matrix too large
        for the in-memory SVD (its `rank_energy` is then None; see `sketch_rank_energy`).

    Raises:
        FormatError: a file is shorter than its header claims.
    """
    if not (_float_readable(b.dtype) and _float_readable(c.dtype)):
        same = b.dtype == c.dtype and _bytes_equal(b, c)
        value = 0.0 if same else float("nan")
        return TensorDelta(name, c.shape, not same, value, value, None, None, None), False
    mshape = matrix_shape(c.shape)
    cols = mshape[1] if mshape else 1
    ranked = mshape is not None and min(mshape) > settings.lowrank_rank_max
    keep = ranked and b.numel * 4 <= settings.svd_memory_max_bytes
    # zeros: pages of unchanged chunks are never written
    dense = np.zeros(mshape, dtype=np.float32) if keep and mshape else None
    acc = _Acc()
    rows: list[int] = []
    for start, _, base2, delta in _delta_blocks(b, c, cols):
        acc.base2 += base2
        if delta is None:
            continue
        if mshape is not None:  # before non-finite values are zeroed: NaN != 0 counts
            hit = np.flatnonzero(np.any(delta.reshape(-1, cols) != 0, axis=1)) + start // cols
            acc.rows_changed += int(hit.size)
            if len(rows) <= settings.embedding_rows_max:
                rows.extend(int(r) for r in hit[: settings.embedding_rows_max + 1])
        bad = ~np.isfinite(delta)
        if bad.any():
            acc.nonfinite += int(np.count_nonzero(bad))
            delta[bad] = 0.0
        acc.delta2 += float(np.dot(delta, delta))
        if delta.size:
            acc.max_abs = max(acc.max_abs, float(delta.max()), -float(delta.min()))
        if dense is not None:
            dense.reshape(-1)[start : start + delta.size] = delta
    base_norm = float(np.sqrt(acc.base2))
    delta_norm = float(np.sqrt(acc.delta2))
    if acc.nonfinite:
        rel = float("inf")
    elif delta_norm == 0.0:
        rel = 0.0
    else:
        rel = delta_norm / base_norm if base_norm > 0 else float("inf")
    changed = rel > settings.changed_rel_min
    max_abs = float("inf") if acc.nonfinite else acc.max_abs
    energy: float | None = None
    erank: int | None = None
    if changed and dense is not None:
        values, fro2 = randomized_svd_energy(dense, settings.lowrank_rank_max)
        energy = energy_share(values, fro2)
        erank = effective_rank(values, fro2, settings.lowrank_energy_min)
    del dense
    rows_changed = acc.rows_changed if mshape is not None else None
    kept = tuple(rows) if 0 < len(rows) <= settings.embedding_rows_max else ()
    delta_t = TensorDelta(name, c.shape, changed, rel, max_abs, energy, erank, rows_changed, kept)
    return delta_t, changed and ranked and not keep


def sketch_rank_energy(
    b: TensorRef, c: TensorRef, settings: IndicatorSettings
) -> tuple[float, int | None]:
    """Return `(rank_energy, effective_rank)` of a large matrix delta, streamed by row blocks.

    The delta is never held whole: `linalg.sketched_svd_energy` re-reads both tensors
    `2 + 2 * iters` times (iters=1).
    """
    mshape = matrix_shape(c.shape)
    if mshape is None:
        raise ValueError(f"{c.name}: not a matrix")
    cols = mshape[1]

    def blocks() -> Iterator[tuple[int, npt.NDArray[np.floating]]]:
        for start, count, _, delta in _delta_blocks(b, c, cols):
            if delta is None:
                yield start // cols, np.zeros((count // cols, cols), dtype=np.float32)
                continue
            delta[~np.isfinite(delta)] = 0.0
            yield start // cols, delta.reshape(-1, cols)

    values, fro2 = sketched_svd_energy(blocks, mshape, settings.lowrank_rank_max)
    return energy_share(values, fro2), effective_rank(values, fro2, settings.lowrank_energy_min)


def _bytes_equal(b: TensorRef, c: TensorRef) -> bool:
    if b.nbytes != c.nbytes:
        return False
    buf_b = np.empty(_CHUNK_BYTES, dtype=np.uint8)
    buf_c = np.empty(_CHUNK_BYTES, dtype=np.uint8)
    ranges = [(a, min(b.nbytes, a + _CHUNK_BYTES)) for a in range(0, b.nbytes, _CHUNK_BYTES)]
    for (_, vb), (_, vc) in zip(
        read_ranges(b, ranges, buf_b), read_ranges(c, ranges, buf_c), strict=True
    ):
        if not np.array_equal(vb, vc):
            return False
    return True
