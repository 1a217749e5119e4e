"""X.509 certificate chains for OMS certificate-mode signatures, with identity pins.

Unlike model-signing 1.1.1 (research note §6 items 7-8), the chain is checked at the
verification time (not at the leaf's own notBefore), the leaf must be usable for code signing,
and the caller can pin the leaf's subject, a SAN or its fingerprint. Path building and link
signatures are delegated to `cryptography.x509.verification` with extension policies that
express the code-signing profile; validity, key usage and pins are checked here first so that
each failure has a precise reason.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelguard.errors import ConfigError, SignerError
from modelguard.signing.keys import read_source

__all__ = [
    "MAX_CHAIN_DEPTH",
    "certificate_fingerprint",
    "describe_certificate",
    "load_certificates",
    "san_values",
    "verify_chain",
]

# Named limit: the longest path (leaf, intermediates, root) accepted.
MAX_CHAIN_DEPTH = 8
_SUPPORTED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


def load_certificates(source: str | os.PathLike[str] | bytes) -> list[x509.Certificate]:
    """Load one or more certificates from a PEM file (or a single DER certificate).

    Args:
        source: a path or the file's bytes.

    Returns:
        The certificates in file order.

    Raises:
        ConfigError: unreadable, or no certificate in it.
    """
    data = read_source(source)
    try:
        if b"-----BEGIN" in data:
            certificates = x509.load_pem_x509_certificates(data)
        else:
            certificates = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(f"cannot load certificates: {exc}") from exc
    if not certificates:
        raise ConfigError("no certificate found")
    return certificates


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """Return the lowercase hex SHA-256 of a certificate's DER encoding."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def san_values(certificate: x509.Certificate) -> list[str]:
    """Return the e-mail, URI and DNS subject alternative names of a certificate."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
        names.extend(str(value) for value in extension.value.get_values_for_type(kind))
    return names


def describe_certificate(certificate: x509.Certificate) -> str:
    """Return a short human label for a certificate (its RFC 4514 subject or its serial)."""
    subject = certificate.subject.rfc4514_string()
    return subject or f"serial {certificate.serial_number:x}"


def _check_validity(certificate: x509.Certificate, at: datetime, role: str) -> None:
    label = f"{role} certificate {describe_certificate(certificate)!r}"
    if at < certificate.not_valid_before_utc:
        raise SignerError(
            f"{label} is not valid yet at {at.isoformat()} "
            f"(valid from {certificate.not_valid_before_utc.isoformat()})"
        )
    if at > certificate.not_valid_after_utc:
        raise SignerError(
            f"{label} expired on {certificate.not_valid_after_utc.isoformat()} "
            f"(checked at {at.isoformat()})"
        )


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    label = f"signing certificate {describe_certificate(leaf)!r}"
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise SignerError(f"{label} has no key usage extension (digitalSignature needed)") from None
    if not usage.digital_signature:
        raise SignerError(f"{label} is not allowed digitalSignature (key usage)")
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        extended = None
    if extended is not None and not (
        ExtendedKeyUsageOID.CODE_SIGNING in extended
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in extended
    ):
        raise SignerError(f"{label} is not allowed codeSigning (extended key usage)")
    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca and (extended is None or ExtendedKeyUsageOID.CODE_SIGNING not in extended):
        # A CA certificate (a trusted root or an intermediate) signs certificates, not models;
        # one that signs directly must say so with the codeSigning extended key usage (the
        # model-signing test certificates do).
        raise SignerError(f"{label} is a CA certificate without the codeSigning key usage")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _SUPPORTED_CURVES:
        raise SignerError(f"{label} does not hold an EC P-256, P-384 or P-521 key")


def _check_pins(
    leaf: x509.Certificate, subject: str | None, san: str | None, fingerprint: str | None
) -> None:
    label = f"signing certificate {describe_certificate(leaf)!r}"
    if subject is not None:
        common_names = [
            str(attribute.value)
            for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
        if subject != leaf.subject.rfc4514_string() and subject not in common_names:
            raise SignerError(f"{label} does not have the pinned subject {subject!r}")
    if san is not None and san not in san_values(leaf):
        raise SignerError(f"{label} does not have the pinned subject alternative name {san!r}")
    if fingerprint is not None:
        wanted = fingerprint.replace(":", "").strip().lower()
        actual = certificate_fingerprint(leaf)
        if wanted != actual:
            raise SignerError(f"{label} has fingerprint {actual}, not the pinned {wanted}")


def _require_ca(policy: Any, certificate: x509.Certificate, value: Any) -> None:
    # Called by cryptography for every issuing certificate on the path.
    if value is None or not value.ca:
        raise ValueError(f"{describe_certificate(certificate)} is not a CA (basicConstraints)")


def _require_cert_sign(policy: Any, certificate: x509.Certificate, value: Any) -> None:
    if value is not None and not value.key_cert_sign:
        raise ValueError(
            f"{describe_certificate(certificate)} may not sign certificates (keyUsage)"
        )


def verify_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    subject: str | None = None,
    san: str | None = None,
    fingerprint: str | None = None,
) -> x509.Certificate:
    """Verify a signing certificate chain against trusted roots and optional pins.

    Args:
        chain: the leaf first, then intermediates (as carried in the bundle).
        roots: the trusted root certificates; the path must end at one of them.
        at: the time the chain must be valid at (timezone-aware; naive means UTC).
        subject: pin: the leaf subject as an RFC 4514 string, or equal to one of its CNs.
        san: pin: one of the leaf's e-mail, URI or DNS subject alternative names.
        fingerprint: pin: SHA-256 of the leaf's DER, hex (case and colons ignored).

    Returns:
        The verified leaf certificate.

    Raises:
        ConfigError: no roots were given.
        SignerError: (MG302) a certificate is expired or not yet valid at `at`, the leaf is
            not usable for code signing, no valid path reaches a root, or a pin differs.
    """
    from cryptography.x509 import verification

    if not roots:
        raise ConfigError("certificate verification needs at least one trusted root")
    if not chain:
        raise SignerError("the bundle holds no signing certificate")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    leaf, intermediates = chain[0], list(chain[1:])
    _check_validity(leaf, at, "signing")
    for certificate in intermediates:
        _check_validity(certificate, at, "intermediate")
    _check_leaf_usage(leaf)
    criticality = verification.Criticality.AGNOSTIC
    ca_policy = (
        verification.ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, criticality, _require_ca)
        .may_be_present(x509.KeyUsage, criticality, _require_cert_sign)
    )
    ee_policy = verification.ExtensionPolicy.permit_all()
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(roots)))
            .time(at)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        verifier.verify(leaf, intermediates)
    except verification.VerificationError as exc:
        raise SignerError(
            f"the certificate chain of {describe_certificate(leaf)!r} does not lead to a "
            f"trusted root: {exc}"
        ) from exc
    _check_pins(leaf, subject, san, fingerprint)
    return leaf
