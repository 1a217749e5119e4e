"""What is not a hub cache, what is not cached, and snapshots without a cached tree listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelguard import scan
from modelguard.cli import ExitCode, main
from modelguard.errors import SourceError
from modelguard.hub import resolve_hf_target, scan_hf_cache
from modelguard.results import Verdict

from .cachebuild import add_snapshot, commit_id, repo_folder
from .conftest import CLEAN, CONFIG, HubCache

NO_TREE = "could not check the snapshot for missing files: no cached tree listing"


def test_folder_without_repositories_is_not_a_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("hi")
    (folder / "models--file-not-folder").write_text("x")  # a repo name, but not a folder
    with pytest.raises(SourceError, match="is not a Hugging Face hub cache: no models--org--name"):
        scan_hf_cache(folder)
    assert main(["scan", "--hf-cache", str(folder)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "is not a Hugging Face hub cache" in err and "cache warning" not in err


@pytest.mark.parametrize("content", [(), (".locks", "version.txt")])
def test_empty_cache_is_refused(tmp_path: Path, content: tuple[str, ...]) -> None:
    cache = tmp_path / "hub"
    cache.mkdir()
    for name in content:
        (cache / name).mkdir()
    with pytest.raises(SourceError, match="holds no cached repository"):
        scan_hf_cache(cache)
    assert main(["scan", "-q", "--hf-cache", str(cache)]) == ExitCode.USAGE


def test_cache_with_one_repository_and_clutter_is_audited(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    add_snapshot(cache, "org/a", commit_id("a"), {"config.json": CONFIG, "w.pkl": CLEAN})
    (cache / ".locks").mkdir()
    (cache / "version.txt").write_text("1")
    report = scan_hf_cache(cache)
    assert report.complete and report.verdict is Verdict.SAFE


def test_absent_repository_is_named_as_such(
    hub_cache: HubCache, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SourceError, match="repository org/nope is not in the Hugging Face cache"):
        scan("hf://org/nope")
    with pytest.raises(SourceError, match="repository datasets/org/nope is not in the Hugging"):
        scan("hf://datasets/org/nope@v1")
    with pytest.raises(SourceError, match="repository org/nope is not in") as info:
        resolve_hf_target("hf://org/nope", cache_dir=hub_cache.root / "absent")
    assert "revision" not in str(info.value)
    # The repository is cached, the revision is not: the revision is what is named.
    with pytest.raises(SourceError, match="revision 'no-such' of org/clean is not in the"):
        scan("hf://org/clean@no-such")
    with pytest.raises(SourceError, match=r"revision '[0-9a-f]{40}' of org/clean is not in"):
        scan(f"hf://org/clean@{commit_id('never')}")
    assert main(["scan", "hf://org/nope"]) == ExitCode.USAGE
    assert "repository org/nope is not in the Hugging Face cache" in capsys.readouterr().err


def _old_cache(root: Path) -> tuple[str, str]:
    """A cache as older huggingface_hub writes it: one repository without trees/."""
    old, new = commit_id("old"), commit_id("new")
    add_snapshot(root, "org/old", old, {"config.json": CONFIG, "w.pkl": CLEAN}, tree=False)
    add_snapshot(root, "org/new", new, {"config.json": CONFIG, "w.pkl": CLEAN})
    assert not (repo_folder(root, "org/old") / "trees").exists()
    return old, new


def test_snapshot_without_tree_listing_gets_a_note(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    old, _ = _old_cache(cache)
    hit = resolve_hf_target("hf://org/old", cache_dir=cache)
    assert hit.unchecked and hit.incomplete == ()
    assert hit.unchecked_note == f"org/old@{old}: {NO_TREE} " + (
        "(caches written by older huggingface_hub versions have none)"
    )
    listed = resolve_hf_target("hf://org/new@main/w.pkl", cache_dir=cache)
    assert not listed.unchecked and listed.unchecked_note is None


def test_scan_without_tree_listing_is_complete_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    old, _ = _old_cache(cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    report = scan(["hf://org/old", "hf://org/old@main/w.pkl", "hf://org/new"])
    assert report.complete and report.verdict is Verdict.SAFE
    unchecked = [n for n in report.notes if NO_TREE in n]
    assert unchecked == [
        f"org/old@{old}: {NO_TREE} "
        + ("(caches written by older huggingface_hub versions have none)")
    ]
    assert not any(NO_TREE in n for n in scan("hf://org/new").notes)


def test_cache_audit_notes_revisions_without_tree_listing(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    old, new = _old_cache(cache)
    second = commit_id("old-2")
    add_snapshot(cache, "org/old", second, {"w.pkl": CLEAN}, refs=("v2",), tree=False)
    report = scan_hf_cache(cache)
    assert report.complete and report.verdict is Verdict.SAFE
    unchecked = [n for n in report.notes if "no cached tree listing" in n]
    assert len(unchecked) == 1
    assert unchecked[0].startswith("could not check 2 cached revision(s) for missing files")
    named = unchecked[0].rsplit(": ", 1)[1].split(", ")
    assert named == sorted([f"org/old@{old}", f"org/old@{second}"])
    # A cache where every revision has its listing: no such note.
    full = tmp_path / "full"
    add_snapshot(full, "org/new", new, {"w.pkl": CLEAN})
    assert not any("tree listing" in n for n in scan_hf_cache(full).notes)


@pytest.mark.parametrize(
    "flags", [["--jobs", "2"], ["--indicators"], ["--base", "."], ["--cache-dir", "x"]]
)
def test_audit_refuses_options_it_would_ignore(
    tmp_path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    add_snapshot(tmp_path, "org/a", commit_id("a"), {"config.json": CONFIG})
    assert main(["scan", "--hf-cache", str(tmp_path), *flags]) == ExitCode.USAGE
    assert "not supported with --hf-cache" in capsys.readouterr().err
