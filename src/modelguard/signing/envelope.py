"""Verify and create the DSSE envelope of an OMS signature (key, certificate, Sigstore).

`verify_bundle` establishes who signed the payload and returns the in-toto statement; it does
not interpret the manifest (that is `Manifest.from_statement`). Beyond what OMS verifiers
check, it refuses the legacy v0.2 encoding unless asked, checks certificates at the
verification time with optional identity pins, reports every DSSE signature it did not verify
(MG307) and checks an optional ML-DSA-65 co-signature (MG308).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelguard.errors import (
    BundleError,
    ConfigError,
    LegacyFormatError,
    SignatureError,
    SignerError,
)
from modelguard.results import Severity
from modelguard.signing.bundle import Bundle, DsseSignature, build_bundle
from modelguard.signing.dsse import PAYLOAD_TYPE, canonical_json, legacy_pae, pae
from modelguard.signing.keys import curve_hash, ec_sign, ec_verify, key_hint
from modelguard.signing.pq import PQ_KEYID_PREFIX, pq_keyid, pq_sign, pq_verify
from modelguard.signing.types import Problem, SignerInfo

if TYPE_CHECKING:
    # x509 costs ~18 ms to import: only certificate mode loads it (key mode stays fast).
    from cryptography import x509

__all__ = ["VerifiedEnvelope", "sign_statement", "verify_bundle"]

_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# The OMS v1.0 predicate and the legacy v0.1 one (refused or accepted by the manifest reader).
_PREDICATE_TYPES = frozenset(
    {"https://model_signing/signature/v1.0", "https://model_signing/Digests/v0.1"}
)
_MATERIAL_FOR_MODE = {"key": "public_key", "certificate": "x509_chain", "sigstore": "certificate"}
_MATERIAL_NAMES = {
    "public_key": "a public-key signature",
    "x509_chain": "a certificate-chain signature",
    "certificate": "a Sigstore keyless signature",
}


@dataclass(frozen=True)
class VerifiedEnvelope:
    """The outcome of a successful envelope verification.

    Attributes:
        statement: the decoded in-toto statement (a JSON object).
        payload: the exact signed payload bytes.
        signer: who signed, as established by the check.
        problems: MG307 (unverified extra signature) and MG308 (bad co-signature) observations.
    """

    statement: dict[str, Any]
    payload: bytes
    signer: SignerInfo
    problems: tuple[Problem, ...]


def _mode(
    public_keys: Sequence[Any], roots: Sequence[Any], identity: str | None, issuer: str | None
) -> str:
    modes = [
        name
        for name, given in (
            ("key", bool(public_keys)),
            ("certificate", bool(roots)),
            ("sigstore", identity is not None or issuer is not None),
        )
        if given
    ]
    if len(modes) != 1:
        raise ConfigError(
            "give exactly one trust policy: public keys, certificate roots, or a Sigstore "
            f"identity and issuer (got {', '.join(modes) or 'none'})"
        )
    if modes[0] == "sigstore" and not (identity and issuer):
        raise ConfigError("Sigstore verification needs both an identity and an OIDC issuer")
    return modes[0]


def _statement(bundle: Bundle) -> dict[str, Any]:
    # Structural checks come before any cryptography: nothing here is trusted yet, and a
    # wrong payload must be reported as a malformed bundle (OMS invalid-payload vectors).
    if bundle.payload_type != PAYLOAD_TYPE:
        raise BundleError(
            f"invalid signature bundle: dsseEnvelope.payloadType: expected {PAYLOAD_TYPE!r}, "
            f"found {bundle.payload_type!r}"
        )
    try:
        statement = json.loads(bundle.payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"invalid signature bundle: payload is not JSON ({exc})") from exc
    if not isinstance(statement, dict):
        raise BundleError("invalid signature bundle: payload is not a JSON object")
    if statement.get("_type") != _STATEMENT_TYPE:
        raise BundleError(
            f"invalid signature bundle: payload._type: expected {_STATEMENT_TYPE!r}, "
            f"found {statement.get('_type')!r}"
        )
    if statement.get("predicateType") not in _PREDICATE_TYPES:
        raise BundleError(
            "invalid signature bundle: payload.predicateType: not an OMS predicate "
            f"({statement.get('predicateType')!r})"
        )
    return statement


def _legacy_outcome(legacy_ok: bool, allow_legacy: bool, what: str) -> bool:
    """Return True when the legacy encoding is accepted; raise when it is not."""
    if not legacy_ok:
        raise SignatureError(f"the signature does not verify with {what}")
    if not allow_legacy:
        raise LegacyFormatError(
            "the signature uses the legacy model-signing v0.2 DSSE encoding; "
            "verify with the legacy switch to accept it"
        )
    return True


def _spki(key: Any) -> bytes:
    raw: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return raw


def _verify_key(
    bundle: Bundle, public_keys: Sequence[ec.EllipticCurvePublicKey], allow_legacy: bool
) -> SignerInfo:
    candidates = list(public_keys)
    for key in candidates:
        curve_hash(key)  # ConfigError for keys outside the OMS registry
    if bundle.key_hint is not None:
        candidates = [key for key in candidates if key_hint(key) == bundle.key_hint.lower()]
        if not candidates:
            raise SignerError(
                f"the bundle was signed by the key with hint {bundle.key_hint}, "
                "which is none of the trusted keys"
            )
    elif bundle.key_raw is not None:
        # Pre-1.1 bundles carry the PEM itself; it is a hint too (unauthenticated).
        from modelguard.signing.keys import load_public_key

        try:
            embedded = _spki(load_public_key(bundle.key_raw))
        except ConfigError:
            embedded = None
        if embedded is not None:
            candidates = [key for key in candidates if _spki(key) == embedded]
            if not candidates:
                raise SignerError("the bundle names a public key that is none of the trusted keys")
    first = bundle.signatures[0].sig
    standard = pae(bundle.payload_type, bundle.payload)
    for key in candidates:
        if ec_verify(key, first, standard):
            return SignerInfo(method="key", key_hint=key_hint(key))
    legacy = legacy_pae(bundle.payload_type, bundle.payload)
    for key in candidates:
        if ec_verify(key, first, legacy):
            _legacy_outcome(True, allow_legacy, "")
            return SignerInfo(method="key", key_hint=key_hint(key), legacy=True)
    raise SignatureError("the signature does not verify with the trusted key(s)")


def _load_chain(bundle: Bundle) -> list[x509.Certificate]:
    from cryptography import x509

    chain = []
    for index, der in enumerate(bundle.certificates):
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise BundleError(
                f"invalid signature bundle: certificate {index} is not DER X.509 ({exc})"
            ) from exc
    return chain


def _certificate_signer(leaf: x509.Certificate, method: str, issuer: str | None) -> SignerInfo:
    from modelguard.signing.certs import certificate_fingerprint, san_values

    sans = san_values(leaf)
    return SignerInfo(
        method=method,
        subject=leaf.subject.rfc4514_string() or None,
        san=", ".join(sans) or None,
        issuer=issuer,
        fingerprint=certificate_fingerprint(leaf),
    )


def _verify_certificate(
    bundle: Bundle,
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    subject: str | None,
    san: str | None,
    fingerprint: str | None,
    allow_legacy: bool,
) -> SignerInfo:
    from modelguard.signing.certs import describe_certificate, verify_chain

    chain = _load_chain(bundle)
    leaf_key = chain[0].public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
        raise SignerError(
            f"signing certificate {describe_certificate(chain[0])!r} does not hold an EC key"
        )
    try:
        curve_hash(leaf_key)
    except ConfigError as exc:
        raise SignerError(str(exc)) from exc
    first = bundle.signatures[0].sig
    legacy = False
    if not ec_verify(leaf_key, first, pae(bundle.payload_type, bundle.payload)):
        # model-signing v0.2 signed its malformed PAE with SHA-256 whatever the curve.
        legacy_bytes = legacy_pae(bundle.payload_type, bundle.payload)
        legacy_ok = ec_verify(
            leaf_key, first, legacy_bytes, hash_algorithm=hashes.SHA256()
        ) or ec_verify(leaf_key, first, legacy_bytes)
        legacy = _legacy_outcome(legacy_ok, allow_legacy, "the signing certificate's key")
    leaf = verify_chain(chain, roots, at=at, subject=subject, san=san, fingerprint=fingerprint)
    info = _certificate_signer(leaf, "certificate", leaf.issuer.rfc4514_string() or None)
    if legacy:
        info = SignerInfo(**{**_asdict(info), "legacy": True})
    return info


def _asdict(info: SignerInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in SignerInfo.__slots__}


def _first_signature_only(raw: bytes) -> bytes:
    # sigstore-python accepts exactly one DSSE signature; the others are checked by us.
    document = json.loads(raw)
    document["dsseEnvelope"]["signatures"] = document["dsseEnvelope"]["signatures"][:1]
    return json.dumps(document).encode("utf-8")


def _verify_sigstore(
    bundle: Bundle,
    identity: str,
    issuer: str,
    trusted_root: str | os.PathLike[str] | None,
) -> SignerInfo:
    from modelguard.signing.sigstore_support import verify_sigstore

    raw = bundle.raw if len(bundle.signatures) == 1 else _first_signature_only(bundle.raw)
    result = verify_sigstore(raw, identity=identity, issuer=issuer, trusted_root=trusted_root)
    if result.payload_type != bundle.payload_type or result.payload != bundle.payload:
        raise SignatureError("sigstore-python verified a different payload than the bundle's")
    return _certificate_signer(result.certificate, "sigstore", issuer)


def _extra_signatures(
    bundle: Bundle, pq_public_keys: Sequence[Any]
) -> tuple[str | None, list[Problem]]:
    signed = pae(bundle.payload_type, bundle.payload)
    by_id = {pq_keyid(key): key for key in pq_public_keys}
    verified: str | None = None
    problems: list[Problem] = []
    for index, signature in enumerate(bundle.signatures[1:], start=1):
        keyid = signature.keyid or ""
        evidence: tuple[tuple[str, str], ...] = (("index", str(index)), ("keyid", keyid))
        if keyid.startswith(PQ_KEYID_PREFIX):
            if not pq_public_keys:
                # Nothing to check it against and not required: it adds no trust either way,
                # but it is listed rather than ignored.
                problems.append(
                    Problem(
                        "MG307",
                        "An ML-DSA co-signature is present but was not checked (no ML-DSA "
                        "public key was given).",
                        None,
                        evidence,
                        Severity.INFO,
                    )
                )
                continue
            key = by_id.get(keyid)
            if key is None:
                problems.append(
                    Problem(
                        "MG308", "The ML-DSA co-signature is by an untrusted key.", None, evidence
                    )
                )
            elif pq_verify(key, signature.sig, signed):
                verified = verified or keyid
            else:
                problems.append(
                    Problem("MG308", "The ML-DSA co-signature does not verify.", None, evidence)
                )
            continue
        problems.append(
            Problem(
                "MG307",
                f"The envelope carries an extra signature (number {index + 1}) that was not "
                "verified.",
                None,
                evidence,
            )
        )
    return verified, problems


def verify_bundle(
    bundle: Bundle,
    *,
    public_keys: Sequence[ec.EllipticCurvePublicKey] = (),
    roots: Sequence[x509.Certificate] = (),
    subject: str | None = None,
    san: str | None = None,
    fingerprint: str | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trusted_root: str | os.PathLike[str] | None = None,
    allow_legacy: bool = False,
    pq_public_keys: Sequence[Any] = (),
    require_pq: bool = False,
    at: datetime | None = None,
) -> VerifiedEnvelope:
    """Verify the DSSE envelope of a parsed bundle under exactly one trust policy.

    Args:
        bundle: the parsed bundle.
        public_keys: key mode: the trusted EC public keys.
        roots: certificate mode: the trusted root certificates.
        subject: certificate mode pin on the leaf subject (RFC 4514 or CN).
        san: certificate mode pin on a leaf subject alternative name.
        fingerprint: certificate mode pin on the leaf's SHA-256 fingerprint.
        identity: Sigstore mode: the expected certificate identity (SAN).
        issuer: Sigstore mode: the expected OIDC issuer.
        trusted_root: Sigstore mode: a `trusted_root.json` (default: sigstore-python's).
        allow_legacy: accept the model-signing v0.2 DSSE encoding (`signer.legacy` is set).
        pq_public_keys: trusted ML-DSA-65 public keys for co-signatures.
        require_pq: fail unless a co-signature by one of `pq_public_keys` verifies.
        at: certificate mode: the time the chain must be valid at (default: now, UTC).

    Returns:
        The statement, the payload, the signer and any MG307/MG308 problems.

    Raises:
        ConfigError: not exactly one trust policy, or `require_pq` without ML-DSA keys.
        BundleError: (MG303) wrong payload type, or the payload is not an OMS statement.
        SignatureError: (MG301) the first signature does not verify; (MG308) with
            `require_pq`, no trusted co-signature verifies.
        SignerError: (MG302) the signature is not by the trusted key, chain or identity, or
            the policy does not fit the bundle's kind of material.
        LegacyFormatError: (MG304) only the legacy encoding verifies and `allow_legacy` is off.
    """
    mode = _mode(public_keys, roots, identity, issuer)
    if require_pq and not pq_public_keys:
        raise ConfigError("requiring an ML-DSA co-signature needs at least one ML-DSA public key")
    if bundle.material != _MATERIAL_FOR_MODE[mode]:
        raise SignerError(
            f"the bundle holds {_MATERIAL_NAMES.get(bundle.material, bundle.material)}, "
            f"which a {mode} trust policy cannot verify"
        )
    statement = _statement(bundle)
    if mode == "key":
        signer = _verify_key(bundle, public_keys, allow_legacy)
    elif mode == "certificate":
        when = at or datetime.now(UTC)
        signer = _verify_certificate(
            bundle,
            roots,
            at=when,
            subject=subject,
            san=san,
            fingerprint=fingerprint,
            allow_legacy=allow_legacy,
        )
    else:
        assert identity is not None and issuer is not None
        signer = _verify_sigstore(bundle, identity, issuer, trusted_root)
    verified_pq, problems = _extra_signatures(bundle, pq_public_keys)
    if require_pq and verified_pq is None:
        raise SignatureError(
            "no trusted ML-DSA-65 co-signature verifies over the payload", rule_id="MG308"
        )
    if verified_pq is not None:
        signer = SignerInfo(**{**_asdict(signer), "pq_keyid": verified_pq})
    return VerifiedEnvelope(
        statement=statement, payload=bundle.payload, signer=signer, problems=tuple(problems)
    )


def sign_statement(
    statement: Mapping[str, Any],
    *,
    private_key: ec.EllipticCurvePrivateKey | None = None,
    certificate_chain: Sequence[x509.Certificate] = (),
    pq_key: Any = None,
    sigstore_token: str | None = None,
    staging: bool = False,
) -> bytes:
    """Sign an in-toto statement and return the OMS bundle bytes.

    The payload is the statement's RFC 8785 canonical JSON, so signing the same statement
    twice gives the same payload.

    Args:
        statement: the in-toto statement.
        private_key: key or certificate mode: the EC private key (P-256, P-384, P-521).
        certificate_chain: certificate mode: the leaf (matching `private_key`) first, then
            intermediates; written as given.
        pq_key: an ML-DSA-65 private key for a co-signature over the same PAE.
        sigstore_token: Sigstore keyless mode: an OIDC identity token (needs the network).
        staging: Sigstore mode: use the staging instance.

    Returns:
        The bundle JSON bytes.

    Raises:
        ConfigError: not exactly one of `private_key` and `sigstore_token`, a chain without a
            key, a leaf that does not match the key, a key outside the OMS registry, or a
            Sigstore signing failure.
    """
    if (private_key is None) == (sigstore_token is None):
        raise ConfigError("sign with exactly one of a private key and a Sigstore identity token")
    if certificate_chain and private_key is None:
        raise ConfigError("a certificate chain needs the private key of its leaf")
    payload = canonical_json(dict(statement))
    signed = pae(PAYLOAD_TYPE, payload)
    extra: list[DsseSignature] = []
    if pq_key is not None:
        extra.append(DsseSignature(sig=pq_sign(pq_key, signed), keyid=pq_keyid(pq_key)))
    if sigstore_token is not None:
        from modelguard.signing.sigstore_support import sign_sigstore

        raw = sign_sigstore(payload, sigstore_token, staging=staging)
        if not extra:
            return raw
        document = json.loads(raw)
        document["dsseEnvelope"]["signatures"].extend(
            {"sig": _b64(s.sig), "keyid": s.keyid} for s in extra
        )
        return json.dumps(document).encode("utf-8")
    if private_key is None:
        raise ConfigError("give a private key or a Sigstore identity token to sign with")
    first = DsseSignature(sig=ec_sign(private_key, signed), keyid="")
    if not certificate_chain:
        return build_bundle(
            payload=payload, signatures=[first, *extra], key_hint=key_hint(private_key.public_key())
        )
    if _spki(certificate_chain[0].public_key()) != _spki(private_key.public_key()):
        from modelguard.signing.certs import describe_certificate

        raise ConfigError(
            f"the signing certificate {describe_certificate(certificate_chain[0])!r} does not "
            "match the private key"
        )
    ders = [c.public_bytes(serialization.Encoding.DER) for c in certificate_chain]
    return build_bundle(payload=payload, signatures=[first, *extra], certificates=ders)


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode("ascii")
