"""--jobs and executor=: the same report as a serial scan, in the same order."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelguard.errors import ConfigError
from modelguard.parallel import batches, scan_batch
from modelguard.report import OutputFormat, render
from modelguard.results import FileResult
from modelguard.scanner import scan

from .registry import build_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reg")
    return build_registry(root, models=9)


def _json(report: Any) -> str:
    return render(report, OutputFormat.JSON)


def test_jobs_report_equals_serial(registry: Path) -> None:
    serial = scan(registry)
    assert serial.verdict.value == "dangerous"
    calls: list[tuple[int, int | None, str]] = []
    parallel = scan(registry, jobs=2, progress=lambda *a: calls.append(a))
    assert _json(parallel) == _json(serial)
    assert parallel == serial
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == len(serial.files)
    assert all(c[1] == len(serial.files) for c in calls)
    assert {c[2] for c in calls[1:]} == {f.path for f in serial.files}


def test_thread_executor_equals_serial(registry: Path) -> None:
    with ThreadPoolExecutor(3) as pool:
        assert _json(scan(registry, executor=pool)) == _json(scan(registry))


class _BrokenExecutor(Executor):
    """Every task fails, as when a worker process or a cluster node dies."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(RuntimeError("worker lost"))
        return future


def test_failed_worker_is_incomplete_never_safe(registry: Path) -> None:
    report = scan(registry, executor=_BrokenExecutor())
    assert not report.complete
    assert report.files and all(not r.complete for r in report.files)
    assert {i.rule_id for r in report.files for i in r.incomplete} == {"MG002"}
    assert all("worker lost" in r.incomplete[0].reason for r in report.files)
    assert report.verdict.value != "safe"


def test_jobs_and_executor_are_exclusive(registry: Path) -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ConfigError):
        scan(registry, jobs=2, executor=pool)
    with pytest.raises(ConfigError):
        scan(registry, jobs=-1)


def test_batches_cover_every_file_once_in_order(tmp_path: Path) -> None:
    items = []
    for i in range(300):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"x" * ((i * 37) % 1000))
        items.append((i, str(p), f"f{i}"))
    out = batches(items, 8)
    flat = [item for batch in out for item in batch]
    assert sorted(flat) == items
    assert all(batch == sorted(batch) for batch in out)
    assert all(len(batch) <= 128 for batch in out)
    assert batches(items, 8) == out  # deterministic
    assert batches([], 4) == []


def test_scan_batch_matches_scan_file(registry: Path) -> None:
    from modelguard.policy import Policy
    from modelguard.scanner import scan_file

    files = sorted(p for p in registry.rglob("*") if p.is_file())[:5]
    pairs = [(str(p), p.name) for p in files]
    expected: list[FileResult] = [scan_file(p, d, Policy()) for p, d in pairs]
    assert scan_batch(pairs, Policy()) == expected


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelguard", "scan", "--format", "json", "--no-cache", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_jobs_same_output_and_exit_code(registry: Path) -> None:
    serial = _cli(str(registry))
    parallel = _cli("--jobs", "2", str(registry))
    assert serial.returncode == parallel.returncode == 1
    assert json.loads(parallel.stdout) == json.loads(serial.stdout)
    bad = _cli("--jobs", "-1", str(registry))
    assert bad.returncode == 2
    assert "--jobs" in bad.stderr


def test_jobs_with_cache_equals_serial(registry: Path, tmp_path: Path) -> None:
    from modelguard.cache import ResultCache

    expected = _json(scan(registry))
    with ResultCache(tmp_path / "c") as cache:
        assert _json(scan(registry, jobs=2, cache=cache)) == expected
        stored = cache.stored
        assert stored > 0
        # a second run: every stored result is a hit, the rest (JSON) is scanned again
        assert _json(scan(registry, jobs=2, cache=cache)) == expected
        assert cache.hits == stored
