"""A bounded, tolerant zip reader that never extracts and never trusts one loader's view.

PyTorch reads checkpoints with miniz, NumPy and joblib with Python's ``zipfile``, and the two
disagree on malformed archives. Scanners that used ``zipfile`` were bypassed by archives that
torch loads anyway: a local/central name mismatch (CVE-2025-1944), flag bits ``zipfile``
refuses (CVE-2025-1945), a bad CRC (CVE-2025-10156), duplicate names. This reader therefore
reads the central directory and every local header itself, reports each disagreement as a
`ZipAnomaly` instead of failing, and lets the scanner open every member, duplicates included.

Only headers are read by `read_zip` (one small read per member plus the gaps between member
data); member data is read only by `open_member` and `member_crc_ok`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob, SliceBlob
from modelguard.formats.sniff import zip_candidate

__all__ = [
    "ZipAnomaly",
    "ZipMember",
    "ZipView",
    "find_zip",
    "member_crc_ok",
    "open_member",
    "read_zip",
    "unicode_path",
]

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7, 30 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # APPNOTE 4.3.12, 46 bytes
_EOCD = struct.Struct("<4sHHHHIIH")  # APPNOTE 4.3.16, 22 bytes
_LOCATOR64 = struct.Struct("<4sIQI")  # APPNOTE 4.3.15, 20 bytes
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # APPNOTE 4.3.14, 56 bytes
_LOCAL_SIG, _CENTRAL_SIG, _EOCD_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_LOCATOR64_SIG, _EOCD64_SIG, _DESCRIPTOR_SIG = b"PK\x06\x07", b"PK\x06\x06", b"PK\x07\x08"
_TAIL = _EOCD.size + 0xFFFF  # the EOCD record plus the longest comment
_EOCD_CANDIDATES = 16  # end-record signatures tried, last first
_WINDOW = 256 * 1024  # central directory read-ahead
_SCAN_CHUNK = 1024 * 1024  # gap and data-descriptor scans read this much at a time
_FLAG_ENCRYPTED, _FLAG_DEFERRED, _FLAG_STRONG, _FLAG_UTF8 = 0x1, 0x8, 0x40, 0x800
# Bits 1-2 (compression options), 3 (sizes in a data descriptor) and 11 (UTF-8 names) are
# ordinary; anything else (0x1 encrypted, 0x20 patched data, 0x40 strong encryption, 0x2000
# masked directory, reserved bits) makes zipfile or miniz refuse a member: CVE-2025-1945.
# Verified here: torch 2.13 refuses 0x1/0x20/0x40 in the central directory and ignores the
# local header's flags, so a flag set only locally hides nothing from torch.
_ORDINARY_FLAGS = 0x2 | 0x4 | _FLAG_DEFERRED | _FLAG_UTF8
_CODECS = {8: "deflate", 12: "bzip2", 14: "zip-lzma"}  # APPNOTE 4.4.5; 0 is stored
_U32 = 0xFFFFFFFF
_UNICODE_PATH = 0x7075  # Info-ZIP Unicode Path extra field (APPNOTE 4.6.9)


@dataclass(frozen=True, slots=True)
class ZipMember:
    """One member as the central directory (or, for ``origin="local"``, a local header) has it.

    ``data_offset`` is computed from the *local* header's name and extra lengths, as miniz
    (PyTorch) and ``zipfile`` do; ``local_name`` is None when no local header was found at
    ``local_offset``. ``index`` is the position in `ZipView.members`, which for central
    entries is their position in the central directory. ``external_attr`` and
    ``create_system`` (the high byte of "version made by": 3 is Unix, whose file mode is in
    the high 16 bits of ``external_attr``) come from the central directory; both are 0 for
    local-only members, which have neither. ``unicode_name`` is the name an Info-ZIP Unicode
    Path extra field (0x7075) gives when it differs from ``name`` (central header first, else
    local header): ``unzip`` extracts under that name, ``zipfile`` and miniz ignore it.
    """

    name: str
    local_name: str | None
    local_offset: int
    data_offset: int
    compressed_size: int
    size: int
    method: int
    flags: int
    crc: int
    origin: str
    index: int
    external_attr: int = 0
    create_system: int = 0
    unicode_name: str | None = None


@dataclass(frozen=True, slots=True)
class ZipAnomaly:
    """A structural oddity: ``kind`` is a stable short string, ``detail`` one sentence.

    Kinds: duplicate-name, name-mismatch, flag-bits, crc-mismatch, local-only, size-mismatch,
    overlap, unsupported-method, prepended-data, bad-offset.
    """

    kind: str
    member: str
    detail: str


@dataclass(frozen=True, slots=True)
class ZipView:
    """What `read_zip` found: members (central order, then local-only ones) and anomalies.

    ``start`` is where the archive starts (first local header, else the concatenation offset);
    ``start > 0`` means bytes precede it. ``end`` is just after the end-of-central-directory
    record and its comment.
    """

    members: tuple[ZipMember, ...]
    anomalies: tuple[ZipAnomaly, ...]
    start: int
    end: int

    def named(self, name: str) -> tuple[ZipMember, ...]:
        """Return every member called ``name``.

        Scan them all: which duplicate a loader uses is unspecified. torch 2.13's miniz
        binary-searches a heap-sorted index and, verified here, picks the first, a middle or
        the last copy depending on the archive's layout; ``zipfile`` picks the last.
        """
        return tuple(m for m in self.members if m.name == name)


@dataclass(frozen=True, slots=True)
class _Directory:
    record: int  # offset of the zip64 EOCD record, or of the EOCD record
    end: int
    cd_start: int
    cd_size: int
    count: int
    concat: int


def find_zip(blob: Blob) -> bool:
    """Return True if ``blob`` starts with a local header or ends with an EOCD record.

    At most two reads: the first 4 bytes, and the last 64 KiB + 22 bytes.
    """
    return zip_candidate(blob)


def read_zip(blob: Blob, limits: Limits) -> ZipView:
    """Read the structure of a zip archive without reading member data.

    Data prepended to the archive is handled like ``zipfile`` does (offsets are taken relative
    to the concatenation offset). Without an EOCD record, an archive that starts with a local
    header (truncated or streamed) is walked header by header, with a ``local-only`` anomaly.

    Raises:
        LimitExceeded: more than ``limits.max_members`` entries (``"max_members"``).
        FormatError: not a zip archive, or its central directory cannot be located.
    """
    try:
        directory = _find_directory(blob)
    except FormatError:
        if blob.read(0, 4) != _LOCAL_SIG:
            raise
        directory = None
    anomalies: list[ZipAnomaly] = []
    members = [] if directory is None else _read_central(blob, directory, limits, anomalies)
    if directory is None or (not members and directory.count):
        if blob.read(0, 4) == _LOCAL_SIG:
            return _walk_local(blob, limits)
        raise FormatError("not a zip archive: no central directory found", None)
    seen: dict[str, int] = {}
    for m in members:
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] == 2:
            detail = f"{m.name!r} appears more than once; loaders disagree on which copy they use"
            anomalies.append(ZipAnomaly("duplicate-name", m.name, detail))
    ranges = [(m.local_offset, _data_end(m), m.name) for m in members if m.local_name is not None]
    anomalies += _overlaps(ranges)
    start = min((r[0] for r in ranges), default=directory.concat)
    if start > 0:
        detail = f"{start} bytes precede the archive (self-extractor or polyglot)"
        anomalies.append(ZipAnomaly("prepended-data", "", detail))
    known = [(r[0], r[1]) for r in ranges] + [(directory.cd_start, directory.end)]
    hidden = _scan_gaps(blob, known, limits.max_members - len(members), len(members))
    for m in hidden:
        detail = f"local header at {m.local_offset} is not in the central directory"
        anomalies.append(ZipAnomaly("local-only", m.name, detail))
    return ZipView(tuple(members + hidden), tuple(anomalies), start, directory.end)


def open_member(
    blob: Blob, member: ZipMember, limits: Limits, *, ignore_encryption: bool = False
) -> Blob:
    """Return the member's content: a `SliceBlob` if stored, else a bounded `BytesBlob`.

    The CRC is not checked (torch ignores it: CVE-2025-10156). A member whose central flags
    say encrypted (0x1, 0x40) raises unless ``ignore_encryption``: then its bytes are read as
    plaintext, which is what a loader that ignores the flag sees (CVE-2025-1945).

    Raises:
        LimitExceeded: output above ``max_member_bytes`` or ``max_ratio`` (see
            `modelguard.formats.compress.output_cap`, measured on ``compressed_size``).
        TruncatedStream: compressed data ends early or is corrupt (``partial`` holds output).
        FormatError: encrypted member, or a compression method this reader does not know.
    """
    if member.flags & (_FLAG_ENCRYPTED | _FLAG_STRONG) and not ignore_encryption:
        raise FormatError(f"zip member {member.name!r} is encrypted", member.local_offset)
    if member.method == 0:
        return SliceBlob(blob, member.data_offset, member.compressed_size)
    codec = _CODECS.get(member.method)
    if codec is None:
        msg = f"zip member {member.name!r} uses unsupported method {member.method}"
        raise FormatError(msg, member.local_offset)
    length = member.compressed_size
    if length == 0 and member.flags & _FLAG_DEFERRED:  # size unknown: decode to the end
        length = blob.size - member.data_offset
    from modelguard.formats.compress import open_range  # only for compressed members

    return open_range(blob, member.data_offset, length, codec, limits)


def member_crc_ok(blob: Blob, member: ZipMember, limits: Limits) -> bool | None:
    """Return whether the member's CRC-32 matches its content, or None if unreadable.

    Reads (and decompresses) the member, bounded like `open_member`.

    Raises:
        LimitExceeded: the member is above ``max_member_bytes`` or ``max_ratio``.
    """
    try:
        content = open_member(blob, member, limits)
    except LimitExceeded:
        raise
    except FormatError:
        return None
    if content.size > limits.max_member_bytes:
        raise LimitExceeded("max_member_bytes", f"{member.name!r} is too large", member.data_offset)
    crc = 0
    for pos in range(0, content.size, _SCAN_CHUNK):
        crc = zlib.crc32(content.read(pos, _SCAN_CHUNK), crc)
    return crc == member.crc


def _decode_name(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8", "replace") if flags & _FLAG_UTF8 else raw.decode("cp437")


def _data_end(m: ZipMember) -> int:
    return m.data_offset + m.compressed_size


def _find_directory(blob: Blob) -> _Directory | None:
    # Like zipfile and miniz, prefer the last EOCD signature in the tail; an earlier one is
    # tried only if that one points at no central directory (a signature in the comment).
    tail_start = max(0, blob.size - _TAIL)
    tail = blob.read(tail_start, blob.size - tail_start)
    hi, error = max(0, len(tail) - _EOCD.size + len(_EOCD_SIG)), None
    for _ in range(_EOCD_CANDIDATES):
        at = tail.rfind(_EOCD_SIG, 0, hi)
        if at < 0:
            break
        hi = at + len(_EOCD_SIG) - 1
        try:
            found = _directory_at(blob, tail_start + at, tail[at : at + _EOCD.size])
        except FormatError as exc:
            error = error or exc
            continue
        if found.count == 0 or blob.read(found.cd_start, 4) == _CENTRAL_SIG:
            return found
        error = error or FormatError("no central directory where the end record says", at)
    if error is not None:
        raise error
    return None


def _directory_at(blob: Blob, eocd: int, rec: bytes) -> _Directory:
    _, _, _, _, count, cd_size, cd_offset, comment = _EOCD.unpack(rec)
    record = eocd
    locator = blob.read(eocd - _LOCATOR64.size, _LOCATOR64.size) if eocd >= 20 else b""
    if locator[:4] == _LOCATOR64_SIG:
        z64_offset = _LOCATOR64.unpack(locator)[2]
        record = eocd - _LOCATOR64.size - _EOCD64.size  # zipfile expects it right there
        z64 = blob.read(record, _EOCD64.size)
        if z64[:4] != _EOCD64_SIG:
            record, z64 = z64_offset, blob.read(z64_offset, _EOCD64.size)
        if len(z64) < _EOCD64.size or z64[:4] != _EOCD64_SIG:
            raise FormatError("zip64 end of central directory record not found", eocd)
        count, cd_size, cd_offset = _EOCD64.unpack(z64)[7:10]
    concat = record - cd_size - cd_offset  # zipfile's "concat": bytes prepended to the archive
    if concat < 0:
        raise FormatError("central directory offset points past its end record", eocd)
    end = min(blob.size, eocd + _EOCD.size + comment)
    return _Directory(record, end, concat + cd_offset, cd_size, count, concat)


class _Window:
    """Read-ahead over the central directory: few reads, memory bounded by `_WINDOW`."""

    def __init__(self, blob: Blob) -> None:
        self._blob, self._start, self._buf = blob, 0, b""

    def get(self, pos: int, n: int) -> bytes:
        if pos < self._start or pos + n > self._start + len(self._buf):
            self._start, self._buf = pos, self._blob.read(pos, max(n, _WINDOW))
        return self._buf[pos - self._start : pos - self._start + n]


def _read_central(
    blob: Blob, d: _Directory, limits: Limits, anomalies: list[ZipAnomaly]
) -> list[ZipMember]:
    if d.count > limits.max_members:
        msg = f"central directory declares {d.count} entries"
        raise LimitExceeded("max_members", msg, d.cd_start)
    window, pos, end = _Window(blob), d.cd_start, min(d.cd_start + d.cd_size, d.record)
    members: list[ZipMember] = []
    while pos + _CENTRAL.size <= end:
        head = window.get(pos, _CENTRAL.size)
        if head[:4] != _CENTRAL_SIG:
            break
        if len(members) >= limits.max_members:
            raise LimitExceeded("max_members", "too many central directory entries", pos)
        f = _CENTRAL.unpack(head)
        flags, method, crc, nlen, xlen, clen = f[3], f[4], f[7], f[10], f[11], f[12]
        var = window.get(pos + _CENTRAL.size, nlen + xlen)
        csize, usize, offset = _zip64_values(var[nlen:], f[8], f[9], f[16])
        local = d.concat + offset
        data = local + _LOCAL.size + nlen + xlen  # replaced by the local header's view
        name = _decode_name(var[:nlen], flags)
        upath = unicode_path(var[nlen:], var[:nlen])
        entry = ZipMember(name, None, local, data, csize, usize, method, flags, crc, "central",
                          len(members), f[15], f[1] >> 8,
                          upath if upath not in (None, name) else None)  # fmt: skip
        members.append(_resolve(blob, entry, var[:nlen], anomalies))
        pos += _CENTRAL.size + nlen + xlen + clen
    if len(members) != d.count:
        detail = f"end record declares {d.count} entries, the directory has {len(members)}"
        anomalies.append(ZipAnomaly("bad-offset", "", detail))
    return members


def unicode_path(extra: bytes, raw_name: bytes) -> str | None:
    """Return the name an Info-ZIP Unicode Path extra field (0x7075) in ``extra`` gives.

    Info-ZIP ``unzip`` extracts under this name instead of the header name when the field's
    version is 1 and its CRC-32 matches the header name bytes (``raw_name``); Python's
    ``zipfile`` and miniz (PyTorch) ignore it, so a scanner that reads only the header name
    checks another path than the one written (a parser differential). None when the field is
    absent, malformed or stale (CRC mismatch: ``unzip`` ignores it too).
    """
    at = 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + size]
        valid = tag == _UNICODE_PATH and len(body) == size and size >= 5 and body[0] == 1
        if valid and struct.unpack_from("<I", body, 1)[0] == zlib.crc32(raw_name):
            return body[5:].decode("utf-8", "replace")
        at += 4 + size
    return None


def _zip64_values(extra: bytes, csize: int, usize: int, offset: int) -> tuple[int, int, int]:
    # APPNOTE 4.5.3: the zip64 extra (id 1) holds, in order, only the fields saturated above.
    at = 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, at)
        if tag == 1:
            values = extra[at + 4 : at + 4 + size]
            fields = [usize, csize, offset]
            k = 0
            for i in range(3):
                if fields[i] == _U32 and k + 8 <= len(values):
                    fields[i] = struct.unpack_from("<Q", values, k)[0]
                    k += 8
            return fields[1], fields[0], fields[2]
        at += 4 + size
    return csize, usize, offset


_EXTRA_GUESS = 128


def _resolve(blob: Blob, m: ZipMember, raw: bytes, out: list[ZipAnomaly]) -> ZipMember:
    """Read the local header of one central entry (one read) and compare the two."""
    name, flags, local = m.name, m.flags, m.local_offset
    # One read for the header, the name and (usually) the extra field: torch pads its
    # members with a short extra field, which the Unicode Path check reads.
    head = blob.read(local, _LOCAL.size + len(raw) + _EXTRA_GUESS)
    if len(head) < _LOCAL.size or head[:4] != _LOCAL_SIG:
        out.append(ZipAnomaly("bad-offset", name, f"no local header at offset {local}"))
    else:
        _, _, lflags, _, _, _, lcrc, lcsize, lusize, lnlen, lxlen = _LOCAL.unpack_from(head)
        lraw = head[_LOCAL.size :] if lnlen <= len(raw) else blob.read(local + _LOCAL.size, lnlen)
        lraw = lraw[:lnlen]
        # direct construction: dataclasses.replace costs more than the rest of this function
        data_offset = local + _LOCAL.size + lnlen + lxlen
        m = ZipMember(m.name, _decode_name(lraw, lflags), local, data_offset, m.compressed_size,
                      m.size, m.method, m.flags, m.crc, m.origin, m.index, m.external_attr,
                      m.create_system, m.unicode_name)  # fmt: skip
        if lraw != raw:
            detail = f"local header names it {m.local_name!r}; loaders use the central name"
            out.append(ZipAnomaly("name-mismatch", name, detail + " (CVE-2025-1944)"))
        if m.unicode_name is None and lxlen:
            start = _LOCAL.size + lnlen
            extra = (
                head[start : start + lxlen]
                if lnlen <= len(raw) and start + lxlen <= len(head)
                else blob.read(local + start, lxlen)
            )
            lupath = unicode_path(extra, lraw)
            if lupath is not None and lupath != name:
                m = replace(m, unicode_name=lupath)
        if lflags != flags:
            detail = f"local header flags {lflags:#06x} differ from central flags {flags:#06x}"
            out.append(ZipAnomaly("flag-bits", name, detail))
        if not lflags & _FLAG_DEFERRED and _U32 not in (lcsize, lusize):
            if lcrc != m.crc:
                detail = f"local CRC {lcrc:#010x} differs from central CRC {m.crc:#010x}"
                out.append(ZipAnomaly("crc-mismatch", name, detail))
            if (lcsize, lusize) != (m.compressed_size, m.size):
                detail = f"local sizes {lcsize}/{lusize} differ from {m.compressed_size}/{m.size}"
                out.append(ZipAnomaly("size-mismatch", name, detail))
        if _data_end(m) > blob.size:
            detail = f"data runs past the end of the file ({m.data_offset} + {m.compressed_size})"
            out.append(ZipAnomaly("bad-offset", name, detail))
    if m.unicode_name is not None:
        detail = (
            f"its Info-ZIP Unicode Path extra field names it {m.unicode_name!r}: unzip "
            "extracts under that name, zipfile and PyTorch use the header name"
        )
        out.append(ZipAnomaly("name-mismatch", name, detail))
    if flags & ~_ORDINARY_FLAGS:
        detail = f"flag bits {flags & ~_ORDINARY_FLAGS:#06x} make zipfile or miniz refuse it"
        out.append(ZipAnomaly("flag-bits", name, detail + " (CVE-2025-1945)"))
    if m.method not in _CODECS and m.method != 0:
        out.append(ZipAnomaly("unsupported-method", name, f"compression method {m.method}"))
    if m.method == 0 and m.compressed_size != m.size:
        detail = f"stored, but declares {m.compressed_size} compressed and {m.size} bytes"
        out.append(ZipAnomaly("size-mismatch", name, detail))
    return m


def _overlaps(ranges: list[tuple[int, int, str]]) -> list[ZipAnomaly]:
    # Overlapping entries are the "quoted-overlap" zip bomb and an ambiguity (CPython gh-109858).
    found: list[ZipAnomaly] = []
    last_end, last_name = -1, ""
    for start, end, name in sorted(ranges):
        if start < last_end:
            detail = f"its bytes [{start}, {end}) overlap those of {last_name!r}"
            found.append(ZipAnomaly("overlap", name, detail))
        if end > last_end:
            last_end, last_name = end, name
    return found


def _parse_local(blob: Blob, pos: int, index: int, search_end: int) -> tuple[ZipMember, int] | None:
    """Parse a local header at ``pos``; return it and the offset just after its data.

    A streamed member (flag bit 3, sizes zero) gets its sizes from a data descriptor looked
    for before ``search_end``.
    """
    head = blob.read(pos, _LOCAL.size)
    if len(head) < _LOCAL.size or head[:4] != _LOCAL_SIG:
        return None
    _, _, flags, method, _, _, crc, csize, usize, nlen, xlen = _LOCAL.unpack(head)
    data = pos + _LOCAL.size + nlen + xlen
    if nlen == 0 or data > blob.size:
        return None
    raw = blob.read(pos + _LOCAL.size, nlen + xlen)
    csize, usize, _ = _zip64_values(raw[nlen:], csize, usize, 0)
    after = data + csize
    if flags & _FLAG_DEFERRED and csize == 0:
        found = _find_descriptor(blob, data, search_end)
        if found is not None:
            crc, csize, usize, after = found
    name = _decode_name(raw[:nlen], flags)
    upath = unicode_path(raw[nlen:], raw[:nlen])
    member = ZipMember(name, name, pos, data, csize, usize, method, flags, crc, "local", index,
                       unicode_name=upath if upath != name else None)  # fmt: skip
    return member, after


def _find_descriptor(blob: Blob, data: int, end: int) -> tuple[int, int, int, int] | None:
    # A streamed member's sizes follow its data (APPNOTE 4.3.9): find the signed descriptor
    # whose compressed size equals its distance from the data. Reads the member's data, so
    # only truncated archives and gaps (never central members) get here.
    pos = data
    while pos < end:
        chunk = blob.read(pos, min(_SCAN_CHUNK, end - pos) + 24).ljust(24, b"\0")
        at = chunk.find(_DESCRIPTOR_SIG)
        while 0 <= at < min(_SCAN_CHUNK, end - pos):
            rec = chunk[at : at + 24].ljust(24, b"\0")
            crc, c32, u32 = struct.unpack_from("<III", rec, 4)
            c64, u64 = struct.unpack_from("<QQ", rec, 8)
            if c32 == pos + at - data:
                return crc, c32, u32, pos + at + 16
            if c64 == pos + at - data:
                return crc, c64, u64, pos + at + 24
            at = chunk.find(_DESCRIPTOR_SIG, at + 1)
        pos += _SCAN_CHUNK
    return None


def _gaps(known: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    gaps, cursor = [], 0
    for start, end in [*sorted(known), (size, size)]:
        if min(start, size) - cursor >= _LOCAL.size:
            gaps.append((cursor, min(start, size)))
        cursor = max(cursor, end)
    return gaps


def _scan_gaps(
    blob: Blob, known: list[tuple[int, int]], budget: int, index: int
) -> list[ZipMember]:
    """Find local headers in the bytes no central entry accounts for (never in member data)."""
    found: list[ZipMember] = []
    for start, end in _gaps(known, blob.size):
        pos, search = start, True  # one failed descriptor search per gap keeps this linear
        while end - pos >= _LOCAL.size:
            chunk = blob.read(pos, min(_SCAN_CHUNK, end - pos))
            at = chunk.find(_LOCAL_SIG)
            if at < 0:
                pos += max(1, len(chunk) - 3)
                continue
            parsed = _parse_local(blob, pos + at, index + len(found), end if search else 0)
            if parsed is None:
                pos += at + 1
                continue
            if len(found) >= budget:
                raise LimitExceeded("max_members", "too many local headers", pos + at)
            member, after = parsed
            search = search and not (member.flags & _FLAG_DEFERRED and member.compressed_size == 0)
            found.append(member)
            pos = max(pos + at + 1, after)
    return found


def _walk_local(blob: Blob, limits: Limits) -> ZipView:
    """Walk local headers from offset 0: a zip without a central directory (truncated)."""
    members: list[ZipMember] = []
    pos = end = 0
    while (parsed := _parse_local(blob, pos, len(members), blob.size)) is not None:
        if len(members) >= limits.max_members:
            raise LimitExceeded("max_members", "too many local headers", pos)
        members.append(parsed[0])
        end = min(parsed[1], blob.size)
        # the next header follows the data, or a data descriptor (12, 16, 20 or 24 bytes)
        pos = next((p for p in (end, end + 16, end + 12, end + 24, end + 20)
                    if blob.read(p, 4) == _LOCAL_SIG), blob.size)  # fmt: skip
    if not members:
        raise FormatError("truncated zip archive: no readable local header", 0)
    detail = f"no central directory: {len(members)} members found by walking local headers"
    anomaly = ZipAnomaly("local-only", "", detail + " (truncated or streamed archive)")
    return ZipView(tuple(members), (anomaly,), 0, end)
