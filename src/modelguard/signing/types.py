"""Value types shared by the manifest, signing and verification modules (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from modelguard.results import Severity

__all__ = ["Problem", "SignerInfo"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One verification failure or observation, before it becomes a report finding.

    Attributes:
        rule_id: an MG3xx rule id.
        message: one human sentence.
        name: the model-relative POSIX name it concerns; None for the signature itself.
        evidence: ordered key/value pairs (expected and actual digests, the field, ...).
        severity: overrides the rule's default severity (for example an observation that is
            only informative in this case).
    """

    rule_id: str
    message: str
    name: str | None = None
    evidence: tuple[tuple[str, str], ...] = ()
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """Who signed, as established by a successful signature check.

    Attributes:
        method: `key`, `certificate` or `sigstore`.
        key_hint: lowercase hex SHA-256 of the public key's SubjectPublicKeyInfo PEM (key mode).
        subject: the leaf certificate's subject (RFC 4514 string), certificate and Sigstore modes.
        san: the leaf certificate's subject alternative names, comma separated.
        issuer: the OIDC issuer (Sigstore) or the leaf certificate's issuer name.
        fingerprint: lowercase hex SHA-256 of the leaf certificate's DER.
        pq_keyid: the verified ML-DSA-65 co-signature's key id, when there is one.
        legacy: True when a legacy form (v0.1 predicate or legacy PAE) was accepted.
    """

    method: str
    key_hint: str | None = None
    subject: str | None = None
    san: str | None = None
    issuer: str | None = None
    fingerprint: str | None = None
    pq_keyid: str | None = None
    legacy: bool = False
