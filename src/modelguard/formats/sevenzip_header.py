"""A bounded pre-parser of 7z headers (7zFormat.txt, "Header"), run before py7zr sees an archive.

It counts folders (solid blocks), substreams and files and reads each folder's coders, so
that `modelguard.formats.sevenzip` can refuse archives whose header would make py7zr allocate
without bound, and check every folder's methods, dictionary sizes and declared sizes before
anything is decoded.
"""

from __future__ import annotations

import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob
from modelguard.formats.compress import LZMA_MEMLIMIT_FLOOR, RATIO_FLOOR, output_cap

__all__ = ["MAGIC", "SIGNATURE_SIZE", "check_folder", "read_header"]

_MAGIC = b"7z\xbc\xaf\x27\x1c"
_SIGNATURE_SIZE = 32
_CHUNK = 64 * 1024
_AES = bytes.fromhex("06f10701")
# Property ids (7zFormat.txt, "Property IDs"): 0x00 to 0x0D in this order, then 0x17.
_END, _HEADER, _ARCHIVE_PROPERTIES, _ADDITIONAL_STREAMS, _MAIN_STREAMS, _FILES_INFO = range(6)
_PACK_INFO, _UNPACK_INFO, _SUBSTREAMS_INFO, _SIZE, _CRC, _FOLDER = range(6, 12)
_CODERS_UNPACK_SIZE, _NUM_UNPACK_STREAM, _ENCODED_HEADER = 0x0C, 0x0D, 0x17
MAGIC = _MAGIC
SIGNATURE_SIZE = _SIGNATURE_SIZE


@dataclass(frozen=True, slots=True)
class _Coder:
    method: bytes
    properties: bytes


@dataclass(frozen=True, slots=True)
class _Folder:
    """A folder (solid block): its coders, packed size and largest declared unpacked size."""

    coders: tuple[_Coder, ...]
    packed: int
    unpacked: int


@dataclass(frozen=True, slots=True)
class _Streams:
    pack_pos: int
    pack_sizes: tuple[int, ...]
    folders: tuple[_Folder, ...]


class _Cursor:
    """Reads 7z header fields from bytes; running past the end is a FormatError."""

    __slots__ = ("_data", "pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self._data):
            raise FormatError("7z header is truncated", None)
        self.pos += 1
        return self._data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or n > len(self._data) - self.pos:
            raise FormatError("7z header is truncated", None)
        self.pos += n
        return self._data[self.pos - n : self.pos]

    def number(self) -> int:
        # 7zFormat.txt "UINT64": the leading one bits of the first byte count the extra
        # little-endian bytes; its remaining bits are the value's high part.
        first, value, mask = self.byte(), 0, 0x80
        for i in range(8):
            if not first & mask:
                return value | (first & (mask - 1)) << (8 * i)
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def count(self, n: int) -> int:
        """Check a count of fields of at least one byte each against the bytes left."""
        if n > len(self._data) - self.pos:
            raise FormatError(f"7z header declares {n} entries in fewer bytes", None)
        return n

    def digests(self, n: int) -> int:
        """Skip a "Digests" field for ``n`` items; return the bit vector of defined ones."""
        if self.byte():
            self.take(4 * n)
            return (1 << n) - 1
        bits = self.take((self.count(n) + 7) // 8)
        # MSB first; item i is bit n - 1 - i of the result.
        defined = int.from_bytes(bits, "big") >> (8 * len(bits) - n)
        self.take(4 * defined.bit_count())
        return defined

    def expect(self, pid: int, where: str) -> None:
        got = self.byte()
        if got != pid:
            raise FormatError(f"7z {where}: property {pid:#x} expected, {got:#x} found", None)


def _header(data: bytes, limits: Limits) -> tuple[_Streams, int]:
    """Pre-parse a (decoded) header; return its main streams and its number of files."""
    empty = _Streams(0, (), ())
    if not data:
        return empty, 0
    c = _Cursor(data)
    c.expect(_HEADER, "header")
    pid = c.byte()
    if pid in (_ARCHIVE_PROPERTIES, _ADDITIONAL_STREAMS):
        raise FormatError(f"7z header property {pid:#x} is not supported", None)
    streams = empty
    if pid == _MAIN_STREAMS:
        streams = _streams(c, limits)
        pid = c.byte()
    files = 0
    if pid == _FILES_INFO:
        files = c.number()
        if files > limits.max_members:
            raise LimitExceeded("max_members", f"7z archive declares {files} files", None)
    elif pid != _END:
        raise FormatError(f"7z header: unexpected property {pid:#x}", None)
    return streams, files


def _streams(c: _Cursor, limits: Limits) -> _Streams:
    """Parse a "StreamsInfo" (pack info, folders, substream counts), counting against limits."""
    pack_pos, sizes, pid = 0, [], c.byte()
    if pid == _PACK_INFO:
        pack_pos, n = c.number(), c.count(c.number())
        pid = c.byte()
        if pid == _SIZE:
            sizes = [c.number() for _ in range(n)]
            pid = c.byte()
        if pid == _CRC:
            c.digests(n)
            pid = c.byte()
        if pid != _END:
            raise FormatError("7z pack info: end expected", None)
        pid = c.byte()
    folders: list[tuple[tuple[_Coder, ...], int, int]] = []  # coders, out streams, main out
    unpack: list[int] = []
    defined = 0  # bit i (from the top) set: folder i's CRC is given
    if pid == _UNPACK_INFO:
        c.expect(_FOLDER, "unpack info")
        n = c.number()
        if n > limits.max_members:
            raise LimitExceeded("max_members", f"7z archive declares {n} folders", None)
        if c.byte():
            raise FormatError("7z folders stored outside the header are not supported", None)
        folders = [_folder(c) for _ in range(c.count(n))]
        c.expect(_CODERS_UNPACK_SIZE, "unpack info")
        for _, outs, _ in folders:
            # py7zr takes a member's size from the last coder's output, not from the main
            # (unbound) one, when no substream sizes are given: check the largest.
            unpack.append(max(c.number() for _ in range(outs)))
        pid = c.byte()
        if pid == _CRC:
            defined = c.digests(len(folders))
            pid = c.byte()
        if pid != _END:
            raise FormatError("7z unpack info: end expected", None)
        pid = c.byte()
    if pid == _SUBSTREAMS_INFO:
        crcs = [bool(defined >> (len(folders) - 1 - i) & 1) for i in range(len(folders))]
        _substreams(c, crcs, limits)
        pid = c.byte()
    if pid != _END:
        raise FormatError("7z streams info: end expected", None)
    return _Streams(pack_pos, tuple(sizes), _assign_packs(folders, unpack, sizes))


def _folder(c: _Cursor) -> tuple[tuple[_Coder, ...], int, int]:
    """Parse a "Folder"; return its coders, its number of out streams and the main one."""
    coders: list[_Coder] = []
    ins = outs = 0
    for _ in range(c.count(c.number())):
        flags = c.byte()
        if flags & 0xC0:
            raise FormatError("7z coder with alternative methods is not supported", None)
        method = c.take(flags & 0x0F)
        n_in, n_out = (c.number(), c.number()) if flags & 0x10 else (1, 1)
        if n_in != 1 or n_out != 1:
            raise FormatError(
                f"7z coder {method.hex()} with several streams is not supported", None
            )
        properties = c.take(c.number()) if flags & 0x20 else b""
        coders.append(_Coder(method, properties))
        ins, outs = ins + n_in, outs + n_out
    if not coders:
        raise FormatError("7z folder without coders", None)
    bound: set[int] = set()
    for _ in range(outs - 1):  # bind pairs: (in index, out index)
        c.number()
        bound.add(c.number())
    if ins - (outs - 1) != 1:
        raise FormatError("7z folder with several packed streams is not supported", None)
    main = [i for i in range(outs) if i not in bound]
    if len(main) != 1:
        raise FormatError("7z folder has no single unbound output", None)
    return tuple(coders), outs, main[0]


def _substreams(c: _Cursor, defined: list[bool], limits: Limits) -> None:
    """Skip a "SubStreamsInfo", counting its substreams against ``max_members``."""
    counts = [1] * len(defined)
    pid = c.byte()
    if pid == _NUM_UNPACK_STREAM:
        counts, total = [], 0
        for _ in defined:  # one count per folder (at most max_members of them)
            counts.append(c.number())
            total += counts[-1]
            if total > limits.max_members:
                raise LimitExceeded("max_members", "too many 7z substreams", None)
        pid = c.byte()
    if pid == _SIZE:
        for count in counts:
            for _ in range(count - 1):
                c.number()
        pid = c.byte()
    if pid == _CRC:
        c.digests(sum(n for n, d in zip(counts, defined, strict=True) if n != 1 or not d))
        pid = c.byte()
    if pid != _END:
        raise FormatError("7z substreams info: end expected", None)


def _assign_packs(
    folders: list[tuple[tuple[_Coder, ...], int, int]], unpack: list[int], sizes: list[int]
) -> tuple[_Folder, ...]:
    # Each folder here has exactly one packed stream, taken in order (7zFormat.txt).
    if len(sizes) < len(folders):
        raise FormatError("7z archive has fewer packed streams than folders", None)
    return tuple(_Folder(coders, sizes[i], unpack[i]) for i, (coders, _, _) in enumerate(folders))


def _read_header(blob: Blob, limits: Limits) -> _Streams:
    """Check the signature, bound and pre-parse the header; return the main streams."""
    sig = blob.read(0, _SIGNATURE_SIZE)
    if len(sig) < _SIGNATURE_SIZE or not sig.startswith(_MAGIC):
        raise FormatError("not a 7z archive", 0)
    start_crc, offset, size, crc = struct.unpack_from("<IQQI", sig, 8)
    if zlib.crc32(sig[12:]) != start_crc:
        raise FormatError("7z start header fails its CRC", 8)
    if size > limits.max_header_bytes:
        msg = f"7z header of {size} bytes is above the limit of {limits.max_header_bytes}"
        raise LimitExceeded("max_header_bytes", msg, _SIGNATURE_SIZE + offset)
    start = _SIGNATURE_SIZE + offset
    if start + size > blob.size:
        raise FormatError("7z archive is truncated: its header lies past the end", start)
    raw = blob.read(start, size)
    if zlib.crc32(raw) != crc:
        raise FormatError("7z header fails its CRC", start)
    if raw[:1] == bytes([_ENCODED_HEADER]):
        raw = _decode_header(blob, raw, limits)
    streams, _ = _header(raw, limits)
    for folder in streams.folders:
        if any(coder.method == _AES for coder in folder.coders):
            raise FormatError("encrypted 7z: members are encrypted with a password", None)
    if _SIGNATURE_SIZE + streams.pack_pos + sum(streams.pack_sizes) > blob.size:
        raise FormatError("7z archive is truncated: packed data lies past the end", blob.size)
    return streams


def _decode_header(blob: Blob, raw: bytes, limits: Limits) -> bytes:
    """Decode an encoded header (one LZMA or LZMA2 folder), bounded by ``max_header_bytes``."""
    c = _Cursor(raw)
    c.byte()
    streams = _streams(c, limits)
    methods = [coder.method for folder in streams.folders for coder in folder.coders]
    if _AES in methods:
        raise FormatError("encrypted 7z: its header is encrypted with a password", None)
    if len(streams.folders) != 1 or len(methods) != 1 or methods[0] not in _HEADER_METHODS:
        raise FormatError("7z header encoded with an unsupported method", None)
    folder = streams.folders[0]
    if folder.unpacked > limits.max_header_bytes:
        msg = f"7z header decodes to {folder.unpacked} bytes"
        raise LimitExceeded("max_header_bytes", msg, None)
    filt = _HEADER_METHODS[methods[0]](folder.coders[0].properties)
    memlimit = max(limits.max_member_bytes, LZMA_MEMLIMIT_FLOOR)
    if filt["dict_size"] > memlimit:
        msg = f"7z header dictionary of {filt['dict_size']} bytes is above {memlimit}"
        raise LimitExceeded("max_member_bytes", msg, None)
    pos = _SIGNATURE_SIZE + streams.pack_pos
    end = min(blob.size, pos + folder.packed)
    out = bytearray()
    try:
        dec = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
        while len(out) < folder.unpacked and not dec.eof:
            data = blob.read(pos, min(_CHUNK, end - pos)) if dec.needs_input else b""
            pos += len(data)
            piece = dec.decompress(data, folder.unpacked - len(out))
            if not data and not piece:
                break
            out += piece
    except (lzma.LZMAError, ValueError) as exc:
        raise FormatError(f"corrupt 7z header: {exc}", None) from None
    if len(out) < folder.unpacked:
        raise FormatError("7z header is truncated or corrupt", None)
    return bytes(out)


def _lzma1_filter(props: bytes) -> dict[str, int]:
    # LZMA coder properties: lc + lp*9 + pb*45, then the dictionary size (LE32).
    if len(props) != 5 or props[0] >= 225:
        raise FormatError("invalid 7z LZMA properties", None)
    lc, rest = props[0] % 9, props[0] // 9
    dict_size = struct.unpack_from("<I", props, 1)[0]
    return {
        "id": lzma.FILTER_LZMA1,
        "dict_size": dict_size,
        "lc": lc,
        "lp": rest % 5,
        "pb": rest // 5,
    }


def _lzma2_filter(props: bytes) -> dict[str, int]:
    # LZMA2 coder property: one byte p <= 40, dictionary (2 | p & 1) << (p // 2 + 11).
    if len(props) != 1 or props[0] > 40:
        raise FormatError("invalid 7z LZMA2 properties", None)
    p = props[0]
    dict_size = 0xFFFFFFFF if p == 40 else (2 | (p & 1)) << (p // 2 + 11)
    return {"id": lzma.FILTER_LZMA2, "dict_size": dict_size}


_HEADER_METHODS: dict[bytes, Callable[[bytes], dict[str, int]]] = {
    bytes.fromhex("030101"): _lzma1_filter,
    bytes.fromhex("21"): _lzma2_filter,
}


# -- the folder checks --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Method:
    """How py7zr decodes a method: ``expansion`` is 0 when its decoder honours ``max_length``
    (or is a 1:1 filter), else the most output one packed byte can give; ``memory`` returns
    the decoder's dictionary or model size from the coder properties."""

    name: str
    expansion: int = 0
    filter: bool = False
    memory: Callable[[bytes], int] | None = None


# PPMd (030401) is left out on purpose: pyppmd 1.3.1 segfaults on a PPMd stream with one
# corrupt byte (found by fuzzing this module), and a scanner must survive hostile input.
# Deflate: 258 bytes per 2-bit match at best (RFC 1951), so at most 1032 per input byte.
# Deflate64 (65538-byte matches in about 18 bits) and zstd (a 4-byte RLE block regenerates
# 128 KiB, RFC 8878 3.1.1.2) stay under 32768 per input byte.
_METHODS: dict[bytes, _Method] = {
    bytes.fromhex(k): v
    for k, v in {
        "00": _Method("copy", filter=True),
        "03": _Method("delta", filter=True),
        "03030103": _Method("bcj-x86", filter=True),
        "03030205": _Method("bcj-ppc", filter=True),
        "03030401": _Method("bcj-ia64", filter=True),
        "03030501": _Method("bcj-arm", filter=True),
        "03030701": _Method("bcj-armt", filter=True),
        "03030805": _Method("bcj-sparc", filter=True),
        "030101": _Method("lzma", memory=lambda p: _lzma1_filter(p)["dict_size"]),
        "21": _Method("lzma2", memory=lambda p: _lzma2_filter(p)["dict_size"]),
        "040202": _Method("bzip2"),
        "04f71102": _Method("brotli"),
        "040108": _Method("deflate", expansion=1032),
        "040109": _Method("deflate64", expansion=32768),
        "04f71101": _Method("zstd", expansion=32768),
    }.items()
}


def _check_folder(folder: _Folder, index: int, limits: Limits) -> None:
    """Refuse a folder whose decoding py7zr would not keep within ``limits``."""
    memlimit = max(limits.max_member_bytes, LZMA_MEMLIMIT_FLOOR)
    methods: list[_Method] = []
    for coder in folder.coders:
        method = _METHODS.get(coder.method)
        if method is None:
            msg = f"7z method {coder.method.hex()} (folder {index}) is not supported"
            raise FormatError(msg, None)
        if method.memory is not None and method.memory(coder.properties) > memlimit:
            msg = f"7z {method.name} decoder of folder {index} needs more than {memlimit} bytes"
            raise LimitExceeded("max_member_bytes", msg, None)
        methods.append(method)
    if folder.unpacked > limits.max_total_bytes:
        msg = f"7z folder {index} declares {folder.unpacked} bytes"
        raise LimitExceeded("max_total_bytes", msg, None)
    if folder.unpacked > limits.max_ratio * max(folder.packed, RATIO_FLOOR):
        msg = f"7z folder {index} declares {folder.unpacked} bytes from {folder.packed}"
        raise LimitExceeded("max_ratio", msg, None)
    unbounded = [m for m in methods if m.expansion]
    if not unbounded:
        return
    if len(unbounded) > 1 or any(not m.filter and not m.expansion for m in methods):
        raise FormatError(f"7z folder {index} chains {unbounded[0].name} with a compressor", None)
    cap, limit = output_cap(limits, folder.packed)
    worst = unbounded[0].expansion * folder.packed
    if worst > cap:
        msg = (
            f"7z folder {index} uses {unbounded[0].name}, which py7zr decodes without an"
            f" output bound: {folder.packed} packed bytes may decode to {worst}"
        )
        raise LimitExceeded(limit, msg, None)


# -- py7zr -------------------------------------------------------------------------------


def read_header(blob: Blob, limits: Limits) -> _Streams:
    """Pre-parse the archive header; see the module docstring for the bounds."""
    return _read_header(blob, limits)


def check_folder(folder: _Folder, index: int, limits: Limits) -> None:
    """Refuse a folder whose methods, dictionary or declared size are not bounded."""
    _check_folder(folder, index, limits)
