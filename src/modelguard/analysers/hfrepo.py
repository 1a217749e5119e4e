"""Hugging Face model folders as code: configs that import Python, and what lies beside weights.

A model folder is more than weights. ``auto_map`` (transformers, with ``trust_remote_code``),
``custom_pipelines``, sentence-transformers ``modules.json`` and diffusers ``model_index.json``
make loaders import Python files shipped with the model, or fetched from another repository
(``owner/repo--module.Class``: transformers only reuses the caller's revision for code in the
same repository, so pinning the model does not pin that code). `check_config` reports those
references (MG480, MG481), referenced files missing from the folder (MG482) and dangerous
calls in the referenced files, which are parsed with `ast`, never imported (MG485).

`folder_findings` looks at a scanned folder as a whole: native executables and scripts beside
weights (MG483) and pickle weights beside safetensors (MG484).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.policy import Policy
    from modelguard.results import FileResult, Finding, Location

__all__ = ["WEIGHT_FORMATS", "CodeRef", "check_config", "code_refs", "folder_findings"]

#: Formats (`FileResult.formats`) that make a folder a model folder.
WEIGHT_FORMATS = frozenset(
    {"safetensors", "pickle", "legacy-torch", "torch-zip", "gguf", "onnx", "hdf5", "numpy"}
)
_PICKLE_WEIGHTS = frozenset({"pickle", "legacy-torch", "torch-zip"})
_MAYBE_EXECUTABLE = frozenset({"unknown", "text", "json"})
# What transformers' Trainer saves beside the weights of a checkpoint: training state that
# has no safetensors form, not a second copy of the weights (MG484 does not apply).
_TRAINING_STATE = re.compile(
    r"^(optimizer|scheduler|scaler|training_args|rng_state(_\d+)?)\.(pt|pth|bin)$"
)
# diffusers' LOADABLE_CLASSES libraries (pipeline_loading_utils.py); a component whose library
# is none of these is a custom module loaded from the component's folder.
_DIFFUSERS_LIBRARIES = frozenset({"diffusers", "transformers", "onnxruntime.training"})
_ST_PREFIX = "sentence_transformers."
_ST_KEYS = frozenset({"idx", "name", "path", "type"})
MAX_CODE_BYTES = 1024 * 1024  # a Python file larger than this is not parsed
MAX_CODE_FILES = 32  # files parsed per config, referenced and relatively imported
_MAX_REFS = 200  # references read from one config
_MAX_SHOWN = 10  # entries listed in one evidence value
_HEAD = 64  # bytes read to recognise an executable


@dataclass(frozen=True, slots=True)
class CodeRef:
    """One reference from a config to code.

    Attributes:
        key: where it is, e.g. ``auto_map.AutoModel`` or ``modules[1].type``.
        value: the reference as written.
        repo: the repository id before ``--``, or "" for the model's own repository.
        file: the Python file it makes a loader import (relative, POSIX), or "" when it names
            an installed package rather than a file shipped with the model.
        optional: the loader imports ``file`` only if it exists (diffusers components);
            otherwise the reference names the loader's own code.
    """

    key: str
    value: str
    repo: str
    file: str
    optional: bool = False


def _class_ref(key: str, value: str, *, folder: str = "") -> CodeRef:
    """A transformers-style "[owner/repo--]module.Class" reference."""
    repo, _, ref = value.rpartition("--")
    module, _, _ = ref.rpartition(".")
    file = f"{module}.py" if module and "." not in module else ""
    if file and folder:
        file = f"{folder}/{file}"
    return CodeRef(key, value, repo, file)


def _auto_map(value: object) -> Iterator[CodeRef]:
    # A dict {AutoClass: ref or [slow, fast]}, or (old tokenizer configs) a bare [slow, fast].
    items = value.items() if isinstance(value, dict) else [("", value)]
    for auto, ref in items:
        key = f"auto_map.{auto}" if auto else "auto_map"
        refs = ref if isinstance(ref, list) else [ref]
        for one in refs:
            if isinstance(one, str) and one:
                yield _class_ref(key, one)


def _custom_pipelines(value: object) -> Iterator[CodeRef]:
    if not isinstance(value, dict):
        return
    for task, spec in value.items():
        if isinstance(spec, dict) and isinstance(spec.get("impl"), str):
            yield _class_ref(f"custom_pipelines.{task}.impl", spec["impl"])


def _st_modules(value: list[object]) -> Iterator[CodeRef]:
    # sentence-transformers imports `type`; one outside the library is imported from the
    # environment or, as "module.Class", from module.py in the model repository.
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        kind = item["type"]
        if not kind.startswith(_ST_PREFIX):
            yield _class_ref(f"modules[{i}].type", kind)


def _diffusers(value: dict[str, object]) -> Iterator[CodeRef]:
    pipeline = value.get("_class_name")
    if (
        isinstance(pipeline, list)
        and len(pipeline) == 2
        and all(isinstance(p, str) for p in pipeline)
    ):
        # [module, Class]: a custom pipeline in module.py at the repository root.
        yield CodeRef("_class_name", f"{pipeline[0]}.{pipeline[1]}", "", f"{pipeline[0]}.py")
    for name, spec in value.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2:
            continue
        library, cls = spec
        if not isinstance(library, str) or library in _DIFFUSERS_LIBRARIES:
            continue
        if not isinstance(cls, str) or any(c in library for c in "./\\\x00"):
            continue
        # diffusers imports <component>/<library>.py when the folder has it (a custom
        # component); otherwise <library> must be one of its own pipeline modules
        # (["stable_diffusion", "StableDiffusionSafetyChecker"]) and nothing is imported.
        yield CodeRef(name, f"{library}.{cls}", "", f"{name}/{library}.py", optional=True)


def code_refs(value: object, name: str) -> list[CodeRef]:
    """Return the code references in one parsed JSON document (empty for most JSON).

    ``name`` is the document's base name; the shapes are recognised by content, the name
    only decides list documents (``modules.json``) and diffusers indexes without a version.
    """
    refs: list[CodeRef] = []
    if isinstance(value, dict):
        if "auto_map" in value:
            refs += _auto_map(value["auto_map"])
        if "custom_pipelines" in value:
            refs += _custom_pipelines(value["custom_pipelines"])
        if "_diffusers_version" in value or name == "model_index.json":
            refs += _diffusers(value)
    elif isinstance(value, list) and (
        name == "modules.json"
        or any(isinstance(i, dict) and set(i) >= _ST_KEYS for i in value[:_MAX_REFS])
    ):
        refs += _st_modules(value)
    return refs[:_MAX_REFS]


def _shown(items: list[str]) -> str:
    more = len(items) - _MAX_SHOWN
    return ", ".join(items[:_MAX_SHOWN]) + (f" (+{more} more)" if more > 0 else "")


def check_config(scan: FileScan, value: object, loc: Location, name: str) -> None:
    """Report the code a parsed JSON document makes loaders import.

    MG480 for references to code, MG481 for references into another repository, and, when
    the document is a file on disk or a member of a zip (read through
    ``scan.member_reader``): MG482 for referenced files missing beside it, MG485 for
    dangerous calls in the referenced files and the files they import relatively. A cheap
    no-op for JSON that configures no code.
    """
    if not isinstance(value, (dict, list)):
        return
    refs = code_refs(value, name)
    local = scan.path is not None and not loc.members
    folder = os.path.dirname(os.path.abspath(scan.path)) if scan.path is not None else ""
    if any(r.optional for r in refs):
        refs = [r for r in refs if not r.optional or (local and _exists(folder, r.file))]
    if not refs:
        return
    entries = [f"{r.key}={r.value}" for r in refs]
    files = list(dict.fromkeys(r.file for r in refs if r.file and not r.repo))
    evidence = {"entries": _shown(entries)}
    if files:
        evidence["files"] = _shown(files)
    scan.finding(
        "MG480",
        f"{name} makes loaders import custom code: {_shown(entries)}",
        loc,
        **evidence,
    )
    for repo in dict.fromkeys(r.repo for r in refs if r.repo):
        values = [r.value for r in refs if r.repo == repo]
        scan.finding(
            "MG481",
            f"{name} takes code from another repository, {repo!r}: {_shown(values)}",
            loc,
            repo=repo[:200],
            entries=_shown(values),
        )
    if local:
        _check_files(scan, lambda rel: _read_beside(folder, rel), files, loc, name)
    elif loc.members and scan.member_reader is not None:
        # A zipped repository: the code files are the config's sibling members.
        reader = scan.member_reader
        _check_files(scan, lambda rel: reader(loc, rel), files, loc, name)


def _inside(folder: str, rel: str) -> str | None:
    """The path of ``rel`` in ``folder``, or None if it would leave the folder."""
    if rel.startswith(("/", "\\")) or "\x00" in rel or ".." in rel.replace("\\", "/").split("/"):
        return None
    return os.path.join(folder, rel)


def _exists(folder: str, rel: str) -> bool:
    path = _inside(folder, rel)
    return path is not None and os.path.isfile(path)


def _read_regular(path: str | Path, size: int, offset: int = 0) -> bytes | None:
    """`size` bytes at `offset` of a regular file; None if missing or not regular.

    Opened without blocking, then checked: a FIFO or device in a model folder is never read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        fh.seek(offset)
        return fh.read(size)


def _read_code(path: str) -> bytes | None:
    """Read a regular file of at most MAX_CODE_BYTES (+1, to tell when it is larger)."""
    return _read_regular(path, MAX_CODE_BYTES + 1)


def _read_beside(folder: str, rel: str) -> bytes | None:
    path = _inside(folder, rel)
    return _read_code(path) if path else None


def _check_files(
    scan: FileScan,
    read: Callable[[str], bytes | None],
    files: list[str],
    loc: Location,
    name: str,
) -> None:
    """Parse the referenced files and those they import relatively; ``read`` fetches one.

    ``read(rel)`` returns at most MAX_CODE_BYTES + 1 bytes, or None when the file is missing;
    it reads beside a config on disk, and is the seam for sibling members of an archive.
    """
    # Imported here: every scan imports this module for its folder pass, few read code.
    from modelguard.analysers.pycode import dangerous_calls, relative_imports

    queue = list(files)
    done: set[str] = set()
    hits: list[str] = []
    while queue and len(done) < MAX_CODE_FILES:
        rel = queue.pop(0)
        if rel in done:
            continue
        done.add(rel)
        data = read(rel)
        if data is None:
            scan.finding(
                "MG482",
                f"{name} names {rel}, which is not in the model folder: a loader would "
                "fetch it from elsewhere",
                loc,
                file=rel[:200],
            )
            continue
        if len(data) > MAX_CODE_BYTES:
            scan.incomplete(
                "MG003", f"{rel} is larger than {MAX_CODE_BYTES} bytes: not parsed", loc
            )
            continue
        # Bytes: ast honours a BOM or coding cookie as the interpreter would.
        calls, ok = dangerous_calls(data)
        if not ok:
            scan.incomplete("MG002", f"{rel} is not valid Python: its calls were not read", loc)
        hits += [f"{rel}:{line} {call}" for line, call in calls]
        base = rel.rpartition("/")[0]
        for mod in relative_imports(data):
            queue.append(f"{base}/{mod}" if base else mod)
    if queue and len(done) >= MAX_CODE_FILES:
        scan.incomplete("MG003", f"more than {MAX_CODE_FILES} custom code files: not all read", loc)
    if hits:
        scan.finding(
            "MG485",
            f"custom code that {name} makes loaders import calls {_shown(hits)}",
            loc,
            calls=_shown(hits),
        )


# -- the folder as a whole -------------------------------------------------------------------


def _executable_kind(path: Path) -> str | None:
    """What native executable or script a file is, from its first bytes; None if neither."""
    head = _read_regular(path, _HEAD)
    if head is None:
        return None
    if head.startswith(b"\x7fELF"):
        return "ELF binary"
    if head[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                    b"\xcf\xfa\xed\xfe"):  # fmt: skip
        return "Mach-O binary"
    # Fat Mach-O; a Java class file shares the magic but has a major version >= 45.
    if head[:4] == b"\xca\xfe\xba\xbe" and 0 < int.from_bytes(head[4:8], "big") < 45:
        return "Mach-O universal binary"
    if head.startswith(b"MZ") and len(head) >= 0x40:
        pe = struct.unpack_from("<I", head, 0x3C)[0]
        if pe <= 64 * 1024 * 1024 and _read_regular(path, 4, pe) == b"PE\x00\x00":
            return "PE (Windows) executable"
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip()
        return f"script ({line.decode('utf-8', 'replace')[:60]})"
    return None


def folder_findings(
    files: list[tuple[Path, FileResult]], policy: Policy
) -> dict[str, list[Finding]]:
    """Findings only the whole scanned folder shows, keyed by display path.

    A file counts when a folder on its way up is a model folder: one that holds weights, or
    has weights below it and either holds scanned files or is the common folder of all of
    them (the top of the scanned repository). So an ELF in ``bin/`` beside root weights, or
    in ``tools/`` beside ``unet/``, counts: everything in a repository is downloaded with it.
    Folders above the scanned tree never count.
    There, MG483 for files whose content is an ELF, PE or Mach-O binary or a script with an
    interpreter line (``.py`` scripts excepted: importing them is what MG480 reports), and
    MG484 for pickle weights in a folder that also holds safetensors.
    """
    from modelguard.policy.evaluate import make_finding
    from modelguard.results import Location

    # Folder of each file, and each folder's ancestors, computed once per folder: a scan of
    # thousands of files in a few folders must not cost thousands of path walks.
    parents = [path.parent.absolute() for path, _ in files]
    lineage: dict[Path, tuple[Path, ...]] = {}
    for parent in parents:
        if parent not in lineage:
            lineage[parent] = (parent, *parent.parents)
    holding = set(lineage)
    with contextlib.suppress(ValueError):  # no files, or paths on different drives
        holding.add(Path(os.path.commonpath([str(p) for p in holding])))
    above: set[Path] = set()
    safetensors: set[Path] = set()
    for parent, (_, res) in zip(parents, files, strict=True):
        if WEIGHT_FORMATS & set(res.formats):
            above.update(lineage[parent])
        if "safetensors" in res.formats:
            safetensors.add(parent)
    models = above & holding
    if not models:
        return {}
    in_model = {parent: any(p in models for p in line) for parent, line in lineage.items()}
    out: dict[str, list[Finding]] = {}
    for parent, (path, res) in zip(parents, files, strict=True):
        if not in_model[parent]:
            continue
        found: list[Finding] = []
        # Binaries are unknown content and scripts text: only those are read again.
        kind = _executable_kind(path) if set(res.formats) <= _MAYBE_EXECUTABLE else None
        # A .py script with an interpreter line is what MG480 reports; native code named
        # .py (an ELF called helper.py) is not Python at all.
        python = path.name.lower().endswith((".py", ".pyi"))
        if kind and not (python and kind.startswith("script")):
            found.append(
                make_finding(
                    policy,
                    "MG483",
                    f"a {kind} is shipped beside model weights",
                    Location(res.path),
                    {"kind": kind},
                )
            )
        if (
            parent in safetensors
            and _PICKLE_WEIGHTS & set(res.formats)
            and not _TRAINING_STATE.match(path.name)
        ):
            found.append(
                make_finding(
                    policy,
                    "MG484",
                    "pickle weights next to safetensors weights: loaders may pick either",
                    Location(res.path),
                    {"formats": "+".join(res.formats)},
                )
            )
        if found:
            out.setdefault(res.path, []).extend(found)
    return out
