"""Random-access byte sources: a file on disk, bytes in memory, a slice of another blob.

Format readers take a `Blob` so that they read only the bytes they need (a zip's central
directory and the pickle members, never the tensor storages) and never extract to disk.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["Blob", "BlobIO", "BytesBlob", "FileBlob", "SliceBlob"]

# O_NONBLOCK: opening a FIFO (a path swapped after a check) must not block; it has no effect
# on the reads of a regular file.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


class Blob(Protocol):
    """A read-only, random-access byte source of known size."""

    @property
    def size(self) -> int:
        """Return the number of bytes in the blob."""
        ...

    def read(self, offset: int, n: int) -> bytes:
        """Return up to `n` bytes from `offset` (fewer only at the end of the blob)."""
        ...


class BytesBlob:
    """A blob over bytes already in memory."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)

    @property
    def size(self) -> int:
        """Return the number of bytes in the blob."""
        return len(self._data)

    @property
    def data(self) -> bytes:
        """Return the whole content."""
        return self._data

    def read(self, offset: int, n: int) -> bytes:
        """Return up to `n` bytes from `offset`."""
        if offset < 0 or n <= 0:
            return b""
        return self._data[offset : offset + n]


class FileBlob:
    """A blob over an open file descriptor, read with `os.pread` (no shared file position).

    The caller owns the descriptor's lifetime; `FileBlob.open` returns one that closes it.
    """

    __slots__ = ("_fd", "_size")

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FileBlob:
        """Open `path` read-only and return a blob over it.

        Raises:
            OSError: the file cannot be opened.
        """
        fd = os.open(path, _OPEN_FLAGS)
        try:
            size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        return cls(fd, size)

    def stat(self) -> os.stat_result:
        """Return `os.fstat` of the open descriptor: what is read, whatever the path is now.

        Raises:
            OSError: the descriptor is closed or cannot be queried.
        """
        return os.fstat(self._fd)

    def close(self) -> None:
        """Close the underlying descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def size(self) -> int:
        """Return the size of the file when it was opened."""
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        """Return up to `n` bytes from `offset`."""
        if offset < 0 or n <= 0 or offset >= self._size:
            return b""
        n = min(n, self._size - offset)
        chunks: list[bytes] = []
        while n > 0:
            chunk = os.pread(self._fd, n, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]


class SliceBlob:
    """A window `[start, start + size)` of another blob (a stored zip member, a tar member)."""

    __slots__ = ("_base", "_size", "_start")

    def __init__(self, base: Blob, start: int, size: int) -> None:
        self._base = base
        self._start = start
        self._size = max(0, min(size, base.size - start))

    @property
    def size(self) -> int:
        """Return the window's size."""
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        """Return up to `n` bytes from `offset` within the window."""
        if offset < 0 or n <= 0 or offset >= self._size:
            return b""
        return self._base.read(self._start + offset, min(n, self._size - offset))


class BlobIO(io.RawIOBase):
    """A read-only, seekable file object over a blob, for stdlib parsers such as `tarfile`.

    Reads go straight to the blob (no buffering); writing raises ``io.UnsupportedOperation``.
    """

    def __init__(self, blob: Blob) -> None:
        super().__init__()
        self._blob = blob
        self._pos = 0

    def readable(self) -> bool:
        """Return True."""
        return True

    def seekable(self) -> bool:
        """Return True."""
        return True

    def tell(self) -> int:
        """Return the current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` relative to ``whence``; return the new position.

        Raises:
            ValueError: a negative resulting position or an unknown ``whence``.
        """
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._blob.size}.get(whence)
        if base is None or base + offset < 0:
            raise ValueError(f"invalid seek: offset {offset}, whence {whence}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1, /) -> bytes:
        """Return up to ``size`` bytes (all remaining bytes if ``size`` is negative or None)."""
        if size is None or size < 0:
            size = max(0, self._blob.size - self._pos)
        data = self._blob.read(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        """Return all remaining bytes."""
        return self.read(-1)

    def writable(self) -> bool:
        """Return False."""
        return False

    def write(self, data: ReadableBuffer, /) -> int:
        """Raise ``io.UnsupportedOperation``: the blob is read-only."""
        raise io.UnsupportedOperation("BlobIO is read-only")

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Read into ``buffer``; return the number of bytes read."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)
