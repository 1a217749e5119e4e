"""safetensors files and sharded safetensors indexes: strict header rules and consistency.

safetensors cannot run code on load, so what matters is where it is ambiguous or hides
bytes: a header a lenient reader accepts and the reference refuses (or the other way round,
ToB TOB-SFTN-7 duplicate keys), unindexed bytes after the tensors where a pickle or zip
rides along (a polyglot), metadata aimed at tools that act on it, and sharded checkpoints
whose index and shards disagree (a tensor a loader takes from an unexpected shard, or
capacity no index points at).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Literal

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import FileBlob, SliceBlob
from modelguard.formats.safetensors import HeaderError, SafetensorsHeader, read_header
from modelguard.formats.sniff import safetensors_header_length

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = ["analyse_safetensors", "check_shard_index"]

# Formats found in the unindexed tail that are only bytes, not a second reading of the file.
_INERT = frozenset({"text", "unknown", "raw", "limit"})
_LONG_VALUE = 64 * 1024
_EXAMPLES = 5
_URL = re.compile(r"\b(?:https?|ftp|file|s3|gs|hf)://", re.IGNORECASE)
# Code-like text: what a tool that evals or renders metadata would run. Deliberately narrow so
# that ordinary metadata ({"format": "pt"}, licences, training arguments) stays quiet.
_CODE = re.compile(
    r"(?:^|[;\n])[ \t]*import[ \t]+[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*(?:$|[;\n,])"
    r"|\bfrom[ \t]+[\w.]+[ \t]+import[ \t]+[\w*(]"
    r"|\b(?:eval|exec|__import__|getattr|compile)\("
    r"|\bos\.(?:system|popen|exec\w*)\b|\bsubprocess\.\w+|\bbuiltins\."
    r"|<\s*script\b|javascript:|\bon(?:load|error)\s*=",
    re.IGNORECASE | re.MULTILINE,
)
_TEMPLATE = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def analyse_safetensors(scan: FileScan, blob: Blob, loc: Location, depth: int) -> str:
    """Check a safetensors file's header and its unindexed tail; return "safetensors".

    Reports MG410 (one finding per kind of rule violation), MG403 (repeated header keys),
    MG411 (unusual tensor entries, names or metadata) and MG202 (a known format in the bytes
    after the tensors). Never reads the tensor data; never raises.
    """
    try:
        header = read_header(blob, scan.limits.max_header_bytes)
    except LimitExceeded as exc:
        scan.incomplete("MG003", f"safetensors: {exc}", loc.at(exc.offset))
        return "safetensors"
    except HeaderError as exc:
        if exc.kind == "header-beyond-file":
            # Truncated or crafted: the reference loader refuses it, and what the header
            # would say is unknown. Reported as invalid (it blocks) and as incomplete.
            scan.incomplete("MG002", f"safetensors is truncated: {exc}", loc.at(exc.offset))
        scan.finding(
            "MG410",
            f"safetensors header unreadable: {exc}",
            loc.at(exc.offset),
            problem=exc.kind,
            detail=str(exc)[:200],
        )
        return "safetensors"
    for problem in header.problems:
        scan.finding(
            "MG410",
            f"safetensors {problem.kind}: {problem.detail}"
            + (f" (and {problem.count - 1} more)" if problem.count > 1 else ""),
            loc,
            problem=problem.kind,
            count=str(problem.count),
            detail=problem.detail[:200],
        )
    if header.duplicates:
        names = sorted(set(header.duplicates))
        scan.finding(
            "MG403",
            f"safetensors header repeats {len(names)} key(s): readers keep different copies",
            loc,
            keys=_examples(names),
            count=str(len(names)),
        )
    _check_metadata(scan, header, loc)
    _check_tail(scan, blob, header, loc, depth)
    return "safetensors"


def _examples(names: list[str]) -> str:
    shown = ", ".join(repr(n)[:80] for n in names[:_EXAMPLES])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _EXAMPLES else "")


def _check_tail(
    scan: FileScan, blob: Blob, header: SafetensorsHeader, loc: Location, depth: int
) -> None:
    """Analyse bytes after the last tensor: the format forbids them; payloads hide there."""
    if header.problem("beyond-file") or header.data_end >= blob.size:
        return
    start = header.data_end
    size = blob.size - start
    tloc = loc.inner("<after-tensors>")
    # Analysed as a reading of its own, which must not add to the file's formats.
    before = len(scan.formats)
    fmt = scan.analyse(SliceBlob(blob, start, size), tloc, depth + 1)
    del scan.formats[before:]
    if fmt not in _INERT:
        scan.finding(
            "MG202",
            f"the file is both safetensors and a {fmt} ({size} bytes after the tensors)",
            loc.at(start),
            formats=f"safetensors+{fmt}",
            bytes=str(size),
        )
    else:
        scan.finding(
            "MG410",
            f"{size} bytes after the last tensor are not indexed by the header ({fmt})",
            loc.at(start),
            problem="trailing-bytes",
            bytes=str(size),
        )


def _reasons(text: str) -> list[str]:
    """What is unusual about a metadata value: url, code, template, long-value."""
    found = []
    if len(text) > _LONG_VALUE:
        found.append("long-value")
        text = text[: 4 * _LONG_VALUE]  # bound the regex work on huge values
    if _URL.search(text):
        found.append("url")
    if _CODE.search(text):
        found.append("code")
    if _TEMPLATE.search(text):
        found.append("template")
    return found


def _bad_name(name: str) -> bool:
    """Control characters, path separators or a dot-only name: what tools writing tensors to
    files by name (or displaying them) would trip over."""
    return bool(_CONTROL.search(name)) or "/" in name or "\\" in name or name in ("", ".", "..")


def _check_metadata(scan: FileScan, header: SafetensorsHeader, loc: Location) -> None:
    """MG411: unusual entry keys, tensor names and metadata content (one finding per reason)."""
    hits: dict[str, list[str]] = defaultdict(list)
    for entry in header.tensors:
        if entry.extra_keys:
            hits["extra-keys"].append(f"{entry.name}:{','.join(entry.extra_keys)}")
        if _bad_name(entry.name):
            hits["tensor-name"].append(entry.name)
    for key, value in header.metadata:
        if _CONTROL.search(key):
            hits["metadata-key"].append(key)
        for reason in _reasons(value):
            hits[reason].append(key)
    for reason, names in hits.items():
        scan.finding(
            "MG413" if reason in _CODE_REASONS else "MG411",
            f"safetensors header: {_MG411_TEXT[reason]} ({len(names)})",
            loc,
            reason=reason,
            count=str(len(names)),
            examples=_examples(names),
        )


# Code and templates in metadata are there to be run by something: reported apart (MG413).
_CODE_REASONS = frozenset({"code", "template"})
_MG411_TEXT = {
    "extra-keys": "tensor entries carry keys beyond dtype, shape and data_offsets",
    "tensor-name": "tensor names with control characters, path separators or dot-only names",
    "metadata-key": "metadata keys with control characters",
    "long-value": f"metadata values longer than {_LONG_VALUE} characters",
    "url": "metadata values holding URLs",
    "code": "metadata values holding code-like text",
    "template": "metadata values holding template syntax",
}


# -- sharded checkpoints -------------------------------------------------------------------


def _shard_path_problem(name: str) -> bool:
    """A shard name a loader would join to the folder and leave it by (or reach a subfolder)."""
    return (
        "/" in name
        or "\\" in name
        or name in ("", ".", "..")
        or "\x00" in name
        or (len(name) >= 2 and name[1] == ":")
    )


def check_shard_index(scan: FileScan, index: dict[str, object], loc: Location) -> None:
    """Check a sharded checkpoint's index (``weight_map``) against itself and its shards.

    Reports MG412 when a shard name has path components, and, for an index file on disk
    (`scan.path` set, not an archive member), when shards beside it are missing, lack
    tensors the index puts there, hold tensors the index does not put there (unreferenced
    capacity), or define the same tensor twice (shadowing). Only shard headers are read,
    each bounded by max_header_bytes; at most max_members shards. Shards whose content is
    not safetensors (``pytorch_model.bin`` shards) are not opened: their names cannot be
    read without unpickling. A safetensors shard whose header cannot be read makes the
    index result incomplete (MG002); the shard's own scan reports why (MG410). Never raises.

    A value is a shard name, or a non-empty list of shard names: Keras 3 sharded weights
    (`model.save_weights("x.weights.json", max_shard_size=...)`) map each layer path to
    the `.weights.h5` shards holding its variables.
    """
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        return
    by_shard: dict[str, set[str]] = defaultdict(set)
    refs: dict[str, tuple[str, ...]] = {}
    bad_values: list[str] = []
    for tensor, shard in weight_map.items():
        named: tuple[str, ...]
        if isinstance(shard, str):
            named = (shard,)
        elif isinstance(shard, list) and shard and all(isinstance(s, str) for s in shard):
            named = tuple(shard)
        else:
            bad_values.append(tensor)
            continue
        refs[tensor] = named
        for name in named:
            by_shard[name].add(tensor)
    if bad_values:
        _mismatch(scan, loc, "bad-entry", "weight_map values that are not file names", bad_values)
    escaping = sorted(s for s in by_shard if _shard_path_problem(s))
    if escaping:
        _mismatch(
            scan,
            loc,
            "shard-path",
            "shard names with path components, absolute or climbing out of the folder",
            escaping,
        )
    if scan.path is None or loc.members:
        return
    folder = os.path.dirname(os.path.abspath(scan.path))
    shards = sorted(s for s in by_shard if not _shard_path_problem(s))
    if len(shards) > scan.limits.max_members:
        scan.incomplete(
            "MG003",
            f"max_members reached ({len(shards)} shards named; {scan.limits.max_members} checked)",
            loc,
        )
        shards = shards[: scan.limits.max_members]
    contents: dict[str, frozenset[str]] = {}
    missing_files: list[str] = []
    for shard in shards:
        names = _shard_names(scan, os.path.join(folder, shard), shard, loc)
        if names == "missing":
            missing_files.append(shard)
        elif names == "stop":
            break
        elif isinstance(names, frozenset):
            contents[shard] = names
    if missing_files and len(missing_files) == len(shards):
        # None of the shards is here: an index on its own (copied or downloaded alone, or a
        # Hugging Face cache blob, whose neighbours are named by digest). There is nothing
        # to compare it with; the shards are checked against it where they are scanned.
        return
    if missing_files:
        _mismatch(
            scan, loc, "missing-shard", "shards named by the index are missing", missing_files
        )
    _compare(scan, loc, refs, by_shard, contents)


def _shard_names(
    scan: FileScan, path: str, shard: str, loc: Location
) -> frozenset[str] | Literal["missing", "stop"] | None:
    """Return the tensor names in one shard's header; "missing" if there is no such file,
    "stop" when max_total_bytes is reached, None if the shard could not be checked."""
    try:
        blob = FileBlob.open(path)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:
        # ValueError: a name the OS cannot take (a lone surrogate from a JSON escape).
        reason = getattr(exc, "strerror", None) or str(exc)[:80]
        scan.incomplete("MG001", f"shard {shard[:80]!r}: cannot read ({reason})", loc)
        return None
    with blob:
        if safetensors_header_length(blob) is None:
            if shard.endswith(".safetensors"):
                scan.incomplete(
                    "MG002",
                    f"shard {shard!r} is not safetensors: the index was not checked against it",
                    loc,
                )
            return None  # pytorch_model.bin shards: their content is their own scan's job
        length = int.from_bytes(blob.read(0, 8), "little")
        if not scan.charge(8 + min(length, blob.size), loc):
            return "stop"
        try:
            header = read_header(blob, scan.limits.max_header_bytes)
        except LimitExceeded as exc:
            scan.incomplete("MG003", f"shard {shard!r}: {exc}", loc)
            return None
        except FormatError as exc:
            scan.incomplete(
                "MG002",
                f"shard {shard!r} header unreadable ({exc}): the index was not checked against it",
                loc,
            )
            return None
    return frozenset(t.name for t in header.tensors)


def _compare(
    scan: FileScan,
    loc: Location,
    refs: dict[str, tuple[str, ...]],
    by_shard: dict[str, set[str]],
    contents: dict[str, frozenset[str]],
) -> None:
    """Compare what the index puts in each shard with what each (read) shard holds."""
    holders: dict[str, list[str]] = defaultdict(list)
    for shard, names in contents.items():
        for name in names:
            holders[name].append(shard)
    missing = sorted(t for shard, names in contents.items() for t in by_shard[shard] - names)
    shadowed = sorted(name for name, where in holders.items() if len(where) > 1)
    unreferenced = sorted(
        f"{shard}:{name}"
        for shard, names in contents.items()
        for name in names
        if shard not in refs.get(name, ()) and len(holders[name]) == 1
    )
    if missing:
        _mismatch(
            scan,
            loc,
            "missing-tensor",
            "tensors the index puts in a shard that lacks them",
            missing,
        )
    if unreferenced:
        _mismatch(
            scan, loc, "unreferenced", "shard tensors the index does not point at", unreferenced
        )
    if shadowed:
        _mismatch(scan, loc, "shadowed", "tensors defined in more than one shard", shadowed)


def _mismatch(scan: FileScan, loc: Location, problem: str, what: str, names: list[str]) -> None:
    scan.finding(
        "MG412",
        f"shard index: {len(names)} {what}",
        loc,
        problem=problem,
        count=str(len(names)),
        examples=_examples(names),
    )
