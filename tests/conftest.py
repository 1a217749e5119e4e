"""Shared fixtures: benign artifacts built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keras fixtures are built with the torch backend (TensorFlow is not a test dependency); the
# variable must be set before keras is first imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

from factories.benign import SAMPLES


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build each benign sample at most once per session, on first use."""
    root = tmp_path_factory.mktemp("benign")
    samples = {s.id: s for s in SAMPLES}

    class _Lazy(dict[str, Path]):
        def __missing__(self, sample_id: str) -> Path:
            directory = root / sample_id
            directory.mkdir()
            self[sample_id] = path = samples[sample_id].build(directory)
            return path

    return _Lazy()


@pytest.fixture(autouse=True)
def _private_result_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point the result cache at a fresh folder per test, outside every scanned folder.

    The CLI caches results by default: without this, tests would share (and could be
    answered from) the user's cache.
    """
    folder = tmp_path_factory.mktemp("mgcache")
    monkeypatch.setenv("MODELGUARD_CACHE_DIR", str(folder))
    return folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `online` unless MODELGUARD_ONLINE=1 (the test machines are offline)."""
    if os.environ.get("MODELGUARD_ONLINE") == "1":
        return
    skip = pytest.mark.skip(reason="needs the network: set MODELGUARD_ONLINE=1 to run")
    for item in items:
        if "online" in item.keywords:
            item.add_marker(skip)
