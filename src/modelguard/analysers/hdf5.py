"""HDF5 files (legacy Keras `.h5`, Keras 3 `model.weights.h5`): host access and shape bombs.

libhdf5 has had heap overflows on crafted files (CVE-2026-26200), so the file is never
opened in the scanner's process: `modelguard.formats.h5probe` describes its metadata in a
child process (h5py, optional) with an address-space and CPU limit, a timeout and a cap on
its output. What the probe reports is judged here:

- MG443 hdf5-external-reference: a dataset with external raw storage, an external link, a
  virtual dataset with a source in another file, a soft link, or a user-defined link.
  Loading reads such data from a host file into the weights (CVE-2026-1669, tf-keras#921).
  Soft links stay inside the file, but neither Keras nor h5py writes them in model files, a
  soft link can alias one weight as another, and one whose path goes through an external
  link leaves the file; all are reported (dangling ones say so).
- MG444 hdf5-shape-bomb: a dataset declaring more than `BOMB_MIN_BYTES` (4 GiB) and more than
  `BOMB_RATIO` (1000) times the bytes it stores, the rule of the upstream guard (tf-keras#921,
  CVE-2026-0897). A chunked dataset never written stores 0 bytes and reads as its fill value:
  a loader still allocates the declared size, so it counts (Keras writes every weight it
  saves, so real models store what they declare, or a compressed form far above 1/1000).
- The `model_config` and `training_config` root attributes are parsed duplicate-aware
  (MG403 for repeated keys) and walked by `modelguard.analysers.keras.check_keras_config`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING

from modelguard.analysers import report_duplicates
from modelguard.errors import FormatError
from modelguard.formats.jsonstrict import parse_json

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = [
    "BOMB_MIN_BYTES",
    "BOMB_RATIO",
    "PROBE_CPU_SECONDS",
    "PROBE_MEMORY_BYTES",
    "PROBE_OUTPUT_BYTES",
    "PROBE_TIMEOUT",
    "analyse_hdf5",
    "run_probe",
]

_GiB = 1024 * 1024 * 1024
BOMB_MIN_BYTES = 4 * _GiB
BOMB_RATIO = 1000
# Wall-clock seconds the probe may take (starting Python and importing h5py is ~0.1-0.5 s).
PROBE_TIMEOUT = 30.0
# RLIMIT_CPU and RLIMIT_AS of the probe: libhdf5 bugs become a killed child, not a scanner.
PROBE_CPU_SECONDS = 30
PROBE_MEMORY_BYTES = 1 * _GiB
# Bytes the probe may write to stdout (its configs are capped at 16 MiB each); the last few
# KiB of stderr give the reason of a failure.
PROBE_OUTPUT_BYTES = 64 * 1024 * 1024
_STDERR_BYTES = 4096
_CHUNK = 1024 * 1024
# Temporary files (member copies, the probe's output) are named so that audits can tell them.
_TMP_PREFIX = "modelguard-h5-"
_NO_H5PY = "HDF5 needs h5py, which this environment lacks: pip install 'h5py>=3.10'"


class ProbeFailed(Exception):
    """The probe could not describe the file (crash, timeout, bad output, unreadable file)."""


class ProbeMissing(Exception):
    """h5py is not installed in the interpreter that runs the probe."""


def analyse_hdf5(scan: FileScan, blob: Blob, loc: Location, depth: int) -> str:
    """Analyse HDF5 content through the sandboxed probe; return "hdf5".

    A top-level file is probed where it lies; an archive member (or a slice of a file) is
    first copied to a private temporary file that is removed afterwards. Never raises:
    a failed probe is MG002, a missing h5py MG004.
    """
    del depth  # nothing embedded in HDF5 is analysed recursively
    try:
        if scan.path is not None and not loc.members and _same_size(scan.path, blob.size):
            doc = run_probe(scan.path)
        else:
            doc = _probe_copy(blob)
    except ProbeMissing:
        scan.incomplete("MG004", _NO_H5PY, loc)
        return "hdf5"
    except ProbeFailed as exc:
        scan.incomplete("MG002", f"HDF5 metadata could not be read: {exc}", loc)
        return "hdf5"
    except OSError as exc:
        scan.incomplete("MG002", f"HDF5 probe could not run: {exc}", loc)
        return "hdf5"
    judge(scan, doc, loc)
    return "hdf5"


def _same_size(path: str, size: int) -> bool:
    try:
        return os.path.getsize(path) == size
    except OSError:
        return False


def _probe_copy(blob: Blob) -> dict[str, object]:
    """Copy `blob` to a private temporary file, probe it, and remove it."""
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".h5")
    try:
        try:
            offset = 0
            while offset < blob.size:
                chunk = blob.read(offset, _CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                offset += len(chunk)
        finally:
            os.close(fd)
        return run_probe(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _limit_child() -> None:  # pragma: no cover - runs in the child between fork and exec
    import resource

    for res, value in (
        (resource.RLIMIT_AS, PROBE_MEMORY_BYTES),
        (resource.RLIMIT_CPU, PROBE_CPU_SECONDS),
        (resource.RLIMIT_CORE, 0),
        # stdout and stderr are files: a runaway child is stopped (SIGXFSZ) at the cap.
        (resource.RLIMIT_FSIZE, PROBE_OUTPUT_BYTES),
    ):
        with contextlib.suppress(ValueError, OSError):
            _, hard = resource.getrlimit(res)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(res, (value, value))


def _read_capped(fd: int, start: int, limit: int) -> bytes:
    """Read at most `limit` bytes of the file behind `fd` from `start`."""
    chunks: list[bytes] = []
    got = 0
    while got < limit:
        chunk = os.pread(fd, min(_CHUNK, limit - got), start + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def run_probe(path: str) -> dict[str, object]:
    """Run `python -m modelguard.formats.h5probe path` sandboxed; return its document.

    The child runs with `-P` (the working directory, possibly the scanned one, is not put on
    sys.path, so no `h5py.py` lying there is imported), resource limits on POSIX and a
    timeout. Its stdout and stderr go to private temporary files (no pipes to drain, no
    extra threads), whose size RLIMIT_FSIZE caps; only the first `PROBE_OUTPUT_BYTES` of
    stdout and the last few KiB of stderr are read back.

    Raises:
        ProbeMissing: h5py is not installed.
        ProbeFailed: crash, timeout, oversized or unparseable output, or an h5py error.
        OSError: the child could not be started.
    """
    env = dict(os.environ)
    # One BLAS thread: numpy (imported by h5py) otherwise reserves address space per core.
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # No data is read, so no filter plugin is needed; none is loaded from the environment.
    env["HDF5_PLUGIN_PATH"] = "/nonexistent-modelguard-h5probe"
    cmd = [sys.executable, "-P", "-m", "modelguard.formats.h5probe", path]
    out_fd, out_path = tempfile.mkstemp(prefix=_TMP_PREFIX + "out-")
    try:
        err_fd, err_path = tempfile.mkstemp(prefix=_TMP_PREFIX + "err-")
    except OSError:
        os.close(out_fd)
        os.unlink(out_path)
        raise
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=out_fd,
            stderr=err_fd,
            env=env,
            preexec_fn=_limit_child if os.name == "posix" else None,
        )
        try:
            status = proc.wait(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ProbeFailed(f"probe timed out after {PROBE_TIMEOUT:g} s") from None
        data = _read_capped(out_fd, 0, PROBE_OUTPUT_BYTES + 1)
        err_size = os.fstat(err_fd).st_size
        err = _read_capped(err_fd, max(0, err_size - _STDERR_BYTES), _STDERR_BYTES)
    finally:
        for fd, name in ((out_fd, out_path), (err_fd, err_path)):
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
    if len(data) > PROBE_OUTPUT_BYTES:
        raise ProbeFailed(f"probe output exceeds {PROBE_OUTPUT_BYTES} bytes")
    return _parse_output(data, err, status)


def _parse_output(data: bytes, err: bytes, status: int) -> dict[str, object]:
    try:
        doc = json.loads(data.decode("utf-8")) if data.strip() else None
    except (UnicodeDecodeError, ValueError):
        doc = None
    if isinstance(doc, dict) and doc.get("error") == "no-h5py":
        raise ProbeMissing
    if status != 0 or not isinstance(doc, dict) or "error" in doc:
        reason = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(reason, str):
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:]
            how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
            reason = f"probe {how}" + (f": {tail[0][:200]}" if tail else "")
        raise ProbeFailed(reason)
    return doc


def _entries(doc: dict[str, object], key: str) -> list[dict[str, object]]:
    value = doc.get(key)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def _s(value: object) -> str:
    return str(value)[:200]


def judge(scan: FileScan, doc: dict[str, object], loc: Location) -> None:
    """Report what the probe's description of one HDF5 file shows."""
    if doc.get("truncated"):
        scan.incomplete("MG003", "HDF5 file has more links or entries than the probe lists", loc)
    for entry in _entries(doc, "external_storage"):
        files = entry.get("files")
        names = ", ".join(_s(f) for f in files[:5]) if isinstance(files, list) else "?"
        scan.finding(
            "MG443",
            f"dataset {_s(entry.get('path'))} stores its data in external file(s) {names}",
            loc,
            dataset=_s(entry.get("path")),
            kind="external-storage",
            files=names,
        )
    for entry in _entries(doc, "external_links"):
        scan.finding(
            "MG443",
            f"{_s(entry.get('path'))} is an external link to "
            f"{_s(entry.get('file'))}:{_s(entry.get('target'))}",
            loc,
            link=_s(entry.get("path")),
            kind="external-link",
            file=_s(entry.get("file")),
            target=_s(entry.get("target")),
        )
    for entry in _entries(doc, "virtual"):
        sources = entry.get("sources")
        files = sorted(
            {_s(s.get("file")) for s in sources if isinstance(s, dict)}
            if isinstance(sources, list)
            else set()
        )
        outside = [f for f in files if f != "."]
        if outside:
            scan.finding(
                "MG443",
                f"virtual dataset {_s(entry.get('path'))} maps data from {', '.join(outside[:5])}",
                loc,
                dataset=_s(entry.get("path")),
                kind="virtual-dataset",
                files=", ".join(outside[:5]),
            )
    for entry in _entries(doc, "soft_links"):
        dangling = entry.get("dangling") is True
        scan.finding(
            "MG443",
            f"{_s(entry.get('path'))} is a soft link to {_s(entry.get('target'))}"
            + (" (which does not exist in the file)" if dangling else ""),
            loc,
            link=_s(entry.get("path")),
            kind="soft-link-dangling" if dangling else "soft-link",
            target=_s(entry.get("target")),
        )
    for entry in _entries(doc, "other_links"):
        scan.finding(
            "MG443",
            f"{_s(entry.get('path'))} is a user-defined link (type {_s(entry.get('type'))})",
            loc,
            link=_s(entry.get("path")),
            kind="user-defined-link",
        )
    for entry in _entries(doc, "datasets"):
        _check_bomb(scan, entry, loc)
    _check_configs(scan, doc, loc)


def _check_bomb(scan: FileScan, entry: dict[str, object], loc: Location) -> None:
    shape, itemsize, stored = entry.get("shape"), entry.get("itemsize"), entry.get("stored")
    if not (isinstance(shape, list) and isinstance(itemsize, int) and isinstance(stored, int)):
        return
    declared = itemsize
    for dim in shape:
        if not isinstance(dim, int):
            return
        declared *= dim
    if declared > BOMB_MIN_BYTES and declared > BOMB_RATIO * stored:
        dims = "x".join(str(d) for d in shape[:8]) + ("x..." if len(shape) > 8 else "")
        scan.finding(
            "MG444",
            f"dataset {_s(entry.get('path'))} declares {declared} bytes ({dims} of "
            f"{itemsize}-byte items) but stores {stored}",
            loc,
            dataset=_s(entry.get("path")),
            declared=str(declared),
            stored=str(stored),
            shape=dims,
        )


def _check_configs(scan: FileScan, doc: dict[str, object], loc: Location) -> None:
    """Walk the Keras configs kept in the root attributes."""
    from modelguard.analysers.keras import check_keras_config

    attrs = doc.get("attrs")
    if not isinstance(attrs, dict):
        return
    truncated = doc.get("truncated_attrs")
    for name in truncated if isinstance(truncated, list) else []:
        if name in ("model_config", "training_config"):
            scan.incomplete("MG003", f"HDF5 attribute {_s(name)} is too large or not a string", loc)
    version = attrs.get("keras_version")
    for name in ("model_config", "training_config"):
        text = attrs.get(name)
        if not isinstance(text, str):
            continue
        aloc = loc.inner(f"<attr:{name}>")
        try:
            parsed = parse_json(text)
        except FormatError as exc:
            scan.incomplete("MG002", f"HDF5 attribute {name} is not JSON: {exc}", aloc)
            continue
        if parsed.duplicates:
            report_duplicates(scan, f"HDF5 attribute {name} (JSON)", list(parsed.duplicates), aloc)
        if isinstance(parsed.value, dict):
            check_keras_config(
                scan,
                parsed.value,
                aloc,
                keras_version=version if isinstance(version, str) else None,
            )
