#!/usr/bin/env python3
"""Side-by-side signing benchmark: ``modelguard sign/verify`` against an ideal hashlib loop and
the reference ``model_signing`` CLI.

Follows the method of ``research/performance.md`` and ``bench_scan.py``:

* every figure is one whole, fresh process (start-up and imports included), stdin empty,
  output to files;
* wall time is ``time.perf_counter`` around the child; CPU (user + sys) comes from
  ``os.wait4`` on that child; peak RSS comes from GNU ``/usr/bin/time`` (``%M``) when it is
  available, else from ``os.wait4``'s ``ru_maxrss`` (see ``--rss-source``);
* the commands of one model run in interleaved rounds, the order rotated by one each round;
* every file of a model is read once before its first round (warm page cache), and every
  command runs once, untimed, before the rounds (byte-code written, code pages cached);
* ratios are medians of per-round paired ratios.

Two models:

* ``big``: a multi-file model of random bytes (default 2 x 768 MiB + 4 x 128 MiB + 4 small JSON
  files, 2.15 GB; ``--size-mb`` scales it). The baseline is an *ideal hashlib loop*: a fresh
  Python process that SHA-256-hashes every file with one thread per core (1 MiB ``readinto``
  into a preallocated buffer, largest files first). Targets: ``modelguard sign`` and
  ``modelguard verify`` <= 1.15x that baseline, peak RSS < 64 MB.
* ``tiny``: three files of a few KB. Target: ``modelguard`` sign and verify <= 0.25x
  ``model_signing``'s time for the same operation.

Signatures are written outside the model folders, so neither tool needs ignore options. Run
``--help`` for the options and ``benchmarks/README.md`` for the targets.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The measuring helpers shared with the scan benchmark (same method: GNU time for peak RSS,
# pyenv shims resolved, paired per-round ratios).
from bench_scan import (
    BenchError,
    _parse_gnu_time_kb,
    fmt_s,
    paired_ratio,
    print_table,
    resolve_executable,
    script_python,
    time_binary,
    work_folder,
)

#: Bump when the model recipe changes, so that a reused ``--workdir`` is rebuilt.
MODEL_FORMAT = 1
SEED = 20261127
MIB = 1024 * 1024
WRITE_CHUNK = 8 * MIB
READ_CHUNK = MIB
DEFAULT_SIZE_MB = 2048

MODEL_KEYS = ("big", "tiny")
TOOL_NAMES = ("modelguard", "model_signing")

# Targets (see README.md). Gating ones decide PASS/FAIL and the --check exit code.
TARGET_BIG_VS_IDEAL = 1.15
TARGET_TINY_VS_REFERENCE = 0.25
TARGET_RSS_MB = 64.0
#: The big-model ratio targets gate only for models at least this large.
BIG_TARGET_MIN_BYTES = 2_000_000_000

#: The baseline: what a hand-written hashing script can do. Written to the work folder and run
#: as ``python ideal_hash.py MODEL``; prints the number of files and bytes it hashed.
IDEAL_SCRIPT = '''\
"""Ideal hashlib loop: SHA-256 of every file, one thread per core (written by bench_signing)."""
import hashlib
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

CHUNK = 1024 * 1024
_local = threading.local()


def digest(path):
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(CHUNK)
    view = memoryview(buf)
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def main(root):
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            p = os.path.join(dirpath, name)
            files.append((os.path.getsize(p), p))
    files.sort(key=lambda x: (-x[0], x[1]))
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        digests = list(pool.map(digest, [p for _, p in files]))
    total = sum(size for size, _ in files)
    print(json.dumps({"files": len(files), "bytes": total, "first": digests[0]}))


main(sys.argv[1])
'''


# --------------------------------------------------------------------------------------------
# Models and keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """One file of a generated model.

    Attributes:
        name: model-relative POSIX name.
        size: exact size in bytes.
        kind: "random" (random bytes) or "json" (a JSON object padded to ``size``).
    """

    name: str
    size: int
    kind: str


def big_model_spec(size_mb: int) -> tuple[FileSpec, ...]:
    """A Hugging Face-like folder of ``size_mb`` MiB: 2 shards of 3/8 and 4 of 1/16 of it.

    The default 2048 MiB gives 2 x 768 MiB + 4 x 128 MiB (2.15 GB), plus four small JSON files.
    """
    total = size_mb * MIB
    large = total * 3 // 8
    small = total // 16
    shards = [large, large, small, small, small, small]
    n = len(shards)
    specs = [
        FileSpec(f"model-{i + 1:05d}-of-{n:05d}.safetensors", size, "random")
        for i, size in enumerate(shards)
    ]
    specs += [
        FileSpec("config.json", 700, "json"),
        FileSpec("generation_config.json", 180, "json"),
        FileSpec("model.safetensors.index.json", 24_000, "json"),
        FileSpec("tokenizer_config.json", 1_200, "json"),
    ]
    return tuple(specs)


TINY_SPEC = (
    FileSpec("config.json", 600, "json"),
    FileSpec("tokenizer.json", 2_500, "json"),
    FileSpec("model.safetensors", 4_096, "random"),
)


def _json_blob(name: str, size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (padded with a string member)."""
    head = json.dumps({"_name": name, "pad": ""}).encode()
    if size < len(head):
        raise ValueError(f"{name}: {size} bytes is too small for the JSON skeleton")
    obj = {"_name": name, "pad": "x" * (size - len(head))}
    data = json.dumps(obj).encode()
    assert len(data) == size
    return data


def _write_file(path: Path, spec: FileSpec, rng: random.Random) -> None:
    if spec.kind == "json":
        path.write_bytes(_json_blob(spec.name, spec.size))
        return
    with open(path, "wb") as f:
        left = spec.size
        while left:
            n = min(WRITE_CHUNK, left)
            f.write(rng.randbytes(n))
            left -= n


def ensure_model(root: Path, specs: Sequence[FileSpec], seed: int) -> tuple[Path, ...]:
    """Reuse or build the model folder ``root`` (its recipe is kept beside it, not inside).

    The model is written to ``root.partial`` and renamed when complete, so an interrupted
    build is redone. Returns the model's files.
    """
    marker = root.with_name(root.name + ".json")
    recipe = {
        "format": MODEL_FORMAT,
        "seed": seed,
        "files": [dataclasses.asdict(s) for s in specs],
    }
    try:
        same = json.loads(marker.read_text()) == recipe
    except (OSError, ValueError):
        same = False
    files = tuple(root / s.name for s in specs)
    if same and root.is_dir():
        present = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if present == sorted(s.name for s in specs) and all(
            (root / s.name).stat().st_size == s.size for s in specs
        ):
            return files
    total = sum(s.size for s in specs)
    _log(f"building {root.name} model: {total / 1e6:,.1f} MB in {len(specs)} files ...")
    t0 = time.perf_counter()
    tmp = root.with_name(root.name + ".partial")
    for p in (tmp, root):
        if p.exists():
            shutil.rmtree(p)
    tmp.mkdir(parents=True)
    rng = random.Random(seed)
    for s in specs:
        dst = tmp / s.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        _write_file(dst, s, rng)
    tmp.rename(root)
    marker.write_text(json.dumps(recipe, indent=2) + "\n")
    _log(f"  built in {time.perf_counter() - t0:.1f} s")
    return files


def ensure_keys(key_dir: Path) -> tuple[Path, Path]:
    """An EC P-256 key pair (PKCS#8 private key, SPKI public key, PEM), reused if present."""
    priv = key_dir / "signing-key.pem"
    pub = key_dir / "signing-key-pub.pem"
    if priv.is_file() and pub.is_file():
        return priv, pub
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def warm_cache(files: Iterable[Path]) -> None:
    """Read every file once so that the measured runs see a warm page cache."""
    buf = bytearray(READ_CHUNK)
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# --------------------------------------------------------------------------------------------
# Running processes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One measured process.

    Attributes:
        wall_s: ``perf_counter`` around spawn .. reap.
        cpu_s: user + sys of the child (and its children), from ``os.wait4``.
        rss_mb: peak RSS in MiB (GNU time ``%M``, or ``wait4``'s ``ru_maxrss``).
        rc: exit code (negative: killed by that signal).
    """

    wall_s: float
    cpu_s: float
    rss_mb: float
    rc: int


class Runner:
    """Spawns measured children and reads their time, CPU and peak RSS.

    Args:
        logdir: where each child's stdout/stderr (and GNU time output) go.
        time_bin: GNU time executable for peak RSS, or None to use ``wait4``'s ``ru_maxrss``
            (which cannot read below the RSS of the process that spawned the child: Linux
            keeps the pre-exec high-water mark).
        env: the children's environment.
    """

    def __init__(self, logdir: Path, time_bin: str | None, env: dict[str, str]) -> None:
        self.logdir = logdir
        self.time_bin = time_bin
        self.env = env
        logdir.mkdir(parents=True, exist_ok=True)

    def run(self, argv: Sequence[str], tag: str) -> Sample:
        """Run ``argv`` once and measure it; output goes to ``<logdir>/<tag>.{out,err}``."""
        time_out = self.logdir / f"{tag}.time"
        full = list(argv)
        if self.time_bin:
            full = [self.time_bin, "-f", "%M", "-o", str(time_out), "--", *argv]
        with (
            open(self.logdir / f"{tag}.out", "wb") as out,
            open(self.logdir / f"{tag}.err", "wb") as err,
        ):
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env
            )
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc  # reaped by wait4; keep Popen from waiting again
        rss_kb = float(ru.ru_maxrss)
        if self.time_bin:
            rss_kb = _parse_gnu_time_kb(time_out, fallback=rss_kb)
        return Sample(wall, ru.ru_utime + ru.ru_stime, rss_kb / 1024.0, rc)

    def output(self, tag: str) -> str:
        """The stdout of a run."""
        p = self.logdir / f"{tag}.out"
        return p.read_text(errors="replace") if p.exists() else ""

    def stderr_tail(self, tag: str, lines: int = 8) -> str:
        """Last lines of a run's stderr (or stdout if stderr is empty), for error messages."""
        for suffix in (".err", ".out"):
            p = self.logdir / f"{tag}{suffix}"
            if p.exists() and p.stat().st_size:
                text = p.read_text(errors="replace").rstrip().splitlines()
                return "\n".join("    " + line for line in text[-lines:])
        return "    (no output)"


def child_env() -> dict[str, str]:
    """The children's environment: ours, with byte-code writing allowed.

    With ``PYTHONDONTWRITEBYTECODE`` set, an editable install recompiles its modules at every
    start, which is not what an installed tool costs (``pip install`` byte-compiles).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_package(python: str, module: str, env: dict[str, str]) -> str | None:
    """Byte-compile ``module``'s package with ``python -m compileall``; return its folder."""
    res = subprocess.run(
        [python, "-c", f"import {module}, os; print(os.path.dirname({module}.__file__))"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    folder = res.stdout.strip()
    if res.returncode != 0 or not folder:
        return None
    subprocess.run(
        [python, "-m", "compileall", "-q", folder],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=600,
        check=False,
    )
    return folder


def dist_version(python: str, dist: str) -> str:
    """Best-effort version of an installed distribution."""
    try:
        res = subprocess.run(
            [python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return res.stdout.strip() if res.returncode == 0 else "?"


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """Where things are: executables, keys, the folders signatures go to.

    Attributes:
        python: the interpreter of the ``modelguard`` console script (runs the baseline).
        modelguard: the ``modelguard`` console script, or None if not measured.
        model_signing: the ``model_signing`` console script, or None if not measured.
        ideal_script: the baseline script written into the work folder.
        private_key: EC P-256 private key (PEM).
        public_key: its public key (PEM).
        sig_dir: folder for signatures, outside every model folder.
    """

    python: str
    modelguard: str | None
    model_signing: str | None
    ideal_script: Path
    private_key: Path
    public_key: Path
    sig_dir: Path


#: Every command: (name, tool it belongs to, models it runs on).
COMMANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ideal", "baseline", ("big",)),
    ("python -c pass", "baseline", ("tiny",)),
    ("modelguard sign", "modelguard", MODEL_KEYS),
    ("modelguard verify", "modelguard", MODEL_KEYS),
    ("model_signing sign", "model_signing", MODEL_KEYS),
    ("model_signing verify", "model_signing", MODEL_KEYS),
)


def signature_path(env: Env, model: str, tool: str, tag: str) -> Path:
    """Where a sign run writes; the untimed warm-up run writes the one that verify reads."""
    short = "mg" if tool == "modelguard" else "ms"
    suffix = "" if tag == "warmup" else f"-{tag}"
    return env.sig_dir / f"{model}-{short}{suffix}.sig"


def command_argv(env: Env, name: str, model: str, path: Path, tag: str) -> tuple[list[str], Path]:
    """The argv of command ``name`` on ``model`` at ``path``, and the signature file it writes
    or reads (meaningless for the baselines)."""
    if name == "ideal":
        return [env.python, str(env.ideal_script), str(path)], Path(os.devnull)
    if name == "python -c pass":
        return [env.python, "-c", "pass"], Path(os.devnull)
    tool, verb = name.split()
    sig = signature_path(env, model, tool, tag if verb == "sign" else "warmup")
    if tool == "modelguard":
        assert env.modelguard is not None
        if verb == "sign":
            argv = [env.modelguard, "sign", str(path), "--key", str(env.private_key)]
            return [*argv, "-o", str(sig), "-q"], sig
        argv = [env.modelguard, "verify", str(path), "--signature", str(sig)]
        return [*argv, "--public-key", str(env.public_key), "-q"], sig
    assert env.model_signing is not None
    if verb == "sign":
        argv = [env.model_signing, "sign", "key", str(path)]
        return [*argv, "--private_key", str(env.private_key), "--signature", str(sig)], sig
    argv = [env.model_signing, "verify", "key", str(path), "--signature", str(sig)]
    return [*argv, "--public_key", str(env.public_key)], sig


# --------------------------------------------------------------------------------------------
# Statistics and results
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything measured in one benchmark run (written as JSON)."""

    meta: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def per_round(self, model: str, cmd: str, metric: str = "wall_s") -> dict[int, float]:
        """``metric`` (default wall time) per round for (model, command)."""
        return {
            int(s["round"]): float(s[metric])
            for s in self.samples
            if s["model"] == model and s["command"] == cmd
        }

    def values(self, model: str, cmd: str, metric: str) -> list[float]:
        """All values of ``metric`` for (model, command), in round order."""
        rows = [s for s in self.samples if s["model"] == model and s["command"] == cmd]
        rows.sort(key=lambda s: int(s["round"]))
        return [float(s[metric]) for s in rows]


#: Ratios reported: (model, numerator, denominator, gating target or None for context).
RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("big", "modelguard sign", "ideal", TARGET_BIG_VS_IDEAL),
    ("big", "modelguard verify", "ideal", TARGET_BIG_VS_IDEAL),
    ("big", "model_signing sign", "ideal", None),
    ("big", "model_signing verify", "ideal", None),
    ("tiny", "modelguard sign", "model_signing sign", TARGET_TINY_VS_REFERENCE),
    ("tiny", "modelguard verify", "model_signing verify", TARGET_TINY_VS_REFERENCE),
    ("tiny", "modelguard sign", "python -c pass", None),
    ("tiny", "modelguard verify", "python -c pass", None),
    ("tiny", "model_signing sign", "python -c pass", None),
    ("tiny", "model_signing verify", "python -c pass", None),
)


def fmt_ratio(x: float | None) -> str:
    """A ratio as ``1.23x``."""
    return "-" if x is None else f"{x:.3f}x"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace) -> int:
    """Build or reuse the models, measure, report; return the process exit code."""
    if sys.platform != "linux":
        raise BenchError("this benchmark measures Linux processes (wait4, GNU time)")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for t in tools:
        if t not in TOOL_NAMES:
            raise BenchError(f"unknown tool {t!r}; choose from {', '.join(TOOL_NAMES)}")
    for m in models:
        if m not in MODEL_KEYS:
            raise BenchError(f"unknown model {m!r}; choose from {', '.join(MODEL_KEYS)}")
    models = sorted(set(models), key=MODEL_KEYS.index)
    if args.check and "modelguard" not in tools:
        raise BenchError("--check evaluates modelguard's targets; add it to --tools")

    exes: dict[str, str | None] = {}
    for t in tools:
        exe = resolve_executable(t)
        if exe is None:
            raise BenchError(f"`{t}` was not found on PATH (install it or leave it out of --tools)")
        exes[t] = exe
    anchor = exes.get("modelguard") or exes.get("model_signing")
    python = (script_python(anchor) if anchor else None) or sys.executable

    time_bin = time_binary(args.rss_source)
    workdir, remove_workdir = work_folder(args.workdir, args.keep, "modelguard-bench-signing-")
    try:
        return _run_in(workdir, python, exes, tools, models, time_bin, args)
    finally:
        if remove_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            if args.delete_models:
                for m in MODEL_KEYS:
                    shutil.rmtree(workdir / "models" / m, ignore_errors=True)
                    (workdir / "models" / f"{m}.json").unlink(missing_ok=True)
                _log(f"deleted the models under {workdir / 'models'}")
            _log(f"kept work folder: {workdir}")


def _run_in(
    workdir: Path,
    python: str,
    exes: dict[str, str | None],
    tools: list[str],
    models: list[str],
    time_bin: str | None,
    args: argparse.Namespace,
) -> int:
    """The measuring part of :func:`run_benchmark`, inside an existing work folder."""
    environ = child_env()
    runner = Runner(workdir / "logs", time_bin, environ)
    sig_dir = workdir / "signatures"
    sig_dir.mkdir(exist_ok=True)
    ideal_script = workdir / "ideal_hash.py"
    ideal_script.write_text(IDEAL_SCRIPT)
    priv, pub = ensure_keys(workdir / "keys")
    env = Env(
        python=python,
        modelguard=exes.get("modelguard"),
        model_signing=exes.get("model_signing"),
        ideal_script=ideal_script,
        private_key=priv,
        public_key=pub,
        sig_dir=sig_dir,
    )

    versions: dict[str, str] = {}
    compiled: dict[str, str | None] = {}
    for t in tools:
        exe = exes[t]
        assert exe is not None
        py = script_python(exe) or python
        versions[t] = dist_version(py, t.replace("_", "-"))
        # An editable install run with PYTHONDONTWRITEBYTECODE=1 has no byte code: compile it
        # once, as `pip install` would have.
        compiled[t] = compile_package(py, t, environ)

    specs = {"big": big_model_spec(args.size_mb), "tiny": TINY_SPEC}
    paths: dict[str, Path] = {}
    files: dict[str, tuple[Path, ...]] = {}
    for m in models:
        paths[m] = workdir / "models" / m
        files[m] = ensure_model(paths[m], specs[m], SEED + MODEL_KEYS.index(m))

    res = Results()
    res.meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "child_python": python,
        "rounds": {"big": args.rounds, "tiny": args.tiny_rounds},
        "workdir": str(workdir),
        "tools": {
            t: {"exe": exes[t], "version": versions[t], "compiled": compiled[t]} for t in tools
        },
        "rss_source": "gnu-time" if time_bin else "wait4",
        "pythondontwritebytecode_removed": "PYTHONDONTWRITEBYTECODE" in os.environ,
        "loadavg_start": os.getloadavg(),
    }
    res.models = {
        m: {
            "path": str(paths[m]),
            "files": len(files[m]),
            "bytes": sum(p.stat().st_size for p in files[m]),
        }
        for m in models
    }
    _print_header(res, models)

    for m in models:
        cmds = [name for name, tool, on in COMMANDS if m in on and tool in ("baseline", *tools)]
        warm_cache(files[m])
        _warm_up(runner, env, m, paths[m], cmds, res.models[m])
        rounds = args.rounds if m == "big" else args.tiny_rounds
        for r in range(rounds):
            k = r % len(cmds)
            for pos, name in enumerate([*cmds[k:], *cmds[:k]]):
                tag = f"{m}-{name.replace(' ', '_')}-r{r}"
                argv, sig = command_argv(env, name, m, paths[m], f"r{r}")
                if name.endswith(" sign"):
                    sig.unlink(missing_ok=True)
                s = runner.run(argv, tag)
                if name.endswith(" sign"):
                    sig.unlink(missing_ok=True)
                res.samples.append(
                    {
                        "model": m,
                        "command": name,
                        "round": r,
                        "position": pos,
                        **dataclasses.asdict(s),
                    }
                )
                _log(
                    f"  {m:4s} {name:22s} round {r + 1}/{rounds}: {s.wall_s:7.3f} s  "
                    f"cpu {s.cpu_s:6.3f} s  rss {s.rss_mb:6.1f} MB  rc {s.rc}"
                )
                if s.rc != 0:
                    _log(f"    warning: {name} exited {s.rc}:\n{runner.stderr_tail(tag, 4)}")

    res.meta["loadavg_end"] = os.getloadavg()
    _summarise(res, models)
    _print_report(res, models)
    if args.json:
        Path(args.json).write_text(json.dumps(res, default=_json_default, indent=2) + "\n")
        _log(f"results written to {args.json}")
    failed = [c for c in res.checks if c["gating"] and c["status"] == "FAIL"]
    return 1 if (args.check and failed) else 0


def _warm_up(
    runner: Runner, env: Env, model: str, path: Path, cmds: list[str], info: dict[str, Any]
) -> None:
    """Run every command once, untimed, signers first (their output is what verify reads).

    Doubles as the preflight: a command that fails stops the benchmark with its stderr.
    """
    order = sorted(cmds, key=lambda c: (c.endswith(" verify"), cmds.index(c)))
    for name in order:
        tag = f"warmup-{model}-{name.replace(' ', '_')}"
        argv, sig = command_argv(env, name, model, path, "warmup")
        if name.endswith(" sign"):
            sig.unlink(missing_ok=True)
        t0 = time.perf_counter()
        s = runner.run(argv, tag)
        _log(f"  warm-up {model:4s} {name:22s} {time.perf_counter() - t0:7.3f} s  rc {s.rc}")
        ok = s.rc == 0 and (not name.endswith(" sign") or sig.is_file())
        if not ok:
            hint = ""
            if name.startswith("modelguard"):
                hint = (
                    " Are `modelguard sign/verify` implemented yet? Meanwhile measure the rest"
                    " with `--tools model_signing`."
                )
            raise BenchError(
                f"`{name}` failed on the {model} model (exit {s.rc}).{hint}\n"
                f"  command: {shlex.join(argv)}\n{runner.stderr_tail(tag)}"
            )
        if name == "ideal":
            out = json.loads(runner.output(tag).strip().splitlines()[-1])
            if out["files"] != info["files"] or out["bytes"] != info["bytes"]:
                raise BenchError(f"the baseline hashed {out}, expected {info}")


def _json_default(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _print_header(res: Results, models: list[str]) -> None:
    meta = res.meta
    print(f"modelguard signing benchmark - {meta['date']} on {meta['host']} ({meta['cpus']} CPUs)")
    print(
        f"python {meta['python']}; rounds: big {meta['rounds']['big']}, "
        f"tiny {meta['rounds']['tiny']} (interleaved, rotated)"
    )
    for t, info in meta["tools"].items():
        print(f"  {t} {info['version']}: {info['exe']}")
    if meta["rss_source"] == "gnu-time":
        print("peak RSS: GNU time %M; CPU: wait4 of each child; wall: perf_counter around it")
    else:
        print("peak RSS: wait4 ru_maxrss (no GNU time): floored at this process's own RSS")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in meta['loadavg_start'])}")
    for m in models:
        info = res.models[m]
        print(f"  {m:4s} {info['bytes'] / 1e6:12,.2f} MB in {info['files']} files  {info['path']}")
    print(flush=True)


def _summarise(res: Results, models: list[str]) -> None:
    """Fill ``res.summary`` (medians, ratios) and ``res.checks`` (targets)."""
    per: dict[str, dict[str, dict[str, Any]]] = {}
    for m in models:
        per[m] = {}
        for name, _, on in COMMANDS:
            wall = res.values(m, name, "wall_s")
            if m not in on or not wall:
                continue
            per[m][name] = {
                "wall_median": statistics.median(wall),
                "wall_min": min(wall),
                "wall_max": max(wall),
                "cpu_median": statistics.median(res.values(m, name, "cpu_s")),
                "rss_median": statistics.median(res.values(m, name, "rss_mb")),
                "rss_max": max(res.values(m, name, "rss_mb")),
                "rcs": sorted({int(x) for x in res.values(m, name, "rc")}),
            }
    ratios: list[dict[str, Any]] = []
    for m, num, den, target in RATIOS:
        if m not in models or num not in per[m] or den not in per[m]:
            continue
        r = paired_ratio(res.per_round(m, num), res.per_round(m, den))
        cpu = paired_ratio(res.per_round(m, num, "cpu_s"), res.per_round(m, den, "cpu_s"))
        ratios.append(
            {"model": m, "num": num, "den": den, "ratio": r, "cpu_ratio": cpu, "target": target}
        )
    if "big" in per and "ideal" in per["big"]:
        per["big"]["ideal"]["gb_per_s"] = (
            res.models["big"]["bytes"] / 1e9 / float(per["big"]["ideal"]["wall_median"])
        )
    res.summary = {"per_model": per, "ratios": ratios}

    checks: list[dict[str, Any]] = []

    def add(cid: str, target: str, ok: bool | None, shown: str, gating: bool = True) -> None:
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        if not gating and ok is not None:
            status = "met" if ok else "not met"
        checks.append(
            {"id": cid, "target": target, "shown": shown, "status": status, "gating": gating}
        )

    mg = [s for s in res.samples if str(s["command"]).startswith("modelguard")]
    if mg:
        bad = [s for s in res.samples if s["rc"] != 0]
        add(
            "complete",
            "every measured run exited 0 (signed / verified)",
            not bad,
            f"{len(res.samples) - len(bad)}/{len(res.samples)} exit 0",
        )
        for row in ratios:
            if row["target"] is None:
                continue
            r = row["ratio"]
            verb = row["num"].split()[1]
            # The big-model target is about >= 2 GB; below that, start-up dominates and the
            # ratio is shown for information only.
            small = row["model"] == "big" and res.models["big"]["bytes"] < BIG_TARGET_MIN_BYTES
            add(
                f"{row['model']}-{verb}",
                f"{row['model']}: {row['num']} <= {row['target']:.2f}x {row['den']}"
                + (" (information only below 2 GB)" if small else ""),
                None if r is None else r <= row["target"],
                fmt_ratio(r),
                gating=not small,
            )
        for m in models:
            for name in ("modelguard sign", "modelguard verify"):
                st = per[m].get(name)
                if st is None:
                    continue
                rss = float(st["rss_max"])
                add(
                    f"rss-{m}-{name.split()[1]}",
                    f"{m}: {name} peak RSS < {TARGET_RSS_MB:.0f} MB (max over rounds)",
                    rss < TARGET_RSS_MB,
                    f"{rss:.1f} MB",
                )
    res.checks = checks


TABLE_HEADERS = [
    *("command", "wall s", "cpu s", "rss MB", "exit"),
    *("ratio", "cpu ratio", "target", "status", "vs"),
]


def _print_report(res: Results, models: list[str]) -> None:
    per = res.summary["per_model"]
    ratio_of: dict[tuple[str, str], dict[str, Any]] = {}
    for r in res.summary["ratios"]:
        if r["den"] != "python -c pass":
            ratio_of.setdefault((r["model"], r["num"]), r)
    print("\nwarm page cache, whole process; median (min-max) over rounds. ratio: median of")
    print("per-round paired wall-time ratios against the command named in the last column;")
    print("cpu ratio: the same for CPU time (user + sys), for context: it is not a target")
    for m in models:
        info = res.models[m]
        print(f"\n{m} model: {info['bytes'] / 1e6:,.2f} MB in {info['files']} files")
        rows = []
        for name, _, on in COMMANDS:
            st = per[m].get(name)
            if m not in on or st is None:
                continue
            r = ratio_of.get((m, name))
            status = "-"
            target = "-"
            if r is not None and r["target"] is not None:
                target = f"<= {r['target']:.2f}x"
                if r["ratio"] is not None:
                    status = "PASS" if r["ratio"] <= r["target"] else "FAIL"
                    if m == "big" and res.models[m]["bytes"] < BIG_TARGET_MIN_BYTES:
                        status = "met" if status == "PASS" else "not met"
            rows.append(
                [
                    name,
                    f"{fmt_s(st['wall_median'])} ({fmt_s(st['wall_min'])}-{fmt_s(st['wall_max'])})",
                    fmt_s(st["cpu_median"]),
                    f"{st['rss_median']:.1f}",
                    ",".join(str(x) for x in st["rcs"]),
                    "-" if r is None else fmt_ratio(r["ratio"]),
                    "-" if r is None else fmt_ratio(r["cpu_ratio"]),
                    target,
                    status,
                    "-" if r is None else r["den"],
                ]
            )
        print_table(TABLE_HEADERS, rows)
        ideal = per[m].get("ideal")
        if ideal is not None and "gb_per_s" in ideal:
            print(f"  ideal hashlib loop: {ideal['gb_per_s']:.2f} GB/s")
    extra = [r for r in res.summary["ratios"] if r["den"] == "python -c pass"]
    if extra:
        print("\ncontext (tiny): start-up over a bare `python -c pass`")
        for r in extra:
            print(f"  {r['num']:22s} {fmt_ratio(r['ratio'])}")

    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in res.meta['loadavg_end'])}")
    if not res.checks:
        print("\ntargets: not evaluated (modelguard not in --tools)")
        return
    print("\ntargets")
    for c in res.checks:
        print(f"  {c['status']:7s}  {c['target']}: {c['shown']}")
    n_fail = sum(c["status"] == "FAIL" for c in res.checks if c["gating"])
    n_pass = sum(c["status"] == "PASS" for c in res.checks if c["gating"])
    print(f"\n{'FAIL' if n_fail else 'PASS'}: {n_pass} passed, {n_fail} failed", flush=True)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line options."""
    p = argparse.ArgumentParser(
        description="Benchmark `modelguard sign/verify` against an ideal hashlib loop and "
        "model_signing (see benchmarks/README.md).",
    )
    p.add_argument(
        "--size-mb",
        type=int,
        default=None,
        help=f"size of the big model in MiB (default {DEFAULT_SIZE_MB}: 2 x 768 + 4 x 128 MiB); "
        "the targets are meant for >= 2 GB",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: a 64 MiB big model, 1 round, 3 tiny rounds",
    )
    p.add_argument("--rounds", type=int, default=None, help="rounds on the big model (default 3)")
    p.add_argument(
        "--tiny-rounds",
        type=int,
        default=None,
        help="rounds on the tiny model (default 9: cheap and noisy)",
    )
    p.add_argument(
        "--tools",
        default=",".join(TOOL_NAMES),
        help="comma-separated tools (default: modelguard,model_signing); the ideal hashlib "
        "baseline always runs",
    )
    p.add_argument("--models", default=",".join(MODEL_KEYS), help="default: big,tiny")
    p.add_argument(
        "--workdir",
        help="scratch folder; models, keys and logs are built or reused there (never deleted)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary scratch folder")
    p.add_argument(
        "--delete-models",
        action="store_true",
        help="with --workdir or --keep: delete the generated models at the end (keep the rest)",
    )
    p.add_argument(
        "--rss-source",
        choices=("auto", "gnu-time", "wait4"),
        default="auto",
        help="peak RSS from GNU time (auto: if found) or from wait4's ru_maxrss",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        default="bench_signing.json",
        help="write samples, summary and checks to FILE (default bench_signing.json; '' for none)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if any target FAILs")
    args = p.parse_args(argv)
    if args.quick:
        args.size_mb = 64 if args.size_mb is None else args.size_mb
        args.rounds = 1 if args.rounds is None else args.rounds
        args.tiny_rounds = 3 if args.tiny_rounds is None else args.tiny_rounds
    args.size_mb = DEFAULT_SIZE_MB if args.size_mb is None else args.size_mb
    args.rounds = 3 if args.rounds is None else args.rounds
    args.tiny_rounds = 9 if args.tiny_rounds is None else args.tiny_rounds
    if args.rounds < 1 or args.tiny_rounds < 1:
        p.error("--rounds and --tiny-rounds must be at least 1")
    if args.size_mb < 16:
        p.error("--size-mb must be at least 16")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point.

    Returns 0 after a measurement (even if targets FAIL), 1 if ``--check`` and a target FAILs,
    2 on a setup error.
    """
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep stdout and stderr lines in order
    try:
        return run_benchmark(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
