"""Detection tests of the tensor pass (weights.analyse_file) on real and torch weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modelguard.indicators.settings import IndicatorSettings
from modelguard.indicators.tensors import list_tensors
from modelguard.indicators.weights import analyse_file
from modelguard.results import Finding, Severity

from ._w_helpers import (
    BIG,
    elf_file,
    load_minilm,
    pe_file,
    plant,
    save,
    structured_random,
    text_payload,
    zip_file,
)

SAMPLED = IndicatorSettings()
FULL = replace(IndicatorSettings(), mode="full")


def _run(path: Path, settings: IndicatorSettings = FULL) -> list[Finding]:
    findings, stats = analyse_file(list_tensors(str(path)), "m.safetensors", settings)
    assert stats
    return findings


def _above_info(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity > Severity.INFO]


def _in(findings: list[Finding], rules: set[str], tensor: str) -> list[Finding]:
    return [
        f for f in findings if f.rule_id in rules and f.location.members == (f"<tensor {tensor}>",)
    ]


@pytest.fixture(scope="module")
def clean() -> dict[str, np.ndarray]:
    return load_minilm()


@pytest.mark.parametrize("settings", [SAMPLED, FULL], ids=["sampled", "full"])
def test_real_weights_are_clean(
    clean: dict[str, np.ndarray], tmp_path: Path, settings: IndicatorSettings
) -> None:
    findings = _run(save(clean, tmp_path / "m.safetensors"), settings)
    assert _above_info(findings) == []
    # the one zero tensor of the real model is reported as information
    assert {f.rule_id for f in findings} <= {"MG502"}


def test_real_weights_stats_are_complete_in_full_mode(
    clean: dict[str, np.ndarray], tmp_path: Path
) -> None:
    path = save(clean, tmp_path / "m.safetensors")
    _, stats = analyse_file(list_tensors(str(path)), "m", FULL, workers=2)
    assert all(s.full for s in stats)
    assert sum(s.bytes_read for s in stats) == sum(v.nbytes for v in clean.values())
    assert all(s.nan == s.posinf == s.neginf == 0 for s in stats)


PAYLOADS = {
    "text": (text_payload(), {"MG504"}),
    "structured": (structured_random(), {"MG504"}),
    "elf": (elf_file(), {"MG505"}),
    "zip": (zip_file(), {"MG505"}),
    "pe": (pe_file(), {"MG505"}),
}


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_payload_in_low_bytes_is_found_anywhere_in_full_mode(
    clean: dict[str, np.ndarray], tmp_path: Path, kind: str, width: int
) -> None:
    payload, rules = PAYLOADS[kind]
    tensors = dict(clean)
    weights = tensors[BIG].copy()
    element = 300_001  # inside the second 1 MiB window, not a sampled one
    plant(weights, payload, width, element)
    tensors[BIG] = weights
    path = save(tensors, tmp_path / "m.safetensors")
    findings = _run(path)
    hits = _in(findings, rules, BIG)
    assert hits, [(f.rule_id, f.message) for f in findings]
    ref = next(t for t in list_tensors(str(path)).tensors if t.name == BIG)
    lo = ref.offset + 4 * element - (1 << 20)  # the window before (carving looks back one)
    hi = ref.offset + 4 * (element + len(payload)) + (1 << 20)
    assert all(lo <= (f.location.offset or 0) < hi for f in hits)
    if "MG505" in rules:
        assert any(f.evidence_map["kind"] == kind for f in hits)
    for f in hits:
        ev = f.evidence_map
        assert ev["mode"] == "full" and "threshold" in ev and "window" in ev
    # nothing fires on the untouched tensors
    others = [f for f in _above_info(findings) if f.location.members != (f"<tensor {BIG}>",)]
    assert others == []


@pytest.mark.parametrize("where", ["first", "last"])
def test_sampled_mode_reads_first_and_last_window(
    clean: dict[str, np.ndarray], tmp_path: Path, where: str
) -> None:
    name = "embeddings.word_embeddings.weight"  # 45 MB: sampled mode reads 4 windows
    tensors = dict(clean)
    weights = tensors[name].copy()
    payload = text_payload()
    element = 0 if where == "first" else weights.size - len(payload)
    plant(weights, payload, 1, element)
    tensors[name] = weights
    path = save(tensors, tmp_path / "m.safetensors")
    assert _in(_run(path, SAMPLED), {"MG504", "MG505"}, name)
    middle = dict(clean)
    weights = middle[name].copy()
    plant(weights, payload, 1, weights.size // 3)
    middle[name] = weights
    path = save(middle, tmp_path / "mid.safetensors")
    # a payload between the sampled windows is only seen in full mode
    assert _in(_run(path, FULL), {"MG504", "MG505"}, name)


def test_nan_and_inf_are_counted(clean: dict[str, np.ndarray], tmp_path: Path) -> None:
    name = "encoder.layer.0.attention.self.query.weight"
    tensors = dict(clean)
    weights = tensors[name].copy()
    weights[3, :5] = np.nan
    weights[4, :2] = np.inf
    weights[5, :1] = -np.inf
    tensors[name] = weights
    findings = _run(save(tensors, tmp_path / "m.safetensors"))
    (hit,) = _in(findings, {"MG501"}, name)
    ev = hit.evidence_map
    assert (ev["nan"], ev["posinf"], ev["neginf"], ev["value"]) == ("5", "2", "1", "8")
    assert ev["threshold"] == "nonfinite_max=0"


def test_zeroed_layer_and_subnormals(clean: dict[str, np.ndarray], tmp_path: Path) -> None:
    tensors = dict(clean)
    zeroed = "encoder.layer.3.output.dense.weight"
    tensors[zeroed] = np.zeros_like(tensors[zeroed])
    tiny = "encoder.layer.1.output.dense.weight"
    weights = tensors[tiny].copy()
    weights.reshape(-1)[: weights.size // 10] = np.float32(1e-40)
    tensors[tiny] = weights
    findings = _run(save(tensors, tmp_path / "m.safetensors"))
    (hit,) = _in(findings, {"MG502"}, zeroed)
    assert hit.evidence_map["value"] == "all zeros"
    (sub,) = _in(findings, {"MG502"}, tiny)
    assert sub.evidence_map["statistic"] == "subnormal_share"
    assert [f for f in _above_info(findings) if f.location.members != (f"<tensor {tiny}>",)] == []


def _to_bf16_origin(a: np.ndarray) -> np.ndarray:
    u = a.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return rounded.view(np.float32)


def test_bf16_origin_model_with_rewritten_region(
    clean: dict[str, np.ndarray], tmp_path: Path
) -> None:
    tensors = {k: _to_bf16_origin(v) if v.dtype == np.float32 else v for k, v in clean.items()}
    assert _above_info(_run(save(tensors, tmp_path / "clean.safetensors"))) == []
    weights = tensors[BIG].copy()
    plant(weights, np.random.default_rng(3).bytes(2 * 20_000), 2, 400_000)
    tensors[BIG] = weights
    findings = _run(save(tensors, tmp_path / "m.safetensors"))
    (hit,) = _in(findings, {"MG503"}, BIG)
    ev = hit.evidence_map
    assert float(ev["value"]) < 0.99 < float(ev["model_share"])
    assert ev["threshold"] == "low16_zero_min=0.99"


def test_torch_initialised_model_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Embedding(1000, 64),
        torch.nn.Linear(64, 256),
        torch.nn.LayerNorm(256),
        torch.nn.Linear(256, 64),
    )
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["half"] = torch.randn(512, 512).to(torch.float16)
    state["bf16"] = torch.randn(512, 512).to(torch.bfloat16)
    state["f64"] = torch.randn(256, 256, dtype=torch.float64)
    path = tmp_path / "t.safetensors"
    save_file(state, str(path))
    for settings in (SAMPLED, FULL):
        findings = _run(path, settings)
        # zero-initialised biases and unit LayerNorm weights are degenerate: information only
        assert _above_info(findings) == []


def test_skipped_tensors_and_byte_limit(clean: dict[str, np.ndarray], tmp_path: Path) -> None:
    path = save(dict(clean), tmp_path / "m.safetensors")
    settings = replace(FULL, max_tensor_bytes_total=1 << 20)
    findings, stats = analyse_file(list_tensors(str(path)), "m", settings)
    (hit,) = [f for f in findings if f.rule_id == "MG506"]
    assert "max_tensor_bytes_total=1048576" in hit.evidence_map["tensors"]
    assert sum(s.bytes_read for s in stats) <= 1 << 20


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["text", "elf"])
def test_small_payload_anywhere_in_full_mode(
    clean: dict[str, np.ndarray], tmp_path: Path, kind: str, width: int
) -> None:
    """512 bytes in the low 1-3 bytes (or replacing whole values: width 4), mid-tensor."""
    payload = text_payload(512) if kind == "text" else elf_file(512)
    tensors = dict(clean)
    weights = tensors[BIG].copy()
    element = 411_237  # not in a first or sampled window, not block-aligned
    if width == 4:
        raw = weights.reshape(-1).view(np.uint8)
        raw[4 * element : 4 * element + len(payload)] = np.frombuffer(payload, np.uint8)
    else:
        plant(weights, payload, width, element)
    tensors[BIG] = weights
    findings = _run(save(tensors, tmp_path / "m.safetensors"))
    assert _in(findings, {"MG504", "MG505"}, BIG), [(f.rule_id, f.message) for f in findings]
    assert [f for f in _above_info(findings) if f.location.members != (f"<tensor {BIG}>",)] == []
