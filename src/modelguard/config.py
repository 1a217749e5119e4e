"""Named limits of the scanner.

Every bound the scanner enforces is a field here, so that reaching one can be reported by name
and a policy file can change it. Reaching a limit never makes a result safe: it makes the
file's result incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Limits"]

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on the work and memory one scan may spend.

    Attributes:
        max_depth: how many containers deep (archive in archive, pickle in bytes in pickle)
            the scanner follows.
        max_members: members read from one archive.
        max_member_bytes: bytes of one archive member or decompressed wrapper held in memory.
        max_total_bytes: decompressed bytes read across one top-level file.
        max_ratio: decompressed size over compressed size for one member or wrapper.
        max_pickle_bytes: size of one pickle stream analysed.
        max_opcodes: opcodes executed symbolically in one pickle stream.
        max_stack: depth of the symbolic stack (and of the mark stack), checked every 4096
            opcodes (the opcode and memo limits are also checked at each STOP).
        max_memo: entries in the symbolic memo.
        max_pickles_per_stream: pickles read one after another from one stream.
        max_header_bytes: size of a format header (NumPy, safetensors) that is parsed.
        max_line_bytes: length of one newline-terminated pickle argument (protocol 0 GLOBAL,
            STRING, UNICODE, ...); longer literals are the only ones held in memory whole.
        worker_timeout: seconds, per file of a batch, that a worker process may take when
            files are scanned in a pool (``--jobs``, an executor); counted from when the batch
            is handed to a worker. The files of a batch that takes longer are reported
            incomplete (MG003) and a local worker stuck on it is stopped. Scans in this process
            do not use it: their work is bounded by the other limits.
    """

    max_depth: int = 8
    max_members: int = 10_000
    max_member_bytes: int = 512 * _MiB
    max_total_bytes: int = 2048 * _MiB
    max_ratio: int = 200
    max_pickle_bytes: int = 512 * _MiB
    max_opcodes: int = 20_000_000
    max_stack: int = 100_000
    max_memo: int = 2_000_000
    max_pickles_per_stream: int = 64
    max_header_bytes: int = 100 * _MiB
    max_line_bytes: int = 16 * _MiB
    worker_timeout: int = 600

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Return the names of all limits, in declaration order."""
        return tuple(f.name for f in fields(cls))
