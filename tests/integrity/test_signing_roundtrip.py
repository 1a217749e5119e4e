"""Key-mode signing round trips, bundle parsing, ML-DSA co-signatures and interop."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from modelguard.errors import (
    BundleError,
    ConfigError,
    LegacyFormatError,
    SignatureError,
    SignerError,
)
from modelguard.results import Severity
from modelguard.signing.bundle import BUNDLE_MEDIA_TYPE, DsseSignature, build_bundle, parse_bundle
from modelguard.signing.dsse import PAYLOAD_TYPE, canonical_json, legacy_pae, pae
from modelguard.signing.envelope import sign_statement, verify_bundle
from modelguard.signing.keys import ec_sign, ec_verify, key_hint, load_private_key, load_public_key
from modelguard.signing.pq import (
    generate_pq_key,
    load_pq_private_key,
    load_pq_public_key,
    pq_keyid,
    pq_sign,
    pq_verify,
)

from ._helpers_s import ec_key, make_pki, pem, statement_for, tiny_model

CURVES = [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()]


def _signed(tmp_path: Path, key: ec.EllipticCurvePrivateKey | None = None, **kwargs: Any) -> bytes:
    return sign_statement(
        statement_for(tiny_model(tmp_path)), private_key=key or ec_key(), **kwargs
    )


def _edit(data: bytes, edit: Any) -> bytes:
    document = json.loads(data)
    edit(document)
    return json.dumps(document).encode()


# -- DSSE ---------------------------------------------------------------------------------


def test_pae_layout() -> None:
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    assert pae(PAYLOAD_TYPE, b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


def test_legacy_pae_layout() -> None:
    assert legacy_pae("t", b"a\n'") == b'DSSEV1 1 t 3 b"a\\n\'"'
    assert legacy_pae("t", b"ab") != pae("t", b"ab")


def test_canonical_json() -> None:
    assert (
        canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    )
    with pytest.raises(ConfigError):
        canonical_json({"x": float("nan")})


# -- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
def test_key_round_trip(tmp_path: Path, curve: ec.EllipticCurve) -> None:
    key = ec_key(curve)
    bundle = parse_bundle(_signed(tmp_path, key))
    assert bundle.material == "public_key"
    assert bundle.key_hint == key_hint(key.public_key())
    result = verify_bundle(bundle, public_keys=[ec_key(curve).public_key(), key.public_key()])
    assert result.signer.method == "key"
    assert result.signer.key_hint == key_hint(key.public_key())
    assert result.problems == ()
    assert result.statement["predicateType"] == "https://model_signing/signature/v1.0"


@pytest.mark.parametrize(
    ("curve", "size"), [(ec.SECP256R1(), 32), (ec.SECP384R1(), 48), (ec.SECP521R1(), 64)]
)
def test_curve_hash(curve: ec.EllipticCurve, size: int) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = ec_key(curve)
    signature = ec_sign(key, b"data")
    algorithm = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[size]
    digest = hashes.Hash(algorithm)
    digest.update(b"data")
    key.public_key().verify(signature, digest.finalize(), ec.ECDSA(Prehashed(algorithm)))
    assert ec_verify(key.public_key(), signature, b"data")
    assert not ec_verify(key.public_key(), signature, b"other")
    assert not ec_verify(key.public_key(), b"garbage", b"data")


def test_key_hint_is_sha256_of_pem(tmp_path: Path) -> None:
    import hashlib

    key = ec_key()
    assert key_hint(key.public_key()) == hashlib.sha256(pem(key.public_key())).hexdigest()


def test_load_keys(tmp_path: Path) -> None:
    key = ec_key(ec.SECP384R1())
    (tmp_path / "k.pem").write_bytes(pem(key))
    (tmp_path / "k.pub").write_bytes(pem(key.public_key()))
    assert key_hint(load_private_key(tmp_path / "k.pem").public_key()) == key_hint(key.public_key())
    assert key_hint(load_public_key(tmp_path / "k.pub")) == key_hint(key.public_key())
    pki = make_pki()
    assert key_hint(load_public_key(pem(pki.leaf))) == key_hint(pki.leaf_key.public_key())
    from cryptography.hazmat.primitives import serialization

    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert load_private_key(encrypted, b"pw").curve.name == "secp384r1"
    with pytest.raises(ConfigError):
        load_private_key(encrypted, b"wrong")
    with pytest.raises(ConfigError):
        load_private_key(tmp_path / "missing.pem")


@pytest.mark.parametrize(
    "factory",
    [lambda: rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate],
    ids=["RSA", "Ed25519"],
)
def test_rsa_and_ed25519_refused(factory: Any) -> None:
    key = factory()
    name = "RSA" if isinstance(key, rsa.RSAPrivateKey) else "Ed25519"
    with pytest.raises(ConfigError, match=name):
        load_private_key(pem(key))
    with pytest.raises(ConfigError, match=name):
        load_public_key(pem(key.public_key()))
    with pytest.raises(ConfigError):
        sign_statement({"_type": "x"}, private_key=key)


def test_secp256k1_refused() -> None:
    with pytest.raises(ConfigError, match="secp256k1"):
        load_private_key(pem(ec_key(ec.SECP256K1())))


# -- verification failures ----------------------------------------------------------------


def test_wrong_key(tmp_path: Path) -> None:
    with pytest.raises(SignerError):
        verify_bundle(parse_bundle(_signed(tmp_path)), public_keys=[ec_key().public_key()])


def test_tampered_payload(tmp_path: Path) -> None:
    key = ec_key()
    data = _signed(tmp_path, key)

    def tamper(document: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
        statement["predicate"]["resources"][0]["digest"] = "0" * 64
        document["dsseEnvelope"]["payload"] = base64.b64encode(canonical_json(statement)).decode()

    with pytest.raises(SignatureError) as info:
        verify_bundle(parse_bundle(_edit(data, tamper)), public_keys=[key.public_key()])
    assert info.value.rule_id == "MG301"


def test_hint_removed_still_needs_signature(tmp_path: Path) -> None:
    key = ec_key()
    data = _edit(_signed(tmp_path, key), lambda d: d["verificationMaterial"].update(publicKey={}))
    result = verify_bundle(parse_bundle(data), public_keys=[key.public_key()])
    assert result.signer.key_hint == key_hint(key.public_key())
    with pytest.raises(SignatureError):
        verify_bundle(parse_bundle(data), public_keys=[ec_key().public_key()])


def test_legacy_pae_key_signature_needs_switch(tmp_path: Path) -> None:
    key = ec_key()
    payload = canonical_json(statement_for(tiny_model(tmp_path)))
    signature = ec_sign(key, legacy_pae(PAYLOAD_TYPE, payload))
    data = build_bundle(
        payload=payload,
        signatures=[DsseSignature(signature, "")],
        key_hint=key_hint(key.public_key()),
    )
    with pytest.raises(LegacyFormatError):
        verify_bundle(parse_bundle(data), public_keys=[key.public_key()])
    result = verify_bundle(parse_bundle(data), public_keys=[key.public_key()], allow_legacy=True)
    assert result.signer.legacy


def test_garbage_second_signature_reported(tmp_path: Path) -> None:
    key = ec_key()
    data = _edit(
        _signed(tmp_path, key),
        lambda d: d["dsseEnvelope"]["signatures"].append({"sig": "AAAA", "keyid": "other"}),
    )
    result = verify_bundle(parse_bundle(data), public_keys=[key.public_key()])
    assert [p.rule_id for p in result.problems] == ["MG307"]
    assert ("keyid", "other") in result.problems[0].evidence


def test_garbage_first_signature_fails(tmp_path: Path) -> None:
    key = ec_key()
    data = _edit(
        _signed(tmp_path, key),
        lambda d: d["dsseEnvelope"]["signatures"].insert(0, {"sig": "AAAA", "keyid": ""}),
    )
    with pytest.raises(SignatureError):
        verify_bundle(parse_bundle(data), public_keys=[key.public_key()])


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"public_keys": "KEY", "roots": "ROOT"},
        {"identity": "a@example.com"},
        {"public_keys": "KEY", "identity": "a@example.com", "issuer": "https://x"},
    ],
)
def test_exactly_one_policy(tmp_path: Path, policy: dict[str, Any]) -> None:
    key = ec_key()
    values = {"KEY": [key.public_key()], "ROOT": [make_pki().root]}
    policy = {k: values.get(v, v) if isinstance(v, str) else v for k, v in policy.items()}
    with pytest.raises(ConfigError):
        verify_bundle(parse_bundle(_signed(tmp_path, key)), **policy)


def test_payload_type_and_statement_checked(tmp_path: Path) -> None:
    key = ec_key()
    data = _signed(tmp_path, key)
    wrong_type = _edit(data, lambda d: d["dsseEnvelope"].update(payloadType="text/plain"))
    with pytest.raises(BundleError, match="payloadType"):
        verify_bundle(parse_bundle(wrong_type), public_keys=[key.public_key()])
    payload = canonical_json({"_type": "https://in-toto.io/Statement/v0.1"})
    bad = build_bundle(
        payload=payload,
        signatures=[DsseSignature(ec_sign(key, pae(PAYLOAD_TYPE, payload)))],
        key_hint=key_hint(key.public_key()),
    )
    with pytest.raises(BundleError, match="_type"):
        verify_bundle(parse_bundle(bad), public_keys=[key.public_key()])


# -- bundle parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(extra=1), "extra"),
        (
            lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.2"),
            "mediaType",
        ),
        (
            lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}),
            "exactly one",
        ),
        (lambda d: d["verificationMaterial"].pop("publicKey"), "exactly one"),
        (lambda d: d["dsseEnvelope"].update(payload="!!!"), "base64"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "signatures"),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(sig=""), "empty"),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(keyid=3), "keyid"),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(extra="x"), "extra"),
        (lambda d: d["dsseEnvelope"].pop("payloadType"), "payloadType"),
        (lambda d: d["verificationMaterial"].update(tlogEntries={}), "tlogEntries"),
    ],
)
def test_parse_bundle_strict(tmp_path: Path, edit: Any, field: str) -> None:
    data = _edit(_signed(tmp_path), edit)
    with pytest.raises(BundleError, match=field) as info:
        parse_bundle(data)
    assert info.value.rule_id == "MG303"


@pytest.mark.parametrize("data", [b"", b"[]", b"\xff", b"{" * 100000, b'"x"'])
def test_parse_bundle_not_a_bundle(data: bytes) -> None:
    with pytest.raises(BundleError):
        parse_bundle(data)


def test_build_bundle_shape(tmp_path: Path) -> None:
    data = _signed(tmp_path)
    assert not data.endswith(b"\n")
    document = json.loads(data)
    assert document["mediaType"] == BUNDLE_MEDIA_TYPE
    assert document["verificationMaterial"]["tlogEntries"] == []
    assert document["dsseEnvelope"]["signatures"][0]["keyid"] == ""
    assert document["dsseEnvelope"]["payloadType"] == PAYLOAD_TYPE
    statement = statement_for(tmp_path / "model")
    assert base64.b64decode(document["dsseEnvelope"]["payload"]) == canonical_json(statement)


def test_sign_statement_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        sign_statement({}, private_key=None)
    with pytest.raises(ConfigError):
        sign_statement({}, private_key=ec_key(), sigstore_token="t")
    with pytest.raises(ConfigError):
        sign_statement({}, sigstore_token="t", certificate_chain=[make_pki().leaf])


# -- ML-DSA co-signature ------------------------------------------------------------------


def test_pq_round_trip(tmp_path: Path) -> None:
    key, pq_key = ec_key(), generate_pq_key()
    bundle = parse_bundle(_signed(tmp_path, key, pq_key=pq_key))
    assert len(bundle.signatures) == 2
    assert bundle.signatures[1].keyid == pq_keyid(pq_key.public_key())
    assert bundle.signatures[1].keyid.startswith("mldsa65:")
    result = verify_bundle(
        bundle,
        public_keys=[key.public_key()],
        pq_public_keys=[pq_key.public_key()],
        require_pq=True,
    )
    assert result.signer.pq_keyid == pq_keyid(pq_key.public_key())
    assert result.problems == ()
    # Without ML-DSA keys the co-signature is not checked, but it is listed (info only).
    plain = verify_bundle(bundle, public_keys=[key.public_key()])
    assert plain.signer.pq_keyid is None
    assert [(p.rule_id, p.severity) for p in plain.problems] == [("MG307", Severity.INFO)]


def test_require_pq_without_cosignature(tmp_path: Path) -> None:
    key = ec_key()
    bundle = parse_bundle(_signed(tmp_path, key))
    with pytest.raises(SignatureError) as info:
        verify_bundle(
            bundle,
            public_keys=[key.public_key()],
            pq_public_keys=[generate_pq_key().public_key()],
            require_pq=True,
        )
    assert info.value.rule_id == "MG308"
    with pytest.raises(ConfigError):
        verify_bundle(bundle, public_keys=[key.public_key()], require_pq=True)


def test_tampered_pq_signature(tmp_path: Path) -> None:
    key, pq_key = ec_key(), generate_pq_key()

    def flip(document: dict[str, Any]) -> None:
        entry = document["dsseEnvelope"]["signatures"][1]
        raw = bytearray(base64.b64decode(entry["sig"]))
        raw[10] ^= 1
        entry["sig"] = base64.b64encode(bytes(raw)).decode()

    bundle = parse_bundle(_edit(_signed(tmp_path, key, pq_key=pq_key), flip))
    result = verify_bundle(
        bundle, public_keys=[key.public_key()], pq_public_keys=[pq_key.public_key()]
    )
    assert [p.rule_id for p in result.problems] == ["MG308"]
    assert result.signer.pq_keyid is None
    with pytest.raises(SignatureError) as info:
        verify_bundle(
            bundle,
            public_keys=[key.public_key()],
            pq_public_keys=[pq_key.public_key()],
            require_pq=True,
        )
    assert info.value.rule_id == "MG308"


def test_pq_cosignature_by_untrusted_key(tmp_path: Path) -> None:
    key = ec_key()
    bundle = parse_bundle(_signed(tmp_path, key, pq_key=generate_pq_key()))
    result = verify_bundle(
        bundle, public_keys=[key.public_key()], pq_public_keys=[generate_pq_key().public_key()]
    )
    assert [p.rule_id for p in result.problems] == ["MG308"]


def test_pq_key_files(tmp_path: Path) -> None:
    pq_key = generate_pq_key()
    (tmp_path / "pq.pem").write_bytes(pem(pq_key))
    (tmp_path / "pq.pub").write_bytes(pem(pq_key.public_key()))
    loaded = load_pq_private_key(tmp_path / "pq.pem")
    public = load_pq_public_key(tmp_path / "pq.pub")
    assert pq_keyid(public) == pq_keyid(pq_key) == pq_keyid(loaded.public_key())
    assert (
        load_pq_public_key(public.public_bytes_raw()).public_bytes_raw()
        == public.public_bytes_raw()
    )
    signature = pq_sign(loaded, b"data")
    assert pq_verify(public, signature, b"data")
    assert not pq_verify(public, signature, b"other")
    with pytest.raises(ConfigError):
        load_pq_private_key(pem(ec_key()))
    with pytest.raises(ConfigError):
        load_pq_public_key(pem(ec_key().public_key()))


# -- interoperability ---------------------------------------------------------------------


def _schema_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from integrity.shared_dir import OMS_DIR

    folder = OMS_DIR / "spec" / "schemas-v1.0"
    if not folder.is_dir():
        pytest.skip(f"OMS schemas not present at {folder}")
    resources = []
    for path in sorted(folder.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], referencing.Resource.from_contents(schema)))
    registry = referencing.Registry().with_resources(resources)
    bundle_schema = json.loads((folder / "bundle.schema.json").read_text())
    statement_schema = json.loads((folder / "statement.schema.json").read_text())
    return (
        jsonschema.Draft202012Validator(bundle_schema, registry=registry),
        jsonschema.Draft202012Validator(statement_schema, registry=registry),
    )


@pytest.mark.parametrize("mode", ["key", "certificate", "key+pq"])
def test_bundles_match_oms_schemas(tmp_path: Path, mode: str) -> None:
    bundle_validator, statement_validator = _schema_validator()
    pki = make_pki(ec.SECP384R1())
    if mode == "certificate":
        data = _signed(tmp_path, pki.leaf_key, certificate_chain=pki.chain())
    else:
        data = _signed(tmp_path, pki.leaf_key, pq_key=generate_pq_key() if "pq" in mode else None)
    document = json.loads(data)
    bundle_validator.validate(document)
    statement_validator.validate(json.loads(base64.b64decode(document["dsseEnvelope"]["payload"])))
    # The validators can fail: a broken bundle does not validate.
    document["verificationMaterial"].pop(next(iter(document["verificationMaterial"])))
    assert not bundle_validator.is_valid(document)


@pytest.mark.parametrize("mode", ["key", "certificate"])
@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
def test_model_signing_accepts_our_bundles(
    tmp_path: Path, mode: str, curve: ec.EllipticCurve
) -> None:
    verifying = pytest.importorskip("model_signing.verifying")
    model = tiny_model(tmp_path)
    pki = make_pki(curve)
    signature = tmp_path / "model.sig"
    if mode == "key":
        signature.write_bytes(sign_statement(statement_for(model), private_key=pki.leaf_key))
        (tmp_path / "key.pub").write_bytes(pem(pki.leaf_key.public_key()))
        config = verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "key.pub")
    else:
        signature.write_bytes(
            sign_statement(
                statement_for(model), private_key=pki.leaf_key, certificate_chain=pki.chain()
            )
        )
        (tmp_path / "root.pem").write_bytes(pem(pki.root))
        config = verifying.Config().use_certificate_verifier(
            certificate_chain=[tmp_path / "root.pem"]
        )
    config.verify(model, signature)
    (model / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(ValueError):
        config.verify(model, signature)


def test_envelope_import_is_light() -> None:
    code = (
        "import sys, modelguard.signing.envelope, modelguard.signing.sigstore_support;"
        "heavy = sorted(m for m in ('sigstore', 'pydantic', 'sigstore_models', 'model_signing')"
        " if m in sys.modules);"
        "print(','.join(heavy))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert output == ""


def test_default_trusted_root_is_embedded_prod_root() -> None:
    from modelguard.signing.sigstore_support import default_trusted_root

    path = Path(default_trusted_root())
    assert path.is_file()
    assert "tuf-repo-cdn.sigstore.dev" in str(path)
    assert json.loads(path.read_text())["mediaType"].startswith(
        "application/vnd.dev.sigstore.trustedroot"
    )
