"""Audit a whole Hugging Face hub cache: every repository, every cached revision.

The cache is listed with `huggingface_hub.scan_cache_dir`. Snapshot files are symlinks into
content-addressed `blobs/`, so several files (two revisions of one repository, or one file
under two names) often share one blob: each unique blob is scanned once and its result is
reported under every `org/name@<commit>/<file>` that points at it.

Blobs whose name is a SHA-256 digest (LFS files) are hashed and must match their own name
(MG604). Interrupted downloads (`*.incomplete`, MG602), snapshots missing files listed in the
cached tree (MG601) and repositories huggingface_hub reports as corrupted (MG603) make the
audit incomplete; the files of a corrupted repository are still scanned as plain folders.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from modelguard._version import __version__
from modelguard.errors import SourceError
from modelguard.hub.resolve import missing_files, missing_results, partial_downloads
from modelguard.hub.resolve import repo_display as _repo_display
from modelguard.policy import Policy
from modelguard.results import (
    FileResult,
    Finding,
    Incomplete,
    Location,
    ScanReport,
    Severity,
    sorted_findings,
)

if TYPE_CHECKING:
    from modelguard.scanner import Progress

__all__ = ["relabel", "scan_hf_cache"]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TYPE_FOLDERS = {"models": "model", "datasets": "dataset", "spaces": "space"}


def relabel(result: FileResult, path: str) -> FileResult:
    """Return `result` reported under `path` (findings' and incompletes' locations too)."""
    old = result.path
    if old == path:
        return result

    def moved(location: Location) -> Location:
        return replace(location, path=path) if location.path == old else location

    return replace(
        result,
        path=path,
        findings=tuple(replace(f, location=moved(f.location)) for f in result.findings),
        incomplete=tuple(replace(i, location=moved(i.location)) for i in result.incomplete),
    )


def _folder_repo(name: str) -> tuple[str, str] | None:
    """Return (repo_type, repo_id) for a `models--org--name` cache folder name."""
    prefix, sep, rest = name.partition("--")
    if not sep or prefix not in _TYPE_FOLDERS or not rest:
        return None
    return _TYPE_FOLDERS[prefix], rest.replace("--", "/")


def _incomplete(path: str, rule_id: str, reason: str, size: int = 0) -> FileResult:
    return FileResult(path, size, (), (), (Incomplete(rule_id, reason, Location(path)),))


class _Audit:
    """What the audit collects before scanning: labels per blob, snapshots, extra results."""

    def __init__(self) -> None:
        self.labels: dict[str, list[str]] = {}  # real blob path -> display paths
        self.links: dict[str, Path] = {}  # display path -> snapshot file (the symlink)
        self.snapshots: list[tuple[Path, str, list[str]]] = []  # folder, base, labels
        self.extra: list[FileResult] = []
        self.sources: list[tuple[str, str]] = []
        self.plain: list[list[tuple[Path, str]]] = []  # corrupted repos' snapshots, as folders

    def add_file(self, link: Path, blob: str, label: str) -> None:
        self.labels.setdefault(blob, []).append(label)
        self.links[label] = link


def _list_revisions(info: object, root: Path, audit: _Audit) -> set[str]:
    """Record every cached revision of every valid repository; return their folder names."""
    seen: set[str] = set()
    repos = sorted(info.repos, key=lambda r: (r.repo_type, r.repo_id))  # type: ignore[attr-defined]
    for repo in repos:
        seen.add(repo.repo_path.name)
        shown = _repo_display(repo.repo_id, repo.repo_type)
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            base = f"{shown}@{revision.commit_hash}"
            labels: list[str] = []
            for cached in sorted(revision.files, key=lambda f: str(f.file_path)):
                rel = cached.file_path.relative_to(revision.snapshot_path).as_posix()
                label = f"{base}/{rel}"
                audit.add_file(cached.file_path, os.path.realpath(cached.blob_path), label)
                labels.append(label)
            audit.snapshots.append((revision.snapshot_path, base, labels))
            for ref in sorted(revision.refs) or [revision.commit_hash]:
                audit.sources.append((f"hf://{shown}@{quote(ref, safe='')}", base))
            missing = missing_files(
                repo.repo_id, repo.repo_type, revision.commit_hash, revision.snapshot_path, root
            )
            audit.extra.extend(missing_results(base, missing or ()))
    return seen


def _corrupted(root: Path, valid: set[str], warnings: list[Exception], audit: _Audit) -> None:
    """Report corrupted repositories (MG603) and queue their snapshot files for a plain scan."""
    from modelguard.scanner import _iter_files

    unmatched = [str(w) for w in warnings]
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.name in valid or child.name.startswith("."):
            continue
        parsed = _folder_repo(child.name)
        if parsed is None or not child.is_dir():
            continue
        reasons = [w for w in unmatched if child.name in w]
        unmatched = [w for w in unmatched if child.name not in w]
        reason = "; ".join(reasons) or "huggingface_hub could not list this repository"
        shown = _repo_display(parsed[1], parsed[0])
        audit.extra.append(_incomplete(f"{shown}/", "MG603", f"corrupted cache entry: {reason}"))
        snapshots = child / "snapshots"
        if snapshots.is_dir():
            for folder in sorted(snapshots.iterdir(), key=lambda p: p.name):
                if folder.is_dir():
                    audit.plain.append(list(_iter_files(folder, f"{shown}@{folder.name}")))
    for number, message in enumerate(unmatched, 1):
        audit.extra.append(
            _incomplete(f"<cache warning {number}>", "MG603", f"corrupted cache entry: {message}")
        )


def _digest_checks(blobs: list[str]) -> dict[str, Finding | Incomplete]:
    """Hash every blob named by a SHA-256 digest; return what is wrong, per blob."""
    from modelguard.hashing import HashTask, hash_tasks

    named = [b for b in blobs if _SHA256_RE.fullmatch(os.path.basename(b))]
    out: dict[str, Finding | Incomplete] = {}
    for result in hash_tasks([HashTask(b, b) for b in named], "sha256"):
        expected = os.path.basename(result.name)
        where = Location(result.name)
        if result.error is not None:
            out[result.name] = Incomplete("MG001", f"cannot hash the blob: {result.error}", where)
        elif result.digest != expected:
            out[result.name] = Finding(
                "MG604",
                Severity.HIGH,
                "cache blob does not match its digest: its content was changed after download",
                where,
                (("expected_sha256", expected), ("actual_sha256", result.digest)),
            )
    return out


def _with_check(result: FileResult, problem: Finding | Incomplete | None) -> FileResult:
    if problem is None:
        return result
    problem = replace(problem, location=Location(result.path))
    if isinstance(problem, Finding):
        return replace(result, findings=sorted_findings((*result.findings, problem)))
    return replace(result, incomplete=(*result.incomplete, problem))


def _cache_info(root: Path) -> object:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir(root)
    except CacheNotFound as exc:
        raise SourceError(f"no Hugging Face cache at {root}") from exc
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read the Hugging Face cache {root}: {exc}") from exc


def scan_hf_cache(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    policy: Policy | None = None,
    progress: Progress | None = None,
) -> ScanReport:
    """Scan every cached revision of every repository of a Hugging Face hub cache.

    Args:
        cache_dir: the hub cache folder; default: huggingface_hub's resolution
            (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
        policy: as for `modelguard.scan`.
        progress: called before each unique blob with (done, total, display path).

    Returns:
        One report with a result per `org/name@<commit>/<file>`; `sources` maps each ref
        (`hf://org/name@main`) to the commit it names.

    Raises:
        SourceError: the cache folder does not exist or cannot be listed.
    """
    from modelguard import scanner

    if policy is None:
        policy = Policy()
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = constants.HF_HUB_CACHE
    root = Path(cache_dir).expanduser().resolve()
    info = _cache_info(root)
    audit = _Audit()
    valid = _list_revisions(info, root, audit)
    _corrupted(root, valid, list(info.warnings), audit)  # type: ignore[attr-defined]
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        parsed = _folder_repo(child.name)
        if parsed is not None and child.is_dir():
            audit.extra.extend(partial_downloads(child, _repo_display(parsed[1], parsed[0])))

    blobs = sorted(audit.labels, key=lambda b: audit.labels[b][0])
    plain = [entry for folder in audit.plain for entry in folder]
    entries = [(Path(b), audit.labels[b][0]) for b in blobs] + plain
    scanned = scanner._scan_entries(entries, policy, progress)
    checks = _digest_checks(blobs)
    by_label: dict[str, FileResult] = {}
    for blob, result in zip(blobs, scanned, strict=False):
        checked = _with_check(result, checks.get(blob))
        for label in audit.labels[blob]:
            by_label[label] = relabel(checked, label)
    results: list[FileResult] = []
    for _folder, _base, labels in audit.snapshots:
        pairs = [(audit.links[label], label) for label in labels]
        results.extend(scanner._with_folder_findings(pairs, [by_label[x] for x in labels], policy))
    start = len(blobs)
    for folder_entries in audit.plain:
        done = scanned[start : start + len(folder_entries)]
        start += len(folder_entries)
        results.extend(scanner._with_folder_findings(folder_entries, list(done), policy))
    seen = {r.path for r in results}
    results.extend(r for r in audit.extra if r.path not in seen)
    results.sort(key=lambda r: r.path)
    count = len(audit.snapshots)
    report = ScanReport(
        files=tuple(results),
        targets=(root.as_posix(),),
        fail_on=policy.fail_on,
        version=__version__,
        notes=(
            f"Hugging Face cache {root.as_posix()}: {count} cached revision(s), "
            f"{len(blobs)} unique blob(s) scanned once for {len(by_label)} file(s)",
        ),
        sources=tuple(audit.sources),
    )
    snapshot_pairs = [(folder, base) for folder, base, _labels in audit.snapshots]
    if snapshot_pairs:
        from modelguard.indicators import add_indicators

        report = add_indicators(report, snapshot_pairs, policy, tensors=False)
    return scanner._finish(report, policy)
