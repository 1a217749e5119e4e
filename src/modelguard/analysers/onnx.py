"""ONNX models: external-data paths and custom operator domains.

Loading an ONNX model with external data opens the file each tensor's `location` names,
relative to the model's folder. That path has been used to read arbitrary host files into
the weights (CVE-2022-25882, CVE-2024-27318 `a/../../x`, CVE-2026-27489), through symbolic
links (CVE-2026-34447) and hard links (CVE-2026-34446); unknown external-data keys were once
applied with setattr (CVE-2026-34445). Every external-data entry is checked as a string
and, when the model was scanned from disk, against the file it names (stat only: external
data is never read). Operators outside the standard domains need a host library.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelguard.formats.onnx import ExternalTensor, OnnxModel

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.results import Location

__all__ = ["STANDARD_DOMAINS", "location_problem", "report_external", "report_onnx"]

# Domains onnx and onnxruntime implement themselves. The com.microsoft sub-domains are
# onnxruntime's own (contrib, experimental, NCHWc, DirectML and internal NHWC kernels).
STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.experimental",
        "com.microsoft.nchwc",
        "com.microsoft.dml",
        "com.ms.internal.nhwc",
    }
)
# onnxruntime-extensions' domain: its PyOp runs Python functions registered by the host.
_CONTRIB = "ai.onnx.contrib"
# Keys onnx reads from external_data (onnx/external_data_helper.py); `basepath` is written
# by onnx itself (set_external_data) and ignored when loading.
_KNOWN_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_DIGITS = re.compile(r"[0-9]+")


def location_problem(location: str) -> str | None:
    """Return why an external-data location leaves the model folder, or None.

    The check is on the string alone: absolute (POSIX or Windows, UNC), a drive letter or
    URL scheme, a NUL byte, or `..` that climbs above the folder after normalisation
    (backslashes count as separators, as on Windows).
    """
    if "\x00" in location:
        return "contains a NUL byte"
    unified = location.replace("\\", "/")
    if unified.startswith("/"):
        return "is an absolute path"
    if _SCHEME.match(unified):
        return "has a drive letter" if unified[1:2] == ":" else "has a URL scheme"
    norm = posixpath.normpath(unified)
    if norm == ".." or norm.startswith("../"):
        return "climbs out of the model folder with '..'"
    return None


@dataclass(frozen=True, slots=True)
class _Issue:
    rule: str
    problem: str
    location: str


class _Issues:
    """Findings grouped by (rule, problem, location): a model has thousands of tensors."""

    def __init__(self) -> None:
        self.first: dict[_Issue, ExternalTensor] = {}
        self.count: dict[_Issue, int] = {}

    def add(self, rule: str, problem: str, location: str, tensor: ExternalTensor) -> None:
        key = _Issue(rule, problem, location)
        self.first.setdefault(key, tensor)
        self.count[key] = self.count.get(key, 0) + 1

    def report(self, scan: FileScan, loc: Location) -> None:
        for key, tensor in self.first.items():
            count = self.count[key]
            more = f" (and {count - 1} more tensors)" if count > 1 else ""
            scan.finding(
                key.rule,
                f"external data of tensor {tensor.name[:80]!r} {key.problem}{more}",
                loc,
                tensor=tensor.name[:200],
                location=key.location[:200],
                where=tensor.where[:200],
                tensors=str(count),
            )


def report_onnx(scan: FileScan, model: OnnxModel, loc: Location) -> None:
    """Judge an ONNX model already read: MG430, MG431 and MG432.

    The model is read (and a malformed one reported as MG002) by
    `modelguard.analysers.protobuf.analyse_protobuf`, which recognises it.
    """
    report_external(scan, model.tensors, loc)
    _check_domains(scan, model, loc)


def report_external(scan: FileScan, tensors: Sequence[ExternalTensor], loc: Location) -> None:
    """Judge the external-data entries of tensors: MG430 and MG431.

    Used for a model's tensors and for a serialized tensor (onnx test data, which
    `onnx.numpy_helper.to_array` / `load_tensor` resolve beside the file the same way).
    """
    issues = _Issues()
    on_disk = scan.path is not None and not loc.members
    disk_cache: dict[str, tuple[str, str] | int] = {}
    for tensor in tensors:
        _check_tensor(scan, tensor, issues, disk_cache if on_disk else None)
    issues.report(scan, loc)


def _check_tensor(
    scan: FileScan,
    tensor: ExternalTensor,
    issues: _Issues,
    disk_cache: dict[str, tuple[str, str] | int] | None,
) -> None:
    keys = [k for k, _ in tensor.entries]
    locations = [v for k, v in tensor.entries if k == "location"]
    shown = locations[0] if locations else ""
    unknown = sorted({k for k in keys if k not in _KNOWN_KEYS})
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:5])
        issues.add("MG431", f"has unknown keys {names}", shown, tensor)
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        names = ", ".join(repr(k[:40]) for k in repeated[:5])
        issues.add("MG431", f"repeats keys {names}: readers keep different copies", shown, tensor)
    if tensor.external and not any(locations):
        issues.add("MG431", "is EXTERNAL but names no location", shown, tensor)
    numbers: dict[str, int] = {}
    for key, value in tensor.entries:
        if key in ("offset", "length"):
            if _DIGITS.fullmatch(value) and len(value) <= 20:
                numbers[key] = int(value)
            else:
                issues.add("MG431", f"has a non-integer {key} {value[:40]!r}", shown, tensor)
    for location in locations:
        problem = location_problem(location)
        if problem is not None:
            issues.add("MG430", f"location {problem}", location, tensor)
        elif location and disk_cache is not None and scan.path is not None:
            _check_on_disk(scan.path, location, tensor, numbers, issues, disk_cache)


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives on Windows
        return False


def _stat_target(model_path: str, location: str) -> tuple[str, str] | int:
    """Stat what `location` names beside the model: (rule, problem) or the file's size."""
    base = os.path.dirname(os.path.abspath(model_path))
    norm = posixpath.normpath(location.replace("\\", "/"))
    target = os.path.join(base, *norm.split("/"))
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return "MG431", "names a data file that does not exist"
    except OSError as exc:
        return "MG431", f"names a data file that cannot be inspected ({exc.strerror})"
    real = os.path.realpath(target)
    if not _inside(real, os.path.realpath(base)):
        # A Hugging Face cache snapshot links both the model and its data into one blob
        # store; the data is then exactly as far from the model as the model is from itself.
        model_real = os.path.dirname(os.path.realpath(model_path))
        if not (os.path.islink(model_path) and os.path.dirname(real) == model_real):
            return "MG430", "resolves through a symbolic link to a file outside the model folder"
    if not stat.S_ISREG(info.st_mode):
        return "MG431", "names something that is not a regular file"
    if info.st_nlink > 1:
        # CVE-2026-34446: a hard link is indistinguishable from the file it shares an inode
        # with; onnx >= 1.21 refuses it.
        return "MG430", f"is a hard link ({info.st_nlink} names for one file)"
    return info.st_size


def _check_on_disk(
    model_path: str,
    location: str,
    tensor: ExternalTensor,
    numbers: dict[str, int],
    issues: _Issues,
    disk_cache: dict[str, tuple[str, str] | int],
) -> None:
    if location not in disk_cache:
        disk_cache[location] = _stat_target(model_path, location)
    result = disk_cache[location]
    if isinstance(result, tuple):
        issues.add(result[0], result[1], location, tensor)
        return
    offset = numbers.get("offset", 0)
    length = numbers.get("length")
    if offset > result:
        issues.add(
            "MG431", f"has offset {offset} past the data file's {result} bytes", location, tensor
        )
    elif length is not None and offset + length > result:
        issues.add(
            "MG431",
            f"has offset {offset} + length {length} past the data file's {result} bytes",
            location,
            tensor,
        )


def _check_domains(scan: FileScan, model: OnnxModel, loc: Location) -> None:
    local = set(model.functions)
    local_domains = {domain for domain, _ in model.functions}
    custom: dict[str, str] = {}
    for use in model.ops:
        if use.domain not in STANDARD_DOMAINS and (use.domain, use.op_type) not in local:
            custom.setdefault(use.domain, use.op_type)
    for domain in model.opset_domains:
        if domain not in STANDARD_DOMAINS and domain not in local_domains:
            custom.setdefault(domain, "")
    if not custom:
        return
    domains = sorted(custom)
    example = next(((d, op) for d, op in sorted(custom.items()) if op), (domains[0], ""))
    message = (
        f"operators from non-standard domains {', '.join(repr(d[:60]) for d in domains[:5])}"
        + (" ..." if len(domains) > 5 else "")
        + (f", e.g. {example[0]}::{example[1]}" if example[1] else "")
        + ": the host must register a custom operator library"
    )
    if _CONTRIB in custom:
        message += (
            f"; {_CONTRIB} is onnxruntime-extensions, whose PyOp runs Python functions "
            "registered by the host"
        )
    scan.finding(
        "MG432",
        message,
        loc,
        domains=",".join(d[:60] for d in domains[:20]),
        op=f"{example[0]}::{example[1]}"[:200] if example[1] else "",
    )
