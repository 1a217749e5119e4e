"""`preflight`: what a download would fetch, with the Hub's scan status as evidence only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelguard.errors import SourceError
from modelguard.hub import preflight

COMMIT = "a" * 40


class _FakeApi:
    """Stands in for huggingface_hub.HfApi: answers what the Hub would, without a network."""

    def __init__(self, token: Any = None) -> None:
        self.token = token

    def model_info(self, repo_id: str, revision: str | None, securityStatus: bool) -> Any:
        assert securityStatus
        return SimpleNamespace(sha=COMMIT, security_repo_status={"scansDone": True})

    def list_repo_tree(self, repo_id: str, **kw: Any) -> list[Any]:
        from huggingface_hub.hf_api import RepoFile, RepoFolder

        assert kw["revision"] == COMMIT and kw["expand"] and kw["recursive"]
        pickle_file = RepoFile(
            path="pytorch_model.bin",
            size=10,
            oid="b" * 40,
            lfs={"size": 10, "oid": "c" * 64, "pointerSize": 100},
            securityFileStatus={
                "status": "unsafe",
                "avScan": {"virusFound": False},
                "pickleImportScan": {"highestSafetyLevel": "dangerous"},
            },
        )
        return [
            RepoFile(path="config.json", size=2, oid="d" * 40),
            pickle_file,
            RepoFolder(path="sub", oid="e" * 40),
        ]


def test_preflight_lists_files_with_hub_evidence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    report = preflight("org/name")
    assert report.commit == COMMIT
    assert [f.path for f in report.files] == ["config.json", "pytorch_model.bin"]
    pkl = report.files[1]
    assert pkl.lfs_sha256 == "c" * 64 and pkl.hub_status == "unsafe" and not pkl.cached
    assert report.to_download == report.files
    assert report.hub_repo_status is not None
    assert ("pickle_import_scan", "{'highestSafetyLevel': 'dangerous'}") in pkl.hub_evidence


def test_preflight_offline_is_a_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="preflight"):
        preflight("org/name")


@pytest.mark.online
def test_preflight_real_hub() -> None:
    report = preflight("hf-internal-testing/tiny-random-bert")
    assert len(report.commit) == 40
    assert any(f.path == "config.json" for f in report.files)
