"""Randomised SVD for the diff indicator: how much of a weight delta's energy is low-rank.

A surgical edit (ROME, PoisonGPT) adds a rank-1 or low-rank matrix to one weight matrix; a
fine-tune changes it densely. The share of the delta's squared Frobenius norm held by its top
`k` singular values separates the two. Only the top singular values are needed, so a
randomised range finder (Gaussian sketch, optional power iterations, QR, then the SVD of a
small `(k + oversample)`-column matrix) replaces a full SVD:

- `randomized_svd_energy` works on a delta held in memory;
- `sketched_svd_energy` works on a delta streamed as row blocks (a callable that re-reads the
  matrix once per pass), so a large matrix is never held whole: `2 + 2 * iters` passes, and
  memory of `(rows + cols) * (k + oversample)` floats.

The estimated singular values never exceed the true ones (they are those of a projection of
the delta), so the energy share is a lower bound: a dense delta is never made to look
low-rank by the approximation. Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "RowBlocks",
    "effective_rank",
    "energy_share",
    "randomized_svd_energy",
    "sketched_svd_energy",
]

F64 = np.float64

RowBlocks = Callable[[], Iterable[tuple[int, npt.NDArray[np.floating]]]]
"""Re-streams a matrix: each call yields `(first row index, 2-D block of whole rows)` covering
every row once, in any order."""


class _Operator(Protocol):
    """The two products a range finder needs; each call is one pass over the matrix."""

    def times(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return `D @ x` (rows x l)."""
        ...

    def rtimes(self, q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return `D.T @ q` (cols x l)."""
        ...


class _Dense:
    """A matrix in memory; products in its own float precision (float32 stays float32)."""

    def __init__(self, matrix: npt.NDArray[np.floating]) -> None:
        self.matrix = matrix
        self.dtype = matrix.dtype

    def times(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(self.matrix @ x.astype(self.dtype, copy=False), dtype=F64)

    def rtimes(self, q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(self.matrix.T @ q.astype(self.dtype, copy=False), dtype=F64)


class _Streamed:
    """A matrix re-read as row blocks for every product; the first pass also sums squares."""

    def __init__(self, rows: RowBlocks, shape: tuple[int, int]) -> None:
        self.rows = rows
        self.shape = shape
        self.fro2: float | None = None

    def _blocks(self) -> Iterable[tuple[int, npt.NDArray[np.floating]]]:
        total = 0.0
        seen = 0
        for start, block in self.rows():
            if block.ndim != 2 or block.shape[1] != self.shape[1]:
                raise ValueError(f"row block of shape {block.shape} for a {self.shape} matrix")
            if self.fro2 is None:
                total += _sumsq(block.reshape(-1))
            seen += block.shape[0]
            yield start, block
        if seen != self.shape[0]:
            raise ValueError(f"row blocks covered {seen} rows of {self.shape[0]}")
        if self.fro2 is None:
            self.fro2 = total

    def times(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = np.zeros((self.shape[0], x.shape[1]), dtype=F64)
        for start, block in self._blocks():
            out[start : start + block.shape[0]] = block @ x.astype(block.dtype, copy=False)
        return out

    def rtimes(self, q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = np.zeros((self.shape[1], q.shape[1]), dtype=F64)
        for start, block in self._blocks():
            part = q[start : start + block.shape[0]].astype(block.dtype, copy=False)
            out += block.T @ part
        return out


def _sumsq(flat: npt.NDArray[np.floating]) -> float:
    """Sum of squares accumulated in float64, a bounded slice at a time."""
    step = 1 << 20
    total = 0.0
    for i in range(0, flat.size, step):
        part = flat[i : i + step].astype(F64)
        total += float(np.dot(part, part))
    return total


def _orth(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    q, _ = np.linalg.qr(y, mode="reduced")
    return np.asarray(q, dtype=F64)


def _range_svd(
    op: _Operator, shape: tuple[int, int], k: int, oversample: int, iters: int, seed: int
) -> npt.NDArray[np.float64]:
    rows, cols = shape
    width = min(k + oversample, rows, cols)
    rng = np.random.default_rng(seed)
    omega = rng.standard_normal((cols, width))
    q = _orth(op.times(omega))
    for _ in range(iters):
        z = _orth(op.rtimes(q))
        q = _orth(op.times(z))
    # B = Q^T D; its singular values are those of D projected on range(Q).
    bt = op.rtimes(q)
    values = np.linalg.svd(bt, compute_uv=False)
    return np.asarray(values[:k], dtype=F64)


def _check(k: int, oversample: int, iters: int) -> None:
    if k < 1 or oversample < 0 or iters < 0:
        raise ValueError("k must be >= 1, oversample and iters >= 0")


def randomized_svd_energy(
    delta: npt.NDArray[np.floating],
    k: int,
    *,
    oversample: int = 8,
    iters: int = 2,
    seed: int = 0,
) -> tuple[npt.NDArray[np.float64], float]:
    """Estimate the top singular values of a matrix held in memory.

    Args:
        delta: a float array with at least two dimensions; more are folded into the columns
            (`(shape[0], prod(shape[1:]))`, the usual view of a convolution kernel).
        k: how many singular values to return (fewer when the matrix is smaller).
        oversample: extra sketch columns beyond `k` (accuracy).
        iters: power iterations (accuracy for slowly decaying spectra; 2 reads per iteration).
        seed: seed of the Gaussian sketch (results are deterministic for a seed).

    Returns:
        `(values, fro2)`: the top-`k` singular values, descending (float64), and the squared
        Frobenius norm of `delta`. `energy_share(values, fro2)` is the low-rank share.

    Raises:
        ValueError: `delta` has fewer than two dimensions, or a bad `k`/`oversample`/`iters`.
    """
    _check(k, oversample, iters)
    if delta.ndim < 2:
        raise ValueError(f"need a matrix, got {delta.ndim} dimension(s)")
    matrix = delta.reshape(delta.shape[0], -1)
    if matrix.dtype not in (np.float32, F64):
        matrix = matrix.astype(F64)
    shape = (int(matrix.shape[0]), int(matrix.shape[1]))
    fro2 = _sumsq(matrix.reshape(-1))
    if min(shape) == 0 or fro2 == 0.0:
        return np.zeros(min(k, *shape), dtype=F64), fro2
    if min(shape) <= k + oversample:
        # Small enough for the exact decomposition.
        exact = np.linalg.svd(matrix.astype(F64), compute_uv=False)
        return np.asarray(exact[:k], dtype=F64), fro2
    return _range_svd(_Dense(matrix), shape, k, oversample, iters, seed), fro2


def sketched_svd_energy(
    rows: RowBlocks,
    shape: tuple[int, int],
    k: int,
    *,
    oversample: int = 8,
    iters: int = 1,
    seed: int = 0,
) -> tuple[npt.NDArray[np.float64], float]:
    """Estimate the top singular values of a matrix streamed as row blocks.

    Each call of `rows` must yield the whole matrix again as `(first row, block)` pairs of
    float blocks with `shape[1]` columns. The matrix is read `2 + 2 * iters` times; only the
    sketches (`(shape[0] + shape[1]) * (k + oversample)` float64 values) stay in memory.

    Returns:
        `(values, fro2)` as `randomized_svd_energy` does.

    Raises:
        ValueError: a bad `k`/`oversample`/`iters`, or blocks that do not match `shape`.
    """
    _check(k, oversample, iters)
    op = _Streamed(rows, shape)
    if min(shape) == 0:
        return np.zeros(0, dtype=F64), 0.0
    values = _range_svd(op, shape, k, oversample, iters, seed)
    fro2 = op.fro2 if op.fro2 is not None else 0.0
    if fro2 == 0.0:
        return np.zeros_like(values), 0.0
    return values, fro2


def energy_share(values: npt.NDArray[np.float64], fro2: float) -> float:
    """Return the share of `fro2` held by `values` (sum of squares), clipped to [0, 1]."""
    if fro2 <= 0.0:
        return 0.0
    share = float(np.dot(values, values)) / fro2
    return min(1.0, max(0.0, share))


def effective_rank(values: npt.NDArray[np.float64], fro2: float, share: float) -> int | None:
    """Return the fewest leading `values` holding at least `share` of `fro2`.

    None when all of `values` together hold less (the rank is larger than `len(values)`) or
    the matrix is zero.
    """
    if fro2 <= 0.0:
        return None
    cumulative = np.cumsum(np.square(values)) / fro2
    hits = np.nonzero(cumulative >= share * (1.0 - 1e-9))[0]
    return int(hits[0]) + 1 if hits.size else None
