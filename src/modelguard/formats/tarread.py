"""A bounded tar reader that lists members without extracting or reading their data.

Legacy ``torch.save`` (``_use_new_zipfile_serialization=False`` with tar) and some model
bundles are tar archives. The stdlib `tarfile` parses the headers (ustar, GNU, pax) over a
read-only `BlobIO`, but only ``TarFile.next()`` is called: nothing is extracted, no member
data is read, and extended headers larger than ``Limits.max_header_bytes`` are refused
before they are read into memory. Links are reported, not followed (Keras CVE-2025-12638,
tar symlink and hard-link traversal, keras#23055).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob, BlobIO, SliceBlob
from modelguard.formats.sniff import tar_candidate

__all__ = ["TarMember", "TarView", "TruncatedTar", "find_tar", "open_tar_member", "read_tar"]

_BLOCK = 512
# tarfile raises these on malformed headers (besides TarError) in some code paths.
_PARSE_ERRORS = (tarfile.TarError, ValueError, UnicodeError, OverflowError, EOFError)


@dataclass(frozen=True, slots=True)
class TarMember:
    """One tar member: ``kind`` is ``file``, ``dir``, ``symlink``, ``hardlink`` or ``other``.

    ``offset_data`` is the absolute offset of its data, ``size`` its declared size and
    ``linkname`` the link target ("" unless a link). Sparse files are ``other``: their data
    in the archive is not ``size`` contiguous bytes.
    """

    name: str
    kind: str
    offset_data: int
    size: int
    linkname: str


@dataclass(frozen=True, slots=True)
class TarView:
    """The members of a tar archive in archive order, and anomalies.

    Each anomaly is one sentence starting with a stable kind and a colon:
    ``duplicate-name:``, ``trailing-data:`` or ``sparse:``.
    """

    members: tuple[TarMember, ...]
    anomalies: tuple[str, ...]


class TruncatedTar(FormatError):
    """The archive ends inside a member's data or header.

    A loader that extracts member by member has already written the earlier members (and a
    prefix of the cut one) when it fails, so the scanner still analyses them.

    Attributes:
        partial: the members read before the end, the cut member last (its data is
            clamped to the end of the blob by `open_tar_member`).
    """

    def __init__(self, message: str, offset: int | None, partial: TarView) -> None:
        super().__init__(message, offset)
        self.partial = partial


class _CappedIO(BlobIO):
    """Refuses single reads above a cap: tarfile reads a pax or GNU long-name header whole."""

    def __init__(self, blob: Blob, cap: int) -> None:
        super().__init__(blob)
        self._cap = cap

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0 or size > self._cap:
            msg = f"tar extended header of {size} bytes is above the limit of {self._cap}"
            raise LimitExceeded("max_header_bytes", msg, self.tell())
        return super().read(size)


def find_tar(blob: Blob) -> bool:
    """Return True if the first block is a ustar/GNU header or a v7 header with a valid checksum.

    One read of 512 bytes.
    """
    return tar_candidate(blob.read(0, _BLOCK))


def read_tar(blob: Blob, limits: Limits) -> TarView:
    """List the members of a tar archive (headers only), bounded by ``limits.max_members``.

    Raises:
        LimitExceeded: ``max_members`` members, or an extended header above
            ``max_header_bytes``.
        TruncatedTar: the archive ends inside a member; ``partial`` holds what was read.
        FormatError: not a tar archive, or a header cannot be parsed.
    """
    members: list[TarMember] = []
    anomalies: list[str] = []
    names: set[str] = set()
    io = _CappedIO(blob, max(limits.max_header_bytes, _BLOCK))  # tarfile reads whole blocks
    tar: tarfile.TarFile | None = None
    try:
        # Never extract: only the constructor (which reads the first header) and next().
        tar = tarfile.TarFile(fileobj=io, mode="r")
        while (info := tar.next()) is not None:
            if len(members) >= limits.max_members:
                raise LimitExceeded("max_members", "too many tar members", info.offset)
            member = _member(info)
            members.append(member)
            if member.name in names:
                anomalies.append(f"duplicate-name: {member.name!r} appears more than once")
            names.add(member.name)
            if info.issparse():
                anomalies.append(f"sparse: {member.name!r} is a sparse file")
            if member.offset_data + _data_blocks(info) > blob.size:
                view = TarView(tuple(members), tuple(anomalies))
                msg = f"tar archive ends inside the data of {member.name!r}"
                raise TruncatedTar(msg, blob.size, view)
    except LimitExceeded:
        raise
    except _PARSE_ERRORS as exc:
        offset = tar.offset if tar is not None else 0
        if members and offset >= blob.size:
            view = TarView(tuple(members), tuple(anomalies))
            raise TruncatedTar(f"tar archive ends inside a header: {exc}", offset, view) from None
        raise FormatError(f"not a readable tar archive: {exc}", offset) from None
    end = tar.offset
    tail = blob.read(end, _BLOCK)
    if 0 < len(tail) < _BLOCK and tail.strip(b"\x00") and members:
        view = TarView(tuple(members), tuple(anomalies))
        raise TruncatedTar("tar archive ends inside a header", end, view)
    if tail.strip(b"\x00"):
        anomalies.append(f"trailing-data: bytes at offset {end} are not a tar header")
    return TarView(tuple(members), tuple(anomalies))


def open_tar_member(blob: Blob, member: TarMember) -> Blob:
    """Return the member's data as a window of ``blob`` (empty for non-files; no copy)."""
    return SliceBlob(blob, member.offset_data, member.size if member.kind == "file" else 0)


def _data_blocks(info: tarfile.TarInfo) -> int:
    # Only members with data in the archive (regular files) occupy blocks after the header.
    return info.size if info.isreg() and not info.issparse() else 0


def _member(info: tarfile.TarInfo) -> TarMember:
    if info.issparse():
        kind = "other"
    elif info.isreg():
        kind = "file"
    elif info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    else:
        kind = "other"
    return TarMember(info.name, kind, info.offset_data, info.size, info.linkname)
