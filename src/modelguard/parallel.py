"""Scanning many files: worker processes, any `concurrent.futures.Executor`, the result cache.

`scan_entries` is the engine behind `modelguard.scan(jobs=..., executor=..., cache=...)`:

1. with a cache, every file is hashed (threads, `modelguard.hashing.hash_tasks`) and the stored
   results are taken; safetensors and GGUF files skip the cache (their scan reads only the
   header, cheaper than hashing every byte);
2. the rest is scanned: in this process, in a pool of ``jobs`` worker processes (started with
   ``spawn``, so it behaves the same on every platform and never forks a process holding
   threads), or on the caller's executor (a Dask ``Client.get_executor()``, a
   ``ProcessPoolExecutor``, ...). Files go out in batches balanced by size, and every result is
   put back in the entries' order, so the report is the same as a serial run's;
3. new complete results are stored, but only when the descriptor the scan read has the identity
   (device, inode, size, mtime, ctime) that the hash saw: a file changed or swapped (a symlink
   flipped) between hashing and scanning is scanned but not stored.

Only regular files are hashed or sniffed (a FIFO or a device is never opened for that; the
scan reports it). A batch whose worker fails (a crash, a lost Dask worker) gives incomplete
results (MG002) for its files; a batch that runs longer than ``Limits.worker_timeout`` seconds
per file, counted from when it is handed to a worker, gives incomplete results (MG003) for its
files: never safe. A local worker stuck on such a batch is stopped (the pool is replaced and
the other unfinished batches run again); on a caller's executor the batch is only given up.
The paths are sent to the workers, so they must see the same files (a shared file system for a
cluster); results come back through the executor's own transport.
"""

from __future__ import annotations

import heapq
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING

from modelguard.fileid import FileIdentity
from modelguard.results import FileResult, Incomplete, Location

if TYPE_CHECKING:
    from modelguard.cache import ResultCache
    from modelguard.policy import Policy

__all__ = ["Progress", "batches", "scan_batch", "scan_entries"]

Progress = Callable[[int, int | None, str], None]
"""progress(files_done, files_total, current_path)."""

#: Batches per worker: enough to balance uneven files, few enough to keep overhead low.
_BATCHES_PER_WORKER = 4
#: At most this many files per batch (progress granularity on large registries).
_MAX_BATCH_FILES = 128
_CACHE_ALGORITHM = "sha256"

_Item = tuple[int, str, str]  # (entry index, file path, display path)
_Read = tuple[FileResult, FileIdentity | None]  # a result and what the scan read
#: Longest wait between two looks at the running batches (their clocks and deadlines).
_POLL_SECONDS = 0.5


def scan_batch(items: Sequence[tuple[str, str]], policy: Policy) -> list[FileResult]:
    """Scan (path, display) pairs in this process; the function a worker runs.

    Args:
        items: the files of one batch.
        policy: the scan's policy.

    Returns:
        One result per item, in order.
    """
    from modelguard.scanner import scan_file

    return [scan_file(path, display, policy) for path, display in items]


def _scan_read(path: str, display: str, policy: Policy) -> _Read:
    """Scan one file; return its result and the identity of the bytes the scan read."""
    from modelguard import scanner

    result = scanner.scan_file(path, display, policy)
    return result, scanner.last_read_identity(path)


def _scan_batch_read(items: Sequence[tuple[str, str]], policy: Policy) -> list[_Read]:
    """`scan_batch`, with what each scan read (the function a worker runs)."""
    return [_scan_read(path, display, policy) for path, display in items]


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def batches(items: Sequence[_Item], count: int) -> list[list[_Item]]:
    """Split `items` into at most `count` batches of about equal bytes, biggest first.

    Largest files are placed first, each into the lightest batch (deterministic); each batch
    keeps the entries' order. Batches are returned heaviest first, so that the long ones start
    early.
    """
    if not items:
        return []
    count = max(1, min(count, len(items)))
    sized = sorted(((_size(path), index, path, display) for index, path, display in items),
                   key=lambda t: (-t[0], t[1]))  # fmt: skip
    heap: list[tuple[int, int, int]] = [(0, 0, b) for b in range(count)]  # (bytes, files, id)
    bins: list[list[tuple[int, _Item]]] = [[] for _ in range(count)]
    weight = [0] * count
    for size, index, path, display in sized:
        load, files, bin_id = heapq.heappop(heap)
        bins[bin_id].append((size, (index, path, display)))
        weight[bin_id] = load + size
        if files + 1 < _MAX_BATCH_FILES:
            heapq.heappush(heap, (load + size, files + 1, bin_id))
        elif not heap:  # every batch is full: open another one
            bins.append([])
            weight.append(0)
            heapq.heappush(heap, (0, 0, len(bins) - 1))
    order = sorted(range(len(bins)), key=lambda b: (-weight[b], b))
    return [sorted(item for _, item in bins[b]) for b in order if bins[b]]


def _failed(items: Sequence[_Item], exc: BaseException) -> list[_Read]:
    reason = f"internal error: the worker scanning this file failed ({type(exc).__name__}: {exc})"
    return [
        (FileResult(display, 0, (), (), (Incomplete("MG002", reason, Location(display)),)), None)
        for _, _, display in items
    ]


def _timed_out(items: Sequence[_Item], seconds: int) -> list[_Read]:
    reason = (
        f"time limit: worker_timeout ({seconds} s per file of its batch of {len(items)}) "
        "reached in the worker scanning this file; not analysed"
    )
    return [
        (FileResult(display, 0, (), (), (Incomplete("MG003", reason, Location(display)),)), None)
        for _, _, display in items
    ]


def _batch_count(todo: int, workers: int) -> int:
    return max(workers * _BATCHES_PER_WORKER, math.ceil(todo / _MAX_BATCH_FILES))


def _workers(jobs: int | None, executor: Executor | None) -> int:
    if executor is not None:
        known = getattr(executor, "_max_workers", None)
        return known if isinstance(known, int) and known > 0 else os.cpu_count() or 2
    if jobs is None or jobs == 1:
        return 1
    return jobs if jobs > 0 else os.cpu_count() or 1


def _run_pool(
    work: list[list[_Item]],
    policy: Policy,
    executor: Executor,
    workers: int,
    on_result: Callable[[int, FileResult, FileIdentity | None], None],
    *,
    local: bool,
) -> tuple[list[list[_Item]], bool]:
    """Run the batches `work` on `executor`; report every result through `on_result`.

    A batch's clock starts when it is among the first `workers` unfinished batches (in
    submission order: the ones the workers hold) and runs for ``worker_timeout`` seconds per
    file. A batch past its time gets incomplete results. For a `local` pool the wait then
    stops: the other unfinished batches are returned, to be run again on a fresh pool (the
    caller stops this one). Otherwise the batch is given up and the others are awaited.

    Returns:
        (the batches to run again: only for a `local` pool after a time out, whether a batch
        timed out: its worker may still be busy).
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    limit = policy.limits.worker_timeout
    pending: dict[Future[list[_Read]], list[_Item]] = {}
    for batch in work:
        pairs = [(path, display) for _, path, display in batch]
        pending[executor.submit(_scan_batch_read, pairs, policy)] = batch
    started: dict[Future[list[_Read]], float] = {}
    timed_out = False
    try:
        while pending:
            now = time.monotonic()
            for future in list(pending)[:workers]:  # dicts keep the submission order
                started.setdefault(future, now)
            deadlines = {f: t + limit * len(pending[f]) for f, t in started.items()}
            wait_for = min(_POLL_SECONDS, max(0.0, min(deadlines.values()) - now))
            done, _ = wait(list(pending), timeout=wait_for, return_when=FIRST_COMPLETED)
            for future in done:
                batch = pending.pop(future)
                started.pop(future, None)
                try:
                    reads = future.result()
                    if len(reads) != len(batch):
                        raise RuntimeError(f"{len(reads)} results for {len(batch)} files")
                except Exception as exc:  # a lost worker must fail closed: never safe
                    reads = _failed(batch, exc)
                for (index, _, _), (result, identity) in zip(batch, reads, strict=True):
                    on_result(index, result, identity)
            now = time.monotonic()
            late = [f for f in list(started) if f in pending and now >= deadlines[f]]
            for future in late:
                timed_out = True
                if not local:  # a local pool is stopped instead (cancelling races its stop)
                    future.cancel()
                batch = pending.pop(future)
                del started[future]
                for (index, _, _), (result, _) in zip(batch, _timed_out(batch, limit), strict=True):
                    on_result(index, result, None)
            if late and local and pending:
                return list(pending.values()), True
    except BaseException:
        if not local:
            for future in pending:
                future.cancel()
        raise
    return [], timed_out


def _local_pool(jobs: int) -> Executor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _stop_pool(pool: Executor) -> None:
    """Shut a local pool down without waiting for its workers: stop the ones still running."""
    processes = getattr(pool, "_processes", None) or {}
    alive = [proc for proc in list(processes.values()) if proc.is_alive()]
    for proc in alive:
        proc.terminate()
    for proc in alive:
        proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)
    pool.shutdown(wait=False)


def _run_local(
    todo: list[_Item],
    policy: Policy,
    workers: int,
    on_result: Callable[[int, FileResult, FileIdentity | None], None],
) -> None:
    """Run `todo` on pools of local worker processes (a fresh pool after a time out)."""
    work = batches(todo, _batch_count(len(todo), workers))
    while work:
        pool = _local_pool(min(workers, sum(len(batch) for batch in work)))
        clean = False
        try:
            work, stuck = _run_pool(work, policy, pool, workers, on_result, local=True)
            clean = not stuck
        finally:
            if clean:
                pool.shutdown(wait=True, cancel_futures=True)
            else:  # a stuck worker (or an interrupt): do not wait for it
                _stop_pool(pool)


def _same_file(path: str, identity: FileIdentity, read: FileIdentity | None) -> bool:
    """Return True when the scan read the bytes that were hashed (and the file is unchanged)."""
    if read != identity:
        return False
    try:
        return identity.matches(os.stat(path))
    except OSError:
        return False


def scan_entries(
    entries: Sequence[tuple[Path, str]],
    policy: Policy,
    progress: Progress | None = None,
    *,
    jobs: int | None = None,
    executor: Executor | None = None,
    cache: ResultCache | None = None,
) -> list[FileResult]:
    """Scan every entry and return one result per entry, in the entries' order.

    Args:
        entries: (file path, display path) pairs.
        policy: the scan's policy.
        progress: called with (files done, files total, path); in order when serial, as
            results arrive when parallel.
        jobs: worker processes; None or 1 scans in this process, 0 means one per CPU.
        executor: scan on this executor instead (it is not shut down); excludes `jobs`.
        cache: the result cache to read and fill, or None.

    Returns:
        One result per entry.

    With `jobs`, worker processes are started with ``spawn``: like any ``multiprocessing``
    code, a script that calls this must guard its entry point with
    ``if __name__ == "__main__":`` (otherwise every batch fails and is reported incomplete).
    """
    total = len(entries)
    results: list[FileResult | None] = [None] * total
    keys: list[tuple[str, str] | None] = [None] * total
    identities: list[FileIdentity | None] = [None] * total
    reads: list[FileIdentity | None] = [None] * total
    policy_key = ""
    if cache is not None and total and cache.open():
        from modelguard.cache import needs_hash, policy_digest
        from modelguard.hashing import HashTask, hash_tasks

        policy_key = policy_digest(policy)
        if progress is not None:
            progress(0, total, "")  # hashing for the result cache
        wanted = [i for i, (path, _) in enumerate(entries) if needs_hash(os.fspath(path))]
        hashed = hash_tasks(
            [HashTask(os.fspath(entries[i][0]), str(i)) for i in wanted],
            _CACHE_ALGORITHM,
            follow_symlinks=True,
        )
        for i, res in zip(wanted, hashed, strict=True):
            if res.error is None and res.identity is not None:
                name = entries[i][1].rsplit("/", 1)[-1]
                keys[i] = (f"{_CACHE_ALGORITHM}:{res.digest}", name)
                identities[i] = res.identity
        known = [i for i in range(total) if keys[i] is not None]
        found = cache.get_many(
            [k for k in keys if k is not None], policy_key, [entries[i][1] for i in known]
        )
        for i, hit in zip(known, found, strict=True):
            results[i] = hit

    done = 0

    def finished(index: int, result: FileResult, read: FileIdentity | None) -> None:
        nonlocal done
        results[index] = result
        reads[index] = read
        done += 1
        if progress is not None and executor_used:
            progress(done, total, result.path)

    todo: list[_Item] = [
        (i, os.fspath(path), display)
        for i, (path, display) in enumerate(entries)
        if results[i] is None
    ]
    workers = _workers(jobs, executor)
    executor_used = executor is not None or (workers > 1 and len(todo) > 1)
    if not executor_used:
        pending = {i for i, _, _ in todo}
        for i, (path, display) in enumerate(entries):
            if progress is not None:
                progress(i, total, display)
            if i in pending:
                results[i], reads[i] = _scan_read(os.fspath(path), display, policy)
    else:
        done = total - len(todo)  # the cache hits
        if progress is not None:
            progress(done, total, "")
        if executor is not None:
            work = batches(todo, _batch_count(len(todo), workers))
            _run_pool(work, policy, executor, workers, finished, local=False)
        else:
            _run_local(todo, policy, workers, finished)

    if cache is not None and cache.enabled:
        fresh = []
        for i, _, _ in todo:
            key, identity, scanned = keys[i], identities[i], results[i]
            if key is None or identity is None or scanned is None:
                continue
            if _same_file(os.fspath(entries[i][0]), identity, reads[i]):
                fresh.append((key, scanned))
        cache.put_many(fresh, policy_key)
    out = [r for r in results if r is not None]
    assert len(out) == total, "every entry has a result"
    return out
