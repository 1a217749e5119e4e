"""guarded(): pickle and torch.load entry points are enforced inside the block, restored after."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from factories.malicious import sample_by_id
from modelguard import UnsafeModelError
from modelguard.guard import SafeUnpickler, UnsafeLoadError, guarded


@pytest.fixture
def evil(tmp_path: Path) -> tuple[bytes, Path]:
    canary = tmp_path / "canary"
    data = sample_by_id("direct-os-system-p4").build(tmp_path, canary).read_bytes()
    return data, canary


def test_pickle_entry_points_are_enforced_and_restored(evil: tuple[bytes, Path]) -> None:
    data, canary = evil
    originals = (pickle.load, pickle.loads, pickle.Unpickler)
    with guarded():
        assert pickle.loads(pickle.dumps({"a": [1]})) == {"a": [1]}
        with pytest.raises(UnsafeLoadError):
            pickle.loads(data)
        with pytest.raises(UnsafeLoadError):
            pickle.load(io.BytesIO(data))
        assert issubclass(pickle.Unpickler, SafeUnpickler)
        with pytest.raises(UnsafeLoadError):
            pickle.Unpickler(io.BytesIO(data)).load()
    assert (pickle.load, pickle.loads, pickle.Unpickler) == originals
    assert not canary.exists()


def test_restored_when_the_block_raises() -> None:
    originals = (pickle.load, pickle.loads, pickle.Unpickler)
    with pytest.raises(RuntimeError), guarded():
        raise RuntimeError("boom")
    assert (pickle.load, pickle.loads, pickle.Unpickler) == originals


def test_torch_load_scans_inside_the_block(evil: tuple[bytes, Path], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    data, canary = evil
    original = torch.load
    good = tmp_path / "sd.pt"
    torch.save({"w": torch.ones(2)}, good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data)
    with guarded():
        assert torch.load(good)["w"].sum().item() == 2.0
        with pytest.raises(UnsafeModelError):
            torch.load(bad, weights_only=False)
        with pytest.raises(UnsafeLoadError):
            torch.load(io.BytesIO(data), weights_only=False)  # cannot scan a file object
    assert torch.load is original
    assert not canary.exists()
