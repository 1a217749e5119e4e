"""Fixtures: a hand-built Hugging Face cache with clean, malicious and broken repositories."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from factories.malicious import sample_by_id

from .cachebuild import add_snapshot, commit_id, repo_folder

CLEAN = pickle.dumps({"weight": [1.0, 2.0, 3.0], "bias": [0.5]}, protocol=4)
CONFIG = b'{"model_type": "bert", "hidden_size": 4}'


@dataclass(frozen=True)
class HubCache:
    """The cache and what is in it."""

    root: Path
    canary: Path
    clean_old: str  # commit of org/clean not reached by any ref
    clean: str  # commit of org/clean that refs/main names
    evil: str
    partial: str
    tampered: str
    tampered_blob: Path


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubCache]:
    """Build the cache and point huggingface_hub at it, offline."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    canary = tmp_path / "canary"
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    evil_bytes = sample_by_id("direct-os-system-p4").build(evil_dir, canary).read_bytes()

    c_old, c_new = commit_id("clean-1"), commit_id("clean-2")
    add_snapshot(root, "org/clean", c_old, {"config.json": CONFIG, "model.pkl": CLEAN}, refs=())
    add_snapshot(
        root,
        "org/clean",
        c_new,
        {"config.json": CONFIG, "model.pkl": CLEAN, "sub/extra.pkl": CLEAN},
    )
    c_evil = commit_id("evil")
    add_snapshot(root, "org/evil", c_evil, {"config.json": CONFIG, "pytorch_model.bin": evil_bytes})
    c_part = commit_id("partial")
    add_snapshot(
        root, "org/partial", c_part, {"config.json": CONFIG}, listed_only=("model.safetensors",)
    )
    (repo_folder(root, "org/partial") / "blobs" / "0123abcd.incomplete").write_bytes(b"half")
    c_tamp = commit_id("tampered")
    add_snapshot(root, "org/tampered", c_tamp, {"weights.pkl": CLEAN})
    blob = next(
        p for p in (repo_folder(root, "org/tampered") / "blobs").iterdir() if len(p.name) == 64
    )
    blob.write_bytes(pickle.dumps({"weight": [9.0]}, protocol=4))  # still benign, wrong digest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    yield HubCache(root, canary, c_old, c_new, c_evil, c_part, c_tamp, blob)
    assert not canary.exists(), "a payload ran: something loaded what it scanned"
