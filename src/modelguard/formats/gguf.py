"""GGUF (llama.cpp) files: a bounded reader of the header, metadata and tensor table.

Tensor data is never read: only its declared placement is checked. Every count and length
is compared with the bytes that remain before anything is looped over or allocated, which
is what llama.cpp's reader was hardened to do after heap overflows from trusted sizes
(Databricks and Cisco Talos 2024 reports, llama.cpp #19856, CVE-2026-33298).

Structural errors (the rest of the file cannot be located) raise `GGUFError` carrying the
problem's kind and the metadata read so far: `magic`, `version`, `kv-count`, `tensor-count`,
`string-length`, `value-type`, `array-type`, `array-length`, `array-depth`, `n-dims`,
`truncated`. Problems that leave the structure readable are collected in
`GGUFFile.problems`: `architecture` (the one required key is missing from a model or a
first shard), `nul-in-name` (a key or tensor name continues after a NUL: llama.cpp matches
the part before it, which is what `key`/`name` hold), `alignment`,
`tensor-type` (unknown or removed ggml type), `tensor-dims`, `tensor-size` (element or byte
count beyond int64), `tensor-block` (first dimension not a multiple of the block size),
`tensor-alignment`, `tensor-range` (data past the end of the file), `tensor-overlap`,
`data-gap` and `trailing-data` (bytes of the data section that belong to no tensor).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob

__all__ = [
    "GGML_TYPES",
    "GGUFKV",
    "GGUFArray",
    "GGUFError",
    "GGUFFile",
    "GGUFProblem",
    "GGUFTensor",
    "GGUFUnsupported",
    "read_gguf",
]

GGUF_MAGIC = b"GGUF"
_SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4
# Nested arrays: gguf-py writes them, llama.cpp refuses them; gguf-py itself recursed without
# bound (RecursionError on deep nesting), so deeper nesting is reported, not followed.
MAX_ARRAY_DEPTH = 4
_INT64_MAX = (1 << 63) - 1
_CHUNK = 1 << 20

# Value types of metadata (gguf_type): id -> (name, struct code or "" for string/array).
_VALUE_TYPES: dict[int, tuple[str, str]] = {
    0: ("u8", "B"),
    1: ("i8", "b"),
    2: ("u16", "H"),
    3: ("i16", "h"),
    4: ("u32", "I"),
    5: ("i32", "i"),
    6: ("f32", "f"),
    7: ("bool", "B"),
    8: ("string", ""),
    9: ("array", ""),
    10: ("u64", "Q"),
    11: ("i64", "q"),
    12: ("f64", "d"),
}
TYPE_U32 = 4
TYPE_STRING = 8
TYPE_ARRAY = 9

_QK_K = 256
# ggml tensor types: id -> (name, elements per block, bytes per block). Facts checked against
# gguf-py 0.19.0's GGML_QUANT_SIZES. Ids 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4, Q4_0_4_8,
# Q4_0_8_8) and 36-38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) were removed: loaders refuse them.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 4 + 4 + 32),
    10: ("Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: ("Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: ("Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: ("Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: ("Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: ("Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
    16: ("IQ2_XXS", _QK_K, 2 + _QK_K // 4),
    17: ("IQ2_XS", _QK_K, 2 + _QK_K // 4 + _QK_K // 32),
    18: ("IQ3_XXS", _QK_K, 2 + _QK_K // 4 + _QK_K // 8),
    19: ("IQ1_S", _QK_K, 2 + _QK_K // 8 + _QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: ("IQ2_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 16),
    23: ("IQ4_XS", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", _QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", _QK_K, 2 + 4 * 13),
    35: ("TQ2_0", _QK_K, 2 + 64),
    39: ("MXFP4", 32, 1 + 16),
    40: ("NVFP4", 64, 4 + 32),
    41: ("Q1_0", 128, 2 + 16),
}

# Smallest encodings, used to bound counts by the bytes that remain: a KV is a key length,
# a value type and at least one value byte; a tensor info a name length, n_dims, type and
# offset; a string its length; a nested array its element type and count.
_MIN_KV = 8 + 4 + 1
_MIN_TENSOR = 8 + 4 + 4 + 8
_MIN_STRING = 8
_MIN_ARRAY = 4 + 8


class GGUFError(FormatError):
    """The file breaks GGUF's structure where the rest cannot be located.

    Attributes:
        kind: short name of the problem (`truncated`, `kv-count`, `string-length`, ...).
        kvs: the metadata read before the error (templates in it can still be checked).
        in_metadata: the error happened before the metadata was read to its end.
    """

    def __init__(self, kind: str, message: str, offset: int | None = None) -> None:
        super().__init__(message, offset)
        self.kind = kind
        self.kvs: tuple[GGUFKV, ...] = ()
        self.in_metadata = True


class GGUFUnsupported(FormatError):
    """A GGUF version this reader does not parse (v1, with 32-bit counts)."""


@dataclass(frozen=True, slots=True)
class GGUFArray:
    """An array value: its element type and length (elements are checked, not kept)."""

    elem_type: int
    count: int


@dataclass(frozen=True, slots=True)
class GGUFKV:
    """One metadata entry.

    Attributes:
        key: the key (undecodable bytes replaced).
        vtype: the value type id.
        value: int, float, bool, str or `GGUFArray`.
        offset: file offset of the entry.
        nul: the key as written continued after a NUL (`key` is cut there, as llama.cpp
            reads it).
    """

    key: str
    vtype: int
    value: int | float | bool | str | GGUFArray
    offset: int
    nul: bool = False


@dataclass(frozen=True, slots=True)
class GGUFTensor:
    """One tensor-info entry.

    Attributes:
        name: tensor name.
        dims: the dimensions as written (innermost first).
        ggml_type: the type id.
        offset: offset of the data, relative to the data section.
        nbytes: size of the data, None when the type or size is invalid.
        info_offset: file offset of the entry.
        nul: the name as written continued after a NUL (`name` is cut there).
    """

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int | None
    info_offset: int
    nul: bool = False


@dataclass(frozen=True, slots=True)
class GGUFProblem:
    """A rule of the format that the file breaks without hiding the rest of it."""

    kind: str
    detail: str
    offset: int | None


@dataclass(frozen=True, slots=True)
class GGUFFile:
    """The parsed structure of a GGUF file.

    Attributes:
        version: format version (2 or 3).
        big_endian: the file is in big-endian byte order.
        kvs: metadata entries in file order (duplicates included).
        tensors: tensor infos in file order (duplicates included).
        alignment: data alignment in effect.
        data_start: file offset of the data section.
        problems: rule violations found after the structure was read.
        duplicate_keys: metadata keys given more than once.
        duplicate_tensors: tensor names given more than once.
    """

    version: int
    big_endian: bool
    kvs: tuple[GGUFKV, ...]
    tensors: tuple[GGUFTensor, ...]
    alignment: int
    data_start: int
    problems: tuple[GGUFProblem, ...]
    duplicate_keys: tuple[str, ...]
    duplicate_tensors: tuple[str, ...]


class _Reader:
    """Sequential reads through a window buffer; every read is bounded by size and limit."""

    def __init__(self, blob: Blob, order: str, limit: int) -> None:
        self.blob = blob
        self.size = blob.size
        self.order = order
        self.limit = limit
        self.pos = 0
        self.buf = b""
        self.buf_start = 0

    def remaining(self) -> int:
        return self.size - self.pos

    def need(self, n: int, what: str, kind: str = "truncated") -> None:
        """Fail unless `n` more bytes exist and stay within the header limit."""
        if n > self.size - self.pos:
            raise GGUFError(
                kind, f"{what} needs {n} bytes, {self.size - self.pos} remain", self.pos
            )
        if self.pos + n > self.limit:
            raise LimitExceeded(
                "max_header_bytes",
                f"max_header_bytes reached (GGUF metadata beyond {self.limit} bytes)",
                self.pos,
            )

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        rel = self.pos - self.buf_start
        if rel < 0 or rel + n > len(self.buf):
            self.buf = self.blob.read(self.pos, max(n, _CHUNK))
            self.buf_start = self.pos
            rel = 0
            if len(self.buf) < n:
                raise GGUFError("truncated", f"{what}: short read", self.pos)
        self.pos += n
        return self.buf[rel : rel + n]

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n

    def skip_strings(self, count: int, what: str) -> None:
        """Step over `count` strings (token lists hold 100k+): lengths read from the buffer."""
        length = struct.Struct(self.order + "Q")
        for _ in range(count):
            rel = self.pos - self.buf_start
            if rel < 0 or rel + 8 > len(self.buf):
                self.take(8, what)  # refills the window (or fails at the end of the file)
                self.pos -= 8
                rel = 0
            n = length.unpack_from(self.buf, rel)[0]
            self.need(8 + n, what, kind="string-length")
            self.pos += 8 + n

    def scalar(self, code: str, what: str) -> int | float:
        size = struct.calcsize(code)
        value: int | float = struct.unpack(self.order + code, self.take(size, what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("Q", what))

    def string_bytes(self, what: str) -> bytes:
        n = self.u64(f"{what} length")
        self.need(n, what, kind="string-length")
        return self.take(n, what)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _name(raw: bytes) -> tuple[str, bool]:
    """A key or tensor name as llama.cpp matches it, and whether it held a NUL.

    llama.cpp compares names with strcmp on the C string, so `tokenizer.chat_template\\0x`
    is found as `tokenizer.chat_template`: the name is cut at the first NUL before it is
    matched or compared for duplicates.
    """
    cut = raw.find(b"\0")
    return (_decode(raw), False) if cut < 0 else (_decode(raw[:cut]), True)


def read_gguf(blob: Blob, *, max_header_bytes: int) -> GGUFFile:
    """Parse the header, metadata and tensor table of the GGUF file in `blob`.

    Returns:
        The structure, with rule violations that did not stop parsing in `problems`.

    Raises:
        GGUFUnsupported: version 1 (32-bit counts), which current loaders refuse too.
        GGUFError: a structural error (with `kind`, and the metadata read before it).
        LimitExceeded: the metadata and tensor table exceed `max_header_bytes`.
    """
    head = blob.read(0, 8)
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise GGUFError("magic", "not a GGUF file (bad magic or shorter than 8 bytes)", 0)
    version_le = struct.unpack("<I", head[4:8])[0]
    version_be = struct.unpack(">I", head[4:8])[0]
    if version_le == 1 or version_be == 1:
        raise GGUFUnsupported("GGUF version 1 (32-bit counts) is not analysed", 4)
    if version_le in _SUPPORTED_VERSIONS:
        order, version = "<", version_le
    elif version_be in _SUPPORTED_VERSIONS:
        # Big-endian GGUF (s390x builds): gguf-py detects it by the byte-swapped version.
        order, version = ">", version_be
    else:
        raise GGUFError("version", f"unknown GGUF version {version_le}", 4)
    r = _Reader(blob, order, max_header_bytes)
    r.pos = 8
    kvs: list[GGUFKV] = []
    try:
        n_tensors = r.u64("tensor count")
        n_kv = r.u64("metadata count")
        # Bound both counts by the bytes that remain before looping (a file claiming 2**62
        # KVs fails here; gguf-py 0.19 raised IndexError after trying).
        if n_kv > r.remaining() // _MIN_KV:
            raise GGUFError("kv-count", f"{n_kv} metadata entries cannot fit in the file", 16)
        if n_tensors > (r.remaining() - n_kv * _MIN_KV) // _MIN_TENSOR:
            raise GGUFError("tensor-count", f"{n_tensors} tensors cannot fit in the file", 8)
        for _ in range(n_kv):
            kvs.append(_read_kv(r))
    except GGUFError as exc:
        exc.kvs = tuple(kvs)
        raise
    try:
        problems: list[GGUFProblem] = []
        alignment = _alignment(kvs, problems)
        tensors = [_read_tensor_info(r, problems) for _ in range(n_tensors)]
    except GGUFError as exc:
        exc.kvs = tuple(kvs)
        exc.in_metadata = False
        raise
    data_start = _align(r.pos, alignment)
    for kv in kvs:
        if kv.nul:
            problems.append(
                GGUFProblem(
                    "nul-in-name", f"metadata key {kv.key!r} continues after a NUL", kv.offset
                )
            )
    for t in tensors:
        if t.nul:
            problems.append(
                GGUFProblem(
                    "nul-in-name", f"tensor name {t.name!r} continues after a NUL", t.info_offset
                )
            )
    if _needs_architecture(kvs) and not any(kv.key == "general.architecture" for kv in kvs):
        # The one key the specification requires; every writer puts it first.
        problems.append(GGUFProblem("architecture", "general.architecture is missing", 24))
    _check_placement(tensors, alignment, data_start, blob.size, problems)
    return GGUFFile(
        version=version,
        big_endian=order == ">",
        kvs=tuple(kvs),
        tensors=tuple(tensors),
        alignment=alignment,
        data_start=data_start,
        problems=tuple(problems),
        duplicate_keys=_duplicates(kv.key for kv in kvs),
        duplicate_tensors=_duplicates(t.name for t in tensors),
    )


def _needs_architecture(kvs: list[GGUFKV]) -> bool:
    """Whether the file must name an architecture: a model, or the first shard of a split one.

    Shards 2..n of a split model (`split.no` > 0) carry only `split.*` keys, and files whose
    `general.type` is not "model" (llama-imatrix output, "imatrix") have no architecture.
    """
    for kv in kvs:
        if kv.key == "split.no" and isinstance(kv.value, int) and kv.value > 0:
            return False
        if kv.key == "general.type" and isinstance(kv.value, str) and kv.value != "model":
            return False
    return True


def _duplicates(names: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    dups: dict[str, None] = {}  # ordered, with O(1) membership
    for name in names:
        if name in seen:
            dups[name] = None
        seen.add(name)
    return tuple(dups)


def _read_kv(r: _Reader) -> GGUFKV:
    start = r.pos
    key, nul = _name(r.string_bytes("metadata key"))
    vtype = r.u32("value type")
    if vtype not in _VALUE_TYPES:
        raise GGUFError("value-type", f"key {key!r}: unknown value type {vtype}", r.pos - 4)
    return GGUFKV(key, vtype, _read_value(r, vtype, key, 0), start, nul)


def _read_value(
    r: _Reader, vtype: int, key: str, depth: int
) -> int | float | bool | str | GGUFArray:
    if vtype == TYPE_STRING:
        return _decode(r.string_bytes(f"value of {key!r}"))
    if vtype == TYPE_ARRAY:
        return _read_array(r, key, depth)
    name, code = _VALUE_TYPES[vtype]
    value = r.scalar(code, f"value of {key!r}")
    return bool(value) if name == "bool" else value


def _read_array(r: _Reader, key: str, depth: int) -> GGUFArray:
    if depth >= MAX_ARRAY_DEPTH:
        raise GGUFError("array-depth", f"key {key!r}: arrays nested over {MAX_ARRAY_DEPTH}", r.pos)
    elem = r.u32("array element type")
    if elem not in _VALUE_TYPES:
        raise GGUFError("array-type", f"key {key!r}: unknown array element type {elem}", r.pos - 4)
    count = r.u64("array length")
    if elem == TYPE_STRING:
        least = _MIN_STRING
    elif elem == TYPE_ARRAY:
        least = _MIN_ARRAY
    else:
        least = struct.calcsize(_VALUE_TYPES[elem][1])
    if count > r.remaining() // least:
        raise GGUFError(
            "array-length", f"key {key!r}: {count} elements cannot fit in the file", r.pos - 8
        )
    if elem == TYPE_STRING:
        r.skip_strings(count, f"string in {key!r}")
    elif elem == TYPE_ARRAY:
        for _ in range(count):
            _read_array(r, key, depth + 1)
    else:
        r.skip(count * least, f"array {key!r}")
    return GGUFArray(elem, count)


def _alignment(kvs: list[GGUFKV], problems: list[GGUFProblem]) -> int:
    """`general.alignment`: a u32, non-zero power of two (llama.cpp refuses anything else)."""
    for kv in kvs:
        if kv.key != "general.alignment":
            continue
        value = kv.value
        if kv.vtype != TYPE_U32 or not isinstance(value, int) or isinstance(value, bool):
            problems.append(GGUFProblem("alignment", "general.alignment is not a u32", kv.offset))
        elif value == 0 or value & (value - 1):
            problems.append(
                GGUFProblem(
                    "alignment", f"general.alignment {value} is not a power of two", kv.offset
                )
            )
        else:
            return value
    return DEFAULT_ALIGNMENT


def _read_tensor_info(r: _Reader, problems: list[GGUFProblem]) -> GGUFTensor:
    start = r.pos
    name, nul = _name(r.string_bytes("tensor name"))
    n_dims = r.u32("tensor n_dims")
    if n_dims > GGML_MAX_DIMS:
        raise GGUFError("n-dims", f"tensor {name!r} has {n_dims} dimensions", r.pos - 4)
    dims = tuple(r.u64("tensor dimension") for _ in range(n_dims))
    ggml_type = r.u32("tensor type")
    offset = r.u64("tensor offset")
    nbytes = _nbytes(name, dims, ggml_type, start, problems)
    return GGUFTensor(name, dims, ggml_type, offset, nbytes, start, nul)


def _nbytes(
    name: str, dims: tuple[int, ...], ggml_type: int, at: int, problems: list[GGUFProblem]
) -> int | None:
    """Size of the tensor's data; None (with a problem recorded) when it cannot be trusted."""
    info = GGML_TYPES.get(ggml_type)
    if info is None:
        problems.append(GGUFProblem("tensor-type", f"tensor {name!r}: ggml type {ggml_type}", at))
        return None
    _, block, type_size = info
    elements = 1
    for dim in dims:
        # Dimensions are int64 in ggml: a "negative" one, or a product beyond INT64_MAX, is
        # the overflow that let a 4 MB buffer stand for exabytes (CVE-2026-33298).
        if dim > _INT64_MAX:
            problems.append(GGUFProblem("tensor-dims", f"tensor {name!r}: dimension {dim}", at))
            return None
        elements *= dim
        if elements > _INT64_MAX:
            problems.append(
                GGUFProblem("tensor-size", f"tensor {name!r}: element count overflows", at)
            )
            return None
    if dims and dims[0] % block:
        problems.append(
            GGUFProblem(
                "tensor-block",
                f"tensor {name!r}: first dimension {dims[0]} not a multiple of {block}",
                at,
            )
        )
        return None
    nbytes = elements // block * type_size
    if nbytes > _INT64_MAX:
        problems.append(GGUFProblem("tensor-size", f"tensor {name!r}: byte size overflows", at))
        return None
    return nbytes


def _check_placement(
    tensors: list[GGUFTensor],
    alignment: int,
    data_start: int,
    file_size: int,
    problems: list[GGUFProblem],
) -> None:
    """Each tensor aligned, inside the file, and not overlapping another."""
    spans: list[tuple[int, int, str]] = []
    for t in tensors:
        if t.offset % alignment:
            problems.append(
                GGUFProblem(
                    "tensor-alignment",
                    f"tensor {t.name!r}: offset {t.offset} not a multiple of {alignment}",
                    t.info_offset,
                )
            )
        if t.nbytes is None:
            continue
        end = data_start + t.offset + t.nbytes
        if end > file_size:
            problems.append(
                GGUFProblem(
                    "tensor-range",
                    f"tensor {t.name!r}: data ends at {end}, past the end of the file "
                    f"({file_size})",
                    t.info_offset,
                )
            )
        if t.nbytes:
            spans.append((t.offset, t.offset + t.nbytes, t.name))
    spans.sort()
    reach, last = 0, ""
    gap = False
    for begin, end, name in spans:
        if begin < reach:
            problems.append(
                GGUFProblem("tensor-overlap", f"tensors {last!r} and {name!r} overlap", None)
            )
        elif begin - _align(reach, alignment) > 0 and not gap:
            gap = True
            problems.append(
                GGUFProblem(
                    "data-gap",
                    f"{begin - _align(reach, alignment)} bytes of the data section before "
                    f"tensor {name!r} belong to no tensor",
                    data_start + reach,
                )
            )
        if end > reach:
            reach, last = end, name
    if any(t.nbytes is None for t in tensors):
        return  # sizes unknown: already reported, the data section cannot be accounted for
    # Writers (gguf-py, llama.cpp) pad each tensor to the alignment and end the file there;
    # bytes beyond that are read by no loader and can carry a payload for another reader.
    tail = file_size - data_start - _align(reach, alignment)
    if tail > 0:
        problems.append(
            GGUFProblem(
                "trailing-data",
                f"{tail} bytes after the last tensor belong to no tensor",
                data_start + _align(reach, alignment),
            )
        )


def _align(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment
