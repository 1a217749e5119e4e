"""The real OMS vectors (model-signing v0.2.0-v1.1.0) and the spec's invalid bundles."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from integrity.shared_dir import OMS_DIR, needs_oms
from modelguard.errors import BundleError, LegacyFormatError, SignatureError, SignerError
from modelguard.signing.bundle import Bundle, parse_bundle
from modelguard.signing.certs import load_certificates
from modelguard.signing.envelope import verify_bundle
from modelguard.signing.keys import load_public_key

from ._helpers_s import ec_key, make_pki

pytestmark = needs_oms

IDENTITY = "stefanb@us.ibm.com"
ISSUER = "https://sigstore.verify.ibm.com/oauth2"
VERSIONS = ("v0.3.1", "v1.0.0", "v1.0.1", "v1.1.0")
VECTORS = [
    "v0.2.0-certificate",
    *(f"{v}-{m}" for v in VERSIONS for m in ("certificate", "elliptic-key", "sigstore")),
]


def _bundle(name: str) -> Bundle:
    return parse_bundle((OMS_DIR / "vectors" / name / "model.sig").read_bytes())


def _policy(material: str) -> dict[str, Any]:
    keys = OMS_DIR / "keys" / "certificate"
    if material == "public_key":
        return {"public_keys": [load_public_key(keys / "signing-key-pub.pem")]}
    if material == "x509_chain":
        return {"roots": load_certificates(keys / "ca-cert.pem")}
    return {
        "identity": IDENTITY,
        "issuer": ISSUER,
        "trusted_root": OMS_DIR / "prod_trusted_root.json",
    }


def _tampered(name: str, **changes: Any) -> Bundle:
    document = json.loads((OMS_DIR / "vectors" / name / "model.sig").read_bytes())
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return parse_bundle(json.dumps(document).encode())


@pytest.mark.parametrize("name", VECTORS)
def test_vector_verifies(name: str) -> None:
    bundle = _bundle(name)
    legacy = name.startswith("v0.2.0")
    result = verify_bundle(bundle, allow_legacy=legacy, **_policy(bundle.material))
    assert result.statement["_type"] == "https://in-toto.io/Statement/v1"
    assert result.payload == bundle.payload
    assert result.problems == ()
    assert result.signer.legacy is legacy
    expected_method = {"public_key": "key", "x509_chain": "certificate", "certificate": "sigstore"}
    assert result.signer.method == expected_method[bundle.material]
    if bundle.material == "public_key":
        assert result.signer.key_hint == (
            "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e"
        )
    if bundle.material == "certificate":
        assert result.signer.san == IDENTITY
        assert result.signer.issuer == ISSUER


def test_legacy_vector_refused_without_switch() -> None:
    bundle = _bundle("v0.2.0-certificate")
    with pytest.raises(LegacyFormatError) as info:
        verify_bundle(bundle, **_policy(bundle.material))
    assert info.value.rule_id == "MG304"


@pytest.mark.parametrize(
    ("folder", "name", "error"),
    [
        ("invalid", "empty", BundleError),
        ("invalid", "missing-envelope", BundleError),
        ("invalid", "missing-tlog-entries", BundleError),
        ("invalid", "missing-verification-material", BundleError),
        ("invalid-payload", "wrong-predicate", BundleError),
    ],
)
def test_spec_invalid_vectors_rejected(folder: str, name: str, error: type[Exception]) -> None:
    data = (
        OMS_DIR / "spec" / "test-vectors" / "v1.0" / folder / f"{name}.bundle.json"
    ).read_bytes()
    with pytest.raises(error) as info:
        bundle = parse_bundle(data)
        verify_bundle(bundle, **_policy(bundle.material))
    assert info.value.rule_id == "MG303"  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["key", "certificate", "sigstore"])
def test_spec_valid_vectors_verify(kind: str) -> None:
    data = (
        OMS_DIR / "spec" / "test-vectors" / "v1.0" / "valid" / f"{kind}.bundle.json"
    ).read_bytes()
    bundle = parse_bundle(data)
    verify_bundle(bundle, **_policy(bundle.material))


@pytest.mark.parametrize("version", ["v0.3.1", "v1.1.0"])
def test_wrong_key_refused(version: str) -> None:
    with pytest.raises(SignerError) as info:
        verify_bundle(_bundle(f"{version}-elliptic-key"), public_keys=[ec_key().public_key()])
    assert info.value.rule_id == "MG302"


def test_wrong_root_refused() -> None:
    with pytest.raises(SignerError):
        verify_bundle(_bundle("v1.1.0-certificate"), roots=[make_pki().root])


def test_intermediate_is_not_a_root_substitute_for_wrong_ca() -> None:
    # Trusting only the intermediate is enough (it is a CA), trusting the leaf's own name is not.
    roots = load_certificates(OMS_DIR / "keys" / "certificate" / "int-ca-cert.pem")
    verify_bundle(_bundle("v1.1.0-certificate"), roots=roots)


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [("mallory@example.com", ISSUER), (IDENTITY, "https://accounts.google.com")],
)
def test_wrong_sigstore_identity_or_issuer(identity: str, issuer: str) -> None:
    with pytest.raises(SignerError) as info:
        verify_bundle(
            _bundle("v1.1.0-sigstore"),
            identity=identity,
            issuer=issuer,
            trusted_root=OMS_DIR / "prod_trusted_root.json",
        )
    assert info.value.rule_id == "MG302"


@pytest.mark.parametrize("name", ["v1.1.0-elliptic-key", "v1.1.0-certificate", "v1.1.0-sigstore"])
def test_tampered_payload_refused(name: str) -> None:
    bundle = _tampered(name)
    with pytest.raises(SignatureError) as info:
        verify_bundle(bundle, **_policy(bundle.material))
    assert info.value.rule_id == "MG301"


def test_legacy_cert_vector_tampered_fails_even_with_switch() -> None:
    bundle = _tampered("v0.2.0-certificate")
    with pytest.raises(SignatureError):
        verify_bundle(bundle, allow_legacy=True, **_policy(bundle.material))


@pytest.mark.parametrize(
    ("name", "policy"),
    [
        ("v1.1.0-elliptic-key", "x509_chain"),
        ("v1.1.0-certificate", "public_key"),
        ("v1.1.0-sigstore", "x509_chain"),
        ("v1.1.0-certificate", "certificate"),
    ],
)
def test_policy_must_fit_material(name: str, policy: str) -> None:
    with pytest.raises(SignerError):
        verify_bundle(_bundle(name), **_policy(policy))


def test_missing_hint_falls_back_to_signature(tmp_path: Path) -> None:
    document = json.loads((OMS_DIR / "vectors" / "v1.1.0-elliptic-key" / "model.sig").read_bytes())
    document["verificationMaterial"]["publicKey"] = {}
    bundle = parse_bundle(json.dumps(document).encode())
    assert bundle.key_hint is None
    verify_bundle(bundle, **_policy("public_key"))
    with pytest.raises(SignatureError):
        verify_bundle(
            bundle,
            public_keys=[
                ec_key(
                    load_public_key(OMS_DIR / "keys" / "certificate" / "signing-key-pub.pem").curve
                ).public_key()
            ],
        )


def test_sigstore_extra_signature_reported_and_first_still_verified() -> None:
    path = OMS_DIR / "vectors" / "v1.1.0-sigstore" / "model.sig"
    document = json.loads(path.read_bytes())
    document["dsseEnvelope"]["signatures"].append({"sig": "AAAA", "keyid": "extra"})
    bundle = parse_bundle(json.dumps(document).encode())
    result = verify_bundle(bundle, **_policy("certificate"))
    assert [p.rule_id for p in result.problems] == ["MG307"]


def test_sigstore_default_trusted_root() -> None:
    result = verify_bundle(_bundle("v1.1.0-sigstore"), identity=IDENTITY, issuer=ISSUER)
    assert result.signer.method == "sigstore"
