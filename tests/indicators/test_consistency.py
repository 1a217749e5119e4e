"""Structural consistency: weights against config.json, shard indexes, duplicated tensors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from modelguard.indicators.consistency import check_consistency
from modelguard.indicators.settings import IndicatorSettings
from modelguard.indicators.tensors import list_tensors
from modelguard.results import Finding, Severity

from ._c_helpers import copy_minilm, edit_json, save_tiny

safetensors_numpy = pytest.importorskip("safetensors.numpy")

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _run(folder: Path, display: str = "model") -> list[Finding]:
    listings = {
        f"{display}/{p.relative_to(folder).as_posix()}": list_tensors(str(p))
        for p in sorted(folder.rglob("*"))
        if p.suffix in WEIGHT_SUFFIXES
    }
    return check_consistency(str(folder), display, listings, IndicatorSettings())


def _only(findings: list[Finding], rule_id: str) -> Finding:
    assert [f.rule_id for f in findings] == [rule_id], findings
    return findings[0]


def _edit(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    tensors = safetensors_numpy.load_file(str(path))
    change(tensors)
    safetensors_numpy.save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_minilm(tmp_path_factory.mktemp("real") / "minilm")


@pytest.fixture
def model(tmp_path: Path, minilm: Path) -> Path:
    import shutil

    return Path(shutil.copytree(minilm, tmp_path / "model"))


def test_real_model_is_consistent(minilm: Path) -> None:
    assert _run(minilm) == []


@pytest.mark.parametrize(
    ("key", "value", "check", "expected", "found"),
    [
        ("num_hidden_layers", 7, "layer count", "7", "6"),
        ("hidden_size", 512, "input embedding", "512", "384"),
        ("vocab_size", 30521, "input embedding", "30521", "30522"),
        ("intermediate_size", 1024, "MLP down projection", "1024", "1536"),
        ("max_position_embeddings", 256, "position embedding", "256", "512"),
    ],
)
def test_altered_config_is_reported(
    model: Path, key: str, value: int, check: str, expected: str, found: str
) -> None:
    edit_json(model / "config.json", **{key: value})
    findings = _run(model)
    assert findings, "an altered config must be reported"
    assert {f.rule_id for f in findings} == {"MG520"}
    assert all(f.severity is Severity.LOW for f in findings)
    match = [f for f in findings if f.evidence_map["check"] == check]
    assert len(match) == 1, findings
    evidence = match[0].evidence_map
    assert evidence["expected"] == expected
    assert evidence["found"] == found
    assert evidence["config"].startswith(f"{key}={value}")
    assert match[0].location.path == "model/model.safetensors"


def test_hidden_size_names_the_embedding(model: Path) -> None:
    edit_json(model / "config.json", hidden_size=512)
    findings = {f.evidence_map["check"]: f for f in _run(model)}
    embedding = findings["input embedding"]
    assert embedding.evidence_map["tensor"] == "embeddings.word_embeddings.weight"
    assert embedding.evidence_map["shape"] == "[30522, 384]"
    assert embedding.location.members == ("<tensor embeddings.word_embeddings.weight>",)
    assert "MLP up projection" in findings and "position embedding" in findings


def test_removed_layer_is_reported(model: Path) -> None:
    _edit(
        model / "model.safetensors",
        lambda t: [t.pop(k) for k in list(t) if k.startswith("encoder.layer.3.")],
    )
    finding = _only(_run(model), "MG520")
    assert finding.evidence_map["missing_layers"] == "3"
    assert finding.evidence_map["stack"] == "encoder.layer"
    assert finding.evidence_map["found"] == "5"


def test_duplicated_tensor_is_reported(model: Path) -> None:
    def copy(t: dict[str, np.ndarray]) -> None:
        t["encoder.layer.4.attention.self.query.weight"] = t[
            "encoder.layer.1.attention.self.key.weight"
        ].copy()

    _edit(model / "model.safetensors", copy)
    finding = _only(_run(model), "MG521")
    assert finding.severity is Severity.INFO
    assert finding.evidence_map["count"] == "2"
    assert "encoder.layer.1.attention.self.key.weight" in finding.evidence_map["tensors"]
    assert "encoder.layer.4.attention.self.query.weight" in finding.evidence_map["tensors"]


def test_constant_duplicates_are_left_to_mg502(model: Path) -> None:
    def zero(t: dict[str, np.ndarray]) -> None:
        for name in ("encoder.layer.1.attention.self.key.weight", "pooler.dense.weight"):
            t[name] = np.zeros_like(t[name])

    _edit(model / "model.safetensors", zero)
    assert _run(model) == []


@pytest.mark.parametrize("kind", ["bert", "bert-mlm", "llama", "gpt2"])
@pytest.mark.parametrize("tied", [None, True, False])
def test_torch_initialised_models_are_consistent(
    tmp_path: Path, kind: str, tied: bool | None
) -> None:
    folder = save_tiny(kind, tmp_path / "m", tied=tied)
    assert _run(folder) == []


@pytest.mark.parametrize(
    ("kind", "key", "value", "check"),
    [
        ("llama", "num_key_value_heads", 4, "attention key/value"),
        ("llama", "intermediate_size", 40, "MLP up projection"),
        ("llama", "num_hidden_layers", 2, "layer count"),
        ("llama", "head_dim", 16, "attention query"),
        ("gpt2", "n_layer", 3, "layer count"),
        ("gpt2", "n_embd", 48, "input embedding"),
        ("gpt2", "n_positions", 128, "position embedding"),
        ("gpt2", "n_inner", 64, "MLP up projection"),
        ("bert", "vocab_size", 100, "input embedding"),
    ],
)
def test_tiny_model_config_edits(
    tmp_path: Path, kind: str, key: str, value: int, check: str
) -> None:
    folder = save_tiny(kind, tmp_path / "m")
    edit_json(folder / "config.json", **{key: value})
    checks = {f.evidence_map["check"] for f in _run(folder) if f.rule_id == "MG520"}
    assert check in checks


def test_untied_head_removed(tmp_path: Path) -> None:
    folder = save_tiny("llama", tmp_path / "m", tied=False)
    _edit(folder / "model.safetensors", lambda t: t.pop("lm_head.weight"))
    finding = _only(_run(folder), "MG520")
    assert finding.evidence_map["check"] == "output head"


def test_untied_head_equal_to_embedding_is_a_duplicate(tmp_path: Path) -> None:
    folder = save_tiny("llama", tmp_path / "m", tied=False)

    def same(t: dict[str, np.ndarray]) -> None:
        t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()

    _edit(folder / "model.safetensors", same)
    finding = _only(_run(folder), "MG521")
    assert finding.evidence_map["tie_word_embeddings"] == "False"
    # Declared tied: the same bytes are explained.
    edit_json(folder / "config.json", tie_word_embeddings=True)
    assert _run(folder) == []


def test_alternative_serialisations_are_not_duplicates(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    folder = save_tiny("llama", tmp_path / "m", tied=False)
    tensors = safetensors_numpy.load_file(str(folder / "model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, folder / "pytorch_model.bin")
    assert _run(folder) == []
    edit_json(folder / "config.json", num_hidden_layers=4)
    findings = _run(folder)
    assert sorted(f.location.path for f in findings) == [
        "model/model.safetensors",
        "model/pytorch_model.bin",
    ]


def test_torch_views_of_one_storage_are_not_duplicates(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    folder = tmp_path / "m"
    folder.mkdir()
    weight = torch.randn(8, 8)
    torch.save({"a.weight": weight, "b.weight": weight}, folder / "pytorch_model.bin")
    assert _run(folder) == []
    torch.save({"a.weight": weight, "b.weight": weight.clone()}, folder / "pytorch_model.bin")
    assert _only(_run(folder), "MG521").evidence_map["count"] == "2"


# -- shard indexes ---------------------------------------------------------------------------


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    folder = save_tiny("llama", tmp_path / "m", tied=False)
    tensors = safetensors_numpy.load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    halves = (names[: len(names) // 2], names[len(names) // 2 :])
    weight_map = {}
    for i, half in enumerate(halves, 1):
        shard = f"model-{i:05d}-of-00002.safetensors"
        safetensors_numpy.save_file({n: tensors[n] for n in half}, str(folder / shard))
        weight_map.update(dict.fromkeys(half, shard))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def _index(folder: Path) -> dict[str, str]:
    return json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]


def _write_index(folder: Path, weight_map: dict[str, str]) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def test_sharded_model_is_consistent(sharded: Path) -> None:
    assert _run(sharded) == []


def test_sharded_without_index_is_one_unit(sharded: Path) -> None:
    (sharded / "model.safetensors.index.json").unlink()
    assert _run(sharded) == []


def test_tensor_missing_from_index(sharded: Path) -> None:
    weight_map = _index(sharded)
    weight_map.pop("model.layers.1.mlp.up_proj.weight")
    _write_index(sharded, weight_map)
    finding = _only(_run(sharded), "MG520")
    assert finding.evidence_map["check"] == "shard index: tensor not in the index"
    assert finding.evidence_map["tensor"] == "model.layers.1.mlp.up_proj.weight"
    assert finding.location.path == "model/model.safetensors.index.json"


def test_index_points_to_the_wrong_shard(sharded: Path) -> None:
    weight_map = _index(sharded)
    name = next(n for n, f in weight_map.items() if f.startswith("model-00001"))
    weight_map[name] = "model-00002-of-00002.safetensors"
    _write_index(sharded, weight_map)
    finding = _only(_run(sharded), "MG520")
    assert finding.evidence_map["check"] == "shard index: tensor not in its shard"


def test_missing_shard(sharded: Path) -> None:
    (sharded / "model-00002-of-00002.safetensors").unlink()
    checks = {f.evidence_map["check"] for f in _run(sharded)}
    assert "shard index: missing shard" in checks


def test_tensor_in_two_shards(sharded: Path) -> None:
    first = sharded / "model-00001-of-00002.safetensors"
    second = safetensors_numpy.load_file(str(sharded / "model-00002-of-00002.safetensors"))
    name = sorted(second)[0]
    _edit(first, lambda t: t.update({name: second[name] + 1}))
    checks = {f.evidence_map["check"] for f in _run(sharded)}
    assert "shard index: tensor in several shards" in checks
