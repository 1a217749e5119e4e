#!/usr/bin/env python3
"""Side-by-side scan benchmark: ``modelguard scan`` against ``picklescan``.

Follows the method of ``research/performance.md``:

* every figure is one whole, fresh process (start-up and imports included), stdin empty,
  output to files;
* wall time is ``time.perf_counter`` around the child; CPU (user + sys) comes from
  ``os.wait4`` on that child; peak RSS comes from GNU ``/usr/bin/time`` (``%M``) when it is
  available, else from ``os.wait4``'s ``ru_maxrss`` (see ``--rss-source``);
* tools run in interleaved rounds, the order rotated by one each round; the A200/A pair shares
  its rounds, so their ratio is paired too;
* each input's files are read once before its first round (warm page cache);
* ratios are medians of per-round paired ratios;
* ``--cold`` adds a "bytes touched" pass: evict our fixture files with
  ``posix_fadvise(DONTNEED)``, run the tool once, count resident pages with ``mincore``.

Fixtures are built by a child process (the only place that imports torch, numpy and
scikit-learn), so the measuring process stays small. Run ``--help`` for the options and
``benchmarks/README.md`` for the targets.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import io
import json
import mmap
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Bump when the fixture recipe changes, so that a reused ``--workdir`` is rebuilt.
FIXTURE_FORMAT = 2
SEED = 20261127
MIB = 1024 * 1024
#: Large tensors are (rows, LARGE_COLS) float32.
LARGE_COLS = 4096
N_LAYERS = 62  # 62 layers x 8 small tensors = 496 small tensors, plus 4 large = 500
D_DIRS = 20
READ_CHUNK = MIB  # small: in --rss-source wait4 mode our own RSS is every reading's floor

INPUT_KEYS = ("S", "A200", "A", "B", "D")
#: Inputs measured in the same rounds (their ratio is paired per round).
GROUPS: tuple[tuple[str, ...], ...] = (("S",), ("A200", "A"), ("B",), ("D",))
TOOL_NAMES = ("modelguard", "picklescan")

DEFAULT_MODELGUARD_CMD = "modelguard scan --format json --output {out}"
DEFAULT_PICKLESCAN_CMD = "picklescan -p {path}"

# Targets (see README.md). Gating ones decide PASS/FAIL and the --check exit code.
TARGET_RATIO_VS_PICKLESCAN = 1.0
TARGET_BIG_SMALL = 1.1
TARGET_RSS_MB = 64.0
TARGET_VERSION_S = 0.15
# Stretch goals from research/performance.md section 5: printed as information only.
STRETCH_RATIO_ZIP = 0.8
STRETCH_RSS_MB = 40.0
STRETCH_MARGINAL_MS = 0.8
STRETCH_VERSION_VS_PYTHON = 2.0
STRETCH_COLD_EXTRA_BYTES = 1_000_000


class BenchError(Exception):
    """A setup problem (missing tool, failed preflight or build): reported, exit status 2."""


# --------------------------------------------------------------------------------------------
# Scales and fixtures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """Sizes of one fixture set.

    Attributes:
        name: "full" or "quick"; also names the fixture folder.
        a_bytes: bytes of the 4 large tensors in A (A200 gets a tenth).
        b_bytes: bytes of the 4 large tensors in B (legacy format).
        d_files: number of files in D, spread over ``D_DIRS`` sub-folders.
        rounds: default number of interleaved rounds.
    """

    name: str
    a_bytes: int
    b_bytes: int
    d_files: int
    rounds: int


SCALES = {
    "full": Scale("full", a_bytes=2_000_000_000, b_bytes=1_000_000_000, d_files=2000, rounds=3),
    "quick": Scale("quick", a_bytes=20_000_000, b_bytes=10_000_000, d_files=200, rounds=1),
}


@dataclass(frozen=True)
class Fixture:
    """One built input.

    Attributes:
        key: input id (S, A200, A, B, D).
        path: file or folder passed to the tools.
        files: the regular files it consists of.
        nbytes: total size of ``files``.
        pickle_bytes: size of the pickle member(s) when known (``data.pkl`` of a torch zip).
    """

    key: str
    path: Path
    files: tuple[Path, ...]
    nbytes: int
    pickle_bytes: int | None


def _large_rows(total_bytes: int) -> int:
    """Rows of each of the 4 large (rows, LARGE_COLS) float32 tensors for ``total_bytes``."""
    return max(1, total_bytes // (4 * 4 * LARGE_COLS))


def _fixture_spec() -> dict[str, str]:
    """Relative path of each input inside the fixture folder."""
    return {"S": "S.pkl", "A200": "A200.pt", "A": "A.pt", "B": "B.pt", "D": "D"}


def _list_files(path: Path) -> tuple[Path, ...]:
    """All regular files of ``path`` (itself if it is a file), sorted."""
    if path.is_file():
        return (path,)
    return tuple(sorted(p for p in path.rglob("*") if p.is_file()))


def _fsync_files(paths: Iterable[Path]) -> None:
    """Flush written pages so that ``POSIX_FADV_DONTNEED`` can evict them later (``--cold``)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _build_fixtures_child(fixture_dir: Path, scale: Scale, keys: Sequence[str]) -> None:
    """Build the requested inputs (runs in a child process; imports torch, numpy, sklearn).

    Each input is written under a temporary name and renamed when complete; the manifest is
    updated after each one, so an interrupted build resumes cleanly. Peak memory is about
    ``scale.a_bytes`` plus the interpreter (the largest state_dict held at once).
    """
    import pickle
    import zipfile

    import numpy as np
    import torch

    fixture_dir.mkdir(parents=True, exist_ok=True)
    spec = _fixture_spec()
    manifest_path = fixture_dir / "manifest.json"

    def log(msg: str) -> None:
        print(f"[build] {msg}", file=sys.stderr, flush=True)

    def state_dict(large_total: int, seed: int) -> OrderedDict[str, torch.Tensor]:
        """500 tensors: 4 large (rows, 4096) float32 + 62 layers x 8 small ones.

        Shaped like ``nn.Module.state_dict()``: an OrderedDict carrying ``_metadata`` (one
        ``{"version": 1}`` per module), which torch pickles with a BUILD opcode.
        """
        gen = torch.Generator().manual_seed(seed)
        rows = _large_rows(large_total)

        def large() -> torch.Tensor:
            # Tile a 64-row random block: deterministic, non-zero, memory-bandwidth speed.
            t = torch.empty((rows, LARGE_COLS), dtype=torch.float32)
            block = torch.rand((min(64, rows), LARGE_COLS), generator=gen)
            for start in range(0, rows, block.shape[0]):
                n = min(block.shape[0], rows - start)
                t[start : start + n].copy_(block[:n])
            return t

        def small(*shape: int) -> torch.Tensor:
            return torch.randn(shape, generator=gen)

        sd: OrderedDict[str, torch.Tensor] = OrderedDict()
        sd["model.embed_tokens.weight"] = large()
        for i in range(N_LAYERS):
            p = f"model.layers.{i}."
            sd[p + "input_layernorm.weight"] = small(256)
            sd[p + "self_attn.q_proj.bias"] = small(256)
            sd[p + "self_attn.k_proj.bias"] = small(64)
            sd[p + "self_attn.v_proj.bias"] = small(64)
            sd[p + "self_attn.o_proj.bias"] = small(256)
            sd[p + "post_attention_layernorm.weight"] = small(256)
            sd[p + "mlp.router.weight"] = small(8, 64)
            sd[p + "mlp.down_proj.bias"] = small(256)
            if i == 0:
                sd[p + "mlp.up_proj.weight"] = large()
                sd[p + "mlp.down_proj.weight"] = large()
        sd["lm_head.weight"] = large()
        assert len(sd) == 500
        modules: dict[str, dict[str, int]] = {"": {"version": 1}}
        for name in sd:
            parts = name.split(".")[:-1]
            for depth in range(1, len(parts) + 1):
                modules.setdefault(".".join(parts[:depth]), {"version": 1})
        sd._metadata = OrderedDict(modules)  # type: ignore[attr-defined]
        return sd

    def build_s(dst: Path) -> None:
        dst.write_bytes(pickle.dumps({"name": "tiny", "values": [1, 2, 3]}, protocol=2))

    def build_zip(dst: Path, large_total: int) -> None:
        sd = state_dict(large_total, SEED)
        torch.save(sd, dst)

    def build_legacy(dst: Path) -> None:
        sd = state_dict(scale.b_bytes, SEED + 1)
        torch.save(sd, dst, _use_new_zipfile_serialization=False)

    def build_d(dst: Path) -> None:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.tree import DecisionTreeClassifier

        gen = torch.Generator().manual_seed(SEED + 2)
        rng = np.random.default_rng(SEED + 3)
        per_dir = scale.d_files // D_DIRS
        n_pkl = 0
        for d in range(D_DIRS):
            sub = dst / f"part{d:02d}"
            sub.mkdir(parents=True)
            for j in range(per_dir):
                idx = d * per_dir + j
                if j % 2 == 0:
                    sd = {
                        "conv.weight": torch.randn((8, 4, 3, 3), generator=gen),
                        "conv.bias": torch.randn((8,), generator=gen),
                        "bn.weight": torch.randn((8,), generator=gen),
                        "bn.bias": torch.randn((8,), generator=gen),
                        "bn.running_mean": torch.randn((8,), generator=gen),
                        "bn.running_var": torch.rand((8,), generator=gen),
                        "fc.weight": torch.randn((10, 8), generator=gen),
                        "fc.bias": torch.randn((10,), generator=gen),
                    }
                    torch.save(sd, sub / f"model_{idx:04d}.pt")
                    continue
                obj: object
                if n_pkl % 2 == 0:
                    x = rng.standard_normal((40, 4))
                    y = (x[:, 0] + 0.3 * rng.standard_normal(40) > 0).astype(np.int64)
                    kind = (n_pkl // 2) % 5
                    if kind == 0:
                        obj = LogisticRegression(max_iter=200).fit(x, y)
                    elif kind == 1:
                        obj = StandardScaler().fit(x)
                    elif kind == 2:
                        obj = PCA(n_components=2, random_state=idx).fit(x)
                    elif kind == 3:
                        obj = DecisionTreeClassifier(max_depth=3, random_state=idx).fit(x, y)
                    else:
                        obj = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
                    name = f"estimator_{idx:04d}.pkl"
                else:
                    obj = {
                        "weights": rng.standard_normal((16, 8)).astype(np.float32),
                        "bias": rng.standard_normal(8).astype(np.float32),
                        "running_mean": rng.standard_normal(8),
                        "steps": int(idx),
                        "name": f"layer{idx}",
                    }
                    name = f"arrays_{idx:04d}.pkl"
                with open(sub / name, "wb") as f:
                    pickle.dump(obj, f)
                n_pkl += 1

    builders: dict[str, Callable[[Path], None]] = {
        "S": build_s,
        "A200": lambda dst: build_zip(dst, scale.a_bytes // 10),
        "A": lambda dst: build_zip(dst, scale.a_bytes),
        "B": build_legacy,
        "D": build_d,
    }
    manifest = _read_manifest(manifest_path, scale) or {
        "format": FIXTURE_FORMAT,
        "scale": scale.name,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "fixtures": {},
    }
    for key in keys:
        final = fixture_dir / spec[key]
        tmp = fixture_dir / (spec[key] + ".partial")
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        t0 = time.perf_counter()
        builders[key](tmp)
        files = _list_files(tmp)
        _fsync_files(files)
        tmp.rename(final)
        files = _list_files(final)
        pickle_bytes = None
        if key in ("A", "A200"):
            with zipfile.ZipFile(final) as zf:
                pickle_bytes = sum(
                    i.file_size for i in zf.infolist() if i.filename.endswith("data.pkl")
                )
        nbytes = sum(p.stat().st_size for p in files)
        manifest["fixtures"][key] = {
            "path": spec[key],
            "files": len(files),
            "bytes": nbytes,
            "pickle_bytes": pickle_bytes,
        }
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        elapsed = time.perf_counter() - t0
        log(f"{key}: {nbytes / 1e6:,.1f} MB in {len(files)} file(s), {elapsed:.1f} s")


def _read_manifest(path: Path, scale: Scale) -> dict[str, Any] | None:
    """The manifest at ``path`` if it matches this recipe version and scale, else None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("format") != FIXTURE_FORMAT or data.get("scale") != scale.name:
        return None
    return data


def ensure_fixtures(workdir: Path, scale: Scale, keys: Sequence[str]) -> dict[str, Fixture]:
    """Reuse or build the inputs ``keys`` under ``workdir/fixtures-<scale>/``.

    Building runs in a child Python (``sys.executable``) so that torch never enters the
    measuring process. Raises ``BenchError`` if the build fails.
    """
    fixture_dir = workdir / f"fixtures-{scale.name}"
    manifest_path = fixture_dir / "manifest.json"

    def usable(manifest: dict[str, Any] | None) -> dict[str, Fixture]:
        out: dict[str, Fixture] = {}
        if manifest is None:
            return out
        entries = manifest.get("fixtures", {})
        assert isinstance(entries, dict)
        for key, entry in entries.items():
            path = fixture_dir / entry["path"]
            if not path.exists():
                continue
            files = _list_files(path)
            nbytes = sum(p.stat().st_size for p in files)
            if len(files) != entry["files"] or nbytes != entry["bytes"]:
                continue
            out[key] = Fixture(key, path, files, nbytes, entry.get("pickle_bytes"))
        return out

    have = usable(_read_manifest(manifest_path, scale))
    missing = [k for k in keys if k not in have]
    if missing:
        print(
            f"building fixtures {', '.join(missing)} ({scale.name}) in {fixture_dir} ...",
            file=sys.stderr,
            flush=True,
        )
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_build",
            str(fixture_dir),
            "--scale",
            scale.name,
            "--inputs",
            ",".join(missing),
        ]
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False).returncode
        if rc != 0:
            raise BenchError(f"fixture build failed (exit {rc}); see the messages above")
        print(f"fixtures built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        have = usable(_read_manifest(manifest_path, scale))
    missing = [k for k in keys if k not in have]
    if missing:
        raise BenchError(f"fixtures {missing} missing after the build")
    return {k: have[k] for k in keys}


# --------------------------------------------------------------------------------------------
# Page cache: warming, eviction, residency
# --------------------------------------------------------------------------------------------


def warm_cache(files: Iterable[Path]) -> None:
    """Read every file once so that the measured runs see a warm page cache."""
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(view):
                pass


def evict(files: Iterable[Path]) -> None:
    """Drop our own fixture files from the page cache (``POSIX_FADV_DONTNEED``)."""
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Mincore:
    """Counts page-cache-resident bytes of a file: ``mmap`` + ``mincore`` through ctypes.

    The mapping is never touched, so counting does not fault pages in.
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.restype = ctypes.c_int
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self._libc = libc
        self._page = mmap.PAGESIZE
        self._failed = ctypes.c_void_p(-1).value
        # mincore only defines the lowest bit of each byte.
        self._lowbit = bytes(b & 1 for b in range(256))

    def resident_bytes(self, path: Path) -> int:
        """Bytes of ``path`` in the page cache (whole pages, capped at the file size)."""
        size = path.stat().st_size
        if size == 0:
            return 0
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = self._libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr is None or addr == self._failed:
                err = ctypes.get_errno()
                raise OSError(err, f"mmap failed: {os.strerror(err)}", str(path))
            try:
                npages = (size + self._page - 1) // self._page
                vec = ctypes.create_string_buffer(npages)
                if self._libc.mincore(addr, size, vec) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"mincore failed: {os.strerror(err)}", str(path))
                pages = vec.raw[:npages].translate(self._lowbit).count(1)
            finally:
                self._libc.munmap(addr, size)
        finally:
            os.close(fd)
        return min(pages * self._page, size)

    def total(self, files: Iterable[Path]) -> int:
        """Sum of :meth:`resident_bytes` over ``files``."""
        return sum(self.resident_bytes(p) for p in files)


# --------------------------------------------------------------------------------------------
# Running tools
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One measured process.

    Attributes:
        wall_s: ``perf_counter`` around spawn .. reap.
        cpu_s: user + sys of the child (and its children), from ``os.wait4``.
        rss_mb: peak RSS in MiB (GNU time ``%M``, or ``wait4``'s ``ru_maxrss``).
        rc: exit code (negative: killed by that signal).
        report_bytes: size of the ``{out}`` report, if the command has one.
        report_complete: the report's top-level ``"complete"`` flag, if it is a JSON object
            that has one (read after the timed window). An exit status of 1 (blocking
            finding) wins over 2 (incomplete), so the flag is the only sign of a partial scan.
    """

    wall_s: float
    cpu_s: float
    rss_mb: float
    rc: int
    report_bytes: int | None = None
    report_complete: bool | None = None


class Runner:
    """Spawns measured children and reads their time, CPU and peak RSS.

    Args:
        logdir: where each child's stdout/stderr (and GNU time output) go.
        time_bin: GNU time executable for peak RSS, or None to use ``wait4``'s ``ru_maxrss``.
            ``ru_maxrss`` of a child cannot read below the RSS of the process that spawned
            it (Linux keeps the pre-exec high-water mark), which is why GNU time, a tiny
            process, is preferred.
    """

    def __init__(self, logdir: Path, time_bin: str | None) -> None:
        self.logdir = logdir
        self.time_bin = time_bin
        logdir.mkdir(parents=True, exist_ok=True)

    def run(self, argv: Sequence[str], tag: str, report: Path | None = None) -> Sample:
        """Run ``argv`` once and measure it; output goes to ``<logdir>/<tag>.{out,err}``."""
        if report is not None and report.exists():
            report.unlink()
        time_out = self.logdir / f"{tag}.time"
        full = list(argv)
        if self.time_bin:
            full = [self.time_bin, "-f", "%M", "-o", str(time_out), "--", *argv]
        with (
            open(self.logdir / f"{tag}.out", "wb") as out,
            open(self.logdir / f"{tag}.err", "wb") as err,
        ):
            t0 = time.perf_counter()
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc  # reaped by wait4; keep Popen from waiting again
        rss_kb = float(ru.ru_maxrss)
        if self.time_bin:
            rss_kb = _parse_gnu_time_kb(time_out, fallback=rss_kb)
        report_bytes = None
        report_complete = None
        if report is not None:
            report_bytes = report.stat().st_size if report.exists() else 0
            report_complete = _report_complete(report) if report_bytes else None
        return Sample(
            wall_s=wall,
            cpu_s=ru.ru_utime + ru.ru_stime,
            rss_mb=rss_kb / 1024.0,
            rc=rc,
            report_bytes=report_bytes,
            report_complete=report_complete,
        )

    def stderr_tail(self, tag: str, lines: int = 8) -> str:
        """Last lines of a run's stderr (or stdout if stderr is empty), for error messages."""
        for suffix in (".err", ".out"):
            p = self.logdir / f"{tag}{suffix}"
            if p.exists() and p.stat().st_size:
                text = p.read_text(errors="replace").rstrip().splitlines()
                return "\n".join("    " + line for line in text[-lines:])
        return "    (no output)"


def _report_complete(report: Path) -> bool | None:
    """The ``"complete"`` flag of a JSON report, or None if it has none or is not JSON."""
    try:
        data = json.loads(report.read_bytes())
    except (OSError, ValueError):
        return None
    flag = data.get("complete") if isinstance(data, dict) else None
    return flag if isinstance(flag, bool) else None


def _parse_gnu_time_kb(path: Path, fallback: float) -> float:
    """Peak RSS in KiB from a GNU time ``-f %M`` file (its last line; earlier lines may say
    "Command exited with non-zero status")."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return float(lines[-1])
    except (OSError, ValueError, IndexError):
        return fallback


def time_binary(rss_source: str) -> str | None:
    """Return GNU time for `--rss-source` (None for wait4, or auto without GNU time)."""
    if rss_source == "wait4":
        return None
    time_bin = find_gnu_time()
    if time_bin is None and rss_source == "gnu-time":
        raise BenchError("--rss-source gnu-time but GNU time was not found")
    return time_bin


def work_folder(workdir: str | None, keep: bool, prefix: str) -> tuple[Path, bool]:
    """Return (the work folder, whether to delete it at the end): `--workdir` is kept."""
    if workdir:
        folder = Path(workdir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return folder, False
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")), not keep


def find_gnu_time() -> str | None:
    """``/usr/bin/time`` (or ``time`` on PATH) if it is GNU time, else None."""
    for cand in ("/usr/bin/time", shutil.which("time")):
        if not cand or not os.access(cand, os.X_OK):
            continue
        try:
            res = subprocess.run(
                [cand, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "GNU" in res.stdout + res.stderr:
            return cand
    return None


def resolve_executable(name: str) -> str | None:
    """Absolute path of ``name`` on PATH, looking through pyenv shims (a shim is a bash script
    that re-dispatches through ``pyenv exec`` and would add its cost to every run)."""
    path = shutil.which(name)
    if path is None:
        return None
    if f"{os.sep}shims{os.sep}" in path and shutil.which("pyenv"):
        try:
            res = subprocess.run(
                ["pyenv", "which", name], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return path
        real = res.stdout.strip()
        if res.returncode == 0 and real and os.access(real, os.X_OK):
            return real
    return path


def script_python(script: str) -> str | None:
    """The interpreter named in a console script's ``#!`` line, if it is a Python."""
    try:
        with open(script, "rb") as f:
            first = f.readline(512).decode(errors="replace").strip()
    except OSError:
        return None
    if first.startswith("#!") and "python" in first:
        interp = first[2:].split()[0]
        if os.access(interp, os.X_OK):
            return interp
    return None


@dataclass(frozen=True)
class Tool:
    """A scanner under test.

    Attributes:
        name: label in the report.
        template: argv tokens; ``{path}`` is the input (appended if absent) and ``{out}`` a
            report file the tool should write (the benchmark checks it is non-empty).
    """

    name: str
    template: tuple[str, ...]

    def argv(self, path: Path, out: Path) -> list[str]:
        """The concrete command for one input."""
        argv = [t.replace("{path}", str(path)).replace("{out}", str(out)) for t in self.template]
        if not any("{path}" in t for t in self.template):
            argv.append(str(path))
        return argv

    @property
    def writes_report(self) -> bool:
        """True if the command writes its report to ``{out}``."""
        return any("{out}" in t for t in self.template)


def make_tool(name: str, command: str) -> Tool:
    """Parse ``command`` and resolve its executable; raises ``BenchError`` if it is missing."""
    tokens = shlex.split(command)
    if not tokens:
        raise BenchError(f"empty command for {name}")
    exe = resolve_executable(tokens[0])
    if exe is None:
        hint = (
            "Install the project (for example `pip install -e /work/main`) so that the "
            "`modelguard` console script exists, or run with `--tools picklescan`."
            if name == "modelguard"
            else "Install it (`pip install picklescan`) or leave it out of --tools."
        )
        raise BenchError(f"`{tokens[0]}` ({name}) was not found on PATH. {hint}")
    return Tool(name, (exe, *tokens[1:]))


# --------------------------------------------------------------------------------------------
# Statistics and results
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything measured in one benchmark run (serialised by ``--json``)."""

    meta: dict[str, Any] = field(default_factory=dict)
    fixtures: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    startup: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cold: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def walls(self, key: str, tool: str) -> dict[int, float]:
        """Wall time per round for (input, tool)."""
        return {
            int(s["round"]): float(s["wall_s"])
            for s in self.samples
            if s["input"] == key and s["tool"] == tool
        }

    def values(self, key: str, tool: str, metric: str) -> list[float]:
        """All values of ``metric`` for (input, tool), in round order."""
        rows = [s for s in self.samples if s["input"] == key and s["tool"] == tool]
        rows.sort(key=lambda s: int(s["round"]))
        return [float(s[metric]) for s in rows]


def paired_ratio(num: dict[int, float], den: dict[int, float]) -> float | None:
    """Median over rounds of ``num[r] / den[r]`` (rounds present in both), or None."""
    ratios = [num[r] / den[r] for r in sorted(num.keys() & den.keys()) if den[r] > 0]
    return statistics.median(ratios) if ratios else None


def fmt_s(x: float | None) -> str:
    """Seconds with three decimals (two above 10 s)."""
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


def fmt_ratio(x: float | None) -> str:
    """A ratio as ``1.23x``."""
    return "-" if x is None else f"{x:.2f}x"


def fmt_size(nbytes: float) -> str:
    """Bytes as MB (10^6) with sensible precision."""
    mb = nbytes / 1e6
    if mb >= 100:
        return f"{mb:,.0f} MB"
    if mb >= 1:
        return f"{mb:.1f} MB"
    if mb >= 0.01:
        return f"{mb:.2f} MB"
    return f"{nbytes:,.0f} B"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain, aligned text table (first column left-aligned, the rest right-aligned)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _rotated(items: Sequence[tuple[str, str]], r: int) -> list[tuple[str, str]]:
    k = r % len(items)
    return [*items[k:], *items[:k]]


def preflight_modelguard(runner: Runner, tool: Tool) -> str:
    """Check ``modelguard --version`` works; return its output. Raises ``BenchError`` if not."""
    sample = runner.run([tool.template[0], "--version"], "preflight-version")
    if sample.rc != 0:
        raise BenchError(
            f"`modelguard --version` failed (exit {sample.rc}); the CLI may not be "
            f"implemented yet. Run with `--tools picklescan` meanwhile.\n"
            f"{runner.stderr_tail('preflight-version')}"
        )
    out = (runner.logdir / "preflight-version.out").read_text(errors="replace").strip()
    return out.splitlines()[0] if out else "?"


def tool_version(tool: Tool, runner: Runner) -> str:
    """Best-effort version string of a tool (from its package metadata)."""
    py = script_python(tool.template[0])
    if py is None:
        return "?"
    dist = Path(tool.template[0]).name
    try:
        res = subprocess.run(
            [py, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return res.stdout.strip() if res.returncode == 0 else "?"


def run_benchmark(args: argparse.Namespace) -> int:
    """Build or reuse fixtures, measure, report; return the process exit code."""
    scale = SCALES["quick" if args.quick else "full"]
    rounds = args.rounds if args.rounds is not None else scale.rounds
    tool_names = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tool_names:
        if t not in TOOL_NAMES:
            raise BenchError(f"unknown tool {t!r}; choose from {', '.join(TOOL_NAMES)}")
    keys = [k.strip() for k in args.inputs.split(",") if k.strip()]
    for k in keys:
        if k not in INPUT_KEYS:
            raise BenchError(f"unknown input {k!r}; choose from {', '.join(INPUT_KEYS)}")
    keys = sorted(set(keys), key=INPUT_KEYS.index)
    if args.check and "modelguard" not in tool_names:
        raise BenchError("--check evaluates modelguard's targets; add it to --tools")
    if sys.platform != "linux":
        raise BenchError("this benchmark measures Linux processes (wait4, mincore)")

    commands = {"modelguard": args.modelguard_cmd, "picklescan": args.picklescan_cmd}
    tools = [make_tool(name, commands[name]) for name in tool_names]

    time_bin = time_binary(args.rss_source)
    workdir, remove_workdir = work_folder(args.workdir, args.keep, "modelguard-bench-")
    try:
        return _run_in(workdir, scale, rounds, tools, keys, time_bin, args)
    finally:
        if remove_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            _log(f"kept work folder: {workdir}")


def _run_in(
    workdir: Path,
    scale: Scale,
    rounds: int,
    tools: list[Tool],
    keys: list[str],
    time_bin: str | None,
    args: argparse.Namespace,
) -> int:
    """The measuring part of :func:`run_benchmark`, inside an existing work folder."""
    runner = Runner(workdir / "logs", time_bin)
    reports = workdir / "reports"
    reports.mkdir(exist_ok=True)
    res = Results()
    by_name = {t.name: t for t in tools}

    versions: dict[str, str] = {}
    if "modelguard" in by_name:
        versions["modelguard"] = preflight_modelguard(runner, by_name["modelguard"])
    if "picklescan" in by_name:
        versions["picklescan"] = tool_version(by_name["picklescan"], runner)

    # S is always built: it is the warm-up/preflight input.
    fixtures = ensure_fixtures(workdir, scale, sorted({*keys, "S"}, key=INPUT_KEYS.index))

    parent_rss_mb = _self_maxrss_mb()
    res.meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "scale": scale.name,
        "rounds": rounds,
        "workdir": str(workdir),
        "tools": {
            t.name: {"argv": list(t.template), "version": versions.get(t.name)} for t in tools
        },
        "rss_source": "gnu-time" if time_bin else "wait4",
        "parent_rss_mb": round(parent_rss_mb, 1),
        "loadavg_start": os.getloadavg(),
    }
    res.fixtures = {
        k: {
            "path": str(f.path),
            "files": len(f.files),
            "bytes": f.nbytes,
            "pickle_bytes": f.pickle_bytes,
        }
        for k, f in fixtures.items()
    }

    # Warm-up and preflight: one untimed scan of S per tool (also pulls the tools' own code
    # into the page cache).
    warm_cache(fixtures["S"].files)
    for t in tools:
        tag = f"warmup-{t.name}"
        s = runner.run(t.argv(fixtures["S"].path, reports / f"{tag}.json"), tag)
        if s.rc not in (0, 1):
            hint = (
                " Is `modelguard scan` implemented yet? Use `--tools picklescan` meanwhile,"
                " or pass the right command with --modelguard-cmd."
                if t.name == "modelguard"
                else ""
            )
            raise BenchError(
                f"{t.name} failed on the tiny pickle S (exit {s.rc}).{hint}\n"
                f"  command: {shlex.join(t.argv(fixtures['S'].path, reports / 'x.json'))}\n"
                f"{runner.stderr_tail(tag)}"
            )

    _print_header(res, fixtures, tools, keys)

    # Main warm rounds, group by group.
    for group in GROUPS:
        group_keys = [k for k in group if k in keys]
        if not group_keys:
            continue
        for k in group_keys:
            warm_cache(fixtures[k].files)
        combos = [(k, t.name) for k in group_keys for t in tools]
        for r in range(rounds):
            for pos, (k, name) in enumerate(_rotated(combos, r)):
                t = by_name[name]
                tag = f"{k}-{name}-r{r}"
                report = reports / f"{tag}.json"
                s = runner.run(
                    t.argv(fixtures[k].path, report), tag, report if t.writes_report else None
                )
                res.samples.append(
                    {"input": k, "tool": name, "round": r, "position": pos, **dataclasses.asdict(s)}
                )
                _log(
                    f"  {k:5s} {name:11s} round {r + 1}/{rounds}: {s.wall_s:7.3f} s  "
                    f"cpu {s.cpu_s:6.3f} s  rss {s.rss_mb:6.1f} MB  rc {s.rc}"
                )
                if s.rc not in (0, 1):
                    _log(f"    warning: {name} exited {s.rc} on {k}:\n{runner.stderr_tail(tag, 4)}")
                if report.exists():
                    report.unlink()

    # Start-up: `modelguard --version` against `python -c pass`, interleaved.
    if "modelguard" in by_name:
        mg_exe = by_name["modelguard"].template[0]
        py = script_python(mg_exe) or sys.executable
        pairs = [
            ("modelguard --version", [mg_exe, "--version"]),
            ("python -c pass", [py, "-c", "pass"]),
        ]
        res.startup = {name: [] for name, _ in pairs}
        for i in range(args.version_runs):
            for name, argv in pairs if i % 2 == 0 else pairs[::-1]:
                s = runner.run(argv, f"startup-{name.split()[0]}-{i}")
                res.startup[name].append({"run": i, **dataclasses.asdict(s)})

    # Cold pass: bytes touched.
    if args.cold:
        res.cold = _cold_pass(runner, reports, tools, fixtures, keys)

    res.meta["loadavg_end"] = os.getloadavg()
    res.meta["parent_rss_mb_end"] = round(_self_maxrss_mb(), 1)
    _summarise(res, fixtures, tools, keys)
    _print_report(res, fixtures, tools, keys)

    if args.json:
        Path(args.json).write_text(json.dumps(res, default=_json_default, indent=2) + "\n")
        _log(f"raw results written to {args.json}")

    failed = [c for c in res.checks if c["gating"] and c["status"] == "FAIL"]
    return 1 if (args.check and failed) else 0


def _self_maxrss_mb() -> float:
    """This process's peak RSS (the floor of ``wait4`` RSS readings of its children)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _json_default(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _cold_pass(
    runner: Runner,
    reports: Path,
    tools: list[Tool],
    fixtures: dict[str, Fixture],
    keys: list[str],
) -> list[dict[str, Any]]:
    """One cold run per (input, tool): evict, run, count resident bytes of the input."""
    counter = Mincore()
    rows: list[dict[str, Any]] = []
    for k in keys:
        fx = fixtures[k]
        for t in tools:
            evict(fx.files)
            before = counter.total(fx.files)
            tag = f"cold-{k}-{t.name}"
            report = reports / f"{tag}.json"
            s = runner.run(t.argv(fx.path, report), tag, report if t.writes_report else None)
            after = counter.total(fx.files)
            rows.append(
                {
                    "input": k,
                    "tool": t.name,
                    "resident_before": before,
                    "touched_bytes": max(0, after - before),
                    "input_bytes": fx.nbytes,
                    **dataclasses.asdict(s),
                }
            )
            _log(
                f"  cold {k:5s} {t.name:11s}: {fmt_size(after - before)} touched, {s.wall_s:.3f} s"
            )
            if report.exists():
                report.unlink()
        evict(fx.files)
    return rows


def _print_header(
    res: Results, fixtures: dict[str, Fixture], tools: list[Tool], keys: list[str]
) -> None:
    meta = res.meta
    print(f"modelguard scan benchmark - {meta['date']} on {meta['host']} ({meta['cpus']} CPUs)")
    print(f"python {meta['python']}, scale {meta['scale']}, {meta['rounds']} interleaved round(s)")
    for t in tools:
        print(f"  {t.name} {res.meta['tools'][t.name]['version']}: {shlex.join(t.template)}")
    if meta["rss_source"] == "gnu-time":
        print("peak RSS: GNU time %M; CPU: wait4 of each child; wall: perf_counter around it")
    else:
        print(
            f"peak RSS: wait4 ru_maxrss (no GNU time): a reading cannot go below this "
            f"process's own peak RSS ({meta['parent_rss_mb']} MB now)"
        )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in meta['loadavg_start'])}")
    print("inputs:")
    for k in keys:
        f = fixtures[k]
        extra = f", data.pkl {f.pickle_bytes / 1e3:,.0f} KB" if f.pickle_bytes else ""
        print(f"  {k:5s} {fmt_size(f.nbytes):>10s} in {len(f.files):,} file(s){extra}  {f.path}")
    print(flush=True)


def _summarise(
    res: Results, fixtures: dict[str, Fixture], tools: list[Tool], keys: list[str]
) -> None:
    """Fill ``res.summary`` (medians, ratios) and ``res.checks`` (targets)."""
    names = [t.name for t in tools]
    per: dict[str, dict[str, dict[str, Any]]] = {}
    for k in keys:
        per[k] = {}
        for n in names:
            wall = res.values(k, n, "wall_s")
            if not wall:
                continue
            cpu = res.values(k, n, "cpu_s")
            rss = res.values(k, n, "rss_mb")
            rcs = [int(x) for x in res.values(k, n, "rc")]
            per[k][n] = {
                "wall_median": statistics.median(wall),
                "wall_min": min(wall),
                "wall_max": max(wall),
                "cpu_median": statistics.median(cpu),
                "rss_median": statistics.median(rss),
                "rss_max": max(rss),
                "rcs": sorted(set(rcs)),
                "incomplete_reports": sum(
                    1
                    for x in res.samples
                    if x["input"] == k and x["tool"] == n and x.get("report_complete") is False
                ),
            }
    ratios: dict[str, float | None] = {}
    if {"modelguard", "picklescan"} <= set(names):
        for k in keys:
            ratios[f"{k}: modelguard/picklescan"] = paired_ratio(
                res.walls(k, "modelguard"), res.walls(k, "picklescan")
            )
    if {"A", "A200"} <= set(keys):
        for n in names:
            ratios[f"A/A200: {n}"] = paired_ratio(res.walls("A", n), res.walls("A200", n))
    marginal: dict[str, float] = {}
    if {"S", "D"} <= set(keys):
        n_files = len(fixtures["D"].files)
        for n in names:
            if n in per["D"] and n in per["S"]:
                d = per["D"][n]["wall_median"]
                s = per["S"][n]["wall_median"]
                marginal[n] = (float(d) - float(s)) / n_files * 1000.0
    startup = {
        name: {
            "wall_median": statistics.median(x["wall_s"] for x in runs),
            "wall_min": min(float(x["wall_s"]) for x in runs),
            "wall_max": max(float(x["wall_s"]) for x in runs),
            "cpu_median": statistics.median(x["cpu_s"] for x in runs),
            "rss_median": statistics.median(x["rss_mb"] for x in runs),
            "rcs": sorted({int(x["rc"]) for x in runs}),
        }
        for name, runs in res.startup.items()
        if runs
    }
    res.summary = {
        "per_input": per,
        "ratios": ratios,
        "marginal_ms_per_file": marginal,
        "startup": startup,
    }
    res.checks = _checks(res, fixtures, keys, per, ratios, marginal, startup)


def _checks(
    res: Results,
    fixtures: dict[str, Fixture],
    keys: list[str],
    per: dict[str, dict[str, dict[str, Any]]],
    ratios: dict[str, float | None],
    marginal: dict[str, float],
    startup: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The targets of README.md, gating ones first; stretch goals are information only."""
    checks: list[dict[str, Any]] = []

    def add(
        cid: str,
        target: str,
        value: float | None,
        ok: bool | None,
        shown: str,
        gating: bool = True,
    ) -> None:
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        if not gating and ok is not None:
            status = "met" if ok else "not met"
        checks.append(
            {
                "id": cid,
                "target": target,
                "value": value,
                "shown": shown,
                "status": status,
                "gating": gating,
            }
        )

    if not any("modelguard" in per.get(k, {}) for k in keys):
        return checks
    mg_runs = [s for s in res.samples if s["tool"] == "modelguard"]
    bad = [s for s in mg_runs if s["rc"] not in (0, 1)]
    no_report = [s for s in mg_runs if s.get("report_bytes") == 0]
    partial = [s for s in mg_runs if s.get("report_complete") is False]
    partial_inputs = sorted({str(s["input"]) for s in partial}, key=INPUT_KEYS.index)
    add(
        "complete",
        "modelguard finished every scan (exit 0/1, report written, not marked incomplete)",
        float(len(bad) + len(no_report) + len(partial)),
        not bad and not no_report and not partial,
        f"{len(mg_runs) - len(bad)}/{len(mg_runs)} exit 0/1"
        + (f", {len(no_report)} empty report(s)" if no_report else "")
        + (f", {len(partial)} incomplete ({', '.join(partial_inputs)})" if partial else ""),
    )
    for k in ("A", "A200", "B", "D"):
        if k not in keys:
            continue
        r = ratios.get(f"{k}: modelguard/picklescan")
        add(
            f"speed-{k}",
            f"{k}: modelguard <= {TARGET_RATIO_VS_PICKLESCAN:.1f}x picklescan (paired median)",
            r,
            None if r is None else r <= TARGET_RATIO_VS_PICKLESCAN,
            fmt_ratio(r),
        )
    r = ratios.get("A/A200: modelguard")
    if {"A", "A200"} <= set(keys):
        add(
            "flat-A",
            f"A/A200: modelguard big/small <= {TARGET_BIG_SMALL:.1f}x (paired median)",
            r,
            None if r is None else r <= TARGET_BIG_SMALL,
            fmt_ratio(r),
        )
    for k in keys:
        st = per[k].get("modelguard")
        rss = None if st is None else float(st["rss_max"])
        add(
            f"rss-{k}",
            f"{k}: modelguard peak RSS < {TARGET_RSS_MB:.0f} MB (max over rounds)",
            rss,
            None if rss is None else rss < TARGET_RSS_MB,
            "-" if rss is None else f"{rss:.1f} MB",
        )
    ver = startup.get("modelguard --version")
    v = None if ver is None else float(ver["wall_median"])
    add(
        "startup",
        f"`modelguard --version` <= {TARGET_VERSION_S:.2f} s (median)",
        v,
        None if v is None else v <= TARGET_VERSION_S,
        "-" if v is None else f"{v:.3f} s",
    )

    # Stretch goals (research/performance.md section 5), information only.
    for k in ("A", "A200"):
        r = ratios.get(f"{k}: modelguard/picklescan")
        if r is not None:
            add(
                f"stretch-speed-{k}",
                f"{k}: <= {STRETCH_RATIO_ZIP:.1f}x picklescan (S2)",
                r,
                r <= STRETCH_RATIO_ZIP,
                fmt_ratio(r),
                gating=False,
            )
    rss_all = [float(per[k]["modelguard"]["rss_max"]) for k in keys if "modelguard" in per[k]]
    if rss_all:
        worst = max(rss_all)
        add(
            "stretch-rss",
            f"peak RSS <= {STRETCH_RSS_MB:.0f} MB on every input (S8)",
            worst,
            worst <= STRETCH_RSS_MB,
            f"{worst:.1f} MB",
            gating=False,
        )
    m = marginal.get("modelguard")
    if m is not None:
        add(
            "stretch-marginal",
            f"D: <= {STRETCH_MARGINAL_MS:.1f} ms per file marginal (S5)",
            m,
            m <= STRETCH_MARGINAL_MS,
            f"{m:.2f} ms",
            gating=False,
        )
    py = startup.get("python -c pass")
    if v is not None and py is not None:
        q = v / float(py["wall_median"])
        add(
            "stretch-startup",
            f"--version <= {STRETCH_VERSION_VS_PYTHON:.1f}x `python -c pass` (S1)",
            q,
            q <= STRETCH_VERSION_VS_PYTHON,
            fmt_ratio(q),
            gating=False,
        )
    for row in res.cold:
        if row["input"] == "A" and row["tool"] == "modelguard":
            limit = STRETCH_COLD_EXTRA_BYTES + (fixtures["A"].pickle_bytes or 0)
            touched = float(row["touched_bytes"])
            add(
                "stretch-cold-A",
                f"A cold: <= 1 MB + data.pkl = {fmt_size(limit)} read (S3)",
                touched,
                touched <= limit,
                fmt_size(touched),
                gating=False,
            )
    return checks


def _print_report(
    res: Results, fixtures: dict[str, Fixture], tools: list[Tool], keys: list[str]
) -> None:
    per = res.summary["per_input"]
    assert isinstance(per, dict)
    print("\nwarm page cache, whole process; median (min-max) over rounds")
    rows = []
    for k in keys:
        for t in tools:
            st = per[k].get(t.name)
            if st is None:
                continue
            rows.append(
                [
                    k,
                    fmt_size(fixtures[k].nbytes),
                    t.name,
                    f"{fmt_s(st['wall_median'])} ({fmt_s(st['wall_min'])}-{fmt_s(st['wall_max'])})",
                    fmt_s(st["cpu_median"]),
                    f"{st['rss_median']:.1f}",
                    ",".join(str(x) for x in st["rcs"]) + ("!" if st["incomplete_reports"] else ""),
                ]
            )
    print_table(["input", "size", "tool", "wall s", "cpu s", "rss MB", "exit"], rows)
    if any(st.get("incomplete_reports") for by_tool in per.values() for st in by_tool.values()):
        print("  ! the tool's JSON report says the scan was incomplete")

    startup = res.summary["startup"]
    assert isinstance(startup, dict)
    if startup:
        print(f"\nstart-up, {len(next(iter(res.startup.values())))} runs each, interleaved")
        print_table(
            ["command", "wall s", "cpu s", "rss MB", "exit"],
            [
                [
                    name,
                    f"{fmt_s(st['wall_median'])} ({fmt_s(st['wall_min'])}-{fmt_s(st['wall_max'])})",
                    fmt_s(st["cpu_median"]),
                    f"{st['rss_median']:.1f}",
                    ",".join(str(x) for x in st["rcs"]),
                ]
                for name, st in startup.items()
            ],
        )

    ratios = res.summary["ratios"]
    assert isinstance(ratios, dict)
    marginal = res.summary["marginal_ms_per_file"]
    assert isinstance(marginal, dict)
    if ratios or marginal:
        print("\nratios: median of per-round paired wall-time ratios")
        for name, r in ratios.items():
            print(f"  {name:32s} {fmt_ratio(r)}")
        if marginal:
            n_files = len(fixtures["D"].files)
            for name, ms in marginal.items():
                label = f"D marginal per file: {name}"
                print(f"  {label:32s} {ms:.3f} ms  ((D - S) / {n_files:,} files)")
            if len(marginal) == 2 and marginal.get("picklescan", 0) > 0:
                q = marginal["modelguard"] / marginal["picklescan"]
                print(f"  {'D marginal: modelguard/picklescan':32s} {fmt_ratio(q)}")

    if res.cold:
        print("\ncold: bytes of the input in the page cache after one run (readahead included)")
        print_table(
            ["input", "size", "tool", "touched", "% of input", "wall s", "exit"],
            [
                [
                    str(c["input"]),
                    fmt_size(float(c["input_bytes"])),
                    str(c["tool"]),
                    fmt_size(float(c["touched_bytes"])),
                    f"{100.0 * float(c['touched_bytes']) / max(1, float(c['input_bytes'])):.2f}%",
                    fmt_s(float(c["wall_s"])),
                    str(c["rc"]),
                ]
                for c in res.cold
            ],
        )

    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in res.meta['loadavg_end'])}")
    if res.meta["rss_source"] == "wait4":
        print(f"wait4 RSS floor (this process's peak RSS): {res.meta['parent_rss_mb_end']} MB")
    if not res.checks:
        print("\ntargets: not evaluated (modelguard not in --tools)")
        return
    print("\ntargets")
    for c in res.checks:
        if c["gating"]:
            print(f"  {c['status']:4s}  {c['target']}: {c['shown']}")
    stretch = [c for c in res.checks if not c["gating"]]
    if stretch:
        print("stretch goals (information only)")
        for c in stretch:
            print(f"  {c['status']:7s}  {c['target']}: {c['shown']}")
    gating = [c for c in res.checks if c["gating"]]
    n_fail = sum(c["status"] == "FAIL" for c in gating)
    n_pass = sum(c["status"] == "PASS" for c in gating)
    print(f"\n{'FAIL' if n_fail else 'PASS'}: {n_pass} passed, {n_fail} failed", flush=True)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line options."""
    p = argparse.ArgumentParser(
        description="Benchmark `modelguard scan` against picklescan (see benchmarks/README.md).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small fixtures (20 MB / 2 MB / 10 MB / 200 files), 1 round: smoke test",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per input (default 3, or 1 with --quick)",
    )
    p.add_argument(
        "--tools",
        default=",".join(TOOL_NAMES),
        help="comma-separated tools to run (default: modelguard,picklescan)",
    )
    p.add_argument(
        "--inputs",
        default=",".join(INPUT_KEYS),
        help="comma-separated inputs (default: S,A200,A,B,D)",
    )
    p.add_argument(
        "--modelguard-cmd",
        default=DEFAULT_MODELGUARD_CMD,
        help="modelguard command; {out} = report file, {path} = input "
        f"(appended if absent). Default: {DEFAULT_MODELGUARD_CMD!r}",
    )
    p.add_argument(
        "--picklescan-cmd",
        default=DEFAULT_PICKLESCAN_CMD,
        help=f"picklescan command (default: {DEFAULT_PICKLESCAN_CMD!r})",
    )
    p.add_argument("--workdir", help="scratch folder to build or reuse fixtures in (never deleted)")
    p.add_argument("--keep", action="store_true", help="keep the temporary scratch folder")
    p.add_argument(
        "--cold", action="store_true", help="also measure bytes touched (evict, run once, mincore)"
    )
    p.add_argument(
        "--version-runs",
        type=int,
        default=10,
        help="runs of `modelguard --version` and `python -c pass` (default 10)",
    )
    p.add_argument(
        "--rss-source",
        choices=("auto", "gnu-time", "wait4"),
        default="auto",
        help="peak RSS from GNU time (auto: if found) or from wait4's ru_maxrss",
    )
    p.add_argument("--json", metavar="FILE", help="write raw samples and summary to FILE")
    p.add_argument("--check", action="store_true", help="exit 1 if any target FAILs")
    p.add_argument("--_build", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--scale", choices=tuple(SCALES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.version_runs < 1:
        p.error("--version-runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the benchmark, or (internally) the fixture builder child.

    Returns 0 after a measurement (even if targets FAIL), 1 if ``--check`` and a target FAILs,
    2 on a setup error.
    """
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep stdout and stderr lines in order
    if args._build:
        keys = [k for k in args.inputs.split(",") if k]
        _build_fixtures_child(Path(args._build), SCALES[args.scale or "full"], keys)
        return 0
    try:
        return run_benchmark(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
