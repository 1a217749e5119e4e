"""Optional lz4, zstd and 7z support: round trips, bounds, truncation, corruption, no package.

Fixtures are built here with the optional packages themselves; payloads are pickle bytes that
are never loaded. Tests that need a package skip when it is not installed, except the
missing-package tests, which hide it through ``sys.modules``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import lzma
import pickle
import struct
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob, BytesBlob, FileBlob
from modelguard.formats.compress import (
    TruncatedStream,
    decompress,
    detect_wrapper_blob,
    output_cap,
)
from modelguard.formats.optional_codecs import STEP_BYTES, ZSTD_WINDOW_FLOOR
from modelguard.formats.sevenzip import find_7z, open_7z_member, read_7z

LIMITS = Limits()
PKL = pickle.dumps({"weights": list(range(2000)), "name": "model"}, protocol=4)  # never loaded
# Several lz4 and zstd blocks, compressing evenly (so a cut stream still has whole blocks).
BIG = pickle.dumps({"weights": list(range(120_000)), "name": "model"}, protocol=4)
SKIPPABLE = struct.pack("<II", 0x184D2A53, 5) + b"skip!"


def lz4f() -> Any:
    return pytest.importorskip("lz4.frame")


def zstd() -> Any:
    return pytest.importorskip("zstandard")


def py7zr() -> Any:
    return pytest.importorskip("py7zr")


def zstd_stream(data: bytes) -> bytes:
    """A zstd frame written by a streaming compressor: no content size, a window descriptor."""
    c = zstd().ZstdCompressor(write_checksum=True).compressobj()
    return bytes(c.compress(data) + c.flush())


# (id, kind, compress)
ROUND_TRIPS: list[tuple[str, str, Callable[[bytes], bytes]]] = [
    ("lz4", "lz4", lambda d: lz4f().compress(d)),
    (
        "lz4 64k blocks, checksums, no size",
        "lz4",
        lambda d: lz4f().compress(
            d, block_size=lz4f().BLOCKSIZE_MAX64KB, content_checksum=True, store_size=False
        ),
    ),
    ("lz4 independent blocks", "lz4", lambda d: lz4f().compress(d, block_linked=False)),
    ("zstd", "zstd", lambda d: zstd().ZstdCompressor().compress(d)),
    ("zstd level 19", "zstd", lambda d: zstd().ZstdCompressor(level=19).compress(d)),
    ("zstd streaming with checksum", "zstd", zstd_stream),
]


@pytest.mark.parametrize(
    ("kind", "fn"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS]
)
@pytest.mark.parametrize("payload", [PKL, BIG, b""], ids=["pickle", "big", "empty"])
def test_round_trip(kind: str, fn: Callable[[bytes], bytes], payload: bytes) -> None:
    blob = BytesBlob(fn(payload))
    assert detect_wrapper_blob(blob) == kind
    assert decompress(blob, kind, LIMITS).data == payload


@pytest.mark.parametrize(
    ("kind", "fn"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS]
)
def test_frames_follow_one_another(kind: str, fn: Callable[[bytes], bytes]) -> None:
    data = fn(PKL) + SKIPPABLE + fn(b"second") + b"trailing garbage is ignored"
    assert decompress(BytesBlob(data), kind, LIMITS).data == PKL + b"second"


@pytest.mark.parametrize(
    ("kind", "fn"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS]
)
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7, 0.999])
def test_truncated_exposes_prefix(kind: str, fn: Callable[[bytes], bytes], fraction: float) -> None:
    data = fn(BIG)
    cut = data[: max(5, int(len(data) * fraction))]
    with pytest.raises(TruncatedStream) as info:
        decompress(BytesBlob(cut), kind, LIMITS)
    assert BIG.startswith(info.value.partial)
    if fraction == 0.7:
        assert info.value.partial  # whole blocks before the cut are decoded


@pytest.mark.parametrize("kind", ["lz4", "zstd"])
def test_corrupt_block(kind: str) -> None:
    # With checksums: lz4 and zstd only notice corrupt literals through them.
    lz4_mod = lz4f() if kind == "lz4" else None
    data = bytearray(lz4_mod.compress(BIG, content_checksum=True) if lz4_mod else zstd_stream(BIG))
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0x5A
    with pytest.raises(FormatError):
        decompress(BytesBlob(bytes(data)), kind, LIMITS)


def test_lz4_legacy_format_not_supported() -> None:
    lz4f()
    with pytest.raises(FormatError, match="legacy"):
        decompress(BytesBlob(b"\x02\x21\x4c\x18" + b"\0" * 20), "lz4", LIMITS)


def test_zstd_reserved_bit_in_first_frame() -> None:
    data = bytearray(zstd().ZstdCompressor().compress(PKL))
    data[4] |= 0x08
    with pytest.raises(FormatError, match="reserved"):
        decompress(BytesBlob(bytes(data)), "zstd", LIMITS)


@pytest.mark.parametrize(("exponent", "refused"), [(13, False), (21, True)], ids=["8 MiB", "2 GiB"])
def test_zstd_window_limit(exponent: int, refused: bool) -> None:
    data = bytearray(zstd_stream(PKL))
    assert not data[4] & 0x20  # not single-segment: byte 5 is the window descriptor
    data[5] = exponent << 3  # window = 2 ** (10 + exponent)
    limits = Limits(max_member_bytes=1 << 20)
    if refused:
        with pytest.raises(LimitExceeded) as info:
            decompress(BytesBlob(bytes(data)), "zstd", limits)
        assert info.value.limit == "max_member_bytes"
    else:
        assert decompress(BytesBlob(bytes(data)), "zstd", limits).data == PKL
    assert ZSTD_WINDOW_FLOOR < 1 << (10 + 21)


BOMB_SIZE = 32 << 20
BOMBS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("lz4", lambda d: lz4f().compress(d)),
    ("zstd", lambda d: zstd().ZstdCompressor().compress(d)),
    ("zstd streaming", zstd_stream),
]


@pytest.mark.parametrize(("kind", "fn"), BOMBS, ids=[b[0] for b in BOMBS])
@pytest.mark.parametrize(
    ("limits", "name"),
    [(Limits(max_member_bytes=1 << 20), "max_member_bytes"), (Limits(max_ratio=3), "max_ratio")],
)
def test_bombs_stop_at_the_cap(
    kind: str, fn: Callable[[bytes], bytes], limits: Limits, name: str
) -> None:
    blob = BytesBlob(fn(b"\0" * BOMB_SIZE))
    assert blob.size < BOMB_SIZE // 100
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as info:
            decompress(blob, kind.split()[0], limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.limit == name
    cap = output_cap(limits, blob.size)[0]
    assert peak < 2 * cap + 2 * STEP_BYTES + (1 << 20)  # output, its copy, one step; no bomb


# -- missing packages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "head", "modules", "package"),
    [
        ("lz4", b"\x04\x22\x4d\x18", ("lz4", "lz4.frame"), "lz4"),
        ("zstd", b"\x28\xb5\x2f\xfd", ("zstandard",), "zstandard"),
    ],
)
def test_missing_package_is_not_supported(
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    head: bytes,
    modules: tuple[str, ...],
    package: str,
) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(FormatError, match="not supported") as info:
        decompress(BytesBlob(head + b"\0" * 20), kind, LIMITS)
    assert f"modelguard[archives] (the {package} package)" in str(info.value)
    assert type(info.value) is FormatError


def test_missing_py7zr_is_not_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "py7zr", None)
    with pytest.raises(FormatError, match=r"not supported.*modelguard\[archives\] \(py7zr\)"):
        read_7z(BytesBlob(b"7z\xbc\xaf\x27\x1c" + b"\0" * 26), LIMITS)


def test_decompress_points_7z_to_the_archive_reader() -> None:
    with pytest.raises(FormatError, match=r"not supported.*read_7z"):
        decompress(BytesBlob(b"7z\xbc\xaf\x27\x1c" + b"\0" * 26), "7z", LIMITS)


# -- 7z -----------------------------------------------------------------------------------


def seven(files: list[tuple[str, bytes]], encoded_header: bool = True, **kw: Any) -> bytes:
    """A 7z archive written by py7zr into memory."""
    buf = io.BytesIO()
    with py7zr().SevenZipFile(buf, "w", **kw) as archive:
        archive.set_encoded_header_mode(encoded_header)
        for name, data in files:
            archive.writestr(data, name)
    return buf.getvalue()


def num7z(n: int, width: int | None = None) -> bytes:
    """7zFormat.txt UINT64: the first byte's leading ones count the extra bytes."""
    fits = (i for i in range(8) if n < 1 << (7 * i + 7))
    extra = width - 1 if width is not None else next(fits, 8)
    if extra >= 8:
        return b"\xff" + n.to_bytes(8, "little")
    high = n >> (8 * extra)
    assert high < 1 << (7 - extra)
    return bytes([(0xFF00 >> extra) & 0xFF | high]) + (n & ((1 << 8 * extra) - 1)).to_bytes(
        extra, "little"
    )


def reheader(data: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """Apply ``edit`` to a plain (not encoded) next header and fix both CRCs."""
    offset, size = struct.unpack_from("<QQ", data, 12)
    start = 32 + offset
    header = edit(data[start : start + size])
    assert len(header) == size
    tail = struct.pack("<QQI", offset, size, zlib.crc32(header))
    sig = data[:8] + struct.pack("<I", zlib.crc32(tail)) + tail
    return sig + data[32:start] + header + data[start + size :]


def fix_crcs(data: bytes) -> bytes:
    """Recompute both header CRCs of a (mutated) 7z archive whose header fields are in range."""
    offset, size = struct.unpack_from("<QQ", data, 12)
    start = 32 + offset
    if len(data) < 32 or start + size > len(data):
        return data
    tail = struct.pack("<QQI", offset, size, zlib.crc32(data[start : start + size]))
    return data[:8] + struct.pack("<I", zlib.crc32(tail)) + tail + data[32:]


def encoded_header_archive(header: bytes) -> bytes:
    """A 7z archive with no data and ``header`` (a raw header) LZMA2-encoded."""
    filt = {"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}
    packed = lzma.compress(header, format=lzma.FORMAT_RAW, filters=[filt])
    streams = (
        b"\x06" + num7z(0) + num7z(1) + b"\x09" + num7z(len(packed)) + b"\x00"  # pack info
        + b"\x07\x0b" + num7z(1) + b"\x00"  # one folder, inline
        + b"\x01" + b"\x21\x21" + num7z(1) + b"\x14"  # LZMA2 coder, 1 MiB dictionary
        + b"\x0c" + num7z(len(header)) + b"\x00" + b"\x00"
    )  # fmt: skip
    encoded = b"\x17" + streams
    tail = struct.pack("<QQI", len(packed), len(encoded), zlib.crc32(encoded))
    sig = b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(tail)) + tail
    return sig + packed + encoded


def many_files_header(n: int) -> bytes:
    # kHeader, kFilesInfo, n files, a dummy property padding the header so py7zr's own
    # count check (one byte per file) passes, kEnd, kEnd.
    return b"\x01\x05" + num7z(n) + b"\x19" + num7z(n) + b"\0" * n + b"\x00\x00"


@pytest.mark.parametrize(
    "n", [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 1 << 30, (1 << 56) - 1, (1 << 64) - 1]
)
def test_num7z_round_trip(n: int) -> None:
    from modelguard.formats.sevenzip_header import _Cursor

    for width in {None, 9}:
        assert _Cursor(num7z(n, width)).number() == n


@pytest.mark.parametrize(
    "filters",
    [
        None,
        [{"id": lzma.FILTER_LZMA1}],
        [{"id": lzma.FILTER_DELTA}, {"id": lzma.FILTER_LZMA2}],
        [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2}],
        "COPY",
        "BZIP2",
        "BROTLI",
        "DEFLATE",
        "ZSTD",
    ],
    ids=lambda f: f if isinstance(f, str) else repr(f and [x["id"] for x in f]),
)
@pytest.mark.parametrize("encoded_header", [True, False], ids=["encoded", "plain"])
def test_7z_round_trip(filters: Any, encoded_header: bool) -> None:
    mod = py7zr()
    if isinstance(filters, str):
        filters = [{"id": getattr(mod, f"FILTER_{filters}")}]
    files = [("model/data.pkl", PKL), ("model/version", b"3"), ("empty", b"")]
    blob = BytesBlob(seven(files, encoded_header, filters=filters))
    assert find_7z(blob)
    assert detect_wrapper_blob(blob) == "7z"
    view = read_7z(blob, LIMITS)
    assert [(m.name, m.size, m.is_dir, m.is_symlink) for m in view.members] == [
        (name, len(data), False, False) for name, data in files
    ]
    assert view.anomalies == ()
    for name, data in files:
        assert open_7z_member(blob, view, name, LIMITS).data == data


def test_7z_directories_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "m.pkl").write_bytes(PKL)
    (root / "link").symlink_to("sub/m.pkl")
    path = tmp_path / "a.7z"
    with py7zr().SevenZipFile(path, "w") as archive:
        archive.writeall(root, "src")
    with FileBlob.open(path) as blob:
        view = read_7z(blob, LIMITS)
        kinds = {m.name: (m.is_dir, m.is_symlink) for m in view.members}
        assert kinds == {
            "src": (True, False),
            "src/sub": (True, False),
            "src/sub/m.pkl": (False, False),
            "src/link": (False, True),
        }
        assert open_7z_member(blob, view, "src/sub", LIMITS).data == b""
        assert open_7z_member(blob, view, "src/link", LIMITS).data == b"sub/m.pkl"
        assert open_7z_member(blob, view, "src/sub/m.pkl", LIMITS).data == PKL
        with pytest.raises(KeyError):
            open_7z_member(blob, view, "missing", LIMITS)


def test_7z_ppmd_is_refused() -> None:
    # pyppmd (py7zr's PPMd decoder) segfaults on a stream with one corrupt byte.
    blob = BytesBlob(seven([("m.pkl", PKL)], filters=[{"id": py7zr().FILTER_PPMD}]))
    view = read_7z(blob, LIMITS)
    with pytest.raises(FormatError, match=r"method 030401.*not supported"):
        open_7z_member(blob, view, "m.pkl", LIMITS)


def test_7z_duplicate_names_are_refused() -> None:
    blob = BytesBlob(seven([("data.pkl", b"benign"), ("data.pkl", PKL)]))
    view = read_7z(blob, LIMITS)
    assert view.anomalies == ("duplicate-name: 'data.pkl' appears 2 times",)
    with pytest.raises(FormatError, match="not unique"):
        open_7z_member(blob, view, "data.pkl", LIMITS)


@pytest.mark.parametrize(
    ("files", "limits", "name"),
    [
        ([("a", b"1"), ("b", b"2"), ("c", b"3")], Limits(max_members=2), "max_members"),
        ([("a", b"x" * 1000)], Limits(max_member_bytes=999), "max_member_bytes"),
        ([("a", b"x" * 100), ("b", b"y" * 100)], Limits(max_total_bytes=150), "max_total_bytes"),
    ],
    ids=["members", "member bytes", "total bytes"],
)
def test_7z_declared_limits(files: list[tuple[str, bytes]], limits: Limits, name: str) -> None:
    with pytest.raises(LimitExceeded) as info:
        read_7z(BytesBlob(seven(files)), limits)
    assert info.value.limit == name


def test_7z_header_bomb_is_refused_before_py7zr_parses_it() -> None:
    py7zr()
    blob = BytesBlob(encoded_header_archive(many_files_header(2_000_000)))
    assert blob.size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as info:
            read_7z(blob, LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.limit == "max_members"
    assert peak < 16 << 20  # the decoded header (2 MB) and its copy, no per-file objects
    with pytest.raises(LimitExceeded) as info:
        read_7z(blob, Limits(max_header_bytes=1 << 20))
    assert info.value.limit == "max_header_bytes"


def test_7z_small_encoded_header_is_read() -> None:
    py7zr()
    view = read_7z(BytesBlob(encoded_header_archive(many_files_header(3))), LIMITS)
    assert len(view.members) == 3 and all(m.size == 0 for m in view.members)


@functools.cache
def zeros_7z() -> bytes:
    """One 32 MiB member of zeros (LZMA2, a few KiB), with a plain header."""
    filters = [{"id": lzma.FILTER_LZMA2}]
    return seven([("zeros.pkl", b"\0" * BOMB_SIZE)], encoded_header=False, filters=filters)


def test_7z_ratio_bomb() -> None:
    blob = BytesBlob(zeros_7z())
    assert blob.size < BOMB_SIZE // 1000
    view = read_7z(blob, LIMITS)
    with pytest.raises(LimitExceeded) as info:
        open_7z_member(blob, view, "zeros.pkl", Limits(max_ratio=3))
    assert info.value.limit == "max_ratio"
    with pytest.raises(LimitExceeded) as info:
        read_7z(blob, Limits(max_member_bytes=1 << 20))
    assert info.value.limit == "max_member_bytes"


def size_field(size: int) -> bytes:
    # py7zr writes the folder's unpack size (kCodersUnpackSize) in the shortest encoding.
    return b"\x0c" + num7z(size)


@pytest.mark.parametrize("declared", [1000, BOMB_SIZE + (1 << 20)], ids=["smaller", "larger"])
def test_7z_lying_declared_size(declared: int) -> None:
    data = zeros_7z()
    width = len(num7z(BOMB_SIZE))

    def lie(header: bytes) -> bytes:
        assert header.count(size_field(BOMB_SIZE)) == 1
        return header.replace(size_field(BOMB_SIZE), b"\x0c" + num7z(declared, width))

    blob = BytesBlob(reheader(data, lie))
    view = read_7z(blob, LIMITS)
    assert view.members[0].size == declared
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedStream) as info:  # CRC mismatch, or data ends early
            open_7z_member(blob, view, "zeros.pkl", LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    produced = min(declared, BOMB_SIZE)
    assert len(info.value.partial) <= produced
    # py7zr's step and its copy, the buffer; plus the LZMA2 dictionary (traced by
    # tracemalloc: CPython's lzma allocates through PyMem) and py7zr's input block.
    assert peak < 3.5 * produced + (24 << 20)


def test_7z_dictionary_limit() -> None:
    data = seven([("m.pkl", PKL)], encoded_header=False, filters=[{"id": lzma.FILTER_LZMA2}])
    lzma2_coder = b"\x21\x21\x01"  # flags (id size 1, has properties), id 0x21, 1 property byte

    def huge_dictionary(header: bytes) -> bytes:
        at = header.index(lzma2_coder) + len(lzma2_coder)
        return header[:at] + b"\x28" + header[at + 1 :]  # 40: a 4 GiB dictionary

    blob = BytesBlob(reheader(data, huge_dictionary))
    view = read_7z(blob, LIMITS)
    with pytest.raises(LimitExceeded) as info:
        open_7z_member(blob, view, "m.pkl", LIMITS)
    assert info.value.limit == "max_member_bytes"


def test_7z_unbounded_decoder_needs_a_small_folder() -> None:
    repeated = PKL * 60  # compresses to a few KiB
    blob = BytesBlob(seven([("m.pkl", repeated)], filters=[{"id": py7zr().FILTER_ZSTD}]))
    view = read_7z(blob, LIMITS)
    assert open_7z_member(blob, view, "m.pkl", LIMITS).data == repeated
    limits = Limits(max_member_bytes=len(repeated))  # zstd may expand 32768x: more than the cap
    with pytest.raises(LimitExceeded, match="without an output bound") as info:
        open_7z_member(blob, view, "m.pkl", limits)
    assert info.value.limit == "max_member_bytes"


@pytest.mark.parametrize("header_encryption", [False, True])
def test_7z_encrypted(header_encryption: bool) -> None:
    data = seven([("m.pkl", PKL)], password="secret", header_encryption=header_encryption)
    with pytest.raises(FormatError, match=r"^encrypted 7z"):
        read_7z(BytesBlob(data), LIMITS)


def test_7z_truncated_archive() -> None:
    data = seven([("m.pkl", BIG)])
    for cut in (10, 32, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError):
            read_7z(BytesBlob(data[:cut]), LIMITS)


def test_7z_corrupt_member_data() -> None:
    data = bytearray(seven([("m.pkl", BIG)], encoded_header=False, filters=None))
    for i in range(200, 216):  # packed data starts at offset 32
        data[i] ^= 0xA5
    blob = BytesBlob(bytes(data))
    view = read_7z(blob, LIMITS)
    with pytest.raises(TruncatedStream) as info:
        open_7z_member(blob, view, "m.pkl", LIMITS)
    assert len(info.value.partial) <= len(BIG)


# -- fuzz: only FormatError (LimitExceeded and TruncatedStream included) may escape ----------


def _read_all_7z(blob: Blob, limits: Limits) -> None:
    view = read_7z(blob, limits)
    for member in view.members:
        with contextlib.suppress(FormatError):
            open_7z_member(blob, view, member.name, limits)


@functools.cache
def _fuzz_inputs() -> dict[str, bytes]:
    lz4_mod, zstd_mod = lz4f(), zstd()
    py7zr()
    return {
        "lz4": lz4_mod.compress(PKL * 3, content_checksum=True) + lz4_mod.compress(b"tail"),
        "zstd": zstd_mod.ZstdCompressor().compress(PKL * 3) + zstd_stream(b"tail"),
        "7z": seven([("a.pkl", PKL), ("b/c.pkl", b"\x80\x04N."), ("d", b"")]),
        "7z-plain": seven([("a.pkl", PKL), ("d/", b""), ("b", b"x" * 300)], encoded_header=False),
    }


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(["lz4", "zstd", "7z", "7z-plain", "7z-plain-header"]),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    cut=st.floats(0.05, 1),
)
def test_fuzz_only_format_errors_escape(
    kind: str, edits: list[tuple[float, int]], cut: float
) -> None:
    data = bytearray(_fuzz_inputs()[kind.removesuffix("-header")])
    start, size = 0, len(data)
    if kind.endswith("-header"):  # edit the header, then fix its CRCs so parsing goes on
        offset, size = struct.unpack_from("<QQ", data, 12)
        start += 32 + offset
    for where, value in edits:
        data[start + int(where * size)] = value
    if kind.endswith("-header"):
        data = bytearray(fix_crcs(bytes(data)))
    blob = BytesBlob(bytes(data[: max(1, int(len(data) * cut))]))
    limits = Limits(max_member_bytes=1 << 20, max_total_bytes=4 << 20)
    try:
        if kind.startswith("7z"):
            _read_all_7z(blob, limits)
        else:
            decompress(blob, kind, limits)
    except FormatError:
        pass
