"""Provenance indicators: signature presence and coverage, HF revisions, pickle-only weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import modelguard
from modelguard.indicators.provenance import check_provenance, hub_revision, weight_kind
from modelguard.results import Finding, Severity
from modelguard.signing.keygen import generate_key_pem

from ._c_helpers import copy_minilm, files_of

safetensors_numpy = pytest.importorskip("safetensors.numpy")

SHA = "0123456789abcdef0123456789abcdef01234567"


def _run(folder: Path, display: str = "model") -> list[Finding]:
    return check_provenance(str(folder), display, files_of(folder))


def _ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


def _small(folder: Path) -> Path:
    """A tiny safetensors model with a config and a tokenizer file."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    safetensors_numpy.save_file(
        {"w": rng.standard_normal((4, 4)).astype(np.float32)}, str(folder / "model.safetensors")
    )
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "README.md").write_text("# a model\n")
    return folder


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    private, _public = generate_key_pem("p256")
    path = tmp_path_factory.mktemp("key") / "signing-key.pem"
    path.write_bytes(private)
    return path


def test_real_model_unsigned_is_info_only(tmp_path: Path) -> None:
    model = copy_minilm(tmp_path / "minilm")
    findings = _run(model)
    assert _ids(findings) == ["MG530"]
    assert findings[0].severity is Severity.INFO
    assert findings[0].evidence_map["weights"] == "model.safetensors"
    assert str(findings[0].location) == "model"


def test_real_model_signed_is_clean(tmp_path: Path, key: Path) -> None:
    model = copy_minilm(tmp_path / "minilm")
    modelguard.sign(model, private_key=str(key))
    assert (model / "model.sig").is_file()
    assert _run(model) == []


@pytest.mark.parametrize(
    "added",
    [
        "tokenizer.model",
        "chat_template.jinja",
        "modeling_evil.py",
        "added_tokens.json",
        "1_Pooling/config.json",
        "extra.safetensors",
    ],
)
def test_file_added_after_signing_is_uncovered(tmp_path: Path, key: Path, added: str) -> None:
    model = _small(tmp_path / "m")
    modelguard.sign(model, private_key=str(key))
    path = model / added
    path.parent.mkdir(parents=True, exist_ok=True)
    if added.endswith(".safetensors"):
        shutil.copy(model / "model.safetensors", path)
    else:
        path.write_text("{}")
    findings = _run(model)
    assert _ids(findings) == ["MG531"]
    assert findings[0].severity is Severity.LOW
    assert findings[0].evidence_map["uncovered"] == added
    assert findings[0].evidence_map["signatures"] == "model.sig"


def test_unread_files_added_after_signing_are_not_reported(tmp_path: Path, key: Path) -> None:
    model = _small(tmp_path / "m")
    modelguard.sign(model, private_key=str(key))
    (model / "NOTES.md").write_text("notes")
    (model / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert _run(model) == []


def test_names_the_signer_ignored_are_uncovered(tmp_path: Path, key: Path) -> None:
    model = _small(tmp_path / "m")
    modelguard.sign(model, private_key=str(key), ignore=["tokenizer.json"])
    findings = _run(model)
    assert _ids(findings) == ["MG531"]
    assert findings[0].evidence_map["uncovered"] == "tokenizer.json"


def test_bundle_recognised_by_content(tmp_path: Path, key: Path) -> None:
    model = _small(tmp_path / "m")
    modelguard.sign(model, private_key=str(key), output=str(tmp_path / "out.sig"))
    shutil.copy(tmp_path / "out.sig", model / "provenance.json")
    findings = _run(model)
    # The bundle is recognised (no MG530); it did not sign itself, and it is not a file
    # loaders read, so nothing is uncovered.
    assert findings == []


def test_single_file_signature_leaves_the_config_uncovered(tmp_path: Path, key: Path) -> None:
    model = _small(tmp_path / "m")
    modelguard.sign(model / "model.safetensors", private_key=str(key))
    assert (model / "model.safetensors.sig").is_file()
    findings = _run(model)
    assert _ids(findings) == ["MG531"]
    assert findings[0].evidence_map["uncovered"] == "config.json, tokenizer.json"


def test_single_file_signature_dot_resource(tmp_path: Path, key: Path) -> None:
    # model-signing 0.3-1.0 names a single file's only resource "."
    model = _small(tmp_path / "m")
    signed = modelguard.sign(model / "model.safetensors", private_key=str(key), output=False)
    statement = signed.manifest.to_statement()
    assert statement["predicate"]["resources"][0]["name"] == "model.safetensors"
    statement["predicate"]["resources"][0]["name"] = "."
    statement["subject"][0]["annotations"] = {}  # the modelguard bindings name the file
    from modelguard.signing.bundle import DsseSignature, build_bundle

    bundle = build_bundle(
        payload=json.dumps(statement).encode(), signatures=[DsseSignature(b"x")], key_hint="00"
    )
    (model / "model.safetensors.sig").write_bytes(bundle)
    findings = _run(model)
    assert _ids(findings) == ["MG531"]
    assert findings[0].evidence_map["uncovered"] == "config.json, tokenizer.json"


@pytest.mark.parametrize("content", [b"", b"not a bundle", b'{"mediaType": "x"}'])
def test_unreadable_signature_is_reported(tmp_path: Path, content: bytes) -> None:
    model = _small(tmp_path / "m")
    (model / "model.sig").write_bytes(content)
    findings = _run(model)
    assert _ids(findings) == ["MG531"]
    assert findings[0].evidence_map["signature"] == "model.sig"
    assert "not a readable OMS signature" in findings[0].evidence_map["reason"]


def test_no_weights_no_unsigned_finding(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "weights.safetensors").write_text("not really")  # name alone is not weights
    assert _run(folder) == []


# -- Hugging Face cache ----------------------------------------------------------------------


def _hf_cache(tmp_path: Path, refs: dict[str, str]) -> Path:
    repo = tmp_path / "hub" / "models--org--name"
    snapshot = repo / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for name, content in (("model.safetensors", None), ("config.json", b"{}")):
        blob = repo / "blobs" / f"blob{len(list((repo / 'blobs').iterdir()))}"
        if content is None:
            safetensors_numpy.save_file({"w": np.ones((2, 2), np.float32)}, str(blob))
        else:
            blob.write_bytes(content)
        (snapshot / name).symlink_to(Path("../..") / "blobs" / blob.name)
    for ref, commit in refs.items():
        path = repo / "refs" / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(commit)
    return snapshot


def _mg532(snapshot: Path) -> list[Finding]:
    return [f for f in _run(snapshot) if f.rule_id == "MG532"]


def test_hf_snapshot_on_main_is_info(tmp_path: Path) -> None:
    snapshot = _hf_cache(tmp_path, {"main": SHA})
    findings = _mg532(snapshot)
    assert len(findings) == 1
    assert findings[0].severity is Severity.INFO
    assert findings[0].evidence_map == {
        "commit": SHA,
        "refs": "main",
        "repository": "models--org--name",
    }
    assert "branch main" in findings[0].message


def test_hf_snapshot_from_pr_only_is_low(tmp_path: Path) -> None:
    snapshot = _hf_cache(tmp_path, {"main": "f" * 40, "pr/1": SHA})
    findings = _mg532(snapshot)
    assert len(findings) == 1
    assert findings[0].severity is Severity.LOW
    assert findings[0].evidence_map["refs"] == "pr/1"


def test_hf_snapshot_on_main_and_pr_is_info(tmp_path: Path) -> None:
    snapshot = _hf_cache(tmp_path, {"main": SHA, "pr/1": SHA})
    findings = _mg532(snapshot)
    assert [f.severity for f in findings] == [Severity.INFO]
    assert findings[0].evidence_map["refs"] == "main, pr/1"


def test_hf_snapshot_pinned_commit_is_silent(tmp_path: Path) -> None:
    snapshot = _hf_cache(tmp_path, {"main": "f" * 40})
    assert _mg532(snapshot) == []
    revision = hub_revision(str(snapshot))
    assert revision is not None and revision.refs == () and revision.commit == SHA


def test_hf_snapshot_subfolder_and_weights_through_links(tmp_path: Path) -> None:
    snapshot = _hf_cache(tmp_path, {"main": SHA})
    assert weight_kind(str(snapshot / "model.safetensors")) == "safetensors"
    sub = snapshot / "sub"
    sub.mkdir()
    revision = hub_revision(str(sub))
    assert revision is not None and revision.refs == ("main",)
    assert _ids(_run(snapshot)) == ["MG530", "MG532"]


def test_not_a_cache_folder(tmp_path: Path) -> None:
    assert hub_revision(str(tmp_path)) is None


# -- pickle-only weights ---------------------------------------------------------------------


def _torch_model(folder: Path, *, zip_format: bool = True, name: str = "pytorch_model.bin") -> None:
    torch = pytest.importorskip("torch")
    folder.mkdir(parents=True, exist_ok=True)
    state = {"layer.weight": torch.ones(2, 2)}
    torch.save(state, str(folder / name), _use_new_zipfile_serialization=zip_format)


@pytest.mark.parametrize("zip_format", [True, False])
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.ckpt", "blob"])
def test_pickle_only_weights(tmp_path: Path, zip_format: bool, name: str) -> None:
    folder = tmp_path / "m"
    _torch_model(folder, zip_format=zip_format, name=name)
    findings = _run(folder)
    assert _ids(findings) == ["MG530", "MG533"]
    mg533 = findings[1]
    assert mg533.severity is Severity.INFO
    assert mg533.evidence_map["pickle_files"] == name
    assert weight_kind(str(folder / name)) == ("torch-zip" if zip_format else "pickle")


def test_pickle_with_safetensors_is_fine(tmp_path: Path) -> None:
    folder = _small(tmp_path / "m")
    _torch_model(folder)
    assert _ids(_run(folder)) == ["MG530"]


def test_trainer_state_pickles_are_not_weights(tmp_path: Path) -> None:
    folder = _small(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    _torch_model(folder, name="training_args.bin")
    _torch_model(folder, name="optimizer.pt")
    assert _run(folder) == []


def test_real_model_with_torch_copy(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = copy_minilm(tmp_path / "minilm")
    tensors = safetensors_numpy.load_file(str(model / "model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    findings = _run(model)
    assert _ids(findings) == ["MG530", "MG533"]
    assert findings[1].evidence_map["pickle_files"] == "pytorch_model.bin"
