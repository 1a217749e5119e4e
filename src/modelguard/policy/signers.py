"""Trusted signers of a policy file: whose signatures `modelguard verify` accepts.

::

    [[trusted_signers]]           # an EC public key (PEM), relative to the policy file
    kind = "key"
    key = "keys/release.pub"
    reason = "release key of the ML platform team"

    [[trusted_signers]]           # an X.509 chain ending at a trusted root (PEM files)
    kind = "certificate"
    certificate_chain = ["certs/root-ca.pem"]
    identity = "models@example.com"   # optional: pin a SAN of the signing certificate

    [[trusted_signers]]           # Sigstore keyless: both the identity and its OIDC issuer
    kind = "sigstore"
    identity = "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"
    issuer = "https://token.actions.githubusercontent.com"

A signature verifies when any one trusted signer verifies it. Paths are resolved against the
folder of the policy file; their existence is checked when they are used, not when parsed.
`modelguard verify` refuses trust files that lie inside the model being verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from modelguard.errors import ConfigError

__all__ = ["SignerKind", "TrustedSigner", "parse_trusted_signers"]

SignerKind = Literal["key", "certificate", "sigstore"]

_KINDS: tuple[SignerKind, ...] = ("key", "certificate", "sigstore")
_FIELDS = {"kind", "key", "certificate_chain", "identity", "issuer", "reason"}
# Which optional fields each kind accepts, and which it requires.
_ALLOWED: dict[str, frozenset[str]] = {
    "key": frozenset({"key"}),
    "certificate": frozenset({"certificate_chain", "identity"}),
    "sigstore": frozenset({"identity", "issuer"}),
}
_REQUIRED: dict[str, frozenset[str]] = {
    "key": frozenset({"key"}),
    "certificate": frozenset({"certificate_chain"}),
    "sigstore": frozenset({"identity", "issuer"}),
}


@dataclass(frozen=True)
class TrustedSigner:
    """One signer whose signatures are trusted.

    Attributes:
        kind: `key` (an EC public key), `certificate` (a certificate chaining to one of
            `certificate_chain`) or `sigstore` (keyless: `identity` issued by `issuer`).
        key: absolute path of the public key (PEM), for `key`.
        certificate_chain: absolute paths of the trusted root (and intermediate) certificates,
            for `certificate`.
        identity: for `sigstore`, the signer identity (email or workflow URI); for
            `certificate`, an optional SAN (email, URI or DNS name) the leaf must carry.
        issuer: the OIDC issuer URL, for `sigstore`.
        reason: why the signer is trusted (free text, shown in reports).
    """

    kind: SignerKind
    key: str | None = None
    certificate_chain: tuple[str, ...] = ()
    identity: str | None = None
    issuer: str | None = None
    reason: str = ""

    def describe(self) -> str:
        """Return a short human description (`key /p/k.pub`, `sigstore id (issuer)`)."""
        if self.kind == "key":
            return f"key {self.key}"
        if self.kind == "certificate":
            pin = f" [{self.identity}]" if self.identity else ""
            return f"certificate chain {', '.join(self.certificate_chain)}{pin}"
        return f"sigstore {self.identity} ({self.issuer})"

    def trust_files(self) -> tuple[str, ...]:
        """Return the files this signer's trust rests on (its key, or its certificate chain)."""
        if self.kind == "key":
            return (self.key,) if self.key is not None else ()
        return self.certificate_chain


def _text(entry: Mapping[str, object], key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _absolute(path: str, base: Path, where: str) -> str:
    try:
        given = Path(path).expanduser()
    except RuntimeError as exc:  # `~user/...` for an unknown user, or no home directory
        raise ConfigError(f"{where}: cannot expand {path!r} ({exc})") from None
    return str(given if given.is_absolute() else (base / given).resolve())


def parse_trusted_signers(raw: object, source: str) -> tuple[TrustedSigner, ...]:
    """Parse the `[[trusted_signers]]` array of a policy file.

    Args:
        raw: the TOML value (a list of tables).
        source: the policy file; relative paths are resolved against its folder.

    Raises:
        ConfigError: not an array of tables, an unknown kind or field, a field that does not
            belong to the kind, a missing required field, or a `~user` path that cannot be
            expanded.
    """
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: trusted_signers must be an array of tables")
    base = Path(source).parent if source else Path()
    out: list[TrustedSigner] = []
    for number, entry in enumerate(raw, 1):
        where = f"{source}: trusted_signers entry {number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ConfigError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
        kind = entry.get("kind")
        if kind not in _KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(_KINDS)}")
        given = set(entry) - {"kind", "reason"}
        misplaced = given - _ALLOWED[kind]
        if misplaced:
            raise ConfigError(f"{where}: {', '.join(sorted(misplaced))} not valid for {kind}")
        missing = _REQUIRED[kind] - given
        if missing:
            raise ConfigError(f"{where}: {kind} needs {', '.join(sorted(missing))}")
        reason = entry.get("reason", "")
        if not isinstance(reason, str):
            raise ConfigError(f"{where}: reason must be a string")
        chain: tuple[str, ...] = ()
        if "certificate_chain" in entry:
            raw_chain = entry["certificate_chain"]
            if isinstance(raw_chain, str):
                raw_chain = [raw_chain]
            if (
                not isinstance(raw_chain, list)
                or not raw_chain
                or not all(isinstance(p, str) and p.strip() for p in raw_chain)
            ):
                raise ConfigError(f"{where}: certificate_chain must be a list of file paths")
            chain = tuple(_absolute(p.strip(), base, where) for p in raw_chain)
        out.append(
            TrustedSigner(
                kind=cast(SignerKind, kind),
                key=(
                    _absolute(_text(entry, "key", where), base, where) if "key" in entry else None
                ),
                certificate_chain=chain,
                identity=_text(entry, "identity", where) if "identity" in entry else None,
                issuer=_text(entry, "issuer", where) if "issuer" in entry else None,
                reason=reason.strip(),
            )
        )
    return tuple(out)
