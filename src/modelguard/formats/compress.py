"""Compression wrappers around model files: recognise them by magic and decompress them, bounded.

joblib dumps, legacy torch files and plain pickles are often wrapped in gzip, bz2, xz, lzma,
zlib or joblib's old ``ZF`` format. This module recognises those wrappers by their leading
bytes and decompresses them without ever holding more than a named limit in memory: the
decoders are driven with ``max_length`` so a decompression bomb is stopped after at most
``cap + 1`` output bytes, never after it has been inflated.

The same bounded decoding loop serves the zip reader (`modelguard.formats.zipread`).

lz4 and zstd wrappers are decoded by `modelguard.formats.optional_codecs` under the same
bounds when their optional packages (``modelguard[archives]``) are installed; 7z is an
archive, read by `modelguard.formats.sevenzip`.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeAlias

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob, BytesBlob

__all__ = [
    "LZMA_MEMLIMIT_FLOOR",
    "RATIO_FLOOR",
    "SUPPORTED_WRAPPERS",
    "TRIAL_BYTES",
    "TruncatedStream",
    "decode_range",
    "decompress",
    "detect_wrapper",
    "detect_wrapper_blob",
    "output_cap",
]

#: Compressed sizes below this count as this much when applying ``Limits.max_ratio``, so a
#: tiny member may still expand to ``max_ratio`` MiB (small pickles compress well; a 1 KiB
#: member expanding 200x is not a bomb worth failing a scan for).
RATIO_FLOOR = 1024 * 1024
#: How many leading bytes `detect_wrapper_blob` reads for magic checks and trial decoding.
TRIAL_BYTES = 4096
#: lzma/xz decoders may allocate this much for their dictionary even when
#: ``Limits.max_member_bytes`` is smaller (xz -9 uses 64 MiB); a stream declaring more than
#: ``max(max_member_bytes, LZMA_MEMLIMIT_FLOOR)`` raises ``LimitExceeded("max_member_bytes")``.
LZMA_MEMLIMIT_FLOOR = 80 * 1024 * 1024
#: Compressed bytes fed to a decoder per step (bounds the input side of memory).
_CHUNK = 64 * 1024
_PIECE = 1024 * 1024  # largest output piece one decoder step may produce
# Decoded output above this is not held in memory but re-decoded on demand (StreamBlob).
STREAM_THRESHOLD = 32 * 1024 * 1024
#: Longest gzip header (FEXTRA + FNAME + FCOMMENT) accepted.
_MAX_GZIP_HEADER = 64 * 1024

#: Wrappers `decompress` always decodes. It also decodes lz4 and zstd when their optional
#: packages are installed (`modelguard.formats.optional_codecs.OPTIONAL_WRAPPERS`); 7z, which
#: `detect_wrapper` also names, is an archive (`modelguard.formats.sevenzip`).
SUPPORTED_WRAPPERS = ("gzip", "bz2", "xz", "lzma", "zlib", "joblib-zf")

_XZ_MAGIC = b"\xfd7zXZ\x00"
# joblib < 0.9.3 "ZF" files: b"ZF" + hex(len) left-justified to len(hex(2**64)) == 19 bytes,
# optionally one more space (Python 2 era), then a zlib stream
# (joblib/numpy_pickle_compat.py: read_zfile/write_zfile).
_ZF_PREFIX = b"ZF"
_ZF_LEN_FIELD = 19
_FIXED_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b\x08", "gzip"),
    (_XZ_MAGIC, "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x04\x22\x4d\x18", "lz4"),  # lz4 frame format
    (b"\x02\x21\x4c\x18", "lz4"),  # lz4 legacy format
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class TruncatedStream(FormatError):
    """A compressed stream ended early or is corrupt after some output was produced.

    A loader streams its input: ``pickle.load(gzip.open(...))`` runs the opcodes it decoded
    before the stream broke, so the scanner analyses `partial`.

    Attributes:
        partial: everything decoded before the stream ended or broke (bounded by the caps).
    """

    def __init__(self, message: str, offset: int | None = None, partial: bytes = b"") -> None:
        super().__init__(message, offset)
        self.partial = partial


def output_cap(limits: Limits, compressed_size: int) -> tuple[int, str]:
    """Return ``(cap, limit_name)``: the most output one stream may produce, and which limit binds.

    The cap is ``min(max_member_bytes, max_ratio * max(compressed_size, RATIO_FLOOR))``.
    """
    by_ratio = limits.max_ratio * max(compressed_size, RATIO_FLOOR)
    if limits.max_member_bytes <= by_ratio:
        return limits.max_member_bytes, "max_member_bytes"
    return by_ratio, "max_ratio"


if TYPE_CHECKING:
    _Raw: TypeAlias = zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor


class _Stream:
    """One decoder driven with ``max_length``.

    zlib hands back the input it did not consume (``unconsumed_tail``), which is fed again;
    bz2 and lzma buffer it themselves and report it through ``needs_input``.
    """

    __slots__ = ("_d", "_tail")

    def __init__(self, d: _Raw) -> None:
        self._d = d
        self._tail = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    @property
    def pending(self) -> bool:
        if isinstance(self._d, (bz2.BZ2Decompressor, lzma.LZMADecompressor)):
            return not self._d.needs_input
        return bool(self._tail)

    def step(self, data: bytes, max_length: int) -> bytes:
        if isinstance(self._d, (bz2.BZ2Decompressor, lzma.LZMADecompressor)):
            return self._d.decompress(data, max_length)
        out = self._d.decompress(self._tail + data, max_length)
        self._tail = self._d.unconsumed_tail
        return out


@dataclass(frozen=True, slots=True)
class _Codec:
    """How to decode one kind of stream: header, decoder, trailer length, continuation."""

    name: str
    header: Callable[[Blob, int], int]  # validates a header, returns where the data starts
    make: Callable[[int], _Raw]  # called with the decoder memory limit (lzma dictionaries)
    trailer: int = 0
    more: Callable[[Blob, int], bool] | None = None  # does another stream start here?
    eof_required: bool = True


_DECODE_ERRORS = (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError)


def _pump(
    blob: Blob,
    pos: int,
    end: int,
    codec: _Codec,
    produced: list[int],
    cap: tuple[int, str],
    memlimit: int,
) -> Iterator[bytes | int]:
    """Decode one stream from ``pos``, yielding output pieces; the last item yielded is the
    offset just after the stream's data (an int). ``produced[0]`` counts output bytes."""
    dec = _Stream(codec.make(memlimit))
    while pos < end:
        chunk = blob.read(pos, min(_CHUNK, end - pos))
        if not chunk:
            break
        pos += len(chunk)
        data = chunk
        while True:
            try:
                piece = dec.step(data, min(_PIECE, cap[0] + 1 - produced[0]))
            except _DECODE_ERRORS as exc:
                if _memlimit_error(exc):
                    msg = f"{codec.name} stream needs more than {memlimit} bytes of dictionary"
                    raise LimitExceeded("max_member_bytes", msg, pos - len(chunk)) from None
                msg = f"corrupt {codec.name} stream: {exc}"
                raise TruncatedStream(msg, pos - len(chunk)) from None
            data = b""
            produced[0] += len(piece)
            if produced[0] > cap[0]:
                msg = f"{codec.name} stream decodes to more than {cap[0]} bytes"
                raise LimitExceeded(cap[1], msg, pos)
            if piece:
                yield piece
            if dec.eof:
                yield pos - len(dec.unused_data)
                return
            if not piece and not dec.pending:
                break
    if codec.eof_required:
        raise TruncatedStream(f"{codec.name} stream ends before its end marker", end)
    yield end


def iter_range(
    blob: Blob,
    start: int,
    length: int,
    codec_name: str,
    limits: Limits,
    cap: tuple[int, str] | None = None,
) -> Iterator[bytes]:
    """Yield the decoded output of `decode_range`'s streams piece by piece (at most 1 MiB each).

    The same bounds apply (`cap` defaults to `output_cap`); `TruncatedStream` raised from here
    carries no partial output: the consumer has it.
    """
    memlimit = max(limits.max_member_bytes, LZMA_MEMLIMIT_FLOOR)
    if codec_name == "zip-lzma":
        codec = _zip_lzma_codec(blob, start, memlimit)
    elif codec_name in _CODECS:
        codec = _CODECS[codec_name]
    else:
        raise FormatError(f"unknown compression {codec_name!r}", start)
    end = min(blob.size, start + max(0, length))
    if cap is None:
        cap = output_cap(limits, length)
    produced = [0]
    pos = start
    while True:
        try:
            data_pos = codec.header(blob, pos)
        except FormatError as exc:
            if pos == start:
                raise
            raise TruncatedStream(str(exc), exc.offset) from None
        for item in _pump(blob, data_pos, end, codec, produced, cap, memlimit):
            if isinstance(item, int):
                pos = item + codec.trailer
            else:
                yield item
        if codec.more is None:
            break
        pos = _skip_zeros(blob, pos, end)  # gzip and xz allow zero padding between members
        if pos >= end or not codec.more(blob, pos):
            break


def decode_range(blob: Blob, start: int, length: int, codec_name: str, limits: Limits) -> bytes:
    """Decode the ``codec_name`` stream(s) in ``blob[start:start+length]``, bounded by `limits`.

    ``codec_name`` is a wrapper of `SUPPORTED_WRAPPERS` or a zip method: ``"deflate"``,
    ``"bzip2"`` or ``"zip-lzma"`` (whose data may lack an end marker: then it ends where
    ``length`` says, as in Python's ``zipfile``). The ratio limit is measured on ``length``.

    Raises:
        LimitExceeded: ``max_member_bytes`` or ``max_ratio`` (see `output_cap`).
        TruncatedStream: the stream ends early or is corrupt; ``partial`` holds the output.
        FormatError: the stream header is invalid, or ``codec_name`` is unknown.
    """
    out = bytearray()
    try:
        for piece in iter_range(blob, start, length, codec_name, limits):
            out += piece
    except TruncatedStream as exc:
        raise TruncatedStream(str(exc), exc.offset, bytes(out)) from None
    return bytes(out)


def open_range(blob: Blob, start: int, length: int, codec_name: str, limits: Limits) -> Blob:
    """Return the decoded content of `decode_range` as a blob, bounded in memory.

    Output up to `STREAM_THRESHOLD` is held in memory. Larger output (up to
    ``max_total_bytes`` and ``max_ratio``, not ``max_member_bytes``, since it is never held
    whole) is served by a `StreamBlob` that decodes again on demand.

    Raises:
        LimitExceeded, TruncatedStream, FormatError: as `decode_range`.
    """
    small = replace(limits, max_member_bytes=min(limits.max_member_bytes, STREAM_THRESHOLD))
    try:
        return BytesBlob(decode_range(blob, start, length, codec_name, small))
    except LimitExceeded as exc:
        if exc.limit != "max_member_bytes" or limits.max_member_bytes <= STREAM_THRESHOLD:
            raise
    from modelguard.formats.streamblob import StreamBlob

    return StreamBlob(blob, start, length, codec_name, limits)


def decompress(blob: Blob, kind: str, limits: Limits) -> Blob:
    """Decompress a whole wrapped blob (``kind`` from `detect_wrapper`) into memory, bounded.

    gzip members, bz2 streams, xz streams, zlib streams, lz4 frames and zstd frames that
    follow one another are all decoded (as ``gzip.open``, ``bz2.open``, ``lzma.open``, joblib,
    ``lz4.frame.open`` and ``zstd -d`` do); trailing bytes that do not start another stream are
    ignored, like those readers do. lz4 and zstd need their optional packages
    (`modelguard.formats.optional_codecs`).

    Raises:
        LimitExceeded: output above ``max_member_bytes`` or ``max_ratio`` (`output_cap`), or
            a decoder dictionary or window above its limit (``max_member_bytes``).
        TruncatedStream: truncated or corrupt stream, with the output decoded so far.
        FormatError: ``kind`` is not supported (the message says "not supported": 7z, an
            unknown kind, or lz4/zstd without their package, whose name it gives), or the
            stream header is invalid.
    """
    if kind in SUPPORTED_WRAPPERS:
        return open_range(blob, 0, blob.size, kind, limits)
    # optional_codecs imports this module, so it is imported here rather than at the top.
    from modelguard.formats import optional_codecs

    if kind in optional_codecs.OPTIONAL_WRAPPERS:
        return BytesBlob(optional_codecs.decode(blob, kind, limits))
    if kind == "7z":
        msg = "a 7z archive is not supported as a wrapper: read it with sevenzip.read_7z"
        raise FormatError(f"{msg} (install modelguard[archives], the py7zr package)", 0)
    raise FormatError(f"the {kind} wrapper is not supported by this version of modelguard", 0)


def detect_wrapper(head: bytes) -> str | None:
    """Return the compression wrapper the leading bytes ``head`` announce, or None.

    Names: ``gzip bz2 xz lzma zlib joblib-zf lz4 zstd 7z``. ``lzma`` (the legacy "alone"
    format) and ``zlib`` have weak magics, so they are reported only when the header fields
    are sane *and* a trial decoding of ``head`` (pass about `TRIAL_BYTES`) raises no error.
    """
    for magic, name in _FIXED_MAGICS:
        if head.startswith(magic):
            return name
    if len(head) >= 10 and head[:3] == b"BZh" and 0x31 <= head[3] <= 0x39:
        return "bz2"
    if head.startswith(_ZF_PREFIX) and _zf_data_start(head) is not None:
        return "joblib-zf"
    if _lzma_alone_header_ok(head) and _trial(head, "lzma"):
        return "lzma"
    # 1 in ~1000 random byte pairs pass the zlib header check; a trial decoding (with the
    # adler32 check when the stream ends inside ``head``) rejects nearly all of them.
    if _zlib_header_ok(head) and _trial(head, "zlib"):
        return "zlib"
    return None


def detect_wrapper_blob(blob: Blob) -> str | None:
    """Like `detect_wrapper` on the first `TRIAL_BYTES` bytes of ``blob`` (one read)."""
    return detect_wrapper(blob.read(0, TRIAL_BYTES))


def _trial(head: bytes, kind: str) -> bool:
    """Decode ``head`` with an integrity-checking decoder; True if it yields output, no error."""
    try:
        if kind == "zlib":
            z = zlib.decompressobj(15)
            out, eof = z.decompress(head, _TRIAL_OUTPUT), z.eof
        else:
            x = lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=LZMA_MEMLIMIT_FLOOR)
            out, eof = x.decompress(head, _TRIAL_OUTPUT), x.eof
    except _DECODE_ERRORS as exc:
        return _memlimit_error(exc)  # a huge dictionary: still lzma, decompress will refuse it
    return bool(out) or eof


def _memlimit_error(exc: Exception) -> bool:
    # CPython's _lzma reports LZMA_MEMLIMIT_ERROR with this message.
    return isinstance(exc, lzma.LZMAError) and "memory usage limit" in str(exc).lower()


#: Output produced by a trial decoding in `detect_wrapper` before it is judged a success.
_TRIAL_OUTPUT = 64 * 1024


def _skip_zeros(blob: Blob, pos: int, end: int) -> int:
    while pos < end:
        chunk = blob.read(pos, min(_CHUNK, end - pos))
        stripped = chunk.lstrip(b"\x00")
        pos += len(chunk) - len(stripped)
        if stripped or not chunk:
            break
    return pos


def _zlib_header_ok(head: bytes) -> bool:
    # RFC 1950 2.2: CM == 8 (deflate), CINFO <= 7 (window <= 32 KiB), FCHECK, no preset dict.
    if len(head) < 2:
        return False
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0 and not flg & 0x20


def _lzma_alone_header_ok(head: bytes) -> bool:
    # .lzma header: props byte (lc + lp*9 + pb*45 < 225), dict size LE32, size LE64 (or -1).
    if len(head) < 13 or head[0] >= 225:
        return False
    dict_size, size = struct.unpack_from("<IQ", head, 1)
    sane_dicts = {1 << n for n in range(12, 31)} | {3 << n for n in range(11, 30)}
    return dict_size in sane_dicts and (size == 2**64 - 1 or size < 2**48)


def _zf_data_start(head: bytes) -> int | None:
    field = head[len(_ZF_PREFIX) : len(_ZF_PREFIX) + _ZF_LEN_FIELD]
    text = field.rstrip(b" ")
    if len(field) < _ZF_LEN_FIELD or not text.startswith(b"0x"):
        return None
    try:
        int(text, 16)
    except ValueError:
        return None
    pos = len(_ZF_PREFIX) + _ZF_LEN_FIELD
    if head[pos : pos + 1] == b" ":  # joblib <= 0.8.4 on Python 2 wrote one more space
        pos += 1
    return pos if _zlib_header_ok(head[pos : pos + 2]) else None


def _header_zlib(blob: Blob, pos: int) -> int:
    if not _zlib_header_ok(blob.read(pos, 2)):
        raise FormatError("not a zlib stream header", pos)
    return pos + 2


def _header_zf(blob: Blob, pos: int) -> int:
    start = _zf_data_start(blob.read(pos, len(_ZF_PREFIX) + _ZF_LEN_FIELD + 3))
    if start is None:
        raise FormatError("not a joblib ZF header", pos)
    return _header_zlib(blob, pos + start)


def _header_gzip(blob: Blob, pos: int) -> int:
    # RFC 1952 2.3: ID1 ID2 CM FLG MTIME(4) XFL OS, then FEXTRA, FNAME, FCOMMENT, FHCRC.
    head = blob.read(pos, _MAX_GZIP_HEADER)
    if len(head) < 10 or head[:3] != b"\x1f\x8b\x08":
        raise FormatError("not a gzip member header", pos)
    flg, at = head[3], 10
    if flg & 0x04:
        if len(head) < at + 2:
            raise FormatError("truncated gzip header", pos)
        at += 2 + struct.unpack_from("<H", head, at)[0]
    for bit in (0x08, 0x10):
        if flg & bit:
            nul = head.find(b"\x00", at)
            if nul < 0:
                raise FormatError("gzip header name or comment too long or truncated", pos)
            at = nul + 1
    if flg & 0x02:
        at += 2
    if at > len(head):
        raise FormatError("truncated gzip header", pos)
    return pos + at


def _no_header(blob: Blob, pos: int) -> int:
    return pos


def _zip_lzma_codec(blob: Blob, pos: int, memlimit: int) -> _Codec:
    # APPNOTE 5.8.8: version (2), properties size (2), properties (5); the raw LZMA1 data follows.
    head = blob.read(pos, 9)
    if len(head) < 9 or head[4] >= 225:
        raise FormatError("invalid zip lzma header", pos)
    data_pos = pos + 4 + struct.unpack_from("<H", head, 2)[0]
    lc, rest = head[4] % 9, head[4] // 9
    filt = {"id": lzma.FILTER_LZMA1, "dict_size": struct.unpack_from("<I", head, 5)[0]}
    filt |= {"lc": lc, "lp": rest % 5, "pb": rest // 5}
    if filt["dict_size"] > memlimit:  # FORMAT_RAW takes no memlimit: check it here
        msg = f"zip lzma dictionary of {filt['dict_size']} bytes is above {memlimit}"
        raise LimitExceeded("max_member_bytes", msg, pos)
    try:
        lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
    except _DECODE_ERRORS as exc:
        raise FormatError(f"invalid zip lzma properties: {exc}", pos) from None
    return _Codec(
        "zip-lzma",
        lambda _blob, _pos: data_pos,
        lambda _: lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt]),
        eof_required=False,
    )


def _bz2(_memlimit: int) -> _Raw:
    return bz2.BZ2Decompressor()


def _starts(magic: bytes) -> Callable[[Blob, int], bool]:
    return lambda blob, pos: blob.read(pos, len(magic)) == magic


def _raw_deflate(_memlimit: int) -> _Raw:
    return zlib.decompressobj(-15)


_CODECS: dict[str, _Codec] = {
    c.name: c
    for c in (
        _Codec("gzip", _header_gzip, _raw_deflate, 8, _starts(b"\x1f\x8b\x08")),
        _Codec("bz2", _no_header, _bz2, 0, _starts(b"BZh")),
        _Codec(
            "xz",
            _no_header,
            lambda m: lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=m),
            0,
            _starts(_XZ_MAGIC),
        ),
        _Codec("lzma", _no_header, lambda m: lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=m)),
        _Codec(
            "zlib",
            _header_zlib,
            _raw_deflate,
            4,
            lambda blob, pos: _zlib_header_ok(blob.read(pos, 2)),
        ),
        _Codec("joblib-zf", _header_zf, _raw_deflate, 4),
        # zip methods (APPNOTE 4.4.5): 8 deflate, 12 bzip2 (14 lzma: _zip_lzma_codec).
        _Codec("deflate", _no_header, _raw_deflate),
        _Codec("bzip2", _no_header, _bz2),
    )
}
