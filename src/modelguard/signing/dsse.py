"""DSSE pre-authentication encoding (PAE) and canonical JSON for signed payloads.

The PAE is what every signature in a DSSE envelope covers. `legacy_pae` reproduces the
malformed encoding that model-signing v0.2 signed with, so that old signatures can be read
behind the legacy switch; it is never used to sign.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PAYLOAD_TYPE", "canonical_json", "legacy_pae", "pae"]

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSEv1 pre-authentication encoding of a payload.

    Args:
        payload_type: the envelope's `payloadType`.
        payload: the raw (decoded) payload bytes.

    Returns:
        `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths as ASCII decimal
        byte counts.
    """
    type_bytes = payload_type.encode("utf-8")
    header = b"DSSEv1 %d %s %d " % (len(type_bytes), type_bytes, len(payload))
    return header + payload


def legacy_pae(payload_type: str, payload: bytes) -> bytes:
    """Return the encoding model-signing v0.2 signed instead of the DSSEv1 PAE.

    That release formatted the prefix `DSSEV1` (capital V) and interpolated the payload's
    Python `bytes` repr (`b'...'` with escapes) into a text string. Verified against the
    v0.2.0 certificate vector; only ever used to verify, behind the legacy switch.

    Args:
        payload_type: the envelope's `payloadType`.
        payload: the raw (decoded) payload bytes.

    Returns:
        The legacy encoding as UTF-8 bytes.
    """
    text = f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}"
    return text.encode("utf-8")


def canonical_json(value: Any) -> bytes:
    """Serialise a JSON value as RFC 8785 (JCS) canonical JSON.

    Args:
        value: a JSON-compatible value (dicts with string keys, lists, str, int, bool, None).

    Returns:
        The canonical UTF-8 bytes; equal values always give equal bytes.

    Raises:
        ConfigError: the value cannot be represented in canonical JSON (floats that are not
            finite, non-string keys, unsupported types).
    """
    import rfc8785

    from modelguard.errors import ConfigError

    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ConfigError(f"value cannot be written as canonical JSON: {exc}") from exc
