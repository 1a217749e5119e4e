"""Signing a model: manifest, statement, DSSE signature(s), OMS bundle (`modelguard sign`).

The statement is the OMS v1.0 in-toto statement that `model-signing` writes and reads, in
RFC 8785 canonical JSON so that the same model always yields the same payload. modelguard adds
subject annotations that OMS verifiers ignore and modelguard enforces: a digest over names,
sizes and algorithm (the OMS root digest covers digests only), the file sizes, and optionally
the repository, revision and an expiry date. An optional ML-DSA-65 co-signature is a second
DSSE signature over the same payload.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelguard._version import __version__
from modelguard.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from modelguard.hashing import ProgressFn
    from modelguard.manifest import Manifest

__all__ = ["SignedModel", "expiry_text", "sign"]


@dataclass(frozen=True)
class SignedModel:
    """The result of `sign`.

    Attributes:
        signature: where the bundle was written (None when `output` was False).
        manifest: the signed manifest.
        bundle: the bundle bytes (Sigstore bundle v0.3 JSON).
    """

    signature: Path | None
    manifest: Manifest
    bundle: bytes


def expiry_text(value: str | date | datetime) -> str:
    """Return `value` as the ISO 8601 UTC text stored in the signature (`...Z`).

    A date means the start of that day (UTC). Naive datetimes are taken as UTC.

    Raises:
        ConfigError: the text is not an ISO 8601 date or date-time.
    """
    if isinstance(value, str):
        try:
            parsed: date | datetime = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"not an ISO 8601 date: {value!r}") from exc
        value = parsed
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_key(source: Any, password: bytes | str | None) -> Any:
    from modelguard.signing import keys

    if isinstance(password, str):
        password = password.encode()
    if isinstance(source, (str, os.PathLike, bytes)):
        return keys.load_private_key(source, password)
    return source


def _load_chain(certificate: Any, chain: Sequence[Any]) -> list[Any]:
    from modelguard.signing import certs

    loaded: list[Any] = []
    for item in [certificate, *chain]:
        if isinstance(item, (str, os.PathLike, bytes)):
            loaded.extend(certs.load_certificates(item))
        else:
            loaded.append(item)
    return loaded


def _load_pq_key(source: Any, password: bytes | str | None) -> Any:
    from modelguard.signing import pq

    if isinstance(password, str):
        password = password.encode()
    if isinstance(source, (str, os.PathLike, bytes)):
        return pq.load_pq_private_key(source, password)
    return source


def _sigstore_token(identity_token: str | None) -> str:
    """Return the OIDC token for keyless signing: the given one, or the CI's ambient one."""
    if identity_token:
        return identity_token
    try:
        from sigstore.oidc import detect_credential

        ambient = detect_credential()
    except Exception as exc:  # the detectors raise their own error types
        raise ConfigError(f"no ambient OIDC credential could be obtained: {exc}") from exc
    if not ambient:
        raise ConfigError(
            "Sigstore signing needs an OIDC identity token: pass one (--identity-token) or run "
            "where an ambient credential exists (for example GitHub Actions with id-token: write)"
        )
    return str(ambient)


def _write_atomic(path: Path, data: bytes) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=".modelguard-", suffix=".sig.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sign(
    model: str | os.PathLike[str],
    *,
    private_key: Any = None,
    password: bytes | str | None = None,
    certificate: Any = None,
    chain: Sequence[Any] = (),
    sigstore: bool = False,
    identity_token: str | None = None,
    staging: bool = False,
    pq_key: Any = None,
    pq_password: bytes | str | None = None,
    output: str | os.PathLike[str] | bool | None = None,
    algorithm: str = "sha256",
    shard_size: int | None = None,
    ignore: Sequence[str] = (),
    allow_links: bool = False,
    repository: str | None = None,
    revision: str | None = None,
    expires: str | date | datetime | None = None,
    annotations: Mapping[str, str] | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> SignedModel:
    """Sign `model` (a folder or a file) and write an OMS signature.

    Exactly one signing method: `private_key` (an EC P-256/P-384/P-521 key: PEM path, bytes
    or key object), `private_key` plus `certificate` (and its `chain`, leaf first), or
    `sigstore=True` (keyless; needs the network and an OIDC identity token or an interactive
    flow).

    Args:
        model: the model folder or file.
        private_key: the signing key (key and certificate methods).
        password: the key's password, if encrypted.
        certificate: the signing certificate matching `private_key`.
        chain: intermediate certificates, leaf-most first.
        sigstore: sign keyless with Sigstore (online).
        identity_token: an OIDC token for Sigstore (ambient credentials otherwise).
        staging: use Sigstore's staging instance.
        pq_key: an ML-DSA-65 private key for the post-quantum co-signature.
        pq_password: its password, if encrypted.
        output: where to write the bundle; None: `model.sig` in the folder or `FILE.sig`;
            False: do not write.
        algorithm: `sha256` (default), `blake2b` or `blake3`.
        shard_size: hash files in shards of this many bytes (OMS `shards` method).
        ignore: names or globs (model-relative) left out of the manifest.
        allow_links: follow links that resolve inside the model or a Hugging Face `blobs/`.
        repository: bind the signature to this repository id.
        revision: bind the signature to this revision.
        expires: the date after which verification fails (MG309).
        annotations: more subject annotations (string values).
        workers: hashing threads (default: one per core).
        progress: called with (bytes done, bytes total) while hashing.

    Returns:
        The written signature path, the manifest and the bundle bytes.

    Raises:
        ConfigError: no or several signing methods, unusable keys, bad options.
        SourceError: the model does not exist.
        ManifestError: the model has unsafe names, refused links or no files.
    """
    from modelguard.manifest import build_manifest
    from modelguard.signing.envelope import sign_statement
    from modelguard.verified import default_signature_path

    model_path = Path(model)
    if not model_path.exists():
        raise SourceError(f"no such file or directory: {os.fspath(model)}")
    if sigstore == (private_key is not None):
        raise ConfigError("give exactly one signing method: a private key, or sigstore")
    if certificate is None and chain:
        raise ConfigError("a certificate chain needs the signing certificate too")
    target: Path | None
    if output is False:
        target = None
    elif output is None or output is True:
        target = default_signature_path(model_path)
    else:
        target = Path(output)
    ignore_paths = list(ignore)
    if target is not None and model_path.is_dir():
        try:
            rel = target.resolve().relative_to(model_path.resolve())
        except ValueError:
            pass
        else:
            ignore_paths.append(rel.as_posix())
    notes: dict[str, str] = {"modelguard.version": __version__}
    if repository is not None:
        notes["modelguard.repository"] = repository
    if revision is not None:
        notes["modelguard.revision"] = revision
    if expires is not None:
        notes["modelguard.expires"] = expiry_text(expires)
    for name, value in (annotations or {}).items():
        if not isinstance(value, str):
            raise ConfigError(f"annotation {name!r} must be a string")
        notes[name] = value
    key = _load_key(private_key, password) if private_key is not None else None
    certificates = _load_chain(certificate, chain) if certificate is not None else []
    pq = _load_pq_key(pq_key, pq_password) if pq_key is not None else None
    token = _sigstore_token(identity_token) if sigstore else None
    manifest = build_manifest(
        model_path,
        algorithm=algorithm,
        shard_size=shard_size,
        ignore_paths=ignore_paths,
        allow_links=allow_links,
        annotations=notes,
        workers=workers,
        progress=progress,
    )
    bundle = sign_statement(
        manifest.to_statement(),
        private_key=key,
        certificate_chain=certificates,
        pq_key=pq,
        sigstore_token=token,
        staging=staging,
    )
    if target is not None:
        _write_atomic(target, bundle)
    return SignedModel(target, manifest, bundle)
