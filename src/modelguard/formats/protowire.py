"""A bounded reader of the protobuf wire format over a `Blob`.

ONNX models and TensorFlow graphs are protobuf messages; the scanner walks them field by
field with this reader instead of the framework's generated classes (which would mean
importing onnx or tensorflow, and protobuf's C++ parser on hostile input). Fields are yielded
lazily; length-delimited fields are yielded as an (offset, length) window and never read
unless the caller asks for them, so a tensor's multi-gigabyte `raw_data` costs nothing.

Bounds: a varint is at most 10 bytes; a length must fit in the bytes of its enclosing
message; nested messages are walked at most `MAX_NESTING` deep; every field visited counts
against a shared budget (`Budget`), so a file of millions of tiny fields cannot make the walk
arbitrarily long. Groups (wire types 3 and 4) are rejected: neither ONNX nor TensorFlow
uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob

__all__ = [
    "LEN",
    "MAX_FIELDS",
    "MAX_NESTING",
    "VARINT",
    "Budget",
    "Field",
    "Reader",
]

VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_VARINT_BYTES = 10
# Messages nested deeper than this are not walked (ONNX subgraphs in subgraphs, TF nesting
# is shallow): the recursion of the callers is bounded by it.
MAX_NESTING = 32
# Fields visited in one file (a few microseconds each). A 2 GiB ONNX model or a SavedModel
# with a few hundred thousand nodes stays well under it; reaching it makes the result
# incomplete (MG003).
MAX_FIELDS = 10_000_000
_CHUNK = 64 * 1024


class Field(NamedTuple):
    """One field of a message.

    A named tuple rather than a frozen dataclass: one is built per field visited, and a
    tuple is built several times faster (a frozen dataclass sets each attribute through
    `object.__setattr__`).

    Attributes:
        number: the field number.
        wire: the wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
        value: the integer value for varint and fixed fields; the payload length for LEN.
        offset: where the payload starts in the blob (for LEN fields), else where the value is.
        length: the payload length for LEN fields, else the size of the encoded value.
    """

    number: int
    wire: int
    value: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        """Return the offset just past the field's payload."""
        return self.offset + self.length


class Budget:
    """A count of fields visited, shared by every walk over one file."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int = MAX_FIELDS) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, offset: int) -> None:
        """Count one field.

        Raises:
            LimitExceeded: the budget is exhausted.
        """
        self.left -= 1
        if self.left < 0:
            raise LimitExceeded(
                "protobuf_fields",
                f"more than {self.limit} protobuf fields; the rest was not walked",
                offset,
            )


class Reader:
    """Reads fields from a blob through a small cached window."""

    __slots__ = ("_buf", "_start", "blob", "budget")

    def __init__(self, blob: Blob, budget: Budget | None = None) -> None:
        self.blob = blob
        self.budget = budget if budget is not None else Budget()
        self._start = 0
        self._buf = b""

    def _byte(self, pos: int) -> int:
        rel = pos - self._start
        if not 0 <= rel < len(self._buf):
            self._start = pos
            self._buf = self.blob.read(pos, _CHUNK)
            rel = 0
            if not self._buf:
                raise FormatError("protobuf field runs past the end of the data", pos)
        return self._buf[rel]

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """Decode a varint at `pos` that must end by `end`; return (value, next position).

        Raises:
            FormatError: truncated, or longer than 10 bytes.
        """
        rel = pos - self._start
        buf = self._buf
        if rel >= 0 and rel + MAX_VARINT_BYTES <= len(buf) and pos + MAX_VARINT_BYTES <= end:
            # Fast path: the whole varint is in the window (almost always).
            byte = buf[rel]
            if not byte & 0x80:
                return byte, pos + 1
            value = 0
            for i in range(MAX_VARINT_BYTES):
                byte = buf[rel + i]
                value |= (byte & 0x7F) << (7 * i)
                if not byte & 0x80:
                    return value & 0xFFFF_FFFF_FFFF_FFFF, pos + i + 1
            raise FormatError("varint longer than 10 bytes", pos + MAX_VARINT_BYTES)
        value = 0
        for i in range(MAX_VARINT_BYTES):
            if pos >= end:
                raise FormatError("truncated varint", pos)
            byte = self._byte(pos)
            pos += 1
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value & 0xFFFF_FFFF_FFFF_FFFF, pos
        raise FormatError("varint longer than 10 bytes", pos)

    def fields(self, start: int, end: int) -> Iterator[Field]:
        """Yield the fields of the message in `[start, end)`, one at a time.

        Raises:
            FormatError: a malformed tag, varint or length, a group, or a length that runs
                past `end`.
            LimitExceeded: the field budget is exhausted.
        """
        end = min(end, self.blob.size)
        pos = start
        budget = self.budget
        while pos < end:
            # Budget.spend, inlined: this loop runs once per field of the file.
            left = budget.left - 1
            if left < 0:
                budget.spend(pos)
            budget.left = left
            # One-byte tags and values (almost all of them) are read straight from the window;
            # the window is fetched again each time round, as nested walks move it.
            buf = self._buf
            have = len(buf)
            rel = pos - self._start
            if 0 <= rel < have and buf[rel] < 0x80:
                key = buf[rel]
                pos += 1
                rel += 1
            else:
                key, pos = self.varint(pos, end)
                buf = self._buf
                have = len(buf)
                rel = pos - self._start
            number, wire = key >> 3, key & 7
            if number == 0 or number > 0x1FFF_FFFF:
                raise FormatError(f"invalid field number {number}", pos)
            if wire in (LEN, VARINT):
                if pos < end and 0 <= rel < have and buf[rel] < 0x80:
                    value, nxt = buf[rel], pos + 1
                else:
                    value, nxt = self.varint(pos, end)
                if wire == VARINT:
                    yield Field(number, wire, value, pos, nxt - pos)
                    pos = nxt
                    continue
                if value > end - nxt:
                    raise FormatError(
                        f"field {number} declares {value} bytes, {end - nxt} remain", nxt
                    )
                yield Field(number, wire, value, nxt, value)
                pos = nxt + value
            elif wire in (I64, I32):
                size = 8 if wire == I64 else 4
                if size > end - pos:
                    raise FormatError(f"truncated fixed{size * 8} field {number}", pos)
                raw = bytes(self._byte(pos + i) for i in range(size))
                yield Field(number, wire, int.from_bytes(raw, "little"), pos, size)
                pos += size
            else:
                raise FormatError(f"unsupported wire type {wire} (field {number})", pos)

    def payload(self, field: Field, cap: int) -> bytes:
        """Return the bytes of a LEN field, at most `cap` of them.

        Raises:
            LimitExceeded: the field is longer than `cap` (nothing is read then).
        """
        if field.length > cap:
            raise LimitExceeded(
                "max_header_bytes",
                f"a {field.length}-byte protobuf string is longer than {cap} bytes",
                field.offset,
            )
        rel = field.offset - self._start
        if rel >= 0 and rel + field.length <= len(self._buf):
            return self._buf[rel : rel + field.length]
        return self.blob.read(field.offset, field.length)

    def text(self, field: Field, cap: int) -> str:
        """Return a LEN field decoded as UTF-8 (invalid bytes replaced), at most `cap` bytes.

        Raises:
            LimitExceeded: the field is longer than `cap`.
        """
        return self.payload(field, cap).decode("utf-8", "replace")
