"""Provenance indicators of a model folder: signature presence and coverage, Hugging Face
revision pinning, pickle-only weights (MG530-MG533).

Everything here reads file heads and small JSON documents only; no tensor data, no
cryptography. Whether a signature is *valid* is `modelguard verify`'s job: this module parses
a signature's DSSE payload without verifying it, to see which files it would cover.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from modelguard.config import Limits
from modelguard.errors import ModelGuardError
from modelguard.formats.blob import FileBlob
from modelguard.formats.sniff import (
    GGUF_MAGIC,
    HDF5_MAGIC,
    PickleSignature,
    looks_like_onnx,
    pickle_signature,
    safetensors_header_length,
    zip_candidate,
)
from modelguard.formats.zipread import read_zip
from modelguard.results import Finding, Location, Severity
from modelguard.rules import RULES

__all__ = [
    "LOADER_PATTERNS",
    "SIGNATURE_PATTERNS",
    "HubRevision",
    "check_provenance",
    "hub_revision",
    "weight_kind",
]

# Files a Hugging Face / sentence-transformers / llama.cpp loader reads, matched on the
# basename (case-insensitive). Weights are recognised by content (`weight_kind`) as well.
LOADER_PATTERNS: tuple[str, ...] = (
    "*config*.json",  # config.json, tokenizer_config.json, generation_config.json, ...
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",  # sentencepiece
    "*.tiktoken",
    "*.jinja",
    "chat_template.json",
    "modules.json",  # sentence-transformers pipeline
    "*.index.json",  # shard index: decides which file each tensor is read from
    "*.py",  # trust_remote_code modules
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.gguf",
    "*.onnx",
    "*.onnx_data",
    "*.h5",
    "*.keras",
    "*.msgpack",
    "*.npz",
    "*.npy",
    "*.pkl",
    "*.joblib",
)

# Names that are a signature file whatever their content; JSON files are also recognised by
# content (a Sigstore bundle media type near the start).
SIGNATURE_PATTERNS: tuple[str, ...] = ("*.sig", "*.sigstore", "*.sigstore.json")

# Trainer state that `transformers.Trainer` writes beside checkpoints: pickles, not weights.
_TRAINER_STATE = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*")
_SKIPPED_TOP = (".git", ".cache")  # VCS data and huggingface_hub's download metadata
_BUNDLE_SNIFF = 4096  # bytes of a JSON file searched for the bundle media type
_BUNDLE_MAX = 16 * 1024 * 1024  # a signature file larger than this is not parsed (named limit)
_LIST_MAX = 20  # file names listed in one evidence value
_MEDIA_PREFIX = b"application/vnd.dev.sigstore.bundle"
_NUMPY_MAGIC = b"\x93NUMPY"
_HEX_SHA = re.compile(r"[0-9a-f]{40}")
_PICKLE_KINDS = frozenset({"pickle", "torch-zip"})


def _finding(
    rule_id: str,
    message: str,
    location: Location,
    evidence: Mapping[str, str],
    severity: Severity | None = None,
) -> Finding:
    default = severity or RULES[rule_id].severity or Severity.INFO
    return Finding(rule_id, default, message, location, tuple(sorted(evidence.items())))


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return _pattern(tuple(patterns)).match(name.rsplit("/", 1)[-1].lower()) is not None


@functools.lru_cache(maxsize=32)
def _pattern(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for a set of glob patterns (a scan checks thousands of names)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _skipped(name: str) -> bool:
    return name.split("/", 1)[0] in _SKIPPED_TOP


def _name_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LIST_MAX])
    if len(names) > _LIST_MAX:
        shown += f", ... ({len(names) - _LIST_MAX} more)"
    return shown


def _read_regular(path: str, limit: int) -> bytes | None:
    """Return up to `limit` bytes of `path` if it is a regular file (a link to one is
    followed), else None. Opened non-blocking: a FIFO planted in a model folder must not
    hang the scan."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def weight_kind(path: str) -> str | None:
    """Return what kind of weights file `path` is by its content, or None.

    Kinds: `safetensors`, `gguf`, `hdf5`, `numpy`, `onnx` (content and a `.onnx` name),
    `torch-zip` (a zip archive with a `data.pkl` member), `zip` (other archives named
    `.npz`/`.keras`), `pickle` (a pickle with a PROTO opcode).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode):  # FIFOs, devices: never read (a FIFO would block)
        os.close(fd)
        return None
    blob = FileBlob(fd, st.st_size)
    with blob:
        try:
            head = blob.read(0, 64)
            if safetensors_header_length(blob) is not None:
                return "safetensors"
            if head.startswith(GGUF_MAGIC):
                return "gguf"
            if head.startswith(HDF5_MAGIC):
                return "hdf5"
            if head.startswith(_NUMPY_MAGIC):
                return "numpy"
            if pickle_signature(head) is PickleSignature.STRONG:
                return "pickle"
            lower = path.lower()
            if lower.endswith(".onnx") and looks_like_onnx(head):
                return "onnx"
            if zip_candidate(blob):
                return _zip_kind(blob, lower)
        except (OSError, ModelGuardError):
            return None
    return None


def _zip_kind(blob: FileBlob, lower_name: str) -> str | None:
    try:
        view = read_zip(blob, Limits())
    except ModelGuardError:
        return None
    if any(m.name == "data.pkl" or m.name.endswith("/data.pkl") for m in view.members):
        return "torch-zip"
    if lower_name.endswith((".npz", ".keras")):
        return "zip"
    return None


@dataclass(frozen=True, slots=True)
class HubRevision:
    """Where a Hugging Face cache snapshot comes from.

    Attributes:
        repo_folder: the `models--org--name` folder.
        commit: the snapshot folder name (the commit the snapshot holds).
        refs: names of the refs (`main`, `pr/1`, a tag) that point at `commit`, sorted.
    """

    repo_folder: str
    commit: str
    refs: tuple[str, ...]

    @property
    def pr_only(self) -> bool:
        """True when only pull-request refs (`refs/pr/N`) reach the commit."""
        return bool(self.refs) and all(ref.startswith("pr/") for ref in self.refs)


def hub_revision(folder: str) -> HubRevision | None:
    """Return the snapshot `folder` belongs to, if it lies in a Hugging Face cache.

    The layout is `<cache>/models--org--name/{blobs,refs,snapshots/<commit>}`; each file
    under `refs/` holds the commit a branch, tag or `pr/N` resolved to when downloaded.
    `folder` may be the snapshot itself or a folder inside it.
    """
    for candidate in dict.fromkeys((os.path.abspath(folder), os.path.realpath(folder))):
        path = PurePosixPath(candidate.replace(os.sep, "/"))
        for snapshot in (path, *path.parents):
            parent = snapshot.parent
            if parent.name != "snapshots" or not parent.parent.name.startswith("models--"):
                continue
            repo = parent.parent
            return HubRevision(str(repo), snapshot.name, _refs_to(str(repo), snapshot.name))
    return None


def _refs_to(repo: str, commit: str) -> tuple[str, ...]:
    refs_dir = os.path.join(repo, "refs")
    found: list[str] = []
    for root, _dirs, names in os.walk(refs_dir):
        for name in names:
            ref_path = os.path.join(root, name)
            raw = _read_regular(ref_path, 256)
            if raw is None:
                continue
            value = raw.strip().decode("ascii", "replace")
            if value == commit:
                found.append(os.path.relpath(ref_path, refs_dir).replace(os.sep, "/"))
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class _Signature:
    name: str  # model-relative name of the signature file
    covered: frozenset[str] | None  # model-relative names it lists; None: unreadable
    problem: str = ""


def _looks_like_bundle(path: str) -> bool:
    head = _read_regular(path, _BUNDLE_SNIFF)
    if head is None:
        return False
    return head.lstrip()[:1] == b"{" and _MEDIA_PREFIX in head


def _read_signature(folder: str, name: str) -> _Signature:
    from modelguard.manifest import Manifest
    from modelguard.signing.bundle import parse_bundle

    path = os.path.join(folder, name)
    data = _read_regular(path, _BUNDLE_MAX + 1)
    if data is None:
        return _Signature(name, None, "unreadable or not a regular file")
    if len(data) > _BUNDLE_MAX:
        return _Signature(name, None, f"larger than {_BUNDLE_MAX} bytes, not read")
    try:
        bundle = parse_bundle(data)
        statement = json.loads(bundle.payload.decode("utf-8"))
        manifest = Manifest.from_statement(statement, allow_legacy=True)
    except (ModelGuardError, ValueError, RecursionError) as exc:
        return _Signature(name, None, f"not a readable OMS signature ({exc})")
    base = PurePosixPath(name).parent
    covered: set[str] = set()
    for file_name in manifest.by_file():
        if file_name == ".":  # a single-file signature (model-signing 0.3-1.0): NAME.sig
            target = PurePosixPath(name).name
            if "." in target:
                covered.add(str(base / target.rsplit(".", 1)[0]))
            continue
        covered.add(str(base / file_name) if str(base) != "." else file_name)
    return _Signature(name, frozenset(covered))


def _signatures(folder: str, names: Sequence[str], signed: set[str]) -> list[_Signature]:
    found: list[_Signature] = []
    for name in names:
        if name in signed or (
            name.lower().endswith(".json") and _looks_like_bundle(os.path.join(folder, name))
        ):
            found.append(_read_signature(folder, name))
    return found


def _coverage(
    location: Location, signatures: Sequence[_Signature], names: Sequence[str], weights: set[str]
) -> list[Finding]:
    findings: list[Finding] = []
    for sig in signatures:
        if sig.covered is None:
            findings.append(
                _finding(
                    "MG531",
                    f"Signature file {sig.name} could not be read, so the files it covers are "
                    "unknown.",
                    location,
                    {"signature": sig.name, "reason": sig.problem},
                )
            )
    readable = [sig for sig in signatures if sig.covered is not None]
    if not readable:
        return findings
    covered = frozenset().union(*(sig.covered or frozenset() for sig in readable))
    sig_names = {sig.name for sig in signatures}
    missing = sorted(
        name
        for name in names
        if name not in covered
        and name not in sig_names
        and (name in weights or _matches(name, LOADER_PATTERNS))
    )
    if missing:
        findings.append(
            _finding(
                "MG531",
                f"{len(missing)} file(s) that loaders read are not covered by the signature: "
                f"{_name_list(missing)}.",
                location,
                {
                    "signatures": ", ".join(sorted(s.name for s in readable)),
                    "uncovered": _name_list(missing),
                    "uncovered_count": str(len(missing)),
                },
            )
        )
    return findings


def _revision(location: Location, folder: str) -> list[Finding]:
    revision = hub_revision(folder)
    if revision is None or not revision.refs:
        return []
    refs = ", ".join(revision.refs)
    evidence = {
        "commit": revision.commit,
        "refs": refs,
        "repository": PurePosixPath(revision.repo_folder).name,
    }
    if revision.pr_only:
        return [
            _finding(
                "MG532",
                f"The Hugging Face snapshot {revision.commit} was resolved from a pull-request "
                f"ref ({refs}) only: unreviewed content.",
                location,
                evidence,
                Severity.LOW,
            )
        ]
    branches = ", ".join(ref for ref in revision.refs if not ref.startswith("pr/"))
    return [
        _finding(
            "MG532",
            f"The Hugging Face snapshot {revision.commit} was resolved from branch {branches} "
            "rather than a pinned commit.",
            location,
            evidence,
        )
    ]


_FORMAT_KINDS = (
    ("safetensors", "safetensors"),
    ("gguf", "gguf"),
    ("hdf5", "hdf5"),
    ("npy", "numpy"),
    ("numpy", "numpy"),
    ("onnx", "onnx"),
    ("torch-zip", "torch-zip"),
    ("torchscript", "torch-zip"),
    ("legacy-torch", "pickle"),
    ("legacy-torch-tar", "pickle"),
    ("npz", "zip"),
    ("keras", "zip"),
)


def kind_from_formats(formats: Sequence[str]) -> str | None:
    """Return the weights kind of a file from the formats the scanner recognised in it (the
    same kinds as `weight_kind`, without reading the file again)."""
    return _kind_of(tuple(formats))


@functools.lru_cache(maxsize=256)
def _kind_of(formats: tuple[str, ...]) -> str | None:
    """kind_from_formats, cached: a folder scan asks for a few distinct tuples many times."""
    for name, kind in _FORMAT_KINDS:
        if name in formats:
            return kind
    if formats and formats[0] == "pickle":
        return "pickle"
    return None


def check_provenance(
    folder: str,
    display: str,
    files: Sequence[str],
    formats: Mapping[str, Sequence[str]] | None = None,
) -> list[Finding]:
    """Return the provenance findings for a model folder.

    MG530 (info): weights are present and no signature file is (`*.sig`, `*.sigstore.json`,
    or a JSON file holding a Sigstore bundle). MG531 (low): a signature does not list a file
    loaders read (configs, tokenizer files, templates, code, weights; the union over all
    readable signatures counts, and names a signer chose to ignore are not covered), or a
    signature file cannot be parsed. MG532: the folder is a Hugging Face cache snapshot
    reached from a branch or tag (info) or only from `refs/pr/N` (low); a snapshot no ref
    points at was requested by commit and is pinned. MG533 (info): pickle weights (by content)
    and no safetensors weights.

    Args:
        folder: the model folder on disk.
        display: its display path (findings are located there).
        files: model-relative POSIX names of all files in the folder.
        formats: model-relative name -> the formats the scanner recognised in it; when given,
            files are not read again to tell weights from other files.

    Returns:
        The findings, sorted.
    """
    location = Location(display)
    names = sorted(name for name in files if not _skipped(name))
    if formats is not None:  # the scanner already read every file: use what it recognised
        kinds = {name: kind_from_formats(formats.get(name, ())) for name in names}
    else:
        kinds = {name: weight_kind(os.path.join(folder, name)) for name in names}
    # each name matched once per pattern set, with the compiled sets (a registry folder has
    # thousands of names)
    signature_re, trainer_re = _pattern(SIGNATURE_PATTERNS), _pattern(_TRAINER_STATE)
    bases = {name: name.rsplit("/", 1)[-1].lower() for name in names}
    signed = {name for name in names if signature_re.match(bases[name])}
    weights = {
        name
        for name, kind in kinds.items()
        if kind is not None
        and not (kind in _PICKLE_KINDS and trainer_re.match(bases[name]))
        and name not in signed
    }
    findings: list[Finding] = []
    signatures = _signatures(folder, names, signed)
    if not signatures and weights:
        findings.append(
            _finding(
                "MG530",
                "The model folder carries no signature.",
                location,
                {"weights": _name_list(sorted(weights))},
            )
        )
    findings += _coverage(location, signatures, names, weights)
    findings += _revision(location, folder)
    pickles = sorted(name for name in weights if kinds[name] in _PICKLE_KINDS)
    if pickles and not any(kinds[name] == "safetensors" for name in weights):
        findings.append(
            _finding(
                "MG533",
                f"Weights are shipped only as pickle ({_name_list(pickles)}), with no "
                "safetensors equivalent.",
                location,
                {"pickle_files": _name_list(pickles)},
            )
        )
    return sorted(findings, key=Finding.sort_key)
