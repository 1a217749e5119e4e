"""`scan_hf_cache` / `scan --hf-cache`: every revision, each blob scanned once, digests checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelguard.cli import ExitCode, main
from modelguard.errors import SourceError
from modelguard.hub import scan_hf_cache
from modelguard.report.json import load_schema
from modelguard.results import Verdict

from .cachebuild import add_snapshot, commit_id
from .conftest import CLEAN, HubCache


def test_audit_whole_cache(hub_cache: HubCache) -> None:
    seen: list[str] = []
    report = scan_hf_cache(hub_cache.root, progress=lambda done, total, path: seen.append(path))
    by_path = {r.path: r for r in report.files}
    old, new = f"org/clean@{hub_cache.clean_old}", f"org/clean@{hub_cache.clean}"

    # Every snapshot file is reported under its own repo@commit/file name ...
    for name in ("config.json", "model.pkl"):
        assert by_path[f"{old}/{name}"].verdict is Verdict.SAFE
        assert by_path[f"{new}/{name}"].verdict is Verdict.SAFE
    assert by_path[f"{new}/sub/extra.pkl"].verdict is Verdict.SAFE
    # ... but each unique blob was scanned once per file name: the clean pickle is shared by
    # two `model.pkl` (one scan) and `sub/extra.pkl` (its own scan: findings can depend on the
    # name), the config by both revisions.
    assert len(seen) == len(set(seen))
    assert len({f"{old}/model.pkl", f"{new}/model.pkl"} & set(seen)) == 1
    assert f"{new}/sub/extra.pkl" in seen
    assert len({f"{old}/config.json", f"{new}/config.json"} & set(seen)) == 1

    evil = by_path[f"org/evil@{hub_cache.evil}/pytorch_model.bin"]
    assert evil.verdict is Verdict.DANGEROUS
    assert all(f.location.path == evil.path for f in evil.findings)

    tampered = by_path[f"org/tampered@{hub_cache.tampered}/weights.pkl"]
    mismatch = [f for f in tampered.findings if f.rule_id == "MG604"]
    assert len(mismatch) == 1 and mismatch[0].severity.value == "high"
    assert mismatch[0].evidence_map["expected_sha256"] == hub_cache.tampered_blob.name
    assert mismatch[0].location.path == tampered.path
    # Untouched LFS blobs pass the check.
    assert not any(
        f.rule_id == "MG604" for r in report.files if r is not tampered for f in r.findings
    )

    assert [
        i.rule_id for i in by_path[f"org/partial@{hub_cache.partial}/model.safetensors"].incomplete
    ] == ["MG601"]
    assert [i.rule_id for i in by_path["org/partial/blobs/0123abcd.incomplete"].incomplete] == [
        "MG602"
    ]
    assert not report.complete and report.verdict is Verdict.DANGEROUS

    sources = dict(report.sources)
    assert sources["hf://org/clean@main"] == new
    assert sources[f"hf://org/clean@{hub_cache.clean_old}"] == old


def test_shared_blob_results_are_relabelled_copies(hub_cache: HubCache) -> None:
    report = scan_hf_cache(hub_cache.root)
    by_path = {r.path: r for r in report.files}
    a = by_path[f"org/clean@{hub_cache.clean_old}/model.pkl"]
    b = by_path[f"org/clean@{hub_cache.clean}/sub/extra.pkl"]
    assert (a.size, a.formats) == (b.size, b.formats)


def test_cli_hf_cache(hub_cache: HubCache, capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema

    assert main(["scan", "--hf-cache", str(hub_cache.root), "--format", "json", "-q"]) == (
        ExitCode.FINDINGS
    )
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema())
    assert document["targets"] == [hub_cache.root.resolve().as_posix()]
    # Default folder: huggingface_hub's HF_HUB_CACHE (patched by the fixture).
    assert main(["scan", "--hf-cache", "--format", "sarif", "-q"]) == ExitCode.FINDINGS
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["runs"][0]["properties"]["sources"]
    assert main(["scan", "--hf-cache", str(hub_cache.root), "x.pkl"]) == ExitCode.USAGE
    assert main(["scan"]) == ExitCode.USAGE
    assert main(["scan", "--hf-cache", str(hub_cache.root / "nope")]) == ExitCode.USAGE


def test_clean_cache_passes(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    add_snapshot(cache, "org/a", commit_id("a"), {"config.json": b"{}", "w.pkl": CLEAN})
    add_snapshot(cache, "datasets/ignored", commit_id("d"), {"x.pkl": CLEAN}, repo_type="dataset")
    report = scan_hf_cache(cache)
    assert report.complete and report.verdict is Verdict.SAFE
    assert f"datasets/datasets/ignored@{commit_id('d')}/x.pkl" in {r.path for r in report.files}


def test_corrupted_repo_is_incomplete_but_still_scanned(hub_cache: HubCache) -> None:
    snapshot = hub_cache.root / "models--org--evil" / "snapshots" / hub_cache.evil
    (snapshot / "dangling.bin").symlink_to("../../blobs/" + "0" * 64)
    report = scan_hf_cache(hub_cache.root)
    by_path = {r.path: r for r in report.files}
    assert [i.rule_id for i in by_path["org/evil/"].incomplete] == ["MG603"]
    # huggingface_hub drops the whole repo; its files are still scanned as a plain folder.
    assert by_path[f"org/evil@{hub_cache.evil}/pytorch_model.bin"].verdict is Verdict.DANGEROUS
    assert not by_path[f"org/evil@{hub_cache.evil}/dangling.bin"].complete


def test_missing_cache_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no Hugging Face cache"):
        scan_hf_cache(tmp_path / "absent")
