"""The identity of one version of a file: what the scanner, the hashing engine, the result
cache and the loading guards compare to notice a file changed or swapped under them.

Kept apart from `modelguard.hashing` so that the scanner can use it without importing hashlib.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["FileIdentity"]


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What identifies one version of a file on one file system.

    Attributes:
        dev: device number.
        ino: inode number.
        size: size in bytes.
        mtime_ns: modification time in nanoseconds.
        ctime_ns: status change time in nanoseconds (cannot be set back by the file's owner).
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def from_stat(cls, st: os.stat_result) -> FileIdentity:
        """Return the identity recorded in a `stat` result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def matches(self, st: os.stat_result) -> bool:
        """Return True when `st` describes the same, unchanged file (all five fields equal)."""
        return self == FileIdentity.from_stat(st)
