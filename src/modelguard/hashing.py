"""Streaming, parallel file hashing for model manifests.

`hash_tasks` hashes whole files or byte ranges (shards) of files with a pool of threads, one
preallocated buffer per thread, so memory stays at about ``workers x chunk_size`` whatever the
model size. hashlib and blake3 release the GIL while they digest large buffers and reads release
it while they wait, so the threads run on all cores.

Files are opened without following symbolic links (unless asked) and must be regular files; the
identity of each file (device, inode, size, times) is recorded when it is opened, so a caller can
check later that the bytes it loads are the ones hashed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelguard.errors import ConfigError, SourceError
from modelguard.fileid import FileIdentity

__all__ = [
    "CHUNK_SIZE",
    "HASH_ALGORITHMS",
    "FileIdentity",
    "HashResult",
    "HashTask",
    "ProgressFn",
    "file_digest",
    "hash_tasks",
    "normalize_algorithm",
]

HASH_ALGORITHMS: tuple[str, ...] = ("sha256", "blake2b", "blake3")

#: Bytes read per call and per worker thread (the buffer each worker owns). Measured on a
#: 2-core SHA-NI host: 1 MiB and 4 MiB are equal within noise; below 256 KiB the per-call
#: overhead shows, above 8 MiB the working set leaves the CPU caches.
CHUNK_SIZE = 1 << 20

# Called with (bytes hashed so far over all tasks, bytes to hash in total), from any thread.
ProgressFn = Callable[[int, int], None]

_ALIASES = {
    "sha256": "sha256",
    "sha-256": "sha256",
    "blake2b": "blake2b",
    "blake2": "blake2b",
    "blake3": "blake3",
}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
# A FIFO opened for reading blocks until a writer appears: O_NONBLOCK makes the open return at
# once so that fstat can refuse it. It has no effect on reads from regular files.
_OPEN_FLAGS |= getattr(os, "O_NONBLOCK", 0)


class _Hasher(Protocol):
    def update(self, data: Any, /) -> object: ...

    def hexdigest(self) -> str: ...


def normalize_algorithm(name: str) -> str:
    """Return the canonical name of a hash algorithm.

    Args:
        name: an algorithm name, case-insensitive; ``blake2`` (model-signing's spelling)
            means ``blake2b``.

    Returns:
        One of `HASH_ALGORITHMS`.

    Raises:
        ConfigError: the algorithm is not supported.
    """
    canonical = _ALIASES.get(name.strip().lower()) if isinstance(name, str) else None
    if canonical is None:
        raise ConfigError(
            f"unsupported hash algorithm {name!r}; use one of {', '.join(HASH_ALGORITHMS)}"
        )
    return canonical


def _new_hasher(algorithm: str, threads: int = 1) -> _Hasher:
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    try:
        import blake3  # optional: only this algorithm needs it
    except ImportError as exc:
        raise ConfigError(
            "the blake3 hash algorithm needs the 'blake3' package: pip install 'modelguard[blake3]'"
        ) from exc
    hasher: _Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if threads != 1 else 1)
    return hasher


@dataclass(frozen=True, slots=True)
class HashTask:
    """One file, or one byte range of a file, to hash.

    Attributes:
        path: the file system path to open.
        name: the caller's name for the result (a model-relative name, a shard name).
        start: first byte hashed.
        end: byte after the last one hashed; None hashes to the end of the file.
    """

    path: str
    name: str
    start: int = 0
    end: int | None = None


@dataclass(frozen=True, slots=True)
class HashResult:
    """The outcome of one `HashTask`.

    Attributes:
        name: the task's name.
        digest: lowercase hex digest; "" when `error` is set.
        size: number of bytes hashed.
        identity: the file's identity when it was opened; None when it could not be opened.
        error: why the task failed, or None.
    """

    name: str
    digest: str
    size: int
    identity: FileIdentity | None
    error: str | None = None


class _Progress:
    """Thread-safe running total that forwards to the caller's callback."""

    __slots__ = ("_done", "_fn", "_lock", "_total")

    def __init__(self, fn: ProgressFn, total: int) -> None:
        self._fn = fn
        self._total = total
        self._done = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self._done += n
            done = self._done
        self._fn(done, self._total)


def _expected_length(task: HashTask, follow_symlinks: bool) -> int:
    if task.end is not None:
        return max(task.end - task.start, 0)
    try:
        return max(os.stat(task.path, follow_symlinks=follow_symlinks).st_size - task.start, 0)
    except OSError:
        return 0


def _hash_one(
    task: HashTask,
    algorithm: str,
    flags: int,
    buffer: memoryview,
    progress: _Progress | None,
    hasher_threads: int,
) -> HashResult:
    def failed(reason: str, identity: FileIdentity | None = None) -> HashResult:
        return HashResult(task.name, "", 0, identity, reason)

    if task.start < 0 or (task.end is not None and task.end < task.start):
        return failed(f"invalid byte range {task.start}:{task.end}")
    try:
        fd = os.open(task.path, flags)
    except OSError as exc:
        if flags & _NOFOLLOW and os.path.islink(task.path):
            return failed("is a symbolic link")
        return failed(exc.strerror or str(exc))
    try:
        st = os.fstat(fd)
        identity = FileIdentity.from_stat(st)
        if not stat.S_ISREG(st.st_mode):
            return failed("not a regular file", identity)
        end = st.st_size if task.end is None else task.end
        if end > st.st_size:
            return failed(f"byte range end {end} is beyond the end of the file", identity)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, task.start, end - task.start, os.POSIX_FADV_SEQUENTIAL)
        hasher = _new_hasher(algorithm, hasher_threads)
        remaining = end - task.start
        with open(fd, "rb", buffering=0, closefd=False) as fh:
            if task.start:
                fh.seek(task.start)
            chunk = len(buffer)
            while remaining:
                n = fh.readinto(buffer[: min(chunk, remaining)])
                if not n:
                    break
                hasher.update(buffer[:n])
                remaining -= n
                if progress is not None:
                    progress.add(n)
        after = os.fstat(fd)
    except OSError as exc:
        return failed(exc.strerror or str(exc))
    finally:
        os.close(fd)
    # ctime too: a rewrite whose mtime was restored with utime() still moves the ctime.
    unchanged = (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
        after.st_ino,
        after.st_dev,
    ) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    if remaining or not unchanged:
        return failed("changed while hashing", identity)
    return HashResult(task.name, hasher.hexdigest(), end - task.start, identity)


def hash_tasks(
    tasks: Sequence[HashTask],
    algorithm: str = "sha256",
    *,
    workers: int | None = None,
    follow_symlinks: bool = False,
    progress: ProgressFn | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> list[HashResult]:
    """Hash files or byte ranges of files in parallel.

    Each file is opened read-only without following a final symbolic link (unless
    `follow_symlinks`), must be a regular file, and must not change (size, modification time,
    inode) while it is read. Failures do not raise: the result's `error` says what happened.

    Args:
        tasks: what to hash.
        algorithm: ``sha256``, ``blake2b`` (``blake2``) or ``blake3``.
        workers: number of threads; defaults to the number of CPUs.
        follow_symlinks: open the target of a symbolic link instead of refusing it.
        progress: called with (bytes done, bytes total) after each chunk, from any thread.
        chunk_size: bytes read at a time by each thread.

    Returns:
        One result per task, in the order of `tasks`.

    Raises:
        ConfigError: the algorithm is unknown (or blake3 is not installed), or the worker
            count or chunk size is not positive.
    """
    algorithm = normalize_algorithm(algorithm)
    _new_hasher(algorithm)  # fail early (missing blake3) rather than once per task
    if chunk_size <= 0:
        raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
    if workers is not None and workers <= 0:
        raise ConfigError(f"workers must be positive, got {workers}")
    if not tasks:
        return []
    flags = _OPEN_FLAGS if follow_symlinks else _OPEN_FLAGS | _NOFOLLOW
    lengths = [_expected_length(task, follow_symlinks) for task in tasks]
    tracker = _Progress(progress, sum(lengths)) if progress is not None else None
    cores = workers or os.cpu_count() or 1
    count = min(cores, len(tasks))
    if count == 1:
        # blake3 can spread one large input over several cores itself: let it when the
        # tasks run one after the other but more cores were allowed.
        threads = 0 if algorithm == "blake3" and cores > 1 else 1
        buffer = memoryview(bytearray(chunk_size))
        return [_hash_one(task, algorithm, flags, buffer, tracker, threads) for task in tasks]

    # Largest first, so that one big file does not start last and leave the other threads
    # idle. Plain threads pulling from a shared queue (concurrent.futures would import
    # logging, ~3 ms of start-up on every signature check); each owns one buffer.
    pending = sorted(range(len(tasks)), key=lambda i: -lengths[i])
    pending.reverse()  # pop() from the end yields the largest first
    lock = threading.Lock()
    results: list[HashResult | None] = [None] * len(tasks)
    failures: list[BaseException] = []

    def worker() -> None:
        buffer = memoryview(bytearray(chunk_size))
        while True:
            with lock:
                if not pending or failures:
                    return
                index = pending.pop()
            try:
                results[index] = _hash_one(tasks[index], algorithm, flags, buffer, tracker, 1)
            except BaseException as exc:  # re-raised in the caller's thread below
                with lock:
                    failures.append(exc)
                return

    pool = [
        threading.Thread(target=worker, name=f"modelguard-hash-{n}", daemon=True)
        for n in range(count)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise failures[0]
    return [r for r in results if r is not None]


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Return the hex digest of a whole regular file (a final symbolic link is refused).

    Args:
        path: the file.
        algorithm: ``sha256``, ``blake2b`` (``blake2``) or ``blake3``.

    Returns:
        The lowercase hex digest.

    Raises:
        ConfigError: the algorithm is unknown or unavailable.
        SourceError: the file cannot be opened, is not a regular file or changed while read.
    """
    path = os.fspath(path)
    (result,) = hash_tasks([HashTask(path, path)], algorithm, workers=1)
    if result.error is not None:
        raise SourceError(f"{path}: {result.error}")
    return result.digest
