"""Walking containers for the file scan: zip (both readers' views), tar, legacy torch tar
records, compressed wrappers, and the bytes in front of an archive.

Members are opened in memory through the bounded readers in `modelguard.formats` and handed
back to `FileScan.analyse`; nothing is extracted to disk.
"""

from __future__ import annotations

import posixpath
import re
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob, BytesBlob, SliceBlob
from modelguard.formats.sniff import tar_candidate, wrapper_candidate, zip_candidate
from modelguard.picklevm.values import GlobalRef, PickleResult
from modelguard.results import Location

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.zipread import ZipMember, ZipView

__all__ = ["walk_tar", "walk_wrapper", "walk_zip"]

# Declared sizes of the compressed zip members a scan did not decode (bombs, limits, budget),
# so an archive's total expansion includes what its nested archives skipped.
_UNDECODED: weakref.WeakKeyDictionary[FileScan, int] = weakref.WeakKeyDictionary()

_ZIP_FINDING = {
    "duplicate-name": "MG203",
    "name-mismatch": "MG203",
    "local-only": "MG203",
    "size-mismatch": "MG203",
    "overlap": "MG203",
    "bad-offset": "MG203",
    "flag-bits": "MG204",
    "crc-mismatch": "MG204",
    "unsupported-method": "MG204",
    "encrypted": "MG204",
}

# Bytes per element of the legacy typed storages, by class name (torch/storage.py).
_LEGACY_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
    "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip


def _legacy_element_size(record: object) -> int | None:
    """Element size of a legacy (key, location, storage_type) storage record."""
    if isinstance(record, tuple) and len(record) == 3 and isinstance(record[2], GlobalRef):
        return _LEGACY_ELEMENT_SIZE.get(record[2].name)
    return None


def walk_zip(scan: FileScan, blob: Blob, loc: Location, depth: int) -> str | None:
    """Analyse a zip: anomalies between the two readers' views, bytes in front, every member.

    Returns "zip", or None when the blob is not a zip after all.
    """
    if not zip_candidate(blob):
        return None
    from modelguard.formats import zipread

    try:
        view = zipread.read_zip(blob, scan.limits)
    except LimitExceeded as exc:
        scan.incomplete("MG003", f"zip: {exc}", loc.at(exc.offset))
        return scan.mark("zip")
    except FormatError as exc:
        if blob.read(0, 4) == b"PK\x03\x04":
            scan.incomplete("MG002", f"zip: {exc}", loc.at(exc.offset))
            return scan.mark("zip")
        return None
    if view.start > 0 and _inside_tar_member(blob, view.start, view.end, scan):
        return None  # an archive stored in a tar (export/model.keras): the tar walk reaches it
    scan.seen("zip")
    names = [m.name for m in view.members]
    pkl_dirs = {n[: -len("data.pkl")] for n in names if n == "data.pkl" or n.endswith("/data.pkl")}
    if pkl_dirs:
        scan.seen("torch-zip")
    if any(n.startswith("code/") or "/code/" in n for n in names) and pkl_dirs:
        scan.seen("torchscript")
    if names and all(n.endswith(".npy") for n in names):
        scan.seen("npz")
    from modelguard.analysers import archive

    bombs_before = _bomb_count(scan)
    archive.check_zip_members(scan, view, loc, blob=blob)
    for anomaly in view.anomalies:
        rule = _ZIP_FINDING.get(anomaly.kind)
        if rule:
            scan.finding(
                rule,
                f"zip {anomaly.kind}: {anomaly.detail}",
                loc.inner(anomaly.member) if anomaly.member else loc,
                anomaly=anomaly.kind,
            )
    if view.start > 0:
        walk_prefix(scan, blob, view.start, loc, depth)
    counts: dict[str, int] = {}
    for member in view.members:
        counts[member.name] = counts.get(member.name, 0) + 1
    seen_names: dict[str, int] = {}
    # Bytes the members expand to, for the archive-wide bomb check: what was decoded here and
    # in nested archives (scan.total grows by both), plus the declared size of what was not.
    total_before, undecoded_before = scan.total, _UNDECODED.get(scan, 0)
    # Configs inside the archive (a zipped Hugging Face repository) name code files beside
    # them: the analyser reads those through this reader. Restored after the loop, so a
    # nested archive's members see only their own siblings.
    outer_reader = scan.member_reader
    scan.member_reader = _sibling_reader(scan, blob, view, loc)
    for member in view.members:
        if member.name.endswith("/") and member.size == 0:
            continue
        seen_names[member.name] = seen_names.get(member.name, 0) + 1
        label = member.name
        if counts[member.name] > 1:
            label = f"{member.name} (copy {seen_names[member.name]})"
        mloc = loc.inner(label)
        raw = any(
            member.name.startswith(d + "data/") or member.name.startswith(d + ".data/")
            for d in pkl_dirs
        ) and not member.name.endswith(".pkl")
        compressed = member.method != 0
        if compressed and archive.declared_bomb(scan, member):  # reported by check_zip_members
            _once(
                scan,
                "MG003",
                "zip members reported as decompression bombs are not decompressed",
                mloc,
            )
            _skip(scan, member.size)
            continue
        if compressed and archive.budget_spent(scan, mloc, member.size):
            _skip(scan, member.size)
            continue  # a later, smaller member may still fit
        try:
            # Read flagged members as plaintext, as a loader that ignores the flag would.
            mblob = zipread.open_member(blob, member, scan.limits, ignore_encryption=True)
        except LimitExceeded as exc:
            scan.incomplete("MG003", f"zip member: {exc}", mloc)
            archive.report_bomb(scan, exc, mloc, "zip member", member.compressed_size)
            _skip(scan, member.size)
            continue
        except FormatError as exc:
            scan.incomplete("MG002", f"zip member cannot be read: {exc}", mloc)
            continue
        if compressed:
            archive.check_expansion(scan, mloc, "zip member", mblob.size, member.compressed_size)
            if archive.budget_spent(scan, mloc, mblob.size):
                _skip(scan, mblob.size)
                continue
            scan.charge(mblob.size, mloc)  # fits: budget_spent said so
        fmt = scan.analyse(mblob, mloc, depth + 1, raw=raw)
        if fmt in ("pickle", "legacy-torch") and member.size <= 64 * 1024 * 1024:
            ok = zipread.member_crc_ok(blob, member, scan.limits)
            if ok is False:
                scan.finding(
                    "MG204",
                    "pickle member has a CRC-32 that does not match its content "
                    "(PyTorch ignores it, zipfile refuses it)",
                    mloc,
                    anomaly="crc-mismatch",
                )
    scan.member_reader = outer_reader
    expanded = scan.total - total_before + _UNDECODED.get(scan, 0) - undecoded_before
    reported = _bomb_count(scan) > bombs_before
    archive.check_archive_total(scan, loc, expanded, blob.size, reported=reported)
    if pkl_dirs:
        from modelguard.analysers.torchzip import check_torch_zip

        check_torch_zip(scan, blob, view, loc, depth)
    if {"config.json", "metadata.json"} <= set(names):
        from modelguard.analysers.keras import check_keras_archive

        check_keras_archive(scan, names, loc)
    return "zip"


def _skip(scan: FileScan, size: int) -> None:
    _UNDECODED[scan] = _UNDECODED.get(scan, 0) + size


def _once(scan: FileScan, rule: str, reason: str, loc: Location) -> None:
    """Record an incomplete reason once per file (a layered bomb would repeat it per member)."""
    if not any(i.reason == reason for i in scan.coll.incomplete):
        scan.incomplete(rule, reason, loc)


def _bomb_count(scan: FileScan) -> int:
    return sum(1 for f in scan.coll.findings if f.rule_id == "MG404")


_COPY_LABEL = re.compile(r" \(copy \d+\)$")  # how walk_zip labels duplicated names
_SIBLING_CAP = 1024 * 1024 + 1  # what a code reader needs: it refuses more than 1 MiB anyway


def _sibling_reader(
    scan: FileScan, blob: Blob, view: ZipView, loc: Location
) -> Callable[[Location, str], bytes | None]:
    """A reader of the member at a path relative to another member of this archive."""
    by_name: dict[str, ZipMember] = {}
    for member in view.members:
        by_name.setdefault(member.name, member)

    def read(of: Location, rel: str) -> bytes | None:
        if of.path != loc.path or of.members[:-1] != loc.members or not of.members:
            return None
        base = _COPY_LABEL.sub("", of.members[-1])
        target = posixpath.normpath(posixpath.join(posixpath.dirname(base), rel))
        if target.startswith(("../", "/")) or target == ".." or "\x00" in target:
            return None
        from modelguard.analysers import archive
        from modelguard.formats import zipread

        member = by_name.get(target)
        if member is None or (member.method != 0 and archive.declared_bomb(scan, member)):
            return None

        try:
            data = zipread.open_member(blob, member, scan.limits, ignore_encryption=True)
        except FormatError:
            return None
        return data.read(0, _SIBLING_CAP)

    return read


def _inside_tar_member(blob: Blob, start: int, end: int, scan: FileScan) -> bool:
    """Is [start, end) the data of one file member of a tar that starts the blob?

    A zip's end record is found wherever it lies, and a tar adds only about a kilobyte after
    its last member, so a zip-based model stored last in a tar would look like a tar/zip
    polyglot. It is not: the tar's reader, and the loader after extracting it, see a member.
    """
    if not tar_candidate(blob.read(0, 512)):
        return False
    from modelguard.formats import tarread

    try:
        view = tarread.read_tar(blob, scan.limits)
    except FormatError:  # truncated, limits: not a tar that explains the zip
        return False
    return any(
        m.kind == "file" and m.offset_data <= start and end <= m.offset_data + m.size
        for m in view.members
    )


def walk_prefix(scan: FileScan, blob: Blob, start: int, loc: Location, depth: int) -> None:
    """Analyse bytes in front of an archive: a recognised format there makes a polyglot."""
    ploc = loc.inner("<before-archive>")
    before = len(scan.formats)
    fmt = scan.analyse(SliceBlob(blob, 0, start), ploc, depth + 1)
    del scan.formats[before:]
    if fmt not in ("text", "unknown", "raw", "limit"):
        scan.finding(
            "MG202",
            f"the file is both a {fmt} (first {start} bytes) and a zip archive",
            loc,
            formats=f"{fmt}+zip",
        )
    else:
        scan.finding(
            "MG205",
            f"{start} bytes before the zip archive ({fmt})",
            ploc,
            bytes=str(start),
        )


def walk_tar(scan: FileScan, blob: Blob, head: bytes, loc: Location, depth: int) -> str | None:
    """Analyse a tar's file members (legacy torch tars record by record); None if not a tar."""
    if not tar_candidate(head):
        return None
    from modelguard.formats import tarread

    try:
        view = tarread.read_tar(blob, scan.limits)
    except tarread.TruncatedTar as exc:
        scan.incomplete("MG002", f"tar: {exc}", loc.at(exc.offset))
        view = exc.partial
    except LimitExceeded as exc:
        scan.incomplete("MG003", f"tar: {exc}", loc.at(exc.offset))
        return scan.mark("tar")
    except FormatError as exc:
        scan.incomplete("MG002", f"tar: {exc}", loc.at(exc.offset))
        return scan.mark("tar")
    scan.seen("tar")
    from modelguard.analysers.archive import check_tar_members

    check_tar_members(scan, view, loc, blob=blob)
    names = {m.name for m in view.members}
    legacy = {"sys_info", "pickle", "storages"} <= names
    if legacy:
        scan.seen("legacy-torch-tar")
    for member in view.members:
        if member.kind != "file":
            continue
        mloc = loc.inner(member.name)
        mblob = tarread.open_tar_member(blob, member)
        if legacy and member.name in ("storages", "tensors"):
            scan.depth = depth + 1
            legacy_records(scan, mblob, mloc, member.name)
        else:
            scan.analyse(mblob, mloc, depth + 1)
    return "tar"


def legacy_records(scan: FileScan, blob: Blob, loc: Location, kind: str) -> None:
    """Walk the `storages`/`tensors` member of a legacy torch tar the way torch reads it.

    Both are a count pickle, then per record a pickle followed by raw data whose size
    the record gives (storages: an 8-byte element count and the elements; tensors: ndim,
    sizes, strides and offset); `storages` ends with a pickle of storage views. Every
    pickle there is unpickled by torch.load, so each one is analysed.
    """
    pos = 0
    first = legacy_pickle(scan, blob, pos, loc)
    if first is None:
        return
    count = first.value
    if not isinstance(count, int) or count < 0 or count > scan.limits.max_members:
        scan.incomplete("MG002", f"legacy torch {kind}: bad record count {count!r}", loc)
        return
    pos = first.end
    for _ in range(count):
        rec = legacy_pickle(scan, blob, pos, loc)
        if rec is None:
            return
        pos = rec.end
        if kind == "storages":
            size = _legacy_element_size(rec.value)
            head = blob.read(pos, 8)
            if size is None or len(head) < 8:
                scan.incomplete(
                    "MG002", "legacy torch storages: unknown storage record", loc.at(pos)
                )
                return
            pos += 8 + int.from_bytes(head, "little", signed=True) * size
        else:
            ndim = int.from_bytes(blob.read(pos, 4), "little", signed=True)
            pos += 8 + 16 * max(ndim, 0) + 8
        if pos > blob.size or pos < 0:
            scan.incomplete("MG002", f"legacy torch {kind}: record runs past the end", loc)
            return
    if kind == "storages":
        views = legacy_pickle(scan, blob, pos, loc)
        if views is None:
            return
        pos = views.end
    if pos < blob.size:
        scan.finding(
            "MG111",
            f"{blob.size - pos} bytes follow the last legacy torch record",
            loc.at(pos),
            bytes=str(blob.size - pos),
        )


def legacy_pickle(scan: FileScan, blob: Blob, pos: int, loc: Location) -> PickleResult | None:
    """Analyse one record pickle; return it when complete, else None."""
    res = scan.run(blob, pos)
    scan.judge(res, blob, loc)
    return res if res.complete else None


def walk_wrapper(scan: FileScan, blob: Blob, head: bytes, loc: Location, depth: int) -> str | None:
    """Decompress a gzip/bz2/xz/lzma/zlib/joblib wrapper (bounded) and analyse the content."""
    if not wrapper_candidate(head):
        return None
    from modelguard.formats import compress

    kind = compress.detect_wrapper_blob(blob)
    if kind is None:
        return None
    scan.seen(kind)
    if kind == "7z":
        walk_7z(scan, blob, loc, depth)
        return kind
    wloc = loc.inner(f"<{kind}>")
    from modelguard.analysers import archive

    if archive.budget_spent(scan, wloc):
        return kind
    try:
        inner: Blob = compress.decompress(blob, kind, scan.limits)
    except compress.TruncatedStream as exc:
        scan.incomplete("MG002", f"{kind}: {exc}", wloc)
        if exc.partial:
            scan.analyse(BytesBlob(exc.partial), wloc, depth + 1)
        return kind
    except LimitExceeded as exc:
        scan.incomplete("MG003", f"{kind}: {exc}", wloc)
        archive.report_bomb(scan, exc, wloc, f"{kind} content", blob.size)
        return kind
    except FormatError as exc:
        rule = "MG004" if "not supported" in str(exc) else "MG002"
        scan.incomplete(rule, f"{kind}: {exc}", wloc)
        return kind
    # No MG404 floor check here: one stream is what joblib's compress=N makes of a large
    # zero-filled array (100 MB at ~1000x, tests/test_scanner.py); the decoder's cap bounds it.
    if not archive.budget_spent(scan, wloc, inner.size):
        scan.charge(inner.size, wloc)
        scan.analyse(inner, wloc, depth + 1)
    return kind


def walk_7z(scan: FileScan, blob: Blob, loc: Location, depth: int) -> None:
    """Analyse every member of a 7z archive (needs the optional py7zr package)."""
    from modelguard.formats import compress, sevenzip

    try:
        view = sevenzip.read_7z(blob, scan.limits)
    except LimitExceeded as exc:
        scan.incomplete("MG003", f"7z: {exc}", loc)
        return
    except FormatError as exc:
        rule = "MG004" if "not supported" in str(exc) else "MG002"
        scan.incomplete(rule, f"7z: {exc}", loc)
        return
    for member in view.members:
        if member.is_dir:
            continue
        mloc = loc.inner(member.name)
        if member.is_symlink:
            continue  # a link holds a path, not content a loader would unpickle
        from modelguard.analysers import archive

        if archive.budget_spent(scan, mloc, member.size):
            continue
        try:
            data = sevenzip.open_7z_member(blob, view, member.name, scan.limits)
        except compress.TruncatedStream as exc:
            scan.incomplete("MG002", f"7z member: {exc}", mloc)
            if exc.partial:
                scan.analyse(BytesBlob(exc.partial), mloc, depth + 1)
            continue
        except LimitExceeded as exc:
            scan.incomplete("MG003", f"7z member: {exc}", mloc)
            archive.report_bomb(scan, exc, mloc, "7z member")
            continue
        except (FormatError, KeyError) as exc:
            scan.incomplete("MG002", f"7z member cannot be read: {exc}", mloc)
            continue
        if not archive.budget_spent(scan, mloc, data.size):
            scan.charge(data.size, mloc)
            scan.analyse(data, mloc, depth + 1)


# -- simple formats ----------------------------------------------------------------------
