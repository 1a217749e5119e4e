"""The guards against both corpora: every benign artifact the scanner calls safe loads, every
malicious one is refused without its payload running (the payload only touches a canary)."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import lzma
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from factories import benign, malicious
from modelguard import UnsafeModelError, Verdict, scan
from modelguard.guard import (
    SafeUnpickler,
    UnsafeLoadError,
    WeightsOnlyRefusal,
    safe_joblib_load,
    safe_load,
    safe_loads,
    safe_numpy_load,
    torch_load,
)

# The pure-Python unframer rejects a FRAME that overreaches its pickle before any opcode runs
# (a malformed stream, not a policy refusal); everything else must be a policy refusal.
_MALFORMED_OK = ("frame-overreach", "storages-frame")


def _available(requires: tuple[str, ...]) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in requires)


def _benign_load(sample: benign.BenignSample, path: Path) -> Any:
    if path.suffix in (".npy", ".npz"):
        return safe_numpy_load(path)
    if "joblib" in sample.id:
        return safe_joblib_load(path)
    if sample.library in ("torch", "transformers") and path.suffix != ".pkl":
        try:
            return torch_load(path)
        except WeightsOnlyRefusal:
            # Whole objects: torch's weights-only unpickler refuses them; the opt-out loads
            # them with modelguard's allowlist enforced instead.
            return torch_load(path, weights_only=False)
    return safe_load(path)


@pytest.mark.parametrize("sample", benign.SAMPLES, ids=lambda s: s.id)
def test_benign_artifact_the_scanner_calls_safe_loads(
    sample: benign.BenignSample, built: dict[str, Path]
) -> None:
    if not _available(sample.requires):
        pytest.skip(f"needs {', '.join(sample.requires)}")
    path = built[sample.id]
    if scan(path).verdict is not Verdict.SAFE:
        pytest.skip("not called safe by the scanner (the scanner's corpus tests cover it)")
    loaded = _benign_load(sample, path)
    if path.suffix in (".pkl", ".pickle") and "joblib" not in sample.id:
        with open(path, "rb") as handle:  # benign by construction: the reference load
            reference = pickle.load(handle)
        assert type(loaded) is type(reference)


def _member(path: Path, chain: str) -> bytes:
    data = path.read_bytes()
    for name in chain.split("!"):
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(name)
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                member = archive.extractfile(name)
                assert member is not None
                data = member.read()
    return data


def _open_pandas(path: Path) -> Any:
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix)
    return opener(path, "rb") if opener else open(path, "rb")


def _malicious_load(sample: malicious.MaliciousSample, path: Path) -> None:
    kind, _, member = sample.loader.partition(":")
    if kind in ("pickle", "pickle-bytesio", "dill"):
        safe_load(path)
    elif kind == "pickle-multi":
        with open(path, "rb") as handle:
            unpickler = SafeUnpickler(handle)
            while True:
                try:
                    unpickler.load()
                except EOFError:
                    break
    elif kind == "pickle-member":
        safe_loads(_member(path, member))
    elif kind == "pandas":
        with _open_pandas(path) as handle:
            safe_load(handle)
    elif kind == "joblib":
        safe_joblib_load(path)
    elif kind in ("numpy", "numpy-npz"):
        safe_numpy_load(path)
    elif kind == "torch":
        torch_load(path, weights_only=False)  # the scan is bypassed by the caller's fixture
    else:
        raise AssertionError(f"no guard for loader {kind}")


def _expect_refusal(sample: malicious.MaliciousSample, exc: BaseException) -> None:
    if isinstance(exc, UnsafeLoadError):
        return
    if isinstance(exc, pickle.UnpicklingError) and any(k in sample.id for k in _MALFORMED_OK):
        return
    raise AssertionError(f"{sample.id}: expected a refusal, got {exc!r}") from exc


@pytest.mark.parametrize("sample", malicious.SAMPLES, ids=lambda s: s.id)
def test_malicious_artifact_is_refused_at_load_time(
    sample: malicious.MaliciousSample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enforcement alone (no scan first): the unpickler itself refuses the payload."""
    out = tmp_path / "artifact"
    out.mkdir()
    canary = tmp_path / "canary"
    path = sample.build(out, canary)
    import modelguard.guard.loaders as loaders

    monkeypatch.setattr(loaders, "checked_path", lambda target, policy=None: Path(target))
    try:
        _malicious_load(sample, path)
    except Exception as exc:
        _expect_refusal(sample, exc)
    else:
        raise AssertionError(f"{sample.id}: loaded")
    assert not canary.exists(), f"{sample.id}: the payload ran"


@pytest.mark.parametrize(
    "sample", [s for s in malicious.SAMPLES if s.loader == "torch"], ids=lambda s: s.id
)
def test_torch_load_scans_first(sample: malicious.MaliciousSample, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = sample.build(tmp_path, canary)
    with pytest.raises(UnsafeModelError) as info:
        torch_load(path, weights_only=False)
    assert info.value.report.findings
    assert not canary.exists()
