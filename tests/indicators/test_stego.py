"""Tests of the bit-plane statistics (stego) and the structure-validated carver (carve)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelguard.indicators.carve import carve, low_byte_streams
from modelguard.indicators.stego import bitplane_stats

from ._w_helpers import elf_file, load_minilm, pe_file, plant, text_payload, zip_file


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(elf_file(), "elf"), (pe_file(), "pe"), (zip_file(), "zip"), (text_payload(), "script")],
)
def test_carver_finds_validated_files(payload: bytes, kind: str) -> None:
    noise = np.random.default_rng(0).bytes(5000)
    hits = carve(noise + payload + noise, 64)
    assert [(h.kind, h.offset) for h in hits if h.kind == kind][:1] == [(kind, 5000)]


@pytest.mark.parametrize(
    "blob",
    [
        b"MZ" + bytes(200),  # bare MZ, no PE header
        b"\x7fELF" + bytes(60),  # magic with invalid class
        elf_file()[:40],  # truncated header
        b"PK\x03\x04" + bytes(26),  # empty name
        b"#!/bin/sh",  # no end of line
    ],
)
def test_carver_rejects_bare_signatures(blob: bytes) -> None:
    assert carve(blob + b"\xff" * 16, 1) == []


def test_carver_never_fires_on_random_bytes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(4000):  # 4000 windows of 16 KiB, with planted bare magics
        data = bytearray(rng.bytes(16384))
        for magic in (b"MZ", b"PK\x03\x04", b"\x7fELF", b"#!/", b"\x1f\x8b\x08", b"BZh9"):
            at = int(rng.integers(0, 16000))
            data[at : at + len(magic)] = magic
        assert carve(bytes(data), 1) == []


def test_carver_never_fires_on_real_weights() -> None:
    windows = 0
    for name, value in load_minilm().items():
        if value.dtype != np.float32:
            continue
        raw = value.reshape(-1).view(np.uint8)
        for lo in range(0, len(raw), 1 << 18):
            streams = low_byte_streams(raw[lo : lo + (1 << 18)], 4)
            streams[4] = raw[lo : lo + (1 << 18)].tobytes()
            for width, stream in streams.items():
                assert carve(stream, 1) == [], (name, lo, width)
                windows += 1
    assert windows > 1000


def test_low_byte_streams_rebuild_the_payload() -> None:
    weights = np.random.default_rng(1).standard_normal(4096).astype(np.float32)
    payload = elf_file(3000)
    for width in (1, 2, 3):
        w = weights.copy()
        plant(w, payload, width, 10)
        stream = low_byte_streams(w.view(np.uint8), 4)[width]
        assert stream[10 * width : 10 * width + len(payload)] == payload


def test_bitplane_stats_separate_weights_from_text() -> None:
    weights = (np.random.default_rng(2).standard_normal(1 << 18) * 0.02).astype(np.float32)
    clean = bitplane_stats(weights.view(np.uint8), "F32", 0, "sampled")
    assert 150 < clean.chi2 < 400 and abs(clean.lsb_z) < 5
    assert 0.35 < clean.mantissa_top < 0.47
    dirty = weights.copy()
    plant(dirty, text_payload(16384), 1, 0)
    bad = bitplane_stats(dirty.view(np.uint8), "F32", 0, "flagged")
    assert bad.chi2 > 1000


def test_bitplane_stats_exclude_narrow_origin_and_grid_values() -> None:
    rng = np.random.default_rng(3)
    weights = (rng.standard_normal(1 << 16) * 0.02).astype(np.float32)
    half = weights.copy()
    half[: 1 << 15] = half[: 1 << 15].astype(np.float16).astype(np.float32)  # upcast rows
    st = bitplane_stats(half.view(np.uint8), "F32", 0, "sampled")
    assert st.kept < 40_000 and st.chi2 < 400
    # torch's uniform_: a 24-bit fraction scaled and shifted in float32
    frac = (rng.integers(0, 1 << 24, 1 << 16) * 2.0**-24).astype(np.float32)
    bound = np.float32(0.0625)
    grid = (frac * (bound * np.float32(2)) - bound).astype(np.float32)
    gs = bitplane_stats(grid.view(np.uint8), "F32", 0, "whole")
    assert gs.grid >= 0.99 and math.isnan(gs.chi2)
    bf = bitplane_stats(np.zeros(64, np.uint8), "BF16", 0, "whole")
    assert math.isnan(bf.chi2)


def _png_file() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(range(256)) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", ["gzip", "png", "pdf", "bzip2"])
def test_carver_finds_compressed_and_document_formats(kind: str) -> None:
    import bz2
    import gzip

    text = b"payload text " * 100
    blob = {
        "gzip": gzip.compress(text),
        "png": _png_file(),
        "pdf": b"%PDF-1.4\n" + text + b"%%EOF\n",
        "bzip2": bz2.compress(text),
    }[kind]
    noise = np.random.default_rng(4).bytes(3000)
    hits = carve(noise + blob + noise, 8)
    assert [(h.kind, h.offset) for h in hits if h.kind == kind][:1] == [(kind, 3000)]
    broken = bytearray(blob)
    broken[12:40] = bytes(28)  # header fields / CRC / stream no longer valid
    if kind != "pdf":
        assert [h for h in carve(noise + bytes(broken) + noise, 8) if h.kind == kind] == []


def test_printable_runs() -> None:
    from modelguard.indicators.carve import printable_runs

    noise = np.random.default_rng(5).bytes(20000)
    assert printable_runs(noise, 96) == []
    assert printable_runs(noise[:500] + b"a" * 100 + noise[:500], 96) == [(500, 100)]
