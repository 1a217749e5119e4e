"""NumPy `.npy` headers, parsed as literals only and bounded (never `numpy.load`)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from modelguard.errors import FormatError
from modelguard.formats.blob import Blob

__all__ = [
    "NPY_MAGIC",
    "NpyHeader",
    "declared_nbytes",
    "descr_has_object",
    "descr_itemsize",
    "read_npy_header",
]

NPY_MAGIC = b"\x93NUMPY"
# numpy refuses headers above 10,000 bytes by default (numpy.lib.format._MAX_HEADER_SIZE);
# the literal parser gets the same bound so a hostile header cannot exhaust it.
_MAX_HEADER = 10_000
_MAX_NESTING = 32
_UNITS = re.compile(r"\[[^\]]*\]")
# A typestr as numpy writes it (`dtype.str`): byte order, kind, size, and a datetime unit.
_TYPESTR = re.compile(r"([<>|=]?)([biufcmMSaUV])(\d{1,9})(\[[^\]]{1,16}\])?", re.ASCII)
# Item sizes numpy accepts per kind on the platforms it ships for (x86-64/arm64 Linux, macOS,
# Windows); 'f16'/'c32' are long double. Flexible kinds take any size; U counts UCS-4 chars.
_FIXED_SIZES: dict[str, frozenset[int]] = {
    "b": frozenset({1}),
    "i": frozenset({1, 2, 4, 8}),
    "u": frozenset({1, 2, 4, 8}),
    "f": frozenset({2, 4, 8, 16}),
    "c": frozenset({8, 16, 32}),
    "m": frozenset({8}),
    "M": frozenset({8}),
}


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
    """Return True if a numpy dtype description may contain an object ("O") field.

    Deliberately broad, as numpy's own reading of a descr is: a string is an object type if
    it contains "O" or "object" outside a datetime unit (numpy accepts '|O', 'O8', 'object',
    'i4,O', '2O', '(2,)O'); lists, tuples, dicts and sets are walked the way
    `numpy.lib.format.descr_to_dtype` iterates them (a dict or set by its keys).
    """
    if depth > _MAX_NESTING:
        return True  # absurd nesting: assume the worst
    if isinstance(descr, str):
        bare = _UNITS.sub("", descr)
        return "O" in bare or "object" in bare
    if isinstance(descr, (dict, set, frozenset)):
        descr = list(descr)
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
    if minor != 0:  # numpy reads (1, 0), (2, 0) and (3, 0) only
        raise FormatError(f"unsupported .npy version {major}.{minor}", base)
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
    if not isinstance(header, dict):
        raise FormatError(f".npy header is a {type(header).__name__} literal, not a dict", start)
    if not {"descr", "fortran_order", "shape"} <= set(header):
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


def descr_itemsize(descr: object, depth: int = 0) -> int | None:
    """Return the item size in bytes of a `.npy` dtype description, or None if unknown.

    Understands what `numpy.lib.format.dtype_to_descr` writes: typestrs such as ``'<f4'``,
    ``'|S5'``, ``'<U10'``, ``'<M8[ns]'``, ``'|V16'``; ``(base, shape)`` subarrays; and
    structured lists of ``(name, descr)`` / ``(name, descr, shape)`` fields, where unnamed
    void fields are padding and count toward the size. Anything else (character codes such
    as ``'d'`` whose size depends on the platform, object fields, sizes numpy refuses) is
    None: the caller must not guess.
    """
    if depth > _MAX_NESTING:
        return None
    if isinstance(descr, str):
        match = _TYPESTR.fullmatch(descr)
        if match is None:
            return None
        _, kind, digits, unit = match.groups()
        size = int(digits)
        if unit is not None and kind not in "mM":
            return None
        if kind == "U":
            return size * 4
        allowed = _FIXED_SIZES.get(kind)
        if allowed is not None and size not in allowed:
            return None
        return size
    if isinstance(descr, tuple):
        if len(descr) != 2:
            return None
        base = descr_itemsize(descr[0], depth + 1)
        count = _shape_count(descr[1])
        if not base or count is None:
            return None  # numpy sizes an unsized flexible base ('S0', 'V0') by its own rules
        return base * count
    if isinstance(descr, list):
        total = 0
        for field in descr:
            if not isinstance(field, (tuple, list)) or len(field) not in (2, 3):
                return None
            name = field[0]
            if not (isinstance(name, str) or _is_titled_name(name)):
                return None
            width = descr_itemsize(field[1], depth + 1)
            shape = _shape_count(field[2]) if len(field) == 3 else 1
            if width is None or shape is None or (width == 0 and len(field) == 3):
                return None
            total += width * shape
        return total
    return None


def declared_nbytes(header: NpyHeader) -> int | None:
    """Bytes of array data the header declares (shape times item size), or None if unknown."""
    if header.has_object:
        return None  # the data is a pickle, not shape x itemsize bytes
    itemsize = descr_itemsize(header.descr)
    if itemsize is None:
        return None
    count = 1
    for dim in header.shape:
        count *= dim
    return count * itemsize


def _is_titled_name(name: object) -> bool:
    return (
        isinstance(name, tuple) and len(name) == 2 and all(isinstance(part, str) for part in name)
    )


def _shape_count(shape: object) -> int | None:
    """Elements of a field or subarray shape (an int or a tuple of ints), or None."""
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple):
        return None
    count = 1
    for dim in dims:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            return None
        count *= dim
    return count
