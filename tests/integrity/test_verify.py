"""`modelguard.sign` and `modelguard.verify` end to end: strict, closed-world, typed failures."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

import modelguard
from integrity._pki import make_model, write_ec_key, write_pki
from modelguard import (
    BundleError,
    FileChangedError,
    IntegrityError,
    ManifestError,
    SignatureError,
    SignerError,
    VerificationError,
)
from modelguard.verification import verify_report


def rules(report: modelguard.ScanReport) -> set[str]:
    return {f.rule_id for f in report.findings}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_ec_key(tmp_path)


@pytest.fixture
def signed(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=keys[0])
    return model


def test_sign_then_verify_passes_and_records_identities(
    signed: Path, keys: tuple[Path, Path]
) -> None:
    verified = modelguard.verify(signed, public_key=keys[1])
    assert set(verified.files) == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "sub/extra.bin",
    }
    assert verified.signer.method == "key"
    assert verified.report.complete
    assert not verified.report.blocking
    assert any("key hint" in note for note in verified.report.notes)
    # the signature sits inside the folder and is not part of the manifest
    assert (signed / "model.sig").is_file()
    assert "model.sig" not in verified.files


def test_flipped_byte_is_reported_with_both_digests(signed: Path, keys: tuple[Path, Path]) -> None:
    target = signed / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[150_000] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        modelguard.verify(signed, public_key=keys[1])
    assert info.value.rule_id == "MG311"
    report = info.value.report
    assert report is not None
    (finding,) = [f for f in report.findings if f.rule_id == "MG311"]
    assert finding.location.path.endswith("model.safetensors")
    evidence = finding.evidence_map
    assert evidence["expected_digest"] != evidence["actual_digest"]
    assert len(evidence["actual_digest"]) == 64


@pytest.mark.parametrize(
    ("tamper", "rule"),
    [
        (lambda m: (m / "modeling_evil.py").write_text("import os\n"), "MG313"),
        (lambda m: (m / "sub" / "extra.bin").unlink(), "MG312"),
        (lambda m: (m / "tokenizer.json").rename(m / "tokenizer2.json"), "MG312"),
        (lambda m: (m / "pytorch_model.bin").write_bytes(b"\x80\x02N."), "MG313"),
    ],
    ids=["added", "removed", "renamed", "added-pickle"],
)
def test_closed_world_failures(signed: Path, keys: tuple[Path, Path], tamper, rule: str) -> None:
    tamper(signed)
    outcome = verify_report(signed, public_key=keys[1])
    assert outcome.verified is None
    assert rule in rules(outcome.report)
    with pytest.raises(VerificationError) as info:
        modelguard.verify(signed, public_key=keys[1])
    assert not isinstance(info.value, ValueError)


def test_renamed_file_reports_both_sides(signed: Path, keys: tuple[Path, Path]) -> None:
    (signed / "tokenizer.json").rename(signed / "tokenizer2.json")
    found = rules(verify_report(signed, public_key=keys[1]).report)
    assert {"MG312", "MG313"} <= found


def test_file_swapped_for_symlink_is_refused(
    signed: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    shutil.copy(signed / "config.json", outside)
    (signed / "config.json").unlink()
    (signed / "config.json").symlink_to(outside)
    report = verify_report(signed, public_key=keys[1]).report
    assert "MG314" in rules(report)
    # even with links allowed, one that leaves the model is refused
    report = verify_report(signed, public_key=keys[1], allow_links=True).report
    assert "MG314" in rules(report)


def test_symlinked_folder_is_never_skipped(
    signed: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "payload.py").write_text("print(1)\n")
    (signed / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for allow in (False, True):
        report = verify_report(signed, public_key=keys[1], allow_links=allow).report
        assert "MG314" in rules(report), allow


def test_link_inside_the_model_is_allowed_only_when_asked(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    model = make_model(tmp_path)
    (model / "alias.json").symlink_to("config.json")
    with pytest.raises(ManifestError):
        modelguard.sign(model, private_key=keys[0])
    modelguard.sign(model, private_key=keys[0], allow_links=True)
    assert "MG314" in rules(verify_report(model, public_key=keys[1]).report)
    verified = modelguard.verify(model, public_key=keys[1], allow_links=True)
    assert "alias.json" in verified.files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_not_a_regular_file(signed: Path, keys: tuple[Path, Path]) -> None:
    os.mkfifo(signed / "pipe")
    report = verify_report(signed, public_key=keys[1]).report
    assert "MG315" in rules(report)


def test_tolerated_names_are_listed_not_silently_skipped(
    signed: Path, keys: tuple[Path, Path]
) -> None:
    (signed / ".gitattributes").write_text("*.bin filter=lfs\n")
    (signed / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (signed / ".cache" / "huggingface" / "download" / "x.metadata").write_text("m")
    verified = modelguard.verify(signed, public_key=keys[1])
    ignored = [f for f in verified.report.findings if f.rule_id == "MG318"]
    assert {Path(f.location.path).name for f in ignored} >= {".gitattributes"}
    assert all(f.severity is modelguard.Severity.INFO for f in ignored)
    # a user pattern widens the tolerance explicitly
    (signed / "README.md").write_text("hello")
    with pytest.raises(IntegrityError):
        modelguard.verify(signed, public_key=keys[1])
    modelguard.verify(signed, public_key=keys[1], ignore=["*.md"])


def test_git_metadata_ignored_by_the_signer_is_listed(
    signed: Path, keys: tuple[Path, Path]
) -> None:
    (signed / ".git").mkdir()
    (signed / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    verified = modelguard.verify(signed, public_key=keys[1])
    listed = {Path(f.location.path).name for f in verified.report.findings if f.rule_id == "MG318"}
    assert ".git" in listed


def test_wrong_key_is_an_untrusted_signer(signed: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _, public = write_ec_key(other)
    with pytest.raises(SignerError) as info:
        modelguard.verify(signed, public_key=public)
    assert info.value.rule_id == "MG302"


def test_edited_payload_fails_the_signature(signed: Path, keys: tuple[Path, Path]) -> None:
    sig = signed / "model.sig"
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig.write_text(json.dumps(bundle))
    with pytest.raises(SignatureError) as info:
        modelguard.verify(signed, public_key=keys[1])
    assert info.value.rule_id == "MG301"


@pytest.mark.parametrize("content", [b"", b"not json", b"{}", b"[1, 2]", b'{"mediaType": 3}'])
def test_garbage_signature_is_a_bundle_error(
    signed: Path, keys: tuple[Path, Path], content: bytes
) -> None:
    (signed / "model.sig").write_bytes(content)
    with pytest.raises(BundleError) as info:
        modelguard.verify(signed, public_key=keys[1])
    assert info.value.rule_id == "MG303"
    assert info.value.report is not None
    assert not info.value.report.complete or info.value.report.blocking


def test_single_file_model(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(10_000))
    signed = modelguard.sign(weights, private_key=keys[0])
    assert signed.signature == tmp_path / "weights.bin.sig"
    verified = modelguard.verify(weights, public_key=keys[1])
    with verified.open() as handle:
        assert handle.read() == weights.read_bytes()
    weights.write_bytes(b"x" + weights.read_bytes()[1:])
    with pytest.raises(IntegrityError):
        modelguard.verify(weights, public_key=keys[1])


def test_empty_model_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError) as info:
        modelguard.sign(tmp_path / "empty", private_key=keys[0])
    assert info.value.rule_id == "MG316"


def test_open_fails_when_the_file_changed_after_verification(
    signed: Path, keys: tuple[Path, Path]
) -> None:
    verified = modelguard.verify(signed, public_key=keys[1])
    with verified.open("config.json") as handle:
        assert handle.read() == (signed / "config.json").read_bytes()
    verified.check()
    (signed / "config.json").write_text('{"model_type": "evil"}\n')
    with pytest.raises(FileChangedError) as info:
        verified.open("config.json")
    assert info.value.rule_id == "MG317"
    with pytest.raises(FileChangedError):
        verified.check("config.json")
    with pytest.raises(KeyError):
        verified.open("not-signed.bin")


def test_open_refuses_a_file_replaced_by_a_link(signed: Path, keys: tuple[Path, Path]) -> None:
    verified = modelguard.verify(signed, public_key=keys[1])
    copy = signed.parent / "copy.json"
    shutil.copy(signed / "config.json", copy)
    (signed / "config.json").unlink()
    (signed / "config.json").symlink_to(copy)
    with pytest.raises(FileChangedError):
        verified.open("config.json")


def test_expiry_and_bindings(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    model = make_model(tmp_path)
    modelguard.sign(
        model,
        private_key=keys[0],
        repository="acme/bert",
        revision="0123abcd",
        expires="2020-01-01",
    )
    report = verify_report(model, public_key=keys[1]).report
    assert "MG309" in rules(report)
    modelguard.sign(model, private_key=keys[0], repository="acme/bert", revision="0123abcd")
    modelguard.verify(model, public_key=keys[1], repository="acme/bert", revision="0123abcd")
    with pytest.raises(SignerError) as info:
        modelguard.verify(model, public_key=keys[1], repository="evil/bert")
    assert info.value.rule_id == "MG310"
    with pytest.raises(SignerError):
        modelguard.verify(model, public_key=keys[1], revision="ffff")


@pytest.mark.parametrize("algorithm", ["sha256", "blake2b", "blake3"])
def test_algorithms_and_shards_round_trip(
    tmp_path: Path, keys: tuple[Path, Path], algorithm: str
) -> None:
    model = make_model(tmp_path)
    for shard_size in (None, 65_536):
        if algorithm == "blake3" and shard_size:
            continue
        modelguard.sign(model, private_key=keys[0], algorithm=algorithm, shard_size=shard_size)
        verified = modelguard.verify(model, public_key=keys[1])
        assert verified.manifest.serialization.hash_type == algorithm
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (model / "model.safetensors").write_bytes(bytes(data))
    assert "MG311" in rules(verify_report(model, public_key=keys[1]).report)


def test_certificate_signing_with_pins(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=pki["key"], certificate=pki["leaf"])
    verified = modelguard.verify(model, root_ca=pki["ca"], san="publisher@example.org")
    assert verified.signer.method == "certificate"
    modelguard.verify(model, root_ca=pki["ca"], subject="model-publisher")
    with pytest.raises(SignerError):
        modelguard.verify(model, root_ca=pki["ca"], san="mallory@example.org")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SignerError):
        modelguard.verify(model, root_ca=write_pki(other)["ca"])


def test_certificate_that_expired_is_refused_now(tmp_path: Path) -> None:
    import datetime as dt

    from integrity._pki import NOW

    pki = write_pki(
        tmp_path,
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW - dt.timedelta(days=1),
    )
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=pki["key"], certificate=pki["leaf"])
    with pytest.raises(SignerError):
        modelguard.verify(model, root_ca=pki["ca"])


def test_pq_cosignature_is_required_on_request(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from modelguard.signing.keygen import generate_key_pem

    private, public = generate_key_pem("ml-dsa-65")
    (tmp_path / "pq.pem").write_bytes(private)
    (tmp_path / "pq.pub.pem").write_bytes(public)
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=keys[0])
    with pytest.raises(SignatureError) as info:
        modelguard.verify(
            model, public_key=keys[1], pq_public_key=tmp_path / "pq.pub.pem", require_pq=True
        )
    assert info.value.rule_id == "MG308"
    modelguard.sign(model, private_key=keys[0], pq_key=tmp_path / "pq.pem")
    verified = modelguard.verify(
        model, public_key=keys[1], pq_public_key=tmp_path / "pq.pub.pem", require_pq=True
    )
    assert verified.signer.pq_keyid
    # without the PQ policy the co-signature does not disturb a plain verification
    modelguard.verify(model, public_key=keys[1])


def test_trust_options_are_checked(signed: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(modelguard.ConfigError):
        modelguard.verify(signed)
    with pytest.raises(modelguard.ConfigError):
        modelguard.verify(signed, public_key=keys[1], identity="a@b", issuer="https://x")
    with pytest.raises(modelguard.SourceError):
        modelguard.verify(signed, signed / "nope.sig", public_key=keys[1])
    with pytest.raises(modelguard.SourceError):
        modelguard.verify(signed / "missing", public_key=keys[1])


def test_same_model_signs_to_the_same_payload(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    model = make_model(tmp_path)
    first = modelguard.sign(model, private_key=keys[0], output=False)
    second = modelguard.sign(model, private_key=keys[0], output=False)
    payload = [json.loads(b.bundle)["dsseEnvelope"]["payload"] for b in (first, second)]
    assert payload[0] == payload[1]


def _hf_snapshot(tmp_path: Path, model: Path) -> Path:
    """Lay `model` out as a Hugging Face cache repo: blobs named by digest, snapshot links."""
    import hashlib

    repo = tmp_path / "hub" / "models--acme--bert"
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / ("c0ffee" * 6 + "cafe")
    blobs.mkdir(parents=True)
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        rel = path.relative_to(model)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        (blobs / digest).write_bytes(path.read_bytes())
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blobs / digest, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    return snapshot


def test_hugging_face_cache_snapshot_verifies_with_links_allowed(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=keys[0])
    snapshot = _hf_snapshot(tmp_path, model)
    assert (snapshot / "model.sig").is_symlink()
    assert "MG314" in rules(verify_report(snapshot, public_key=keys[1]).report)
    verified = modelguard.verify(snapshot, public_key=keys[1], allow_links=True)
    assert "model.safetensors" in verified.files
    # a blob changed behind its link is caught
    target = (snapshot / "config.json").resolve()
    target.chmod(0o644)
    target.write_text('{"model_type": "evil"}\n')
    report = verify_report(snapshot, public_key=keys[1], allow_links=True).report
    assert "MG311" in rules(report)
