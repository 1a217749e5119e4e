"""The fast paths of the tensor pass give exactly the results of plain reference computations.

The screen's row sums (one 64-bit add per eight lanes), the batched screen of consecutive
windows, the prefix-table signature search and the translated printable-run search are all
speed-ups of simple computations; these tests hold them to those computations, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelguard.indicators import _rows, _screen, carve, weights
from modelguard.indicators.settings import IndicatorSettings
from modelguard.indicators.stego import bitplane_stats
from modelguard.indicators.tensors import list_tensors

from ._w_helpers import elf_file, plant, save, text_payload, zip_file

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def _floats(dtype: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """Raw bytes of `count` Gaussian weights of `dtype` (BF16: truncated float32)."""
    values = rng.standard_normal(count) * 0.02
    if dtype == "BF16":
        top = values.astype(np.float32).view(np.uint32) >> 16
        return top.astype(np.uint16).view(np.uint8).copy()
    return values.astype(_DTYPES[dtype]).view(np.uint8).copy()


def _reference_counts(data: np.ndarray, bits: _screen.Bits, block: int) -> list[int]:
    """Set screen bits per block, one value at a time (unpackbits of the masked values)."""
    udt = np.dtype(f"<u{bits.itemsize}")
    masked = data[: len(data) - len(data) % 8].view(udt) & udt.type(bits.screen)
    per = block // bits.itemsize
    return [
        int(np.unpackbits(masked[at : at + per].view(np.uint8)).sum())
        for at in range(0, len(masked), per)
    ]


@pytest.mark.parametrize("dtype", ["F32", "F64", "F16", "BF16"])
@pytest.mark.parametrize("block", [2048, 4096, 8192])
def test_block_counts_match_a_plain_count(dtype: str, block: int) -> None:
    rng = np.random.default_rng(7)
    bits = _screen.FLOATS[dtype]
    scratch = np.empty(1 << 18, np.uint8)
    for size in (8, 1024, 2048 + 8, 3 * block + 1024, 1 << 17):
        data = _floats(dtype, size // bits.itemsize, rng)
        data = data[: len(data) - len(data) % 8]
        # every screen bit set: the lanes at their largest (no carry between them)
        full = np.full(len(data), 0xFF, np.uint8)
        for sample in (data, full, rng.integers(0, 256, len(data), dtype=np.uint8)):
            want = _reference_counts(sample, bits, block)
            got = _rows.block_counts(sample, bits, block, scratch).tolist()
            assert got == want, (dtype, size)
            exponent = _rows.EXPONENT_WORD.get(bits.itemsize)
            if exponent is not None:  # the fused AND: exponents summed above the counts
                fused = _rows.block_counts(sample, bits, block, scratch, exponent)
                assert fused.tolist() == want, (dtype, size)


@pytest.mark.parametrize("dtype", ["F32", "F64", "F16", "BF16"])
def test_window_counts_match_numpy(dtype: str) -> None:
    rng = np.random.default_rng(17)
    settings = IndicatorSettings()
    bits = _screen.FLOATS[dtype]
    view = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}.get(dtype)
    scratch = np.empty(1 << 17, np.uint8)
    for case in range(8):
        data = _floats(dtype, (1 << 16) // bits.itemsize + case, rng)
        udt = np.dtype(f"<u{bits.itemsize}")
        u = data.view(udt)
        picks = rng.integers(0, len(u), 4 * case)
        if case % 4 == 1:
            u[picks] = udt.type(bits.exponent)  # +inf
            u[picks[::2]] |= udt.type(1)  # NaN
        elif case % 4 == 2:
            u[picks] = udt.type(1)  # the smallest subnormal
            u[picks[::3]] = 0
        elif case % 4 == 3:
            u[:] = u[0]
        win = _screen.float_window(data, bits, 0, scratch, settings)
        magnitude = u & udt.type((1 << (8 * bits.itemsize - 1)) - 1)
        exponent = u & udt.type(bits.exponent)
        assert win.uniform == bool((u == u[0]).all())
        assert win.zero == int((magnitude == 0).sum())
        assert win.subnormal == int(((exponent == 0) & (magnitude != 0)).sum())
        if view is not None:
            values = data.view(view)
            assert win.nan == int(np.isnan(values).sum())
            assert win.posinf + win.neginf == int(np.isinf(values).sum())


def _wins(items: list[_screen.Win]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(w) for w in items]


@pytest.mark.parametrize("dtype", ["F32", "F64", "F16", "BF16"])
def test_batched_windows_equal_single_windows(dtype: str) -> None:
    rng = np.random.default_rng(11)
    settings = IndicatorSettings()
    bits = _screen.FLOATS[dtype]
    window = 1 << 16
    scratch = np.empty(8 * window, np.uint8)
    for case in range(6):
        data = _floats(dtype, (4 * window + 8 * case * bits.itemsize) // bits.itemsize, rng)
        if case == 1:  # text in the low bytes of the second window
            data[window + 4096 : window + 4096 + 2000 : bits.itemsize] = 65
        elif case == 2:  # raw bytes stored as values (wild magnitudes) in the third window
            data[2 * window : 2 * window + 8192] = rng.integers(0, 256, 8192, dtype=np.uint8)
        elif case == 3:  # non-finite values and zeros
            data[window : window + 64] = 0xFF
            data[3 * window : 3 * window + 4096] = 0
        elif case == 4 and dtype == "F32":  # bfloat16-origin window
            data[: 2 * window].view(np.uint32)[:] &= np.uint32(0xFFFF0000)
        elif case == 5:  # a constant tensor
            data[:] = data[: bits.itemsize].tolist() * (len(data) // bits.itemsize)
        batched = _screen.float_windows(data, bits, 4096, window, scratch, settings)
        single = [
            _screen.float_window(data[at : at + window], bits, 4096 + at, scratch, settings)
            for at in range(0, len(data), window)
        ]
        assert _wins(batched) == _wins(single), (dtype, case)
        if case in (1, 2):
            assert any(w.flagged for w in batched), (dtype, case)


def test_batched_pass_equals_window_by_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((1024, 1100)) * 0.02).astype(np.float32)
    b = (rng.standard_normal((2048, 1024)) * 0.02).astype(np.float32)
    plant(b, text_payload(4000), 1, 300_000)
    plant(b, elf_file(), 2, 1_000_000)
    c = (rng.standard_normal((700, 1000)) * 0.02).astype(np.float32)
    c.reshape(-1)[[5, 900_000 // 4]] = np.nan
    tensors = {"a": a, "b": b, "c": c, "i": rng.integers(0, 3, 300_000).astype(np.int64)}
    path = save(tensors, tmp_path / "m.safetensors")
    listing = list_tensors(str(path))
    for settings in (
        replace(IndicatorSettings(), mode="full", window_bytes=1 << 18),
        replace(IndicatorSettings(), mode="full", window_bytes=3 * 4096 + 8),
        IndicatorSettings(),
    ):
        batched = weights.analyse_file(listing, "m", settings, workers=2)
        monkeypatch.setattr(weights, "_BATCH", 1)
        single = weights.analyse_file(listing, "m", settings, workers=1)
        monkeypatch.undo()
        assert batched[0] == single[0]
        assert [repr(s) for s in batched[1]] == [repr(s) for s in single[1]]
        rules = {(f.rule_id, f.location.members) for f in batched[0]}
        if settings.mode == "full":
            assert ("MG501", ("<tensor c>",)) in rules, rules
            assert ("MG504", ("<tensor b>",)) in rules, rules
            assert ("MG505", ("<tensor b>",)) in rules, rules


def _reference_carve(stream: bytes, min_bytes: int) -> list[carve.Carved]:
    """The plain search: every occurrence of each signature, with `bytes.find`."""
    found = []
    for magic, check in carve._CHECKS:
        pos = stream.find(magic)
        while pos >= 0:
            hit = check(stream, pos)
            if hit is not None and hit.length >= min_bytes:
                found.append(hit)
            pos = stream.find(magic, pos + 1)
    found.sort(key=lambda c: (c.offset, c.kind))
    return found


def test_signature_prefixes_are_distinct() -> None:
    prefixes = [magic[:2] for magic, _check in carve._CHECKS]
    assert len(set(prefixes)) == len(prefixes)


def test_carve_matches_the_plain_search() -> None:
    rng = np.random.default_rng(5)
    blobs = [elf_file(), zip_file(), b"%PDF-1.7\n%%EOF", b"#!/bin/sh\necho hi\n" * 8]
    magics = [magic for magic, _check in carve._CHECKS]
    for trial in range(40):
        parts = [rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()]
        for _ in range(int(rng.integers(0, 4))):
            parts.append(blobs[int(rng.integers(0, len(blobs)))])
            parts.append(magics[int(rng.integers(0, len(magics)))])  # bare (invalid) magics
            parts.append(rng.integers(0, 256, int(rng.integers(0, 99)), dtype=np.uint8).tobytes())
        stream = b"".join(parts)
        for cut in (stream, stream[1:], stream[:-1], stream[:2], stream[:1], b""):
            assert carve.carve(cut, 8) == _reference_carve(cut, 8), trial
    assert [c.kind for c in carve.carve(b"x" + elf_file(), 64)] == ["elf"]


def _reference_runs(stream: bytes, min_len: int) -> list[tuple[int, int]]:
    runs, at = [], None
    for k, byte in enumerate(stream + b"\0"):
        printable = k < len(stream) and byte in carve._PRINTABLE
        if printable and at is None:
            at = k
        elif not printable and at is not None:
            if k - at >= min_len:
                runs.append((at, k - at))
            at = None
    return runs


def test_printable_runs_match_a_plain_scan() -> None:
    rng = np.random.default_rng(9)
    for trial in range(60):
        parts = []
        for _ in range(int(rng.integers(1, 6))):
            parts.append(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes())
            length = int(rng.choice([94, 95, 96, 97, 200]))
            parts.append(bytes(rng.choice(list(carve._PRINTABLE), length).astype(np.uint8)))
        stream = b"".join(parts)
        for min_len in (1, 95, 96):
            got = carve.printable_runs(stream, min_len)
            assert got == _reference_runs(stream, min_len), (trial, min_len)
    assert carve.printable_runs(b"a" * 96, 96) == [(0, 96)]
    assert carve.printable_runs(b"a" * 95, 96) == []


def _reference_chi2(data: np.ndarray, dtype: str) -> tuple[float, float, int]:
    """Low-byte chi-square, LSB z and kept count, computed the plain way."""
    size = {"F32": 4, "F64": 8, "F16": 2}[dtype]
    words = data.view(f"<u{size}")
    low = data[::size]
    narrow = {"F32": 0x1FFF, "F64": 0x1FFFFFFF}.get(dtype)
    if narrow is not None:
        low = low[(words & words.dtype.type(narrow)) != 0]
    nbins = 32 if dtype == "F16" else 256
    low = low & np.uint8(nbins - 1)
    hist = np.bincount(low, minlength=nbins).astype(np.float64)
    probs = np.full(nbins, 1.0 / nbins)
    if narrow is not None:
        probs[0] -= 1.0 / (narrow + 1)
        probs /= probs.sum()
    expected = len(low) * probs
    chi2 = float(((hist - expected) ** 2 / expected).sum())
    lsb = (float(hist[1::2].sum()) - len(low) / 2) / math.sqrt(len(low) / 4)
    return chi2, lsb, len(low)


@pytest.mark.parametrize("dtype", ["F32", "F64", "F16"])
def test_bitplane_histogram_matches_the_plain_one(dtype: str) -> None:
    rng = np.random.default_rng(13)
    data = _floats(dtype, 50_000, rng)
    size = {"F32": 4, "F64": 8, "F16": 2}[dtype]
    words = data.view(f"<u{size}")
    words[::5] &= ~words.dtype.type({"F32": 0x1FFF, "F64": 0x1FFFFFFF, "F16": 0}[dtype])
    stats = bitplane_stats(data, dtype, 0, "sampled", chi2_max=1e12, lsb_z_max=1e12)
    chi2, lsb, kept = _reference_chi2(data, dtype)
    assert stats.kept == kept
    assert stats.chi2 == pytest.approx(chi2, rel=1e-12)
    assert stats.lsb_z == pytest.approx(lsb, rel=1e-12)
