"""Build a Hugging Face hub cache by hand, offline: blobs/, refs/, snapshots/ with symlinks.

The layout is the one huggingface_hub writes (`models--org--name/{blobs,refs,snapshots}`,
snapshot files are relative symlinks into `blobs/`, LFS blobs are named by their SHA-256,
`trees/<commit>.json` is the cached tree listing huggingface_hub 2.x reads offline).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def commit_id(label: str) -> str:
    """Return a deterministic 40-hex commit id for `label`."""
    return hashlib.sha1(label.encode()).hexdigest()


def repo_folder(cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    """Return the cache folder of a repository."""
    return cache / f"{repo_type}s--{repo_id.replace('/', '--')}"


def add_snapshot(
    cache: Path,
    repo_id: str,
    commit: str,
    files: dict[str, bytes],
    *,
    refs: tuple[str, ...] = ("main",),
    listed_only: tuple[str, ...] = (),
    tree: bool = True,
    repo_type: str = "model",
) -> Path:
    """Add one snapshot to the cache and return its folder.

    Binary files get an LFS-style blob named by their SHA-256; `.json`/`.txt` files a
    git-style 40-hex blob name. `listed_only` names files the cached tree lists but the
    snapshot lacks (an interrupted download).
    """
    storage = repo_folder(cache, repo_id, repo_type)
    blobs = storage / "blobs"
    snapshot = storage / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, object]] = {}
    for name, data in files.items():
        lfs = not name.endswith((".json", ".txt"))
        digest = hashlib.sha256(data).hexdigest()
        blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = blobs / (digest if lfs else blob_id)
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot.joinpath(*name.split("/"))
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
        entry: dict[str, object] = {"size": len(data), "blob_id": blob_id}
        if lfs:
            entry.update(lfs_sha256=digest, lfs_size=len(data))
        entries[name] = entry
    for name in listed_only:
        entries[name] = {"size": 10, "blob_id": commit_id(name)}
    for ref in refs:
        ref_path = storage / "refs" / ref
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        ref_path.write_text(commit)  # huggingface_hub writes no newline
    if tree:
        trees = storage / "trees"
        trees.mkdir(exist_ok=True)
        document = {"format_version": 1, "files": dict(sorted(entries.items()))}
        (trees / f"{commit}.json").write_text(json.dumps(document))
    return snapshot
