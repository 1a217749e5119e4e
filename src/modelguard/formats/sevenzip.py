"""Bounded listing and in-memory reading of 7z archives, through the optional py7zr package.

Model bundles are sometimes shipped as 7z archives. py7zr (in ``modelguard[archives]``, not a
dependency: it is imported when a 7z is read) parses and decodes them over a read-only
`BlobIO`; nothing is extracted to disk. py7zr bounds too little for a scanner, so this module
checks an archive before py7zr gets to allocate for it:

* **Header.** The header is pre-parsed here (7zFormat.txt, "Header") far enough to count its
  folders (solid blocks), substreams and files, which must each be at most
  ``Limits.max_members``: py7zr builds Python objects for up to 2**23 files first (a 437-byte
  archive declaring two million files made it allocate 720 MiB). The raw header and an
  encoded (compressed) header's decoded size are bounded by ``max_header_bytes``; the encoded
  header is decoded here with ``max_length``, then once more by py7zr.
* **Declared sizes.** `read_7z` refuses members above ``max_member_bytes`` and archives whose
  members add up to more than ``max_total_bytes``.
* **Before decoding** (`open_7z_member`), every folder of the archive is checked, not just the
  member's: its methods must be known to be bounded, its LZMA/LZMA2 dictionary
  at most ``max(max_member_bytes, LZMA_MEMLIMIT_FLOOR)``, and its declared unpacked size at
  most ``max_ratio * max(packed size, RATIO_FLOOR)`` and ``max_total_bytes``.

Memory bound of `open_7z_member`. py7zr has no output bound of its own, so it rests on how
py7zr drives its decoders: it decodes a member in steps of at most ``min(declared size,
py7zr.properties.get_memory_limit())`` (128 MB at most) and stops at the member's declared
size, so a lying size never makes it hand over more. That holds for the decoders that honour
``max_length`` (LZMA, LZMA2, bzip2, Brotli) and the 1:1 filters (copy, delta, BCJ). PPMd is
refused: py7zr's PPMd decoder (pyppmd) crashes the process on corrupt data.
py7zr's Deflate, Deflate64 and zstd decoders ignore ``max_length``, but py7zr never feeds them
more than the folder's packed size, so a folder using one is decoded only when its worst-case
expansion (1032 for Deflate, 32768 for the others, times the packed size) fits `output_cap`.
The member's bytes are collected in memory, refusing more than its declared size (at most
``max_member_bytes``). The peak is about three times the member (py7zr's step output and the
copy it makes of it, then this module's buffer and the returned bytes), plus py7zr's 1 MiB
input block and the decoder's dictionary or model. Members that precede it in its solid
folder are decoded and dropped (CPU bounded by the folder's checked size; py7zr's
``max_extract_size`` is set to ``max_total_bytes`` as well).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob, BlobIO, BytesBlob
from modelguard.formats.compress import (
    TruncatedStream,
)
from modelguard.formats.sevenzip_header import MAGIC, check_folder, read_header

if TYPE_CHECKING:
    import py7zr

__all__ = ["SevenZipMember", "SevenZipView", "find_7z", "open_7z_member", "read_7z"]

_T = TypeVar("_T")

_MAGIC = MAGIC
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class SevenZipMember:
    """One 7z member: its name, declared (uncompressed) size and kind."""

    name: str
    size: int
    is_dir: bool
    is_symlink: bool


@dataclass(frozen=True, slots=True)
class SevenZipView:
    """The members of a 7z archive in archive order, and anomalies.

    Each anomaly is one sentence starting with a stable kind and a colon: ``duplicate-name:``
    (`open_7z_member` refuses such a name: py7zr cannot extract one of them alone).
    """

    members: tuple[SevenZipMember, ...]
    anomalies: tuple[str, ...]


def find_7z(blob: Blob) -> bool:
    """Return True if ``blob`` starts with the 7z signature (one read of 6 bytes)."""
    return blob.read(0, len(_MAGIC)) == _MAGIC


def read_7z(blob: Blob, limits: Limits) -> SevenZipView:
    """List the members of a 7z archive without decoding any member, bounded by ``limits``.

    Raises:
        FormatError: py7zr is not installed (the message says "not supported" and names
            it), the archive is encrypted (the message starts with "encrypted 7z"), or it
            cannot be parsed (py7zr's errors are all turned into FormatError).
        LimitExceeded: more than ``max_members`` files, folders or substreams; a header above
            ``max_header_bytes``; a member declared above ``max_member_bytes``; members
            declared above ``max_total_bytes`` in all.
    """
    with _archive(blob, limits) as archive:
        infos = _py7zr_call(archive.list)
    members: list[SevenZipMember] = []
    names: dict[str, int] = {}
    total = 0
    for info in infos:
        if len(members) >= limits.max_members:
            raise LimitExceeded("max_members", "too many 7z members", None)
        name, size = info.filename, info.uncompressed
        if size < 0:
            raise FormatError(f"7z member {name!r} declares a negative size", None)
        if size > limits.max_member_bytes:
            msg = f"7z member {name!r} declares {size} bytes"
            raise LimitExceeded("max_member_bytes", msg, None)
        total += size
        if total > limits.max_total_bytes:
            raise LimitExceeded("max_total_bytes", "7z members declare too many bytes", None)
        members.append(SevenZipMember(name, size, info.is_directory, info.is_symlink))
        names[name] = names.get(name, 0) + 1
    anomalies = tuple(
        f"duplicate-name: {name!r} appears {count} times"
        for name, count in names.items()
        if count > 1
    )
    return SevenZipView(tuple(members), anomalies)


def open_7z_member(blob: Blob, view: SevenZipView, name: str, limits: Limits) -> BytesBlob:
    """Decode the member ``name`` of ``view`` (from `read_7z` on ``blob``) into memory.

    Directories and members declared empty give an empty blob without decoding anything; a
    symlink gives its target path. Nothing touches the disk,
    but py7zr checks the name as if it were extracting it (into the current directory).

    Raises:
        KeyError: ``view`` has no member ``name``.
        FormatError: ``name`` is not unique in the archive, a folder uses a method this module
            does not know to be bounded (or py7zr does not support), the archive is encrypted,
            py7zr refuses the name, or py7zr is not installed.
        LimitExceeded: a folder's dictionary, ratio or size is above its limit (see the
            module docstring), or the member is larger than ``max_member_bytes``.
        TruncatedStream: the member's data is cut, corrupt or fails its CRC; ``partial``
            holds what was decoded.
    """
    found = [m for m in view.members if m.name == name]
    if not found:
        raise KeyError(name)
    if len(found) > 1:
        raise FormatError(f"7z member name {name!r} is not unique ({len(found)} members)", None)
    member = found[0]
    if member.is_dir or member.size == 0:  # py7zr stops at the declared size: nothing to decode
        return BytesBlob(b"")
    if member.size > limits.max_member_bytes:
        msg = f"7z member {name!r} declares {member.size} bytes"
        raise LimitExceeded("max_member_bytes", msg, None)
    with _archive(blob, limits, check_folders=True) as archive:
        data = _extract(archive, name, member.size)
    if len(data) != member.size:
        msg = f"7z member {name!r} decodes to {len(data)} of its {member.size} bytes"
        raise TruncatedStream(msg, None, data)
    return BytesBlob(data)


# -- the header pre-parse ---------------------------------------------------------------


def _require_py7zr() -> None:
    try:
        import py7zr  # noqa: F401
    except ImportError:
        msg = "the 7z format is not supported: install modelguard[archives] (py7zr)"
        raise FormatError(f"{msg} to analyse it", 0) from None


@contextmanager
def _archive(
    blob: Blob, limits: Limits, *, check_folders: bool = False
) -> Iterator[py7zr.SevenZipFile]:
    """Pre-check ``blob`` and open it with py7zr (read-only, in memory)."""
    _require_py7zr()
    import py7zr

    streams = read_header(blob, limits)
    if check_folders:
        for index, folder in enumerate(streams.folders):
            check_folder(folder, index, limits)
    src = io.BufferedReader(BlobIO(blob))
    archive = _py7zr_call(
        lambda: py7zr.SevenZipFile(src, "r", max_extract_size=limits.max_total_bytes)
    )
    try:
        if archive.needs_password():
            raise FormatError("encrypted 7z: members are encrypted with a password", None)
        yield archive
    finally:
        _py7zr_call(archive.close)


def _py7zr_call(fn: Callable[[], _T], what: str = "not a readable 7z archive") -> _T:
    """Call into py7zr, turning every exception it raises into a FormatError."""
    import py7zr

    try:
        return fn()
    except FormatError:
        raise
    except py7zr.PasswordRequired:
        raise FormatError("encrypted 7z: a password is required", None) from None
    except py7zr.DecompressionBombError as exc:
        raise LimitExceeded("max_total_bytes", f"7z: {exc}", None) from None
    except Exception as exc:
        # py7zr raises its own errors but also whatever its parsers hit (KeyError,
        # IndexError, struct.error, TypeError, ...) on hostile input: none may escape.
        raise FormatError(f"{what}: {type(exc).__name__}: {exc}", None) from None


def _extract(archive: py7zr.SevenZipFile, name: str, limit: int) -> bytes:
    """Have py7zr decode the one member ``name`` into memory, refusing more than ``limit``."""
    from py7zr.io import Py7zIO, WriterFactory

    data = bytearray()

    class Sink(Py7zIO):
        def write(self, s: bytes | bytearray) -> int:
            if len(data) + len(s) > limit:
                msg = f"7z member {name!r} decodes to more than its declared {limit} bytes"
                raise LimitExceeded("max_member_bytes", msg, None)
            data.extend(s)
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return len(data)

    class Factory(WriterFactory):
        def create(self, filename: str) -> Py7zIO:
            return Sink()

    what = f"7z member {name!r} cannot be decoded"
    try:
        _py7zr_call(lambda: archive.extract(targets=[name], factory=Factory()), what)
        return bytes(data)
    except LimitExceeded:
        raise
    except FormatError as exc:
        if str(exc).startswith("encrypted 7z"):
            raise
        message = str(exc)
    # Cut or corrupt data, a CRC mismatch, or a name py7zr refuses: what was decoded before
    # is what an extracting loader would have written. Raised here, once the exception (and
    # through it py7zr's frames and their buffers) is gone, so the copy is the only one.
    raise TruncatedStream(message, None, bytes(data))
