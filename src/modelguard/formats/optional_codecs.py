"""Bounded decoders for the lz4 and zstd wrappers, used when their optional packages exist.

``lz4`` (the lz4 frame format: joblib's ``compress="lz4"``, ``lz4 -c``) needs the ``lz4``
package; ``zstd`` needs ``zstandard``. Both ship in ``modelguard[archives]`` and neither is a
dependency of modelguard: they are imported when a stream is decoded, and a missing package
makes `decode` raise a `FormatError` that says "not supported" and names the package.

Both decoders keep the contract of `modelguard.formats.compress`: the output never grows past
`output_cap` (every decoder call is asked for at most `STEP_BYTES`, and never for more than
one byte past the cap), reaching the cap raises `LimitExceeded` with the binding limit's name,
and a stream that ends early or breaks raises `TruncatedStream` with what was decoded before.
Frames that follow one another are all decoded (as ``lz4.frame.open`` and ``zstd -d`` do);
trailing bytes that do not start another frame are ignored, like the other wrappers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob, BlobIO, SliceBlob
from modelguard.formats.compress import TruncatedStream, output_cap

__all__ = ["OPTIONAL_WRAPPERS", "STEP_BYTES", "ZSTD_WINDOW_FLOOR", "ZSTD_WINDOW_MAX", "decode"]

#: Wrappers decoded here, and the package (in ``modelguard[archives]``) each one needs.
OPTIONAL_WRAPPERS: dict[str, str] = {"lz4": "lz4", "zstd": "zstandard"}
#: Most output one decoder call may produce. python-lz4 allocates ``max_length`` bytes up
#: front on every call, so calls are never asked for the whole cap at once.
STEP_BYTES = 1024 * 1024
#: A zstd frame may declare a window of up to ``max(max_member_bytes, ZSTD_WINDOW_FLOOR)``;
#: the floor is zstd's own default decoder limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27), so
#: every stream ``zstd -d`` accepts without ``--memory`` decodes even under small limits.
ZSTD_WINDOW_FLOOR = 1 << 27
#: The largest window zstd can decode (ZSTD_WINDOWLOG_MAX = 31 on 64-bit hosts).
ZSTD_WINDOW_MAX = 1 << 31

_CHUNK = 64 * 1024
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# RFC 8878 3.1.1.2.3: no block regenerates more than Block_Maximum_Size (128 KiB).
_ZSTD_BLOCK_MAX = 128 * 1024
_ZSTD_RLE = 1
_ZSTD_COMPRESSED = 2
_ZSTD_RESERVED = 3


def decode(blob: Blob, kind: str, limits: Limits) -> bytes:
    """Decode the whole ``kind`` wrapper (``"lz4"`` or ``"zstd"``) in ``blob``, bounded.

    Raises:
        FormatError: the package ``kind`` needs is not installed (the message says "not
            supported" and names the package), ``kind`` is unknown, the first frame header
            is invalid, or the stream is in the lz4 legacy format.
        LimitExceeded: output above ``max_member_bytes`` or ``max_ratio`` (`output_cap`), or
            a zstd window above ``max(max_member_bytes, ZSTD_WINDOW_FLOOR)``
            (``max_member_bytes``).
        TruncatedStream: the stream ends early or is corrupt; ``partial`` holds the output.
    """
    if kind == "lz4":
        return _decode_lz4(blob, limits)
    if kind == "zstd":
        return _decode_zstd(blob, limits)
    raise FormatError(f"unknown optional wrapper {kind!r}", 0)


def _missing(kind: str) -> FormatError:
    package = OPTIONAL_WRAPPERS[kind]
    msg = f"the {kind} wrapper is not supported: install modelguard[archives] (the {package}"
    return FormatError(f"{msg} package) to analyse it", 0)


def _grow(out: bytearray, piece: bytes, cap: tuple[int, str], kind: str, offset: int) -> None:
    out += piece
    if len(out) > cap[0]:
        del out[:]
        raise LimitExceeded(cap[1], f"{kind} stream decodes to more than {cap[0]} bytes", offset)


def _skippable(head: bytes) -> bool:
    # lz4 and zstd share skippable frames: magic 0x184D2A50-0x184D2A5F, LE32 size, data.
    return len(head) == 4 and head[0] & 0xF0 == 0x50 and head[1:] == b"\x2a\x4d\x18"


# -- lz4 -----------------------------------------------------------------------------


def _lz4_frame_module() -> Any:
    try:
        import lz4.frame  # type: ignore[import-untyped]  # python-lz4 ships no type information
    except ImportError:
        raise _missing("lz4") from None
    return lz4.frame


def _decode_lz4(blob: Blob, limits: Limits) -> bytes:
    frame = _lz4_frame_module()
    head = blob.read(0, 4)
    if head == _LZ4_LEGACY_MAGIC:
        raise FormatError("the lz4 legacy format is not supported (only lz4 frames are)", 0)
    if head != _LZ4_MAGIC and not _skippable(head):
        raise FormatError("not an lz4 frame header", 0)
    cap = output_cap(limits, blob.size)
    out = bytearray()
    pos = 0
    while pos < blob.size:
        head = blob.read(pos, 4)
        if head != _LZ4_MAGIC and not _skippable(head):
            break
        pos = _lz4_frame(frame, blob, pos, out, cap)
    return bytes(out)


def _lz4_frame(frame: Any, blob: Blob, pos: int, out: bytearray, cap: tuple[int, str]) -> int:
    """Decode one lz4 frame (or skip a skippable one) from ``pos``; return where it ends."""
    dec = frame.LZ4FrameDecompressor()
    fed = pos
    while fed < blob.size:
        data = blob.read(fed, _CHUNK)
        fed += len(data)
        while True:
            step = min(STEP_BYTES, cap[0] + 1 - len(out))
            try:
                piece: bytes = dec.decompress(data, max_length=step)
            except (RuntimeError, ValueError, OverflowError) as exc:
                # python-lz4 reports every LZ4F error (bad header, checksum, data) as RuntimeError.
                msg = f"corrupt lz4 stream: {exc}"
                raise TruncatedStream(msg, fed - len(data), bytes(out)) from None
            data = b""
            _grow(out, piece, cap, "lz4", fed)
            if dec.eof:
                unused: bytes = dec.unused_data or b""
                return fed - len(unused)
            # An empty piece means python-lz4 consumed all it was given (its loop stops only
            # then, at the frame end, or with a full output buffer): feed the next chunk.
            if not piece:
                break
    raise TruncatedStream("lz4 stream ends before its end mark", blob.size, bytes(out))


# -- zstd ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Extent:
    """Where a zstd frame ends and why decoding must stop there, from its block headers.

    ``problem`` is None for a whole frame; otherwise the frame is cut or broken at ``end``
    (or runs past the output cap) and ``problem`` says how.
    """

    end: int
    problem: str | None = None
    skippable: bool = False


class _Window:
    """Caches one read of a blob so walking 3-byte block headers is not one read each."""

    __slots__ = ("_blob", "_data", "_start")

    def __init__(self, blob: Blob) -> None:
        self._blob = blob
        self._start = 0
        self._data = b""

    def get(self, pos: int, n: int) -> bytes:
        if not self._start <= pos <= self._start + len(self._data) - n:
            self._start, self._data = pos, self._blob.read(pos, max(n, _CHUNK))
        return self._data[pos - self._start : pos - self._start + n]


class _CutHeader(Exception):
    """The blob ends inside a zstd frame header."""


def _zstd_window(head: bytes, pos: int) -> tuple[int, int, bool]:
    """Parse a frame header (RFC 8878 3.1.1.1); return (header length, window, checksum)."""
    if len(head) < 5:
        raise _CutHeader
    fhd = head[4]
    if fhd & 0x08:
        raise FormatError("zstd frame header has its reserved bit set", pos)
    single = bool(fhd & 0x20)
    did_size = (0, 1, 2, 4)[fhd & 0x03]
    fcs_size = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    at = 5 if single else 6
    length = at + did_size + fcs_size
    if len(head) < length:
        raise _CutHeader
    if single:  # the window is the content size (3.1.1.1.2)
        window = int.from_bytes(head[at + did_size : length], "little")
        window += 256 if fcs_size == 2 else 0
    else:
        exponent, mantissa = head[5] >> 3, head[5] & 0x07
        base = 1 << (10 + exponent)
        window = base + (base >> 3) * mantissa
    return length, window, bool(fhd & 0x04)


def _zstd_extent(blob: Blob, pos: int, window_limit: int, cap: int) -> _Extent:
    """Walk the frame at ``pos`` by its block headers, without decoding it.

    zstandard's stream reader ends silently when its input ends inside a frame, so the
    frame's extent is found here first: it tells a cut stream from a whole one and where the
    next frame starts. The walk stops early once raw and RLE blocks alone (whose sizes the
    headers give) regenerate more than ``cap``: decoding will stop at the cap first.
    """
    head = blob.read(pos, 18)  # magic, descriptor, window, dictionary id (4), content size (8)
    if _skippable(head[:4]):
        if len(head) < 8:
            return _Extent(blob.size, "zstd skippable frame header is cut", True)
        end = pos + 8 + int.from_bytes(head[4:8], "little")
        problem = None if end <= blob.size else "zstd stream ends inside a skippable frame"
        return _Extent(min(end, blob.size), problem, True)
    if head[:4] != _ZSTD_MAGIC:
        raise FormatError("not a zstd frame header", pos)
    try:
        length, window, checksum = _zstd_window(head, pos)
    except _CutHeader:
        return _Extent(blob.size, "zstd stream ends inside a frame header")
    if window > window_limit:
        msg = f"zstd frame needs a {window}-byte window, above the limit of {window_limit}"
        raise LimitExceeded("max_member_bytes", msg, pos)
    reader = _Window(blob)
    at, regenerated = pos + length, 0
    while True:
        header = reader.get(at, 3)
        if len(header) < 3:
            return _Extent(blob.size, "zstd stream ends inside a frame")
        value = int.from_bytes(header, "little")
        last, kind, size = value & 1, (value >> 1) & 0x03, value >> 3
        if kind == _ZSTD_RESERVED or size > _ZSTD_BLOCK_MAX:
            return _Extent(at, f"corrupt zstd block header at offset {at}")
        at += 3 + (1 if kind == _ZSTD_RLE else size)
        if at > blob.size:
            return _Extent(blob.size, "zstd stream ends inside a block")
        regenerated += 0 if kind == _ZSTD_COMPRESSED else size
        if regenerated > cap:
            return _Extent(blob.size, "zstd frame regenerates more than the output cap")
        if last:
            break
    at += 4 if checksum else 0
    if at > blob.size:
        return _Extent(blob.size, "zstd stream ends inside a frame checksum")
    return _Extent(at)


def _decode_zstd(blob: Blob, limits: Limits) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise _missing("zstd") from None
    head = blob.read(0, 4)
    if head != _ZSTD_MAGIC and not _skippable(head):
        raise FormatError("not a zstd frame header", 0)
    window_limit = min(max(limits.max_member_bytes, ZSTD_WINDOW_FLOOR), ZSTD_WINDOW_MAX)
    dctx = zstandard.ZstdDecompressor(max_window_size=window_limit)
    cap = output_cap(limits, blob.size)
    out = bytearray()
    pos = 0
    while pos < blob.size:
        head = blob.read(pos, 4)
        if head != _ZSTD_MAGIC and not _skippable(head):
            break
        try:
            extent = _zstd_extent(blob, pos, window_limit, cap[0])
        except LimitExceeded:
            raise
        except FormatError as exc:
            if pos == 0:
                raise
            raise TruncatedStream(str(exc), exc.offset, bytes(out)) from None
        if not extent.skippable:
            src = io.BufferedReader(BlobIO(SliceBlob(blob, pos, extent.end - pos)))
            try:
                with dctx.stream_reader(src, read_size=_CHUNK, closefd=False) as reader:
                    # Bounded reads: each allocates at most STEP_BYTES (the window aside).
                    while piece := reader.read(min(STEP_BYTES, cap[0] + 1 - len(out))):
                        _grow(out, piece, cap, "zstd", pos)
            except zstandard.ZstdError as exc:
                raise TruncatedStream(f"corrupt zstd stream: {exc}", pos, bytes(out)) from None
        if extent.problem is not None:
            raise TruncatedStream(extent.problem, extent.end, bytes(out))
        pos = extent.end
    return bytes(out)
