"""Time the indicators' streaming tensor pass against plain NumPy reads of the same bytes.

In one process, interleaved, several rounds, on a float32 safetensors model (1 GiB by
default, realistic Gaussian weights):

* `fromfile`: `np.fromfile` of every tensor (offset + count), the plain NumPy read;
* `load_file`: `safetensors.numpy.load_file` of the whole file;
* `full`: `weights.analyse_file` in full mode (every byte, all counts and screens);
* `sampled`: the default mode (4 MiB per tensor).

Warm: the file is read once before the first round. Cold (`--cold`): before every single
run the file's pages are evicted with `posix_fadvise(DONTNEED)` (after an fsync), as
`bench_scan.py --cold` does, so every variant reads from the device. Figures are medians;
ratios are medians of per-round ratios reference_time / full_time (>= 0.8 is the target:
the full pass at no less than 0.8x the speed of a plain NumPy read).

    python benchmarks/bench_indicators.py                 # warm, 5 rounds, ~1 min
    python benchmarks/bench_indicators.py --cold --json ind.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np


def build(folder: Path, gib: float) -> Path:
    """Float32 tensors of 4096 x 4096 (64 MiB) totalling about `gib` GiB.

    Drawn in float64 and rounded to float32: numpy's float32 `standard_normal` (ziggurat on
    fewer random bits) leaves structured low bits (low-byte chi-square ~33000), unlike
    trained weights.
    """
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    count = max(1, round(gib * 16))
    tensors = {
        f"layers.{i}.weight": (rng.standard_normal((4096, 4096)) * 0.02).astype(np.float32)
        for i in range(count)
    }
    path = folder / "model.safetensors"
    save_file(tensors, str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="model size (default 1 GiB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="threads of the pass")
    parser.add_argument("--cold", action="store_true", help="also measure with a cold cache")
    parser.add_argument("--json", type=Path, help="write samples and ratios here")
    parser.add_argument("--workdir", type=Path, help="build or reuse the fixture here")
    args = parser.parse_args()

    from modelguard.indicators.settings import IndicatorSettings
    from modelguard.indicators.tensors import list_tensors, numpy_dtype
    from modelguard.indicators.weights import analyse_file

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="mg-bench-ind-")
        folder = Path(tmp.name)
    else:
        folder = args.workdir
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.safetensors"
    if not path.exists():
        path = build(folder, args.gib)
    size = path.stat().st_size
    listing = list_tensors(str(path))
    full = replace(IndicatorSettings(), mode="full")
    sampled = IndicatorSettings()

    def fromfile() -> None:
        for ref in listing.tensors:
            dt = numpy_dtype(ref.dtype)
            assert dt is not None
            np.fromfile(path, dtype=dt, count=ref.numel, offset=ref.offset)

    def load_file() -> None:
        from safetensors.numpy import load_file as load

        load(str(path))

    def run_full() -> None:
        findings, _ = analyse_file(listing, "m", full, workers=args.workers)
        assert not [f for f in findings if f.rule_id != "MG502"], findings

    def run_sampled() -> None:
        analyse_file(listing, "m", sampled, workers=args.workers)

    variants: dict[str, Callable[[], None]] = {
        "fromfile": fromfile,
        "load_file": load_file,
        "full": run_full,
        "sampled": run_sampled,
    }
    result: dict[str, object] = {"bytes": size, "rounds": args.rounds, "cpus": os.cpu_count()}
    caches = ["warm"] + (["cold"] if args.cold else [])
    print(
        f"{size / 2**30:.2f} GiB float32 safetensors, {args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    for cache in caches:
        samples: dict[str, list[float]] = {k: [] for k in variants}
        with open(path, "rb") as fh:  # warm the page cache
            while fh.read(1 << 24):
                pass
        for _ in range(args.rounds):
            for name, fn in variants.items():
                if cache == "cold":
                    evict(path)
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
        ratios = {
            ref: statistics.median(
                r / f for r, f in zip(samples[ref], samples["full"], strict=True)
            )
            for ref in ("fromfile", "load_file")
        }
        print(f"[{cache}]")
        for name, times in samples.items():
            med = statistics.median(times)
            print(f"  {name:10s} {med * 1000:8.1f} ms  {size / med / 1e9:6.2f} GB/s")
        for ref, ratio in ratios.items():
            print(f"  full pass speed / {ref} speed: {ratio:.2f}x")
        result[cache] = {"samples": samples, "ratios": ratios}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
