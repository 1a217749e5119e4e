"""OMS model manifests: list a model's files, hash them, read and write the in-toto statement.

A manifest is what an OpenSSF Model Signing (OMS) signature signs: the digest of every file (or
every shard of every file) under model-relative POSIX names, the serialization parameters, and a
root digest over the resource digests. Resources are kept in the order model-signing sorts them
(path components, then shard offsets), which is the order its root digest is computed in, so a
manifest built here has the same names, digests and root digest as one built by model-signing.

modelguard adds subject annotations that OMS verifiers ignore: ``modelguard.sizes`` (every file's
size) and ``modelguard.binding``, a digest over names, sizes and digests, which the OMS root
digest lacks (it covers digests only).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modelguard.errors import (
    BundleError,
    ConfigError,
    IntegrityError,
    LegacyFormatError,
    ManifestError,
)
from modelguard.hashing import (
    HashTask,
    ProgressFn,
    hash_tasks,
    normalize_algorithm,
)
from modelguard.listing import (
    DEFAULT_IGNORED,
    Listing,
    ModelFile,
    check_name,
    collisions,
    list_model,
    normalize_pattern,
)

__all__ = [
    "BINDING_ANNOTATION",
    "DEFAULT_IGNORED",
    "DEFAULT_SHARD_SIZE",
    "EXPIRES_ANNOTATION",
    "LEGACY_PREDICATE_TYPE",
    "PREDICATE_TYPE",
    "REPOSITORY_ANNOTATION",
    "REVISION_ANNOTATION",
    "SIZES_ANNOTATION",
    "STATEMENT_TYPE",
    "VERSION_ANNOTATION",
    "Listing",
    "Manifest",
    "ModelFile",
    "Resource",
    "Serialization",
    "build_manifest",
    "check_name",
    "list_model",
]

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
DEFAULT_SHARD_SIZE = 1_000_000_000  # model-signing's default

BINDING_ANNOTATION = "modelguard.binding"
SIZES_ANNOTATION = "modelguard.sizes"
REPOSITORY_ANNOTATION = "modelguard.repository"
REVISION_ANNOTATION = "modelguard.revision"
EXPIRES_ANNOTATION = "modelguard.expires"
VERSION_ANNOTATION = "modelguard.version"

_HEX_LENGTH = {"sha256": 64, "blake2b": 128, "blake3": 64}
_HEX = re.compile(r"[0-9a-fA-F]+")
_SHARD = re.compile(r"(?s)(.+):([0-9]+):([0-9]+)")
_SHARDED_ALGORITHM = re.compile(r"(.+)-sharded-([0-9]+)")  # what model-signing 1.1 writes
# A single-file model signed by model-signing 0.3-1.0 names its only resource ".".
_SELF = "."


@dataclass(frozen=True, slots=True)
class Resource:
    """One signed file, or one shard of a signed file.

    Attributes:
        name: the manifest name: the file's model-relative POSIX name, or
            ``name:start:end`` for a shard (start inclusive, end exclusive).
        digest: lowercase hex digest.
        algorithm: the hash algorithm (the serialization's hash type).
        size: the size of the whole file, when the manifest records it.
        sharded: True when `name` is a shard name.
    """

    name: str
    digest: str
    algorithm: str
    size: int | None = None
    sharded: bool = False

    @property
    def file_name(self) -> str:
        """The file's model-relative name (a shard name parsed from the right)."""
        return self.name.rsplit(":", 2)[0] if self.sharded else self.name

    @property
    def shard(self) -> tuple[int, int] | None:
        """(start, end) of a shard, None for a whole file."""
        if not self.sharded:
            return None
        _, start, end = self.name.rsplit(":", 2)
        return int(start), int(end)


def _resource_key(resource: Resource) -> tuple[tuple[str, ...], int, int]:
    # model-signing sorts its manifest keys as (PurePosixPath, start, end): by path
    # components, then numerically by offset. Its root digest is computed in that order.
    start, end = resource.shard or (0, 0)
    return tuple(resource.file_name.split("/")), start, end


@dataclass(frozen=True, slots=True)
class Serialization:
    """How the files were turned into resources.

    Attributes:
        method: ``files`` or ``shards``.
        hash_type: ``sha256``, ``blake2b`` or ``blake3``.
        shard_size: bytes per shard (shards only).
        allow_symlinks: whether symbolic links were allowed when the model was listed.
        ignore_paths: the ignore patterns used when the model was listed, sorted.
    """

    method: str
    hash_type: str
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """A model manifest: the content of an OMS v1.0 in-toto statement.

    Attributes:
        model_name: the subject name (informational: the model folder's or file's name).
        resources: the signed resources, in model-signing's order (path components, then
            shard offsets); set in any order, they are sorted on construction.
        serialization: how the resources were made.
        annotations: subject annotations (strings), modelguard's bindings among them.
        legacy: True when read from a legacy v0.1 predicate.
    """

    model_name: str
    resources: tuple[Resource, ...]
    serialization: Serialization
    annotations: Mapping[str, str] = field(default_factory=dict)
    legacy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", tuple(sorted(self.resources, key=_resource_key)))
        object.__setattr__(self, "annotations", dict(self.annotations))

    def root_digest(self) -> str:
        """Return the OMS root digest: SHA-256 over the raw resource digests, in order."""
        hasher = hashlib.sha256()
        for resource in self.resources:
            hasher.update(bytes.fromhex(resource.digest))
        return hasher.hexdigest()

    def binding_digest(self) -> str:
        """Return modelguard's name-binding digest.

        SHA-256 of the RFC 8785 canonical JSON of ``{"hash_type", "method", "shard_size",
        "resources": [[name, size, digest], ...]}`` (sizes null when unknown).
        """
        import rfc8785  # only signing and verification need it

        document = {
            "hash_type": self.serialization.hash_type,
            "method": self.serialization.method,
            "shard_size": self.serialization.shard_size,
            "resources": [[r.name, r.size, r.digest] for r in self.resources],
        }
        return hashlib.sha256(rfc8785.dumps(document)).hexdigest()

    def sizes(self) -> dict[str, int]:
        """Return the signed file sizes (``modelguard.sizes``, else the resources' sizes).

        In shard mode an empty file has no shard (as in model-signing) and appears only here.
        """
        sizes = _parse_sizes(self.annotations.get(SIZES_ANNOTATION))
        for resource in self.resources:
            if resource.size is not None:
                sizes.setdefault(resource.file_name, resource.size)
        return sizes

    def by_file(self) -> dict[str, list[Resource]]:
        """Return file name -> its resource(s), shards by offset; empty shard-mode files -> []."""
        files: dict[str, list[Resource]] = {}
        for resource in self.resources:
            files.setdefault(resource.file_name, []).append(resource)
        for name in self.sizes():
            files.setdefault(name, [])
        return files

    def to_statement(self) -> dict[str, Any]:
        """Return the OMS v1.0 in-toto statement (spec-clean: integer shard size,
        ``algorithm`` = hash type, resources as ``{name, algorithm, digest}``)."""
        ser = self.serialization
        serialization: dict[str, Any] = {
            "method": ser.method,
            "hash_type": ser.hash_type,
            "allow_symlinks": ser.allow_symlinks,
            "ignore_paths": sorted(ser.ignore_paths),
        }
        if ser.method == "shards":
            serialization["shard_size"] = ser.shard_size
        annotations = dict(self.annotations)
        if all(r.size is not None for r in self.resources):
            annotations[SIZES_ANNOTATION] = _dump_sizes(self.sizes())
        annotations[BINDING_ANNOTATION] = self.binding_digest()
        return {
            "_type": STATEMENT_TYPE,
            "subject": [
                {
                    "name": self.model_name,
                    "digest": {"sha256": self.root_digest()},
                    "annotations": annotations,
                }
            ],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "resources": [
                    {"name": r.name, "algorithm": ser.hash_type, "digest": r.digest}
                    for r in self.resources
                ],
                "serialization": serialization,
            },
        }

    @classmethod
    def from_statement(
        cls, statement: Mapping[str, Any], *, allow_legacy: bool = False
    ) -> Manifest:
        """Read a manifest from an in-toto statement written by model-signing 0.2-1.1 or us.

        Tolerates model-signing's quirks: a float ``shard_size``, ``<hash>-sharded-<N>``
        algorithm strings, shard names whose file name contains ``:``, a missing
        ``ignore_paths``, any key order, and a single-file model's resource named ``.``.

        Args:
            statement: the decoded DSSE payload.
            allow_legacy: accept the v0.1 predicate (one subject per file, no root digest).

        Returns:
            The manifest; resource sizes are filled from ``modelguard.sizes`` when present.

        Raises:
            BundleError: wrong ``_type`` or unknown ``predicateType`` (MG303).
            LegacyFormatError: a v0.1 predicate without `allow_legacy` (MG304).
            ManifestError: an inconsistent manifest (MG305: root or binding digest, malformed
                or duplicate resources, unknown serialization), an unsafe or ambiguous name
                (MG306), or no resources at all (MG316).
        """
        if not isinstance(statement, Mapping):
            raise BundleError("the payload is not a JSON object")
        if statement.get("_type") != STATEMENT_TYPE:
            found = statement.get("_type")
            raise BundleError(f"statement _type is {found!r}, not {STATEMENT_TYPE}")
        predicate_type = statement.get("predicateType")
        if predicate_type == LEGACY_PREDICATE_TYPE:
            if not allow_legacy:
                raise LegacyFormatError(
                    f"legacy predicate {LEGACY_PREDICATE_TYPE} (model-signing < 0.3) is refused "
                    "without the legacy switch"
                )
            return _read_legacy(statement)
        if predicate_type != PREDICATE_TYPE:
            raise BundleError(f"unsupported predicateType {predicate_type!r}")
        return _read_v1(statement)


# -- reading statements ---------------------------------------------------------------------


def _bad(message: str, rule_id: str = "MG305") -> ManifestError:
    return ManifestError(message, rule_id=rule_id)


def _dump_sizes(sizes: Mapping[str, int]) -> str:
    return json.dumps(dict(sizes), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_sizes(value: str | None) -> dict[str, int]:
    if value is None:
        return {}
    try:
        sizes = json.loads(value)
    except ValueError as exc:
        raise _bad(f"subject annotation {SIZES_ANNOTATION} is not JSON: {exc}") from exc
    if not isinstance(sizes, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 0 for k, v in sizes.items()
    ):
        raise _bad(f"subject annotation {SIZES_ANNOTATION} is not an object of sizes")
    return sizes


def _field(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad(f"{where}.{key} is missing or not a {kind.__name__}")
    return value


def _hash_type(name: Any, where: str) -> str:
    try:
        return normalize_algorithm(name)
    except ConfigError as exc:
        raise _bad(f"{where}: unknown hash type {name!r}") from exc


def _digest(value: Any, algorithm: str, where: str) -> str:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise _bad(f"{where}: digest is not hexadecimal")
    if len(value) != _HEX_LENGTH[algorithm]:
        raise _bad(f"{where}: a {algorithm} digest has {_HEX_LENGTH[algorithm]} hex digits")
    return value.lower()


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        reason = check_name(name)
        if reason is not None:
            raise _bad(f"unsafe name {name!r}: {reason}", "MG306")
    for name, other in collisions(names):
        raise _bad(f"names {name!r} and {other!r} are the same after case folding", "MG306")


def _read_serialization(value: Any) -> Serialization:
    if not isinstance(value, Mapping):
        raise _bad("predicate.serialization is missing or not an object")
    method = value.get("method")
    if method not in ("files", "shards"):
        raise _bad(f"unknown serialization method {method!r}")
    hash_type = _hash_type(value.get("hash_type"), "predicate.serialization.hash_type")
    shard_size: int | None = None
    if method == "shards":
        raw = value.get("shard_size")
        # model-signing 1.1 writes it through a protobuf Struct, as a float (67108864.0).
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if type(raw) is not int or raw <= 0:
            raise _bad("predicate.serialization.shard_size is missing or not a positive integer")
        shard_size = raw
    allow = value.get("allow_symlinks", False)
    ignore = value.get("ignore_paths", [])
    if not isinstance(allow, bool):
        raise _bad("predicate.serialization.allow_symlinks is not a boolean")
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise _bad("predicate.serialization.ignore_paths is not a list of strings")
    for pattern in ignore:  # verifiers re-apply them: they must stay inside the model
        try:
            normalize_pattern(pattern)
        except ConfigError as exc:
            raise _bad(f"predicate.serialization.ignore_paths: {exc}") from exc
    return Serialization(method, hash_type, shard_size, allow, tuple(sorted(set(ignore))))


def _read_resource(value: Any, ser: Serialization, index: int) -> Resource:
    where = f"predicate.resources[{index}]"
    if not isinstance(value, Mapping):
        raise _bad(f"{where} is not an object")
    name = _field(value, "name", str, where)
    algorithm = _field(value, "algorithm", str, where)
    sharded = _SHARDED_ALGORITHM.fullmatch(algorithm)
    if sharded is not None and ser.method == "shards":
        if int(sharded[2]) != ser.shard_size:
            raise _bad(f"{where}.algorithm {algorithm!r} does not match shard_size")
        algorithm = sharded[1]
    if _hash_type(algorithm, f"{where}.algorithm") != ser.hash_type:
        raise _bad(f"{where}.algorithm {value['algorithm']!r} is not {ser.hash_type}")
    if ser.method == "shards" and _SHARD.fullmatch(name) is None:
        raise _bad(f"{where}.name {name!r} is not a shard name (path:start:end)")
    digest = _digest(value.get("digest"), ser.hash_type, where)
    return Resource(name, digest, ser.hash_type, None, ser.method == "shards")


def _check_shards(by_file: Mapping[str, list[Resource]], shard_size: int) -> None:
    for name, shards in by_file.items():
        offset = 0
        for i, resource in enumerate(shards):
            start, end = resource.shard or (0, 0)
            last = i == len(shards) - 1
            if start != offset or end <= start or end - start > shard_size:
                raise _bad(f"shards of {name!r} do not cover the file contiguously")
            if not last and end - start != shard_size:
                raise _bad(f"shard {resource.name!r} is shorter than the shard size")
            offset = end


def _subject_annotations(subject: Mapping[str, Any]) -> dict[str, str]:
    raw = subject.get("annotations", {})
    if not isinstance(raw, Mapping):
        raise _bad("subject[0].annotations is not an object")
    annotations: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            annotations[str(key)] = value
        elif str(key).startswith("modelguard."):
            raise _bad(f"subject annotation {key} is not a string")
        else:  # another tool's structured annotation: kept, as compact JSON text
            annotations[str(key)] = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return annotations


def _read_v1(statement: Mapping[str, Any]) -> Manifest:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _bad("the statement must have exactly one subject")
    subject = subjects[0]
    model_name = subject.get("name", "")
    if not isinstance(model_name, str):
        raise _bad("subject[0].name is not a string")
    digests = subject.get("digest")
    if not isinstance(digests, Mapping):
        raise _bad("subject[0].digest is missing")
    root = _digest(digests.get("sha256"), "sha256", "subject[0].digest.sha256")
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        raise _bad("predicate is missing or not an object")
    ser = _read_serialization(predicate.get("serialization"))
    raw_resources = predicate.get("resources")
    if not isinstance(raw_resources, list):
        raise _bad("predicate.resources is missing or not a list")
    listed = [_read_resource(r, ser, i) for i, r in enumerate(raw_resources)]
    names = [r.name for r in listed]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise _bad(f"resource {duplicate!r} is listed more than once")
    annotations = _subject_annotations(subject)
    sizes = _parse_sizes(annotations.get(SIZES_ANNOTATION))
    file_names = sorted({r.file_name for r in listed})
    if file_names != [_SELF]:
        _check_names(sorted(set(file_names) | set(sizes)))
    if sizes:
        extra = set(sizes) - set(file_names)
        if set(file_names) - set(sizes) or (ser.method == "files" and extra):
            raise _bad(f"subject annotation {SIZES_ANNOTATION} does not list the signed files")
        if any(sizes[n] for n in extra):  # shard mode: only empty files have no shard
            raise _bad(f"{SIZES_ANNOTATION} lists a non-empty file that has no shard")
        listed = [
            Resource(r.name, r.digest, r.algorithm, sizes[r.file_name], r.sharded) for r in listed
        ]
    elif not listed:
        raise _bad("the manifest lists no files", "MG316")
    manifest = Manifest(model_name, tuple(listed), ser, annotations)
    if ser.shard_size is not None:
        shards = {k: v for k, v in manifest.by_file().items() if v}
        _check_shards(shards, ser.shard_size)
        for name, parts in shards.items():
            if sizes and (parts[-1].shard or (0, 0))[1] != sizes[name]:
                raise _bad(f"shards of {name!r} do not end at its signed size")
    hasher = hashlib.sha256()
    for resource in listed:
        hasher.update(bytes.fromhex(resource.digest))
    # model-signing hashes the resources in the order it lists them, which is our order; a
    # statement listed in another order is accepted when it hashes to its root in that order.
    if root not in (manifest.root_digest(), hasher.hexdigest()):
        raise _bad(
            f"the root digest {root} does not recompute from the resources "
            f"({manifest.root_digest()})"
        )
    # The binding is derived from the rest: checked here, then dropped (to_statement
    # recomputes it), so that a manifest read back equals the one that was written.
    binding = annotations.pop(BINDING_ANNOTATION, None)
    if binding is not None and binding != manifest.binding_digest():
        raise _bad(
            f"the {BINDING_ANNOTATION} digest {binding} does not match the resources "
            f"({manifest.binding_digest()})"
        )
    return replace(manifest, annotations=annotations)


def _read_legacy(statement: Mapping[str, Any]) -> Manifest:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise _bad("the legacy statement has no subjects")
    resources: list[Resource] = []
    for i, subject in enumerate(subjects):
        where = f"subject[{i}]"
        if not isinstance(subject, Mapping):
            raise _bad(f"{where} is not an object")
        annotations = subject.get("annotations")
        kind = annotations.get("actual_hash_algorithm") if isinstance(annotations, dict) else None
        if kind != "file-sha256":
            raise _bad(f"{where}: unsupported legacy hash {kind!r} (expected 'file-sha256')")
        digests = subject.get("digest")
        if not isinstance(digests, Mapping):
            raise _bad(f"{where}.digest is missing")
        name = _field(subject, "name", str, where)
        resources.append(Resource(name, _digest(digests.get("sha256"), "sha256", where), "sha256"))
    names = [r.name for r in resources]
    if len(set(names)) != len(names):
        raise _bad("a file is listed more than once in the legacy statement")
    _check_names(names)
    return Manifest("", tuple(resources), Serialization("files", "sha256"), {}, legacy=True)


def build_manifest(
    path: str | os.PathLike[str],
    *,
    algorithm: str = "sha256",
    shard_size: int | None = None,
    ignore_paths: Sequence[str] = (),
    ignore_git_paths: bool = True,
    allow_links: bool = False,
    annotations: Mapping[str, str] | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> Manifest:
    """List and hash a model into a manifest (the same digests model-signing computes).

    Args:
        path: a model folder or a single model file.
        algorithm: ``sha256`` (default), ``blake2b`` or ``blake3``.
        shard_size: hash files in shards of this many bytes (``shards`` serialization);
            None hashes whole files. As in model-signing, an empty file has no shard (its
            size 0 is still signed in ``modelguard.sizes``).
        ignore_paths: see `list_model`.
        ignore_git_paths: see `list_model`.
        allow_links: see `list_model`.
        annotations: extra subject annotations (repository, revision, expiry, version).
        workers: hashing threads; defaults to the number of CPUs.
        progress: called with (bytes done, bytes total) while hashing.

    Returns:
        The manifest, with ``modelguard.sizes`` in its annotations.

    Raises:
        ConfigError: bad algorithm, shard size or ignore path.
        SourceError: the path does not exist.
        ManifestError: the listing has problems (rule id of the first one), or no files (MG316).
        IntegrityError: a file could not be hashed or changed while it was hashed.
    """
    algorithm = normalize_algorithm(algorithm)
    if shard_size is not None and (type(shard_size) is not int or shard_size <= 0):
        raise ConfigError(f"shard_size must be a positive integer, got {shard_size!r}")
    listing = list_model(
        path, ignore_paths=ignore_paths, ignore_git_paths=ignore_git_paths, allow_links=allow_links
    )
    if listing.problems:
        first = listing.problems[0]
        names = ", ".join(sorted({p.name or "" for p in listing.problems}))
        raise ManifestError(f"{first.message} ({names})", rule_id=first.rule_id)
    if not listing.files:
        raise ManifestError(f"the model {listing.root} has no files", rule_id="MG316")
    tasks: list[HashTask] = []
    owner: list[ModelFile] = []
    for file in listing.files:
        # An allowed link is hashed through its resolved target, opened without following
        # links, so that re-pointing the link while hashing cannot change what is read.
        real = file.link_target or file.path
        if shard_size is None:
            tasks.append(HashTask(real, file.name))
            owner.append(file)
            continue
        for start in range(0, file.size, shard_size):
            end = min(start + shard_size, file.size)
            tasks.append(HashTask(real, f"{file.name}:{start}:{end}", start, end))
            owner.append(file)
    results = hash_tasks(tasks, algorithm, workers=workers, progress=progress)
    resources: list[Resource] = []
    for file, result in zip(owner, results, strict=True):
        if result.error is None and result.identity is not None:
            seen, listed = result.identity, file.identity
            if (seen.dev, seen.ino, seen.size, seen.mtime_ns) != (
                listed.dev,
                listed.ino,
                listed.size,
                listed.mtime_ns,
            ):
                result = replace(result, error="changed between listing and hashing")
        if result.error is not None:
            raise IntegrityError(f"cannot hash {file.name}: {result.error}")
        resources.append(
            Resource(result.name, result.digest, algorithm, file.size, shard_size is not None)
        )
    notes = dict(annotations or {})
    notes[SIZES_ANNOTATION] = _dump_sizes({f.name: f.size for f in listing.files})
    ignored = set(normalize_pattern(p) for p in ignore_paths)
    if ignore_git_paths:
        ignored.update(DEFAULT_IGNORED)
    serialization = Serialization(
        "files" if shard_size is None else "shards",
        algorithm,
        shard_size,
        allow_links,
        tuple(sorted(ignored)),
    )
    name = os.path.basename(listing.root)
    return Manifest(name, tuple(resources), serialization, notes)
