"""The streaming tensor pass: value and bit-plane indicators of one weights file (MG501-MG506).

One pass reads each tensor (sampled windows by default, every byte in `full` mode) through
reusable buffers per thread, up to four consecutive windows per read. Every value gets only
the cheap exact counts and per-block triggers of `_screen` (one AND per 64-bit word, row sums,
min/max reductions). The exact tests run where they are needed:

* the low-byte histogram and LSB tests (`stego`) on windows the screen flags, every window of
  sampled mode, every `sample_every`-th window of full mode and whole small tensors;
* the structure-validated carver (`carve`) and the printable-run test on the low 1, 2 and 3
  bytes and the raw bytes of flagged blocks (with two blocks around them), of whole small
  tensors, and on the low-byte stream of every window of sampled mode and of the first window
  of each tensor in full mode.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelguard.indicators._screen import FLOATS, INTS, Win, float_windows, int_window
from modelguard.indicators._weights_findings import findings as _findings
from modelguard.indicators._weights_findings import not_run
from modelguard.indicators.carve import Carved, carve, low_byte_streams, printable_runs
from modelguard.indicators.stego import WindowStats, bitplane_stats
from modelguard.results import Finding

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelguard.indicators.settings import IndicatorSettings
    from modelguard.indicators.tensors import TensorListing, TensorRef

__all__ = ["TensorStats", "analyse_file"]

# Windows per thread task (so that large tensors spread across threads).
_SEGMENT = 32
# Window statistics kept per tensor in TensorStats (flagged first).
_KEEP_WINDOWS = 8
# Blocks examined on each side of a flagged block (headers cut by the block boundary).
_MARGIN_BLOCKS = 2


@dataclass(frozen=True)
class TensorStats:
    """Per-tensor results of the pass, measured on the bytes read.

    Attributes:
        name: tensor name.
        dtype: safetensors-style dtype.
        numel_read: values read.
        bytes_read: bytes read.
        full: every byte of the tensor was read.
        nan: NaN values.
        posinf: +Inf values.
        neginf: -Inf values.
        subnormal: subnormal (denormal) values.
        zero: values equal to zero (either sign).
        constant: every value read has the bit pattern of the first.
        low16_zero: float32 values whose low 16 bits are zero, counted exactly in the windows
            that can be of bfloat16 origin (their screen-bit count is below half its
            expectation); other windows, where about one value in 65536 is expected, add 0.
        windows: statistics of flagged windows first, then examined ones (bounded).
    """

    name: str
    dtype: str
    numel_read: int
    bytes_read: int
    full: bool
    nan: int
    posinf: int
    neginf: int
    subnormal: int
    zero: int
    constant: bool
    low16_zero: int
    windows: tuple[WindowStats, ...]


@dataclass(frozen=True)
class _Job:
    index: int
    ref: TensorRef
    windows: tuple[tuple[int, int], ...]
    examine: frozenset[int]  # window starts that get the histogram
    carve: frozenset[int]  # window starts whose streams are carved (flagged blocks: always)
    whole: bool  # the tensor fits one window: carve every stream


class _Buffers(threading.local):
    """Per thread: two read buffers (the previous batch stays readable) and a scratch one."""

    def __init__(self) -> None:
        self.size = 0
        self.items: list[npt.NDArray[np.uint8]] = []

    def get(self, size: int) -> list[npt.NDArray[np.uint8]]:
        if size > self.size:
            import numpy as np

            self.items = [np.empty(size, np.uint8) for _ in range(3)]
            self.size = size
        return self.items


def analyse_file(
    listing: TensorListing,
    display: str,
    settings: IndicatorSettings,
    *,
    workers: int | None = None,
) -> tuple[list[Finding], list[TensorStats]]:
    """Run the tensor pass over one weights file.

    Args:
        listing: the file's tensors (`tensors.list_tensors`).
        display: the file's display path, used in locations.
        settings: mode and thresholds.
        workers: threads (default: up to 4, at most the CPU count).

    Returns:
        The findings (MG501-MG506) and per-tensor statistics, in file order.

    Raises:
        FormatError: the file is shorter than a tensor claims.
    """
    window = max(8, settings.window_bytes - settings.window_bytes % 8)
    jobs, over = _plan(listing, settings, window)
    threads = workers or min(4, os.cpu_count() or 1)
    buffers = _Buffers()
    results: dict[int, list[Win]] = {}
    if threads <= 1 or len(jobs) <= 1:
        outs = [_run(job, settings, window, buffers) for job in jobs]
    else:
        with ThreadPoolExecutor(threads) as pool:
            outs = list(pool.map(lambda j: _run(j, settings, window, buffers), jobs))
    for job, out in zip(jobs, outs, strict=True):
        results.setdefault(job.index, []).extend(out)
    refs = listing.tensors
    stats = [_merge(refs[i], results[i]) for i in sorted(results)]
    found = _findings(refs, results, stats, display, settings)
    found.extend(not_run(display, listing.skipped, over, settings))
    found.sort(key=Finding.sort_key)
    return found, stats


def _plan(
    listing: TensorListing, settings: IndicatorSettings, window: int
) -> tuple[list[_Job], list[str]]:
    from modelguard.indicators.tensors import sample_windows

    jobs: list[_Job] = []
    over: list[str] = []
    budget = settings.max_tensor_bytes_total
    every = max(1, settings.sample_every)
    for index, ref in enumerate(listing.tensors):
        if (ref.dtype not in FLOATS and ref.dtype not in INTS) or ref.nbytes == 0:
            continue
        unit = ref.itemsize or 1
        win = window - window % unit
        if settings.mode == "full":
            ranges = [(0, ref.nbytes)]
        else:
            ranges = sample_windows(ref, max(settings.sample_bytes, unit), win)
        wins = [(s, min(s + win, e)) for s, e in ranges for s in range(s, e, win)]
        planned = sum(e - s for s, e in wins)
        if planned > budget:
            over.append(ref.name)
            continue
        budget -= planned
        whole = ref.nbytes <= win
        # full mode carves the first window of each tensor (where EvilModel-style payloads
        # start) and flagged blocks; sampled mode every window it reads
        sampled = settings.mode != "full" or whole
        carve_at = frozenset(s for k, (s, _e) in enumerate(wins) if sampled or k == 0)
        examine = carve_at | frozenset(s for s, _e in wins[::every])
        for k in range(0, len(wins), _SEGMENT):
            segment = tuple(wins[k : k + _SEGMENT])
            jobs.append(_Job(index, ref, segment, examine, carve_at, whole))
    return jobs, over


def _run(job: _Job, settings: IndicatorSettings, window: int, buffers: _Buffers) -> list[Win]:
    from modelguard.indicators.tensors import read_ranges

    ref = job.ref
    window -= window % (ref.itemsize or 1)  # as planned: whole values per window
    bufs = buffers.get(window * _BATCH)
    out: list[Win] = []
    bits = FLOATS.get(ref.dtype)
    fd = os.open(ref.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        prev: tuple[int, npt.NDArray[np.uint8]] | None = None
        for k, (lo, hi, count) in enumerate(_batches(job.windows)):
            buf = bufs[k % 2]
            data = buf[:0]
            for _off, chunk in read_ranges(ref, [(lo, hi)], buf, fd=fd):
                data = chunk
            if bits is None:
                wins = [
                    int_window(data[at : at + window], ref.itemsize, lo + at)
                    for at in range(0, count * window, window)
                ]
            else:
                wins = float_windows(data, bits, lo, window, bufs[2], settings)
            for win in wins:
                view = data[win.start - lo : win.start - lo + window]
                if bits is not None and (win.flagged or win.start in job.examine):
                    _exact(job, win, view, prev, fd, settings)
                out.append(win)
                prev = (win.start, view)
    finally:
        os.close(fd)
    return out


# Consecutive windows read and screened together (fewer, larger reads and NumPy calls).
_BATCH = 4


def _batches(windows: tuple[tuple[int, int], ...]) -> list[tuple[int, int, int]]:
    """Group consecutive windows (each one's end the next one's start) by up to _BATCH.

    Returns:
        (first start, last end, number of windows) per group, in order.
    """
    groups: list[tuple[int, int, int]] = []
    for start, end in windows:
        if groups and groups[-1][1] == start and groups[-1][2] < _BATCH:
            first, _end, count = groups[-1]
            groups[-1] = (first, end, count + 1)
        else:
            groups.append((start, end, 1))
    return groups


def _exact(
    job: _Job,
    win: Win,
    view: npt.NDArray[np.uint8],
    prev: tuple[int, npt.NDArray[np.uint8]] | None,
    fd: int,
    settings: IndicatorSettings,
) -> None:
    """Run the histogram on the window and carve its flagged blocks (or the whole window)."""
    ref, start = job.ref, win.start
    block = max(2048, settings.screen_block_bytes - settings.screen_block_bytes % 2048)
    regions = _regions(win.blocks, block * _MARGIN_BLOCKS, win.end)
    reason = "whole" if job.whole else "flagged" if win.flagged else "sampled"
    lo = hi = start
    if win.flagged and regions and not job.whole and start not in job.examine:
        # the histogram of the flagged part only (a small payload is diluted in a window)
        unit = ref.itemsize or 1
        lo = max(start, regions[0][0])
        lo -= (lo - start) % unit
        hi = regions[-1][1]
    else:
        hi = win.end
    win.stats = bitplane_stats(
        view[lo - start : hi - start],
        ref.dtype,
        lo,
        reason,
        win.screen_z,
        chi2_max=settings.chi2_window,
        lsb_z_max=settings.lsb_z_max,
        grid_min=settings.grid_share_min,
    )
    if job.whole:
        _confirm(win, view, start, ref, settings, (1, 2, 3, 8))
    elif start in job.carve:
        # windows carved unconditionally (first of a tensor, sampled ones): the first window
        # of a tensor in every byte plane EvilModel-style payloads use (compressed files have
        # only their header to show), the others in the low-byte plane
        _confirm(win, view, start, ref, settings, (1,))
        if start == 0:
            head = view[: _HEAD_BYTES - _HEAD_BYTES % (ref.itemsize or 1)]
            _confirm(win, head, start, ref, settings, (2, 3, 8))
    if not win.flagged or job.whole:
        return
    for lo, hi in regions:
        lo -= lo % (ref.itemsize or 1)
        if lo >= start:
            data = view[lo - start : hi - start]
        else:
            data = _join(ref, prev, lo, start, view[: hi - start], fd)
        _confirm(win, data, lo, ref, settings, (1, 2, 3, 8))


_HEAD_BYTES = 64 * 1024
"""Bytes at the start of each tensor carved in every byte plane: where an EvilModel-style
writer starts, so a compressed file (nothing but its header to show) is found there."""


def _regions(blocks: list[tuple[int, int]], margin: int, end: int) -> list[tuple[int, int]]:
    """Merge flagged blocks widened by `margin` bytes into disjoint ranges."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(blocks):
        lo, hi = max(0, lo - margin), min(end, hi + margin)
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _join(
    ref: TensorRef,
    prev: tuple[int, npt.NDArray[np.uint8]] | None,
    lo: int,
    start: int,
    head: npt.NDArray[np.uint8],
    fd: int,
) -> npt.NDArray[np.uint8]:
    """Return the bytes [lo, start) of the tensor followed by `head`."""
    import numpy as np

    from modelguard.indicators.tensors import read_ranges

    if prev is not None and prev[0] + len(prev[1]) == start and len(prev[1]) >= start - lo:
        tail = prev[1][len(prev[1]) - (start - lo) :]
    else:
        tail = np.empty(start - lo, np.uint8)
        for _off, _chunk in read_ranges(ref, [(lo, start)], tail, fd=fd):
            pass
    return np.concatenate((tail, head))


def _confirm(
    win: Win,
    data: npt.NDArray[np.uint8],
    base: int,
    ref: TensorRef,
    settings: IndicatorSettings,
    widths: tuple[int, ...],
) -> None:
    """Carve and look for printable runs in the streams of `data` (width 8: raw bytes)."""
    size = ref.itemsize
    streams = low_byte_streams(data, size, widths)
    if 8 in widths:
        streams[size] = data.tobytes()
    seen = {(off, hit.kind) for off, hit in win.carved}
    for width, stream in sorted(streams.items()):
        where = "raw bytes" if width == size else f"low {width} byte(s) of each value"
        for hit in carve(stream, settings.carve_min_bytes):
            offset = base + (hit.offset // width) * size
            if (offset, hit.kind) not in seen:
                seen.add((offset, hit.kind))
                detail = f"{hit.detail}; stream: {where}"
                win.carved.append((offset, Carved(hit.kind, hit.offset, hit.length, detail)))
        for at, length in printable_runs(stream, settings.printable_run_min):
            win.runs.append((base + (at // width) * size, length, where))


def _merge(ref: TensorRef, wins: list[Win]) -> TensorStats:
    size = ref.itemsize or 1
    numel = sum(w.n for w in wins)
    flagged = [w.stats for w in wins if w.flagged and w.stats is not None]
    examined = [w.stats for w in wins if not w.flagged and w.stats is not None]
    constant = numel >= 2 and all(w.uniform and w.first == wins[0].first for w in wins)
    return TensorStats(
        name=ref.name,
        dtype=ref.dtype,
        numel_read=numel,
        bytes_read=numel * size,
        full=numel * size >= ref.nbytes,
        nan=sum(w.nan for w in wins),
        posinf=sum(w.posinf for w in wins),
        neginf=sum(w.neginf for w in wins),
        subnormal=sum(w.subnormal for w in wins),
        zero=sum(w.zero for w in wins),
        constant=constant,
        low16_zero=sum(w.low16_zero for w in wins),
        windows=tuple((flagged + examined)[:_KEEP_WINDOWS]),
    )
