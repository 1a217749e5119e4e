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
3. new complete results are stored, unless the file changed since it was hashed.

A batch whose worker fails (a crash, a lost Dask worker) gives incomplete results (MG002) for
its files: never safe. The paths are sent to the workers, so they must see the same files
(a shared file system for a cluster); results come back through the executor's own transport.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING

from modelguard.formats.sniff import GGUF_MAGIC
from modelguard.results import FileResult, Incomplete, Location

if TYPE_CHECKING:
    from modelguard.cache import ResultCache
    from modelguard.hashing import FileIdentity
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


def _failed(items: Sequence[_Item], exc: BaseException) -> list[FileResult]:
    reason = f"internal error: the worker scanning this file failed ({type(exc).__name__}: {exc})"
    return [
        FileResult(display, 0, (), (), (Incomplete("MG002", reason, Location(display)),))
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
    todo: list[_Item],
    policy: Policy,
    executor: Executor,
    workers: int,
    on_result: Callable[[int, FileResult], None],
) -> None:
    pending: dict[Future[list[FileResult]], list[_Item]] = {}
    for batch in batches(todo, _batch_count(len(todo), workers)):
        pairs = [(path, display) for _, path, display in batch]
        pending[executor.submit(scan_batch, pairs, policy)] = batch
    from concurrent.futures import as_completed

    try:
        for future in as_completed(pending):
            batch = pending[future]
            try:
                results = future.result()
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} files")
            except Exception as exc:  # a lost worker must fail closed: incomplete, never safe
                results = _failed(batch, exc)
            for (index, _, _), result in zip(batch, results, strict=True):
                on_result(index, result)
    except BaseException:
        for future in pending:
            future.cancel()
        raise


def _local_pool(jobs: int) -> Executor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _cheaper_than_hashing(path: str) -> bool:
    """Return True for a safetensors or GGUF file: its scan reads the header, a hash every byte.

    Such files are scanned directly, never through the cache (always correct: the cache is
    only a shortcut).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    if head.startswith(GGUF_MAGIC):
        return True
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") >= 2


def _same_file(path: str, identity: FileIdentity) -> bool:
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
    policy_key = ""
    if cache is not None and total and cache.open():
        from modelguard.cache import policy_digest
        from modelguard.hashing import HashTask, hash_tasks

        policy_key = policy_digest(policy)
        if progress is not None:
            progress(0, total, "(hashing files for the result cache)")
        wanted = [
            i for i, (path, _) in enumerate(entries) if not _cheaper_than_hashing(os.fspath(path))
        ]
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

    def finished(index: int, result: FileResult) -> None:
        nonlocal done
        results[index] = result
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
        from modelguard.scanner import scan_file

        pending = {i for i, _, _ in todo}
        for i, (path, display) in enumerate(entries):
            if progress is not None:
                progress(i, total, display)
            if i in pending:
                results[i] = scan_file(path, display, policy)
    else:
        done = total - len(todo)  # the cache hits
        if progress is not None:
            progress(done, total, "")
        if executor is not None:
            _run_pool(todo, policy, executor, workers, finished)
        else:
            pool = _local_pool(min(workers, len(todo)))
            try:
                _run_pool(todo, policy, pool, workers, finished)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    if cache is not None and cache.enabled:
        fresh = []
        for i, _, _ in todo:
            key, identity, scanned = keys[i], identities[i], results[i]
            if key is None or identity is None or scanned is None:
                continue
            if _same_file(os.fspath(entries[i][0]), identity):
                fresh.append((key, scanned))
        cache.put_many(fresh, policy_key)
    out = [r for r in results if r is not None]
    assert len(out) == total, "every entry has a result"
    return out
