"""Certificate mode with generated PKIs: time, usage, path and pin checks."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from modelguard.errors import ConfigError, SignatureError, SignerError
from modelguard.signing.bundle import parse_bundle
from modelguard.signing.certs import certificate_fingerprint, load_certificates, verify_chain
from modelguard.signing.envelope import sign_statement, verify_bundle

from ._helpers_s import DAY, NOW, Pki, ec_key, make_cert, make_pki, pem, statement_for, tiny_model


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def _sign_and_verify(tmp_path: Path, pki: Pki, **policy: Any) -> Any:
    data = sign_statement(
        statement_for(tiny_model(tmp_path)), private_key=pki.leaf_key, certificate_chain=pki.chain()
    )
    return verify_bundle(parse_bundle(data), roots=[pki.root], **policy)


def test_round_trip_sets_signer(tmp_path: Path, pki: Pki) -> None:
    result = _sign_and_verify(tmp_path, pki)
    assert result.signer.method == "certificate"
    assert result.signer.subject == "CN=signer"
    assert result.signer.san == "signer@example.com"
    assert result.signer.issuer == "CN=test-intermediate"
    assert result.signer.fingerprint == certificate_fingerprint(pki.leaf)


@pytest.mark.parametrize(
    "pins",
    [
        {"subject": "CN=signer"},
        {"subject": "signer"},
        {"san": "signer@example.com"},
        {"fingerprint": "FINGERPRINT"},
        {"subject": "signer", "san": "signer@example.com", "fingerprint": "FINGERPRINT"},
    ],
)
def test_pins_accept(tmp_path: Path, pki: Pki, pins: dict[str, str]) -> None:
    fp = certificate_fingerprint(pki.leaf)
    colons = ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()
    pins = {k: (colons if v == "FINGERPRINT" else v) for k, v in pins.items()}
    _sign_and_verify(tmp_path, pki, **pins)


@pytest.mark.parametrize(
    "pins",
    [
        {"subject": "CN=mallory"},
        {"subject": "signe"},
        {"san": "mallory@example.com"},
        {"fingerprint": "00" * 32},
    ],
)
def test_pins_refuse(tmp_path: Path, pki: Pki, pins: dict[str, str]) -> None:
    with pytest.raises(SignerError) as info:
        _sign_and_verify(tmp_path, pki, **pins)
    assert info.value.rule_id == "MG302"


@pytest.mark.parametrize(
    ("leaf_options", "reason"),
    [
        ({"not_before": NOW - 20 * DAY, "not_after": NOW - 10 * DAY}, "expired"),
        ({"not_before": NOW + 10 * DAY, "not_after": NOW + 20 * DAY}, "not valid yet"),
        ({"eku": (ExtendedKeyUsageOID.SERVER_AUTH,)}, "codeSigning"),
        ({"key_usage": "cert_sign"}, "digitalSignature"),
        ({"key_usage": None}, "key usage"),
    ],
)
def test_bad_leaf_refused(
    tmp_path: Path, pki: Pki, leaf_options: dict[str, Any], reason: str
) -> None:
    bad = pki.with_leaf(**leaf_options)
    with pytest.raises(SignerError, match=reason):
        _sign_and_verify(tmp_path, bad)


@pytest.mark.parametrize(
    "eku",
    [None, (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,), (ExtendedKeyUsageOID.CODE_SIGNING,)],
)
def test_leaf_eku_variants_accepted(tmp_path: Path, pki: Pki, eku: Any) -> None:
    _sign_and_verify(tmp_path, pki.with_leaf(eku=eku))


def test_expired_chain_valid_at_explicit_time(tmp_path: Path, pki: Pki) -> None:
    old = pki.with_leaf(not_before=NOW - 20 * DAY, not_after=NOW - 10 * DAY)
    data = sign_statement(
        statement_for(tiny_model(tmp_path)), private_key=old.leaf_key, certificate_chain=old.chain()
    )
    verify_bundle(parse_bundle(data), roots=[old.root], at=NOW - 15 * DAY)


def test_expired_intermediate_refused(pki: Pki) -> None:
    int_key = ec_key()
    intermediate = make_cert(
        "old-int",
        int_key,
        (pki.root, pki.root_key),
        ca=True,
        not_after=NOW - DAY,
        not_before=NOW - 10 * DAY,
    )
    leaf = make_cert("signer", ec_key(), (intermediate, int_key))
    with pytest.raises(SignerError, match="expired"):
        verify_chain([leaf, intermediate], [pki.root], at=NOW)


def test_intermediate_without_ca_flag_refused(pki: Pki) -> None:
    int_key = ec_key()
    not_ca = make_cert("not-ca", int_key, (pki.root, pki.root_key), ca=False, key_usage="cert_sign")
    leaf = make_cert("signer", ec_key(), (not_ca, int_key))
    with pytest.raises(SignerError, match="trusted root"):
        verify_chain([leaf, not_ca], [pki.root], at=NOW)


def test_intermediate_without_cert_sign_refused(pki: Pki) -> None:
    int_key = ec_key()
    ca = make_cert(
        "no-certsign", int_key, (pki.root, pki.root_key), ca=True, key_usage="digital_signature"
    )
    leaf = make_cert("signer", ec_key(), (ca, int_key))
    with pytest.raises(SignerError):
        verify_chain([leaf, ca], [pki.root], at=NOW)


def test_path_length_enforced() -> None:
    root_key = ec_key()
    root = make_cert("root", root_key, ca=True, path_length=0)
    int_key = ec_key()
    intermediate = make_cert("int", int_key, (root, root_key), ca=True)
    leaf = make_cert("signer", ec_key(), (intermediate, int_key))
    with pytest.raises(SignerError):
        verify_chain([leaf, intermediate], [root], at=NOW)
    # Without the intermediate hop the same root may issue the leaf directly.
    direct = make_cert("signer", ec_key(), (root, root_key))
    assert verify_chain([direct], [root], at=NOW) == direct


def test_missing_intermediate_refused(pki: Pki) -> None:
    with pytest.raises(SignerError):
        verify_chain([pki.leaf], [pki.root], at=NOW)


def test_self_signed_leaf_not_trusted(pki: Pki) -> None:
    key = ec_key()
    self_signed = make_cert("signer", key)
    with pytest.raises(SignerError):
        verify_chain([self_signed], [pki.root], at=NOW)


def test_no_roots_is_config_error(pki: Pki) -> None:
    with pytest.raises(ConfigError):
        verify_chain(pki.chain(), [], at=NOW)


def test_leaf_must_match_signing_key(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="does not match"):
        sign_statement(
            statement_for(tiny_model(tmp_path)), private_key=ec_key(), certificate_chain=pki.chain()
        )


def test_signature_by_other_key_than_leaf(tmp_path: Path, pki: Pki) -> None:
    other = pki.with_leaf()
    data = sign_statement(
        statement_for(tiny_model(tmp_path)), private_key=pki.leaf_key, certificate_chain=pki.chain()
    )
    swapped = data.replace(
        base64.b64encode(pki.leaf.public_bytes(Encoding.DER)),
        base64.b64encode(other.leaf.public_bytes(Encoding.DER)),
    )
    assert swapped != data
    with pytest.raises(SignatureError):
        verify_bundle(parse_bundle(swapped), roots=[pki.root])


def test_load_certificates_pem_bundle_and_der(tmp_path: Path, pki: Pki) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(pem(pki.leaf) + pem(pki.intermediate))
    assert load_certificates(path) == [pki.leaf, pki.intermediate]
    assert load_certificates(pki.root.public_bytes(Encoding.DER)) == [pki.root]
    with pytest.raises(ConfigError):
        load_certificates(b"not a certificate")


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_leaf_curves(tmp_path: Path, curve: ec.EllipticCurve) -> None:
    pki = make_pki(curve)
    assert isinstance(pki.leaf, x509.Certificate)
    _sign_and_verify(tmp_path, pki)
