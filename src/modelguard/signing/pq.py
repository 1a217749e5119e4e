"""ML-DSA-65 (FIPS 204) co-signatures.

A modelguard bundle may carry, after the ECDSA signature, a second DSSE signature made with
ML-DSA-65 over the same PAE, with `keyid = "mldsa65:" + sha256(raw public key)`. OMS verifiers
read only the first signature and ignore it; modelguard verifies it when given ML-DSA keys, so
the signature stays trustworthy if ECDSA is broken later.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from modelguard.errors import ConfigError
from modelguard.signing.keys import read_source

__all__ = [
    "PQ_KEYID_PREFIX",
    "generate_pq_key",
    "load_pq_private_key",
    "load_pq_public_key",
    "pq_keyid",
    "pq_sign",
    "pq_verify",
]

PQ_KEYID_PREFIX = "mldsa65:"


def _mldsa() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa
    except ImportError as exc:  # cryptography < 47 has no ML-DSA
        raise ConfigError(
            "ML-DSA co-signatures need a cryptography release with ML-DSA support (>= 47)"
        ) from exc
    return mldsa


def generate_pq_key() -> Any:
    """Return a new ML-DSA-65 private key (`MLDSA65PrivateKey`).

    Raises:
        ConfigError: cryptography lacks ML-DSA.
    """
    return _mldsa().MLDSA65PrivateKey.generate()


def load_pq_private_key(
    source: str | os.PathLike[str] | bytes, password: bytes | None = None
) -> Any:
    """Load an ML-DSA-65 private key from PKCS#8 PEM or DER (a path or bytes).

    Raises:
        ConfigError: unreadable, wrong password, or not an ML-DSA-65 private key.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    mldsa = _mldsa()
    data = read_source(source)
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"cannot load the ML-DSA private key: {exc}") from exc
    if not isinstance(key, mldsa.MLDSA65PrivateKey):
        raise ConfigError(f"the post-quantum key is a {type(key).__name__}, not ML-DSA-65")
    return key


def load_pq_public_key(source: str | os.PathLike[str] | bytes) -> Any:
    """Load an ML-DSA-65 public key from SPKI PEM/DER or the raw 1952-byte encoding.

    Raises:
        ConfigError: unreadable or not an ML-DSA-65 public key.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    mldsa = _mldsa()
    data = read_source(source)
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        elif len(data) == 1952:
            key = mldsa.MLDSA65PublicKey.from_public_bytes(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"cannot load the ML-DSA public key: {exc}") from exc
    if not isinstance(key, mldsa.MLDSA65PublicKey):
        raise ConfigError(f"the post-quantum key is a {type(key).__name__}, not ML-DSA-65")
    return key


def pq_keyid(public_key: Any) -> str:
    """Return `"mldsa65:" + sha256(raw public key).hex()` for an ML-DSA-65 key (or private key)."""
    mldsa = _mldsa()
    if isinstance(public_key, mldsa.MLDSA65PrivateKey):
        public_key = public_key.public_key()
    if not isinstance(public_key, mldsa.MLDSA65PublicKey):
        raise ConfigError(f"not an ML-DSA-65 key: {type(public_key).__name__}")
    return PQ_KEYID_PREFIX + hashlib.sha256(public_key.public_bytes_raw()).hexdigest()


def pq_sign(key: Any, data: bytes) -> bytes:
    """Sign data with an ML-DSA-65 private key (empty context).

    Raises:
        ConfigError: not an ML-DSA-65 private key.
    """
    if not isinstance(key, _mldsa().MLDSA65PrivateKey):
        raise ConfigError(f"not an ML-DSA-65 private key: {type(key).__name__}")
    signature: bytes = key.sign(data)
    return signature


def pq_verify(public_key: Any, signature: bytes, data: bytes) -> bool:
    """Return True when an ML-DSA-65 signature over data verifies with the key."""
    from cryptography.exceptions import InvalidSignature

    if not isinstance(public_key, _mldsa().MLDSA65PublicKey):
        raise ConfigError(f"not an ML-DSA-65 public key: {type(public_key).__name__}")
    try:
        public_key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
