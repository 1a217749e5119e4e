"""Tests for modelguard.hashing: digests, byte ranges, refusals, change detection, progress."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from modelguard.errors import ConfigError, SourceError
from modelguard.hashing import (
    HASH_ALGORITHMS,
    FileIdentity,
    HashTask,
    file_digest,
    hash_tasks,
    normalize_algorithm,
)

blake3 = pytest.importorskip("blake3")


def reference(algorithm: str, data: bytes) -> str:
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "blake2b":
        return hashlib.blake2b(data).hexdigest()
    return str(blake3.blake3(data).hexdigest())


@pytest.fixture
def data_files(tmp_path: Path) -> list[tuple[Path, bytes]]:
    rng = __import__("random").Random(6)
    sizes = [0, 1, 4095, 4096, 70_001, 300_000]
    out = []
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(data)
        out.append((path, data))
    return out


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sha256", "sha256"),
        ("SHA256", "sha256"),
        ("blake2", "blake2b"),
        ("Blake2B", "blake2b"),
        ("blake3", "blake3"),
    ],
)
def test_normalize_algorithm(given: str, expected: str) -> None:
    assert normalize_algorithm(given) == expected
    assert expected in HASH_ALGORITHMS


@pytest.mark.parametrize("bad", ["md5", "sha1", "", "sha256-sharded-10"])
def test_normalize_algorithm_refuses(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_algorithm(bad)


@pytest.mark.parametrize("algorithm", HASH_ALGORITHMS)
@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("chunk_size", [4096, 1 << 20])
def test_whole_files_match_reference(
    data_files: list[tuple[Path, bytes]], algorithm: str, workers: int, chunk_size: int
) -> None:
    tasks = [HashTask(str(p), p.name) for p, _ in data_files]
    results = hash_tasks(tasks, algorithm, workers=workers, chunk_size=chunk_size)
    assert [r.name for r in results] == [p.name for p, _ in data_files]  # task order
    for (path, data), result in zip(data_files, results, strict=True):
        assert result.error is None
        assert result.digest == reference(algorithm, data)
        assert result.size == len(data)
        assert result.identity == FileIdentity.from_stat(path.stat())


@pytest.mark.parametrize("algorithm", HASH_ALGORITHMS)
def test_byte_ranges(data_files: list[tuple[Path, bytes]], algorithm: str) -> None:
    path, data = data_files[-1]
    ranges = [(0, 0), (0, 1000), (1000, 70_000), (299_999, 300_000), (5, None)]
    tasks = [HashTask(str(path), f"{s}:{e}", s, e) for s, e in ranges]
    results = hash_tasks(tasks, algorithm, workers=2, chunk_size=4096)
    for (start, end), result in zip(ranges, results, strict=True):
        assert result.error is None, result
        assert result.digest == reference(algorithm, data[start:end])
        assert result.size == len(data[start:end])


def test_range_beyond_end_is_an_error(data_files: list[tuple[Path, bytes]]) -> None:
    path, data = data_files[2]
    (result,) = hash_tasks([HashTask(str(path), "x", 0, len(data) + 1)])
    assert result.digest == ""
    assert result.error is not None and "beyond the end" in result.error
    (bad,) = hash_tasks([HashTask(str(path), "x", 10, 5)])
    assert bad.error is not None and "invalid byte range" in bad.error


def test_symlink_refused_unless_followed(data_files: list[tuple[Path, bytes]]) -> None:
    path, data = data_files[3]
    link = path.with_name("link")
    link.symlink_to(path.name)
    (refused,) = hash_tasks([HashTask(str(link), "l")])
    assert refused.error == "is a symbolic link" and refused.digest == ""
    (followed,) = hash_tasks([HashTask(str(link), "l")], follow_symlinks=True)
    assert followed.digest == reference("sha256", data)


def test_non_regular_files_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it must not block
    results = hash_tasks(
        [
            HashTask(str(tmp_path), "dir"),
            HashTask(str(fifo), "fifo"),
            HashTask(str(tmp_path / "missing"), "missing"),
        ]
    )
    assert [r.error for r in results[:2]] == ["not a regular file"] * 2
    assert results[2].error is not None and results[2].identity is None
    assert all(r.digest == "" for r in results)


def test_change_while_hashing_detected(tmp_path: Path) -> None:
    path = tmp_path / "grows.bin"
    path.write_bytes(b"a" * 64 * 1024)

    def grow(done: int, total: int) -> None:
        if done == 4096:
            with path.open("ab") as fh:
                fh.write(b"more")

    (result,) = hash_tasks([HashTask(str(path), "g")], workers=1, chunk_size=4096, progress=grow)
    assert result.error == "changed while hashing"
    assert result.digest == ""


def test_truncation_while_hashing_detected(tmp_path: Path) -> None:
    path = tmp_path / "shrinks.bin"
    path.write_bytes(b"a" * 64 * 1024)

    def shrink(done: int, total: int) -> None:
        if done == 4096:
            os.truncate(path, 8192)

    (result,) = hash_tasks([HashTask(str(path), "s")], workers=1, chunk_size=4096, progress=shrink)
    assert result.error == "changed while hashing"


def test_progress_reports_every_byte(data_files: list[tuple[Path, bytes]]) -> None:
    calls: list[tuple[int, int]] = []
    tasks = [HashTask(str(p), p.name) for p, _ in data_files]
    hash_tasks(tasks, workers=3, chunk_size=8192, progress=lambda d, t: calls.append((d, t)))
    total = sum(len(d) for _, d in data_files)
    assert calls and all(t == total for _, t in calls)
    assert max(d for d, _ in calls) == total
    assert len({d for d, _ in calls}) == len(calls)  # one call per chunk, no double count


def test_file_identity(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    identity = FileIdentity.from_stat(path.stat())
    assert identity.size == 3 and identity.ino == path.stat().st_ino
    assert identity.matches(path.stat())
    os.utime(path, ns=(0, identity.mtime_ns + 1_000_000))
    assert not identity.matches(path.stat())


def test_file_digest(data_files: list[tuple[Path, bytes]], tmp_path: Path) -> None:
    path, data = data_files[4]
    assert file_digest(path) == reference("sha256", data)
    assert file_digest(str(path), "blake2") == reference("blake2b", data)
    with pytest.raises(SourceError, match="not a regular file"):
        file_digest(tmp_path)


def test_empty_task_list_and_bad_options(tmp_path: Path) -> None:
    assert hash_tasks([]) == []
    with pytest.raises(ConfigError):
        hash_tasks([HashTask(str(tmp_path), "x")], "md5")
    with pytest.raises(ConfigError):
        hash_tasks([HashTask(str(tmp_path), "x")], workers=0)
    with pytest.raises(ConfigError):
        hash_tasks([HashTask(str(tmp_path), "x")], chunk_size=0)


def test_blake3_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, data_files: list[tuple[Path, bytes]]
) -> None:
    monkeypatch.setitem(sys.modules, "blake3", None)  # import blake3 -> ImportError
    path, _ = data_files[1]
    with pytest.raises(ConfigError, match="blake3"):
        hash_tasks([HashTask(str(path), "x")], "blake3")
    assert hash_tasks([HashTask(str(path), "x")], "sha256")[0].error is None
