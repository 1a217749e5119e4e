#!/usr/bin/env python3
"""Scan a model registry on a Dask cluster and write one report, as `modelguard scan` would.

The per-file analysis runs on the cluster's workers (`modelguard.scan(executor=...)`); the
folder-level steps (folder findings, indicators, policy suppressions) and the report stay here.
The report is the same as a local `modelguard scan` of the same folders.

Requirements: ``pip install modelguard "distributed>=2024.1"`` on this machine and on every
worker, and the registry on a file system every worker sees at the same path (NFS, a shared
volume, a bucket mounted with the same path).

Examples::

    # a throwaway cluster of local worker processes
    python examples/registry_scan_dask.py /srv/registry --workers 4 -o report.json

    # an existing cluster (dask scheduler / dask worker, dask-kubernetes, dask-jobqueue, ...)
    python examples/registry_scan_dask.py /shared/registry --scheduler tcp://10.0.0.5:8786 \\
        --format sarif -o modelguard.sarif

Exit codes are the CLI's: 0 clean, 1 a blocking finding, 2 an incomplete scan or bad usage.
"""

from __future__ import annotations

import argparse
import sys

from modelguard import cli
from modelguard.policy import load_policy
from modelguard.report import OutputFormat, render
from modelguard.report.text import summary_line
from modelguard.scanner import scan


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, scan on Dask, write the report; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="registry folders or files to scan")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument(
        "--workers", type=int, default=2, help="local worker processes when no --scheduler"
    )
    parser.add_argument("--policy", help="policy file (default: discovered as the CLI does)")
    parser.add_argument("--format", choices=[f.value for f in OutputFormat], default="json")
    parser.add_argument("-o", "--output", help="write the report here (default: stdout)")
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    policy = load_policy(args.policy, scan_targets=args.paths)
    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        report = scan(args.paths, policy=policy, executor=client.get_executor())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    text = render(report, OutputFormat(args.format))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    sys.stderr.write(summary_line(report) + "\n")
    return int(cli.exit_code(report))


if __name__ == "__main__":
    sys.exit(main())
