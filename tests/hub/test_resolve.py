"""`hf://` targets: parsing, offline resolution pinned to a commit, incomplete snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelguard import scan
from modelguard.cli import ExitCode, main
from modelguard.errors import SourceError
from modelguard.hub import HubSpec, parse_hf_spec, resolve_hf_target
from modelguard.report.json import load_schema
from modelguard.results import Verdict

from .cachebuild import add_snapshot, commit_id
from .conftest import CLEAN, HubCache


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("hf://org/name", HubSpec("org/name")),
        ("hf://org/name@v1.0", HubSpec("org/name", revision="v1.0")),
        (
            "hf://org/name@main/sub/f.bin",
            HubSpec("org/name", revision="main", filename="sub/f.bin"),
        ),
        ("hf://org/name/f.bin", HubSpec("org/name", filename="f.bin")),
        ("hf://gpt2@main", HubSpec("gpt2", revision="main")),
        ("hf://org/name@refs%2Fpr%2F1", HubSpec("org/name", revision="refs/pr/1")),
        ("hf://datasets/org/data@main", HubSpec("org/data", "dataset", "main")),
    ],
)
def test_parse(spec: str, expected: HubSpec) -> None:
    assert parse_hf_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "hf://",
        "hf://org/name@",
        "hf://org/name@..%2F..%2Fx",
        "hf://org/name@main/../x",
        "hf://a/b/c@main",
        "hf://org--x/name",
        "hf://org/name@main//f",
        "hf://-org/name",
    ],
)
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(SourceError, match="invalid Hugging Face target"):
        parse_hf_spec(spec)


def test_branch_resolves_to_commit(hub_cache: HubCache) -> None:
    hit = resolve_hf_target("hf://org/clean")
    assert hit.commit == hub_cache.clean
    assert hit.display == f"org/clean@{hub_cache.clean}"
    assert hit.path == hub_cache.root / "models--org--clean" / "snapshots" / hub_cache.clean
    assert hit.note is not None and hub_cache.clean in hit.note
    assert hit.incomplete == ()
    pinned = resolve_hf_target(f"hf://org/clean@{hub_cache.clean_old}", cache_dir=hub_cache.root)
    assert pinned.commit == hub_cache.clean_old and pinned.note is None


def test_scan_reports_commit_scanned(hub_cache: HubCache) -> None:
    report = scan("hf://org/clean@main")
    base = f"org/clean@{hub_cache.clean}"
    assert report.verdict is Verdict.SAFE and report.complete
    assert [r.path for r in report.files] == [
        f"{base}/config.json",
        f"{base}/model.pkl",
        f"{base}/sub/extra.pkl",
    ]
    assert report.sources == (("hf://org/clean@main", base),)
    assert report.targets == ("hf://org/clean@main",)
    assert any(hub_cache.clean in note and "main" in note for note in report.notes)


def test_single_file_target(hub_cache: HubCache) -> None:
    report = scan("hf://org/clean@main/sub/extra.pkl")
    assert [r.path for r in report.files] == [f"org/clean@{hub_cache.clean}/sub/extra.pkl"]
    assert report.verdict is Verdict.SAFE


def test_malicious_snapshot_cli(hub_cache: HubCache, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["scan", "hf://org/evil", "--format", "json", "-q"])
    assert code == ExitCode.FINDINGS
    document = json.loads(capsys.readouterr().out)
    import jsonschema

    jsonschema.validate(document, load_schema())
    assert document["verdict"] == "dangerous"
    assert document["sources"] == [
        {"target": "hf://org/evil", "resolved": f"org/evil@{hub_cache.evil}"}
    ]
    bad = [f for f in document["files"] if f["verdict"] == "dangerous"]
    assert [f["path"] for f in bad] == [f"org/evil@{hub_cache.evil}/pytorch_model.bin"]
    assert {x["rule_id"] for x in bad[0]["findings"]} & {"MG101", "MG103"}


def test_not_cached_is_source_error(
    hub_cache: HubCache, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SourceError, match="not in the Hugging Face cache"):
        scan("hf://org/absent")
    with pytest.raises(SourceError, match="not in the Hugging Face cache"):
        scan("hf://org/clean@no-such-branch")
    with pytest.raises(SourceError, match="not in the Hugging Face cache"):
        scan(f"hf://org/clean@{commit_id('never')}")
    with pytest.raises(SourceError, match="no file"):
        scan("hf://org/clean@main/nope.bin")
    assert main(["scan", "hf://org/absent"]) == ExitCode.USAGE
    assert "org/absent" in capsys.readouterr().err


def test_incomplete_snapshot_is_never_safe(hub_cache: HubCache) -> None:
    report = scan("hf://org/partial")
    base = f"org/partial@{hub_cache.partial}"
    by_path = {r.path: r for r in report.files}
    missing = by_path[f"{base}/model.safetensors"]
    assert [i.rule_id for i in missing.incomplete] == ["MG601"]
    partial = by_path["org/partial/blobs/0123abcd.incomplete"]
    assert [i.rule_id for i in partial.incomplete] == ["MG602"]
    assert by_path[f"{base}/config.json"].complete
    assert not report.complete and report.verdict is Verdict.ERROR
    assert main(["scan", "-q", "hf://org/partial"]) == ExitCode.INCOMPLETE
    # A file that exists in an incomplete snapshot can still be scanned on its own ...
    alone = scan("hf://org/partial@main/config.json")
    assert [r.path for r in alone.files if r.complete] == [f"{base}/config.json"]
    # ... and the missing one alone is incomplete, not an error of the command line.
    only = scan("hf://org/partial@main/model.safetensors")
    assert f"{base}/model.safetensors" in {r.path for r in only.files}
    assert not only.complete


def test_pull_request_ref_keeps_provenance(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    commit = commit_id("pr")
    add_snapshot(
        cache,
        "org/pr",
        commit,
        {"config.json": b'{"model_type": "bert"}', "model.pkl": CLEAN},
        refs=("pr/1",),
    )
    hit = resolve_hf_target("hf://org/pr@pr%2F1", cache_dir=cache)
    assert hit.commit == commit
    from modelguard.indicators.provenance import hub_revision

    revision = hub_revision(str(hit.path))
    assert revision is not None and revision.pr_only


def test_hostile_ref_cannot_escape(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    add_snapshot(cache, "org/x", commit_id("x"), {"config.json": b"{}"})
    (cache / "models--org--x" / "refs" / "main").write_text("../../../../etc")
    with pytest.raises(SourceError):
        resolve_hf_target("hf://org/x", cache_dir=cache)
