"""Read and write Sigstore bundle v0.3 JSON holding a DSSE envelope (the OMS signature file).

`parse_bundle` is strict: anything outside the shape that model-signing 0.2-1.1 and the OMS
v1.0 schema produce is refused with a `BundleError` naming the field, before any cryptography
runs. `build_bundle` writes the JSON the way model-signing 1.1 does (camelCase keys, an empty
`tlogEntries`, `keyid: ""` on the first signature, no trailing newline).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelguard.errors import BundleError
from modelguard.signing.dsse import PAYLOAD_TYPE

__all__ = ["BUNDLE_MEDIA_TYPE", "Bundle", "DsseSignature", "build_bundle", "parse_bundle"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"

# Sigstore bundle v0.3 (protobuf-specs sigstore_bundle.proto, JSON encoding): the only keys we
# accept at each level. Unknown keys are refused, as model-signing's pydantic models do.
_TOP_KEYS = frozenset({"mediaType", "verificationMaterial", "dsseEnvelope"})
_MATERIAL_KINDS = {
    "publicKey": "public_key",
    "x509CertificateChain": "x509_chain",
    "certificate": "certificate",
}
_MATERIAL_KEYS = frozenset({*_MATERIAL_KINDS, "tlogEntries", "timestampVerificationData"})
_PUBLIC_KEY_KEYS = frozenset({"hint", "rawBytes", "keyDetails", "validFor"})
_ENVELOPE_KEYS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_KEYS = frozenset({"sig", "keyid"})
# Named limit: a DSSE envelope with more signatures than this is not something any signer we
# know produces (OMS writes one; modelguard adds at most one ML-DSA co-signature).
MAX_SIGNATURES = 16


@dataclass(frozen=True, slots=True)
class DsseSignature:
    """One entry of a DSSE envelope's `signatures` list.

    Attributes:
        sig: the raw signature bytes (DER ECDSA, or an ML-DSA signature).
        keyid: the unauthenticated key id hint; None when absent or null, "" as written.
    """

    sig: bytes
    keyid: str | None = None


@dataclass(frozen=True)
class Bundle:
    """A parsed OMS signature file.

    Attributes:
        media_type: the bundle media type (always the v0.3 type after parsing).
        material: `public_key`, `x509_chain` or `certificate` (Sigstore keyless).
        key_hint: `publicKey.hint` (lowercase hex), when present.
        key_raw: `publicKey.rawBytes` decoded (pre-1.1 key bundles carry the PEM there).
        certificates: DER certificates, leaf first.
        tlog_entries: the transparency log entries as JSON objects (Sigstore only).
        payload: the decoded DSSE payload.
        payload_type: the DSSE `payloadType`.
        signatures: the DSSE signatures in envelope order.
        raw: the bytes of the file, for sigstore-python which parses them itself.
    """

    media_type: str
    material: str
    key_hint: str | None
    key_raw: bytes | None
    certificates: tuple[bytes, ...]
    tlog_entries: tuple[Mapping[str, Any], ...]
    payload: bytes
    payload_type: str
    signatures: tuple[DsseSignature, ...]
    raw: bytes


def _fail(field: str, reason: str) -> BundleError:
    return BundleError(f"invalid signature bundle: {field}: {reason}")


def _object(value: Any, field: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(field, "must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(field, f"unknown field(s) {', '.join(unknown)}")
    return value


def _b64(value: Any, field: str, *, allow_empty: bool = False) -> bytes:
    if not isinstance(value, str):
        raise _fail(field, "must be a base64 string")
    try:
        # Standard alphabet, as protobuf JSON writes bytes; accept the URL-safe one too
        # (protobuf JSON readers do), but never silently drop garbage characters.
        text = value.replace("-", "+").replace("_", "/")
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(field, f"bad base64 ({exc})") from exc
    if not decoded and not allow_empty:
        raise _fail(field, "is empty")
    return decoded


def _parse_material(
    value: Any,
) -> tuple[str, str | None, bytes | None, tuple[bytes, ...], tuple[Mapping[str, Any], ...]]:
    material = _object(value, "verificationMaterial", _MATERIAL_KEYS)
    kinds = [key for key in _MATERIAL_KINDS if key in material]
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        raise _fail(
            "verificationMaterial",
            f"needs exactly one of publicKey, x509CertificateChain, certificate (found {found})",
        )
    kind = kinds[0]
    hint: str | None = None
    raw_key: bytes | None = None
    certificates: tuple[bytes, ...] = ()
    if kind == "publicKey":
        public_key = _object(material[kind], "verificationMaterial.publicKey", _PUBLIC_KEY_KEYS)
        if "hint" in public_key:
            hint = public_key["hint"]
            if not isinstance(hint, str) or not hint:
                raise _fail("verificationMaterial.publicKey.hint", "must be a non-empty string")
        if "rawBytes" in public_key:
            raw_key = _b64(public_key["rawBytes"], "verificationMaterial.publicKey.rawBytes")
    elif kind == "x509CertificateChain":
        chain = _object(
            material[kind], "verificationMaterial.x509CertificateChain", frozenset({"certificates"})
        )
        entries = chain.get("certificates")
        if not isinstance(entries, list) or not entries:
            raise _fail(
                "verificationMaterial.x509CertificateChain.certificates",
                "must be a non-empty list",
            )
        certificates = tuple(
            _b64(
                _object(entry, f"...certificates[{i}]", frozenset({"rawBytes"})).get("rawBytes"),
                f"verificationMaterial.x509CertificateChain.certificates[{i}].rawBytes",
            )
            for i, entry in enumerate(entries)
        )
    else:
        leaf = _object(material[kind], "verificationMaterial.certificate", frozenset({"rawBytes"}))
        certificates = (_b64(leaf.get("rawBytes"), "verificationMaterial.certificate.rawBytes"),)
    entries_value = material.get("tlogEntries", [])
    if not isinstance(entries_value, list) or not all(isinstance(e, dict) for e in entries_value):
        raise _fail("verificationMaterial.tlogEntries", "must be a list of objects")
    # A Sigstore keyless bundle is only verifiable with its one transparency log entry
    # (OMS spec test vector invalid/missing-tlog-entries).
    if kind == "certificate" and len(entries_value) != 1:
        raise _fail(
            "verificationMaterial.tlogEntries",
            f"a Sigstore bundle needs exactly one entry (found {len(entries_value)})",
        )
    if kind != "certificate" and entries_value:
        # Key and certificate signatures carry no log entry (model-signing writes []); one
        # that is present would not be verified, so it is refused rather than ignored.
        raise _fail(
            "verificationMaterial.tlogEntries",
            f"key and certificate bundles carry no log entries (found {len(entries_value)})",
        )
    timestamps = material.get("timestampVerificationData")
    if timestamps is not None and not isinstance(timestamps, dict):
        raise _fail("verificationMaterial.timestampVerificationData", "must be a JSON object")
    return _MATERIAL_KINDS[kind], hint, raw_key, certificates, tuple(entries_value)


def _parse_envelope(value: Any) -> tuple[bytes, str, tuple[DsseSignature, ...]]:
    envelope = _object(value, "dsseEnvelope", _ENVELOPE_KEYS)
    for key in ("payload", "payloadType", "signatures"):
        if key not in envelope:
            raise _fail(f"dsseEnvelope.{key}", "is missing")
    payload = _b64(envelope["payload"], "dsseEnvelope.payload")
    payload_type = envelope["payloadType"]
    if not isinstance(payload_type, str) or not payload_type:
        raise _fail("dsseEnvelope.payloadType", "must be a non-empty string")
    entries = envelope["signatures"]
    if not isinstance(entries, list) or not entries:
        raise _fail("dsseEnvelope.signatures", "must be a non-empty list")
    if len(entries) > MAX_SIGNATURES:
        raise _fail("dsseEnvelope.signatures", f"more than MAX_SIGNATURES={MAX_SIGNATURES}")
    signatures = []
    for i, entry in enumerate(entries):
        field = f"dsseEnvelope.signatures[{i}]"
        entry = _object(entry, field, _SIGNATURE_KEYS)
        keyid = entry.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise _fail(f"{field}.keyid", "must be a string")
        signatures.append(DsseSignature(sig=_b64(entry.get("sig"), f"{field}.sig"), keyid=keyid))
    return payload, payload_type, tuple(signatures)


def parse_bundle(data: bytes) -> Bundle:
    """Parse and structurally validate an OMS signature file.

    Args:
        data: the bytes of the bundle JSON file.

    Returns:
        The parsed `Bundle`.

    Raises:
        BundleError: (MG303) the file is not JSON, has unknown top-level keys, a media type
            other than Sigstore bundle v0.3, missing or several kinds of verification
            material, bad base64, no signatures, or a Sigstore bundle without its one log entry.
    """
    try:
        # Strict UTF-8 first: json.loads(bytes) would also accept UTF-16 and UTF-32.
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"invalid signature bundle: not JSON ({exc})") from exc
    top = _object(document, "bundle", _TOP_KEYS)
    media_type = top.get("mediaType")
    if media_type != BUNDLE_MEDIA_TYPE:
        raise _fail("mediaType", f"expected {BUNDLE_MEDIA_TYPE!r}, found {media_type!r}")
    if "verificationMaterial" not in top:
        raise _fail("verificationMaterial", "is missing")
    if "dsseEnvelope" not in top:
        raise _fail("dsseEnvelope", "is missing (only DSSE bundles are OMS signatures)")
    material, hint, raw_key, certificates, tlog_entries = _parse_material(
        top["verificationMaterial"]
    )
    payload, payload_type, signatures = _parse_envelope(top["dsseEnvelope"])
    return Bundle(
        media_type=media_type,
        material=material,
        key_hint=hint,
        key_raw=raw_key,
        certificates=certificates,
        tlog_entries=tlog_entries,
        payload=payload,
        payload_type=payload_type,
        signatures=signatures,
        raw=bytes(data),
    )


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def build_bundle(
    *,
    payload: bytes,
    signatures: Sequence[DsseSignature],
    key_hint: str | None = None,
    certificates: Sequence[bytes] = (),
) -> bytes:
    """Write a Sigstore bundle v0.3 with a DSSE envelope, as model-signing 1.1 does.

    Exactly one of `key_hint` (key mode) and `certificates` (DER, leaf first) must be given.

    Args:
        payload: the in-toto statement bytes.
        signatures: the DSSE signatures; the first is the ECDSA signature (written with
            `keyid: ""` unless it has a key id), further ones keep their key ids.
        key_hint: the public key hint for a `publicKey` bundle.
        certificates: DER certificates for an `x509CertificateChain` bundle.

    Returns:
        The bundle JSON bytes, without a trailing newline.

    Raises:
        ValueError: no signatures, or not exactly one kind of verification material.
    """
    if not signatures:
        raise ValueError("a bundle needs at least one signature")
    if (key_hint is None) == (not certificates):
        raise ValueError("give exactly one of key_hint and certificates")
    material: dict[str, Any]
    if key_hint is not None:
        material = {"publicKey": {"hint": key_hint}, "tlogEntries": []}
    else:
        material = {
            "x509CertificateChain": {
                "certificates": [{"rawBytes": _encode(der)} for der in certificates]
            },
            "tlogEntries": [],
        }
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": _encode(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [
                {"sig": _encode(s.sig), "keyid": s.keyid if s.keyid is not None else ""}
                for s in signatures
            ],
        },
    }
    return json.dumps(document, indent=2).encode("utf-8")
