"""Compression wrappers: detection by magic, bounded decompression, truncation with a prefix."""

from __future__ import annotations

import bz2
import gzip
import lzma
import pickle
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import BytesBlob
from modelguard.formats.compress import (
    RATIO_FLOOR,
    TruncatedStream,
    decompress,
    detect_wrapper,
    detect_wrapper_blob,
    output_cap,
)

LIMITS = Limits()
PKL = pickle.dumps({"weights": list(range(2000)), "name": "model"}, protocol=4)  # never loaded


def zf_wrap(data: bytes, extra_space: bool = False) -> bytes:
    """joblib < 0.9.3 format: b"ZF" + hex length padded to 19 bytes + zlib stream."""
    return (
        b"ZF"
        + hex(len(data)).encode().ljust(19)
        + (b" " if extra_space else b"")
        + (zlib.compress(data))
    )


def gzip_with_header_fields(data: bytes) -> bytes:
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = body.compress(data) + body.flush()
    extra = b"AB\x02\x00hi"
    header = b"\x1f\x8b\x08" + bytes([0x04 | 0x08 | 0x10 | 0x02]) + b"\0" * 4 + b"\0\xff"
    header += struct.pack("<H", len(extra)) + extra + b"name.pkl\0" + b"a comment\0" + b"\0\0"
    return header + deflated + struct.pack("<II", zlib.crc32(data), len(data))


# (id, compress, kind)
ROUND_TRIPS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("gzip", gzip.compress, "gzip"),
    ("gzip fextra fname fcomment fhcrc", gzip_with_header_fields, "gzip"),
    ("bz2", bz2.compress, "bz2"),
    ("xz", lzma.compress, "xz"),
    ("lzma alone", lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), "lzma"),
    ("zlib", zlib.compress, "zlib"),
    ("zlib level 1", lambda d: zlib.compress(d, 1), "zlib"),
    ("zlib level 9", lambda d: zlib.compress(d, 9), "zlib"),
    ("joblib ZF", zf_wrap, "joblib-zf"),
    ("joblib ZF py2 space", lambda d: zf_wrap(d, True), "joblib-zf"),
]


@pytest.mark.parametrize(
    ("fn", "kind"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS]
)
def test_detect_and_decompress(fn: Callable[[bytes], bytes], kind: str) -> None:
    blob = BytesBlob(fn(PKL))
    assert detect_wrapper_blob(blob) == kind
    assert decompress(blob, kind, LIMITS).data == PKL


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (lambda a, b: gzip.compress(a) + gzip.compress(b), "gzip"),
        (lambda a, b: gzip.compress(a) + b"\0" * 7 + gzip.compress(b), "gzip"),
        (lambda a, b: bz2.compress(a) + bz2.compress(b), "bz2"),
        (lambda a, b: lzma.compress(a) + lzma.compress(b), "xz"),
        (lambda a, b: zlib.compress(a) + zlib.compress(b), "zlib"),
    ],
    ids=["gzip", "gzip zero padding", "bz2", "xz", "zlib"],
)
def test_multi_member(fn: Callable[[bytes, bytes], bytes], kind: str) -> None:
    assert decompress(BytesBlob(fn(PKL, b"second")), kind, LIMITS).data == PKL + b"second"


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz"])
def test_trailing_garbage_ignored(kind: str) -> None:
    fn = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind]
    assert decompress(BytesBlob(fn(PKL) + b"garbage!"), kind, LIMITS).data == PKL


@pytest.mark.parametrize("compressor", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_real_joblib_dumps(tmp_path: Path, compressor: str) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "model.joblib"
    joblib.dump({"a": [1, 2, 3]}, path, compress=(compressor, 3))
    blob = BytesBlob(path.read_bytes())
    kind = detect_wrapper_blob(blob)
    assert kind == compressor
    assert decompress(blob, kind, LIMITS).data.startswith(b"\x80")


def test_joblib_zfile(tmp_path: Path) -> None:
    compat = pytest.importorskip("joblib.numpy_pickle_compat")
    path = tmp_path / "old.pkl"
    with path.open("wb") as f:
        compat.write_zfile(f, PKL)
    blob = BytesBlob(path.read_bytes())
    assert detect_wrapper_blob(blob) == "joblib-zf"
    assert decompress(blob, "joblib-zf", LIMITS).data == PKL


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        # lz4 frames and zstd decode when their optional packages are installed
        # (tests/formats/test_optional_wrappers.py covers both cases).
        (b"\x02\x21\x4c\x18" + b"\0" * 20, "lz4"),
        (b"7z\xbc\xaf\x27\x1c" + b"\0" * 20, "7z"),
    ],
)
def test_unsupported_wrappers(head: bytes, kind: str) -> None:
    assert detect_wrapper(head) == kind
    with pytest.raises(FormatError, match="not supported"):
        decompress(BytesBlob(head), kind, LIMITS)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        PKL,
        b"PK\x03\x04" + b"\0" * 40,
        b"\x78\x9c" + b"\xff" * 100,  # zlib header, garbage deflate
        b"\x78\x9c",  # header only
        b"\x5d\x00\x00\x00\x01" + b"\xff" * 8 + b"\xff" * 10,  # lzma header, garbage
        b"\x5d\x12\x34\x56\x78" + b"\xff" * 20,  # odd lzma dictionary size
        b"ZF0xzz" + b" " * 30,
        b"BZh",
        b"hello world, just text",
    ],
)
def test_not_a_wrapper(head: bytes) -> None:
    assert detect_wrapper(head) is None


def test_random_bytes_rarely_look_like_zlib() -> None:
    import random

    rnd = random.Random(1234)
    hits = [h for h in (rnd.randbytes(4096) for _ in range(20_000)) if detect_wrapper(h)]
    assert hits == []


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (gzip.compress, "gzip"),
        (bz2.compress, "bz2"),
        (lzma.compress, "xz"),
        (lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), "lzma"),
        (zlib.compress, "zlib"),
        (zf_wrap, "joblib-zf"),
    ],
)
def test_truncated_exposes_prefix(fn: Callable[[bytes], bytes], kind: str) -> None:
    data = fn(PKL * 20)
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(TruncatedStream) as info:
        decompress(BytesBlob(cut), kind, LIMITS)
    assert (PKL * 20).startswith(info.value.partial)
    assert info.value.partial or kind == "bz2"  # bz2 emits nothing before a block is complete
    assert isinstance(info.value, FormatError)


def test_corrupt_stream() -> None:
    data = bytearray(gzip.compress(PKL * 20))
    data[10] |= 0x06  # deflate block type 3 is invalid
    with pytest.raises(FormatError, match="corrupt"):
        decompress(BytesBlob(bytes(data)), "gzip", LIMITS)


def test_gzip_bad_crc_tolerated() -> None:
    data = bytearray(gzip.compress(PKL))
    data[-8] ^= 0xFF  # gzip.open only complains after the pickle was already read
    assert decompress(BytesBlob(bytes(data)), "gzip", LIMITS).data == PKL


def test_output_cap() -> None:
    assert output_cap(Limits(max_member_bytes=10, max_ratio=5), 1) == (10, "max_member_bytes")
    assert output_cap(Limits(max_ratio=2), 100) == (2 * RATIO_FLOOR, "max_ratio")
    assert output_cap(Limits(max_ratio=2), 3 * RATIO_FLOOR) == (6 * RATIO_FLOOR, "max_ratio")


BOMB_SIZE = 32 << 20
BOMBS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("gzip", gzip.compress),
    ("bz2", bz2.compress),
    ("xz", lambda d: lzma.compress(d, preset=1)),  # 1 MiB dictionary
    ("zlib", zlib.compress),
    ("joblib-zf", zf_wrap),
]


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    zeros = b"\0" * BOMB_SIZE
    return {kind: fn(zeros) for kind, fn in BOMBS}


@pytest.mark.parametrize("kind", [b[0] for b in BOMBS])
@pytest.mark.parametrize(
    ("limits", "name"),
    [(Limits(max_member_bytes=1 << 20), "max_member_bytes"), (Limits(max_ratio=3), "max_ratio")],
)
def test_bombs_stop_at_the_cap(
    bombs: dict[str, bytes], kind: str, limits: Limits, name: str
) -> None:
    blob = BytesBlob(bombs[kind])
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as info:
            decompress(blob, kind, limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.limit == name
    cap = output_cap(limits, blob.size)[0]
    dictionary = 1 << 20 if kind == "xz" else 0
    assert peak < 2 * cap + dictionary + (1 << 20)  # output and its copy, never the bomb


@pytest.mark.parametrize("dict_size", [1 << 30, 0xFFFFFFFF])
def test_lzma_dictionary_bomb(dict_size: int) -> None:
    # A 30-byte .lzma file may declare a 4 GiB dictionary that liblzma would allocate.
    small = lzma.compress(b"x", format=lzma.FORMAT_ALONE)
    data = small[:1] + struct.pack("<I", dict_size) + small[5:]
    with pytest.raises(LimitExceeded) as info:
        decompress(BytesBlob(data), "lzma", Limits(max_member_bytes=1 << 20))
    assert info.value.limit == "max_member_bytes"
