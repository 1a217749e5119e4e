"""NumPy `.npy` headers, parsed as literals only and bounded (never `numpy.load`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from modelguard.errors import FormatError
from modelguard.formats.blob import Blob

__all__ = ["NPY_MAGIC", "NpyHeader", "descr_has_object", "read_npy_header"]

NPY_MAGIC = b"\x93NUMPY"
# numpy refuses headers above 10,000 bytes by default (numpy.lib.format._MAX_HEADER_SIZE);
# the literal parser gets the same bound so a hostile header cannot exhaust it.
_MAX_HEADER = 10_000


@dataclass(frozen=True, slots=True)
class NpyHeader:
    """The parsed header of a `.npy` stream.

    Attributes:
        version: (major, minor).
        descr: the dtype description as written (a str, or a list for structured dtypes).
        fortran_order: the array's memory order flag.
        shape: the declared shape.
        data_offset: offset of the array data (or of the pickle, for object arrays).
        has_object: the dtype holds Python objects, so the data is a pickle.
    """

    version: tuple[int, int]
    descr: object
    fortran_order: bool
    shape: tuple[int, ...]
    data_offset: int
    has_object: bool


def descr_has_object(descr: object, depth: int = 0) -> bool:
    """Return True if a numpy dtype description contains an object ("O") field."""
    if depth > 32:
        return True  # absurd nesting: assume the worst
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, (list, tuple)):
        for field in descr:
            if isinstance(field, (list, tuple)) and len(field) >= 2:
                if descr_has_object(field[1], depth + 1):
                    return True
            elif descr_has_object(field, depth + 1):
                return True
    return False


def read_npy_header(blob: Blob, base: int = 0) -> NpyHeader:
    """Parse the `.npy` header at `base`.

    Raises:
        FormatError: bad magic, unsupported version, oversized or non-literal header.
    """
    head = blob.read(base, 12)
    if not head.startswith(NPY_MAGIC) or len(head) < 10:
        raise FormatError("not a .npy stream", base)
    major, minor = head[6], head[7]
    if major == 1:
        length = int.from_bytes(head[8:10], "little")
        start = base + 10
    elif major in (2, 3):
        if len(head) < 12:
            raise FormatError(".npy header truncated", base)
        length = int.from_bytes(head[8:12], "little")
        start = base + 12
    else:
        raise FormatError(f"unsupported .npy version {major}.{minor}", base)
    if length > _MAX_HEADER:
        raise FormatError(f".npy header of {length} bytes exceeds {_MAX_HEADER}", base)
    raw = blob.read(start, length)
    if len(raw) < length:
        raise FormatError(".npy header truncated", start)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        # literal_eval evaluates literals only: no names, calls or attribute access.
        header = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise FormatError(f".npy header is not a Python literal: {exc}", start) from None
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        raise FormatError(".npy header lacks descr/fortran_order/shape", start)
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise FormatError(f".npy header has an invalid shape {shape!r}", start)
    descr = header["descr"]
    return NpyHeader(
        (major, minor),
        descr,
        bool(header["fortran_order"]),
        shape,
        start + length,
        descr_has_object(descr),
    )
