"""The result cache: per-file scan results kept in SQLite, keyed by what the file contains.

A re-scan of an unchanged model registry then costs one hash per file instead of an analysis.
The key is (content digest, file name, modelguard version, policy digest): the analysis of a file
depends only on its bytes, its name (the extension check, names such as ``saved_model.pb``), the
scanner version and the policy. Results that depend on anything else are never stored:

* incomplete results (a limit, a read error, a worker failure): the next run must retry them;
* JSON documents and ONNX models: their analysis reads files beside them (the code a
  ``config.json`` names, the shards of an index, ONNX external data), which the key cannot see.

Values are the `FileResult` as JSON (never pickle); on a hit the result is re-labelled to the
current display path. The database lives in the user cache folder (`default_cache_dir`), in WAL
mode with a busy timeout, so concurrent runs share it. Any problem with the cache folder or
file (missing, read-only, corrupt, locked for too long) turns the cache off for the run: the
scan goes on without it and `ResultCache.error` says why; so does a damaged entry (a miss).

The cache trusts its own folder: whoever can write there can change results. So the folder is
created private (0700) and the database file 0600, and a cache is not used (the scan goes on
without it, with a note) when, on POSIX systems, its folder (a symlink is judged by its target)
or database is not owned by the current user or is group- or world-writable, when the database
is a symbolic link, when ``MODELGUARD_CACHE_DIR`` is a relative path, or when the folder lies
inside a scanned folder (or a scanned path lies inside it). The cache's own files are never
scanned. A result is stored only when the bytes the scan read are the bytes that were hashed
(same device, inode, size and times on both descriptors).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modelguard._version import __version__
from modelguard.formats.blob import FileBlob
from modelguard.formats.sniff import GGUF_MAGIC, HDF5_MAGIC
from modelguard.results import FileResult, Finding, Location, Severity

if TYPE_CHECKING:
    import sqlite3

    from modelguard.policy import Policy

__all__ = [
    "CACHE_FILE",
    "ResultCache",
    "UntrustedCacheError",
    "cacheable",
    "default_cache_dir",
    "needs_hash",
    "policy_digest",
    "result_from_dict",
    "result_to_dict",
]

#: The database file inside the cache folder.
CACHE_FILE = "results-v1.sqlite3"
#: Part of every key: bump when the stored JSON changes shape.
_SCHEMA = "1"
_BUSY_TIMEOUT_MS = 10_000
# Suffixes of the files SQLite keeps beside the database.
_COMPANIONS = frozenset({"", "-wal", "-shm", "-journal"})
# Results of these formats depend on files beside the scanned one (see the module docstring).
_CONTEXT_FORMATS = frozenset({"json"})
_CONTEXT_PREFIXES = ("onnx",)
_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS results (
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    policy TEXT NOT NULL,
    result TEXT NOT NULL,
    stored REAL NOT NULL,
    PRIMARY KEY (digest, name, version, policy)
) WITHOUT ROWID
"""


def default_cache_dir() -> Path:
    """Return the folder of the result cache.

    ``MODELGUARD_CACHE_DIR`` when set (a relative value is returned as is; `ResultCache`
    refuses it); else the platform's user cache folder: on Linux and
    other POSIX systems ``$XDG_CACHE_HOME/modelguard`` (default ``~/.cache/modelguard``), on
    macOS ``~/Library/Caches/modelguard``, on Windows ``%LOCALAPPDATA%\\modelguard\\Cache``.
    """
    explicit = os.environ.get("MODELGUARD_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / "modelguard" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "modelguard"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "modelguard"


def policy_digest(policy: Policy) -> str:
    """Return the part of the key that stands for the policy: `Policy.digest()`.

    It covers what can change one file's result (allowlists, severity overrides, limits,
    indicator settings), not what only gates the report (``fail_on``, suppressions), so
    changing those keeps the cache.
    """
    return policy.digest()


def cacheable(result: FileResult) -> bool:
    """Return True when `result` may be stored: complete, and made from the file alone."""
    if result.incomplete:
        return False
    return not any(f in _CONTEXT_FORMATS or f.startswith(_CONTEXT_PREFIXES) for f in result.formats)


def _location_to_dict(loc: Location, display: str) -> dict[str, Any]:
    out: dict[str, Any] = {"members": list(loc.members), "offset": loc.offset}
    if loc.path != display:
        out["path"] = loc.path
    return out


def _location_from_dict(doc: Mapping[str, Any], display: str) -> Location:
    if not isinstance(doc, dict):
        raise ValueError("bad location")
    path = doc.get("path", display)
    members = doc["members"]
    offset = doc["offset"]
    if not isinstance(path, str) or not isinstance(members, list):
        raise ValueError("bad location")
    if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool)):
        raise ValueError("bad offset")
    if not all(isinstance(m, str) for m in members):
        raise ValueError("bad members")
    return Location(path, tuple(members), offset)


def result_to_dict(result: FileResult) -> dict[str, Any]:
    """Return a complete `result` as JSON-ready data, locations relative to its own path.

    Raises:
        ValueError: the result is incomplete (incomplete results are never stored).
    """
    if result.incomplete:
        raise ValueError("incomplete results are not stored")
    return {
        "size": result.size,
        "formats": list(result.formats),
        "findings": [
            {
                "rule": f.rule_id,
                "severity": f.severity.value,
                "message": f.message,
                "location": _location_to_dict(f.location, result.path),
                "evidence": [list(pair) for pair in f.evidence],
            }
            for f in result.findings
        ],
    }


def result_from_dict(doc: Mapping[str, Any], display: str) -> FileResult:
    """Rebuild a result stored by `result_to_dict`, labelled `display`.

    Findings located in the stored file are moved to `display`.

    Raises:
        ValueError: the data is not a stored result (a miss for the caller).
    """
    try:
        if not isinstance(doc, dict):
            raise ValueError("bad result")
        size = doc["size"]
        formats = doc["formats"]
        if not isinstance(size, int) or not isinstance(formats, list):
            raise ValueError("bad result")
        if not isinstance(doc["findings"], list):
            raise ValueError("bad findings")
        findings = []
        for raw in doc["findings"]:
            pairs = raw["evidence"]
            if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in pairs
            ):
                raise ValueError("bad evidence")
            evidence = tuple((k, v) for k, v in pairs)
            message = raw["message"]
            rule = raw["rule"]
            if not isinstance(message, str) or not isinstance(rule, str):
                raise ValueError("bad finding")
            findings.append(
                Finding(
                    rule,
                    Severity(raw["severity"]),
                    message,
                    _location_from_dict(raw["location"], display),
                    evidence,
                )
            )
        if not all(isinstance(f, str) for f in formats):
            raise ValueError("bad formats")
        return FileResult(display, size, tuple(formats), tuple(findings), ())
    except ValueError:
        raise
    except Exception as exc:  # any shape a damaged or hand-edited entry can have: a miss
        raise ValueError(f"not a stored result: {type(exc).__name__}: {exc}") from exc


class UntrustedCacheError(OSError):
    """The cache folder or database may have been written by someone else."""


def _check_private(st: os.stat_result, what: str, path: Path) -> None:
    """Raise `UntrustedCacheError` unless `st` is owned by this user and not writable by others.

    POSIX only: on Windows the folder's ACLs decide and nothing is checked here.
    """
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:
        return
    if st.st_uid != geteuid():
        raise UntrustedCacheError(f"the {what} {path} is owned by another user (uid {st.st_uid})")
    if st.st_mode & 0o022:
        raise UntrustedCacheError(
            f"the {what} {path} is group- or world-writable (mode {st.st_mode & 0o777:o})"
        )


def _private_file(path: Path) -> None:
    """Create `path` (mode 0600) if missing, so that SQLite never creates it wider, and check
    that it is a regular file (never a symbolic link) that this user alone can write."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)
    if os.path.islink(path):
        raise UntrustedCacheError(f"the cache database {path} is a symbolic link")
    fd = os.open(path, flags, 0o600)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UntrustedCacheError(f"the cache database {path} is not a regular file")
    _check_private(st, "cache database", path)


class ResultCache:
    """Scan results stored by content digest (see the module docstring).

    Opened lazily on first use; every method is safe to call when the cache is unusable (it
    then does nothing and `error` says why). Use as a context manager or call `close`.

    Attributes:
        directory: the cache folder.
        error: why the cache was turned off, or None while it works.
        hits: lookups answered from the cache in this session.
        misses: lookups not answered.
        stored: results written.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        """Create a cache over `directory` (default: `default_cache_dir`); nothing is opened."""
        self.error: str | None = None
        if directory is not None:
            self.directory = Path(directory).expanduser().absolute()
        else:
            self.directory = default_cache_dir()
            if not self.directory.is_absolute():  # would follow the working directory
                self.error = (
                    f"MODELGUARD_CACHE_DIR is a relative path ({self.directory}); "
                    "give an absolute one"
                )
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self._conn: sqlite3.Connection | None = None

    @property
    def path(self) -> Path:
        """Return the database file."""
        return self.directory / CACHE_FILE

    @property
    def enabled(self) -> bool:
        """Return False once the cache has been turned off by an error."""
        return self.error is None

    def overlap(self, targets: Iterable[str | os.PathLike[str]]) -> str | None:
        """Return the first target that holds the cache folder (or lies in it), else None.

        Compared by real paths: a cache inside a scanned folder could have been shipped with
        it, and a scan of the cache's own folder would change it while reading it.
        """
        mine = os.path.realpath(self.directory)
        for target in targets:
            real = os.path.realpath(target)
            try:
                common = os.path.commonpath([mine, real])
            except ValueError:  # Windows: on another drive
                continue
            if common in (mine, real):
                return os.fspath(target)
        return None

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Return True when `path` is the cache database or one of its companion files."""
        name = os.path.basename(path)
        if not name.startswith(CACHE_FILE) or name[len(CACHE_FILE) :] not in _COMPANIONS:
            return False
        parent = os.path.dirname(os.path.realpath(path))
        return parent == os.path.realpath(self.directory)

    def _fail(self, what: str, exc: BaseException) -> None:
        self.error = f"{what}: {exc}"
        self.close()

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None or self.error is not None:
            return self._conn
        import sqlite3

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_private(os.stat(self.directory), "cache folder", self.directory)
            _private_file(self.path)
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_SCHEMA_SQL)
            except BaseException:
                conn.close()
                raise
        except (OSError, sqlite3.Error) as exc:
            self._fail(f"cannot open the result cache {self.path}", exc)
            return None
        self._conn = conn
        return conn

    def open(self) -> bool:
        """Open the database now; return False (and set `error`) when it cannot be used."""
        return self._connect() is not None

    def get_many(
        self, keys: Sequence[tuple[str, str]], policy_key: str, displays: Sequence[str]
    ) -> list[FileResult | None]:
        """Look up results; one answer per key, relabelled to the matching display path.

        Args:
            keys: (content digest, file name) per file.
            policy_key: `policy_digest` of the scan's policy.
            displays: the display path of each file.

        Returns:
            The stored result, or None on a miss (or when the cache is off).
        """
        out: list[FileResult | None] = [None] * len(keys)
        conn = self._connect()
        if conn is None:
            self.misses += len(keys)
            return out
        import sqlite3

        version = _key_version()
        try:
            for index, ((digest, name), display) in enumerate(zip(keys, displays, strict=True)):
                row = conn.execute(
                    "SELECT result FROM results "
                    "WHERE digest = ? AND name = ? AND version = ? AND policy = ?",
                    (digest, name, version, policy_key),
                ).fetchone()
                if row is None:
                    continue
                try:
                    if not isinstance(row[0], str):
                        raise ValueError("not text")
                    out[index] = result_from_dict(json.loads(row[0]), display)
                except Exception:  # a damaged entry is a miss; the fresh result replaces it
                    continue
        except sqlite3.Error as exc:
            self._fail("result cache read failed", exc)
            out = [None] * len(keys)
        found = sum(r is not None for r in out)
        self.hits += found
        self.misses += len(keys) - found
        return out

    def put_many(
        self, items: Iterable[tuple[tuple[str, str], FileResult]], policy_key: str
    ) -> None:
        """Store results (those `cacheable` says may be stored) in one transaction.

        Args:
            items: ((content digest, file name), result) pairs.
            policy_key: `policy_digest` of the scan's policy.
        """
        version = _key_version()
        now = time.time()
        rows = [
            (digest, name, version, policy_key, json.dumps(result_to_dict(res)), now)
            for (digest, name), res in items
            if cacheable(res)
        ]
        if not rows:
            return
        conn = self._connect()
        if conn is None:
            return
        import sqlite3

        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._fail("result cache write failed", exc)
            return
        self.stored += len(rows)

    def clear(self) -> None:
        """Delete every stored result."""
        conn = self._connect()
        if conn is None:
            return
        import sqlite3

        try:
            conn.execute("DELETE FROM results")
        except sqlite3.Error as exc:
            self._fail("result cache clear failed", exc)

    def close(self) -> None:
        """Close the database (the cache reopens on next use unless it was turned off)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing must never fail a scan
                conn.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _key_version() -> str:
    return f"{__version__}+cache{_SCHEMA}"


# Zip archives (PyTorch checkpoints, .keras) and NumPy arrays are read by seeking: the scan
# reads the directory, the pickles and the headers, not the tensor data. From this size on,
# hashing every byte costs more than scanning them again.
_SEEKING_MIN = 8 * 1024 * 1024
_SEEKING_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")
# HDF5 metadata is read in a subprocess (tens of milliseconds): worth caching up to here.
_HDF5_MIN = 256 * 1024 * 1024
# Nothing bigger is hashed: a pickle-headed file this large is nearly always a legacy PyTorch
# or joblib file whose scan reads the pickles and skips the tensor bytes (hashing a 1 GB legacy
# checkpoint took 0.5 s against 0.08 s for its scan).
_HASH_MAX = 64 * 1024 * 1024


def needs_hash(path: str) -> bool:
    """Return True when `path` goes through the cache: a regular file that is not cheaper to
    scan than to hash.

    Anything but a regular file is never opened here (a FIFO would block, a device could
    never end): the scan reports it. Safetensors and GGUF files, large zip archives, NumPy
    arrays and HDF5 files, and any file from 64 MiB, are scanned directly, never through the
    cache: their scan seeks to the headers and the pickles, a hash reads every byte (always
    correct: the cache is only a shortcut).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with FileBlob.open(path) as blob:  # non-blocking: a path swapped for a FIFO
            info = blob.stat()
            if not stat.S_ISREG(info.st_mode):
                return False
            head = blob.read(0, 9)
    except OSError:
        return False
    if head.startswith(GGUF_MAGIC) or info.st_size >= _HASH_MAX:
        return False
    if info.st_size >= _SEEKING_MIN and head.startswith(_SEEKING_MAGICS):
        return False
    if info.st_size >= _HDF5_MIN and head.startswith(HDF5_MAGIC[:8]):
        return False
    cheap = len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") >= 2
    return not cheap
