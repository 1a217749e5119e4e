"""Archive hygiene rules: path escape, link members, tar duplicates and decompression bombs."""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import modelguard
from modelguard.analysers.archive import (
    ARCHIVE_BOMB_FLOOR,
    BOMB_FLOOR,
    MAX_BOMB_FINDINGS,
    escape_reason,
    normalise_member,
)
from modelguard.config import Limits
from modelguard.formats.zipread import unicode_path
from modelguard.policy import Policy
from modelguard.results import FileResult, Severity

# -- helpers -------------------------------------------------------------------------------


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], method: int = 0) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def _info(name: str, mode: int | None = None, system: int = 3) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = system
    if mode is not None:
        info.external_attr = mode << 16
    return info


def _tar(path: Path, members: list[tuple[str, bytes | None, bytes, str]]) -> Path:
    """members: (name, type, data, linkname); type None is a regular file."""
    with tarfile.open(path, "w") as tf:
        for name, kind, data, link in members:
            info = tarfile.TarInfo(name)
            if kind is None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.type = kind
                info.linkname = link
                tf.addfile(info)
    return path


def _only(path: Path, policy: Policy | None = None) -> FileResult:
    report = modelguard.scan(path, policy=policy)
    assert len(report.files) == 1
    res = report.files[0]
    assert not any("internal error" in i.reason for i in res.incomplete), res.incomplete
    return res


def _rules(res: FileResult) -> list[str]:
    return [f.rule_id for f in res.findings]


# -- malicious archives ----------------------------------------------------------------------

ESCAPES = [
    "../evil.pkl",
    "a/../../evil.pkl",
    "/etc/cron.d/evil",
    "\\windows\\evil.dll",
    "C:/evil.dll",
    "c:evil.dll",
    "a\\..\\..\\evil.dll",
    "./../evil",
]


@pytest.mark.parametrize("name", ESCAPES)
def test_zip_path_escape(tmp_path: Path, name: str) -> None:
    res = _only(_zip(tmp_path / "a.zip", [("ok.txt", b"hello"), (name, b"data")]))
    hits = [f for f in res.findings if f.rule_id == "MG401"]
    assert len(hits) == 1
    assert hits[0].severity is Severity.HIGH


@pytest.mark.parametrize("name", ESCAPES)
def test_tar_path_escape(tmp_path: Path, name: str) -> None:
    res = _only(_tar(tmp_path / "a.tar", [(name, None, b"data", "")]))
    assert _rules(res).count("MG401") == 1


def test_zip_nul_name(tmp_path: Path) -> None:
    # zipfile truncates at NUL on write; patch the name in both headers instead.
    raw = (_zip(tmp_path / "a.zip", [("evilXname", b"x")])).read_bytes()
    (tmp_path / "a.zip").write_bytes(raw.replace(b"evilXname", b"evil\x00name"))
    assert "MG401" in _rules(_only(tmp_path / "a.zip"))


@pytest.mark.parametrize(
    ("mode", "system", "flagged"),
    [
        (stat.S_IFLNK | 0o777, 3, True),
        (stat.S_IFLNK | 0o777, 0, False),  # not Unix: the high bits are not a mode
        (stat.S_IFREG | 0o644, 3, False),
        (stat.S_IFDIR | 0o755, 3, False),
    ],
)
def test_zip_symlink_member(tmp_path: Path, mode: int, system: int, flagged: bool) -> None:
    path = _zip(tmp_path / "a.zip", [(_info("link", mode, system), b"/etc/passwd")])
    res = _only(path)
    hits = [f for f in res.findings if f.rule_id == "MG402"]
    assert bool(hits) is flagged
    if flagged:
        assert dict(hits[0].evidence)["target"] == "/etc/passwd"
        assert hits[0].severity is Severity.HIGH


@pytest.mark.parametrize(
    ("kind", "link"), [(tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "../../etc/shadow")]
)
def test_tar_link_member(tmp_path: Path, kind: bytes, link: str) -> None:
    res = _only(_tar(tmp_path / "a.tar", [("model.bin", kind, b"", link)]))
    hits = [f for f in res.findings if f.rule_id == "MG402"]
    assert len(hits) == 1
    assert dict(hits[0].evidence)["target"] == link


@pytest.mark.parametrize("second", ["model.pkl", "./model.pkl", "x/../model.pkl"])
def test_tar_duplicate_member(tmp_path: Path, second: str) -> None:
    path = _tar(tmp_path / "a.tar", [("model.pkl", None, b"N.", ""), (second, None, b"N.", "")])
    res = _only(path)
    assert _rules(res).count("MG403") == 1


def test_zip_duplicates_are_not_mg403(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        path = _zip(tmp_path / "a.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    rules = _rules(_only(path))
    assert "MG203" in rules
    assert "MG403" not in rules


def test_findings_are_capped(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", [(f"../x{i}", b"") for i in range(50)])
    res = _only(path)
    hits = [f for f in res.findings if f.rule_id == "MG401"]
    assert len(hits) == 21
    assert any(dict(f.evidence).get("count") == "50" for f in hits)


def test_one_finding_per_member_and_rule(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        path = _zip(tmp_path / "a.zip", [("../a", b"1"), ("../a", b"2")])
    assert _rules(_only(path)).count("MG401") == 1


def _bomb_limits() -> Policy:
    return Policy(limits=Limits(max_ratio=2))


def test_zip_declared_ratio_bomb(tmp_path: Path) -> None:
    # 3 MiB of zeros deflate to a few KiB: above 2 x the 1 MiB ratio floor.
    path = _zip(tmp_path / "a.zip", [("zeros.bin", bytes(3 << 20))], zipfile.ZIP_DEFLATED)
    res = _only(path, _bomb_limits())
    hits = [f for f in res.findings if f.rule_id == "MG404"]
    assert len(hits) == 1
    assert dict(hits[0].evidence)["limit"] == "max_ratio"
    assert res.incomplete  # the rest is unknown


def test_zip_member_bomb_from_limit(tmp_path: Path) -> None:
    # Declared sizes lie (patched to small): only decoding finds the expansion.
    path = _zip(tmp_path / "a.zip", [("zeros.bin", bytes(3 << 20))], zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    size = (3 << 20).to_bytes(4, "little")
    raw[:] = raw.replace(size, (100).to_bytes(4, "little"))
    path.write_bytes(bytes(raw))
    res = _only(path, _bomb_limits())
    assert _rules(res).count("MG404") == 1
    assert any(i.rule_id == "MG003" for i in res.incomplete)


def test_wrapper_bomb(tmp_path: Path) -> None:
    path = tmp_path / "a.pkl.gz"
    path.write_bytes(gzip.compress(bytes(3 << 20)))
    res = _only(path, _bomb_limits())
    assert "MG404" in _rules(res)
    assert any(i.rule_id == "MG003" for i in res.incomplete)


def test_member_bytes_bomb(tmp_path: Path) -> None:
    path = tmp_path / "a.pkl.gz"
    path.write_bytes(gzip.compress(bytes(2 << 20)))
    res = _only(path, Policy(limits=Limits(max_member_bytes=1 << 20)))
    hits = [f for f in res.findings if f.rule_id == "MG404"]
    assert hits
    assert dict(hits[0].evidence)["limit"] == "max_member_bytes"


_MiB = 1 << 20


def _zeros_zip(path: Path, members: int, mib: int) -> Path:
    """A zip of ``members`` deflated members of ``mib`` MiB of zeros each (about 1000x)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(members):
            with zf.open(f"z{k}.bin", "w") as out:
                for _ in range(mib):
                    out.write(bytes(_MiB))
    return path


def _nest(path: Path, inner: Path, copies: int) -> Path:
    data = inner.read_bytes()
    return _zip(path, [(f"l{k}.zip", data) for k in range(copies)])


def _reasons(res: FileResult, text: str) -> int:
    return sum(1 for i in res.incomplete if text in i.reason)


def test_bomb_floor_member(tmp_path: Path) -> None:
    # Within the decoder's cap (200 x 1 MiB) but above the floor at ~1000x: a bomb, not decoded.
    path = _zeros_zip(tmp_path / "a.zip", 1, BOMB_FLOOR // _MiB + 1)
    start = time.monotonic()
    res = _only(path)
    assert time.monotonic() - start < 2
    hits = [f for f in res.findings if f.rule_id == "MG404"]
    assert len(hits) == 1 and str(BOMB_FLOOR) in hits[0].message
    assert _reasons(res, "not decompressed") == 1


def test_bomb_floor_member_with_lying_sizes(tmp_path: Path) -> None:
    # Declared sizes patched small: only the decoded size shows the expansion.
    mib = BOMB_FLOOR // _MiB + 1
    path = _zeros_zip(tmp_path / "a.zip", 1, mib)
    raw = path.read_bytes().replace((mib * _MiB).to_bytes(4, "little"), (10).to_bytes(4, "little"))
    path.write_bytes(raw)
    res = _only(path)
    hits = [f for f in res.findings if f.rule_id == "MG404"]
    assert len(hits) == 1 and "decodes to" in hits[0].message


def test_wrapper_below_cap_is_not_a_bomb(tmp_path: Path) -> None:
    # One stream (joblib compress=N of a zero-filled array) is bounded by the decoder's cap
    # only: the archive-member floor does not apply to wrappers.
    path = tmp_path / "a.bin.gz"
    path.write_bytes(gzip.compress(bytes(BOMB_FLOOR + _MiB), compresslevel=1))
    assert "MG404" not in _rules(_only(path))


def test_archive_total_bomb_nested(tmp_path: Path) -> None:
    # No member above the floor, but nested archives expand to > 256 MiB in all at ~1000x.
    inner = _zeros_zip(tmp_path / "inner.zip", 1, 30)
    copies = ARCHIVE_BOMB_FLOOR // (30 * _MiB) + 1
    res = _only(_nest(tmp_path / "outer.zip", inner, copies))
    hits = [f for f in res.findings if f.rule_id == "MG404"]
    assert len(hits) == 1 and str(ARCHIVE_BOMB_FLOOR) in hits[0].message
    assert res.complete


def test_layered_bomb_is_fast(tmp_path: Path) -> None:
    inner = _zeros_zip(tmp_path / "inner.zip", 3, BOMB_FLOOR // _MiB + 1)
    path = _nest(tmp_path / "outer.zip", inner, 8)
    start = time.monotonic()
    res = _only(path)
    assert time.monotonic() - start < 2
    assert 1 <= _rules(res).count("MG404") <= MAX_BOMB_FINDINGS
    assert _reasons(res, "not decompressed") == 1


def test_total_budget_stops_decoding_once(tmp_path: Path) -> None:
    # Incompressible members (no ratio finding): after max_total_bytes nothing more is decoded
    # anywhere in the file, and MG003 is recorded once.
    rnd = np.random.default_rng(0).bytes(_MiB)
    inner = _zip(tmp_path / "inner.zip", [(f"r{k}.bin", rnd) for k in range(3)], 8)
    path = _nest(tmp_path / "outer.zip", inner, 6)
    res = _only(path, Policy(limits=Limits(max_total_bytes=4 * _MiB)))
    assert _reasons(res, "max_total_bytes reached") == 1
    assert "MG404" not in _rules(res)


def test_total_budget_bomb(tmp_path: Path) -> None:
    # A budget spent by a high-ratio archive is a bomb: members over the budget count as
    # declared (not decoded) towards the archive total.
    inner = _zeros_zip(tmp_path / "inner.zip", 1, 30)
    path = _nest(tmp_path / "outer.zip", inner, ARCHIVE_BOMB_FLOOR // (30 * _MiB) + 1)
    res = _only(path, Policy(limits=Limits(max_total_bytes=64 * _MiB)))
    assert _reasons(res, "max_total_bytes reached") == 1
    assert _rules(res).count("MG404") == 1


# -- Info-ZIP Unicode Path extra field (0x7075) ----------------------------------------------


def _upath_extra(
    header_name: bytes, path: str, *, crc: int | None = None, version: int = 1
) -> bytes:
    body = bytes([version]) + struct.pack("<I", zlib.crc32(header_name) if crc is None else crc)
    body += path.encode()
    return struct.pack("<HH", 0x7075, len(body)) + body


@pytest.mark.parametrize(
    ("upath", "crc", "rules"),
    [
        ("../../x", None, {"MG203", "MG401"}),  # unzip writes ../../x
        ("other.txt", None, {"MG203"}),  # a differential, no escape
        ("../../x", 1234, set()),  # stale CRC: unzip ignores the field too
        ("ok.txt", None, set()),  # same name: nothing to report
    ],
)
def test_zip_unicode_path_extra(
    tmp_path: Path, upath: str, crc: int | None, rules: set[str]
) -> None:
    info = zipfile.ZipInfo("ok.txt")
    info.extra = _upath_extra(b"ok.txt", upath, crc=crc)
    res = _only(_zip(tmp_path / "u.zip", [(info, b"x")]))
    found = {r for r in _rules(res) if r != "MG210"}
    assert found == rules


def test_zip_unicode_path_local_only(tmp_path: Path) -> None:
    # The field only in the local header (central extra blanked to an unknown tag).
    info = zipfile.ZipInfo("ok.txt")
    info.extra = _upath_extra(b"ok.txt", "../x")
    raw = bytearray(_zip(tmp_path / "u.zip", [(info, b"x")]).read_bytes())
    central = raw.find(b"PK\x01\x02")
    tag = raw.find(b"\x75\x70", central)
    raw[tag : tag + 2] = b"\xff\xff"
    path = tmp_path / "l.zip"
    path.write_bytes(bytes(raw))
    assert {"MG203", "MG401"} <= set(_rules(_only(path)))


def test_unicode_path_parser() -> None:
    good = _upath_extra(b"a", "b")
    assert unicode_path(good, b"a") == "b"
    assert unicode_path(good, b"c") is None
    assert unicode_path(_upath_extra(b"a", "b", version=2), b"a") is None
    for cut in range(len(good)):
        unicode_path(good[:cut], b"a")  # never raises


# -- tar special files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "label"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "fifo")],
)
@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_tar_special_member(tmp_path: Path, kind: bytes, label: str, fmt: int) -> None:
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w", format=fmt) as tf:
        info = tarfile.TarInfo("dev/" + "x" * (120 if fmt == tarfile.PAX_FORMAT else 3))
        info.type = kind
        info.devmajor, info.devminor = 1, 3
        tf.addfile(info)
        data = tarfile.TarInfo("ok.txt")
        data.size = 2
        tf.addfile(data, io.BytesIO(b"ok"))
    res = _only(path)
    hits = [f for f in res.findings if f.rule_id == "MG402"]
    assert len(hits) == 1 and dict(hits[0].evidence)["kind"] == label


# -- benign archives -------------------------------------------------------------------------


def _clean(res: FileResult) -> None:
    assert res.complete, res.incomplete
    assert not [f for f in res.findings if f.severity >= Severity.LOW], res.findings


def _torch_zip(path: Path) -> Path:
    pytest.importorskip("modelguard.analysers.torchzip")  # written in parallel (issue 3)
    torch.save({"w": torch.zeros(4, 4), "b": torch.ones(4)}, path)
    return path


def _npz(path: Path) -> Path:
    np.savez(path, a=np.arange(10), b=np.zeros((3, 3)))
    return path


def _npz_compressed(path: Path) -> Path:
    np.savez_compressed(path, a=np.zeros(100_000))
    return path


def _npz_zeros_50mb(path: Path) -> Path:
    np.savez_compressed(path, a=np.zeros(50_000_000 // 8))
    return path


def _model_tgz(path: Path) -> Path:
    plain = _model_tar(path.parent / "model.tar")
    path.write_bytes(gzip.compress(plain.read_bytes()))
    return path


def _keras_zip(path: Path) -> Path:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(path)
    return path


def _model_tar(path: Path) -> Path:
    src = path.parent / "src"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text('{"hidden_size": 32}')
    (src / "sub" / "notes.txt").write_text("weights are elsewhere")
    with tarfile.open(path, "w") as tf:
        tf.add(src, arcname="model")
    return path


def _plain_zip(path: Path) -> Path:
    entries: list[tuple[zipfile.ZipInfo | str, bytes]] = [
        (_info("dir/", stat.S_IFDIR | 0o755), b""),
        (_info("dir/a.txt", stat.S_IFREG | 0o644), b"hello " * 100),
        ("b.json", b'{"a": 1}'),
    ]
    return _zip(path, entries, zipfile.ZIP_DEFLATED)


def _zip_last_in_tar(path: Path) -> Path:
    """A zip-based model stored as the last tar member: its end record is near the file's end."""
    inner = _npz(path.parent / "arrays.npz")
    with tarfile.open(path, "w") as tf:
        tf.add(_model_tar(path.parent / "first.tar"), arcname="export/first.tar")
        tf.add(inner, arcname="export/arrays.npz")
    return path


def _zip_last_in_tgz(path: Path) -> Path:
    plain = _zip_last_in_tar(path.parent / "plain.tar")
    path.write_bytes(gzip.compress(plain.read_bytes()))
    return path


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("model.pt", _torch_zip),
        ("arrays.npz", _npz),
        ("zeros.npz", _npz_compressed),
        ("model.tar", _model_tar),
        ("plain.zip", _plain_zip),
        ("bundle.tar", _zip_last_in_tar),
        ("bundle.tar.gz", _zip_last_in_tgz),
        ("zeros50.npz", _npz_zeros_50mb),
        ("model.tar.gz", _model_tgz),
        ("model.keras", _keras_zip),
    ],
)
def test_benign_archives_clean(tmp_path: Path, name: str, build: object) -> None:
    assert callable(build)
    path = build(tmp_path / name)
    _clean(_only(path))


# -- fuzz ------------------------------------------------------------------------------------

_PARTS = st.sampled_from(["a", "b", "..", ".", "", "C:", "c:x", "\\", "/", "\x00", "é"])


@given(st.lists(_PARTS, max_size=8).map("/".join))
@settings(max_examples=300, deadline=None)
def test_normalise_member_fuzz(name: str) -> None:
    norm = normalise_member(name)
    reason = escape_reason(name)
    assert (norm is None) == (reason is not None)
    if norm is not None:
        parts = norm.split("/") if norm else []
        assert ".." not in parts
        assert "" not in parts
        assert not norm.startswith("/")
        assert "\x00" not in norm


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_escape_reason_never_raises(name: str) -> None:
    reason = escape_reason(name)
    if reason is None:
        assert not name.replace("\\", "/").startswith("/")
        assert "\x00" not in name


@given(st.binary(min_size=0, max_size=64), st.integers(min_value=0, max_value=2000))
@settings(max_examples=60, deadline=None)
def test_scan_of_mutated_archives(
    tmp_path_factory: pytest.TempPathFactory, junk: bytes, at: int
) -> None:
    tmp = tmp_path_factory.mktemp("fz")
    for seed in (
        _tar(tmp / "s.tar", [("../a", None, b"x", ""), ("l", tarfile.SYMTYPE, b"", "/e")]),
        _zip(tmp / "s.zip", [(_info("l", stat.S_IFLNK | 0o777), b"/e"), ("../b", b"y")]),
    ):
        raw = seed.read_bytes()
        pos = at % (len(raw) + 1)
        mutated = tmp / f"m{seed.suffix}"
        mutated.write_bytes(raw[:pos] + junk + raw[pos + len(junk) :])
        _only(mutated)


def test_zip_appended_after_a_tar_is_still_a_polyglot(tmp_path: Path) -> None:
    tar = _model_tar(tmp_path / "model.tar")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.pkl", b"cos\nsystem\n(S'true'\ntR.")
    path = tmp_path / "both.tar"
    path.write_bytes(tar.read_bytes() + buf.getvalue())
    res = _only(path)
    assert "MG202" in _rules(res) and "MG101" in _rules(res)


@pytest.mark.parametrize(
    ("name", "target", "hard", "escapes"),
    [
        ("run/latest.pt", "model.pt", False, False),
        ("snapshots/abc/config.json", "../../blobs/123", False, False),
        ("a/b/link", "../../c", False, False),
        ("a/link", "../../c", False, True),
        ("link", "..", False, True),
        ("link", "/etc/passwd", False, True),
        ("link", "C:\\Windows", False, True),
        ("link", "a\\..\\..\\x", False, True),
        ("link", "", False, True),
        ("link", "?", False, True),
        ("x/hard", "model/weights.bin", True, False),
        ("x/hard", "../outside", True, True),
    ],
)
def test_link_escapes(name: str, target: str, hard: bool, escapes: bool) -> None:
    from modelguard.analysers.archive import link_escapes

    assert link_escapes(name, target, hard=hard) is escapes


def test_links_that_stay_inside_a_tar_are_not_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "blobs").mkdir(parents=True)
    (src / "blobs" / "123").write_text('{"a": 1}')
    (src / "snap").mkdir()
    (src / "snap" / "config.json").symlink_to("../blobs/123")
    path = tmp_path / "cache.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, arcname="hub")
    res = _only(path)
    assert "MG402" not in _rules(res) and res.complete
