"""A strict, bounded reader of safetensors headers (never the tensor data).

A safetensors file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON (an
object mapping tensor names to ``{"dtype", "shape", "data_offsets"}`` plus an optional
``"__metadata__"`` string-to-string map, padded at the end with spaces), then the data
section. The reference reader (huggingface/safetensors ``tensor.rs``) refuses headers over
100,000,000 bytes, sorts tensors by offsets and requires them to tile the data section
exactly: no overlaps, no holes, nothing after the last tensor (the format's anti-polyglot
rule).

`read_header` reads the length and the header once, bounded, and returns what it found with
every rule violation recorded as a `Problem` rather than stopping at the first: a scanner
must see everything a lenient reader might accept. Only a header that cannot be read as a
JSON object at all raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob
from modelguard.formats.jsonstrict import parse_json

__all__ = [
    "DTYPE_BITS",
    "MAX_HEADER_SIZE",
    "METADATA_KEY",
    "HeaderError",
    "Problem",
    "SafetensorsHeader",
    "TensorEntry",
    "read_header",
]

# The reference reader's cap on the header length (tensor.rs MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 100_000_000
METADATA_KEY = "__metadata__"
_U64_MAX = 2**64 - 1
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
# JSON whitespace: serde_json, the reference's parser, skips it around the object.
_JSON_SPACE = b" \t\r\n"

# Element width in bits of every dtype the format defines (safetensors tensor.rs
# `Dtype::bitsize`, 0.6+): the MX sub-byte floats F4/F6 pack several elements per byte.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,  # written by safetensors.torch for torch.float8_e4m3fnuz
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


class HeaderError(FormatError):
    """The header cannot be read as a JSON object at all.

    Attributes:
        kind: the problem's short name (``header-too-large``, ``header-beyond-file``,
            ``header-too-small``, ``invalid-utf8``, ``invalid-json``, ``not-object``).
    """

    def __init__(self, kind: str, message: str, offset: int | None = None) -> None:
        super().__init__(message, offset)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Problem:
    """One kind of rule violation, with how often it occurred and a first example.

    Attributes:
        kind: short name, e.g. ``unknown-dtype``, ``overlap``, ``hole``.
        count: how many tensors (or places) showed it.
        detail: a short description of the first occurrence.
    """

    kind: str
    count: int
    detail: str


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """One tensor entry of the header, as declared (values may be invalid: see problems).

    Attributes:
        name: the tensor's name (the header key).
        dtype: the declared dtype, or "" if not a string.
        shape: the declared shape if it is a list of non-negative ints, else None.
        begin: first data offset (relative to the data section), None if invalid.
        end: end data offset, None if invalid.
        extra_keys: keys of the entry beyond dtype/shape/data_offsets.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] | None
    begin: int | None
    end: int | None
    extra_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    """What a safetensors header declares.

    Attributes:
        header_length: N, the declared JSON length.
        data_start: offset of the data section in the blob (8 + N).
        data_end: offset in the blob where the tensors' coverage ends (data_start plus the
            largest valid end offset); bytes from there to the end of the blob are not
            indexed by any tensor.
        tensors: the entries, sorted by (begin, end) as the reference validates them.
        metadata: the ``__metadata__`` items whose key and value are strings.
        duplicates: keys repeated in the header's JSON (top level or nested), in order.
        problems: every rule violation found, one `Problem` per kind.
    """

    header_length: int
    data_start: int
    data_end: int
    tensors: tuple[TensorEntry, ...]
    metadata: tuple[tuple[str, str], ...]
    duplicates: tuple[str, ...]
    problems: tuple[Problem, ...]

    def problem(self, kind: str) -> Problem | None:
        """Return the problem of `kind`, or None."""
        return next((p for p in self.problems if p.kind == kind), None)


class _Problems:
    """Collects problems by kind: a count and the first detail."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, str]] = {}

    def add(self, kind: str, detail: str) -> None:
        count, first = self.seen.get(kind, (0, detail))
        self.seen[kind] = (count + 1, first)

    def result(self) -> tuple[Problem, ...]:
        return tuple(Problem(k, c, d) for k, (c, d) in self.seen.items())


def _short(text: str, limit: int = 80) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_uint(value: object) -> bool:
    # bool is an int subclass in Python; JSON true/false are not sizes.
    return type(value) is int and 0 <= value <= _U64_MAX


def _utf8_clean(text: str) -> bool:
    """False for lone surrogates: Python's json accepts "\\ud800", serde_json refuses it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_header(blob: Blob, max_header_bytes: int = MAX_HEADER_SIZE) -> SafetensorsHeader:
    """Read and validate the header of the safetensors file in `blob`.

    Reads at most 8 + min(N, caps) bytes; the data section is never read.

    Args:
        blob: the whole file (or the slice a container holds).
        max_header_bytes: the scanner's own limit on the header length; a header within the
            format's cap but above this one is not parsed.

    Returns:
        the header, with every violation of the format's rules listed in `problems`.

    Raises:
        HeaderError: the length is beyond the format's cap or the blob, or the header is not
            UTF-8, not JSON or not an object.
        LimitExceeded: the header is within the format's cap but over `max_header_bytes`
            (``limit == "max_header_bytes"``).
    """
    if blob.size < 8:
        raise HeaderError("header-too-small", f"{blob.size} bytes: no 8-byte length", 0)
    length = int.from_bytes(blob.read(0, 8), "little")
    if length > MAX_HEADER_SIZE:
        raise HeaderError(
            "header-too-large",
            f"header length {length} exceeds the format's cap of {MAX_HEADER_SIZE}",
            0,
        )
    if length > blob.size - 8:
        raise HeaderError(
            "header-beyond-file",
            f"header length {length} exceeds the {blob.size - 8} bytes after the length",
            0,
        )
    if length > max_header_bytes:
        raise LimitExceeded(
            "max_header_bytes",
            f"max_header_bytes reached (safetensors header of {length} bytes)",
            0,
        )
    raw = blob.read(8, length)
    if len(raw) != length:
        raise HeaderError("header-beyond-file", "the file ended inside the header", 8)
    probs = _Problems()
    body = raw.rstrip(_JSON_SPACE)
    if not body.startswith(b"{"):
        # The reference tolerates leading whitespace (serde skips it); writers never emit it,
        # and content sniffers keyed on "{" at offset 8 miss such a file.
        probs.add("header-start", f"header starts with {raw[:8]!r}, not '{{'")
    try:
        doc = parse_json(raw)
    except FormatError as exc:
        kind = "invalid-utf8" if str(exc).startswith("not UTF-8") else "invalid-json"
        offset = 8 + exc.offset if exc.offset is not None else 8
        raise HeaderError(kind, f"header: {exc}", offset) from None
    except ValueError as exc:
        # json refuses integer literals over sys.get_int_max_str_digits() with a bare
        # ValueError (not a JSONDecodeError); no dimension or offset is that long.
        raise HeaderError("invalid-json", f"header: {str(exc)[:80]}", 8) from None
    if not isinstance(doc.value, dict):
        raise HeaderError("not-object", f"header is a JSON {type(doc.value).__name__}", 8)
    data_start = 8 + length
    data_size = blob.size - data_start
    metadata = _metadata(doc.value.get(METADATA_KEY), probs)
    entries = [
        _entry(name, value, probs) for name, value in doc.value.items() if name != METADATA_KEY
    ]
    entries.sort(key=lambda e: (e.begin is None, e.begin or 0, e.end or 0))
    covered = _coverage(entries, data_size, probs)
    return SafetensorsHeader(
        header_length=length,
        data_start=data_start,
        data_end=data_start + covered,
        tensors=tuple(entries),
        metadata=metadata,
        duplicates=doc.duplicates,
        problems=probs.result(),
    )


def _metadata(value: object, probs: _Problems) -> tuple[tuple[str, str], ...]:
    """``__metadata__`` must be absent, null or a string-to-string map."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        probs.add("bad-metadata", f"__metadata__ is a JSON {type(value).__name__}")
        return ()
    items: list[tuple[str, str]] = []
    for key, item in value.items():
        if not isinstance(item, str):
            probs.add("bad-metadata", f"__metadata__[{_short(key)!r}] is {type(item).__name__}")
        elif not (_utf8_clean(key) and _utf8_clean(item)):
            probs.add("invalid-json", f"__metadata__[{_short(key)!r}]: lone surrogate escape")
        else:
            items.append((key, item))
    return tuple(items)


def _entry(name: str, value: object, probs: _Problems) -> TensorEntry:
    """Check one tensor entry; problems are recorded, the entry is returned as declared."""
    label = _short(name, 60)
    if not _utf8_clean(name):
        probs.add("invalid-json", f"tensor name {label!r}: lone surrogate escape")
    if not isinstance(value, dict):
        probs.add("bad-entry", f"{label!r} is a JSON {type(value).__name__}, not an object")
        return TensorEntry(name, "", None, None, None)
    missing = _ENTRY_KEYS - value.keys()
    if missing:
        probs.add("bad-entry", f"{label!r} lacks {', '.join(sorted(missing))}")
    extra = tuple(k for k in value if k not in _ENTRY_KEYS)
    dtype = value.get("dtype")
    bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
    if bits is None and "dtype" in value:
        probs.add("unknown-dtype", f"{label!r} has dtype {_short(repr(dtype), 40)}")
    raw_shape = value.get("shape")
    shape: tuple[int, ...] | None = None
    if isinstance(raw_shape, list) and all(_is_uint(d) for d in raw_shape):
        shape = tuple(raw_shape)
    elif "shape" in value:
        probs.add("bad-shape", f"{label!r} has shape {_short(repr(raw_shape), 40)}")
    offsets = value.get("data_offsets")
    begin = end = None
    if (
        isinstance(offsets, list)
        and len(offsets) == 2
        and _is_uint(offsets[0])
        and _is_uint(offsets[1])
        and offsets[0] <= offsets[1]
    ):
        begin, end = offsets
    elif "data_offsets" in value:
        probs.add("bad-offsets", f"{label!r} has data_offsets {_short(repr(offsets), 40)}")
    if shape is not None and bits is not None:
        numel = 1
        for dim in shape:
            numel *= dim
        nbits = numel * bits
        if nbits > _U64_MAX:
            # The reference multiplies with overflow checks in usize.
            probs.add("bad-shape", f"{label!r}: element count x width overflows 64 bits")
        elif nbits % 8:
            probs.add("misaligned-bits", f"{label!r}: {numel} x {bits} bits is not whole bytes")
        elif begin is not None and end is not None and end - begin != nbits // 8:
            probs.add(
                "size-mismatch",
                f"{label!r}: offsets span {end - begin} bytes, {dtype}{list(shape)} "
                f"needs {nbits // 8}",
            )
    return TensorEntry(name, dtype if isinstance(dtype, str) else "", shape, begin, end, extra)


def _coverage(entries: list[TensorEntry], data_size: int, probs: _Problems) -> int:
    """Check that tensors (sorted by offsets) tile [0, covered) and fit the data section.

    Returns the covered length, at most `data_size`.
    """
    expected = 0
    for entry in entries:
        if entry.begin is None or entry.end is None:
            continue
        label = _short(entry.name, 60)
        if entry.begin < expected:
            probs.add("overlap", f"{label!r} starts at {entry.begin}, inside [0, {expected})")
        elif entry.begin > expected:
            probs.add("hole", f"{entry.begin - expected} unindexed bytes before {label!r}")
        if entry.end > data_size:
            probs.add(
                "beyond-file",
                f"{label!r} ends at {entry.end}, past the {data_size}-byte data section",
            )
        expected = max(expected, entry.end)
    return min(expected, data_size)
