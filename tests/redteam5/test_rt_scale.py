"""Red team (issue 5): the result cache and parallel scanning.

Each test states the correct behaviour; a failing test is an open gap. Payloads only touch a
canary file in a temporary folder and are never loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modelguard
from factories.malicious import sample_by_id
from modelguard.cache import CACHE_FILE, ResultCache, _key_version, policy_digest
from modelguard.cli import main
from modelguard.config import Limits
from modelguard.policy import Policy
from modelguard.report import OutputFormat, render
from modelguard.results import Verdict

EVIL = "direct-os-system-p0"


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a payload ran"


def _evil_bytes(tmp_path: Path, canary: Path) -> bytes:
    scratch = tmp_path / "scratch-evil"
    scratch.mkdir(exist_ok=True)
    return sample_by_id(EVIL).build(scratch, canary).read_bytes()


def _clean_bytes() -> bytes:
    return pickle.dumps({"weight": [0.5, 1.5], "bias": 0.1}, 4)


def _poison(db: Path, digest_hex: str, name: str, policy: Policy | None = None) -> None:
    """Write a 'clean' entry for the given content into the cache database `db`."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS results (digest TEXT NOT NULL, name TEXT NOT NULL, "
        "version TEXT NOT NULL, policy TEXT NOT NULL, result TEXT NOT NULL, stored REAL NOT NULL,"
        " PRIMARY KEY (digest, name, version, policy)) WITHOUT ROWID"
    )
    clean = json.dumps({"size": 56, "formats": ["pickle"], "findings": []})
    conn.execute(
        "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
        (
            f"sha256:{digest_hex}",
            name,
            _key_version(),
            policy_digest(policy or Policy()),
            clean,
            time.time(),
        ),
    )
    conn.commit()
    conn.close()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# 1. a file changed between hashing and scanning


def test_symlink_flipped_during_scan_does_not_cache_benign_result_for_evil_digest(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target of `model.pkl` is evil when hashed, benign while scanned, evil again when
    the identity is re-checked: the stored result must not be the benign one under the evil
    digest (the cache must only store results for the bytes it scanned)."""
    store = tmp_path / "store"
    store.mkdir()
    evil = store / "evil.pkl"
    evil.write_bytes(_evil_bytes(tmp_path, canary))
    benign = store / "benign.pkl"
    benign.write_bytes(_clean_bytes())
    model = tmp_path / "model"
    model.mkdir()
    link = model / "model.pkl"
    link.symlink_to(evil)
    (model / "other.pkl").write_bytes(_clean_bytes())

    import modelguard.scanner as scanner_mod

    real_scan_file = scanner_mod.scan_file

    def racing_scan_file(path: Any, display: str, policy: Policy) -> Any:
        if os.fspath(path).endswith("model.pkl"):
            link.unlink()
            link.symlink_to(benign)  # the attacker flips the link after hashing
            try:
                return real_scan_file(path, display, policy)
            finally:
                link.unlink()
                link.symlink_to(evil)  # ... and back before the identity check
        return real_scan_file(path, display, policy)

    cache_dir = tmp_path / "cache"
    monkeypatch.setattr(scanner_mod, "scan_file", racing_scan_file)
    modelguard.scan(model, cache=cache_dir)  # the racing run
    monkeypatch.setattr(scanner_mod, "scan_file", real_scan_file)
    report = modelguard.scan(model, cache=cache_dir)  # the next, honest run
    assert report.verdict is Verdict.DANGEROUS, "the evil file reads as clean from the cache"


def test_file_rewritten_in_place_during_scan_is_not_cached(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evil when hashed, benign (same size, mtime restored) while scanned, evil again after."""
    evil_data = _evil_bytes(tmp_path, canary)
    benign_data = _clean_bytes()
    benign_data = benign_data.ljust(len(evil_data), b".")[: len(evil_data)]
    model = tmp_path / "model"
    model.mkdir()
    target = model / "model.pkl"
    target.write_bytes(evil_data)
    (model / "other.pkl").write_bytes(_clean_bytes())
    import modelguard.scanner as scanner_mod

    real_scan_file = scanner_mod.scan_file

    def racing(path: Any, display: str, policy: Policy) -> Any:
        if os.fspath(path).endswith("model.pkl"):
            st = os.stat(target)
            target.write_bytes(benign_data)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
            try:
                return real_scan_file(path, display, policy)
            finally:
                target.write_bytes(evil_data)
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        return real_scan_file(path, display, policy)

    cache_dir = tmp_path / "cache"
    monkeypatch.setattr(scanner_mod, "scan_file", racing)
    modelguard.scan(model, cache=cache_dir)
    monkeypatch.setattr(scanner_mod, "scan_file", real_scan_file)
    assert modelguard.scan(model, cache=cache_dir).verdict is Verdict.DANGEROUS


# --------------------------------------------------------------------------------------------
# 2. entries that make a malicious file read as clean


def test_same_content_under_other_names_is_flagged_every_time(tmp_path: Path, canary: Path) -> None:
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("a.pkl", "b.bin", "notes.txt", "weights"):
        (folder / name).write_bytes(data)
    cache_dir = tmp_path / "cache"
    for _ in range(2):
        report = modelguard.scan(folder, cache=cache_dir)
        by_path = {f.path.rsplit("/", 1)[-1]: f for f in report.files}
        for name in ("a.pkl", "b.bin", "notes.txt", "weights"):
            assert by_path[name].verdict is Verdict.DANGEROUS, name


def test_policy_change_invalidates(tmp_path: Path, canary: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(_evil_bytes(tmp_path, canary))
    cache_dir = tmp_path / "cache"
    relaxed = Policy(
        allow={"os:system": "test"},
        severity={},
    )
    modelguard.scan(folder, cache=cache_dir, policy=relaxed)
    assert modelguard.scan(folder, cache=cache_dir).verdict is Verdict.DANGEROUS
    from modelguard.results import Severity

    quiet = Policy(severity={"MG101": Severity.INFO})
    modelguard.scan(folder, cache=cache_dir, policy=quiet)
    assert modelguard.scan(folder, cache=cache_dir).verdict is Verdict.DANGEROUS
    small = Policy(limits=dataclasses.replace(Limits(), max_opcodes=1))
    modelguard.scan(folder, cache=cache_dir, policy=small)
    assert modelguard.scan(folder, cache=cache_dir).verdict is Verdict.DANGEROUS


def test_version_change_invalidates(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry written by another modelguard version is never used."""
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(data)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    _poison(cache_dir / CACHE_FILE, _sha(data), "model.pkl")  # 'clean' under this version
    os.chmod(cache_dir / CACHE_FILE, 0o600)
    import modelguard.cache as cache_mod

    monkeypatch.setattr(cache_mod, "__version__", "999.0.0")
    assert modelguard.scan(folder, cache=cache_dir).verdict is Verdict.DANGEROUS


@pytest.mark.parametrize(
    "stored",
    [
        # shapes a damaged or hand-edited database can hold: each must be a miss, not a crash
        {"size": 1, "formats": ["pickle"], "findings": [
            {"rule": "MG101", "severity": "critical", "message": "m", "location": [1],
             "evidence": []}]},
        {"size": 1, "formats": ["pickle"], "findings": [
            {"rule": "MG101", "severity": "critical", "message": "m", "location": "x",
             "evidence": []}]},
        {"size": 1, "formats": ["pickle"], "findings": [
            {"rule": "MG101", "severity": "critical", "message": "m",
             "location": {"members": [], "offset": 0}, "evidence": [["a", "b", "c"]]}]},
        {"size": 1, "formats": ["pickle"], "findings": [
            {"rule": "MG101", "severity": "bogus", "message": "m",
             "location": {"members": [], "offset": 0}, "evidence": []}]},
        {"size": 1, "formats": ["pickle"], "findings": [
            {"rule": "MG101", "severity": "critical", "message": "m",
             "location": {"members": [], "offset": 0}, "evidence": 5}]},
        {"size": 1, "formats": "pickle", "findings": []},
        [1, 2, 3],
        "not json {",
    ],
    ids=["loc-list", "loc-str", "evidence-triple", "bad-severity", "evidence-int",
         "formats-str", "list", "not-json"],
)  # fmt: skip
def test_hand_edited_or_corrupt_entry_is_a_miss_not_a_crash(
    stored: Any, tmp_path: Path, canary: Path
) -> None:
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(data)
    cache_dir = tmp_path / "cache"
    modelguard.scan(folder, cache=cache_dir)  # creates the database
    conn = sqlite3.connect(cache_dir / CACHE_FILE)
    text = stored if isinstance(stored, str) else json.dumps(stored)
    conn.execute("UPDATE results SET result = ?", (text,))
    conn.commit()
    conn.close()
    report = modelguard.scan(folder, cache=cache_dir)
    assert report.verdict is Verdict.DANGEROUS
    # and through the CLI: never an internal error
    assert main(["scan", "--no-progress", "-q", "--cache-dir", str(cache_dir), str(folder)]) == 1


@pytest.mark.parametrize("value", [None, 5, b"\x00\xff"], ids=["null", "int", "blob"])
def test_entry_of_a_foreign_schema_is_a_miss_not_a_crash(
    value: Any, tmp_path: Path, canary: Path
) -> None:
    """A database whose `results` table was made without the NOT NULL/TEXT constraints."""
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(data)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    conn = sqlite3.connect(cache_dir / CACHE_FILE)
    conn.execute(
        "CREATE TABLE results (digest, name, version, policy, result, stored, "
        "PRIMARY KEY (digest, name, version, policy)) WITHOUT ROWID"
    )
    conn.execute(
        "INSERT INTO results VALUES (?, ?, ?, ?, ?, 0)",
        (f"sha256:{_sha(data)}", "model.pkl", _key_version(), policy_digest(Policy()), value),
    )
    conn.commit()
    conn.close()
    os.chmod(cache_dir / CACHE_FILE, 0o600)
    report = modelguard.scan(folder, cache=cache_dir)
    assert report.verdict is Verdict.DANGEROUS


def test_corrupt_database_file_turns_cache_off(tmp_path: Path, canary: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(_evil_bytes(tmp_path, canary))
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    (cache_dir / CACHE_FILE).write_bytes(os.urandom(8192))
    report = modelguard.scan(folder, cache=cache_dir)
    assert report.verdict is Verdict.DANGEROUS
    assert any("result cache" in n for n in report.notes)


def test_world_writable_cache_folder_is_not_trusted(tmp_path: Path, canary: Path) -> None:
    """Anyone can plant entries in a world-writable folder (MODELGUARD_CACHE_DIR=/tmp/x)."""
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(data)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    _poison(shared / CACHE_FILE, _sha(data), "model.pkl")
    os.chmod(shared / CACHE_FILE, 0o666)
    report = modelguard.scan(folder, cache=shared)
    assert report.verdict is Verdict.DANGEROUS


def test_existing_cache_folder_left_world_writable_is_not_trusted(
    tmp_path: Path, canary: Path
) -> None:
    """The folder exists (0777) with the tool's own 0600 database, planted by someone else."""
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(data)
    shared = tmp_path / "shared"
    shared.mkdir()
    _poison(shared / CACHE_FILE, _sha(data), "model.pkl")
    os.chmod(shared / CACHE_FILE, 0o600)
    os.chown(shared / CACHE_FILE, 54321, 54321) if os.geteuid() == 0 else None
    os.chmod(shared, 0o777)
    assert modelguard.scan(folder, cache=shared).verdict is Verdict.DANGEROUS


def test_symlinked_database_file_to_a_foreign_db_is_not_trusted(
    tmp_path: Path, canary: Path
) -> None:
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(data)
    elsewhere = tmp_path / "public"
    elsewhere.mkdir()
    os.chmod(elsewhere, 0o777)
    _poison(elsewhere / "planted.sqlite3", _sha(data), "model.pkl")
    os.chmod(elsewhere / "planted.sqlite3", 0o666)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    (cache_dir / CACHE_FILE).symlink_to(elsewhere / "planted.sqlite3")
    assert modelguard.scan(folder, cache=cache_dir).verdict is Verdict.DANGEROUS


def test_symlinked_cache_dir_to_a_world_writable_folder_is_not_trusted(
    tmp_path: Path, canary: Path
) -> None:
    data = _evil_bytes(tmp_path, canary)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(data)
    public = tmp_path / "public"
    public.mkdir()
    _poison(public / CACHE_FILE, _sha(data), "model.pkl")
    os.chmod(public / CACHE_FILE, 0o666)
    os.chmod(public, 0o777)
    link = tmp_path / "cachelink"
    link.symlink_to(public, target_is_directory=True)
    assert modelguard.scan(folder, cache=link).verdict is Verdict.DANGEROUS


def test_cache_planted_inside_the_scanned_folder_is_not_trusted(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model repository ships `.cache/modelguard/results-v1.sqlite3`; a relative
    MODELGUARD_CACHE_DIR (or --cache-dir) run from inside the repository picks it up."""
    data = _evil_bytes(tmp_path, canary)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "model.pkl").write_bytes(data)
    planted = repo / ".cache" / "modelguard"
    _poison(planted / CACHE_FILE, _sha(data), "model.pkl")  # as cloned: 0644 / 0755
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MODELGUARD_CACHE_DIR", ".cache/modelguard")
    assert main(["scan", "--no-progress", "-q", "."]) == 1
    assert main(["scan", "--no-progress", "-q", "--cache-dir", str(planted), "."]) == 1


def test_cache_folder_inside_scanned_folder_gives_stable_reports(tmp_path: Path) -> None:
    """Putting the cache inside the scanned folder must not make the report (or exit code)
    change from run to run: its own database files are not model files."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(_clean_bytes())
    (folder / "other.pkl").write_bytes(_clean_bytes() + b"")
    cache_dir = folder / ".mgcache"
    first = modelguard.scan(folder, cache=cache_dir)
    second = modelguard.scan(folder, cache=cache_dir)
    third = modelguard.scan(folder, cache=cache_dir)
    assert (
        [f.path for f in first.files]
        == [f.path for f in second.files]
        == [f.path for f in third.files]
    )
    assert first.verdict is second.verdict is third.verdict is Verdict.SAFE


# --------------------------------------------------------------------------------------------
# 3. concurrency and unusable folders


def test_concurrent_runs_share_one_database(tmp_path: Path, canary: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    evil = _evil_bytes(tmp_path, canary)
    for i in range(12):
        (folder / f"clean{i:02}.pkl").write_bytes(pickle.dumps({"w": list(range(i))}, 4))
    (folder / "evil.pkl").write_bytes(evil)
    cache_dir = tmp_path / "cache"
    env = dict(os.environ)
    root = str(Path(modelguard.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "modelguard", "scan", "--no-progress", "--format", "json",
           "--cache-dir", str(cache_dir), str(folder)]  # fmt: skip
    for _ in range(2):
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(5)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 1, err.decode()
            assert b"internal error" not in err
        docs = [json.loads(out) for out, _ in outs]
        files = [sorted((f["path"], f.get("verdict")) for f in d["files"]) for d in docs]
        assert all(f == files[0] for f in files)


def test_cache_dir_under_a_regular_file(tmp_path: Path, canary: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(_evil_bytes(tmp_path, canary))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    report = modelguard.scan(folder, cache=blocker / "sub")
    assert report.verdict is Verdict.DANGEROUS
    assert any("result cache" in n for n in report.notes)
    assert main(["scan", "--no-progress", "-q", "--cache-dir", str(blocker), str(folder)]) == 1


def test_database_path_is_a_directory(tmp_path: Path, canary: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(_evil_bytes(tmp_path, canary))
    cache_dir = tmp_path / "cache"
    (cache_dir / CACHE_FILE).mkdir(parents=True)
    assert modelguard.scan(folder, cache=cache_dir).verdict is Verdict.DANGEROUS


def test_missing_nested_cache_folder_is_created_private(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(_clean_bytes())
    cache_dir = tmp_path / "a" / "b" / "c"
    with ResultCache(cache_dir) as cache:
        modelguard.scan(folder, cache=cache)
        assert cache.error is None
    assert (os.stat(cache_dir).st_mode & 0o077) == 0
    assert (os.stat(cache_dir / CACHE_FILE).st_mode & 0o077) == 0


# --------------------------------------------------------------------------------------------
# 4. --jobs: a worker that crashes or hangs, equality with serial, progress


def _fork_pool_factory(monkeypatch: pytest.MonkeyPatch, made: list[Any]) -> None:
    """Make `--jobs` use fork workers so that a monkeypatched scan_file reaches them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import modelguard.parallel as parallel_mod

    def fork_pool(jobs: int) -> Any:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
        made.append(pool)
        return pool

    monkeypatch.setattr(parallel_mod, "_local_pool", fork_pool)


def _mixed_folder(tmp_path: Path, canary: Path, *, fifo: bool = True) -> Path:
    folder = tmp_path / ("mixed" if fifo else "mixed-nofifo")
    folder.mkdir()
    for i in range(6):
        (folder / f"clean{i}.pkl").write_bytes(pickle.dumps({"w": [i] * (i + 1)}, 4))
    (folder / "evil.pkl").write_bytes(_evil_bytes(tmp_path, canary))
    (folder / "config.json").write_text('{"model_type": "toy"}\n')
    (folder / "README.md").write_text("# toy\n")
    (folder / "truncated.pkl").write_bytes(_clean_bytes()[:-3])  # incomplete or a finding
    (folder / "limit.pkl").write_bytes(pickle.dumps(list(range(3000)), 4))  # max_opcodes
    if fifo:
        os.mkfifo(folder / "pipe.bin")  # not a regular file: incomplete
    return folder


def _unblock_fifos(folder: Path) -> None:
    """Open every FIFO under `folder` for writing and close it: a reader blocked in open()
    then sees end-of-file (so a hung scan ends and the test can report it)."""
    for path in folder.rglob("*"):
        if path.is_fifo():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # no reader is waiting
            os.close(fd)


def _bounded(fn: Any, folder: Path, seconds: float = 5) -> Any:
    """Run `fn()`; fail (instead of hanging the suite) when it blocks on a FIFO of `folder`."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    while thread.is_alive():
        _unblock_fifos(folder)
        thread.join(0.2)
    assert not hung, f"the scan blocked for {seconds} s (opened a FIFO?)"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_fifo_in_folder_does_not_hang_a_cached_scan(tmp_path: Path) -> None:
    """The CLI caches by default: a FIFO in a scanned folder must be reported (not a regular
    file), never opened for reading (parallel._cheaper_than_hashing opens it and blocks)."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(_clean_bytes())
    os.mkfifo(folder / "pipe.bin")
    report = _bounded(lambda: modelguard.scan(folder, cache=tmp_path / "cache"), folder)
    assert report.verdict is Verdict.ERROR
    code = _bounded(lambda: main(["scan", "--no-progress", "-q", str(folder)]), folder)
    assert code == 2


def test_worker_crash_on_one_file_is_incomplete_never_safe(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for i in range(4):
        (folder / f"clean{i}.pkl").write_bytes(pickle.dumps({"w": [i]}, 4))
    (folder / "crash.pkl").write_bytes(_clean_bytes())
    import modelguard.scanner as scanner_mod

    real = scanner_mod.scan_file

    def crashing(path: Any, display: str, policy: Policy) -> Any:
        if os.fspath(path).endswith("crash.pkl"):
            os._exit(3)  # a native crash in the worker
        return real(path, display, policy)

    made: list[Any] = []
    _fork_pool_factory(monkeypatch, made)
    monkeypatch.setattr(scanner_mod, "scan_file", crashing)
    report = modelguard.scan(folder, jobs=2)
    by = {f.path.rsplit("/", 1)[-1]: f for f in report.files}
    assert not by["crash.pkl"].complete
    assert report.verdict is not Verdict.SAFE
    assert len(report.files) == 5
    assert main(["scan", "--no-progress", "-q", "--no-cache", "--jobs", "2", str(folder)]) == 2


def test_worker_crash_does_not_hide_a_malicious_file(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "crash.pkl").write_bytes(_clean_bytes())
    (folder / "evil.pkl").write_bytes(_evil_bytes(tmp_path, canary))
    import modelguard.scanner as scanner_mod

    real = scanner_mod.scan_file

    def crashing(path: Any, display: str, policy: Policy) -> Any:
        if os.fspath(path).endswith("crash.pkl"):
            os._exit(3)
        return real(path, display, policy)

    made: list[Any] = []
    _fork_pool_factory(monkeypatch, made)
    monkeypatch.setattr(scanner_mod, "scan_file", crashing)
    report = modelguard.scan(folder, jobs=2)
    by = {f.path.rsplit("/", 1)[-1]: f for f in report.files}
    assert by["evil.pkl"].verdict is not Verdict.SAFE
    assert report.verdict is not Verdict.SAFE


def test_worker_hang_on_one_file_does_not_hang_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker stuck on one file (a parser loop, a blocked read on a network mount) must
    not block `--jobs` forever: the file is reported incomplete after a time limit."""
    folder = tmp_path / "m"
    folder.mkdir()
    for i in range(3):
        (folder / f"clean{i}.pkl").write_bytes(pickle.dumps({"w": [i]}, 4))
    (folder / "hang.pkl").write_bytes(_clean_bytes())
    import modelguard.scanner as scanner_mod

    real = scanner_mod.scan_file

    def hanging(path: Any, display: str, policy: Policy) -> Any:
        if os.fspath(path).endswith("hang.pkl"):
            time.sleep(3600)
        return real(path, display, policy)

    made: list[Any] = []
    _fork_pool_factory(monkeypatch, made)
    monkeypatch.setattr(scanner_mod, "scan_file", hanging)
    timeouts = [f.name for f in dataclasses.fields(Limits) if "time" in f.name]
    limits = dataclasses.replace(Limits(), **dict.fromkeys(timeouts, 2))
    policy = Policy(limits=limits)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["report"] = modelguard.scan(folder, jobs=2, policy=policy)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(6)
    finished = not thread.is_alive()
    # clean up the workers this test started (by pid), so the thread can end
    for pool in made:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            if proc.is_alive():
                os.kill(proc.pid, 9)
    thread.join(10)
    assert timeouts, "Limits has no time limit for one file: a hung worker blocks --jobs"
    assert finished, "scan(jobs=2) still running after 6 s with one hung worker"
    report = box["report"]
    by = {f.path.rsplit("/", 1)[-1]: f for f in report.files}
    assert not by["hang.pkl"].complete
    assert report.verdict is not Verdict.SAFE


def _json(report: Any) -> Any:
    doc = json.loads(render(report, OutputFormat.JSON))
    doc.pop("duration", None)
    return doc


def test_jobs_report_equals_serial_on_a_mixed_folder(tmp_path: Path, canary: Path) -> None:
    small = Policy(limits=dataclasses.replace(Limits(), max_opcodes=2000))
    folder = _mixed_folder(tmp_path, canary)
    serial = _json(modelguard.scan(folder, policy=small))
    parallel = _json(modelguard.scan(folder, jobs=2, policy=small))
    assert parallel == serial
    assert "incomplete" in json.dumps(serial) or "MG003" in json.dumps(serial)
    folder = _mixed_folder(tmp_path, canary, fifo=False)  # a FIFO hangs cached scans (above)
    serial = _json(modelguard.scan(folder, policy=small))
    cached_dir = tmp_path / "cache"
    first = _json(modelguard.scan(folder, jobs=2, cache=cached_dir, policy=small))
    second = _json(modelguard.scan(folder, jobs=2, cache=cached_dir, policy=small))
    assert first == serial
    assert second == serial


def test_jobs_cli_output_equals_serial(
    tmp_path: Path, canary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _mixed_folder(tmp_path, canary, fifo=False)  # a FIFO hangs cached scans (above)
    outs = []
    for extra in ([], ["--jobs", "2", "--no-cache"], ["--jobs", "2"], ["--jobs", "2"]):
        capsys.readouterr()
        argv = ["scan", "--no-progress", "-q", "--format", "json", *extra, str(folder)]
        code = _bounded(lambda argv=argv: main(argv), folder)
        outs.append((code, json.loads(capsys.readouterr().out)))
    for code, doc in outs:
        doc.pop("duration", None)
        assert code == 1
    assert all(doc == outs[0][1] for _, doc in outs)


def test_progress_under_jobs(tmp_path: Path, canary: Path) -> None:
    folder = _mixed_folder(tmp_path, canary, fifo=False)
    calls: list[tuple[int, int | None, str]] = []
    report = modelguard.scan(folder, jobs=2, progress=lambda d, t, p: calls.append((d, t, p)))
    shown = {f.path for f in report.files}
    assert calls
    totals = {t for _, t, _ in calls}
    assert totals == {len(shown)}
    dones = [d for d, _, _ in calls]
    assert dones == sorted(dones) and dones[-1] <= len(shown)
    assert shown <= {p for _, _, p in calls}, "every file shows up in the progress"
    # with the cache, the progress path is a file path (or empty), never a made-up label
    calls.clear()
    _bounded(
        lambda: modelguard.scan(
            folder, jobs=2, cache=tmp_path / "c", progress=lambda d, t, p: calls.append((d, t, p))
        ),
        folder,
    )
    assert {p for _, _, p in calls if p} <= shown
