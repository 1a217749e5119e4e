"""PyTorch zip archives (`torch.save`, `torch.jit.save`): storage sizes and TorchScript code.

Every pickle of the archive has already been analysed by the zip walk; this adds what only
the archive as a whole shows:

- storage sizes (CVE-2026-24747, torch < 2.10 trusted the declared size): each persistent id
  ``("storage", <storage type>, key, location, numel)`` in ``<dir>data.pkl`` names member
  ``<dir>data/<key>``, which must hold ``numel * element size`` bytes (MG452);
- TorchScript code: ``code/**.py`` is source that `torch.jit.load` compiles and runs; calls
  that read or write host files (MG450) and operators from namespaces torch does not ship
  (MG451) are listed with their member and line. The source is parsed, never compiled.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.torchscript import CodeRef, scan_code
from modelguard.picklevm.values import GlobalRef, ListV

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.formats.zipread import ZipMember, ZipView
    from modelguard.results import Location

__all__ = ["HOST_ACCESS_OPS", "STANDARD_NAMESPACES", "check_legacy_storages", "check_torch_zip"]

# Bytes per element by storage class name, checked against torch 2.13
# (torch._utils._element_size(getattr(torch, name).dtype)). torch >= 2 writes the typed name
# (`torch.FloatStorage`, `torch.BFloat16Storage`, ...) for dtypes that have one and
# `torch.storage.UntypedStorage` with numel counted in bytes for the others (float8, uint16,
# ...), verified with torch.save; `torch.cuda.<X>Storage` is what torch 1.x wrote for CUDA.
_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
    "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip
_STORAGE_MODULES = frozenset({"torch", "torch.storage", "torch.cuda"})

# Pickle member -> folder of its storages, verified with torch.save / torch.jit.save in torch
# 2.13: data.pkl -> data/<key>, TorchScript constants.pkl -> constants/<key>. Not checked:
# traced_inputs.pkl, whose storages torch.jit.trace archives record as empty members.
_STORAGE_FOLDERS = {"data.pkl": "data/", "constants.pkl": "constants/"}

# Operators that read or write host files, as (namespace, name). Found by listing torch
# 2.13's registry (torch._C._jit_get_all_schemas(): 4374 schemas, and
# torch._C._dispatch_get_all_op_names(): 3598 ops) for names containing file, save, load,
# open, read, write, exec, system, popen, spawn, path, dlopen, library, shell, socket, mmap,
# dump or pickle and reading each hit's schema: only aten::from_file (maps a host file into a
# tensor) and aten::save (writes a file) take a file name. debugprims::load_tensor reads only
# from a content store the host process installed; print/warn only write to stdout/stderr.
# torchvision registers image::read_file and image::write_file (torchvision/csrc/io/image).
# TorchScript has no builtin such as open(): the compiler rejects it, so no builtin is listed.
HOST_ACCESS_OPS = frozenset(
    {("aten", "from_file"), ("aten", "save"), ("image", "read_file"), ("image", "write_file")}
)

# Operator and custom-class namespaces torch itself registers (torch 2.13 registry, plus
# prepacked/xnnpack from XNNPACK builds used by optimize_for_mobile, and the historical
# _caffe2): they need no library beyond torch. Left out on purpose: torch's test and debug
# namespaces (_test, debugprims, debug_mode_ops) have no place in a shipped model, and
# torchvision / torchaudio / fbgemm ops need a native library other than torch (torchvision's
# and torchaudio's include file readers), so they are reported like any custom namespace.
STANDARD_NAMESPACES = frozenset(
    {
        "aten", "prim", "prims", "quantized", "_quantized", "quantization", "mkldnn",
        "mkldnn_prepacked", "onednn", "mkl", "sparse", "rngprims", "_native", "inductor",
        "inductor_prims", "_c10d_functional", "_c10d_functional_autograd", "c10d", "_dtensor",
        "symm_mem", "profiler", "static_runtime", "export", "onnx", "prepacked", "xnnpack",
        "_caffe2",
        # custom-class namespaces (torch._C._jit_get_custom_class_schemas())
        "_nnapi", "backendutils", "dist_rpc", "profiling", "rnn",
        # torchvision's operators (nms, roi_align, deform_conv2d, ...) are what scripted
        # detection models call; its file readers (image::read_file) are MG450 regardless.
        "torchvision",
    }
)  # fmt: skip

_COPY = re.compile(r"^(.*) \(copy \d+\)$")
_MAX_REPORTS = 50  # findings per rule per archive; the rest are counted in the last one


def check_torch_zip(scan: FileScan, blob: Blob, view: ZipView, loc: Location, depth: int) -> None:
    """Check a PyTorch zip after its members were analysed: storage sizes, TorchScript code.

    Reports MG452 for storages whose member is missing or of the wrong size, MG450/MG451
    for TorchScript calls; MG003 when the code exceeds ``max_member_bytes`` in total.
    Never raises on hostile input.
    """
    _check_storages(scan, view, loc)
    _check_code(scan, blob, view, loc)


# -- storages --------------------------------------------------------------------------------
def _check_storages(scan: FileScan, view: ZipView, loc: Location) -> None:
    by_name: dict[str, list[ZipMember]] = {}
    for member in view.members:
        by_name.setdefault(member.name, []).append(member)
    # storage member name -> (declared byte counts, first pickle location, key, type, numel)
    declared: dict[str, tuple[set[int], Location, str, str, int]] = {}
    folders: dict[str, str | None] = {}  # pickle member label -> its storage folder
    for ploc, ref in scan.persids:
        if ploc.path != loc.path or ploc.members[:-1] != loc.members or not ploc.members:
            continue
        label = ploc.members[-1]
        if label not in folders:
            folders[label] = _storage_folder(label, by_name)
        folder = folders[label]
        storage = _storage_record(ref.pid) if folder is not None else None
        if folder is None or storage is None:
            continue
        key, type_name, numel, size = storage
        entry = declared.setdefault(folder + key, (set(), ploc, key, type_name, numel))
        entry[0].add(numel * size)
    reports = 0
    for name, (sizes, ploc, key, type_name, numel) in declared.items():
        evidence = {"key": key[:100], "storage": type_name, "numel": str(numel)}
        if len(sizes) > 1:
            reports += 1
            listed = ", ".join(str(s) for s in sorted(sizes)[:5])
            scan.finding(
                "MG452",
                f"storage {key[:100]!r} is declared with different sizes ({listed} bytes)",
                ploc,
                **evidence,
                declared=listed,
            )
        expected = max(sizes)
        members = by_name.get(name, [])
        if not members:
            reports += 1
            scan.finding(
                "MG452",
                f"storage {key[:100]!r} ({expected} bytes declared) has no member {name[:200]!r}",
                ploc,
                **evidence,
                declared=str(expected),
                stored="missing",
            )
        for member in members:
            if member.size != expected:
                reports += 1
                scan.finding(
                    "MG452",
                    f"storage {key[:100]!r} declares {expected} bytes but {name[:200]!r} holds "
                    f"{member.size}",
                    loc.inner(name),
                    **evidence,
                    declared=str(expected),
                    stored=str(member.size),
                )
        if reports >= _MAX_REPORTS:
            return


def check_legacy_storages(
    scan: FileScan, blob: Blob, keys: object, start: int, loc: Location
) -> None:
    """Walk the raw storage records that follow a legacy (non-zip) torch.save's pickles.

    Legacy files end with one record per key of the last pickle: an 8-byte element count,
    then the elements. A count that differs from the pickle's is MG452; records that run
    past the end of the file make the result incomplete (MG002), since the loader fails
    there and the file was cut short. The walk stops at a storage whose element size is
    unknown (nothing after it can be located).
    """
    if not isinstance(keys, ListV):
        return
    records: dict[str, tuple[str, str, int, int]] = {}
    for ploc, ref in scan.persids:
        pid = ref.pid
        if ploc != loc or not isinstance(pid, tuple):
            continue
        record = _storage_record(pid[:5] if len(pid) == 6 else pid)  # 6th: view metadata
        if record is not None:
            records.setdefault(record[0], record)
    pos = start
    for item in keys.items[: scan.limits.max_members]:
        key = item.decode("ascii", "replace") if isinstance(item, bytes) else item
        if not isinstance(key, str) or key not in records:
            return
        record = records[key]
        _, type_name, numel, size = record
        head = blob.read(pos, 8)
        if len(head) < 8:
            scan.incomplete("MG002", "legacy torch file ends before its storage data", loc.at(pos))
            return
        count = int.from_bytes(head, "little")
        if count != numel:
            scan.finding(
                "MG452",
                f"storage {key[:100]!r} is declared with {numel} elements but its record "
                f"holds {count}",
                loc.at(pos),
                key=key[:100],
                storage=type_name,
                numel=str(numel),
                stored=str(count),
            )
        pos += 8 + count * size
        if pos > blob.size:
            scan.incomplete(
                "MG002", f"legacy torch file ends inside storage {key[:100]!r}", loc.at(pos)
            )
            return


def _storage_folder(label: str, by_name: dict[str, list[ZipMember]]) -> str | None:
    """The storage folder for the pickle member labelled `label`, or None if it has none."""
    name = label
    if name not in by_name:
        match = _COPY.match(label)  # a duplicated name is labelled "name (copy N)"
        if match is None:
            return None
        name = match.group(1)
    prefix, _, base = name.rpartition("/")
    folder = _STORAGE_FOLDERS.get(base)
    if folder is None:
        return None
    prefix = prefix + "/" if prefix else ""
    if base == "constants.pkl" and not any(n.startswith(prefix + "code/") for n in by_name):
        return None  # constants/ is the TorchScript layout only
    return prefix + folder


def _storage_record(pid: object) -> tuple[str, str, int, int] | None:
    """(key, storage type name, numel, element size) of a torch storage persistent id.

    None when the id is not a storage whose size is known: the shape torch writes is
    ("storage", GlobalRef(storage class), key, location, numel). An unknown storage class is
    skipped rather than sized by guess; the pickle analysis judges the import itself.
    """
    if not isinstance(pid, tuple) or len(pid) != 5:
        return None
    tag, stype, key, _location, numel = pid
    if tag not in ("storage", b"storage") or not isinstance(stype, GlobalRef):
        return None
    if stype.module not in _STORAGE_MODULES:
        return None
    size = _ELEMENT_SIZE.get(stype.name)
    if size is None:
        return None
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")  # protocol 2 from Python 2 (_maybe_decode_ascii)
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str) or not isinstance(numel, int) or isinstance(numel, bool):
        return None
    return key, f"{stype.module}.{stype.name}", numel, size


# -- TorchScript code ------------------------------------------------------------------------
def _check_code(scan: FileScan, blob: Blob, view: ZipView, loc: Location) -> None:
    from modelguard.formats import zipread

    counts: dict[str, int] = {}
    for member in view.members:
        counts[member.name] = counts.get(member.name, 0) + 1
    seen: dict[str, int] = {}
    budget = scan.limits.max_member_bytes  # all code members together
    reported: dict[tuple[str, str], int] = {}
    for member in view.members:
        seen[member.name] = seen.get(member.name, 0) + 1
        if not _is_code(member.name):
            continue
        label = member.name
        if counts[member.name] > 1:
            label = f"{member.name} (copy {seen[member.name]})"
        mloc = loc.inner(label)
        if member.size > budget:
            scan.incomplete(
                "MG003",
                f"max_member_bytes reached (TorchScript code above "
                f"{scan.limits.max_member_bytes} bytes in total is not analysed)",
                mloc,
            )
            return
        try:
            content = zipread.open_member(blob, member, scan.limits, ignore_encryption=True)
        except (FormatError, LimitExceeded):
            continue  # the zip walk has reported this member as incomplete already
        budget -= min(content.size, budget)
        _judge_code(scan, content.read(0, content.size), member.name, mloc, reported)


def _is_code(name: str) -> bool:
    """TorchScript source: members under a code/ folder, but not the .debug_pkl pickles."""
    if name.endswith("/") or name.endswith(".debug_pkl"):
        return False
    return name.startswith("code/") or "/code/" in name


def _judge_code(
    scan: FileScan, data: bytes, member: str, mloc: Location, reported: dict[tuple[str, str], int]
) -> None:
    code = scan_code(data)
    via = "parsed" if code.parsed else f"text scan ({code.note})"
    for ref in code.refs:
        _judge_ref(scan, ref, member, mloc, via, reported)
    if code.parsed:
        # Host-access names the Python parser saw only inside a string or comment: TorchScript
        # has its own lexer, so text Python takes for a string is not proof of harmlessness.
        seen = {(r.name, r.line) for r in code.refs}
        for ref in code.loose:
            if (ref.name, ref.line) not in seen and _host_op(ref.name):
                _judge_ref(scan, ref, member, mloc, "in a string or comment", reported)


def _judge_ref(
    scan: FileScan,
    ref: CodeRef,
    member: str,
    mloc: Location,
    via: str,
    reported: dict[tuple[str, str], int],
) -> None:
    op = _operator(ref.name)
    if op is None:
        return
    namespace, name = op
    if _host_op(ref.name):
        rule, what = "MG450", f"{'calls' if ref.call else 'references'} {ref.name}"
        message = f"TorchScript code {what} ({namespace}::{name} reads or writes host files)"
    elif namespace not in STANDARD_NAMESPACES:
        rule = "MG451"
        kind = "custom class" if name.startswith("class:") else "operator"
        message = f"TorchScript code uses {kind} {ref.name} from namespace {namespace!r}"
    else:
        return
    # Once per rule and name per member: a model calls the same operator many times.
    key = (rule, f"{member}\0{ref.name}")
    if key in reported:
        return
    total = sum(1 for k in reported if k[0] == rule)
    reported[key] = ref.line
    if total >= _MAX_REPORTS:
        return
    scan.finding(
        rule,
        message,
        mloc,
        call=ref.name[:200],
        member=member[:200],
        line=str(ref.line),
        reading=via,
    )


def _operator(name: str) -> tuple[str, str] | None:
    """(namespace, operator) a TorchScript name resolves to, or None for other names.

    `torch.<op>` is an aten operator and `ops.<ns>.<op>[.overload]` any registered one (the
    TorchScript importer's view; `torch.ops.<ns>.<op>` is accepted too, as hand-written source
    might use it). Custom classes ``[__torch__.]torch.classes.<ns>.<Class>`` are returned as
    (ns, "class:<Class>").
    """
    parts = name.split(".")
    if parts[0] == "__torch__":
        parts = parts[1:]
    if len(parts) >= 4 and parts[:2] == ["torch", "classes"]:
        return parts[2], f"class:{parts[3]}"
    if len(parts) >= 2 and parts[:2] == ["torch", "ops"]:
        parts = parts[1:]
    if len(parts) >= 3 and parts[0] == "ops":
        return parts[1], parts[2]
    if len(parts) == 2 and parts[0] == "torch":
        return "aten", parts[1]
    return None


def _host_op(name: str) -> bool:
    return _operator(name) in HOST_ACCESS_OPS
