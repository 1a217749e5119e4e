"""Audit a whole Hugging Face hub cache: every repository, every cached revision.

The cache is listed with `huggingface_hub.scan_cache_dir`. Snapshot files are symlinks into
content-addressed `blobs/`, so several revisions of one repository often share one blob: each
unique (blob, file name) is scanned once and its result is reported under every
`org/name@<commit>/<path>` that points at it. One blob under two different file names is scanned
once per name, since some findings depend on the name (MG201: named .safetensors, holds pickle;
which JSON config or template a file is).
Each snapshot folder is also walked the way a loader sees it (links to folders followed), so a
file huggingface_hub does not list is scanned too.

Blobs whose name is a SHA-256 digest (LFS files) are hashed and must match their own name
(MG604), in corrupted repositories as well. Interrupted downloads (`*.incomplete`, MG602),
snapshots missing files listed in the cached tree (MG601) and repositories that huggingface_hub
reports as corrupted, whose `refs/` or `trees/` metadata is not made of regular files, or whose
listing fails (MG603) make the audit incomplete; the files of such a repository are still
scanned as plain folders. A revision with no cached tree listing (caches written by older
huggingface_hub versions) cannot be checked for missing files: a report note names it, and the
audit stays complete. A folder with no repository folder at its top is refused (`SourceError`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelguard._version import __version__
from modelguard.errors import SourceError
from modelguard.hub.resolve import (
    metadata_problem,
    missing_files,
    missing_results,
    partial_downloads,
)
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

__all__ = ["relabel", "scan_hf_cache", "with_digest_checks"]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TYPE_FOLDERS = {"models": "model", "datasets": "dataset", "spaces": "space"}
# What a hub cache holds besides repositories (hidden names such as `.locks/` count too).
_BOOKKEEPING = {"CACHEDIR.TAG", "version.txt", "Thumbs.db", "desktop.ini"}


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
        # (real blob path, file name) -> display paths: one scan per key. What the analysers
        # read from a path is its last component (extension, config or template name).
        self.labels: dict[tuple[str, str], list[str]] = {}
        self.links: dict[str, Path] = {}  # display path -> snapshot file (the symlink)
        self.snapshots: list[tuple[Path, str, list[str]]] = []  # folder, base, labels
        self.extra: list[FileResult] = []
        self.sources: list[tuple[str, str]] = []
        self.plain: list[list[tuple[Path, str]]] = []  # corrupted repos' snapshots, as folders
        self.unchecked: list[str] = []  # revisions without a cached tree listing (no MG601 check)

    def add_file(self, link: Path, blob: str, base: str, rel: str) -> str:
        label = f"{base}/{rel}"
        if label not in self.links:
            self.labels.setdefault((blob, rel.rsplit("/", 1)[-1]), []).append(label)
            self.links[label] = link
        return label


def _snapshot_files(
    audit: _Audit, snapshot: Path, base: str, listed: list[tuple[Path, str]]
) -> list[str]:
    """Record the files of one snapshot: those huggingface_hub listed, then every other file a
    loader reaches (links to folders followed, as `scanner._iter_files` does); return labels."""
    from modelguard.scanner import _iter_files

    labels = [
        audit.add_file(link, blob, base, link.relative_to(snapshot).as_posix())
        for link, blob in listed
    ]
    for path, shown in _iter_files(snapshot, base):
        if shown not in audit.links:
            rel = shown[len(base) + 1 :]
            labels.append(audit.add_file(path, os.path.realpath(path), base, rel))
    return sorted(dict.fromkeys(labels))


def _list_revisions(repos: list[Any], root: Path, audit: _Audit) -> set[str]:
    """Record every cached revision of every valid repository; return their folder names."""
    seen: set[str] = set()
    for repo in sorted(repos, key=lambda r: (r.repo_type, r.repo_id)):
        seen.add(repo.repo_path.name)
        shown = _repo_display(repo.repo_id, repo.repo_type)
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            base = f"{shown}@{revision.commit_hash}"
            snapshot = Path(revision.snapshot_path)
            listed = [
                (Path(f.file_path), os.path.realpath(f.blob_path))
                for f in sorted(revision.files, key=lambda f: str(f.file_path))
            ]
            audit.snapshots.append((snapshot, base, _snapshot_files(audit, snapshot, base, listed)))
            for ref in sorted(revision.refs) or [revision.commit_hash]:
                audit.sources.append((f"hf://{shown}@{quote(ref, safe='')}", base))
            try:
                missing = missing_files(
                    repo.repo_id, repo.repo_type, revision.commit_hash, snapshot, root
                )
            except SourceError as exc:
                audit.extra.append(
                    _incomplete(f"{base}/", "MG603", f"corrupted cache entry: {exc}")
                )
                continue
            if missing is None:
                audit.unchecked.append(base)
            audit.extra.extend(missing_results(base, missing or ()))
    return seen


def _corrupted(root: Path, valid: set[str], warnings: list[str], audit: _Audit) -> None:
    """Report corrupted repositories (MG603) and queue their snapshot files for a plain scan."""
    from modelguard.scanner import _iter_files

    unmatched = list(warnings)
    for child in _children(root):
        if child.name in valid or child.name.startswith("."):
            continue
        parsed = _folder_repo(child.name)
        if parsed is None or not child.is_dir():
            continue
        # the whole folder name: models--org--name must not claim models--org--name2's warnings
        named = re.compile(re.escape(child.name) + r"(?![\w.-])")
        reasons = [w for w in unmatched if named.search(w)]
        unmatched = [w for w in unmatched if not named.search(w)]
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


def _digest_checks(blobs: Iterable[str]) -> dict[str, Finding | Incomplete]:
    """Hash every blob named by a SHA-256 digest; return what is wrong, per blob."""
    from modelguard.hashing import HashTask, hash_tasks

    named = sorted({b for b in blobs if _SHA256_RE.fullmatch(os.path.basename(b))})
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


def with_digest_checks(
    entries: Sequence[tuple[Path, str]],
    results: Sequence[FileResult],
    *,
    under: Sequence[str] | None = None,
) -> list[FileResult]:
    """Return `results` with each SHA-256-named blob checked against its name (MG604).

    `entries` are the (path, display) pairs `results` come from, in the same order; a path
    whose real file (links followed) is named by a 64-hex digest, as Hugging Face LFS blobs
    are, is hashed. Other files are returned unchanged.

    Args:
        entries: (path, display path) per result.
        results: the scan results, in the order of `entries`.
        under: check only entries whose display path is, or lies under, one of these
            (the `org/name@<commit>` of resolved `hf://` targets); None: every entry.
    """
    prefixes = None if under is None else tuple(f"{u}/" for u in under)

    def wanted(shown: str) -> bool:
        return prefixes is None or shown.startswith(prefixes) or f"{shown}/" in prefixes

    real = [os.path.realpath(path) if wanted(shown) else "" for path, shown in entries]
    checks = _digest_checks(r for r in real if r)
    if not checks:
        return list(results)
    return [_with_check(res, checks.get(blob)) for blob, res in zip(real, results, strict=True)]


def _children(root: Path) -> list[Path]:
    return sorted(root.iterdir(), key=lambda p: p.name)


def _unchecked_note(bases: Sequence[str]) -> tuple[str, ...]:
    """Return the note naming the revisions that could not be checked for missing files."""
    if not bases:
        return ()
    return (
        f"could not check {len(bases)} cached revision(s) for missing files: no cached tree "
        f"listing (caches written by older huggingface_hub versions have none): "
        + ", ".join(bases),
    )


def _cache_info(root: Path) -> tuple[list[Any], list[str]]:
    """Return (the repositories huggingface_hub lists, its warnings) for the cache `root`.

    A repository whose `refs/` or `trees/` is not made of regular files is never handed to
    huggingface_hub (it would open a FIFO there and block): it is reported corrupted (MG603)
    and scanned as plain folders, and the other repositories are listed one by one.
    """
    try:
        children = _children(root)
    except FileNotFoundError as exc:
        raise SourceError(f"no Hugging Face cache at {root}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read the Hugging Face cache {root}: {exc}") from exc
    _require_repos(root, children)
    bad: dict[str, str] = {}
    for child in children:
        if _folder_repo(child.name) is not None and child.is_dir():
            problem = metadata_problem(child)
            if problem is not None:
                bad[child.name] = f"{child.name}: {problem}"
    if bad:
        return _cache_info_by_repo(children, bad)
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(root)
    except CacheNotFound as exc:
        raise SourceError(f"no Hugging Face cache at {root}") from exc
    except Exception as exc:  # anything the library raises: every repository is then plain
        return [], [f"huggingface_hub cannot list the cache: {type(exc).__name__}: {exc}"]
    # `version.txt` (written by transformers) and the like are not repositories, not damage.
    ignored = tuple(str(c) for c in children if c.name in _BOOKKEEPING)
    warnings = [str(w) for w in info.warnings]
    return list(info.repos), [w for w in warnings if not w.endswith(ignored)]


def _require_repos(root: Path, children: list[Path]) -> None:
    """Refuse a folder with no repository folder at its top: there is nothing to audit.

    Raises:
        SourceError: `root` holds no `models--*`, `datasets--*` or `spaces--*` folder.
    """
    if any(_folder_repo(child.name) is not None and child.is_dir() for child in children):
        return
    if all(c.name.startswith(".") or c.name in _BOOKKEEPING for c in children):
        raise SourceError(
            f"{root} holds no cached repository (no models--org--name folders): nothing to scan"
        )
    raise SourceError(
        f"{root} is not a Hugging Face hub cache: no models--org--name folders (nor "
        "datasets--org--name, spaces--org--name) at its top"
    )


def _cache_info_by_repo(children: list[Path], bad: dict[str, str]) -> tuple[list[Any], list[str]]:
    """List the repositories not in `bad` one at a time (as `scan_cache_dir` does inside)."""
    warnings = list(bad.values())
    try:
        from huggingface_hub.utils._cache_manager import _scan_cached_repo
    except ImportError:  # no per-repository listing: every repository is scanned as plain
        return [], warnings
    repos: list[Any] = []
    for child in children:
        if child.name in bad or _folder_repo(child.name) is None or not child.is_dir():
            continue
        try:
            repos.append(_scan_cached_repo(child))
        except Exception as exc:  # CorruptedCacheException, or anything a damaged entry raises
            warnings.append(f"{child}: {type(exc).__name__}: {exc}")
    return repos, warnings


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
        SourceError: the cache folder does not exist, cannot be listed or holds no
            repository folder (`models--org--name`, `datasets--...`, `spaces--...`).
    """
    from modelguard import scanner

    if policy is None:
        policy = Policy()
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = constants.HF_HUB_CACHE
    root = Path(cache_dir).expanduser().resolve()
    audit = _Audit()
    repos, warnings = _cache_info(root)
    valid = _list_revisions(repos, root, audit)
    _corrupted(root, valid, warnings, audit)
    for child in _children(root):
        parsed = _folder_repo(child.name)
        if parsed is not None and child.is_dir():
            audit.extra.extend(partial_downloads(child, _repo_display(parsed[1], parsed[0])))

    keys = sorted(audit.labels, key=lambda k: audit.labels[k][0])
    plain = [entry for folder in audit.plain for entry in folder]
    entries = [(Path(blob), audit.labels[(blob, rel)][0]) for blob, rel in keys] + plain
    scanned = scanner._scan_entries(entries, policy, progress)
    plain_real = [os.path.realpath(path) for path, _ in plain]
    checks = _digest_checks([blob for blob, _ in keys] + plain_real)
    by_label: dict[str, FileResult] = {}
    for key, result in zip(keys, scanned, strict=False):
        checked = _with_check(result, checks.get(key[0]))
        for label in audit.labels[key]:
            by_label[label] = relabel(checked, label)
    results: list[FileResult] = []
    for _folder, _base, labels in audit.snapshots:
        pairs = [(audit.links[label], label) for label in labels]
        results.extend(scanner._with_folder_findings(pairs, [by_label[x] for x in labels], policy))
    plain_scanned = scanned[len(keys) :]
    start = 0
    for folder_entries in audit.plain:
        end = start + len(folder_entries)
        done = [
            _with_check(res, checks.get(real))
            for res, real in zip(plain_scanned[start:end], plain_real[start:end], strict=True)
        ]
        start = end
        results.extend(scanner._with_folder_findings(folder_entries, done, policy))
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
            f"{len({blob for blob, _ in keys})} unique blob(s) scanned for {len(by_label)} "
            "file(s)",
            *_unchecked_note(audit.unchecked),
        ),
        sources=tuple(audit.sources),
    )
    snapshot_pairs = [(folder, base) for folder, base, _labels in audit.snapshots]
    if snapshot_pairs:
        from modelguard.indicators import add_indicators

        report = add_indicators(report, snapshot_pairs, policy, tensors=False)
    return scanner._finish(report, policy)
