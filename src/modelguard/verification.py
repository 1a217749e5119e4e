"""Strict verification of a model against an OMS signature (`modelguard verify`).

The flow: read and parse the bundle, check the signature and the signer against the trust the
caller gives (keys, a certificate root with pins, or a Sigstore identity), parse the signed
manifest, list the model folder (names, links and file types checked), then compare in a
closed world: every signed file present with its digest and size, nothing present that is not
signed except names the policy ignores (and those are listed). Every failure is a finding with
an MG3xx rule id in a `ScanReport`, the same report model as `scan`; `verify()` raises the typed
`VerificationError` for the first failure and otherwise returns a `VerifiedModel`, which
records each file's identity so a loader can open a file and fail if it changed since.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelguard.errors import (
    BundleError,
    ConfigError,
    FileChangedError,
    IntegrityError,
    LegacyFormatError,
    ManifestError,
    SignatureError,
    SignerError,
    SourceError,
    VerificationError,
)
from modelguard.results import Finding, Incomplete, ScanReport, Severity
from modelguard.signing.types import Problem, SignerInfo
from modelguard.verification_report import Collector, combine_reports
from modelguard.verified import VerifiedModel, default_signature_path

if TYPE_CHECKING:
    from modelguard.hashing import FileIdentity, HashTask, ProgressFn
    from modelguard.manifest import Listing, Manifest

__all__ = [
    "DEFAULT_VERIFY_IGNORES",
    "MAX_SIGNATURE_BYTES",
    "VerificationOutcome",
    "VerifiedModel",
    "combine_reports",
    "default_signature_path",
    "verify",
    "verify_report",
]

MAX_SIGNATURE_BYTES = 64 * 1024 * 1024
"""A signature file larger than this is refused unread (real bundles are a few KiB)."""

DEFAULT_VERIFY_IGNORES: tuple[str, ...] = (".gitattributes", ".cache/huggingface")
"""Unsigned names that verification tolerates by default (besides the signature file itself
and the names the signer recorded in `ignore_paths`); each one present is reported (MG318)."""

_ERROR_CLASSES: dict[str, type[VerificationError]] = {
    "MG301": SignatureError,
    "MG302": SignerError,
    "MG303": BundleError,
    "MG304": LegacyFormatError,
    "MG305": ManifestError,
    "MG306": ManifestError,
    "MG308": SignatureError,
    "MG309": SignerError,
    "MG310": SignerError,
    "MG316": ManifestError,
    "MG317": FileChangedError,
}


@dataclass(frozen=True)
class VerificationOutcome:
    """What `verify_report` returns: the report, and the verified model when it passed."""

    report: ScanReport
    verified: VerifiedModel | None = None
    first_failure: Finding | Incomplete | None = None


def _read_signature(signature: Path) -> bytes:
    """Read the bundle: a regular file (a link to one is followed), at most the size cap.

    Opened non-blocking and checked with fstat, so a FIFO or device planted at the default
    signature path is refused instead of blocking or streaming forever.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(signature, flags)
    except FileNotFoundError as exc:
        raise SourceError(f"no such signature file: {signature}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read the signature {signature}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BundleError("the signature is not a regular file")
        try:
            data = handle.read(MAX_SIGNATURE_BYTES + 1)
        except OSError as exc:
            raise SourceError(
                f"cannot read the signature {signature}: {exc.strerror or exc}"
            ) from exc
    if len(data) > MAX_SIGNATURE_BYTES:
        raise BundleError(
            f"the signature file is larger than {MAX_SIGNATURE_BYTES} bytes; refused unread"
        )
    return data


def _as_list(value: Any) -> list[Any]:
    """Return trust material as a list: None, one item (a path, PEM bytes or a key or
    certificate object), or a list, tuple or set of them."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [value]


def _trust(
    public_key: Any,
    root_ca: Any,
    pq_public_key: Any,
) -> tuple[list[Any], list[Any], list[Any]]:
    """Load key and certificate material given as paths, PEM bytes or objects."""
    from modelguard.signing import keys

    public_keys = [
        keys.load_public_key(k) if isinstance(k, (str, os.PathLike, bytes)) else k
        for k in _as_list(public_key)
    ]
    roots: list[Any] = []
    for item in _as_list(root_ca):
        if isinstance(item, (str, os.PathLike, bytes)):
            from modelguard.signing import certs  # x509 is costly: certificate mode only

            roots.extend(certs.load_certificates(item))
        else:
            roots.append(item)
    pq_keys: list[Any] = []
    if pq_public_key is not None:
        from modelguard.signing import pq

        pq_keys = [
            pq.load_pq_public_key(k) if isinstance(k, (str, os.PathLike, bytes)) else k
            for k in _as_list(pq_public_key)
        ]
    return public_keys, roots, pq_keys


def _parse_expiry(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _check_bindings(
    manifest: Manifest,
    out: Collector,
    *,
    repository: str | None,
    revision: str | None,
    now: datetime,
) -> None:
    notes = manifest.annotations
    expires = notes.get("modelguard.expires")
    if expires is not None:
        when = _parse_expiry(expires)
        if when is None:
            out.add(
                Problem(
                    "MG305",
                    "the signed expiry is not an ISO 8601 date",
                    None,
                    (("modelguard.expires", expires),),
                )
            )
        elif when <= now:
            out.add(
                Problem(
                    "MG309",
                    f"the signature expired on {expires}",
                    None,
                    (("expires", expires), ("now", now.isoformat())),
                )
            )
    for key, wanted in (("modelguard.repository", repository), ("modelguard.revision", revision)):
        if wanted is None:
            continue
        signed = notes.get(key)
        if signed != wanted:
            out.add(
                Problem(
                    "MG310",
                    f"the signature binds {key.split('.')[1]} {signed!r}, not {wanted!r}",
                    None,
                    (("expected", wanted), ("signed", "(none)" if signed is None else signed)),
                )
            )


def _ignore_set(
    manifest: Manifest, model: Path, signature: Path, ignore: Sequence[str]
) -> list[str]:
    names = [*manifest.serialization.ignore_paths, *DEFAULT_VERIFY_IGNORES, *ignore]
    if model.is_dir():
        try:
            rel = signature.resolve().relative_to(model.resolve())
        except ValueError:
            pass
        else:
            names.append(rel.as_posix())
    return names


def _compare(
    manifest: Manifest,
    listing: Listing,
    out: Collector,
    *,
    workers: int | None,
    progress: ProgressFn | None,
    follow_links: bool,
) -> dict[str, FileIdentity]:
    """Compare the listing against the manifest; return identities of the verified files."""
    from modelguard.hashing import HashTask, hash_tasks

    signed = manifest.by_file()
    signed_sizes = manifest.sizes()
    if listing.single_file and list(signed) == ["."] and len(listing.files) == 1:
        # model-signing before 1.0 named the one file of a single-file model "."
        signed = {listing.files[0].name: signed["."]}
        if signed_sizes:
            signed_sizes = {listing.files[0].name: next(iter(signed_sizes.values()))}
    present = {f.name: f for f in listing.files}
    problem_names = set()
    for problem in listing.problems:
        out.add(problem)
        if problem.name is not None:
            problem_names.add(problem.name)
    for name in listing.ignored:
        out.add(Problem("MG318", "not covered by the signature; ignored by name", name))
    tasks: list[HashTask] = []
    expected: list[tuple[str, str]] = []
    listed: dict[str, FileIdentity] = {}
    for name, resources in sorted(signed.items()):
        shown = out.shown(name)
        out.formats[shown] = ("signed",)
        entry = present.get(name)
        if entry is None:
            if name not in problem_names:
                out.add(
                    Problem(
                        "MG312",
                        "signed but not present",
                        name,
                        tuple(("expected_digest", r.digest) for r in resources[:1]),
                    )
                )
            continue
        out.sizes[shown] = entry.size
        if not _sizes_agree(name, resources, signed_sizes.get(name), entry.size, out):
            continue
        if not resources:  # an empty file has no shards; its signed size (0) was checked
            listed[name] = entry.identity
        for res in resources:
            start, end = res.shard if res.shard is not None else (0, None)
            # an allowed link is hashed through its resolved target, never followed again
            tasks.append(HashTask(entry.link_target or entry.path, res.name, start, end))
            expected.append((name, res.digest))
    for name, entry in present.items():
        if name not in signed:
            shown = out.shown(name)
            out.sizes[shown] = entry.size
            out.formats[shown] = ("unsigned",)
            out.add(
                Problem(
                    "MG313",
                    "present but not covered by the signature",
                    name,
                    (("size", str(entry.size)),),
                )
            )
    identities: dict[str, FileIdentity] = dict(listed)
    results = hash_tasks(
        tasks,
        manifest.serialization.hash_type,
        workers=workers,
        follow_symlinks=False,
        progress=progress,
    )
    failed: set[str] = set()
    for task, (file_name, want), got in zip(tasks, expected, results, strict=True):
        if got.error is not None:
            out.unreadable(file_name, f"{task.name}: {got.error}")
            failed.add(file_name)
            continue
        if got.digest != want:
            out.add(
                Problem(
                    "MG311",
                    "content differs from the signed digest",
                    file_name,
                    (
                        ("resource", task.name),
                        ("algorithm", manifest.serialization.hash_type),
                        ("expected_digest", want),
                        ("actual_digest", got.digest),
                    ),
                )
            )
            failed.add(file_name)
        elif got.identity is not None and file_name not in failed:
            identities[file_name] = got.identity
    return {name: ident for name, ident in identities.items() if name not in failed}


def _sizes_agree(
    name: str, resources: Sequence[Any], signed_size: int | None, size: int, out: Collector
) -> bool:
    """Cheap pre-check of a file's size against the signed size and shard coverage.

    The signed size is modelguard's `modelguard.sizes` annotation (also present for an empty
    file, which has no shard in the shard serialization), else the resource's own.
    """
    if signed_size is None and resources:
        signed_size = resources[0].size
    if signed_size is not None and signed_size != size:
        out.add(
            Problem(
                "MG311",
                "size differs from the signed size",
                name,
                (("expected_size", str(signed_size)), ("actual_size", str(size))),
            )
        )
        return False
    if not resources and size != 0:
        out.add(
            Problem(
                "MG311",
                "the file was signed empty (no shard) and now has content",
                name,
                (("expected_size", "0"), ("actual_size", str(size))),
            )
        )
        return False
    shards = [r.shard for r in resources if r.shard is not None]
    if shards:
        covered = 0
        for start, end in sorted(shards):
            if start != covered:
                break
            covered = end
        if covered != size:
            out.add(
                Problem(
                    "MG311",
                    "the signed shards do not cover the file as it is now",
                    name,
                    (("signed_bytes", str(covered)), ("actual_size", str(size))),
                )
            )
            return False
    return True


def verify_report(
    model: str | os.PathLike[str],
    signature: str | os.PathLike[str] | None = None,
    *,
    public_key: Any = None,
    root_ca: Any = None,
    subject: str | None = None,
    san: str | None = None,
    fingerprint: str | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trusted_root: str | os.PathLike[str] | None = None,
    pq_public_key: Any = None,
    require_pq: bool = False,
    allow_legacy: bool = False,
    allow_links: bool = False,
    ignore: Sequence[str] = (),
    repository: str | None = None,
    revision: str | None = None,
    at: datetime | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> VerificationOutcome:
    """Verify `model` against `signature` and return the report without raising for failures.

    See `verify` for the arguments.

    Raises:
        SourceError: the model or the signature file does not exist or cannot be read.
        ConfigError: the trust material is unusable or the trust options are inconsistent.
    """
    from modelguard.manifest import Manifest, list_model
    from modelguard.signing.bundle import parse_bundle
    from modelguard.signing.envelope import verify_bundle

    model_path = Path(model)
    if not model_path.exists() and not model_path.is_symlink():
        raise SourceError(f"no such file or directory: {os.fspath(model)}")
    sig_path = default_signature_path(model_path) if signature is None else Path(signature)
    modes = sum(
        (public_key is not None, root_ca is not None, identity is not None or issuer is not None)
    )
    if modes != 1:
        raise ConfigError(
            "give exactly one trust: public key(s), a root CA, or a Sigstore identity and issuer"
        )
    if (identity is None) != (issuer is None):
        raise ConfigError("Sigstore verification needs both an identity and an OIDC issuer")
    public_keys, roots, pq_keys = _trust(public_key, root_ca, pq_public_key)
    if require_pq and not pq_keys:
        raise ConfigError("require_pq needs the ML-DSA public key(s) to trust")
    now = at or datetime.now(UTC)
    display = model_path.as_posix()
    out = Collector(display, not model_path.is_dir(), sig_path.as_posix())
    out.formats[out.signature_display] = ("oms-bundle",)
    target = os.fspath(model)

    def failed(exc: VerificationError) -> VerificationOutcome:
        out.add(Problem(exc.rule_id, str(exc), None))
        report = out.report(target, ())
        return VerificationOutcome(report, None, out.first)

    try:
        raw = _read_signature(sig_path)
        out.sizes[out.signature_display] = len(raw)
        bundle = parse_bundle(raw)
        envelope = verify_bundle(
            bundle,
            public_keys=public_keys,
            roots=roots,
            subject=subject,
            san=san,
            fingerprint=fingerprint,
            identity=identity,
            issuer=issuer,
            trusted_root=trusted_root,
            allow_legacy=allow_legacy,
            pq_public_keys=pq_keys,
            require_pq=require_pq,
            at=now,
        )
        manifest = Manifest.from_statement(envelope.statement, allow_legacy=allow_legacy)
    except VerificationError as exc:
        return failed(exc)
    signer = envelope.signer
    for problem in envelope.problems:
        out.add(problem)
    if signer.legacy or manifest.legacy:
        out.add(
            Problem("MG304", "a legacy signature form was accepted (--allow-legacy)", None),
            Severity.LOW,
        )
    _check_bindings(manifest, out, repository=repository, revision=revision, now=now)
    if not manifest.resources:
        out.add(Problem("MG316", "the signed manifest lists no files", None))
        return VerificationOutcome(out.report(target, ()), None, out.first)
    listing = list_model(
        model_path,
        ignore_paths=_ignore_set(manifest, model_path, sig_path, ignore),
        ignore_git_paths=False,
        allow_links=allow_links,
    )
    identities = _compare(
        manifest, listing, out, workers=workers, progress=progress, follow_links=allow_links
    )
    notes = [_signer_note(signer), _manifest_note(manifest)]
    if signer.method == "certificate" and not (subject or san or fingerprint):
        notes.append(
            "certificate mode without a pinned subject, SAN or fingerprint: any code-signing "
            "certificate the given root CA issued is accepted"
        )
    report = out.report(target, notes)
    if out.first is not None or not report.complete:
        return VerificationOutcome(report, None, out.first)
    verified = VerifiedModel(model_path, manifest, signer, identities, report, allow_links)
    return VerificationOutcome(report, verified, None)


def _signer_note(signer: SignerInfo) -> str:
    parts = [f"signed with a {signer.method}"]
    for label, value in (
        ("key hint", signer.key_hint),
        ("subject", signer.subject),
        ("SAN", signer.san),
        ("issuer", signer.issuer),
        ("certificate sha256", signer.fingerprint),
        ("ML-DSA-65 co-signature", signer.pq_keyid),
    ):
        if value:
            parts.append(f"{label} {value}")
    # The signature over the manifest checked out; whether the files match it is what the
    # findings say, so the note must not read as the verdict.
    return "signature valid: " + "; ".join(parts)


def _manifest_note(manifest: Manifest) -> str:
    ser = manifest.serialization
    shards = f", shards of {ser.shard_size} bytes" if ser.method == "shards" else ""
    return (
        f"manifest: {len(manifest.by_file())} file(s), {ser.hash_type}{shards}, "
        f"root digest sha256:{manifest.root_digest()}"
    )


def verify(
    model: str | os.PathLike[str],
    signature: str | os.PathLike[str] | None = None,
    **options: Any,
) -> VerifiedModel:
    """Verify `model` (a folder or a file) against an OMS signature, strictly.

    Exactly one trust must be given: `public_key` (EC public key PEM path(s), bytes or key
    objects), `root_ca` (CA certificate(s); pin the signer with `subject`, `san` or
    `fingerprint`), or `identity` plus `issuer` for Sigstore (checked offline against
    `trusted_root`, by default the root that ships with sigstore-python).

    Args:
        model: the model folder or file.
        signature: the bundle; by default `model.sig` in the folder, or `FILE.sig`.
        **options: public_key, root_ca, subject, san, fingerprint, identity, issuer,
            trusted_root, pq_public_key, require_pq (a valid ML-DSA-65 co-signature by one of
            `pq_public_key` is required), allow_legacy (accept v0.1 predicates and the legacy
            DSSE encoding), allow_links (links resolving inside the model or a Hugging Face
            `blobs/` folder), ignore (more unsigned names or globs to tolerate), repository
            and revision (required bindings), at (the time of checks, default now), workers,
            progress.

    Returns:
        The verified model: its manifest, signer and file identities, with `open()`.

    Raises:
        VerificationError: a subclass naming the first failure (its `report` has them all).
        SourceError: the model or signature cannot be read.
        ConfigError: unusable trust material or options.
    """
    outcome = verify_report(model, signature, **options)
    if outcome.verified is not None:
        return outcome.verified
    first = outcome.first_failure
    if first is None:  # pragma: no cover - a failed outcome always records why
        raise VerificationError("verification failed", report=outcome.report)
    if isinstance(first, Incomplete):
        raise IntegrityError(
            f"{first.location}: {first.reason}", rule_id=first.rule_id, report=outcome.report
        )
    cls = _ERROR_CLASSES.get(first.rule_id, IntegrityError)
    if first.rule_id == "MG307":
        cls = VerificationError
    raise cls(f"{first.location}: {first.message}", rule_id=first.rule_id, report=outcome.report)
