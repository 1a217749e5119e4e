"""Scan-before-load guards: `checked_path`, `torch_load` and `from_pretrained`.

Each one scans what it is about to load and raises `UnsafeModelError` (with the report) when
the scan blocks or is incomplete; only then does it load, from the very path that was scanned.
torch and transformers are imported on first use.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from modelguard.errors import ConfigError, FileChangedError
from modelguard.fileid import FileIdentity
from modelguard.guard.errors import WeightsOnlyRefusal
from modelguard.guard.unpickler import _verified_name, safe_loads
from modelguard.policy import Policy

if TYPE_CHECKING:
    from modelguard.results import ScanReport
    from modelguard.verification import VerifiedModel

__all__ = ["checked_path", "checked_report", "from_pretrained", "torch_load"]

_TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def _pin(target: str) -> tuple[str, Path]:
    """Resolve an `hf://` target once; return the commit-pinned spec and its local path."""
    from modelguard.hub import parse_hf_spec, resolve_hf_target

    resolved = resolve_hf_target(target)
    filename = parse_hf_spec(target).filename
    pinned = f"hf://{_TYPE_PREFIX.get(resolved.repo_type, '')}{resolved.repo_id}@{resolved.commit}"
    if filename:
        pinned += f"/{filename}"
    return pinned, resolved.path


def checked_report(
    target: str | os.PathLike[str], policy: Policy | None = None
) -> tuple[Path, ScanReport]:
    """Scan `target` and return (local path scanned, report) if nothing blocks.

    An `hf://org/name[@revision]` target is resolved from the local Hugging Face cache once and
    scanned pinned to the commit it resolved to, so the path returned is the one scanned.

    Raises:
        UnsafeModelError: a finding blocks or the scan is incomplete (the report is attached).
        SourceError: the target does not exist (or is not in the local cache).
    """
    from modelguard.scanner import scan

    if isinstance(target, str) and target.startswith("hf://"):
        spec, path = _pin(target)
        report = scan(spec, policy=policy)
    else:
        path = Path(target)
        report = scan(path, policy=policy)
    report.raise_for_findings()
    return path, report


def checked_path(target: str | os.PathLike[str], policy: Policy | None = None) -> Path:
    """Scan `target` (anything `modelguard.scan` accepts) and return its local path if safe.

    Raises:
        UnsafeModelError: a finding blocks or the scan is incomplete (the report is attached).
        SourceError: the target does not exist (or is not in the local cache).
    """
    return checked_report(target, policy)[0]


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("modelguard.guard.torch_load needs PyTorch: pip install torch") from exc
    return torch


def is_torchscript_archive(source: IO[bytes] | bytes) -> bool:
    """Is this a TorchScript zip (torch.load would hand it to torch.jit.load, running its code)?

    torch decides by a `constants.pkl` record under the archive's top folder; so does this.
    A file object is read from its current position and put back there.
    """
    import io
    import zipfile

    if isinstance(source, (bytes, bytearray)):
        handle: IO[bytes] = io.BytesIO(bytes(source))
        start = 0
    else:
        handle = source
        start = handle.tell()
    try:
        if not zipfile.is_zipfile(handle):
            return False
        handle.seek(start)
        with zipfile.ZipFile(handle) as archive:
            names = archive.namelist()
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    finally:
        handle.seek(start)
    return any(name.partition("/")[2] == "constants.pkl" for name in names)


def _refuse_torchscript(source: IO[bytes] | Path, path: Path) -> None:
    from modelguard.guard.errors import UnsafeLoadError

    if isinstance(source, Path):
        with open(source, "rb") as handle:
            scripted = is_torchscript_archive(handle)
    else:
        scripted = is_torchscript_archive(source)
    if scripted:
        raise UnsafeLoadError(
            f"refused {path}: a TorchScript archive; torch.load(weights_only=False) would hand "
            "it to torch.jit.load, which runs the archive's code. Load it with torch.jit.load "
            "yourself if you trust it."
        )


def _refusal(torch: Any, path: Path, exc: BaseException) -> WeightsOnlyRefusal:
    try:
        names = tuple(torch.serialization.get_unsafe_globals_in_checkpoint(os.fspath(path)))
    except Exception:  # the listing is a hint; the refusal stands without it
        names = ()
    shown = ", ".join(names) if names else "(torch did not list them; see its message below)"
    objs = ", ".join(names) if names else "..."
    message = (
        f"torch.load(weights_only=True) refused {path}: it needs globals torch does not allow "
        f"by default: {shown}. modelguard's scan passed; if you trust these, allow them "
        f"before loading with torch.serialization.add_safe_globals([{objs}]) (the objects, "
        "not strings) or `with torch.serialization.safe_globals([...]):`. modelguard never "
        "falls back to weights_only=False by itself; torch_load(path, weights_only=False) "
        "loads with modelguard's allowlist enforced instead (SafeUnpickler)."
        f"\ntorch said: {str(exc).strip()[:2000]}"
    )
    return WeightsOnlyRefusal(message, names)


def _enforcing_pickle_module(policy: Policy | None) -> Any:
    """Return a `pickle`-like module whose `Unpickler`/`load` enforce the policy (for torch)."""
    import types

    from modelguard.guard.context import _bound_unpickler

    pol = policy if policy is not None else Policy()
    unpickler = _bound_unpickler(pol)
    module = types.ModuleType("modelguard_enforcing_pickle")
    module.Unpickler = unpickler  # type: ignore[attr-defined]
    module.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    module.load = lambda f, **kw: unpickler(f, **kw).load()  # type: ignore[attr-defined]
    module.loads = lambda data, **kw: safe_loads(data, policy=pol)  # type: ignore[attr-defined]
    return module


def _load(
    torch: Any,
    source: IO[bytes] | Path,
    path: Path,
    weights_only: bool,
    kwargs: dict[str, Any],
    policy: Policy | None = None,
) -> Any:
    load = kwargs.pop("_torch_load", None) or torch.load
    if not weights_only:
        _refuse_torchscript(source, path)
    if not weights_only and "pickle_module" not in kwargs:
        # The caller opted out of torch's weights-only unpickler: enforce modelguard's
        # allowlist at load time instead of trusting the file.
        kwargs["pickle_module"] = _enforcing_pickle_module(policy)
    try:
        return load(source, weights_only=weights_only, **kwargs)
    except pickle.UnpicklingError as exc:
        if not weights_only:
            raise
        raise _refusal(torch, path, exc) from exc


def torch_load(
    path: str | os.PathLike[str],
    *,
    policy: Policy | None = None,
    weights_only: bool = True,
    verified: VerifiedModel | None = None,
    **kwargs: Any,
) -> Any:
    """Scan a torch checkpoint, then `torch.load` it with `weights_only=True` by default.

    The file is opened before the scan and loaded from that open file; if the path no longer
    names the same file after the scan, nothing is loaded. With `mmap=True`, torch needs the
    path, so it reopens it; the path is checked again after the load (also with `verified`),
    and a file replaced meanwhile raises `FileChangedError`.

    Args:
        path: the checkpoint (with `verified`: a path under the verified model or its
            model-relative name).
        policy: the scan policy.
        weights_only: passed to `torch.load`; `False` is the caller's explicit opt-out (the
            scan still runs first).
        verified: a `VerifiedModel`: the file is opened through `VerifiedModel.open`, so a
            file changed since verification fails to load.
        **kwargs: passed to `torch.load` (`map_location`, `mmap`, ...).

    Raises:
        UnsafeModelError: the scan blocks or is incomplete.
        WeightsOnlyRefusal: torch's weights-only unpickler refused globals; the message names
            them and how to allow them.
        FileChangedError: the file changed during the scan or since verification.
        ImportError: torch is not installed.
    """
    torch = _import_torch()
    if verified is not None:
        name = _verified_name(verified, path)
        real = verified.path(name)
        checked_path(real, policy)
        with verified.open(name) as handle:
            before = FileIdentity.from_stat(os.fstat(handle.fileno()))
            source: IO[bytes] | Path = real if kwargs.get("mmap") else handle
            loaded = _load(torch, source, real, weights_only, kwargs, policy)
            # torch reopens the path for mmap: it must still be the verified file afterwards.
            _check_unchanged(handle, real, before)
            return loaded
    file_path = Path(path)
    with open(file_path, "rb") as handle:
        before = FileIdentity.from_stat(os.fstat(handle.fileno()))
        checked_path(file_path, policy)
        if not before.matches(os.stat(file_path)):
            raise FileChangedError(f"{file_path}: changed while it was being scanned")
        source = file_path if kwargs.get("mmap") else handle
        loaded = _load(torch, source, file_path, weights_only, kwargs, policy)
        # Checked again after the load: a rewrite during the load (or of the mmapped path)
        # would have handed torch bytes that were never scanned.
        _check_unchanged(handle, file_path, before)
        return loaded


def _check_unchanged(handle: IO[bytes], path: Path, before: FileIdentity) -> None:
    # The identity includes st_ctime_ns, which every write changes and the writer cannot set
    # back (os.utime sets atime/mtime only): a same-size rewrite with the mtime restored shows.
    try:
        now = os.stat(path)
    except OSError as exc:
        raise FileChangedError(f"{path}: changed while it was being loaded") from exc
    if not (before.matches(os.fstat(handle.fileno())) and before.matches(now)):
        raise FileChangedError(f"{path}: changed while it was being loaded")


def _has_safetensors(folder: Path) -> bool:
    if folder.is_file():
        return folder.suffix == ".safetensors"
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json"))


def from_pretrained(
    cls: Any,
    target: str | os.PathLike[str],
    *,
    policy: Policy | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """Scan a local model folder (or an `hf://` cached snapshot) and load it with transformers.

    `cls` is any class with `from_pretrained` (`AutoModel`, `BertModel`, `AutoTokenizer`, ...).
    The load uses the scanned folder itself with `local_files_only=True` (nothing is fetched),
    `use_safetensors=True` when the folder has safetensors weights (unless you pass it), and
    `trust_remote_code=False` unless you opt in here (the scan covers the folder's Python
    files, but opting in runs them).

    Raises:
        UnsafeModelError: the scan blocks or is incomplete.
        SourceError: the target does not exist (or is not in the local cache).
    """
    path = checked_path(target, policy)
    if kwargs.pop("local_files_only", True) is not True:
        raise ConfigError("from_pretrained: the guard loads only the scanned local files")
    if "use_safetensors" not in kwargs and _has_safetensors(path):
        kwargs["use_safetensors"] = True
    return cls.from_pretrained(
        os.fspath(path), local_files_only=True, trust_remote_code=trust_remote_code, **kwargs
    )
