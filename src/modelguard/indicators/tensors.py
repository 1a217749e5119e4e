"""Where each tensor's bytes are: a uniform listing over safetensors, torch zip, NumPy and GGUF.

`list_tensors` reads headers only (the safetensors JSON, a torch checkpoint's ``data.pkl``
through the symbolic pickle VM, ``.npy`` headers, GGUF tensor infos) and returns, per tensor,
the file and the absolute byte range holding its contiguous C-order data. The indicator
passes then read those bytes themselves, bounded: `sample_windows` picks byte ranges and
`read_ranges` streams them into a caller-owned buffer with ``os.preadv``.

Nothing here imports torch, and no pickle is ever executed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from modelguard.config import Limits
from modelguard.errors import FormatError
from modelguard.formats.blob import Blob, FileBlob
from modelguard.formats.gguf import GGML_TYPES, GGUF_MAGIC, TYPE_STRING, read_gguf
from modelguard.formats.numpy import NPY_MAGIC, read_npy_header
from modelguard.formats.safetensors import read_header
from modelguard.formats.sniff import safetensors_header_length, zip_candidate
from modelguard.formats.zipread import read_zip

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DTYPE_ITEMSIZE",
    "TensorListing",
    "TensorRef",
    "list_tensors",
    "numpy_dtype",
    "read_ranges",
    "sample_windows",
]

# Element width in bytes of every dtype a TensorRef may carry as a plain element type.
DTYPE_ITEMSIZE: dict[str, int] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}

# numpy typestrs for the dtypes numpy can represent; BF16 is handed out as raw bits.
_NUMPY_TYPESTR: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
    "F8_E4M3": "u1",
    "F8_E5M2": "u1",
}

# Headers of these formats are small; the safetensors reference caps its header at 100 MB.
_MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True, slots=True)
class TensorRef:
    """One tensor whose contiguous C-order bytes lie at ``[offset, offset + nbytes)`` of ``path``.

    Attributes:
        name: safetensors key, state-dict key (dotted for nested dicts), GGUF name, the file
            name for ``.npy`` or the member name for ``.npz``.
        dtype: a safetensors-style name (F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U8
            BOOL ...), or ``"GGUF:<type>"`` for quantised GGUF types (not float-readable).
        shape: the tensor's shape.
        path: the file whose bytes hold it.
        offset: absolute offset of its first byte in ``path``.
        nbytes: length of its data in bytes.
        source: ``"safetensors"``, ``"torch-zip"``, ``"numpy"`` or ``"gguf"``.
        itemsize: bytes per element; 0 when not a plain element type (quantised blocks).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: str
    offset: int
    nbytes: int
    source: str
    itemsize: int

    @property
    def numel(self) -> int:
        """Return the number of elements (the product of the shape)."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def _empty_metadata() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class TensorListing:
    """The tensors of one file.

    Attributes:
        tensors: the readable tensors, in file order (by offset).
        skipped: ``(name, reason)`` for tensors or members that are not readable in place
            (compressed zip member, non-contiguous view, Fortran order, object dtype ...).
        metadata: safetensors ``__metadata__`` or GGUF string key/values (may be empty).
    """

    tensors: tuple[TensorRef, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    metadata: Mapping[str, str] = field(default_factory=_empty_metadata)


def numpy_dtype(dtype: str) -> np.dtype[np.generic] | None:
    """Return the little-endian numpy dtype to view a tensor's bytes as, or None.

    F32 -> ``<f4``, F16 -> ``<f2``, F64 -> ``<f8``; BF16 -> ``<u2`` (callers treat it as raw
    bits); FP8 -> ``u1`` (raw bits); integers and BOOL -> their types; anything else (GGUF
    quantised types, unknown names) -> None.
    """
    typestr = _NUMPY_TYPESTR.get(dtype)
    if typestr is None:
        return None
    import numpy as np

    return np.dtype(typestr)


def sample_windows(ref: TensorRef, budget: int, window: int) -> list[tuple[int, int]]:
    """Choose byte ranges ``(start, end)`` within a tensor to read under a byte budget.

    The whole tensor ``[(0, nbytes)]`` when ``nbytes <= budget``; otherwise evenly spaced,
    non-overlapping windows of ``window`` bytes (rounded to whole elements) totalling about
    ``budget`` (at least two), always including the first (starting at 0) and the last
    (ending at ``nbytes``). Starts and ends are multiples of the item size (of 1 for
    non-element types).

    Raises:
        ValueError: ``budget`` or ``window`` is not positive.
    """
    if budget <= 0 or window <= 0:
        raise ValueError("budget and window must be positive")
    total = ref.nbytes
    if total <= budget:
        return [(0, total)]
    unit = ref.itemsize if ref.itemsize > 0 else 1
    win = max(unit, window - window % unit)
    if win >= total:
        return [(0, total)]
    count = max(2, budget // win)
    if count * win >= total:
        return [(0, total)]
    last_start = (total - win) - (total - win) % unit
    slots = last_start // unit  # element index of the last window's start
    # Consecutive starts differ by at least floor((total - win) / (count - 1)) elements, which
    # is at least one window since count * win < total: the windows never overlap.
    starts = [(slots * i // (count - 1)) * unit for i in range(count)]
    return [(s, s + win) for s in starts]


def read_ranges(
    ref: TensorRef,
    ranges: Sequence[tuple[int, int]],
    buffer: npt.NDArray[np.uint8],
    *,
    fd: int | None = None,
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Stream byte ranges of a tensor through a reusable buffer.

    For each ``(start, end)`` (offsets within the tensor), yields ``(offset, view)`` pairs
    where ``view`` is a prefix of ``buffer`` (a uint8 view, no copy) holding the tensor's bytes
    ``[offset, offset + len(view))``. Chunks are at most ``len(buffer)`` bytes rounded down to
    whole elements. The view is only valid until the next item is requested.

    Args:
        ref: the tensor.
        ranges: byte ranges within ``[0, ref.nbytes]``.
        buffer: a C-contiguous uint8 array of at least one element's size.
        fd: an open descriptor of ``ref.path``; opened and closed here when None.

    Raises:
        ValueError: a range outside the tensor, or a buffer smaller than one element.
        FormatError: the file ends before the tensor's bytes do.
    """
    unit = ref.itemsize if ref.itemsize > 0 else 1
    cap = len(buffer) - len(buffer) % unit
    if cap <= 0:
        raise ValueError(f"buffer of {len(buffer)} bytes is smaller than one element ({unit})")
    for start, end in ranges:
        if not 0 <= start <= end <= ref.nbytes:
            raise ValueError(f"range ({start}, {end}) outside tensor of {ref.nbytes} bytes")
    # Checked above, at call time; the file is opened on the first item only, so a generator
    # that is never started leaks no descriptor.
    return _read_chunks(ref, list(ranges), buffer.reshape(-1)[:cap], fd)


def _read_chunks(
    ref: TensorRef, ranges: list[tuple[int, int]], flat: npt.NDArray[np.uint8], fd: int | None
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    cap = len(flat)
    handle = os.open(ref.path, os.O_RDONLY | getattr(os, "O_BINARY", 0)) if fd is None else fd
    try:
        for start, end in ranges:
            pos = start
            while pos < end:
                n = min(cap, end - pos)
                view = flat[:n]
                _pread_full(handle, view, ref.offset + pos, ref)
                yield pos, view
                pos += n
    finally:
        if fd is None:
            os.close(handle)


def _pread_full(fd: int, view: npt.NDArray[np.uint8], offset: int, ref: TensorRef) -> None:
    """Fill ``view`` from ``fd`` at ``offset``; raise FormatError on a short file."""
    mem = view.data.cast("B")
    done = 0
    while done < len(mem):
        got = os.preadv(fd, [mem[done:]], offset + done)
        if got <= 0:
            raise FormatError(
                f"{ref.path}: file ends at {offset + done}, tensor {ref.name!r} needs "
                f"{ref.offset + ref.nbytes}",
                offset + done,
            )
        done += got


def list_tensors(path: str) -> TensorListing:
    """List the tensors of a weights file, sniffed by content.

    Supported: safetensors, PyTorch zip checkpoints (``torch.save``), NumPy ``.npy`` and
    ``.npz``, GGUF. Only headers are read.

    Raises:
        FormatError: the file is none of these formats, or is broken (truncated, inconsistent
            header, tensors beyond the end of the file).
    """
    try:
        blob = FileBlob.open(path)
    except OSError as exc:
        raise FormatError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with blob:
        if safetensors_header_length(blob) is not None:
            return _list_safetensors(path, blob)
        head = blob.read(0, 8)
        if head.startswith(GGUF_MAGIC):
            return _list_gguf(path, blob)
        if head.startswith(NPY_MAGIC):
            return _list_npy(path, blob)
        if zip_candidate(blob):
            return _list_zip(path, blob)
        raise FormatError(f"{path}: not a safetensors, torch zip, NumPy or GGUF file", 0)


def _list_safetensors(path: str, blob: Blob) -> TensorListing:
    header = read_header(blob, _MAX_HEADER_BYTES)
    for kind in ("bad-entry", "bad-shape", "bad-offsets", "size-mismatch", "beyond-file"):
        problem = header.problem(kind)
        if problem is not None:
            raise FormatError(f"{path}: safetensors {kind}: {problem.detail}", 8)
    tensors: list[TensorRef] = []
    skipped: list[tuple[str, str]] = []
    for entry in header.tensors:
        if entry.shape is None or entry.begin is None or entry.end is None:
            continue  # excluded by the problem check above
        itemsize = DTYPE_ITEMSIZE.get(entry.dtype)
        if itemsize is None:
            skipped.append((entry.name, f"dtype {entry.dtype} is not a supported element type"))
            continue
        tensors.append(
            TensorRef(
                name=entry.name,
                dtype=entry.dtype,
                shape=entry.shape,
                path=path,
                offset=header.data_start + entry.begin,
                nbytes=entry.end - entry.begin,
                source="safetensors",
                itemsize=itemsize,
            )
        )
    return TensorListing(tuple(tensors), tuple(skipped), MappingProxyType(dict(header.metadata)))


# -- GGUF ------------------------------------------------------------------------------------
# ggml types stored as plain little-endian elements; every other type is block-quantised.
_GGUF_PLAIN = frozenset({"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8"})


def _list_gguf(path: str, blob: Blob) -> TensorListing:
    try:
        gguf = read_gguf(blob, max_header_bytes=_MAX_HEADER_BYTES)
    except FormatError as exc:
        raise FormatError(f"{path}: GGUF: {exc}", exc.offset) from None
    for problem in gguf.problems:
        if problem.kind == "tensor-range":
            raise FormatError(f"{path}: GGUF truncated: {problem.detail}", problem.offset)
    metadata = {
        kv.key: kv.value for kv in gguf.kvs if kv.vtype == TYPE_STRING and isinstance(kv.value, str)
    }
    tensors: list[TensorRef] = []
    skipped: list[tuple[str, str]] = []
    for t in gguf.tensors:
        info = GGML_TYPES.get(t.ggml_type)
        if info is None or t.nbytes is None:
            skipped.append((t.name, f"ggml type {t.ggml_type} or its size is invalid"))
            continue
        type_name = info[0]
        plain = type_name in _GGUF_PLAIN
        if plain and gguf.big_endian and info[2] > 1:
            skipped.append((t.name, f"big-endian GGUF {type_name} data"))
            continue
        ref = TensorRef(
            name=t.name,
            dtype=type_name if plain else f"GGUF:{type_name}",
            shape=tuple(reversed(t.dims)),  # ggml lists dimensions innermost first
            path=path,
            offset=gguf.data_start + t.offset,
            nbytes=t.nbytes,
            source="gguf",
            itemsize=info[2] if plain else 0,
        )
        tensors.append(ref)
        if not plain:
            skipped.append((t.name, f"quantised GGUF type {type_name}: not float-readable"))
    tensors.sort(key=lambda r: r.offset)
    return TensorListing(tuple(tensors), tuple(skipped), MappingProxyType(metadata))


# -- NumPy -----------------------------------------------------------------------------------
# .npy typestrs (as numpy writes them) of the element types a TensorRef can carry.
_NPY_DTYPES: dict[str, str] = {
    "<f8": "F64",
    "<f4": "F32",
    "<f2": "F16",
    "<i8": "I64",
    "<i4": "I32",
    "<i2": "I16",
    "|i1": "I8",
    "<u8": "U64",
    "<u4": "U32",
    "<u2": "U16",
    "|u1": "U8",
    "|b1": "BOOL",
}


def _npy_ref(path: str, blob: Blob, base: int, size: int, name: str) -> TensorRef | tuple[str, str]:
    """The tensor of the .npy stream at ``base`` (``size`` bytes), or (name, skip reason)."""
    header = read_npy_header(blob, base)
    if header.has_object:
        return name, "object dtype: the data is a pickle"
    dtype = _NPY_DTYPES.get(header.descr) if isinstance(header.descr, str) else None
    if dtype is None:
        return name, f"dtype {str(header.descr)[:60]} is not a plain little-endian element type"
    ref = TensorRef(
        name=name,
        dtype=dtype,
        shape=header.shape,
        path=path,
        offset=header.data_offset,
        nbytes=0,
        source="numpy",
        itemsize=DTYPE_ITEMSIZE[dtype],
    )
    ref = replace(ref, nbytes=ref.numel * ref.itemsize)
    if header.data_offset - base + ref.nbytes > size:
        raise FormatError(
            f"{path}: {name!r} declares {ref.nbytes} bytes of data, the stream holds "
            f"{max(0, size - (header.data_offset - base))}",
            header.data_offset,
        )
    if header.fortran_order and sum(1 for d in header.shape if d > 1) > 1:
        return name, "Fortran (column-major) order"
    return ref


def _list_npy(path: str, blob: Blob) -> TensorListing:
    found = _npy_ref(path, blob, 0, blob.size, os.path.basename(path))
    if isinstance(found, TensorRef):
        return TensorListing((found,))
    return TensorListing((), (found,))


# -- zip: torch checkpoints and .npz ---------------------------------------------------------
def _list_zip(path: str, blob: Blob) -> TensorListing:
    limits = Limits()
    try:
        view = read_zip(blob, limits)
    except FormatError as exc:
        raise FormatError(f"{path}: zip: {exc}", exc.offset) from None
    if any(a.kind == "local-only" and not a.member for a in view.anomalies):
        # No central directory, members found by walking local headers: torch and numpy
        # refuse such an archive (truncated or streamed).
        raise FormatError(f"{path}: zip archive without a central directory (truncated?)", 0)
    for member in view.members:
        # A truncated archive: the central directory may be gone (members found by walking
        # local headers) or still point past the end.
        if member.data_offset + member.compressed_size > blob.size:
            raise FormatError(
                f"{path}: zip member {member.name!r} ends past the end of the file",
                member.data_offset,
            )
    pickles = [m for m in view.members if m.name.rpartition("/")[2] == "data.pkl"]
    if pickles:
        # torch.load reads the data.pkl of the archive's one top-level folder; a second one
        # (another folder, a duplicate name) is not what it loads, so only the first counts.
        from modelguard.indicators._torch_tensors import list_torch_zip

        return list_torch_zip(path, blob, view, pickles[0], limits)
    arrays = [m for m in view.members if m.name.endswith(".npy")]
    if not arrays:
        raise FormatError(f"{path}: a zip archive that is neither a torch checkpoint nor .npz")
    tensors: list[TensorRef] = []
    skipped: list[tuple[str, str]] = []
    for member in arrays:
        name = member.name[:-4]  # numpy.load's NpzFile keys drop the .npy suffix
        if member.method != 0:
            skipped.append((name, "compressed zip member (np.savez_compressed)"))
            continue
        found = _npy_ref(path, blob, member.data_offset, member.compressed_size, name)
        if isinstance(found, TensorRef):
            tensors.append(found)
        else:
            skipped.append(found)
    tensors.sort(key=lambda r: r.offset)
    return TensorListing(tuple(tensors), tuple(skipped))
