#!/usr/bin/env python3
"""Re-scan of an unchanged registry: result cache against a full scan and against hashing alone.

Every figure is one fresh process (start-up included), wall time by ``time.perf_counter``
around the child, warm page cache, interleaved rounds with the order rotated, medians of
per-round ratios. Cases, each over the same registry:

* ``scan``: ``modelguard scan --no-cache`` (the full analysis);
* ``cached``: ``modelguard scan`` with a cache primed by one earlier run (every file a hit);
* ``hash``: a Python process that only hashes every file (`modelguard.hashing.hash_tasks`,
  sha256, the cache's own key), the floor a cached re-scan can reach;
* ``jobs``: ``modelguard scan --no-cache --jobs N``.

Two registries, because the cache pays off only where the analysis costs more than reading the
bytes: ``pickle`` (many torch checkpoints and plain pickles: the symbolic pickle analysis
dominates) and ``safetensors`` (few large files: the scan reads only headers, hashing reads
everything, so the cache is slower there and ``--no-cache`` is the better choice).

    python benchmarks/bench_cache.py              # about 1 minute
    python benchmarks/bench_cache.py --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = 20261127


def _build_pickle_registry(root: Path, models: int) -> None:
    import numpy as np
    import torch

    rng = np.random.default_rng(SEED)
    for m in range(models):
        folder = root / f"org{m % 5}" / f"model{m}"
        folder.mkdir(parents=True)
        state = {
            f"layer{i}.{kind}": torch.from_numpy(rng.standard_normal((64, 16)).astype("float32"))
            for i in range(40)
            for kind in ("weight", "bias")
        }
        torch.save(state, folder / "pytorch_model.bin")
        extra = {"history": [{"step": s, "loss": float(s) / 7} for s in range(2000)]}
        (folder / "training_args.pkl").write_bytes(pickle.dumps(extra, protocol=4))


def _build_safetensors_registry(root: Path, models: int, mib: int) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    n = mib * 1024 * 1024 // 4
    for m in range(models):
        folder = root / f"model{m}"
        folder.mkdir(parents=True)
        data = rng.standard_normal(n).astype("<f4").tobytes()
        header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, len(data)]}})
        raw = header.encode() + b" " * (-len(header) % 8)
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data)


_HASH_ONLY = """
import os, sys
from modelguard.hashing import HashTask, hash_tasks
tasks = [HashTask(os.path.join(d, f), f) for d, _, fs in os.walk(sys.argv[1]) for f in fs]
assert all(r.error is None for r in hash_tasks(tasks, "sha256", follow_symlinks=True))
"""


def _run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return elapsed


def _warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass


def measure(registry: Path, cache_dir: Path, rounds: int, jobs: int) -> dict[str, object]:
    """Return the per-case samples and the median paired ratios for one registry."""
    exe = shutil.which("modelguard")
    base = [exe] if exe else [sys.executable, "-m", "modelguard"]
    scan = [*base, "scan", "-q", "--format", "json", "-o", os.devnull, str(registry)]
    env = {**os.environ, "MODELGUARD_CACHE_DIR": str(cache_dir)}
    cases = {
        "scan": [*scan, "--no-cache"],
        "cached": scan,
        "hash": [sys.executable, "-c", _HASH_ONLY, str(registry)],
        "jobs": [*scan, "--no-cache", "--jobs", str(jobs)],
    }
    _warm(registry)
    _run(scan, env)  # prime the cache
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(_run(cases[name], env))

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(samples[a], samples[b], strict=True))

    return {
        "median_s": {k: statistics.median(v) for k, v in samples.items()},
        "samples": samples,
        "ratios": {
            "cached/scan": ratio("cached", "scan"),
            "cached/hash": ratio("cached", "hash"),
            "jobs/scan": ratio("jobs", "scan"),
        },
    }


def main() -> int:
    """Build the registries, measure, print a table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--models", type=int, default=150, help="models in the pickle registry")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mg-bench-cache-"))
    try:
        _build_pickle_registry(work / "pickle", args.models)
        _build_safetensors_registry(work / "safetensors", 8, 64)
        results = {}
        for name in ("pickle", "safetensors"):
            registry = work / name
            files = [p for p in registry.rglob("*") if p.is_file()]
            size = sum(p.stat().st_size for p in files)
            res = measure(registry, work / f"cache-{name}", args.rounds, args.jobs)
            res["files"], res["bytes"] = len(files), size
            results[name] = res
            med = res["median_s"]
            assert isinstance(med, dict)
            print(f"\n{name}: {len(files)} files, {size / 2**20:.0f} MiB, {args.rounds} rounds")
            for case, seconds in med.items():
                print(f"  {case:<7} {seconds:7.3f} s")
            ratios = res["ratios"]
            assert isinstance(ratios, dict)
            for key, value in ratios.items():
                print(f"  {key:<12} {value:6.2f}x")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
