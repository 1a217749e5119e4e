"""The tar reader lists headers only (no extraction) and the BlobIO adapter it runs on."""

from __future__ import annotations

import io
import pickle
import tarfile

import pytest

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import BlobIO, BytesBlob, SliceBlob
from modelguard.formats.tarread import (
    TarView,
    TruncatedTar,
    find_tar,
    open_tar_member,
    read_tar,
)

LIMITS = Limits()
PKL = pickle.dumps({"a": list(range(300))}, protocol=2)  # never loaded


def build_tar(fmt: int = tarfile.PAX_FORMAT, files: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in (files or {"model/data.pkl": PKL, "model/version": b"3"}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind, target in [
            ("model", tarfile.DIRTYPE, ""),
            ("escape", tarfile.SYMTYPE, "../../../etc/passwd"),
            ("hard", tarfile.LNKTYPE, "model/data.pkl"),
            ("fifo", tarfile.FIFOTYPE, ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return out.getvalue()


def read(data: bytes, limits: Limits = LIMITS) -> TarView:
    return read_tar(BytesBlob(data), limits)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_and_kinds(fmt: int) -> None:
    data = build_tar(fmt)
    assert find_tar(BytesBlob(data))
    view = read(data)
    got = [(m.name, m.kind, m.size, m.linkname) for m in view.members]
    assert got == [
        ("model/data.pkl", "file", len(PKL), ""),
        ("model/version", "file", 1, ""),
        ("model", "dir", 0, ""),
        ("escape", "symlink", 0, "../../../etc/passwd"),
        ("hard", "hardlink", 0, "model/data.pkl"),
        ("fifo", "other", 0, ""),
    ]
    assert view.anomalies == ()
    pkl = open_tar_member(BytesBlob(data), view.members[0])
    assert isinstance(pkl, SliceBlob) and pkl.read(0, pkl.size) == PKL
    assert open_tar_member(BytesBlob(data), view.members[3]).size == 0


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names(fmt: int) -> None:
    name = "deep/" * 60 + "data.pkl"
    view = read(build_tar(fmt, {name: PKL}))
    assert view.members[0].name == name


def test_v7_header_recognised() -> None:
    data = bytearray(build_tar(tarfile.USTAR_FORMAT))
    data[257:265] = b"\0" * 8  # no ustar magic: a v7 header
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[:512])
    assert find_tar(BytesBlob(bytes(data)))
    assert read(bytes(data)).members[0].name == "model/data.pkl"


def test_duplicate_names() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for data in (b"evil", b"benign"):
            info = tarfile.TarInfo("data.pkl")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    view = read(out.getvalue())
    assert [m.name for m in view.members] == ["data.pkl", "data.pkl"]
    assert [a.split(":")[0] for a in view.anomalies] == ["duplicate-name"]


def test_trailing_data() -> None:
    data = build_tar()
    end = read(data).members[-1].offset_data  # a fifo: no data, the archive ends here
    data = data[:end] + b"this is not a header" + b"\0" * 1100
    view = read(data)
    assert len(view.members) == 6
    assert [a.split(":")[0] for a in view.anomalies] == ["trailing-data"]


@pytest.mark.parametrize("cut", [600, 1024 + 100, 1536 + 10])
def test_truncated(cut: int) -> None:
    data = build_tar(tarfile.USTAR_FORMAT)
    with pytest.raises(TruncatedTar) as info:
        read(data[:cut])
    assert info.value.partial.members[0].name == "model/data.pkl"
    assert info.value.offset is not None


def test_max_members() -> None:
    data = build_tar()
    assert len(read(data, Limits(max_members=6)).members) == 6
    with pytest.raises(LimitExceeded) as info:
        read(data, Limits(max_members=5))
    assert info.value.limit == "max_members"


def test_huge_pax_header_refused_before_reading() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"comment": "A" * 100_000}
        tar.addfile(info)
    data = out.getvalue()
    assert read(data).members[0].name == "x"
    with pytest.raises(LimitExceeded) as exc:
        read(data, Limits(max_header_bytes=10_000))
    assert exc.value.limit == "max_header_bytes"


@pytest.mark.parametrize(
    "data", [b"", b"x" * 2048, b"PK\x03\x04" + b"\0" * 600, PKL + b"\0" * 1024]
)
def test_not_a_tar(data: bytes) -> None:
    assert not find_tar(BytesBlob(data))
    with pytest.raises(FormatError):
        read(data)


@pytest.mark.parametrize("data", [b"\0" * 512, b"\0" * 10240])
def test_empty_tar(data: bytes) -> None:
    # tarfile reads an end-of-archive block as an empty archive
    assert not find_tar(BytesBlob(data))
    assert read(data) == TarView((), ())


def test_blobio() -> None:
    f = BlobIO(BytesBlob(b"0123456789"))
    assert f.readable() and f.seekable() and not f.writable()
    assert f.read(3) == b"012" and f.tell() == 3
    assert f.seek(-2, io.SEEK_END) == 8 and f.read() == b"89"
    assert f.seek(1, io.SEEK_SET) == 1 and f.seek(2, io.SEEK_CUR) == 3
    buf = bytearray(4)
    assert f.readinto(buf) == 4 and buf == b"3456"
    assert f.seek(100) == 100 and f.read(5) == b""
    with pytest.raises(ValueError):
        f.seek(-1)
    with pytest.raises(OSError):
        f.write(b"x")
    reader = io.BufferedReader(BlobIO(BytesBlob(b"abc\ndef\n")))
    assert reader.readlines() == [b"abc\n", b"def\n"]
