"""Red team (issue 5): the pre-commit scan hook fed hostile staged file names.

pre-commit runs ``entry + args + filenames`` and passes the staged names as they are (no
``--`` and no ``./`` prefix), so a file at the top of the repository whose name looks like an
option reaches argparse as an option. Each test states the correct behaviour.
"""

from __future__ import annotations

import pickle
import shlex
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factories.malicious import sample_by_id
from modelguard.cli import main

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
EVIL = "direct-os-system-p0"


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a payload ran"


def _hook() -> dict[str, Any]:
    from pre_commit.clientlib import load_manifest

    return {h["id"]: h for h in load_manifest(str(MANIFEST))}["modelguard"]


def _evil(tmp_path: Path, canary: Path) -> bytes:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return sample_by_id(EVIL).build(scratch, canary).read_bytes()


def _run_hook(
    repo: Path, names: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, str]:
    """Run the scan hook as pre-commit would: entry words, args, staged names (git order)."""
    from identify.identify import tags_from_path

    hook = _hook()
    wanted = set(hook["types"])
    staged = sorted(n for n in names if wanted <= tags_from_path(str(repo / n)))
    argv = shlex.split(hook["entry"])[1:] + list(hook.get("args", [])) + staged
    monkeypatch.chdir(repo)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("# project\n")
    (repo / "train.py").write_text("print('train')\n")
    return repo


# --------------------------------------------------------------------------------------------
# staged names that look like options


@pytest.mark.parametrize(
    "name",
    ["-q", "--quiet", "--no-progress", "--indicators", "--no-cache", "-h", "--help", "--version"],
)
def test_malicious_file_named_like_a_flag_is_scanned(
    name: str, tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A staged malicious pickle named `-q` (or any flag) must be scanned, not eaten as one."""
    repo = _repo(tmp_path)
    (repo / name).write_bytes(_evil(tmp_path, canary))
    code, out = _run_hook(repo, [name, "README.md", "train.py"], monkeypatch, capsys)
    assert code == 1, out


@pytest.mark.parametrize("name", ["--fail-on=never", "--ignore=MG101", "--exclude=**"])
def test_staged_name_cannot_relax_the_gate(
    name: str, tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A file named `--fail-on=never` staged beside a malicious model must not turn the
    hook off for the whole commit."""
    repo = _repo(tmp_path)
    (repo / name).write_text("innocent text\n")
    (repo / "model.pkl").write_bytes(_evil(tmp_path, canary))
    code, out = _run_hook(repo, [name, "model.pkl", "README.md"], monkeypatch, capsys)
    assert code == 1, out


def test_option_with_value_name_does_not_swallow_the_next_staged_file(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Staged `-o` followed (in git order) by `evil.pkl`: argparse reads `-o evil.pkl` and
    writes the report over the malicious file, which is never scanned."""
    repo = _repo(tmp_path)
    (repo / "-o").write_text("x\n")
    evil = _evil(tmp_path, canary)
    (repo / "evil.pkl").write_bytes(evil)
    (repo / "notes.md").write_text("# notes\n")  # sorts after evil.pkl, as git orders names
    code, out = _run_hook(repo, ["-o", "evil.pkl", "notes.md"], monkeypatch, capsys)
    assert code == 1, out
    assert (repo / "evil.pkl").read_bytes() == evil, "the staged file was overwritten"


@pytest.mark.parametrize("name", ["--format=json", "--format=sarif", "--policy=x", "--base=y"])
def test_option_looking_names_do_not_change_the_outcome(
    name: str, tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = _repo(tmp_path)
    (repo / name).write_bytes(_evil(tmp_path, canary))
    code, out = _run_hook(repo, [name, "README.md"], monkeypatch, capsys)
    assert code == 1, out  # the file itself is malicious and must be reported


# --------------------------------------------------------------------------------------------
# ordinary but unusual names


@pytest.mark.parametrize(
    "name",
    ["my model.pkl", "modèle ünïcode.pkl", "模型.bin", "a\tb.pkl", " lead.pkl", "x;rm -rf.pkl",
     "weights.PKL", "emoji-🙂.pt"],
)  # fmt: skip
def test_names_with_spaces_and_unicode_are_scanned(
    name: str, tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = _repo(tmp_path)
    sub = repo / "models"
    sub.mkdir()
    (sub / name).write_bytes(_evil(tmp_path, canary))
    code, out = _run_hook(repo, [f"models/{name}", "README.md"], monkeypatch, capsys)
    assert code == 1, out


# --------------------------------------------------------------------------------------------
# commits of only non-model files; LFS pointers


def _png() -> bytes:
    import zlib

    raw = b"\x00\x00\x00\x00"
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "files",
    [
        {"empty.txt": b""},
        {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"},
        {"logo.png": None},
        {"data.csv": b"a,b\n1,2\n", "setup.cfg": b"[metadata]\nname = x\n"},
        {"notes.bin": b"\x00\x01\x02\x03 random bytes that are no model \xff" * 3},
        {"doc.pdf": b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"},
        {"Makefile": b"all:\n\tpython train.py\n", "script.sh": b"#!/bin/sh\necho hi\n"},
        {"pyproject.toml": b"[project]\nname = 'x'\n"},
        {"index.json": b'{"weight_map": {"a": "model-00001-of-00002.safetensors"}}'},
    ],
    ids=["empty", "gitattributes", "png", "csv-cfg", "random-bin", "pdf", "make-sh",
         "pyproject", "lonely-index"],
)  # fmt: skip
def test_commit_of_only_non_model_files_exits_0(
    files: dict[str, bytes | None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    repo = _repo(tmp_path)
    for name, data in files.items():
        (repo / name).write_bytes(_png() if data is None else data)
    if "script.sh" in files:
        (repo / "script.sh").chmod(0o755)
    code, out = _run_hook(repo, [*files, "README.md", "train.py"], monkeypatch, capsys)
    assert code == 0, out


def test_staged_git_lfs_pointer_is_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = _repo(tmp_path)
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n"
    )
    (repo / "model.bin").write_text(pointer)
    code, out = _run_hook(repo, ["model.bin", "README.md"], monkeypatch, capsys)
    assert code == 2, out


@pytest.mark.parametrize("name", ["-model.bin", "--weights.pt"])
def test_staged_git_lfs_pointer_with_an_option_like_name_is_incomplete(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = _repo(tmp_path)
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n"
    )
    (repo / name).write_text(pointer)
    code, out = _run_hook(repo, [name, "README.md"], monkeypatch, capsys)
    assert code == 2, out
    assert "unrecognized arguments" not in out, "a usage error, not an incomplete scan"
    assert name in out and "MG" in out


def test_clean_pickle_with_option_like_name_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The fix must not turn every option-like name into a usage error (exit 2)."""
    repo = _repo(tmp_path)
    (repo / "-weights.pkl").write_bytes(pickle.dumps({"w": [1.0]}, 4))
    code, out = _run_hook(repo, ["-weights.pkl", "README.md"], monkeypatch, capsys)
    assert code == 0, out
