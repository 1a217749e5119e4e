"""Red team (issue 5): `modelguard verify` trusting the policy's `[[trusted_signers]]`.

Each test states the correct behaviour; a failing test is an open gap.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from modelguard.cli import main


def _keygen(folder: Path, name: str) -> tuple[Path, Path]:
    private = folder / f"{name}.pem"
    assert main(["keygen", "-o", str(private)]) == 0
    return private, folder / f"{name}.pem.pub"


def _sign(model: Path, private: Path) -> None:
    assert main(["sign", str(model), "--key", str(private), "-q", "--no-progress"]) == 0


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps({"weight": [0.5, 1.5]}, 4))
    (folder / "config.json").write_text('{"model_type": "toy"}\n')
    return folder


def _policy(path: Path, entries: list[dict[str, Any]]) -> Path:
    lines: list[str] = []
    for entry in entries:
        lines.append("[[trusted_signers]]")
        for key, value in entry.items():
            lines.append(f'{key} = "{value}"')
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _verify(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any, cwd: Path
) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = main(["verify", "--no-progress", *argv])
    out, err = capsys.readouterr()
    assert "internal error" not in err, err
    return code, out + err


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: _keygen(folder, name) for name in ("release", "other", "attacker")}


# --------------------------------------------------------------------------------------------
# where the trust comes from


def test_policy_inside_the_model_folder_is_never_trusted(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The attacker ships `modelguard.toml` trusting their own key inside the model."""
    model = _model(tmp_path / "model")
    shutil.copy2(keys["attacker"][1], model / "attacker.pub")
    _policy(model / "modelguard.toml", [{"kind": "key", "key": "attacker.pub"}])
    _sign(model, keys["attacker"][0])
    code, out = _verify(["."], monkeypatch, capsys, model)
    assert code != 0, out
    code, out = _verify(["--scan", "."], monkeypatch, capsys, model)
    assert code != 0, out


def test_pyproject_inside_the_model_folder_is_never_trusted(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    model = _model(tmp_path / "model")
    shutil.copy2(keys["attacker"][1], model / "attacker.pub")
    (model / "pyproject.toml").write_text(
        '[tool.modelguard]\n[[tool.modelguard.trusted_signers]]\nkind = "key"\n'
        'key = "attacker.pub"\n'
    )
    _sign(model, keys["attacker"][0])
    code, out = _verify(["."], monkeypatch, capsys, model)
    assert code != 0, out


def test_policy_inside_the_model_reached_through_a_symlink_is_not_trusted(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """cwd is a symlink to the model folder; the model is named by its real path."""
    model = _model(tmp_path / "model")
    shutil.copy2(keys["attacker"][1], model / "attacker.pub")
    _policy(model / "modelguard.toml", [{"kind": "key", "key": "attacker.pub"}])
    _sign(model, keys["attacker"][0])
    link = tmp_path / "link"
    link.symlink_to(model, target_is_directory=True)
    code, out = _verify([str(model)], monkeypatch, capsys, link)
    assert code != 0, out


def test_trusted_key_file_inside_the_model_folder_is_refused(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The repository policy trusts `models/toy/release.pub`, a key shipped with the model:
    whoever can change the model can change the key and re-sign. The key must come from
    outside the folder being verified."""
    repo = tmp_path / "repo"
    model = _model(repo / "models" / "toy")
    _policy(repo / "modelguard.toml", [{"kind": "key", "key": "models/toy/release.pub"}])
    # the attacker replaces the model, the 'trusted' key and the signature
    shutil.copy2(keys["attacker"][1], model / "release.pub")
    (model / "model.pkl").write_bytes(pickle.dumps({"weight": [6.6]}, 4))
    _sign(model, keys["attacker"][0])
    code, out = _verify(["models/toy"], monkeypatch, capsys, repo)
    assert code != 0, out


# --------------------------------------------------------------------------------------------
# malformed signers


def test_signer_with_a_missing_key_file_fails(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["release"][0])
    _policy(repo / "modelguard.toml", [{"kind": "key", "key": "nowhere/release.pub"}])
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 2, out
    assert "nowhere" in out or "release.pub" in out


def test_signer_key_is_a_directory(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["release"][0])
    (repo / "keys").mkdir()
    _policy(repo / "modelguard.toml", [{"kind": "key", "key": "keys"}])
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 2, out


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "sigstore", "identity": "me@example.com"},
        {"kind": "sigstore", "identity": "me@example.com", "issuer": " "},
        {"kind": "sigstore", "issuer": "https://accounts.google.com"},
        {"kind": "key"},
        {"kind": "certificate"},
        {"kind": "KEY", "key": "k.pub"},
    ],
)
def test_incomplete_signer_entry_is_a_usage_error(
    entry: dict[str, str],
    tmp_path: Path,
    keys: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["release"][0])
    _policy(repo / "modelguard.toml", [entry])
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 2, out


# --------------------------------------------------------------------------------------------
# order tricks and untrusted signatures


def test_signature_by_an_untrusted_key_fails(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["attacker"][0])
    _policy(
        repo / "modelguard.toml",
        [
            {"kind": "key", "key": str(keys["release"][1])},
            {"kind": "key", "key": str(keys["other"][1])},
        ],
    )
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 1, out
    code, out = _verify(["model", "--scan"], monkeypatch, capsys, repo)
    assert code == 1, out


@pytest.mark.parametrize("first", ["other", "missing"])
def test_a_failing_first_signer_does_not_hide_a_tampered_file(
    first: str, tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Signer 1 cannot verify (another key / a missing key file); signer 2 made the
    signature; a file was changed after signing: the result is 'tampered' (exit 1, MG311)."""
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["release"][0])
    (model / "config.json").write_text('{"model_type": "changed"}\n')
    one = str(keys["other"][1]) if first == "other" else str(tmp_path / "gone.pub")
    _policy(
        repo / "modelguard.toml",
        [{"kind": "key", "key": one}, {"kind": "key", "key": str(keys["release"][1])}],
    )
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 1, out
    assert "MG311" in out or "config.json" in out


@pytest.mark.parametrize("first", ["sigstore"])
def test_a_signer_of_another_kind_first_does_not_hide_a_tampered_file(
    first: str, tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["release"][0])
    (model / "model.pkl").write_bytes(pickle.dumps({"weight": [9.9]}, 4))
    if first == "sigstore":
        one = {"kind": "sigstore", "identity": "a@example.com", "issuer": "https://x.example"}
    else:
        one = {"kind": "certificate", "certificate_chain": str(keys["other"][1])}
    _policy(repo / "modelguard.toml", [one, {"kind": "key", "key": str(keys["release"][1])}])
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 1, out


def test_tampered_model_with_the_right_signer_first_fails(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["release"][0])
    (model / "extra.pkl").write_bytes(pickle.dumps([1], 4))  # a file added after signing
    _policy(
        repo / "modelguard.toml",
        [
            {"kind": "key", "key": str(keys["release"][1])},
            {"kind": "key", "key": str(keys["other"][1])},
        ],
    )
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 1, out


def test_intact_model_verifies_with_the_signer_second(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Control: the attacks above are not passing because nothing ever verifies."""
    repo = tmp_path / "repo"
    model = _model(repo / "model")
    _sign(model, keys["release"][0])
    _policy(
        repo / "modelguard.toml",
        [
            {"kind": "key", "key": str(keys["other"][1])},
            {"kind": "key", "key": str(keys["release"][1])},
        ],
    )
    code, out = _verify(["model"], monkeypatch, capsys, repo)
    assert code == 0, out
