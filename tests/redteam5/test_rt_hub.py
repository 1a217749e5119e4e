"""Red team 5: `hf://` targets and `scan --hf-cache` against a hostile or damaged hub cache.

Each test asserts the correct behaviour, so it fails while the gap exists. Caches are built by
hand (`hub.cachebuild`); payloads only ever touch a canary file in tmp_path.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories.malicious import sample_by_id
from hub.cachebuild import add_snapshot, commit_id, repo_folder
from modelguard import scan
from modelguard.cli import ExitCode, main
from modelguard.errors import ModelGuardError
from modelguard.hub import resolve_hf_target, scan_hf_cache
from modelguard.results import ScanReport, Verdict

CLEAN = pickle.dumps({"weight": [1.0, 2.0]}, protocol=4)
CONFIG = b'{"model_type": "bert"}'


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a payload ran"


@pytest.fixture
def evil(tmp_path: Path, canary: Path) -> bytes:
    out = tmp_path / "evil-build"
    out.mkdir()
    return sample_by_id("direct-os-system-p4").build(out, canary).read_bytes()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache that huggingface_hub (and `hf://` targets) use, offline."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return root


def _by_path(report: ScanReport) -> dict[str, object]:
    return {r.path: r for r in report.files}


def _rules(report: ScanReport, path: str) -> set[str]:
    result = {r.path: r for r in report.files}[path]
    return {f.rule_id for f in result.findings}


# --- the audit must not miss files a loader would read --------------------------------------


def test_audit_follows_directory_symlink_in_snapshot(hub: Path, tmp_path: Path, evil: bytes):
    """A snapshot folder symlinked to a directory (inside or outside the cache): scan_cache_dir
    does not descend into it, so the audit never sees the pickle inside, yet reports the cache
    complete and safe. `scan hf://` on the same snapshot does find it (scanner._iter_files)."""
    snap = add_snapshot(hub, "org/a", commit_id("a"), {"config.json": CONFIG, "w.pkl": CLEAN})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.pkl").write_bytes(evil)
    os.symlink(outside, snap / "sub")

    direct = scan("hf://org/a")
    assert direct.verdict is Verdict.DANGEROUS  # the resolver path sees it

    audit = scan_hf_cache(hub)
    assert audit.verdict is Verdict.DANGEROUS or not audit.complete, (
        "the audit reports a cache holding a reachable malicious pickle as complete and safe: "
        + repr([(r.path, r.verdict) for r in audit.files])
    )


def test_subfolder_target_reports_missing_files(hub: Path):
    """`hf://org/p@main/sub` on a snapshot whose tree lists `sub/model.safetensors` that the
    download never fetched: the missing file is filtered out (only `m == filename` is kept),
    so the scan of the folder is complete and safe."""
    add_snapshot(
        hub, "org/p", commit_id("p"), {"sub/config.json": CONFIG}, listed_only=("sub/w.bin",)
    )
    whole = scan("hf://org/p@main")
    assert not whole.complete  # the whole snapshot is (correctly) incomplete
    sub = scan("hf://org/p@main/sub")
    assert not sub.complete and sub.verdict is not Verdict.SAFE, [
        (r.path, r.verdict) for r in sub.files
    ]


# --- a shared blob must be judged under each of its names ------------------------------------


def test_shared_malicious_blob_reported_under_every_name(hub: Path, evil: bytes):
    """One blob behind a benign-looking repo and a malicious one: dangerous under both."""
    add_snapshot(hub, "org/benign", commit_id("b"), {"config.json": CONFIG, "model.bin": CLEAN})
    snap = add_snapshot(hub, "org/evil", commit_id("e"), {"config.json": CONFIG, "model.bin": evil})
    link = repo_folder(hub, "org/benign") / "snapshots" / commit_id("b") / "model.bin"
    link.unlink()
    os.symlink(os.path.realpath(snap / "model.bin"), link)
    report = scan_hf_cache(hub)
    by_path = _by_path(report)
    for name in (f"org/benign@{commit_id('b')}/model.bin", f"org/evil@{commit_id('e')}/model.bin"):
        assert by_path[name].verdict is Verdict.DANGEROUS  # type: ignore[attr-defined]


@pytest.mark.parametrize("first", ["model.safetensors", "model.pkl"])
def test_shared_blob_name_dependent_findings_follow_each_name(hub: Path, first: str):
    """A pickle blob named `model.pkl` in one revision and `model.safetensors` in another is
    scanned once, under the first label, and that label's name-dependent findings (MG201,
    named .safetensors but the content is pickle) are copied to every other label: one name
    loses its MG201, the other gets a false one."""
    other = "model.pkl" if first == "model.safetensors" else "model.safetensors"
    add_snapshot(hub, "org/a", commit_id("1"), {first: CLEAN})
    add_snapshot(hub, "org/a", commit_id("2"), {other: CLEAN}, refs=())
    report = scan_hf_cache(hub)
    labels = {commit_id("1"): first, commit_id("2"): other}
    paths = {name: f"org/a@{commit}/{name}" for commit, name in labels.items()}
    # Two labels, one blob (its realpath is shared): precondition of the attack.
    assert len({r.path for r in report.files} & set(paths.values())) == 2
    assert "MG201" in _rules(report, paths["model.safetensors"])
    assert "MG201" not in _rules(report, paths["model.pkl"])


# --- digests ----------------------------------------------------------------------------------


def test_tampered_blob_detected_on_hf_target(hub: Path):
    """The audit checks that a 64-hex blob matches its name (MG604); `scan hf://org/t` reads the
    same blob and says nothing: a tampered snapshot is reported clean when scanned directly."""
    add_snapshot(hub, "org/t", commit_id("t"), {"w.pkl": CLEAN})
    blob = next(p for p in (repo_folder(hub, "org/t") / "blobs").iterdir() if len(p.name) == 64)
    blob.write_bytes(pickle.dumps({"weight": [9.0]}, protocol=4))
    assert "MG604" in _rules(scan_hf_cache(hub), f"org/t@{commit_id('t')}/w.pkl")
    direct = scan("hf://org/t")
    assert any(f.rule_id == "MG604" for f in direct.findings), [
        (r.path, [f.rule_id for f in r.findings]) for r in direct.files
    ]


def test_tampered_blob_in_corrupted_repo_still_checked(hub: Path):
    """A dangling link makes huggingface_hub drop the repository (MG603, scanned as a plain
    folder): its other blobs are then never digest-checked, so tampering is not reported."""
    snap = add_snapshot(hub, "org/k", commit_id("k"), {"w.pkl": CLEAN})
    blob = next(p for p in (repo_folder(hub, "org/k") / "blobs").iterdir() if len(p.name) == 64)
    blob.write_bytes(pickle.dumps({"weight": [9.0]}, protocol=4))
    (snap / "dangling.bin").symlink_to("../../blobs/" + "0" * 64)
    report = scan_hf_cache(hub)
    assert not report.complete  # MG603: fine
    assert "MG604" in _rules(report, f"org/k@{commit_id('k')}/w.pkl")


# --- damaged cache metadata: incomplete or a clean error, never a crash or a hang -----------


@pytest.mark.parametrize("document", ["[]", '{"format_version": 1, "files": []}'])
@pytest.mark.parametrize("how", ["target", "audit", "cli"])
def test_malformed_tree_listing_does_not_crash(hub: Path, document: str, how: str):
    """A `trees/<commit>.json` of the wrong JSON shape makes huggingface_hub raise
    AttributeError, which resolve.py (except OSError/ValueError) and cache.missing_files let
    through: the scan crashes instead of reporting an incomplete (or refused) target."""
    commit = commit_id("a")
    add_snapshot(hub, "org/a", commit, {"w.pkl": CLEAN})
    (repo_folder(hub, "org/a") / "trees" / f"{commit}.json").write_text(document)
    if how == "cli":
        assert main(["scan", "-q", "--no-cache", "hf://org/a"]) in (
            ExitCode.INCOMPLETE,
            ExitCode.USAGE,
        )
        return
    try:
        report = scan("hf://org/a") if how == "target" else scan_hf_cache(hub)
    except ModelGuardError:
        return  # a clean refusal is acceptable
    assert not report.complete


_CHILD = textwrap.dedent(
    """
    import os, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_CACHE"] = sys.argv[1]
    from modelguard import scan
    from modelguard.errors import ModelGuardError
    from modelguard.hub import scan_hf_cache
    try:
        report = scan_hf_cache(sys.argv[1]) if sys.argv[2] == "audit" else scan("hf://org/a")
    except ModelGuardError as exc:
        print("refused", exc)
    else:
        print("complete" if report.complete else "incomplete")
    """
)


def test_fifo_metadata_does_not_hang(hub: Path, tmp_path: Path):
    """A FIFO in place of `refs/main` or `trees/<commit>.json`: huggingface_hub opens it for
    reading and blocks forever (no writer), both for `scan hf://` and for `--hf-cache`.
    Blobs are opened O_NONBLOCK by modelguard, but the metadata is read by the library."""
    procs: dict[str, subprocess.Popen[str]] = {}
    for kind in ("refs", "trees"):
        root = tmp_path / f"hub-{kind}"
        commit = commit_id("a")
        add_snapshot(root, "org/a", commit, {"w.pkl": CLEAN})
        meta = repo_folder(root, "org/a") / (
            "refs/main" if kind == "refs" else f"trees/{commit}.json"
        )
        meta.unlink()
        os.mkfifo(meta)
        for mode in ("audit", "target"):
            procs[f"{kind}-{mode}"] = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(root), mode],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
    deadline = time.monotonic() + 10
    hung: list[str] = []
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()  # only the child this test started
            proc.communicate()
            hung.append(name)
            continue
        assert "complete" not in out.split() or "incomplete" in out, (name, out)
    assert not hung, f"hung on a FIFO in the cache metadata: {hung}"


# --- spec injection: refused cleanly ---------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "hf://org/a@%2e%2e",
        "hf://org/a@main/%2e%2e/x",
        "hf://org/a@main%00",
        "hf://org/a@/etc",
        "hf://org/a@%2Fetc%2Fpasswd",
        "hf://../../etc@main",
        "hf://org/a@refs%2F..%2F..%2Fsnapshots",
        "hf://org/a@main/..%2F..%2Fblobs",
    ],
)
def test_odd_specs_never_escape(hub: Path, spec: str):
    add_snapshot(hub, "org/a", commit_id("a"), {"w.pkl": CLEAN})
    try:
        hit = resolve_hf_target(spec)
    except ModelGuardError:
        return
    snapshots = (repo_folder(hub, "org/a") / "snapshots").resolve()
    assert hit.path.resolve().is_relative_to(snapshots)


def test_snapshot_symlink_loop_and_fifo(hub: Path):
    """Loops end; a FIFO in the snapshot is not read and makes the scan incomplete."""
    commit = commit_id("a")
    snap = add_snapshot(hub, "org/a", commit, {"w.pkl": CLEAN})
    os.symlink(".", snap / "loop")
    fifo = repo_folder(hub, "org/a") / "blobs" / ("a" * 64)
    os.mkfifo(fifo)
    os.symlink(fifo, snap / "fifo.bin")
    for report in (scan("hf://org/a"), scan_hf_cache(hub)):
        assert not report.complete
        assert report.verdict is not Verdict.SAFE


def test_cwd_policy_inside_snapshot_not_used_for_hf_target(
    hub: Path, evil: bytes, monkeypatch: pytest.MonkeyPatch
):
    """Running `modelguard scan hf://org/e` (or `--hf-cache`) from inside a cached snapshot:
    the repository's own `modelguard.toml` (fail_on = "never") is discovered and used, because
    discovery only compares against the literal targets (`hf://...`, none for --hf-cache)."""
    snap = add_snapshot(
        hub,
        "org/e",
        commit_id("e"),
        {
            "config.json": CONFIG,
            "pytorch_model.bin": evil,
            "modelguard.toml": b'fail_on = "never"\n',
        },
    )
    monkeypatch.chdir(snap)
    assert main(["scan", "-q", "--no-cache", "hf://org/e"]) == ExitCode.FINDINGS
    assert main(["scan", "-q", "--no-cache", "--hf-cache", str(hub)]) == ExitCode.FINDINGS
