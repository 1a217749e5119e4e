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


def test_library_loaders_are_routed_and_restored(evil: tuple[bytes, Path], tmp_path: Path) -> None:
    # joblib.load and pandas.read_pickle use unpicklers captured at import: guarded() replaces
    # the loaders themselves; benign files still load, and everything is restored on exit.
    joblib = pytest.importorskip("joblib")
    pd = pytest.importorskip("pandas")
    import joblib.numpy_pickle as numpy_pickle
    import numpy as np
    import pandas.io.pickle as pandas_pickle

    data, canary = evil
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    frame_path = tmp_path / "frame.pkl"
    frame.to_pickle(frame_path)
    model_path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(3.0)}, model_path)
    evil_path = tmp_path / "evil.pkl"
    evil_path.write_bytes(data)
    owners = ((pickle, "_Unpickler"), (joblib, "load"), (numpy_pickle, "load"),
              (pd, "read_pickle"), (pandas_pickle, "read_pickle"))  # fmt: skip
    originals = [getattr(owner, name) for owner, name in owners]
    with guarded():
        assert all(getattr(o, n) is not v for (o, n), v in zip(owners, originals, strict=True))
        pd.testing.assert_frame_equal(pd.read_pickle(frame_path), frame)
        assert np.array_equal(joblib.load(model_path)["w"], np.arange(3.0))
        with open(model_path, "rb") as handle:
            assert np.array_equal(joblib.load(handle)["w"], np.arange(3.0))
        for loader in (pd.read_pickle, joblib.load):
            with pytest.raises(UnsafeLoadError):
                loader(evil_path)
        with pytest.raises(UnsafeLoadError):
            pickle._Unpickler(io.BytesIO(data)).load()  # type: ignore[attr-defined]
    assert [getattr(owner, name) for owner, name in owners] == originals
    assert not canary.exists()
