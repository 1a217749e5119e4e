"""Fixtures for the pipeline tests: models, keys, policies and a CLI runner."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import modelguard
from factories.malicious import sample_by_id
from modelguard.cli import main

MALICIOUS = "direct-os-system-p0"  # a protocol-0 pickle: ASCII, so tagged as text by name tools


def write_clean_model(folder: Path) -> Path:
    """Write a small clean model folder (a plain pickle state and a config); return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps({"weight": [0.5, 1.5], "bias": 0.1}, 4))
    (folder / "config.json").write_text('{"model_type": "toy", "hidden_size": 2}\n')
    return folder


def write_malicious(folder: Path, canary: Path, name: str = "model.pkl") -> Path:
    """Write the malicious pickle `MALICIOUS` as `folder/name`; loading it touches `canary`."""
    folder.mkdir(parents=True, exist_ok=True)
    built = sample_by_id(MALICIOUS).build(folder, canary)
    target = folder / name
    if built != target:
        built.rename(target)
    return target


def keygen(folder: Path, name: str) -> tuple[Path, Path]:
    """Create an EC key pair with `modelguard keygen`; return (private, public)."""
    private = folder / f"{name}.pem"
    assert main(["keygen", "-o", str(private)]) == 0
    return private, folder / f"{name}.pem.pub"


def sign(model: Path, private: Path) -> None:
    """Sign `model` (writes `model/model.sig`)."""
    assert main(["sign", str(model), "--key", str(private), "-q", "--no-progress"]) == 0


def key_policy(path: Path, *keys: tuple[Path, str], extra: str = "") -> Path:
    """Write a policy file trusting the given (public key, reason) signers."""
    lines = []
    for key, reason in keys:
        lines += ["[[trusted_signers]]", 'kind = "key"', f'key = "{key.as_posix()}"']
        lines += [f'reason = "{reason}"', ""]
    path.write_text(extra + "\n".join(lines))
    return path


def subprocess_env() -> dict[str, str]:
    """The environment for a child `python -m modelguard`: the same modelguard as this test."""
    env = dict(os.environ)
    package_root = str(Path(modelguard.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["MODELGUARD"] = f"{sys.executable} -m modelguard"
    env.pop("NO_COLOR", None)
    return env


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """The canary file a payload would create; the test fails if it exists afterwards."""
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a payload ran: the canary file was created"


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run `modelguard ARGV` in-process in folder `cwd`; return (code, stdout, stderr)."""

    def run(argv: list[str], cwd: Path | None = None) -> tuple[int, str, str]:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run
