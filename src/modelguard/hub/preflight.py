"""Before downloading (online only): what a download would fetch, with the Hub's own scan.

`preflight` lists every file of a repository revision (size, LFS digest, whether a download
would fetch it) with the Hub's per-file security data (`status`, antivirus and pickle-import
scans) and the repository's security status. That data is *extra evidence* from a third
party, never a verdict: only modelguard's own scan of the downloaded bytes decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelguard.errors import SourceError

__all__ = ["PreflightFile", "PreflightReport", "preflight"]


@dataclass(frozen=True, slots=True)
class PreflightFile:
    """One file a download would consider.

    Attributes:
        path: the path inside the repository.
        size: size in bytes (of the LFS content for LFS files), when known.
        lfs_sha256: the LFS SHA-256 (the future blob name), or None for git-stored files.
        cached: already in the local cache at this commit.
        hub_status: the Hub's scan status for the file (`safe`, `unsafe`, `caution`, ...),
            or None when the Hub gave none. Evidence, not a verdict.
        hub_evidence: other security fields the Hub returned, as sorted (key, value) text pairs.
    """

    path: str
    size: int | None
    lfs_sha256: str | None
    cached: bool
    hub_status: str | None = None
    hub_evidence: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PreflightReport:
    """What downloading `repo_id` at `revision` would fetch.

    Attributes:
        repo_id: `org/name`.
        revision: as given (None: the default branch).
        commit: the commit the revision names on the Hub now.
        files: every file of the revision, sorted by path.
        hub_repo_status: the Hub's repository-level security status, as text, or None.
    """

    repo_id: str
    revision: str | None
    commit: str
    files: tuple[PreflightFile, ...]
    hub_repo_status: str | None = None

    @property
    def to_download(self) -> tuple[PreflightFile, ...]:
        """Return the files not yet in the local cache."""
        return tuple(f for f in self.files if not f.cached)


def _security(raw: object) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    if not isinstance(raw, dict):
        return None, ()
    status = raw.get("status")
    evidence = tuple(
        sorted((str(k), str(v)) for k, v in raw.items() if k not in ("status", "safe") and v)
    )
    return (None if status is None else str(status)), evidence


def preflight(
    repo_id: str,
    revision: str | None = None,
    *,
    repo_type: str = "model",
    token: str | bool | None = None,
) -> PreflightReport:
    """List what a download of `repo_id` would fetch, with the Hub's security data (online).

    Args:
        repo_id: `org/name`.
        revision: branch, tag or commit (default: the default branch).
        repo_type: `model`, `dataset` or `space`.
        token: a Hugging Face token, or None for huggingface_hub's default.

    Returns:
        The files of the revision and the Hub's own scan status as evidence.

    Raises:
        SourceError: the Hub cannot be reached, or the repository or revision does not exist.
    """
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(token=token)
    try:
        if repo_type == "model":  # only models have a repository-level security status
            info: Any = api.model_info(repo_id, revision=revision, securityStatus=True)
        else:
            info = api.repo_info(repo_id, revision=revision, repo_type=repo_type)
        commit = info.sha or ""
        tree = list(
            api.list_repo_tree(
                repo_id, recursive=True, expand=True, revision=commit, repo_type=repo_type
            )
        )
    except Exception as exc:  # httpx errors, HfHubHTTPError, offline mode: all mean "cannot check"
        raise SourceError(f"preflight of {repo_id}: {type(exc).__name__}: {exc}") from exc
    files: list[PreflightFile] = []
    for entry in tree:
        if not isinstance(entry, RepoFile):
            continue
        cached = try_to_load_from_cache(repo_id, entry.path, revision=commit, repo_type=repo_type)
        status, evidence = _security(getattr(entry, "security", None))
        lfs = entry.lfs
        files.append(
            PreflightFile(
                path=entry.path,
                size=entry.size,
                lfs_sha256=None if lfs is None else lfs.sha256,
                cached=isinstance(cached, str),
                hub_status=status,
                hub_evidence=evidence,
            )
        )
    repo_status = getattr(info, "security_repo_status", None)
    return PreflightReport(
        repo_id=repo_id,
        revision=revision,
        commit=commit,
        files=tuple(sorted(files, key=lambda f: f.path)),
        hub_repo_status=None if repo_status is None else str(repo_status),
    )
