"""HDF5: host access (MG443), shape bombs (MG444) and Keras configs in attributes, all read
through the sandboxed h5py probe; failures of the probe are incomplete (MG002/MG004)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard.analysers import hdf5 as hdf5_analyser
from modelguard.policy import Policy
from modelguard.results import FileResult, Severity
from modelguard.scanner import scan_file

# -- helpers -------------------------------------------------------------------------------


def scan_path(path: Path) -> FileResult:
    return scan_file(path, path.name, Policy())


def rules(res: FileResult) -> set[str]:
    return {f.rule_id for f in res.findings}


def kinds(res: FileResult) -> set[str]:
    return {f.evidence_map.get("kind", "") for f in res.findings if f.rule_id == "MG443"}


def assert_clean(res: FileResult) -> None:
    bad = [f for f in res.findings if f.severity >= Severity.LOW]
    assert not bad, bad
    assert res.complete, res.incomplete


def benign(path: Path) -> Path:
    """Weights the way Keras writes them: groups, float datasets, a chunked gzip one."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "3.15.1"
        g = f.create_group("layers/dense/vars")
        g.attrs["name"] = "dense"
        g["0"] = np.ones((8, 4), dtype="f4")
        g["1"] = np.zeros((4,), dtype="f4")
        f.create_dataset("big", data=np.ones((64, 64)), chunks=(16, 16), compression="gzip")
        f.create_dataset("lazy", shape=(1024, 1024), dtype="f4", chunks=(64, 64))
    return path


# -- benign ---------------------------------------------------------------------------------


def test_benign_weights_scan_clean(tmp_path: Path) -> None:
    assert_clean(scan_path(benign(tmp_path / "w.h5")))


# -- host access and bombs --------------------------------------------------------------------


def _external_storage(path: Path, canary: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("kernel", shape=(48,), dtype="u1", external=[(str(canary), 0, 48)])


def _external_link(path: Path, canary: Path) -> None:
    other = canary.with_suffix(".other.h5")
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(4)
    with h5py.File(path, "w") as f:
        f["kernel"] = h5py.ExternalLink(str(other), "/x")


def _virtual(path: Path, canary: Path) -> None:
    other = canary.with_suffix(".src.h5")
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(10)
    layout = h5py.VirtualLayout(shape=(10,), dtype="i8")
    layout[:] = h5py.VirtualSource(str(other), "x", shape=(10,))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("kernel", layout)


def _soft_link(path: Path, canary: Path) -> None:
    with h5py.File(path, "w") as f:
        f["bias"] = np.zeros(3)
        f["kernel"] = h5py.SoftLink("/bias")
        f["gone"] = h5py.SoftLink("/nowhere")


def _bomb(path: Path, canary: Path) -> None:
    with h5py.File(path, "w") as f:
        # 8 TiB declared, never written: a loader allocates it anyway.
        f.create_dataset("kernel", shape=(2**20, 2**20, 2), dtype="f4", chunks=(16, 16, 2))


CASES = [
    ("external-storage", _external_storage, "MG443", {"external-storage"}),
    ("external-link", _external_link, "MG443", {"external-link"}),
    ("virtual", _virtual, "MG443", {"virtual-dataset"}),
    ("soft-link", _soft_link, "MG443", {"soft-link", "soft-link-dangling"}),
    ("shape-bomb", _bomb, "MG444", set()),
]


@pytest.mark.parametrize(
    ("make", "rule", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_host_access_and_bombs(tmp_path: Path, make, rule: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    canary = tmp_path / "canary.bin"
    canary.write_bytes(b"host secret\n" * 4)
    path = tmp_path / "model.h5"
    make(path, canary)
    res = scan_path(path)
    assert rule in rules(res), res.findings
    assert res.complete, res.incomplete
    if expected:
        assert kinds(res) == expected
    if rule == "MG444":
        (hit,) = [f for f in res.findings if f.rule_id == "MG444"]
        assert hit.severity is Severity.HIGH
        assert hit.evidence_map["stored"] == "0"


def test_member_is_probed_from_a_private_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "canary.bin"
    canary.write_bytes(b"x" * 48)
    inner = tmp_path / "inner.h5"
    _external_storage(inner, canary)
    archive = tmp_path / "weights.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(inner, "nested/weights.h5")
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(private))
    res = scan_path(archive)
    (hit,) = [f for f in res.findings if f.rule_id == "MG443"]
    assert hit.location.members == ("nested/weights.h5",)
    assert list(private.iterdir()) == []  # the copy was removed


# -- Keras configs in attributes --------------------------------------------------------------


def test_model_config_attribute_is_walked(tmp_path: Path) -> None:
    config = {
        "class_name": "Sequential",
        "config": {"layers": [{"class_name": "Dense", "module": "os", "config": {}}]},
    }
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)[:-1] + ', "config": {}}'
        f.attrs["training_config"] = json.dumps({"optimizer_config": {"module": "subprocess"}})
        f.attrs["keras_version"] = "3.8.0"
    res = scan_path(path)
    assert rules(res) == {"MG441", "MG403"}
    mods = {f.evidence_map.get("module") for f in res.findings if f.rule_id == "MG441"}
    assert mods == {"subprocess"}  # the duplicate "config" keeps the last copy, like json
    assert all(
        "saved by Keras 3.8.0, in the range of CVE-2025-1550" in f.message
        for f in res.findings
        if f.rule_id == "MG441"
    )


# -- probe failures ---------------------------------------------------------------------------


def _corrupt(tmp_path: Path, how: str) -> Path:
    data = benign(tmp_path / "src.h5").read_bytes()
    path = tmp_path / f"{how}.h5"
    if how == "header-only":
        path.write_bytes(data[:64])
    elif how == "half":
        path.write_bytes(data[: len(data) // 2])
    else:  # superblock intact, everything after it garbage
        path.write_bytes(data[:8] + bytes(range(256)) * (len(data) // 256))
    return path


@pytest.mark.parametrize("how", ["header-only", "half", "garbage"])
def test_corrupted_files_are_incomplete(tmp_path: Path, how: str) -> None:
    res = scan_path(_corrupt(tmp_path, how))
    assert not res.complete
    assert {i.rule_id for i in res.incomplete} == {"MG002"}
    assert not any("internal error" in i.reason for i in res.incomplete)


def _fake_h5py(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the probe import a stand-in h5py (PYTHONPATH is honoured, the cwd is not)."""
    pkg = tmp_path / "fake" / "h5py"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))


@pytest.mark.parametrize(
    ("body", "rule", "reason"),
    [
        ("raise ImportError('no h5py here')\n", "MG004", "pip install 'h5py>=3.10'"),
        ("import os\nos.abort()\n", "MG002", "killed by signal"),
        (
            "import os, sys\nsys.stdout.write('not json')\nsys.stdout.flush()\nos._exit(0)\n",
            "MG002",
            "exit status 0",
        ),
        ("import time\ntime.sleep(60)\n", "MG002", "timed out"),
    ],
    ids=["missing", "crash", "bad-output", "timeout"],
)
def test_probe_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, rule: str, reason: str
) -> None:
    _fake_h5py(tmp_path, body, monkeypatch)
    monkeypatch.setattr(hdf5_analyser, "PROBE_TIMEOUT", 1.0)
    res = scan_path(benign(tmp_path / "w.h5"))
    assert [i.rule_id for i in res.incomplete] == [rule]
    assert reason in res.incomplete[0].reason


def test_probe_ignores_h5py_in_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scanned directory may hold an h5py.py; the probe runs with -P, so it is not imported.
    canary = tmp_path / "imported"
    (tmp_path / "h5py.py").write_text(f"open({str(canary)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    res = scan_path(benign(tmp_path / "w.h5"))
    assert res.complete, res.incomplete
    assert not canary.exists()


def test_scanner_never_imports_h5py(tmp_path: Path) -> None:
    canary = tmp_path / "canary.bin"
    canary.write_bytes(b"x" * 48)
    path = tmp_path / "m.h5"
    _external_storage(path, canary)
    code = (
        "import sys, modelguard\n"
        "assert 'h5py' not in sys.modules\n"
        f"r = modelguard.scan({str(path)!r})\n"
        "assert 'MG443' in {f.rule_id for f in r.files[0].findings}\n"
        "assert 'h5py' not in sys.modules, 'h5py imported in the scanner'\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr


# -- fuzz -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return benign(tmp_path_factory.mktemp("seed") / "seed.h5").read_bytes()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_mutated_hdf5(
    seed: bytes, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(8, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(blob)))
    path = tmp_path_factory.mktemp("fuzz") / "m.h5"
    path.write_bytes(bytes(blob[:cut]))
    res = scan_path(path)
    assert not any("internal error" in i.reason for i in res.incomplete), res.incomplete
    os.unlink(path)
