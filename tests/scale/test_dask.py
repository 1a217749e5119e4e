"""A registry scan on a real Dask cluster (local processes) equals the local serial scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelguard.report import OutputFormat, render
from modelguard.scanner import scan

from .registry import build_registry

distributed = pytest.importorskip("distributed")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dask_local_cluster_equals_serial(tmp_path: Path) -> None:
    registry = build_registry(tmp_path, models=9)
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        done: list[int] = []
        remote = scan(
            registry, executor=client.get_executor(), progress=lambda d, t, p: done.append(d)
        )
        # the work really ran on the cluster's worker processes
        ran = client.run(lambda: __import__("sys").modules.get("modelguard.filescan") is not None)
    local = scan(registry)
    assert remote.verdict.value == "dangerous"
    assert render(remote, OutputFormat.JSON) == render(local, OutputFormat.JSON)
    assert any(ran.values())
    assert done[-1] == len(local.files)


def test_example_script_matches_cli(tmp_path: Path) -> None:
    """examples/registry_scan_dask.py on a local cluster writes the CLI's report and exit code."""
    import json
    import subprocess
    import sys

    registry = build_registry(tmp_path, models=4)
    example = Path(__file__).parents[2] / "examples" / "registry_scan_dask.py"
    out = tmp_path / "dask.json"
    run = subprocess.run(
        [sys.executable, str(example), str(registry), "--workers", "2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelguard",
            "scan",
            "--format",
            "json",
            "--no-cache",
            str(registry),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == cli.returncode == 1, run.stderr[-2000:]
    assert json.loads(out.read_text()) == json.loads(cli.stdout)
