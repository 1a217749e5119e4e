"""Fuzz the container readers with mutated and truncated real archives and streams.

Whatever the bytes, only `FormatError` (and its subclasses `LimitExceeded`, `TruncatedStream`,
`TruncatedTar`) may escape, and memory stays bounded by the (small) limits.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import pickle
import random
import tarfile
import tracemalloc
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard.config import Limits
from modelguard.errors import FormatError
from modelguard.formats.blob import BytesBlob
from modelguard.formats.compress import decompress, detect_wrapper, detect_wrapper_blob
from modelguard.formats.tarread import find_tar, open_tar_member, read_tar
from modelguard.formats.zipread import find_zip, member_crc_ok, open_member, read_zip

from . import zipcraft as zc

SMALL = Limits(max_members=200, max_member_bytes=1 << 20, max_ratio=50, max_header_bytes=1 << 16)
PKL = pickle.dumps({"w": list(range(200)), "s": "x" * 100}, protocol=4)  # never loaded


def _zip64() -> bytes:
    saved = zipfile.ZIP_FILECOUNT_LIMIT
    zipfile.ZIP_FILECOUNT_LIMIT = 0  # forces zip64 end records
    try:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            with zf.open("a.pkl", "w", force_zip64=True) as f:
                f.write(PKL)
            zf.writestr("b", PKL, compress_type=zipfile.ZIP_DEFLATED)
        return out.getvalue()
    finally:
        zipfile.ZIP_FILECOUNT_LIMIT = saved


def _torch() -> bytes:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test dependency
        return zc.build_zip([("archive/data.pkl", PKL)])
    buf = io.BytesIO()
    torch.save({"w": torch.arange(16)}, buf)
    return buf.getvalue()


ZIP_SEEDS = [
    zc.build_zip([("data.pkl", PKL), ("v", b"3")]),
    zc.build_zip([("data.pkl", PKL), ("z", b"\0" * 5000)], method=zipfile.ZIP_DEFLATED),
    zc.build_zip([("data.pkl", PKL)], method=zipfile.ZIP_BZIP2),
    zc.build_zip([("data.pkl", PKL)], method=zipfile.ZIP_LZMA),
    zc.build_zip([("n.zip", zc.build_zip([("x.pkl", PKL)]))]),
    b"\x80\x02K\x01." + zc.build_zip([("data.pkl", PKL), ("data.pkl", b"dup")]),
    _zip64(),
    _torch(),
]


def _tar(fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in [("data.pkl", PKL), ("d/" * 70 + "long", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "../x"
        tar.addfile(info)
    return out.getvalue()


TAR_SEEDS = [_tar(tarfile.GNU_FORMAT), _tar(tarfile.PAX_FORMAT), _tar(tarfile.USTAR_FORMAT)[:3072]]
STREAM_SEEDS = [
    ("gzip", gzip.compress(PKL) + gzip.compress(b"\0" * 4000)),
    ("bz2", bz2.compress(PKL)),
    ("xz", lzma.compress(PKL, preset=0)),
    ("lzma", lzma.compress(PKL, format=lzma.FORMAT_ALONE, preset=0)),
    ("zlib", zlib.compress(PKL)),
    ("joblib-zf", b"ZF" + hex(len(PKL)).encode().ljust(19) + zlib.compress(PKL)),
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for pos, value in draw(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                    max_size=6)):  # fmt: skip
        if data:
            data[pos % len(data)] = value
    for pos, chunk, drop in draw(st.lists(st.tuples(st.integers(0, 1 << 20),
                                                    st.binary(max_size=8),
                                                    st.integers(0, 8)), max_size=2)):  # fmt: skip
        at = pos % (len(data) + 1)
        data[at : at + drop] = chunk
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return bytes(data if cut is None else data[:cut])


def exercise_zip(data: bytes) -> None:
    blob = BytesBlob(data)
    find_zip(blob)
    try:
        view = read_zip(blob, SMALL)
    except FormatError:
        return
    for member in view.members:
        for ignore in (False, True):
            try:
                content = open_member(blob, member, SMALL, ignore_encryption=ignore)
                content.read(0, min(content.size, SMALL.max_member_bytes))
            except FormatError:
                pass
        with contextlib.suppress(FormatError):
            member_crc_ok(blob, member, SMALL)


def exercise_tar(data: bytes) -> None:
    blob = BytesBlob(data)
    find_tar(blob)
    try:
        view = read_tar(blob, SMALL)
    except FormatError:
        return
    for member in view.members:
        content = open_tar_member(blob, member)
        content.read(0, min(content.size, SMALL.max_member_bytes))


def exercise_stream(data: bytes, kind: str) -> None:
    blob = BytesBlob(data)
    detect_wrapper(data[:4096])
    for k in {kind, detect_wrapper_blob(blob) or kind}:
        with contextlib.suppress(FormatError):
            decompress(blob, k, SMALL)


FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(mutated(ZIP_SEEDS))
def test_fuzz_zip(data: bytes) -> None:
    exercise_zip(data)


@FAST
@given(mutated(TAR_SEEDS))
def test_fuzz_tar(data: bytes) -> None:
    exercise_tar(data)


@FAST
@given(st.sampled_from(range(len(STREAM_SEEDS))), st.data())
def test_fuzz_streams(index: int, draw: st.DataObject) -> None:
    kind, seed = STREAM_SEEDS[index]
    exercise_stream(draw.draw(mutated([seed])), kind)


@FAST
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data: bytes) -> None:
    exercise_zip(data)
    exercise_tar(data)
    for kind in ("gzip", "zlib", "bz2", "xz", "lzma", "joblib-zf"):
        exercise_stream(data, kind)


@pytest.mark.slow
@SLOW
@given(mutated(ZIP_SEEDS))
def test_fuzz_zip_long(data: bytes) -> None:
    exercise_zip(data)


@pytest.mark.slow
@SLOW
@given(mutated(TAR_SEEDS))
def test_fuzz_tar_long(data: bytes) -> None:
    exercise_tar(data)


@pytest.mark.slow
@SLOW
@given(st.sampled_from(range(len(STREAM_SEEDS))), st.data())
def test_fuzz_streams_long(index: int, draw: st.DataObject) -> None:
    kind, seed = STREAM_SEEDS[index]
    exercise_stream(draw.draw(mutated([seed])), kind)


BOMB = b"\0" * (24 << 20)


@pytest.mark.parametrize(
    ("data", "run"),
    [
        (zc.build_zip([("b", BOMB), ("c", BOMB)], method=zipfile.ZIP_DEFLATED), exercise_zip),
        (zc.build_zip([("b", BOMB)], method=zipfile.ZIP_BZIP2), exercise_zip),
        (gzip.compress(BOMB), lambda d: exercise_stream(d, "gzip")),
        (lzma.compress(BOMB, preset=0), lambda d: exercise_stream(d, "xz")),
    ],
    ids=["zip-deflate", "zip-bzip2", "gzip", "xz"],
)
def test_memory_bounded_on_mutated_bombs(data: bytes, run: object) -> None:
    assert callable(run)
    rnd = random.Random(7)
    variants = [data] + [bytearray(data) for _ in range(3)]
    for v in variants[1:]:
        assert isinstance(v, bytearray)
        for _ in range(3):
            v[rnd.randrange(len(v))] = rnd.randrange(256)
    tracemalloc.start()
    try:
        for v in variants:
            tracemalloc.reset_peak()
            run(bytes(v))
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < 4 * SMALL.max_member_bytes, peak  # never the 24 MiB of output
    finally:
        tracemalloc.stop()
