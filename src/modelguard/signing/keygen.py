"""Creating signing key pairs (`modelguard keygen`): EC P-256/384/521 and ML-DSA-65."""

from __future__ import annotations

from modelguard.errors import ConfigError

__all__ = ["KEY_TYPES", "generate_key_pem"]

KEY_TYPES: tuple[str, ...] = ("p256", "p384", "p521", "ml-dsa-65")


def generate_key_pem(kind: str, password: bytes | None = None) -> tuple[bytes, bytes]:
    """Return a new `(private key PEM, public key PEM)` of type `kind`.

    The private key is PKCS#8, encrypted with `password` when one is given.

    Raises:
        ConfigError: unknown type, or ML-DSA without support in `cryptography`.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    curves: dict[str, ec.EllipticCurve] = {
        "p256": ec.SECP256R1(),
        "p384": ec.SECP384R1(),
        "p521": ec.SECP521R1(),
    }
    key: object
    if kind in curves:
        key = ec.generate_private_key(curves[kind])
    elif kind == "ml-dsa-65":
        from modelguard.signing.pq import generate_pq_key

        key = generate_pq_key()
    else:
        raise ConfigError(f"unknown key type {kind!r}; choose one of {', '.join(KEY_TYPES)}")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bytes(private_pem), bytes(public_pem)
