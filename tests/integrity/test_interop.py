"""Interoperability with the reference `model-signing` package and the OMS spec data.

Both directions always run (model-signing is a test dependency): signatures made by
`model_signing` verify with modelguard and ours verify with `model_signing`; tampered copies
fail in modelguard always and in `model_signing` where it catches them. The real signatures in
`../shared/interop/oms` (five released versions, key, certificate and Sigstore) verify offline.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import modelguard
from integrity._pki import make_model, write_ec_key, write_pki
from integrity.shared_dir import OMS_DIR, needs_oms
from modelguard import BundleError, LegacyFormatError, VerificationError
from modelguard.verification import verify_report

model_signing = pytest.importorskip("model_signing")
from model_signing import signing as ms_signing  # noqa: E402
from model_signing import verifying as ms_verifying  # noqa: E402

KEYS = OMS_DIR / "keys" / "certificate"
IDENTITY = "stefanb@us.ibm.com"
ISSUER = "https://sigstore.verify.ibm.com/oauth2"


def ms_verify_key(model: Path, sig: Path, public: Path) -> None:
    ms_verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, sig)


def ms_verify_cert(model: Path, sig: Path, chain: list[Path]) -> None:
    ms_verifying.Config().use_certificate_verifier(certificate_chain=chain).verify(model, sig)


def tamper_flip(model: Path) -> None:
    target = model / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[1234] ^= 0x40
    target.write_bytes(bytes(data))


def tamper_add(model: Path) -> None:
    (model / "modeling_evil.py").write_text("import os\nos.system('id')\n")


def tamper_remove(model: Path) -> None:
    (model / "sub" / "extra.bin").unlink()


def tamper_rename(model: Path) -> None:
    (model / "tokenizer.json").rename(model / "tokenizer_v2.json")


def tamper_swap_link(model: Path) -> None:
    copy = model.parent / "config-copy.json"
    shutil.copy(model / "config.json", copy)
    (model / "config.json").unlink()
    (model / "config.json").symlink_to(copy)


TAMPERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "byte-flip": (tamper_flip, "MG311"),
    "added-file": (tamper_add, "MG313"),
    "removed-file": (tamper_remove, "MG312"),
    "renamed-file": (tamper_rename, "MG312"),
    "swapped-symlink": (tamper_swap_link, "MG314"),
}


# -- model_signing signs, modelguard verifies ------------------------------------------------


def test_reference_key_signature_verifies_with_modelguard(tmp_path: Path) -> None:
    private, public = write_ec_key(tmp_path, curve=None)
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=private).sign(model, sig)
    verified = modelguard.verify(model, sig, public_key=public)
    assert len(verified.files) == 4


def test_reference_certificate_signature_verifies_with_modelguard(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    ms_signing.Config().use_certificate_signer(
        private_key=pki["key"], signing_certificate=pki["leaf"], certificate_chain=[pki["ca"]]
    ).sign(model, sig)
    verified = modelguard.verify(model, sig, root_ca=pki["ca"], san="publisher@example.org")
    assert verified.signer.method == "certificate"


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_tampered_reference_signature_fails_in_modelguard(tmp_path: Path, case: str) -> None:
    private, public = write_ec_key(tmp_path)
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=private).sign(model, sig)
    tamper, rule = TAMPERS[case]
    tamper(model)
    outcome = verify_report(model, sig, public_key=public)
    assert outcome.verified is None
    assert rule in {f.rule_id for f in outcome.report.findings}
    with pytest.raises(Exception):  # noqa: B017 - the reference raises ValueError and others
        ms_verify_key(model, sig, public)


# -- modelguard signs, model_signing verifies ------------------------------------------------


@pytest.mark.parametrize("curve", ["p256", "p384", "p521"])
def test_modelguard_key_signature_verifies_with_reference(tmp_path: Path, curve: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    curves = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
    private, public = write_ec_key(tmp_path, curve=curves[curve])
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=private, output=sig, repository="acme/m", revision="r1")
    ms_verify_key(model, sig, public)


def test_modelguard_certificate_signature_verifies_with_reference(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=pki["key"], certificate=pki["leaf"], output=sig)
    ms_verify_cert(model, sig, [pki["ca"]])


def test_modelguard_pq_cosigned_bundle_still_verifies_with_reference(tmp_path: Path) -> None:
    from modelguard.signing.keygen import generate_key_pem

    private, public = write_ec_key(tmp_path)
    pq_private, _ = generate_key_pem("ml-dsa-65")
    (tmp_path / "pq.pem").write_bytes(pq_private)
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=private, pq_key=tmp_path / "pq.pem", output=sig)
    ms_verify_key(model, sig, public)


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_tampered_modelguard_signature_fails_in_both(tmp_path: Path, case: str) -> None:
    private, public = write_ec_key(tmp_path)
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=private, output=sig)
    tamper, rule = TAMPERS[case]
    tamper(model)
    assert rule in {f.rule_id for f in verify_report(model, sig, public_key=public).report.findings}
    with pytest.raises(Exception):  # noqa: B017 - the reference raises ValueError and others
        ms_verify_key(model, sig, public)


# -- the real vectors ----------------------------------------------------------------------


def _copy_vector(name: str, tmp_path: Path) -> Path:
    source = OMS_DIR / "vectors" / name
    target = tmp_path / name
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        os.chmod(path, 0o644)
    return target


def _vector_target(folder: Path) -> tuple[Path, Path]:
    """Return (model path, signature path): v0.3.1 and v1.0.0 key vectors sign one file."""
    sig = folder / "model.sig"
    name = folder.name
    if name in ("v0.3.1-elliptic-key", "v1.0.0-elliptic-key"):
        return folder / "signme-1", sig
    return folder, sig


def _trust(name: str) -> dict[str, object]:
    if name.endswith(("elliptic-key", "-key")):
        return {"public_key": KEYS / "signing-key-pub.pem"}
    if name.endswith("certificate"):
        return {"root_ca": KEYS / "ca-cert.pem"}
    return {
        "identity": IDENTITY,
        "issuer": ISSUER,
        "trusted_root": OMS_DIR / "prod_trusted_root.json",
    }


VECTORS = sorted(p.name for p in (OMS_DIR / "vectors").glob("v*")) if OMS_DIR.is_dir() else []


@needs_oms
@pytest.mark.parametrize("name", VECTORS)
def test_every_reference_vector_verifies_offline(name: str, tmp_path: Path) -> None:
    folder = _copy_vector(name, tmp_path)
    model, sig = _vector_target(folder)
    options = {**_trust(name), "ignore": ["ignore-me"]}
    if name.startswith("v0.2.0"):
        with pytest.raises(LegacyFormatError):
            modelguard.verify(model, sig, **options)
        options["allow_legacy"] = True
        verified = modelguard.verify(model, sig, **options)
        assert any(f.rule_id == "MG304" for f in verified.report.findings)
    else:
        verified = modelguard.verify(model, sig, **options)
    assert verified.files


@needs_oms
@pytest.mark.parametrize("name", VECTORS)
@pytest.mark.parametrize("case", ["flip", "add", "remove", "rename"])
def test_tampered_reference_vectors_fail(name: str, case: str, tmp_path: Path) -> None:
    folder = _copy_vector(name, tmp_path)
    model, sig = _vector_target(folder)
    single = model.is_file()
    if case == "flip":
        target = model if single else folder / "signme-1"
        target.write_bytes(b"X" + target.read_bytes()[1:])
    elif case == "add":
        if single:
            pytest.skip("a single-file model has no folder to add to")
        (folder / "extra.py").write_text("x = 1\n")
    elif case == "remove":
        (model if single else folder / "signme-2").unlink()
    else:
        if single:
            pytest.skip("renaming the single signed file removes the model")
        (folder / "signme-2").rename(folder / "signme-3")
    options = {**_trust(name), "ignore": ["ignore-me"], "allow_legacy": True}
    with pytest.raises((VerificationError, modelguard.SourceError)):
        modelguard.verify(model, sig, **options)


@needs_oms
@pytest.mark.parametrize("kind", ["key", "certificate", "sigstore"])
def test_spec_valid_vectors_verify_against_the_v110_files(kind: str, tmp_path: Path) -> None:
    # the spec's key and certificate bundles sign the files of the v1.1.0 key vector (its
    # signme-1 ends with a newline), the sigstore bundle those of the v1.1.0 sigstore vector
    files = "v1.1.0-sigstore" if kind == "sigstore" else "v1.1.0-elliptic-key"
    folder = _copy_vector(files, tmp_path)
    bundle = OMS_DIR / "spec" / "test-vectors" / "v1.0" / "valid" / f"{kind}.bundle.json"
    shutil.copy(bundle, folder / "model.sig")
    modelguard.verify(folder, **_trust(f"x-{kind}"), ignore=["ignore-me"])


INVALID = (
    sorted((OMS_DIR / "spec" / "test-vectors" / "v1.0").glob("invalid*/*.json"))
    if OMS_DIR.is_dir()
    else []
)


@needs_oms
@pytest.mark.parametrize("bundle", INVALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_spec_invalid_vectors_are_rejected(bundle: Path, tmp_path: Path) -> None:
    folder = _copy_vector("v1.1.0-sigstore", tmp_path)
    shutil.copy(bundle, folder / "model.sig")
    for trust in (_trust("x-sigstore"), _trust("x-elliptic-key"), _trust("x-certificate")):
        with pytest.raises(VerificationError) as info:
            modelguard.verify(folder, ignore=["ignore-me"], **trust)
        assert info.value.rule_id in {"MG301", "MG302", "MG303"}
    assert bundle.exists()


@needs_oms
def test_our_bundles_validate_against_the_oms_schemas(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    schemas = {
        p.name: json.loads(p.read_text())
        for p in (OMS_DIR / "spec" / "schemas-v1.0").glob("*.schema.json")
    }
    registry = referencing.Registry().with_resources(
        [(schema["$id"], referencing.Resource.from_contents(schema)) for schema in schemas.values()]
    )
    bundle_validator = jsonschema.Draft202012Validator(
        schemas["bundle.schema.json"], registry=registry
    )
    statement_validator = jsonschema.Draft202012Validator(
        schemas["statement.schema.json"], registry=registry
    )
    private, _ = write_ec_key(tmp_path)
    pki = write_pki(tmp_path)
    model = make_model(tmp_path)
    for options in (
        {"private_key": private},
        {"private_key": private, "shard_size": 100_000},
        {"private_key": private, "algorithm": "blake2b", "expires": "2030-01-01"},
        {"private_key": pki["key"], "certificate": pki["leaf"]},
    ):
        signed = modelguard.sign(model, output=False, **options)
        bundle = json.loads(signed.bundle)
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        for validator, document in ((bundle_validator, bundle), (statement_validator, statement)):
            errors = list(validator.iter_errors(document))
            assert not errors, (options, [e.message for e in errors[:3]])


def test_bundle_errors_are_never_value_errors(tmp_path: Path) -> None:
    private, public = write_ec_key(tmp_path)
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=private)
    (model / "model.sig").write_text(
        '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}'
    )
    with pytest.raises(BundleError) as info:
        modelguard.verify(model, public_key=public)
    assert not isinstance(info.value, ValueError)


@needs_oms
def test_sigstore_vector_verifies_with_the_embedded_trusted_root(tmp_path: Path) -> None:
    """Without --trusted-root, the root that ships inside sigstore-python is used (offline)."""
    folder = _copy_vector("v1.1.0-sigstore", tmp_path)
    verified = modelguard.verify(folder, identity=IDENTITY, issuer=ISSUER, ignore=["ignore-me"])
    assert verified.signer.method == "sigstore"
    with pytest.raises(modelguard.SignerError):
        modelguard.verify(
            folder, identity="mallory@example.org", issuer=ISSUER, ignore=["ignore-me"]
        )


def test_gaps_the_reference_leaves_open_are_closed(tmp_path: Path) -> None:
    """With links allowed, model-signing never enumerates a linked folder, so files added
    under one pass its verification; modelguard refuses the linked folder (MG314)."""
    from model_signing import hashing as ms_hashing

    private, public = write_ec_key(tmp_path)
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    links = ms_hashing.Config().set_allow_symlinks(True)
    ms_signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(links).sign(
        model, sig
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "modeling_evil.py").write_text("import os\n")
    (model / "plugins").symlink_to(outside, target_is_directory=True)
    ms_verifying.Config().use_elliptic_key_verifier(public_key=public).set_hashing_config(
        ms_hashing.Config().set_allow_symlinks(True)
    ).verify(model, sig)  # the reference passes
    report = verify_report(model, sig, public_key=public, allow_links=True).report
    assert "MG314" in {f.rule_id for f in report.findings}
