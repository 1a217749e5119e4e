"""The scan orchestrator: targets -> files -> `FileScan` -> one ScanReport.

Every file gets a result. Folders are walked recursively; what each file is comes from its
bytes (see `modelguard.filescan`); problems inside a file are recorded in its result and make
it incomplete, never safe.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from modelguard._version import __version__
from modelguard.errors import SourceError
from modelguard.filescan import FileScan
from modelguard.formats.blob import FileBlob
from modelguard.formats.sniff import extension_claim
from modelguard.policy import Policy
from modelguard.results import FileResult, Incomplete, ScanReport, sorted_findings

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


def scan_file(path: str | os.PathLike[str], display: str, policy: Policy) -> FileResult:
    """Scan one file and return its result (never raises for problems inside the file).

    Anything that is not a regular file (FIFO, device, socket) is reported as not scanned
    rather than opened: reading one could block forever or never end.
    """
    scan = FileScan(display, policy, os.fspath(path))

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


def _with_folder_findings(
    entries: list[tuple[Path, str]], results: list[FileResult], policy: Policy
) -> list[FileResult]:
    """Add what only the whole folder shows (code beside weights, pickle beside safetensors)."""
    if len(results) < 2:
        return results  # a file on its own has nothing beside it
    from modelguard.analysers.hfrepo import folder_findings

    extra = folder_findings(
        [(path, res) for (path, _), res in zip(entries, results, strict=True)], policy
    )
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
) -> list[tuple[Path, str]]:
    """Return (local path, display name) for each target.

    Raises:
        SourceError: a target does not exist.
    """
    out: list[tuple[Path, str]] = []
    for target in targets:
        path = Path(target)
        if not path.exists():
            raise SourceError(f"no such file or directory: {os.fspath(target)}")
        out.append((path, Path(os.fspath(target)).as_posix()))
    return out


def _collect(resolved: list[tuple[Path, str]], policy: Policy) -> list[tuple[Path, str]]:
    """Return (path, display path) for every file of every resolved target, in order."""
    entries: list[tuple[Path, str]] = []
    for path, display in resolved:
        entries.extend(_iter_files(path, display))
    return entries


def _scan_entries(
    entries: list[tuple[Path, str]], policy: Policy, progress: Progress | None
) -> list[FileResult]:
    """Scan every entry and return one result per entry, in the entries' order."""
    results: list[FileResult] = []
    for index, (path, display) in enumerate(entries):
        if progress is not None:
            progress(index, len(entries), display)
        results.append(scan_file(path, display, policy))
    return results


def _finish(report: ScanReport, policy: Policy) -> ScanReport:
    """Apply what the policy says about the finished report."""
    return report


def scan(
    targets: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    policy: Policy | None = None,
    progress: Progress | None = None,
    indicators: bool = False,
    base: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> ScanReport:
    """Scan files and folders and return one report.

    Args:
        targets: a path or several; folders are walked recursively (VCS metadata folders
            such as `.git` are skipped; symlinks to files are followed, since loaders follow
            them).
        policy: allowlist additions, severities, limits and fail_on; defaults when None.
        progress: called before each file with (done, total, path).
        indicators: also run the tensor pass of the poisoning-risk indicators (MG50x),
            sampled or full as `policy.indicators.mode` says. The cheap indicators (config
            consistency, provenance: headers only) run on every folder target regardless.
        base: a trusted base model: report what changed in each target against it (MG51x).
        workers: threads for the tensor pass (default: one per core).

    Returns:
        The report; per-file problems are recorded in it, never raised.

    Raises:
        SourceError: a target does not exist.
    """
    if policy is None:
        policy = Policy()
    if isinstance(targets, (str, os.PathLike)):
        targets = [targets]
    resolved = _resolve_targets(targets)
    entries = _collect(resolved, policy)
    results = _scan_entries(entries, policy, progress)
    results = _with_folder_findings(entries, results, policy)
    results.sort(key=lambda r: r.path)
    report = ScanReport(
        files=tuple(results),
        targets=tuple(os.fspath(t) for t in targets),
        fail_on=policy.fail_on,
        version=__version__,
    )
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
    return _finish(report, policy)
