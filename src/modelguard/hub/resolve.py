"""Resolve `hf://org/name[@revision][/path]` targets from the local Hugging Face cache.

Resolution never touches the network: `huggingface_hub.snapshot_download(...,
local_files_only=True)` reads `refs/<revision>` to find the commit and returns the cached
`snapshots/<commit>` folder. The display name of a resolved target always carries the commit
that is actually scanned (`org/name@<40-hex>`), so a branch that moves later cannot make the
report lie about what was checked.

A snapshot that the cached tree listing (`trees/<commit>.json`) shows to be missing files, or
whose repository holds interrupted downloads (`blobs/*.incomplete`), is an incomplete scan
(MG601, MG602): never reported safe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from modelguard.errors import SourceError
from modelguard.results import FileResult, Incomplete, Location, ScanReport

__all__ = [
    "HF_SCHEME",
    "HubSpec",
    "ResolvedTarget",
    "is_hf_target",
    "parse_hf_spec",
    "repo_display",
    "resolve_hf_target",
    "with_resolved",
]

HF_SCHEME = "hf://"
"""Prefix of a Hugging Face target."""

COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# `hf://datasets/org/name` as huggingface_hub's HfFileSystem spells repo types.
_TYPE_PREFIXES = {"datasets": "dataset", "spaces": "space"}
_TYPE_DISPLAY = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True, slots=True)
class HubSpec:
    """A parsed `hf://` target.

    Attributes:
        repo_id: `org/name` (or a legacy single `name`).
        repo_type: `model`, `dataset` or `space`.
        revision: branch, tag or commit as given; None means the default branch.
        filename: a file inside the repository, or None for the whole snapshot.
    """

    repo_id: str
    repo_type: str = "model"
    revision: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """An `hf://` target resolved to a local cached snapshot.

    Attributes:
        path: the local snapshot folder, or the file inside it.
        display: what the report calls it: `org/name@<commit>` (plus `/file`).
        repo_id: `org/name`.
        revision: the revision as given (None: the default branch).
        commit: the 40-hex commit the snapshot holds (what was scanned).
        repo_type: `model`, `dataset` or `space`.
        spec: the target as given.
        incomplete: results for what the snapshot lacks (MG601) or interrupted downloads of
            the repository (MG602); empty when the snapshot is known complete.
    """

    path: Path
    display: str
    repo_id: str
    revision: str | None
    commit: str
    repo_type: str = "model"
    spec: str = ""
    incomplete: tuple[FileResult, ...] = ()

    @property
    def note(self) -> str | None:
        """Return a note naming the commit a branch or tag resolved to (None for a commit)."""
        if self.revision is not None and COMMIT_RE.fullmatch(self.revision):
            return None
        given = self.revision or "main (the default branch)"
        return f"{self.spec}: {given} resolved to commit {self.commit} in the local cache"


def is_hf_target(target: object) -> bool:
    """Return True when `target` is a string that starts with `hf://`."""
    return isinstance(target, str) and target.startswith(HF_SCHEME)


def repo_display(repo_id: str, repo_type: str) -> str:
    """Return how reports name a repository: `org/name`, `datasets/org/name`, ..."""
    return _TYPE_DISPLAY.get(repo_type, f"{repo_type}s/") + repo_id


def _bad(spec: str, why: str) -> SourceError:
    return SourceError(
        f"invalid Hugging Face target {spec!r}: {why} "
        "(expected hf://org/name[@revision][/path/in/repo])"
    )


def _check_path(spec: str, value: str, what: str) -> None:
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or "\x00" in value:
        raise _bad(spec, f"the {what} {value!r} is not a relative POSIX path")
    if any(part in ("", ".", "..") for part in parts):
        raise _bad(spec, f"the {what} {value!r} has an empty, '.' or '..' component")


def parse_hf_spec(spec: str) -> HubSpec:
    """Parse `hf://[datasets/|spaces/]org/name[@revision][/path/in/repo]`.

    A revision that contains `/` (`refs/pr/1`) is written percent-encoded (`refs%2Fpr%2F1`),
    as huggingface_hub's file system does. Without `@`, the first two components are the
    repository and the rest is a file path.

    Raises:
        SourceError: the spec is malformed.
    """
    if not is_hf_target(spec):
        raise _bad(spec, "it does not start with hf://")
    body = spec[len(HF_SCHEME) :].rstrip("/")
    repo_type = "model"
    head, _, tail = body.partition("/")
    if head in _TYPE_PREFIXES and tail:
        repo_type, body = _TYPE_PREFIXES[head], tail
    revision: str | None = None
    filename: str | None
    if "@" in body:
        repo_id, _, after = body.partition("@")
        raw_revision, _, rest = after.partition("/")
        revision = unquote(raw_revision)
        filename = rest or None
        if not revision:
            raise _bad(spec, "the revision after '@' is empty")
        _check_path(spec, revision, "revision")
    else:
        parts = body.split("/")
        repo_id = "/".join(parts[:2])
        filename = "/".join(parts[2:]) or None
    names = repo_id.split("/")
    if not 1 <= len(names) <= 2 or not all(_NAME_RE.fullmatch(n) for n in names):
        raise _bad(spec, f"{repo_id!r} is not a repository id")
    if any("--" in n or ".." in n for n in names):
        raise _bad(spec, f"{repo_id!r} is not a repository id ('--' and '..' are not allowed)")
    if filename is not None:
        _check_path(spec, filename, "file path")
    return HubSpec(repo_id, repo_type, revision, filename)


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser().resolve()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser().resolve()


def missing_files(
    repo_id: str, repo_type: str, commit: str, snapshot: Path, cache_dir: Path
) -> tuple[str, ...] | None:
    """Return the files the cached tree listing of `commit` names that `snapshot` lacks.

    Returns None when no tree listing is cached (completeness cannot be told from it).
    """
    try:  # huggingface_hub >= 1.x keeps the tree listing; older versions cannot tell
        from huggingface_hub import get_cached_repo_tree
        from huggingface_hub.errors import CachedRepoTreeNotFoundError
    except ImportError:
        return None
    try:
        tree = get_cached_repo_tree(
            repo_id, repo_type=repo_type, revision=commit, cache_dir=cache_dir
        )
    except (CachedRepoTreeNotFoundError, OSError, ValueError):
        return None
    return tuple(
        sorted(f.path for f in tree if not snapshot.joinpath(*f.path.split("/")).is_file())
    )


def missing_results(base: str, missing: tuple[str, ...]) -> tuple[FileResult, ...]:
    """Return one MG601 incomplete result per file the snapshot `base` lacks."""
    reason = (
        "listed in the cached tree of this commit but missing from the snapshot "
        "(interrupted or filtered download): not scanned"
    )
    return tuple(
        FileResult(
            f"{base}/{name}", 0, (), (), (Incomplete("MG601", reason, Location(f"{base}/{name}")),)
        )
        for name in missing
    )


def partial_downloads(repo_folder: Path, shown: str) -> tuple[FileResult, ...]:
    """Return one MG602 incomplete result per `blobs/*.incomplete` file of a cached repo."""
    blobs = repo_folder / "blobs"
    try:
        names = sorted(p.name for p in blobs.iterdir() if p.name.endswith(".incomplete"))
    except OSError:
        return ()
    out: list[FileResult] = []
    for name in names:
        path = f"{shown}/blobs/{name}"
        try:
            size = (blobs / name).stat().st_size
        except OSError:
            size = 0
        reason = (
            "an interrupted download of this repository (partial blob): the cache is incomplete"
        )
        out.append(FileResult(path, size, (), (), (Incomplete("MG602", reason, Location(path)),)))
    return tuple(out)


def resolve_hf_target(
    spec: str, *, cache_dir: str | os.PathLike[str] | None = None
) -> ResolvedTarget:
    """Resolve `spec` to the cached snapshot it names, without any network access.

    Args:
        spec: `hf://org/name[@revision][/path/in/repo]`.
        cache_dir: the Hugging Face hub cache; default: huggingface_hub's own resolution
            (`HF_HUB_CACHE`, else `$HF_HOME/hub`).

    Returns:
        The resolved target; `incomplete` lists what makes its scan incomplete.

    Raises:
        SourceError: the spec is malformed, or the revision is not in the local cache.
    """
    parsed = parse_hf_spec(spec)
    root = _cache_root(cache_dir)
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import snapshot_download

    # Older huggingface_hub versions have no IncompleteSnapshotError (nor tree listings):
    # `except ()` then catches nothing.
    incomplete_error: Any = getattr(hf_errors, "IncompleteSnapshotError", ())

    shown_revision = parsed.revision or "main"
    try:
        folder = snapshot_download(
            parsed.repo_id,
            repo_type=parsed.repo_type,
            revision=parsed.revision,
            cache_dir=root,
            local_files_only=True,
        )
    except incomplete_error as exc:
        folder = str(exc.snapshot_path)
    except hf_errors.LocalEntryNotFoundError as exc:
        raise SourceError(
            f"{spec}: revision {shown_revision!r} of {parsed.repo_id} is not in the Hugging Face "
            f"cache {root} (download it first, e.g. `hf download {parsed.repo_id} --revision "
            f"{shown_revision}`, or point HF_HUB_CACHE at the right cache)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise SourceError(f"{spec}: cannot resolve it from the cache {root}: {exc}") from exc
    snapshot = Path(folder)
    commit = snapshot.name
    storage = root / f"{parsed.repo_type}s--{parsed.repo_id.replace('/', '--')}"
    # A hostile or damaged refs/ file could point anywhere: accept only a snapshot folder.
    if not COMMIT_RE.fullmatch(commit) or snapshot.parent != storage / "snapshots":
        raise SourceError(f"{spec}: the cache resolved it to {folder}, which is not a snapshot")
    if parsed.revision and COMMIT_RE.fullmatch(parsed.revision) and parsed.revision != commit:
        raise SourceError(f"{spec}: the cache returned commit {commit}")
    repo = repo_display(parsed.repo_id, parsed.repo_type)
    base = f"{repo}@{commit}"
    missing = missing_files(parsed.repo_id, parsed.repo_type, commit, snapshot, root) or ()
    path, display = snapshot, base
    if parsed.filename is not None:
        path, display = snapshot.joinpath(*parsed.filename.split("/")), f"{base}/{parsed.filename}"
        missing = tuple(m for m in missing if m == parsed.filename)
        if not missing and not path.exists():
            raise SourceError(f"{spec}: no file {parsed.filename!r} in {base} (local cache)")
    incomplete = missing_results(base, missing) + partial_downloads(storage, repo)
    return ResolvedTarget(
        path=path,
        display=display,
        repo_id=parsed.repo_id,
        revision=parsed.revision,
        commit=commit,
        repo_type=parsed.repo_type,
        spec=spec,
        incomplete=incomplete,
    )


def with_resolved(report: ScanReport, targets: Sequence[ResolvedTarget]) -> ScanReport:
    """Return `report` with what the resolved `hf://` targets add.

    Adds each target's incomplete results (once per path), a note per branch or tag naming
    the commit it resolved to, and the `sources` pairs (target as given -> `org/name@commit`).
    """
    if not targets:
        return report
    seen = {r.path for r in report.files}
    extra: list[FileResult] = []
    for target in targets:
        for result in target.incomplete:
            if result.path not in seen:
                seen.add(result.path)
                extra.append(result)
    files = tuple(sorted((*report.files, *extra), key=lambda r: r.path))
    notes = tuple(dict.fromkeys((*report.notes, *(t.note for t in targets if t.note))))
    sources = tuple(dict.fromkeys((*report.sources, *((t.spec, t.display) for t in targets))))
    return replace(report, files=files, notes=notes, sources=sources)
