"""`hf://` targets and the cache audit: pinned commits, damaged metadata, subfolders, digests."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from modelguard import scan
from modelguard.errors import SourceError
from modelguard.hub import policy_scope, scan_hf_cache
from modelguard.hub.resolve import metadata_problem
from modelguard.results import ScanReport, Verdict

from .cachebuild import add_snapshot, commit_id, repo_folder
from .conftest import CLEAN, CONFIG, HubCache


def _mg532(report: ScanReport) -> list[str]:
    return [f.message for f in report.findings if f.rule_id == "MG532"]


def test_pinned_commit_is_not_reported_unpinned(hub_cache: HubCache) -> None:
    by_branch = _mg532(scan("hf://org/clean@main"))
    assert len(by_branch) == 1 and "resolved from branch main" in by_branch[0]
    assert _mg532(scan(f"hf://org/clean@{hub_cache.clean}")) == []
    # The same snapshot also reached through a branch in the same scan: still reported.
    both = scan([f"hf://org/clean@{hub_cache.clean}", "hf://org/clean@main"])
    assert len(_mg532(both)) == 1
    # A plain-folder scan of the snapshot is not pinned by anyone.
    snapshot = repo_folder(hub_cache.root, "org/clean") / "snapshots" / hub_cache.clean
    assert len(_mg532(scan(snapshot))) == 1


def test_pinned_pull_request_commit_keeps_unreviewed_finding(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    commit = commit_id("pr")
    add_snapshot(
        cache, "org/pr", commit, {"config.json": CONFIG, "model.pkl": CLEAN}, refs=("pr/1",)
    )
    from modelguard.hub import resolve_hf_target
    from modelguard.hub.resolve import with_pinned

    hit = resolve_hf_target(f"hf://org/pr@{commit}", cache_dir=cache)
    assert hit.pinned
    report = scan(hit.path)  # the folder itself: the provenance indicator sees refs/pr/1
    kept = with_pinned(report, [hit])
    assert _mg532(report) and _mg532(kept) == _mg532(report)
    assert "pull-request" in _mg532(kept)[0]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "link-inside-refs"])
def test_unsafe_metadata_is_refused_and_audited(hub_cache: HubCache, kind: str) -> None:
    storage = repo_folder(hub_cache.root, "org/evil")
    main = storage / "refs" / "main"
    main.unlink()
    if kind == "symlink":
        main.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(main)
    else:
        main.mkdir()
        (main / "x").symlink_to("/etc")  # a link inside refs/
    assert metadata_problem(storage) is not None
    with pytest.raises(SourceError, match="damaged"):
        scan("hf://org/evil")
    report = scan_hf_cache(hub_cache.root)
    by_path = {r.path: r for r in report.files}
    assert [i.rule_id for i in by_path["org/evil/"].incomplete] == ["MG603"]
    # Still scanned as a plain folder, and the other repositories are listed as usual.
    assert by_path[f"org/evil@{hub_cache.evil}/pytorch_model.bin"].verdict is Verdict.DANGEROUS
    assert dict(report.sources)["hf://org/clean@main"] == f"org/clean@{hub_cache.clean}"
    assert metadata_problem(repo_folder(hub_cache.root, "org/clean")) is None


def test_subfolder_target_matches_whole_components(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    add_snapshot(
        cache,
        "org/p",
        commit_id("p"),
        {"sub/config.json": CONFIG},
        listed_only=("sub/deep/w.bin", "subx/w.bin"),
    )
    from modelguard.hub import resolve_hf_target

    hit = resolve_hf_target("hf://org/p@main/sub", cache_dir=cache)
    assert [r.path.rsplit("/", 2)[-2:] for r in hit.incomplete] == [["deep", "w.bin"]]


def test_digest_checked_on_file_target_only_for_hub_files(hub_cache: HubCache) -> None:
    storage = repo_folder(hub_cache.root, "org/clean")
    blob = Path(os.path.realpath(storage / "snapshots" / hub_cache.clean / "model.pkl"))
    assert len(blob.name) == 64
    blob.write_bytes(pickle.dumps({"weight": [0.0]}, protocol=4))
    alone = scan("hf://org/clean@main/model.pkl")
    assert [f.rule_id for f in alone.findings] == ["MG604"]
    # A plain scan of an unrelated folder never hashes its files against their names.
    other = storage.parent / "plain"
    other.mkdir()
    (other / blob.name).write_bytes(b"not the digest")
    assert not any(f.rule_id == "MG604" for f in scan(other).findings)


def test_policy_scope_covers_snapshots_and_cache(hub_cache: HubCache, tmp_path: Path) -> None:
    snapshot = repo_folder(hub_cache.root, "org/clean") / "snapshots" / hub_cache.clean
    scope = policy_scope(["hf://org/clean@main/sub/extra.pkl", tmp_path], "")
    assert scope == [snapshot, tmp_path, hub_cache.root.resolve()]
