"""EC keys for OMS key and certificate signatures (P-256, P-384, P-521 only).

The OMS algorithm registry allows ECDSA on these three curves, each with its own hash
(P-256/SHA-256, P-384/SHA-384, P-521/SHA-512). RSA and Ed25519 keys are refused with a clear
`ConfigError` rather than failing later (model-signing 1.1.1 crashes on them).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelguard.errors import ConfigError

__all__ = [
    "curve_hash",
    "ec_sign",
    "ec_verify",
    "key_hint",
    "load_private_key",
    "load_public_key",
    "read_source",
]

_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def read_source(source: str | os.PathLike[str] | bytes) -> bytes:
    """Return key or certificate bytes: `bytes` as given, a path's file contents otherwise.

    Raises:
        ConfigError: the file cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(source)!r}: {exc.strerror or exc}") from exc


def _kind(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519, rsa

    kinds: tuple[tuple[type, str], ...] = (
        (rsa.RSAPrivateKey, "RSA"),
        (rsa.RSAPublicKey, "RSA"),
        (ed25519.Ed25519PrivateKey, "Ed25519"),
        (ed25519.Ed25519PublicKey, "Ed25519"),
        (ed448.Ed448PrivateKey, "Ed448"),
        (ed448.Ed448PublicKey, "Ed448"),
        (dsa.DSAPrivateKey, "DSA"),
        (dsa.DSAPublicKey, "DSA"),
    )
    for cls, label in kinds:
        if isinstance(key, cls):
            return label
    return type(key).__name__


def _check_curve(key: Any, what: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        raise ConfigError(
            f"{what} is a {_kind(key)} key; OMS signatures need an EC key on P-256, P-384 "
            "or P-521 (RSA and Ed25519 are not part of the OMS algorithm registry)"
        )
    if key.curve.name not in _CURVE_HASHES:
        raise ConfigError(
            f"{what} uses the curve {key.curve.name}; only P-256, P-384 and P-521 are supported"
        )


def curve_hash(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    """Return the hash ECDSA uses with this key's curve (OMS algorithm registry).

    Raises:
        ConfigError: the curve is not P-256, P-384 or P-521.
    """
    _check_curve(key, "the key")
    return _CURVE_HASHES[key.curve.name]()


def load_private_key(
    source: str | os.PathLike[str] | bytes, password: bytes | None = None
) -> ec.EllipticCurvePrivateKey:
    """Load a PEM (or DER) EC private key.

    Args:
        source: a path to the key file, or its bytes.
        password: the key's password, if it is encrypted.

    Returns:
        The private key.

    Raises:
        ConfigError: unreadable, wrong password, not a private key, or not on an OMS curve.
    """
    data = read_source(source)
    try:
        if b"-----BEGIN" in data:
            key: Any = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"cannot load the private key: {exc}") from exc
    _check_curve(key, "the private key")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def load_public_key(source: str | os.PathLike[str] | bytes) -> ec.EllipticCurvePublicKey:
    """Load a PEM/DER EC public key, or take the key of a PEM/DER certificate.

    Args:
        source: a path to the file, or its bytes.

    Returns:
        The public key.

    Raises:
        ConfigError: unreadable, not a key or certificate, or not on an OMS curve.
    """
    data = read_source(source)
    key: Any
    try:
        if b"-----BEGIN CERTIFICATE" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            try:
                key = serialization.load_der_public_key(data)
            except ValueError:
                from cryptography import x509

                key = x509.load_der_x509_certificate(data).public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"cannot load the public key: {exc}") from exc
    _check_curve(key, "the public key")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """Return the OMS `publicKey.hint` of a key.

    It is the lowercase hex SHA-256 of the SubjectPublicKeyInfo PEM text, header, footer and
    newlines included, which is what model-signing 1.1 writes (research note §2.1).
    """
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def ec_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """Sign data with ECDSA using the curve's hash; returns a DER signature.

    Raises:
        ConfigError: the curve is not P-256, P-384 or P-521.
    """
    return key.sign(data, ec.ECDSA(curve_hash(key)))


def ec_verify(
    public_key: ec.EllipticCurvePublicKey,
    signature: bytes,
    data: bytes,
    *,
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> bool:
    """Check a DER ECDSA signature over data.

    Args:
        public_key: the signer's key.
        signature: the DER signature.
        data: the signed bytes (a PAE).
        hash_algorithm: override the curve's hash (only for the legacy v0.2 certificate form,
            which always used SHA-256).

    Returns:
        True when the signature verifies, False otherwise (including malformed signatures).
    """
    algorithm = hash_algorithm or curve_hash(public_key)
    try:
        public_key.verify(signature, data, ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError):
        return False
    return True
