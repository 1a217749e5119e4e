"""The scan orchestrator: targets -> files -> content -> analysers -> one ScanReport.

Every file gets a result. What a file is comes from its bytes: containers (zip, tar,
compressed wrappers) are opened recursively in memory up to the named limits, pickles are run
through the symbolic machine and judged by the policy, and anything that could not be fully
analysed makes the file's result incomplete rather than safe.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from modelguard._version import __version__
from modelguard.errors import FormatError, LimitExceeded, SourceError
from modelguard.formats.blob import Blob, BytesBlob, FileBlob, SliceBlob
from modelguard.formats.numpy import NPY_MAGIC, read_npy_header
from modelguard.formats.sniff import (
    GGUF_MAGIC,
    HDF5_MAGIC,
    LFS_PREFIX,
    PickleSignature,
    extension_claim,
    looks_like_onnx,
    looks_like_text,
    pickle_signature,
    safetensors_header_length,
    tar_candidate,
    wrapper_candidate,
    zip_candidate,
)
from modelguard.picklevm.values import GlobalRef, PickleResult
from modelguard.picklevm.vm import ExtRegistry, run_pickle
from modelguard.policy import Policy
from modelguard.policy.evaluate import Collected, evaluate_pickle, make_finding
from modelguard.policy.names import Class
from modelguard.results import FileResult, Incomplete, Location, ScanReport, sorted_findings

__all__ = ["Progress", "scan", "scan_file"]

Progress = Callable[[int, int | None, str], None]
"""progress(files_done, files_total, current_path): called before each file."""

# torch.save's legacy (non-zip) format starts with this magic number pickle, then the
# protocol version, sys_info, the object and the storage keys: five pickles, then raw data.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PICKLES = 5
_HIDDEN_SPAN = 64 * 1024
_SKIP_DIRS = frozenset({".git", ".hg", ".svn"})

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
_CATEGORY = {
    "pickle": "pickle",
    "legacy-torch": "pickle",
    "zip": "zip",
    "tar": "tar",
    "numpy": "numpy",
    "safetensors": "safetensors",
    "gguf": "gguf",
    "hdf5": "hdf5",
    "onnx": "onnx",
    "text": "text",
}


class _FileScan:
    """The analysis of one top-level file: a recursive walk over its content."""

    def __init__(self, display: str, policy: Policy) -> None:
        self.policy = policy
        self.limits = policy.limits
        self.coll = Collected()
        self.formats: list[str] = []
        self.registry: ExtRegistry = {}
        self.total = 0
        self.depth = 0
        self.root = Location(display)

    # -- bookkeeping -------------------------------------------------------------------------
    def seen(self, fmt: str) -> None:
        if fmt not in self.formats:
            self.formats.append(fmt)

    def incomplete(self, rule_id: str, reason: str, loc: Location) -> None:
        self.coll.incomplete.append(Incomplete(rule_id, reason, loc))

    def finding(self, rule_id: str, message: str, loc: Location, **evidence: str) -> None:
        self.coll.findings.append(make_finding(self.policy, rule_id, message, loc, evidence))

    def charge(self, nbytes: int, loc: Location) -> bool:
        """Count decompressed bytes against max_total_bytes; False when over."""
        self.total += nbytes
        if self.total > self.limits.max_total_bytes:
            self.incomplete(
                "MG003",
                f"max_total_bytes reached ({self.limits.max_total_bytes} decompressed bytes)",
                loc,
            )
            return False
        return True

    # -- dispatch ----------------------------------------------------------------------------
    def analyse(self, blob: Blob, loc: Location, depth: int, *, raw: bool = False) -> str:
        """Recognise `blob` by content and analyse it; return the format name."""
        if depth > self.limits.max_depth:
            self.incomplete("MG003", f"max_depth reached ({self.limits.max_depth})", loc)
            return "limit"
        self.depth = depth
        head = blob.read(0, 512)
        if raw:
            # Tensor storage is read as raw bytes by the loader and never unpickled; random
            # floats often start like a pickle. Only a complete stream that imports something
            # dangerous is worth reporting (a payload parked where a second loader may look).
            if pickle_signature(head) is not PickleSignature.NONE:
                self.hidden_in_raw(blob, loc)
            return "raw"
        sig = pickle_signature(head)
        if head.startswith(LFS_PREFIX):
            self.incomplete("MG005", "Git LFS pointer: the model content is not present", loc)
            return self.mark("git-lfs-pointer")
        if head.startswith(NPY_MAGIC):
            self.numpy(blob, loc)
            return self.mark("numpy")
        if head.startswith(GGUF_MAGIC):
            return self.unsupported("gguf", "GGUF", loc)
        if head.startswith(HDF5_MAGIC):
            return self.unsupported("hdf5", "HDF5 (Keras .h5)", loc)
        if safetensors_header_length(blob) is not None:
            return self.safetensors(blob, loc)
        fmt = self.zip(blob, loc, depth)
        if fmt:
            return fmt
        fmt = self.tar(blob, loc, depth)
        if fmt:
            return fmt
        fmt = self.wrapper(blob, loc, depth)
        if fmt:
            return fmt
        if sig is PickleSignature.STRONG:
            return self.mark(self.pickles(blob, loc, strong=True) or "pickle")
        if sig is PickleSignature.WEAK:
            kind = self.pickles(blob, loc, strong=False)
            if kind:
                return self.mark(kind)
        if looks_like_onnx(head):
            return self.unsupported("onnx", "ONNX", loc)
        if looks_like_text(head):
            return self.mark("text")
        self.finding("MG210", "content is none of the formats modelguard knows", loc)
        return self.mark("unknown")

    def mark(self, fmt: str) -> str:
        self.seen(fmt)
        return fmt

    def unsupported(self, fmt: str, what: str, loc: Location) -> str:
        self.incomplete(
            "MG004",
            f"{what} content is not analysed by this version of modelguard",
            loc,
        )
        return self.mark(fmt)

    # -- pickles -----------------------------------------------------------------------------
    def pickles(self, blob: Blob, loc: Location, *, strong: bool) -> str | None:
        """Analyse the pickle(s) at the start of `blob`; None if it is not a pickle."""
        first = run_pickle(blob, 0, self.limits, self.registry, depth=self.depth)
        if not strong and not self.accept_weak(first):
            return None
        results = [first]
        legacy = first.complete and first.value == _TORCH_LEGACY_MAGIC
        budget = _TORCH_LEGACY_PICKLES if legacy else self.limits.max_pickles_per_stream
        last = first
        while last.complete and last.end < blob.size:
            sig = pickle_signature(blob.read(last.end, 2))
            if sig is PickleSignature.NONE:
                break
            if len(results) >= budget:
                if not legacy:
                    self.incomplete(
                        "MG003",
                        f"max_pickles_per_stream reached ({budget} stacked pickles)",
                        loc.at(last.end),
                    )
                break
            nxt = run_pickle(blob, last.end, self.limits, self.registry, depth=self.depth)
            if not (nxt.complete or self.accept_weak(nxt)):
                break
            results.append(nxt)
            last = nxt
        for res in results:
            self.coll.extend(evaluate_pickle(res, loc, self.policy, self.nested))
            for anomaly in res.anomalies:
                if anomaly.span is not None:
                    self.hidden(blob, anomaly.span, loc)
        if len(results) > 1 and not legacy:
            self.finding(
                "MG112",
                f"{len(results)} pickles one after another; all were analysed",
                loc,
                count=str(len(results)),
            )
        if last.complete and last.end < blob.size and not legacy:
            self.finding(
                "MG111",
                f"{blob.size - last.end} bytes follow the last pickle",
                loc.at(last.end),
                bytes=str(blob.size - last.end),
            )
        if legacy:
            self.seen("legacy-torch")
            return "legacy-torch"
        return "pickle"

    def hidden(self, blob: Blob, span: tuple[int, int], loc: Location) -> None:
        """Read the bytes behind a frame overrun as opcodes, as older C unpicklers did.

        CPython's C unpickler before gh-154848 could run what follows a frame's end even
        though a linear reading takes it for an argument's data; every offset of that span is
        tried as the start of a stream, and streams that would do something are reported.
        """
        start, end = span
        window = min(end - start, _HIDDEN_SPAN)
        region = BytesBlob(blob.read(start, window + _HIDDEN_SPAN))
        trial = replace(self.limits, max_opcodes=100_000)
        offset = 0
        while offset < window:
            res = run_pickle(region, offset, trial, dict(self.registry), chunk=256)
            if res.effective:
                where = loc.inner(f"<after-frame@{start + offset}>")
                self.coll.extend(evaluate_pickle(res, where, self.policy, self.nested))
                offset = max(offset + 1, res.end)
            else:
                offset += 1

    def hidden_in_raw(self, blob: Blob, loc: Location) -> None:
        """Report a complete, dangerous pickle parked in raw tensor data; ignore the rest."""
        res = run_pickle(blob, 0, self.limits, {}, depth=self.depth)
        if res.complete and self.dangerous_import(res):
            self.coll.extend(evaluate_pickle(res, loc, self.policy, self.nested))

    def dangerous_import(self, res: PickleResult) -> bool:
        """Return True if the stream imports a denied or load-time-computed name."""
        return any(
            ref.dynamic or self.policy.classify(ref.module, ref.name, ref.proto).klass is Class.DENY
            for ref in res.imports
        )

    def accept_weak(self, res: PickleResult) -> bool:
        """Is a weak-signature stream a pickle?

        Yes if it completes, imports something dangerous, or calls or modifies something it
        imported: that is what a loader would act on. Random bytes and text rarely get that
        far (an EXT code or a call of a literal alone does not count).
        """
        if res.complete or res.nested or self.dangerous_import(res):
            return True
        if any(isinstance(c.func, GlobalRef) for c in res.calls):
            return True
        return any(isinstance(m.target, GlobalRef) for m in res.mutations)

    def nested(self, data: bytes, loc: Location) -> Collected:
        """Scan bytes a loader call inside a pickle would deserialise."""
        saved, depth = self.coll, self.depth
        self.coll = Collected()
        try:
            self.analyse(BytesBlob(data), loc, depth + 1)
            return self.coll
        finally:
            self.coll, self.depth = saved, depth

    # -- containers --------------------------------------------------------------------------
    def zip(self, blob: Blob, loc: Location, depth: int) -> str | None:
        if not zip_candidate(blob):
            return None
        from modelguard.formats import zipread

        try:
            view = zipread.read_zip(blob, self.limits)
        except LimitExceeded as exc:
            self.incomplete("MG003", f"zip: {exc}", loc.at(exc.offset))
            return self.mark("zip")
        except FormatError as exc:
            if blob.read(0, 4) == b"PK\x03\x04":
                self.incomplete("MG002", f"zip: {exc}", loc.at(exc.offset))
                return self.mark("zip")
            return None
        self.seen("zip")
        names = [m.name for m in view.members]
        pkl_dirs = {n[: -len("data.pkl")] for n in names if n.endswith("data.pkl")}
        if pkl_dirs:
            self.seen("torch-zip")
        if any(n.startswith("code/") or "/code/" in n for n in names) and pkl_dirs:
            self.seen("torchscript")
        if names and all(n.endswith(".npy") for n in names):
            self.seen("npz")
        for anomaly in view.anomalies:
            rule = _ZIP_FINDING.get(anomaly.kind)
            if rule:
                self.finding(
                    rule,
                    f"zip {anomaly.kind}: {anomaly.detail}",
                    loc.inner(anomaly.member) if anomaly.member else loc,
                    anomaly=anomaly.kind,
                )
        if view.start > 0:
            self.prefix(blob, view.start, loc, depth)
        counts: dict[str, int] = {}
        for member in view.members:
            counts[member.name] = counts.get(member.name, 0) + 1
        seen_names: dict[str, int] = {}
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
            try:
                # Read flagged members as plaintext, as a loader that ignores the flag would.
                mblob = zipread.open_member(blob, member, self.limits, ignore_encryption=True)
            except LimitExceeded as exc:
                self.incomplete("MG003", f"zip member: {exc}", mloc)
                continue
            except FormatError as exc:
                self.incomplete("MG002", f"zip member cannot be read: {exc}", mloc)
                continue
            if member.method != 0 and not self.charge(mblob.size, mloc):
                return "zip"
            fmt = self.analyse(mblob, mloc, depth + 1, raw=raw)
            if fmt in ("pickle", "legacy-torch") and member.size <= 64 * 1024 * 1024:
                ok = zipread.member_crc_ok(blob, member, self.limits)
                if ok is False:
                    self.finding(
                        "MG204",
                        "pickle member has a CRC-32 that does not match its content "
                        "(PyTorch ignores it, zipfile refuses it)",
                        mloc,
                        anomaly="crc-mismatch",
                    )
        return "zip"

    def prefix(self, blob: Blob, start: int, loc: Location, depth: int) -> None:
        """Analyse bytes in front of an archive: a pickle there makes a polyglot."""
        ploc = loc.inner("<before-archive>")
        before = len(self.formats)
        fmt = self.analyse(SliceBlob(blob, 0, start), ploc, depth + 1)
        del self.formats[before:]
        if fmt not in ("text", "unknown", "raw", "limit"):
            self.finding(
                "MG202",
                f"the file is both a {fmt} (first {start} bytes) and a zip archive",
                loc,
                formats=f"{fmt}+zip",
            )
        else:
            self.finding(
                "MG205",
                f"{start} bytes before the zip archive ({fmt})",
                ploc,
                bytes=str(start),
            )

    def tar(self, blob: Blob, loc: Location, depth: int) -> str | None:
        if not tar_candidate(blob.read(0, 512)):
            return None
        from modelguard.formats import tarread

        try:
            view = tarread.read_tar(blob, self.limits)
        except tarread.TruncatedTar as exc:
            self.incomplete("MG002", f"tar: {exc}", loc.at(exc.offset))
            view = exc.partial
        except LimitExceeded as exc:
            self.incomplete("MG003", f"tar: {exc}", loc.at(exc.offset))
            return self.mark("tar")
        except FormatError as exc:
            self.incomplete("MG002", f"tar: {exc}", loc.at(exc.offset))
            return self.mark("tar")
        self.seen("tar")
        names = {m.name for m in view.members}
        legacy = {"sys_info", "pickle", "storages"} <= names
        if legacy:
            self.seen("legacy-torch-tar")
        for member in view.members:
            if member.kind != "file":
                continue
            mloc = loc.inner(member.name)
            mblob = tarread.open_tar_member(blob, member)
            if legacy and member.name in ("storages", "tensors"):
                self.depth = depth + 1
                self.legacy_records(mblob, mloc, member.name)
            else:
                self.analyse(mblob, mloc, depth + 1)
        return "tar"

    def legacy_records(self, blob: Blob, loc: Location, kind: str) -> None:
        """Walk the `storages`/`tensors` member of a legacy torch tar the way torch reads it.

        Both are a count pickle, then per record a pickle followed by raw data whose size
        the record gives (storages: an 8-byte element count and the elements; tensors: ndim,
        sizes, strides and offset); `storages` ends with a pickle of storage views. Every
        pickle there is unpickled by torch.load, so each one is analysed.
        """
        pos = 0
        first = self.legacy_pickle(blob, pos, loc)
        if first is None:
            return
        count = first.value
        if not isinstance(count, int) or count < 0 or count > self.limits.max_members:
            self.incomplete("MG002", f"legacy torch {kind}: bad record count {count!r}", loc)
            return
        pos = first.end
        for _ in range(count):
            rec = self.legacy_pickle(blob, pos, loc)
            if rec is None:
                return
            pos = rec.end
            if kind == "storages":
                size = _legacy_element_size(rec.value)
                head = blob.read(pos, 8)
                if size is None or len(head) < 8:
                    self.incomplete(
                        "MG002", "legacy torch storages: unknown storage record", loc.at(pos)
                    )
                    return
                pos += 8 + int.from_bytes(head, "little", signed=True) * size
            else:
                ndim = int.from_bytes(blob.read(pos, 4), "little", signed=True)
                pos += 8 + 16 * max(ndim, 0) + 8
            if pos > blob.size or pos < 0:
                self.incomplete("MG002", f"legacy torch {kind}: record runs past the end", loc)
                return
        if kind == "storages":
            views = self.legacy_pickle(blob, pos, loc)
            if views is None:
                return
            pos = views.end
        if pos < blob.size:
            self.finding(
                "MG111",
                f"{blob.size - pos} bytes follow the last legacy torch record",
                loc.at(pos),
                bytes=str(blob.size - pos),
            )

    def legacy_pickle(self, blob: Blob, pos: int, loc: Location) -> PickleResult | None:
        res = run_pickle(blob, pos, self.limits, self.registry, depth=self.depth)
        self.coll.extend(evaluate_pickle(res, loc, self.policy, self.nested))
        for anomaly in res.anomalies:
            if anomaly.span is not None:
                self.hidden(blob, anomaly.span, loc)
        return res if res.complete else None

    def wrapper(self, blob: Blob, loc: Location, depth: int) -> str | None:
        if not wrapper_candidate(blob.read(0, 1)):
            return None
        from modelguard.formats import compress

        kind = compress.detect_wrapper_blob(blob)
        if kind is None:
            return None
        self.seen(kind)
        wloc = loc.inner(f"<{kind}>")
        try:
            inner: Blob = compress.decompress(blob, kind, self.limits)
        except compress.TruncatedStream as exc:
            self.incomplete("MG002", f"{kind}: {exc}", wloc)
            if exc.partial:
                self.analyse(BytesBlob(exc.partial), wloc, depth + 1)
            return kind
        except LimitExceeded as exc:
            self.incomplete("MG003", f"{kind}: {exc}", wloc)
            return kind
        except FormatError as exc:
            rule = "MG004" if "not supported" in str(exc) else "MG002"
            self.incomplete(rule, f"{kind}: {exc}", wloc)
            return kind
        if self.charge(inner.size, wloc):
            self.analyse(inner, wloc, depth + 1)
        return kind

    # -- simple formats ----------------------------------------------------------------------
    def numpy(self, blob: Blob, loc: Location) -> None:
        try:
            header = read_npy_header(blob)
        except FormatError as exc:
            self.incomplete("MG002", f"npy: {exc}", loc.at(exc.offset))
            return
        if header.has_object:
            self.finding(
                "MG206",
                f"object-dtype array {header.descr!r}: its data is a pickle",
                loc,
                descr=repr(header.descr),
            )
            body = SliceBlob(blob, header.data_offset, blob.size - header.data_offset)
            self.pickles(body, loc.inner("<object-array>"), strong=True)

    def safetensors(self, blob: Blob, loc: Location) -> str:
        length = safetensors_header_length(blob) or 0
        if length > self.limits.max_header_bytes:
            self.incomplete(
                "MG003",
                f"max_header_bytes reached (safetensors header of {length} bytes)",
                loc,
            )
            return self.mark("safetensors")
        try:
            header = json.loads(blob.read(8, length))
        except (ValueError, RecursionError) as exc:
            self.incomplete("MG002", f"safetensors header is not valid JSON: {exc}", loc.at(8))
            return self.mark("safetensors")
        if not isinstance(header, dict):
            self.incomplete("MG002", "safetensors header is not a JSON object", loc.at(8))
        return self.mark("safetensors")


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


def _check_extension(scan: _FileScan, name: str, fmt: str) -> None:
    claim = extension_claim(name)
    if claim is None:
        return
    category = _CATEGORY.get(fmt)
    if fmt in ("gzip", "bz2", "xz", "lzma", "zlib", "joblib-zf"):
        category = "compressed"
    if category is None or category in claim:
        return
    ext = name[name.rfind(".") :]
    scan.finding(
        "MG201",
        f"named {ext} but the content is {fmt}",
        scan.root,
        extension=ext,
        content=fmt,
    )


def scan_file(path: str | os.PathLike[str], display: str, policy: Policy) -> FileResult:
    """Scan one file and return its result (never raises for problems inside the file).

    Anything that is not a regular file (FIFO, device, socket) is reported as not scanned
    rather than opened: reading one could block forever or never end.
    """
    scan = _FileScan(display, policy)

    def unreadable(reason: str) -> FileResult:
        return FileResult(display, 0, (), (), (Incomplete("MG001", reason, scan.root),))

    try:
        info = os.stat(path)
    except OSError as exc:
        return unreadable(f"cannot read the file: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return unreadable("not a regular file (device, FIFO or socket): not read")
    try:
        blob = FileBlob.open(path)
    except OSError as exc:
        return unreadable(f"cannot read the file: {exc.strerror or exc}")
    with blob:
        try:
            fmt = scan.analyse(blob, scan.root, 0)
            _check_extension(scan, display, fmt)
        except OSError as exc:
            scan.incomplete("MG001", f"read error: {exc.strerror or exc}", scan.root)
        except RecursionError:
            scan.incomplete("MG003", "max_depth reached (recursion)", scan.root)
        except Exception as exc:  # a scanner bug must fail closed (incomplete), not crash
            scan.incomplete(
                "MG002",
                f"internal error while analysing ({type(exc).__name__}: {exc}); please report it",
                scan.root,
            )
        size = blob.size
    findings = sorted_findings(scan.coll.findings)
    incomplete = tuple(dict.fromkeys(scan.coll.incomplete))
    formats = tuple(f for f in scan.formats if f not in ("raw", "limit"))
    return FileResult(display, size, formats, findings, incomplete)


def _iter_files(target: Path, display: str) -> Iterator[tuple[Path, str]]:
    """Yield (path, display path) for every file under `target`, in sorted order.

    Symlinks are followed (loaders follow them; Hugging Face snapshots are made of them);
    each real directory is walked once, so symlink loops end.
    """
    if not target.is_dir():
        yield target, display
        return
    seen: set[str] = set()
    for root, dirs, files in os.walk(target, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        rel_root = Path(root).relative_to(target)
        for name in sorted(files):
            rel = (rel_root / name).as_posix()
            shown = rel if display in ("", ".") else f"{display.rstrip('/')}/{rel}"
            yield Path(root) / name, shown


def scan(
    targets: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    policy: Policy | None = None,
    progress: Progress | None = None,
) -> ScanReport:
    """Scan files and folders and return one report.

    Args:
        targets: a path or several; folders are walked recursively (VCS metadata folders
            such as `.git` are skipped; symlinks to files are followed, since loaders follow
            them).
        policy: allowlist additions, severities, limits and fail_on; defaults when None.
        progress: called before each file with (done, total, path).

    Returns:
        The report; per-file problems are recorded in it, never raised.

    Raises:
        SourceError: a target does not exist.
    """
    if policy is None:
        policy = Policy()
    if isinstance(targets, (str, os.PathLike)):
        targets = [targets]
    entries: list[tuple[Path, str]] = []
    for target in targets:
        path = Path(target)
        if not path.exists():
            raise SourceError(f"no such file or directory: {os.fspath(target)}")
        entries.extend(_iter_files(path, Path(os.fspath(target)).as_posix()))
    results: list[FileResult] = []
    for index, (path, display) in enumerate(entries):
        if progress is not None:
            progress(index, len(entries), display)
        results.append(scan_file(path, display, policy))
    results.sort(key=lambda r: r.path)
    return ScanReport(
        files=tuple(results),
        targets=tuple(os.fspath(t) for t in targets),
        fail_on=policy.fail_on,
        version=__version__,
    )
