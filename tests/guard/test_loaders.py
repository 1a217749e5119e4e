"""checked_path, torch_load, from_pretrained and loading through a VerifiedModel."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any, ClassVar

import pytest

import modelguard
from factories.malicious import sample_by_id
from modelguard import FileChangedError, SourceError, UnsafeModelError
from modelguard.guard import (
    WeightsOnlyRefusal,
    checked_path,
    from_pretrained,
    safe_load,
    torch_load,
)

torch = pytest.importorskip("torch")


def test_checked_path_returns_the_scanned_path(tmp_path: Path) -> None:
    path = tmp_path / "clean.pkl"
    path.write_bytes(pickle.dumps({"w": [1.0]}))
    assert checked_path(path) == path


def test_checked_path_raises_with_the_report(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = sample_by_id("direct-os-system-p4").build(tmp_path, canary)
    with pytest.raises(UnsafeModelError) as info:
        checked_path(path)
    assert {f.rule_id for f in info.value.report.findings} & {"MG101", "MG103"}
    assert not canary.exists()
    with pytest.raises(SourceError):
        checked_path(tmp_path / "missing.pkl")


def test_torch_load_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    torch.save(state, path)
    loaded = torch_load(path)
    assert torch.equal(loaded["w"], state["w"])


def test_weights_only_refusal_names_the_globals(tmp_path: Path) -> None:
    path = tmp_path / "ns.pt"
    torch.save({"w": torch.zeros(1), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(WeightsOnlyRefusal) as info:
        torch_load(path)
    assert info.value.globals == ("argparse.Namespace",)
    assert "add_safe_globals" in str(info.value)
    # The opt-out loads it with modelguard's allowlist enforced instead.
    assert torch_load(path, weights_only=False)["args"].lr == 0.1
    # Allowing the global in torch, as the message says, makes the weights-only load work.
    with torch.serialization.safe_globals([argparse.Namespace]):
        assert torch_load(path)["args"].lr == 0.1


def test_torch_load_refuses_a_file_swapped_during_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(1)}, path)
    import modelguard.guard.loaders as loaders

    real = loaders.checked_path

    def swap(target: Any, policy: Any = None) -> Path:
        result = real(target, policy)
        replacement = tmp_path / "other.pt"
        torch.save({"w": torch.ones(1)}, replacement)
        replacement.replace(path)
        return result

    monkeypatch.setattr(loaders, "checked_path", swap)
    with pytest.raises(FileChangedError):
        torch_load(path)


def test_verified_load_fails_once_the_file_changed(tmp_path: Path) -> None:
    from integrity._pki import write_ec_key

    model = tmp_path / "model"
    model.mkdir()
    torch.save({"w": torch.zeros(2)}, model / "weights.pt")
    (model / "extra.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    private, public = write_ec_key(tmp_path)
    modelguard.sign(model, private_key=private)
    verified = modelguard.verify(model, public_key=public)

    assert torch.equal(torch_load("weights.pt", verified=verified)["w"], torch.zeros(2))
    assert safe_load(model / "extra.pkl", verified=verified) == [1, 2, 3]

    (model / "extra.pkl").write_bytes(pickle.dumps([1, 2, 3, 4]))
    with pytest.raises(FileChangedError):
        safe_load("extra.pkl", verified=verified)


class _Spy:
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> str:
        cls.calls.append((path, kwargs))
        return "loaded"


def test_from_pretrained_loads_the_scanned_folder_offline(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
    _Spy.calls.clear()
    assert from_pretrained(_Spy, folder) == "loaded"
    path, kwargs = _Spy.calls[-1]
    assert path == str(folder)
    assert kwargs == {"local_files_only": True, "trust_remote_code": False, "use_safetensors": True}


def test_from_pretrained_refuses_before_loading(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    canary = tmp_path / "canary"
    evil = sample_by_id("direct-os-system-p4").build(tmp_path, canary)
    (folder / "pytorch_model.bin").write_bytes(evil.read_bytes())
    _Spy.calls.clear()
    with pytest.raises(UnsafeModelError):
        from_pretrained(_Spy, folder)
    assert _Spy.calls == []
    assert not canary.exists()


def test_from_pretrained_real_tiny_bert(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    model.save_pretrained(tmp_path / "tiny")
    loaded = from_pretrained(transformers.AutoModel, tmp_path / "tiny")
    assert type(loaded).__name__ == "BertModel"
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_hf_target_is_pinned_to_the_commit_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    from hub.cachebuild import add_snapshot, commit_id

    root = tmp_path / "hub"
    commit = commit_id("guard-clean")
    snapshot = add_snapshot(
        root, "org/clean", commit, {"config.json": b"{}", "model.pkl": pickle.dumps([1.0])}
    )
    evil = sample_by_id("direct-os-system-p4").build(tmp_path, tmp_path / "canary")
    add_snapshot(root, "org/evil", commit_id("guard-evil"), {"model.pkl": evil.read_bytes()})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))

    assert checked_path("hf://org/clean").resolve() == snapshot.resolve()
    assert safe_load(checked_path("hf://org/clean") / "model.pkl") == [1.0]
    with pytest.raises(UnsafeModelError):
        checked_path("hf://org/evil")
    with pytest.raises(SourceError):
        checked_path("hf://org/absent")
    assert not (tmp_path / "canary").exists()


def test_verified_mmap_load_of_an_unchanged_file(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from modelguard.hashing import FileIdentity
    from modelguard.verified import VerifiedModel

    model = tmp_path / "model"
    model.mkdir()
    path = model / "sd.pt"
    torch.save({"w": torch.ones(4)}, path)
    verified = VerifiedModel(
        root=model,
        manifest=None,  # type: ignore[arg-type]  # only root/files are used to open
        signer=None,  # type: ignore[arg-type]
        files={"sd.pt": FileIdentity.from_stat(path.stat())},
        report=None,  # type: ignore[arg-type]
    )
    loaded = torch_load("sd.pt", verified=verified, mmap=True)
    assert torch.equal(loaded["w"], torch.ones(4))
