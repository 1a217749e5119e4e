"""The tolerant zip reader: loader-faithful offsets, every anomaly reported, nothing executed."""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib
from collections.abc import Callable

import pytest

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import BytesBlob, SliceBlob
from modelguard.formats.compress import TruncatedStream
from modelguard.formats.zipread import (
    ZipView,
    find_zip,
    member_crc_ok,
    open_member,
    read_zip,
)

from . import zipcraft as zc

LIMITS = Limits()
PKL = pickle.dumps({"weights": list(range(50))}, protocol=2)  # built, never loaded
EVIL = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."  # os.system('id'), never loaded
BASE = zc.build_zip([("model/data.pkl", PKL), ("model/version", b"3\n")])


def content(data: bytes, view: ZipView, name: str, nth: int = 0, **kw: bool) -> bytes:
    blob = BytesBlob(data)
    member = view.named(name)[nth]
    out = open_member(blob, member, LIMITS, **kw)
    return out.read(0, out.size)


def kinds(view: ZipView) -> set[str]:
    return {a.kind for a in view.anomalies}


# (id, builder, expected anomaly kinds, does Python's zipfile still read data.pkl?)
CASES: list[tuple[str, Callable[[], bytes], set[str], bool]] = [
    ("plain", lambda: BASE, set(), True),
    (
        "name-mismatch CVE-2025-1944",
        lambda: zc.rename_local(BASE, "model/data.pkl", "model/data.pkX"),
        {"name-mismatch"},
        False,
    ),
    (
        "flag 0x20 CVE-2025-1945",
        lambda: zc.set_flags(BASE, "model/data.pkl", 0x20),
        {"flag-bits"},
        False,
    ),
    (
        "flag 0x1 local only",
        lambda: zc.set_flags(BASE, "model/data.pkl", 0x1, central=False),
        {"flag-bits"},
        True,
    ),
    (
        "bad crc CVE-2025-10156",
        lambda: zc.set_crc(BASE, "model/data.pkl", 0xDEADBEEF),
        set(),
        False,
    ),
    (
        "crc differs local/central",
        lambda: zc.set_crc(BASE, "model/data.pkl", 0xDEADBEEF, central=False),
        {"crc-mismatch"},
        True,
    ),
    (
        "local sizes differ",
        lambda: zc.set_local_sizes(BASE, "model/data.pkl", 7, 7),
        {"size-mismatch"},
        True,
    ),
    ("polyglot: pickle then zip", lambda: EVIL + BASE, {"prepended-data"}, True),
    (
        "prefix with absolute offsets",
        lambda: zc.build_zip([("model/data.pkl", PKL)], prefix=EVIL),
        {"prepended-data"},
        True,
    ),
    (
        "duplicate names",
        lambda: zc.build_zip([("model/data.pkl", EVIL), ("model/data.pkl", PKL)]),
        {"duplicate-name"},
        True,
    ),
]


@pytest.mark.parametrize(("data_fn", "expected", "zipfile_reads"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_anomalies_and_member_still_readable(
    data_fn: Callable[[], bytes], expected: set[str], zipfile_reads: bool
) -> None:
    data = data_fn()
    view = read_zip(BytesBlob(data), LIMITS)
    assert kinds(view) == expected
    # Whatever the anomaly, the member stays readable, like torch's reader.
    assert content(data, view, "model/data.pkl", -1) == PKL
    try:
        zipfile_ok = zipfile.ZipFile(io.BytesIO(data)).read("model/data.pkl") == PKL
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError):
        zipfile_ok = False
    assert zipfile_ok is zipfile_reads  # the fixture really is what it claims to be


def test_duplicates_all_visible_in_central_order() -> None:
    data = zc.build_zip([("a.pkl", EVIL), ("b", b"x"), ("a.pkl", PKL)])
    view = read_zip(BytesBlob(data), LIMITS)
    copies = view.named("a.pkl")
    assert [m.index for m in copies] == [0, 2]
    assert [content(data, view, "a.pkl", i) for i in range(2)] == [EVIL, PKL]
    (anomaly,) = view.anomalies
    assert (anomaly.kind, anomaly.member) == ("duplicate-name", "a.pkl")


def test_name_mismatch_reports_both_names() -> None:
    data = zc.rename_local(BASE, "model/data.pkl", "model/evil.pql")  # same length

    member = read_zip(BytesBlob(data), LIMITS).named("model/data.pkl")[0]
    assert (member.name, member.local_name) == ("model/data.pkl", "model/evil.pql")


@pytest.mark.parametrize("bits", [0x1, 0x40])
def test_encrypted_flag_raises_unless_ignored(bits: int) -> None:
    data = zc.set_flags(BASE, "model/data.pkl", bits)
    view = read_zip(BytesBlob(data), LIMITS)
    assert kinds(view) == {"flag-bits"}
    member = view.named("model/data.pkl")[0]
    with pytest.raises(FormatError, match="encrypted"):
        open_member(BytesBlob(data), member, LIMITS)
    assert content(data, view, "model/data.pkl", ignore_encryption=True) == PKL
    assert member_crc_ok(BytesBlob(data), member, LIMITS) is None


def test_crc_check() -> None:
    good = read_zip(BytesBlob(BASE), LIMITS).named("model/data.pkl")[0]
    assert member_crc_ok(BytesBlob(BASE), good, LIMITS) is True
    bad_data = zc.set_crc(BASE, "model/data.pkl", 0x12345678)
    bad = read_zip(BytesBlob(bad_data), LIMITS).named("model/data.pkl")[0]
    assert member_crc_ok(BytesBlob(bad_data), bad, LIMITS) is False


def test_polyglot_offsets() -> None:
    data = EVIL + BASE
    view = read_zip(BytesBlob(data), LIMITS)
    assert view.start == len(EVIL)
    assert view.end == len(data)
    assert view.members[0].local_offset == len(EVIL)


def test_local_only_member_found_between_members() -> None:
    data = zc.drop_central(
        zc.build_zip([("a", b"first"), ("hidden.pkl", EVIL), ("b", b"last")]), "hidden.pkl"
    )
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["a", "b"]
    view = read_zip(BytesBlob(data), LIMITS)
    assert kinds(view) == {"local-only"}
    hidden = view.members[-1]
    assert (hidden.name, hidden.origin, hidden.index) == ("hidden.pkl", "local", 2)
    assert content(data, view, "hidden.pkl") == EVIL


def test_local_only_member_in_prepended_bytes() -> None:
    inner = zc.build_zip([("hidden.pkl", EVIL)])
    prefix = inner[: inner.find(b"PK\x01\x02")]  # local header and data only
    view = read_zip(BytesBlob(prefix + BASE), LIMITS)
    assert kinds(view) == {"local-only", "prepended-data"}
    assert content(prefix + BASE, view, "hidden.pkl") == EVIL


def test_overlap() -> None:
    data = zc.alias_central(BASE, "model/data.pkl", "model/copy.pkl")
    view = read_zip(BytesBlob(data), LIMITS)
    assert {"overlap", "name-mismatch"} <= kinds(view)
    assert content(data, view, "model/copy.pkl") == PKL


def test_unsupported_method() -> None:
    data = zc.set_method(BASE, "model/data.pkl", 99)
    view = read_zip(BytesBlob(data), LIMITS)
    assert "unsupported-method" in kinds(view)
    with pytest.raises(FormatError, match="unsupported method 99"):
        open_member(BytesBlob(data), view.named("model/data.pkl")[0], LIMITS)


def test_bad_local_offset() -> None:
    data = zc.set_local_offset(BASE, "model/version", 3)
    view = read_zip(BytesBlob(data), LIMITS)
    assert "bad-offset" in kinds(view)
    assert view.named("model/version")[0].local_name is None


def test_entry_count_mismatch() -> None:
    pos, count, _, _ = zc.eocd(BASE)
    data = zc.patch(zc.patch(BASE, pos + 8, "<H", count + 1), pos + 10, "<H", count + 1)
    assert "bad-offset" in kinds(read_zip(BytesBlob(data), LIMITS))


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compressed_members_match_zipfile(method: int) -> None:
    payload = PKL * 20
    data = zc.build_zip([("m.pkl", payload), ("empty", b"")], method=method)
    view = read_zip(BytesBlob(data), LIMITS)
    assert view.anomalies == ()
    for member in view.members:
        assert member.method == method
        assert content(data, view, member.name) == zipfile.ZipFile(io.BytesIO(data)).read(
            member.name
        )
        assert member_crc_ok(BytesBlob(data), member, LIMITS) is True


def test_stored_member_is_a_slice() -> None:
    view = read_zip(BytesBlob(BASE), LIMITS)
    assert isinstance(open_member(BytesBlob(BASE), view.members[0], LIMITS), SliceBlob)


@pytest.mark.parametrize("prefix", [b"", b"#!/bin/sh\nexit 0\n"])
def test_zip64(monkeypatch: pytest.MonkeyPatch, prefix: bytes) -> None:
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 0)  # forces the zip64 end records
    out = io.BytesIO()
    out.write(prefix)
    with zipfile.ZipFile(out, "w") as zf:
        with zf.open("big.pkl", "w", force_zip64=True) as f:
            f.write(PKL)
        zf.writestr("small", b"abc", compress_type=zipfile.ZIP_DEFLATED)
    data = out.getvalue()
    assert b"PK\x06\x06" in data
    view = read_zip(BytesBlob(data), LIMITS)
    assert [m.name for m in view.members] == ["big.pkl", "small"]
    assert content(data, view, "big.pkl") == PKL
    assert content(data, view, "small") == b"abc"
    assert (view.start, view.end) == (len(prefix), len(data))


def test_archive_comment() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("a", b"1")
        zf.comment = b"PK\x05\x06 looks like an end record" + b"x" * 1000
    data = out.getvalue()
    view = read_zip(BytesBlob(data), LIMITS)
    assert [m.name for m in view.members] == ["a"]
    assert view.end == len(data)


def test_nested_zip() -> None:
    inner = zc.build_zip([("inner.pkl", EVIL)], method=zipfile.ZIP_DEFLATED)
    outer = zc.build_zip([("nested.zip", inner)])
    view = read_zip(BytesBlob(outer), LIMITS)
    inner_blob = open_member(BytesBlob(outer), view.members[0], LIMITS)
    assert find_zip(inner_blob)
    inner_view = read_zip(inner_blob, LIMITS)
    member = inner_view.members[0]
    got = open_member(inner_blob, member, LIMITS)
    assert got.read(0, got.size) == EVIL


BOMB = zc.build_zip([("bomb", b"\0" * (8 << 20))], method=zipfile.ZIP_DEFLATED)


@pytest.mark.parametrize(
    ("limits", "name"),
    [
        (Limits(max_member_bytes=1 << 20), "max_member_bytes"),
        (Limits(max_ratio=2), "max_ratio"),
    ],
)
def test_deflate_bomb(limits: Limits, name: str) -> None:
    view = read_zip(BytesBlob(BOMB), limits)
    assert view.members[0].compressed_size < 20_000
    with pytest.raises(LimitExceeded) as info:
        open_member(BytesBlob(BOMB), view.members[0], limits)
    assert info.value.limit == name


def test_max_members() -> None:
    data = zc.build_zip([(f"m{i}", b"") for i in range(20)])
    assert len(read_zip(BytesBlob(data), Limits(max_members=20)).members) == 20
    with pytest.raises(LimitExceeded) as info:
        read_zip(BytesBlob(data), Limits(max_members=19))
    assert info.value.limit == "max_members"


def test_truncated_archive_walks_local_headers() -> None:
    data = zc.build_zip([("a.pkl", EVIL), ("b", b"bbb"), ("c", b"ccc")])
    cut = data[: data.find(b"PK\x01\x02") + 10]
    view = read_zip(BytesBlob(cut), LIMITS)
    assert [m.name for m in view.members] == ["a.pkl", "b", "c"]
    assert {m.origin for m in view.members} == {"local"}
    assert kinds(view) == {"local-only"}
    assert content(cut, view, "a.pkl") == EVIL


def test_truncated_deflate_member() -> None:
    data = zc.build_zip([("a.pkl", PKL * 50)], method=zipfile.ZIP_DEFLATED)
    view = read_zip(BytesBlob(data), LIMITS)
    member = view.members[0]
    cut = data[: member.data_offset + member.compressed_size // 2]
    with pytest.raises(TruncatedStream) as info:
        open_member(BytesBlob(cut), member, LIMITS)
    assert info.value.partial and (PKL * 50).startswith(info.value.partial)


@pytest.mark.parametrize(
    "data",
    [b"", b"PK", b"not a zip at all" * 10, b"PK\x03\x04" + b"\0" * 10, b"x" * 100 + b"PK\x05\x06"],
)
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(FormatError):
        read_zip(BytesBlob(data), LIMITS)


@pytest.mark.parametrize(
    ("data", "expected"),
    [(BASE, True), (EVIL + BASE, True), (b"PK\x03\x04", True), (PKL, False), (b"", False)],
)
def test_find_zip(data: bytes, expected: bool) -> None:
    assert find_zip(BytesBlob(data)) is expected


def test_find_zip_is_cheap() -> None:
    reads: list[tuple[int, int]] = []

    class Spy(BytesBlob):
        def read(self, offset: int, n: int) -> bytes:
            reads.append((offset, n))
            return super().read(offset, n)

    assert not find_zip(Spy(b"\0" * (10 << 20)))
    assert len(reads) == 2 and sum(n for _, n in reads) <= 4 + 65536 + 22


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.arange(1000, dtype=torch.float32), "n": 3}, buf)
    return buf.getvalue()


def test_torch_checkpoint(checkpoint: bytes) -> None:
    view = read_zip(BytesBlob(checkpoint), LIMITS)
    assert view.anomalies == ()
    reference = zipfile.ZipFile(io.BytesIO(checkpoint))
    assert [m.name for m in view.members] == reference.namelist()
    (pkl,) = [m for m in view.members if m.name.endswith("/data.pkl")]
    assert content(checkpoint, view, pkl.name) == reference.read(pkl.name)
    for member in view.members:
        assert member.flags & 0x8  # torch streams its members (data descriptors)
        assert content(checkpoint, view, member.name) == reference.read(member.name)
        assert member_crc_ok(BytesBlob(checkpoint), member, LIMITS) is True


def test_torch_checkpoint_reads_only_headers(checkpoint: bytes) -> None:
    reads: list[tuple[int, int]] = []

    class Spy(BytesBlob):
        def read(self, offset: int, n: int) -> bytes:
            reads.append((offset, n))
            return super().read(offset, n)

    view = read_zip(Spy(checkpoint), LIMITS)
    (storage,) = [m for m in view.members if m.name.endswith("/data/0")]
    data_range = range(storage.data_offset, storage.data_offset + storage.compressed_size)
    # the tail read (EOCD search) covers the whole small file; nothing else touches the data
    header_reads = [r for r in reads[1:] if r[1] < len(checkpoint)]
    assert not any(data_range.start <= o < data_range.stop for o, _ in header_reads)


def test_torch_truncated_checkpoint(checkpoint: bytes) -> None:
    cut = checkpoint[: checkpoint.find(b"PK\x01\x02")]
    view = read_zip(BytesBlob(cut), LIMITS)
    reference = zipfile.ZipFile(io.BytesIO(checkpoint))
    assert [m.name for m in view.members] == reference.namelist()
    pkl = view.members[0]
    assert content(cut, view, pkl.name) == reference.read(pkl.name)
    assert zlib.crc32(content(cut, view, pkl.name)) == pkl.crc
