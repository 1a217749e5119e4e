"""The scan orchestrator: targets -> files -> `FileScan` -> one ScanReport.

Every file gets a result. Folders are walked recursively; what each file is comes from its
bytes (see `modelguard.filescan`); problems inside a file are recorded in its result and make
it incomplete, never safe.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from modelguard._version import __version__
from modelguard.errors import ConfigError, SourceError
from modelguard.fileid import FileIdentity
from modelguard.filescan import FileScan
from modelguard.formats.blob import FileBlob
from modelguard.formats.sniff import extension_claim
from modelguard.policy import Policy
from modelguard.results import (
    FileResult,
    Finding,
    Incomplete,
    ScanReport,
    Severity,
    sorted_findings,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from modelguard.cache import ResultCache
    from modelguard.hub import ResolvedTarget

__all__ = ["Progress", "scan", "scan_file"]

Progress = Callable[[int, int | None, str], None]
"""progress(files_done, files_total, current_path): called before each file."""

_SKIP_DIRS = frozenset({".git", ".hg", ".svn"})
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
    "onnx-tensor": "onnx",
    "text": "text",
    "json": "text",
}


def _check_extension(scan: FileScan, name: str, fmt: str) -> None:
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


# What the last `scan_file` of this thread read: (path, identity of the open descriptor), the
# identity None when the file changed while it was scanned. The result cache stores a result
# only when this identity is the one its hash saw (see `modelguard.parallel`).
_READ = threading.local()


def _record_read(path: str, blob: FileBlob, opened: os.stat_result) -> None:
    try:
        after = blob.stat()
    except OSError:
        _READ.last = (path, None)
        return
    ident = FileIdentity.from_stat(opened)
    _READ.last = (path, ident if ident.matches(after) else None)


def last_read_identity(path: str) -> FileIdentity | None:
    """Return what the last `scan_file` of this thread read from `path`, if it read it whole.

    The identity (device, inode, size, mtime_ns, ctime_ns) of the descriptor the scan read,
    taken when it was opened and unchanged when the scan ended; None when the last scan of this
    thread was of another path, read nothing, or saw the file change.
    """
    last = getattr(_READ, "last", None)
    if last is None or last[0] != path:
        return None
    ident: FileIdentity | None = last[1]
    return ident


def scan_file(path: str | os.PathLike[str], display: str, policy: Policy) -> FileResult:
    """Scan one file and return its result (never raises for problems inside the file).

    Anything that is not a regular file (FIFO, device, socket) is reported as not scanned
    rather than opened: reading one could block forever or never end.
    """
    scan = FileScan(display, policy, os.fspath(path))

    def unreadable(reason: str) -> FileResult:
        return FileResult(display, 0, (), (), (Incomplete("MG001", reason, scan.root),))

    _READ.last = None
    try:
        info = os.stat(path)
    except OSError as exc:
        return unreadable(f"cannot read the file: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return unreadable("not a regular file (device, FIFO or socket): not read")
    try:  # FileBlob opens with O_NONBLOCK: a path swapped for a FIFO does not block
        blob = FileBlob.open(path)
    except OSError as exc:
        return unreadable(f"cannot read the file: {exc.strerror or exc}")
    try:
        opened = blob.stat()
    except OSError as exc:
        blob.close()
        return unreadable(f"cannot read the file: {exc.strerror or exc}")
    if not stat.S_ISREG(opened.st_mode):
        blob.close()
        return unreadable("not a regular file (device, FIFO or socket): not read")
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
        _record_read(os.fspath(path), blob, opened)
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


def _with_folder_findings(
    entries: list[tuple[Path, str]],
    results: list[FileResult],
    policy: Policy,
    *,
    file_targets: frozenset[Path] = frozenset(),
) -> list[FileResult]:
    """Add what only the whole folder shows (code beside weights, pickle beside safetensors).

    The files of folder targets are judged together (everything in a repository comes with
    it). Files named one by one (`file_targets`, as pre-commit passes staged files) are judged
    per folder: a script counts only beside weights in its own folder, not because some other
    named file somewhere in the repository is a model.
    """
    if len(results) < 2:
        return results  # a file on its own has nothing beside it
    from modelguard.analysers.hfrepo import folder_findings

    groups: dict[Path | None, list[tuple[Path, FileResult]]] = {}
    for (path, _), res in zip(entries, results, strict=True):
        key = path.parent.absolute() if path in file_targets else None
        groups.setdefault(key, []).append((path, res))
    extra: dict[str, list[Finding]] = {}
    for group in groups.values():
        if len(group) > 1:
            for shown, found in folder_findings(group, policy).items():
                extra.setdefault(shown, []).extend(found)
    if not extra:
        return results
    return [
        replace(res, findings=sorted_findings([*res.findings, *extra[res.path]]))
        if res.path in extra
        else res
        for res in results
    ]


def _resolve_targets(
    targets: Sequence[str | os.PathLike[str]],
    hub: list[ResolvedTarget] | None = None,
) -> list[tuple[Path, str]]:
    """Return (local path, display name) for each target.

    `hf://org/name[@revision][/file]` targets resolve to their cached snapshot, displayed as
    `org/name@<commit>`; each is also appended to `hub` (see `modelguard.hub`). A file that the
    snapshot lacks is left out here: its incomplete result comes from the `ResolvedTarget`.

    Raises:
        SourceError: a target does not exist (or is not in the Hugging Face cache).
    """
    out: list[tuple[Path, str]] = []
    for target in targets:
        if isinstance(target, str) and target.startswith("hf://"):
            from modelguard.hub import resolve_hf_target

            hit = resolve_hf_target(target)
            if hub is not None:
                hub.append(hit)
            if hit.path.exists():
                out.append((hit.path, hit.display))
            continue
        path = Path(target)
        if not path.exists():
            raise SourceError(f"no such file or directory: {os.fspath(target)}")
        out.append((path, Path(os.fspath(target)).as_posix()))
    return out


def _collect(
    resolved: list[tuple[Path, str]],
    policy: Policy,
    skipped: list[str] | None = None,
    notes: list[str] | None = None,
) -> list[tuple[Path, str]]:
    """Return (path, display path) for every file of every resolved target, in order.

    Files of a folder target that the policy's include/exclude globs leave out are not
    returned (their display paths are appended to `skipped`). The globs match the path
    relative to the folder target, never the target's own path; a folder target whose every
    file is left out gets a note (appended to `notes`). A file named as a target is always
    scanned.
    """
    entries: list[tuple[Path, str]] = []
    for path, display in resolved:
        if not (policy.include or policy.exclude) or not path.is_dir():
            entries.extend(_iter_files(path, display))
            continue
        kept = 0
        left: list[str] = []
        for entry in _iter_files(path, display):
            if policy.selects(entry[0].relative_to(path).as_posix()):
                entries.append(entry)
                kept += 1
            else:
                left.append(entry[1])
        if skipped is not None:
            skipped.extend(left)
        if notes is not None and left and not kept:
            notes.append(
                f"{display}: all {len(left)} file(s) left out by the policy's include/exclude; "
                "nothing in this target was scanned"
            )
    return entries


def _scan_entries(
    entries: list[tuple[Path, str]],
    policy: Policy,
    progress: Progress | None,
    *,
    jobs: int | None = None,
    executor: Executor | None = None,
    cache: ResultCache | None = None,
) -> list[FileResult]:
    """Scan every entry and return one result per entry, in the entries' order.

    Serial, in worker processes or on an executor, through the result cache when given: see
    `modelguard.parallel.scan_entries`.
    """
    if cache is None and executor is None and (jobs is None or jobs == 1 or len(entries) < 2):
        results: list[FileResult] = []
        for index, (path, display) in enumerate(entries):
            if progress is not None:
                progress(index, len(entries), display)
            results.append(scan_file(path, display, policy))
        return results
    from modelguard.parallel import scan_entries

    return scan_entries(entries, policy, progress, jobs=jobs, executor=executor, cache=cache)


# Opening the result cache (SQLite, its folder checks) costs about 10 ms: a scan of a few files
# that are small, or not worth hashing at all, is faster without it.
_CACHE_FILES = 8
_CACHE_BYTES = 4 * 1024 * 1024


def _cache_pays(entries: Sequence[tuple[Path, str]]) -> bool:
    """Return True when the default cache can pay for itself: many files, or a big one that
    would go through it (`modelguard.cache.needs_hash`).

    Only the default cache (`scan(cache=True)`, the CLI's) is skipped otherwise; a cache the
    caller names is always used.
    """
    if len(entries) >= _CACHE_FILES:
        return True
    for path, _ in entries:
        try:
            big = os.stat(path).st_size >= _CACHE_BYTES
        except OSError:
            continue
        if big:
            from modelguard.cache import needs_hash

            if needs_hash(os.fspath(path)):
                return True
    return False


def _open_cache(
    cache: bool | str | os.PathLike[str] | ResultCache | None,
    resolved: Sequence[tuple[Path, str]] = (),
    notes: list[str] | None = None,
) -> tuple[ResultCache | None, bool]:
    """Return (the cache to use, whether this scan opened it and must close it).

    A cache whose folder lies inside a scan target (or holds one) is not used: its note is
    appended to `notes`.
    """
    if cache is None or cache is False:
        return None, False
    from modelguard.cache import ResultCache

    if isinstance(cache, ResultCache):
        opened, owned = cache, False
    elif cache is True:
        opened, owned = ResultCache(), True
    elif isinstance(cache, (str, os.PathLike)):
        opened, owned = ResultCache(cache), True
    else:
        raise ConfigError(f"cache must be a bool, a folder or a ResultCache, not {cache!r}")
    clash = opened.overlap(path for path, _ in resolved)
    if clash is None:
        return opened, owned
    if notes is not None:
        notes.append(
            f"result cache not used: its folder {opened.directory} and the scanned path "
            f"{clash} overlap (a cache shipped with a model is not trusted)"
        )
    if owned:
        opened.close()
    return None, False


def _finish(
    report: ScanReport,
    policy: Policy,
    skipped: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> ScanReport:
    """Apply what the policy says about the finished report: suppressions, the files
    include/exclude left out (every one in `ScanReport.skipped`, the first few in a note) and
    `notes` (from `_collect`)."""
    if skipped:
        names = tuple(sorted(set(skipped)))
        more = f" (+{len(names) - 5} more: see skipped in --format json)"
        shown = ", ".join(names[:5]) + (more if len(names) > 5 else "")
        note = f"{len(names)} file(s) not scanned (policy include/exclude): {shown}"
        report = replace(report, notes=(*report.notes, note, *notes), skipped=names)
    elif notes:
        report = replace(report, notes=(*report.notes, *notes))
    if not policy.suppressions:
        return report
    from modelguard.policy.suppress import apply_suppressions

    return apply_suppressions(
        report,
        policy.suppressions,
        source=policy.source,
        severity=policy.severity_of("MG010", Severity.LOW),
    )


def scan(
    targets: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    policy: Policy | None = None,
    progress: Progress | None = None,
    indicators: bool = False,
    base: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    jobs: int | None = None,
    executor: Executor | None = None,
    cache: bool | str | os.PathLike[str] | ResultCache | None = None,
) -> ScanReport:
    """Scan files and folders and return one report.

    Args:
        targets: a path or several; folders are walked recursively (VCS metadata folders
            such as `.git` are skipped; symlinks to files are followed, since loaders follow
            them). `hf://org/name[@revision][/file]` scans the cached snapshot, offline, as
            `org/name@<commit>` (see `modelguard.hub`).
        policy: allowlist additions, severities, limits and fail_on; defaults when None.
        progress: called before each file with (done, total, path).
        indicators: also run the tensor pass of the poisoning-risk indicators (MG50x),
            sampled or full as `policy.indicators.mode` says. The cheap indicators (config
            consistency, provenance: headers only) run on every folder target regardless.
        base: a trusted base model: report what changed in each target against it (MG51x).
        workers: threads for the tensor pass (default: one per core).
        jobs: scan files in this many worker processes (0: one per CPU; None or 1: in this
            process). The report is the same as a serial scan's.
        executor: scan files on this `concurrent.futures.Executor` instead, e.g. a Dask
            ``Client.get_executor()`` (its workers must see the same paths). Folder-level
            steps (folder findings, indicators, suppressions) run here.
        cache: the result cache (`modelguard.cache`): True for the default folder, a folder,
            or a `ResultCache`; None or False (the default) scans without it. A cache that
            cannot be used is skipped with a note in the report.

    Returns:
        The report; per-file problems are recorded in it, never raised.

    Raises:
        SourceError: a target does not exist (an `hf://` target: is not in the local cache).
        ConfigError: both `jobs` and `executor` are given, `jobs` is negative or `cache` is
            of a wrong type.
    """
    if policy is None:
        policy = Policy()
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0):
        raise ConfigError(f"jobs must be a non-negative integer, not {jobs!r}")
    if jobs is not None and executor is not None:
        raise ConfigError("give jobs or executor, not both")
    if isinstance(targets, (str, os.PathLike)):
        targets = [targets]
    hub: list[ResolvedTarget] = []
    resolved = _resolve_targets(targets, hub)
    skipped: list[str] = []
    left_out: list[str] = []
    entries = _collect(resolved, policy, skipped, left_out)
    result_cache, owned = (None, False)
    if cache is not True or _cache_pays(entries):
        result_cache, owned = _open_cache(cache, resolved, left_out)
    if result_cache is not None:  # the cache's own files (reached through a symlink)
        entries = [entry for entry in entries if not result_cache.owns(entry[0])]
    try:
        results = _scan_entries(
            entries, policy, progress, jobs=jobs, executor=executor, cache=result_cache
        )
    finally:
        if owned and result_cache is not None:
            result_cache.close()
    file_targets = frozenset(path for path, _ in resolved if not path.is_dir())
    results = _with_folder_findings(entries, results, policy, file_targets=file_targets)
    if hub:  # LFS blobs of a cached snapshot must still match their SHA-256 names (MG604)
        from modelguard.hub import with_digest_checks

        results = with_digest_checks(entries, results, under=[t.display for t in hub])
    results.sort(key=lambda r: r.path)
    report = ScanReport(
        files=tuple(results),
        targets=tuple(os.fspath(t) for t in targets),
        fail_on=policy.fail_on,
        version=__version__,
    )
    if result_cache is not None and result_cache.error is not None:
        note = f"result cache not used: {result_cache.error}"
        report = replace(report, notes=(*report.notes, note))
    if hub:
        from modelguard.hub import with_resolved

        report = with_resolved(report, hub)
    if indicators or base is not None or any(path.is_dir() for path, _ in resolved):
        from modelguard.indicators import add_indicators

        report = add_indicators(
            report,
            resolved,
            policy,
            tensors=indicators,
            base=base,
            workers=workers,
        )
    if hub:  # a commit-pinned hf:// target is not "resolved from a branch" (MG532)
        from modelguard.hub import with_pinned

        report = with_pinned(report, hub)
    return _finish(report, policy, skipped, left_out)
