"""Resolve `hf://org/name[@revision][/path]` targets from the local Hugging Face cache.

Resolution never touches the network: `huggingface_hub.snapshot_download(...,
local_files_only=True)` reads `refs/<revision>` to find the commit and returns the cached
`snapshots/<commit>` folder. The display name of a resolved target always carries the commit
that is actually scanned (`org/name@<40-hex>`), so a branch that moves later cannot make the
report lie about what was checked.

A snapshot that the cached tree listing (`trees/<commit>.json`) shows to be missing files, or
whose repository holds interrupted downloads (`blobs/*.incomplete`), is an incomplete scan
(MG601, MG602): never reported safe. A snapshot with no cached tree listing (caches written by
older huggingface_hub versions) cannot be checked for missing files: a report note says so.
The metadata huggingface_hub opens (`refs/`, `trees/`) is checked with lstat first (a FIFO there
would block it forever), and anything the library raises becomes a clean `SourceError`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from modelguard.errors import SourceError
from modelguard.results import FileResult, Finding, Incomplete, Location, ScanReport

__all__ = [
    "HF_SCHEME",
    "HubSpec",
    "ResolvedTarget",
    "is_hf_target",
    "metadata_problem",
    "parse_hf_spec",
    "policy_scope",
    "repo_display",
    "resolve_hf_target",
    "with_pinned",
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
        snapshot: the snapshot folder (`path` is a file or folder inside it for a `/path`
            target); None when not known.
        unchecked: True when no cached tree listing of the commit exists (caches written by
            older huggingface_hub versions), so missing files could not be looked for.
    """

    path: Path
    display: str
    repo_id: str
    revision: str | None
    commit: str
    repo_type: str = "model"
    spec: str = ""
    incomplete: tuple[FileResult, ...] = ()
    snapshot: Path | None = None
    unchecked: bool = False

    @property
    def note(self) -> str | None:
        """Return a note naming the commit a branch or tag resolved to (None for a commit)."""
        if self.revision is not None and COMMIT_RE.fullmatch(self.revision):
            return None
        given = self.revision or "main (the default branch)"
        return f"{self.spec}: {given} resolved to commit {self.commit} in the local cache"

    @property
    def unchecked_note(self) -> str | None:
        """Return a note saying the snapshot could not be checked for missing files, if so."""
        if not self.unchecked:
            return None
        return (
            f"{repo_display(self.repo_id, self.repo_type)}@{self.commit}: could not check the "
            "snapshot for missing files: no cached tree listing (caches written by older "
            "huggingface_hub versions have none)"
        )

    @property
    def pinned(self) -> bool:
        """True when the target names the commit itself (`@<40-hex>`), not a branch or tag."""
        return self.revision is not None and COMMIT_RE.fullmatch(self.revision) is not None


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


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def metadata_problem(storage: Path) -> str | None:
    """Return why the `refs/` or `trees/` metadata of a cached repository is unsafe to read.

    huggingface_hub opens these files itself: a FIFO there blocks it forever, a link may lead
    anywhere. Every entry (lstat, links not followed) must be a folder or a regular file; this
    is checked before any huggingface_hub call touches the repository.

    Returns:
        None when the metadata is safe to hand to huggingface_hub, else the reason.
    """
    for top in (storage / "refs", storage / "trees"):
        pending = [top]
        while pending:
            path = pending.pop()
            shown = path.relative_to(storage).as_posix()
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                if path == top:
                    continue
                return f"{shown} vanished while it was checked"
            except OSError as exc:
                return f"{shown} cannot be checked: {exc.strerror or exc}"
            if stat.S_ISDIR(mode):
                try:
                    pending.extend(path / name for name in sorted(os.listdir(path)))
                except OSError as exc:
                    return f"{shown} cannot be listed: {exc.strerror or exc}"
            elif not stat.S_ISREG(mode):
                return f"{shown} is {_kind(mode)}, not a regular file: not read"
    return None


def missing_files(
    repo_id: str, repo_type: str, commit: str, snapshot: Path, cache_dir: Path
) -> tuple[str, ...] | None:
    """Return the files the cached tree listing of `commit` names that `snapshot` lacks.

    Returns None when no tree listing is cached (completeness cannot be told from it).

    Raises:
        SourceError: a tree listing is cached but cannot be read (malformed, unreadable).
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
        listed = [str(f.path) for f in tree]
    except CachedRepoTreeNotFoundError:
        return None
    except Exception as exc:  # a malformed listing makes the library raise anything
        raise SourceError(
            f"the cached tree listing of {repo_id}@{commit} cannot be read "
            f"({type(exc).__name__}: {exc}): completeness unknown"
        ) from exc
    return tuple(sorted(m for m in listed if not snapshot.joinpath(*m.split("/")).is_file()))


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
        SourceError: the spec is malformed, or the repository or revision is not in the local
            cache.
    """
    parsed = parse_hf_spec(spec)
    root = _cache_root(cache_dir)
    storage = root / f"{parsed.repo_type}s--{parsed.repo_id.replace('/', '--')}"
    repo = repo_display(parsed.repo_id, parsed.repo_type)
    download = f"hf download {parsed.repo_id}" + (
        "" if parsed.repo_type == "model" else f" --repo-type {parsed.repo_type}"
    )
    if not storage.is_dir():
        raise SourceError(
            f"{spec}: repository {repo} is not in the Hugging Face cache {root} (download it "
            f"first, e.g. `{download}`, or point HF_HUB_CACHE at the right cache)"
        )
    problem = metadata_problem(storage)
    if problem is not None:
        raise SourceError(f"{spec}: the cached repository {storage} is damaged: {problem}")
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
            f"{spec}: revision {shown_revision!r} of {repo} is not in the Hugging Face cache "
            f"{root} (download it first, e.g. `{download} --revision {shown_revision}`, or "
            "point HF_HUB_CACHE at the right cache)"
        ) from exc
    except Exception as exc:  # whatever the library raises on a damaged cache: refuse cleanly
        raise SourceError(
            f"{spec}: cannot resolve it from the cache {root}: {type(exc).__name__}: {exc}"
        ) from exc
    snapshot = Path(folder)
    commit = snapshot.name
    # A hostile or damaged refs/ file could point anywhere: accept only a snapshot folder.
    if not COMMIT_RE.fullmatch(commit) or snapshot.parent != storage / "snapshots":
        raise SourceError(f"{spec}: the cache resolved it to {folder}, which is not a snapshot")
    if parsed.revision and COMMIT_RE.fullmatch(parsed.revision) and parsed.revision != commit:
        raise SourceError(f"{spec}: the cache returned commit {commit}")
    base = f"{repo}@{commit}"
    try:
        listed = missing_files(parsed.repo_id, parsed.repo_type, commit, snapshot, root)
    except SourceError as exc:
        raise SourceError(f"{spec}: {exc}") from exc
    missing = listed or ()
    path, display = snapshot, base
    if parsed.filename is not None:
        name = parsed.filename
        path, display = snapshot.joinpath(*name.split("/")), f"{base}/{name}"
        # The file itself, or everything under it when it names a folder of the repository.
        missing = tuple(m for m in missing if m == name or m.startswith(name + "/"))
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
        snapshot=snapshot,
        unchecked=listed is None,
    )


def policy_scope(
    targets: Sequence[str | os.PathLike[str]], hf_cache: str | None = None
) -> list[str | os.PathLike[str]]:
    """Return the local paths a scan of `targets` (or of the hub cache `hf_cache`) reads.

    A policy discovered in the working directory must not come from inside them: each
    `hf://` target counts as its whole cached snapshot folder, `hf_cache` ("" for the
    default cache) as the cache folder; other targets as given.

    Raises:
        SourceError: an `hf://` target cannot be resolved from the local cache.
    """
    scope: list[str | os.PathLike[str]] = []
    for target in targets:
        if is_hf_target(target):
            hit = resolve_hf_target(os.fspath(target))
            scope.append(hit.snapshot if hit.snapshot is not None else hit.path)
        else:
            scope.append(target)
    if hf_cache is not None:
        scope.append(_cache_root(hf_cache or None))
    return scope


def with_resolved(report: ScanReport, targets: Sequence[ResolvedTarget]) -> ScanReport:
    """Return `report` with what the resolved `hf://` targets add.

    Adds each target's incomplete results (once per path), a note per branch or tag naming
    the commit it resolved to, a note per snapshot that could not be checked for missing files
    (no cached tree listing), and the `sources` pairs (target as given -> `org/name@commit`).
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
    added = (note for t in targets for note in (t.note, t.unchecked_note) if note)
    notes = tuple(dict.fromkeys((*report.notes, *added)))
    sources = tuple(dict.fromkeys((*report.sources, *((t.spec, t.display) for t in targets))))
    return replace(report, files=files, notes=notes, sources=sources)


def with_pinned(report: ScanReport, targets: Sequence[ResolvedTarget]) -> ScanReport:
    """Return `report` without the "resolved from a branch" MG532 of commit-pinned targets.

    A target given as `hf://org/name@<commit>` is pinned whatever branches also point at that
    commit. The pull-request-only MG532 (unreviewed content) is kept, and so is every MG532
    of a snapshot that some other target reached through a branch or tag.
    """

    def base(t: ResolvedTarget) -> str:
        return f"{repo_display(t.repo_id, t.repo_type)}@{t.commit}/"

    pinned = {base(t) for t in targets if t.pinned} - {base(t) for t in targets if not t.pinned}
    if not pinned:
        return report

    def unpinned_note(finding: Finding) -> bool:
        if finding.rule_id != "MG532":
            return False
        refs = [r.strip() for r in finding.evidence_map.get("refs", "").split(",")]
        return not all(ref.startswith("pr/") for ref in refs if ref)

    files = tuple(
        replace(r, findings=tuple(f for f in r.findings if not unpinned_note(f)))
        if r.path.startswith(tuple(pinned))
        else r
        for r in report.files
    )
    return replace(report, files=files)
