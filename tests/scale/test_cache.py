"""The result cache: same reports, hits re-labelled, nothing stale, never a crash."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelguard.cache import (
    CACHE_FILE,
    ResultCache,
    cacheable,
    default_cache_dir,
    policy_digest,
    result_from_dict,
    result_to_dict,
)
from modelguard.policy import Policy
from modelguard.report import OutputFormat, render
from modelguard.results import FileResult, Incomplete, Location
from modelguard.scanner import scan

from .registry import build_registry


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return build_registry(tmp_path / "models", models=4)


def _json(report: Any) -> str:
    return render(report, OutputFormat.JSON)


def _rows(folder: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(folder / CACHE_FILE) as conn:
        return conn.execute("SELECT name, result FROM results").fetchall()


def test_cached_report_equals_fresh_and_hits(registry: Path, tmp_path: Path) -> None:
    fresh = scan(registry)
    with ResultCache(tmp_path / "c") as cache:
        first = scan(registry, cache=cache)
        assert cache.hits == 0 and cache.stored > 0
        stored = cache.stored
        second = scan(registry, cache=cache)
        assert cache.hits == stored
    assert _json(first) == _json(second) == _json(fresh)
    names = {name for name, _ in _rows(tmp_path / "c")}
    assert "weights.pkl" in names  # the malicious result is cached, findings included
    assert "config.json" not in names  # JSON reads files beside it: never cached
    assert "model.safetensors" not in names  # a header scan is cheaper than hashing
    assert "bundle.zip" in names


def test_large_seeking_formats_skip_the_cache(tmp_path: Path) -> None:
    # a torch checkpoint's scan reads its pickle and directory, a hash every byte: from 8 MiB
    # on, zip archives and NumPy arrays are scanned directly (the cache would cost more)
    import numpy as np
    import torch

    folder = tmp_path / "m"
    folder.mkdir()
    torch.save({"w": torch.zeros(3 * 1024 * 1024)}, folder / "big.pt")  # 12 MiB zip
    np.save(folder / "big.npy", np.zeros(2 * 1024 * 1024))  # 16 MiB array
    torch.save({"w": torch.zeros(16)}, folder / "small.pt")
    with ResultCache(tmp_path / "c") as cache:
        report = scan(folder, cache=cache)
    assert report.complete
    names = {name for name, _ in _rows(tmp_path / "c")}
    assert names == {"small.pt"}


def test_files_from_64_mib_are_never_hashed(tmp_path: Path) -> None:
    # a pickle-headed file this big is a legacy torch or joblib file whose scan skips the data
    from modelguard.cache import needs_hash

    small, big = tmp_path / "small.pt", tmp_path / "big.pt"
    for path, size in ((small, 1024 * 1024), (big, 64 * 1024 * 1024)):
        with path.open("wb") as fh:
            fh.write(b"\x80\x02\x8a\x0alp\xfc\x9cF\xf9 j\xa8P\x19.")  # legacy torch magic
            fh.truncate(size)  # sparse: no 64 MiB written
    assert needs_hash(str(small))
    assert not needs_hash(str(big))


def test_hit_is_relabelled_to_the_new_path(registry: Path, tmp_path: Path) -> None:
    src = registry / "org0" / "model0" / "weights.pkl"
    copy = tmp_path / "elsewhere" / "weights.pkl"
    copy.parent.mkdir()
    shutil.copyfile(src, copy)
    with ResultCache(tmp_path / "c") as cache:
        scan(src, cache=cache)
        report = scan(copy, cache=cache)
        assert cache.hits == 1
    assert report == scan(copy)
    assert {f.location.path for f in report.findings} == {copy.as_posix()}


def test_key_includes_the_file_name(tmp_path: Path) -> None:
    """The extension check (MG201) depends on the name: same bytes, other name, no hit."""
    (tmp_path / "a.pkl").write_bytes(b"\x80\x04K\x01.")
    (tmp_path / "b.safetensors").write_bytes(b"\x80\x04K\x01.")
    with ResultCache(tmp_path / "c") as cache:
        one = scan(tmp_path / "a.pkl", cache=cache)
        two = scan(tmp_path / "b.safetensors", cache=cache)
        assert cache.hits == 0
    assert "MG201" in {f.rule_id for f in two.findings}
    assert "MG201" not in {f.rule_id for f in one.findings}


def test_policy_change_misses(registry: Path, tmp_path: Path) -> None:
    target = registry / "org0" / "model0" / "weights.pkl"
    strict = Policy()
    loose = Policy(allow={"os:system": "test only"})
    assert policy_digest(strict) != policy_digest(loose)
    assert policy_digest(strict) == policy_digest(Policy())
    with ResultCache(tmp_path / "c") as cache:
        assert scan(target, cache=cache, policy=strict).verdict.value == "dangerous"
        relaxed = scan(target, cache=cache, policy=loose)
        assert cache.hits == 0
    assert relaxed == scan(target, policy=loose)


def test_incomplete_results_are_not_cached(registry: Path, tmp_path: Path) -> None:
    from modelguard.config import Limits

    tight = Policy(limits=Limits(max_pickle_bytes=4))
    target = registry / "org1" / "model1" / "state.pkl"
    with ResultCache(tmp_path / "c") as cache:
        report = scan(target, cache=cache, policy=tight)
        assert not report.complete
        assert cache.stored == 0
        scan(target, cache=cache, policy=tight)
        assert cache.hits == 0


def test_file_changed_during_scan_is_not_stored(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelguard.scanner as scanner

    target = registry / "org1" / "model1" / "state.pkl"
    real = scanner.scan_file

    def racing(path: Any, display: str, policy: Policy) -> FileResult:
        result = real(path, display, policy)
        with open(path, "ab") as fh:  # the file changes after it was hashed
            fh.write(b"\0")
        return result

    monkeypatch.setattr(scanner, "scan_file", racing)
    with ResultCache(tmp_path / "c") as cache:
        scan(target, cache=cache)
        assert cache.stored == 0


def test_damaged_entry_is_a_miss(registry: Path, tmp_path: Path) -> None:
    target = registry / "org0" / "model0" / "weights.pkl"
    folder = tmp_path / "c"
    expected = scan(target, cache=folder)
    with sqlite3.connect(folder / CACHE_FILE) as conn:
        conn.execute("UPDATE results SET result = ?", ('{"size": "x"}',))
    with ResultCache(folder) as cache:
        assert scan(target, cache=cache) == expected
        assert cache.hits == 0 and cache.stored == 1


def test_file_modes(registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "new" / "cache"
    scan(registry, cache=folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / CACHE_FILE).stat().st_mode) == 0o600


def test_unusable_folder_scans_without_cache(registry: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    expected = scan(registry)
    report = scan(registry, cache=blocker / "cache")
    assert report.files == expected.files
    assert any("result cache not used" in note for note in report.notes)


def test_corrupt_database_scans_without_cache(registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    report = scan(registry, cache=folder)
    assert report.files == scan(registry).files
    assert any("result cache not used" in note for note in report.notes)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_read_only_folder_scans_without_cache(registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "c"
    scan(registry, cache=folder)
    folder.chmod(0o500)
    (folder / CACHE_FILE).chmod(0o400)
    try:
        report = scan(registry, cache=folder)
    finally:
        folder.chmod(0o700)
    assert report.files == scan(registry).files


def test_roundtrip_and_cacheable() -> None:
    from modelguard.results import Finding, Severity

    loc = Location("a/b.pkl", ("x!y",), 12)
    res = FileResult(
        "a/b.pkl",
        10,
        ("pickle",),
        (Finding("MG101", Severity.CRITICAL, "m", loc, (("global", "os.system"),)),),
    )
    back = result_from_dict(json.loads(json.dumps(result_to_dict(res))), "c/b.pkl")
    assert back.path == "c/b.pkl"
    assert back.findings[0].location == Location("c/b.pkl", ("x!y",), 12)
    assert back.findings[0].evidence == (("global", "os.system"),)
    assert cacheable(res)
    assert not cacheable(FileResult("x", 1, ("json",)))
    assert not cacheable(FileResult("x", 1, ("onnx",)))
    broken = FileResult("x", 1, ("pickle",), (), (Incomplete("MG001", "r", Location("x")),))
    assert not cacheable(broken)
    with pytest.raises(ValueError):
        result_to_dict(broken)
    with pytest.raises(ValueError):
        result_from_dict({"size": 1, "formats": [], "findings": [{"rule": "x"}]}, "p")


def test_default_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELGUARD_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("MODELGUARD_CACHE_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_dir() == tmp_path / "xdg" / "modelguard"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
        assert default_cache_dir() == Path.home() / ".cache" / "modelguard"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelguard", "scan", "--format", "json", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_cli_caches_by_default_and_no_cache(registry: Path, tmp_path: Path) -> None:
    folder = Path(os.environ["MODELGUARD_CACHE_DIR"])
    off = _cli("--no-cache", str(registry))
    off_out, _ = off.communicate(timeout=120)
    assert off.returncode == 1
    assert not (folder / CACHE_FILE).exists()
    for _ in range(2):
        on = _cli(str(registry))
        out, _ = on.communicate(timeout=120)
        assert on.returncode == 1
        assert json.loads(out) == json.loads(off_out)
    assert _rows(folder)
    other = tmp_path / "explicit"
    run = _cli("--cache-dir", str(other), str(registry))
    run.communicate(timeout=120)
    assert (other / CACHE_FILE).is_file()


def test_default_cache_is_skipped_for_a_few_small_files(tmp_path: Path) -> None:
    # opening SQLite costs more than scanning a few small files again
    folder = Path(os.environ["MODELGUARD_CACHE_DIR"])
    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        (few / f"m{i}.pkl").write_bytes(b"\x80\x04K\x01.")
    assert scan(few, cache=True).complete
    assert not (folder / CACHE_FILE).exists()
    explicit = tmp_path / "explicit"
    scan(few, cache=explicit)  # a cache the caller names is always used
    assert len(_rows(explicit)) == 3
    for i in range(3, 8):
        (few / f"m{i}.pkl").write_bytes(b"\x80\x04K\x01.")
    scan(few, cache=True)
    assert len(_rows(folder)) == 8


def test_concurrent_runs_share_the_cache(registry: Path, tmp_path: Path) -> None:
    """Several processes filling and reading one cache at once: no error, same reports."""
    env = {**os.environ, "MODELGUARD_CACHE_DIR": str(tmp_path / "shared")}
    expected = json.loads(render(scan(registry), OutputFormat.JSON))
    for _ in range(2):
        runs = [_cli(str(registry), env=env) for _ in range(3)]
        outputs = [run.communicate(timeout=120) for run in runs]
        for run, (out, err) in zip(runs, outputs, strict=True):
            assert run.returncode == 1, err
            doc = json.loads(out)
            assert doc["notes"] == [], doc["notes"]  # the cache was used, not skipped
            assert doc == expected
    assert len(_rows(tmp_path / "shared")) >= 12


def test_read_only_database_scans_without_cache(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes refused by SQLite itself (a read-only database, as on a read-only mount)."""
    folder = tmp_path / "c"
    scan(registry / "org0", cache=folder)
    real_connect = sqlite3.connect

    def read_only(path: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only)
    report = scan(registry, cache=folder)
    assert report.files == scan(registry).files
    assert any("result cache not used" in note for note in report.notes)
