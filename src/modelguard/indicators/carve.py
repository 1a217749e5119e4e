"""Carve embedded files out of the low-order bytes of float weights (indicator W6, MG505).

EvilModel-style hiding replaces the low 1, 2 or 3 bytes of each float32 with payload bytes
and keeps the exponent byte, so the payload reappears when the low bytes of consecutive
values are concatenated. This module rebuilds those streams and looks for file signatures,
and reports a signature only when the structure behind it validates (ELF and PE header
fields, a ZIP local header with a printable name, a gzip header whose deflate stream inflates,
a PNG IHDR chunk with its CRC, a `%PDF-1.x` line, a bzip2 block magic, a 7z start header with
its CRC, an interpreter line): a 2-byte `MZ` alone occurs by chance in clean weights (research
note formats_poisoning.md, W6).
"""

from __future__ import annotations

import functools
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Carved", "carve", "low_byte_streams", "printable_runs"]

# ELF e_machine values of real targets (x86, ARM, MIPS, PowerPC, SPARC, s390, RISC-V, ...).
_ELF_MACHINES = frozenset({2, 3, 8, 20, 21, 22, 40, 43, 50, 62, 183, 243, 258})
# PE COFF machine values: i386, AMD64, ARM, ARMNT, ARM64, IA64.
_PE_MACHINES = frozenset({0x14C, 0x8664, 0x1C0, 0x1C4, 0xAA64, 0x200})
# ZIP compression methods in use (stored, deflate, deflate64, bzip2, lzma, zstd, xz, ppmd).
_ZIP_METHODS = frozenset({0, 8, 9, 12, 14, 93, 95, 98})
# An interpreter line naming a program in a bin directory (`#!/bin/sh`, `#!/usr/bin/env
# python3`): a bare `#!/` plus a short name occurs by chance in random streams.
_SHEBANG = re.compile(rb"#!/(?:usr/(?:local/)?)?s?bin/[A-Za-z0-9_.+-]{1,32}(?: [ -~]{0,128})?\n")
_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


@dataclass(frozen=True, slots=True)
class Carved:
    """A validated file structure found in a byte stream.

    Attributes:
        kind: `elf`, `pe`, `zip`, `gzip`, `png`, `pdf`, `bzip2`, `7z` or `script`.
        offset: offset of its first byte in the stream.
        length: bytes the validated structure spans or declares (header tables, member
            data, the printable script run).
        detail: the header fields that validated, for the evidence.
    """

    kind: str
    offset: int
    length: int
    detail: str


def low_byte_streams(
    data: npt.NDArray[np.uint8], itemsize: int, widths: tuple[int, ...] = (1, 2, 3)
) -> dict[int, bytes]:
    """Return, per width k, the concatenated low k bytes of each little-endian element.

    Args:
        data: raw tensor bytes (a whole number of elements).
        itemsize: bytes per element; widths >= itemsize are skipped.
        widths: how many low bytes of each element to keep.
    """
    if itemsize <= 0 or len(data) < itemsize:
        return {}
    rows = data[: len(data) - len(data) % itemsize].reshape(-1, itemsize)
    return {k: (rows[:, 0] if k == 1 else rows[:, :k]).tobytes() for k in widths if k < itemsize}


def carve(stream: bytes, min_bytes: int) -> list[Carved]:
    """Return the validated embedded files in `stream` that span at least `min_bytes`."""
    found: list[Carved] = []
    for pos, (magic, check) in _candidates(stream):
        if stream.startswith(magic, pos):
            hit = check(stream, pos)
            if hit is not None and hit.length >= min_bytes:
                found.append(hit)
    found.sort(key=lambda c: (c.offset, c.kind))
    return found


def _candidates(stream: bytes) -> list[tuple[int, tuple[bytes, _Check]]]:
    """Return the positions where a signature's first two bytes occur, with the signature.

    The stream is read as 16-bit pairs (at even, then odd offsets) and each pair looked up in
    a 65536-entry table of signature prefixes: a few NumPy passes instead of one `bytes.find`
    per signature (each about 2 GB/s on random bytes).
    """
    import numpy as np

    hits: list[tuple[int, tuple[bytes, _Check]]] = []
    starts, table = _prefix_tables()
    for parity in (0, 1):
        pairs = (len(stream) - parity) // 2
        if pairs <= 0:
            continue
        words = np.frombuffer(stream, "<u2", count=pairs, offset=parity)
        where = np.flatnonzero(starts.take(words))
        kinds = table.take(words[where])
        for at, kind in zip(where.tolist(), kinds.tolist(), strict=True):
            hits.append((2 * at + parity, _CHECKS[kind - 1]))
    hits.sort(key=lambda hit: hit[0])
    return hits


_Check = Callable[[bytes, int], "Carved | None"]


@functools.cache
def _prefix_tables() -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.uint8]]:
    """Return, per little-endian 16-bit pair, whether a signature starts with it (booleans:
    NumPy's nonzero() is several times faster on them) and which (number from 1, or 0)."""
    import numpy as np

    table = np.zeros(1 << 16, np.uint8)
    for number, (magic, _check) in enumerate(_CHECKS, 1):
        table[magic[0] | magic[1] << 8] = number  # the prefixes are distinct (a test checks it)
    starts = table.astype(np.bool_)
    table.flags.writeable = starts.flags.writeable = False  # shared by every call
    return starts, table


def _elf(data: bytes, pos: int) -> Carved | None:
    head = data[pos : pos + 64]
    if len(head) < 52:
        return None
    cls, enc, ver = head[4], head[5], head[6]
    if cls not in (1, 2) or enc not in (1, 2) or ver != 1 or any(head[9:16]):
        return None
    order = "<" if enc == 1 else ">"
    e_type, machine, e_version = struct.unpack_from(order + "HHI", head, 16)
    if e_type not in (1, 2, 3, 4) or machine not in _ELF_MACHINES or e_version != 1:
        return None
    if cls == 2:
        if len(head) < 64:
            return None
        phoff, shoff = struct.unpack_from(order + "QQ", head, 32)
        ehsize, phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHHH", head, 52)
        want_eh, want_ph, want_sh = 64, 56, 64
    else:
        phoff, shoff = struct.unpack_from(order + "II", head, 28)
        ehsize, phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHHH", head, 40)
        want_eh, want_ph, want_sh = 52, 32, 40
    if ehsize != want_eh or phentsize not in (0, want_ph) or shentsize not in (0, want_sh):
        return None
    length = max(ehsize, phoff + phnum * phentsize, shoff + shnum * shentsize)
    detail = f"ELF{32 * cls} e_type={e_type} e_machine={machine} ehsize={ehsize}"
    return Carved("elf", pos, length, detail)


def _pe(data: bytes, pos: int) -> Carved | None:
    if pos + 64 > len(data):
        return None
    (lfanew,) = struct.unpack_from("<I", data, pos + 0x3C)
    if not 0x40 <= lfanew <= 0x1000 or pos + lfanew + 24 > len(data):
        return None
    if data[pos + lfanew : pos + lfanew + 4] != b"PE\0\0":
        return None
    machine, sections = struct.unpack_from("<HH", data, pos + lfanew + 4)
    (opt_size,) = struct.unpack_from("<H", data, pos + lfanew + 20)
    if machine not in _PE_MACHINES or not 1 <= sections <= 96 or opt_size not in (0, 0xE0, 0xF0):
        return None
    length = lfanew + 24 + opt_size + 40 * sections
    detail = f"PE machine=0x{machine:x} sections={sections} e_lfanew=0x{lfanew:x}"
    return Carved("pe", pos, length, detail)


def _zip(data: bytes, pos: int) -> Carved | None:
    if pos + 30 > len(data):
        return None
    version, flags, method = struct.unpack_from("<HHH", data, pos + 4)
    csize, _usize, name_len, extra_len = struct.unpack_from("<IIHH", data, pos + 18)
    if version > 63 or flags & 0xF7C0 or method not in _ZIP_METHODS:
        return None
    if not 1 <= name_len <= 512 or extra_len > 1024:
        return None
    name = data[pos + 30 : pos + 30 + name_len]
    if len(name) != name_len or not all(0x20 <= b < 0x7F for b in name):
        return None
    length = 30 + name_len + extra_len + (0 if flags & 0x08 else csize)
    detail = f"ZIP local header name={name.decode('ascii')!r} method={method} size={csize}"
    return Carved("zip", pos, length, detail)


def _gzip(data: bytes, pos: int) -> Carved | None:
    head = data[pos : pos + 10]
    if len(head) < 10 or head[3] & 0xE0 or head[8] not in (0, 2, 4):
        return None
    if head[9] > 13 and head[9] != 255:
        return None
    at = pos + 10
    if head[3] & 0x04:  # FEXTRA
        if at + 2 > len(data):
            return None
        at += 2 + int.from_bytes(data[at : at + 2], "little")
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: printable, NUL-terminated
        if head[3] & flag:
            end = data.find(b"\0", at, at + 1024)
            if end < 0 or not all(b in _PRINTABLE for b in data[at:end]):
                return None
            at = end + 1
    if head[3] & 0x02:
        at += 2
    body = data[at : at + 65536]
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(body, 1 << 20)
    except zlib.error:
        return None
    used = len(body) - len(inflater.unused_data) - len(inflater.unconsumed_tail)
    if not out or (not inflater.eof and used < min(len(body), 256)):
        return None
    if inflater.eof:
        # a complete member: its trailer (CRC-32 and size of the output) must match
        trailer = data[at + used : at + used + 8]
        if len(trailer) == 8 and trailer != struct.pack(
            "<II", zlib.crc32(out) & 0xFFFFFFFF, len(out) & 0xFFFFFFFF
        ):
            return None
    length = at - pos + used + (8 if inflater.eof else 0)
    detail = f"gzip header flags=0x{head[3]:x} os={head[9]}, deflate stream inflates"
    return Carved("gzip", pos, length, detail)


def _png(data: bytes, pos: int) -> Carved | None:
    at = pos + 8
    length = 8
    chunks: list[str] = []
    while at + 12 <= len(data) and len(chunks) < 64:
        (size,) = struct.unpack_from(">I", data, at)
        kind = data[at + 4 : at + 8]
        if size > 1 << 26 or not kind.isalpha():
            break
        if not chunks and (kind != b"IHDR" or size != 13):
            return None
        body = data[at + 4 : at + 8 + size]
        if at + 12 + size > len(data):
            if chunks:  # a plausible chunk running past what was read: the file goes on
                chunks.append(kind.decode("ascii") + "(cut)")
                length = len(data) - pos
            break
        (crc,) = struct.unpack_from(">I", data, at + 8 + size)
        if zlib.crc32(body) != crc:
            if not chunks:
                return None
            break
        chunks.append(kind.decode("ascii"))
        at += 12 + size
        length = at - pos
        if kind == b"IEND":
            break
    if not chunks:
        return None
    width, height = struct.unpack_from(">II", data, pos + 16)
    detail = f"PNG {width}x{height}, CRC-checked chunks {','.join(chunks[:8])}"
    return Carved("png", pos, length, detail)


_PDF_LINE = re.compile(rb"%PDF-[12]\.[0-9][\r\n]")


def _pdf(data: bytes, pos: int) -> Carved | None:
    if _PDF_LINE.match(data, pos) is None:
        return None
    eof = data.find(b"%%EOF", pos, pos + (1 << 24))
    end = eof + 5 if eof >= 0 else min(len(data), pos + (1 << 20))
    version = data[pos + 5 : pos + 8].decode("ascii")
    detail = f"PDF header %PDF-{version}" + (", %%EOF found" if eof >= 0 else "")
    return Carved("pdf", pos, end - pos, detail)


def _bzip2(data: bytes, pos: int) -> Carved | None:
    head = data[pos : pos + 10]
    if len(head) < 10 or not 0x31 <= head[3] <= 0x39:
        return None
    if head[4:10] not in (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"):
        return None
    import bz2

    length = min(len(data) - pos, 100_000 * (head[3] - 0x30))
    decoder = bz2.BZ2Decompressor()
    try:
        # the first block must decode (it is checked against its CRC when complete)
        decoder.decompress(data[pos : pos + length], 1 << 16)
    except (OSError, ValueError, EOFError):
        return None
    return Carved("bzip2", pos, length, f"bzip2 header level {chr(head[3])}, block decodes")


def _sevenzip(data: bytes, pos: int) -> Carved | None:
    head = data[pos : pos + 32]
    if len(head) < 32 or head[6] != 0 or head[7] > 4:
        return None
    (crc,) = struct.unpack_from("<I", head, 8)
    if zlib.crc32(head[12:32]) != crc:
        return None
    offset, size = struct.unpack_from("<QQ", head, 12)
    detail = f"7z version 0.{head[7]}, start header CRC ok, next header at {offset}"
    return Carved("7z", pos, 32 + offset + size, detail)


def printable_runs(stream: bytes, min_len: int) -> list[tuple[int, int]]:
    """Return (offset, length) of the runs of at least `min_len` printable ASCII bytes.

    Printable: 0x20-0x7E, tab, line feed, carriage return (98 of 256 byte values: a run of 96
    in uniform random bytes has probability about 1e-40 per position).
    """
    if min_len <= 0 or len(stream) < min_len:
        return []
    # printable bytes become 1, the others 0 (one C-level translation); a run is then a
    # substring of min_len ones, which the substring search skips over quickly
    marks = stream.translate(_PRINTABLE_MARKS)
    needle = b"\x01" * min_len
    runs: list[tuple[int, int]] = []
    at = marks.find(needle)
    while at >= 0:  # `at` starts a run: the byte before it is 0 or the stream's start
        end = marks.find(b"\x00", at + min_len)
        end = len(marks) if end < 0 else end
        runs.append((at, end - at))
        at = marks.find(needle, end + 1)
    return runs


_PRINTABLE_MARKS = bytes(1 if b in _PRINTABLE else 0 for b in range(256))


def _script(data: bytes, pos: int) -> Carved | None:
    match = _SHEBANG.match(data, pos)
    if match is None:
        return None
    end = pos
    limit = min(len(data), pos + (1 << 20))
    while end < limit and data[end] in _PRINTABLE:
        end += 1
    line = match.group(0).rstrip(b"\n").decode("ascii")
    return Carved("script", pos, end - pos, f"interpreter line {line!r}")


_CHECKS = (
    (b"\x7fELF", _elf),
    (b"MZ", _pe),
    (b"PK\x03\x04", _zip),
    (b"\x1f\x8b\x08", _gzip),
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"%PDF-", _pdf),
    (b"BZh", _bzip2),
    (b"7z\xbc\xaf\x27\x1c", _sevenzip),
    (b"#!/", _script),
)
