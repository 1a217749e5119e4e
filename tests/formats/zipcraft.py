"""Build and byte-patch zip archives for the zip reader's tests (fixtures made at test time)."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from collections.abc import Sequence

EOCD = struct.Struct("<4sHHHHIIH")
CENTRAL_SIZE = 46
LOCAL_SIZE = 30


def build_zip(
    entries: Sequence[tuple[str, bytes]], method: int = zipfile.ZIP_STORED, prefix: bytes = b""
) -> bytes:
    """Write ``entries`` with zipfile (duplicates allowed) after ``prefix``."""
    out = io.BytesIO()
    out.write(prefix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is the point of some fixtures
        with zipfile.ZipFile(out, "a" if prefix else "w", compression=method) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return out.getvalue()


def eocd(data: bytes) -> tuple[int, int, int, int]:
    """Return (eocd offset, entry count, cd size, cd offset) of the last EOCD."""
    pos = data.rfind(b"PK\x05\x06")
    _, _, _, _, count, size, offset, _ = EOCD.unpack_from(data, pos)
    return pos, count, size, offset


def central_entries(data: bytes) -> list[tuple[int, str, int]]:
    """Return (absolute offset, name, absolute local offset) of every central entry."""
    pos_eocd, _, size, offset = eocd(data)
    concat = pos_eocd - size - offset
    pos, found = concat + offset, []
    while data[pos : pos + 4] == b"PK\x01\x02":
        nlen, xlen, clen = struct.unpack_from("<HHH", data, pos + 28)
        local = struct.unpack_from("<I", data, pos + 42)[0]
        found.append((pos, data[pos + 46 : pos + 46 + nlen].decode(), concat + local))
        pos += CENTRAL_SIZE + nlen + xlen + clen
    return found


def _entry(data: bytes, name: str, nth: int = 0) -> tuple[int, int]:
    matches = [(c, lo) for c, n, lo in central_entries(data) if n == name]
    return matches[nth]


def patch(data: bytes, pos: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, pos, value)
    return bytes(buf)


def set_flags(
    data: bytes, name: str, bits: int, *, central: bool = True, local: bool = True
) -> bytes:
    """OR ``bits`` into the general-purpose flags of ``name`` (CVE-2025-1945 fixtures)."""
    cpos, lpos = _entry(data, name)
    if central:
        data = patch(data, cpos + 8, "<H", struct.unpack_from("<H", data, cpos + 8)[0] | bits)
    if local:
        data = patch(data, lpos + 6, "<H", struct.unpack_from("<H", data, lpos + 6)[0] | bits)
    return data


def set_crc(data: bytes, name: str, crc: int, *, central: bool = True, local: bool = True) -> bytes:
    cpos, lpos = _entry(data, name)
    if central:
        data = patch(data, cpos + 16, "<I", crc)
    if local:
        data = patch(data, lpos + 14, "<I", crc)
    return data


def set_method(data: bytes, name: str, method: int) -> bytes:
    cpos, lpos = _entry(data, name)
    return patch(patch(data, cpos + 10, "<H", method), lpos + 8, "<H", method)


def set_local_sizes(data: bytes, name: str, csize: int, usize: int) -> bytes:
    _, lpos = _entry(data, name)
    return patch(patch(data, lpos + 18, "<I", csize), lpos + 22, "<I", usize)


def set_local_offset(data: bytes, name: str, offset: int) -> bytes:
    cpos, _ = _entry(data, name)
    return patch(data, cpos + 42, "<I", offset)


def rename_local(data: bytes, name: str, new: str) -> bytes:
    """Overwrite the local header's name (same length) only: CVE-2025-1944."""
    assert len(new) == len(name)
    _, lpos = _entry(data, name)
    buf = bytearray(data)
    buf[lpos + LOCAL_SIZE : lpos + LOCAL_SIZE + len(name)] = new.encode()
    return bytes(buf)


def _rebuild(data: bytes, keep: list[bytes]) -> bytes:
    pos_eocd, _, size, _ = eocd(data)
    start = pos_eocd - size
    cd = b"".join(keep)
    rec = bytearray(data[pos_eocd:])
    struct.pack_into("<HHI", rec, 8, len(keep), len(keep), len(cd))
    return data[:start] + cd + bytes(rec)


def _raw_entries(data: bytes) -> list[tuple[str, bytes]]:
    out = []
    for pos, name, _ in central_entries(data):
        nlen, xlen, clen = struct.unpack_from("<HHH", data, pos + 28)
        out.append((name, data[pos : pos + CENTRAL_SIZE + nlen + xlen + clen]))
    return out


def drop_central(data: bytes, name: str) -> bytes:
    """Remove ``name`` from the central directory: its local header stays (local-only)."""
    return _rebuild(data, [raw for n, raw in _raw_entries(data) if n != name])


def alias_central(data: bytes, name: str, alias: str) -> bytes:
    """Add a central entry ``alias`` pointing at ``name``'s local header (overlap)."""
    assert len(alias) == len(name)
    entries = [raw for _, raw in _raw_entries(data)]
    raw = dict(_raw_entries(data))[name]
    entries.append(raw[:CENTRAL_SIZE] + alias.encode() + raw[CENTRAL_SIZE + len(name) :])
    return _rebuild(data, entries)
