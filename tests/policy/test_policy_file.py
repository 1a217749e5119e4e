"""Policy files: parsing, validation, discovery, and the refusal to trust a scanned repo's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelguard.cli import main
from modelguard.config import Limits
from modelguard.errors import ConfigError
from modelguard.policy import load_policy
from modelguard.results import Severity

UNKNOWN_CLASS = b"\x80\x02c__main__\nNet\n)\x81}b."


def test_full_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "modelguard.toml"
    path.write_text(
        'fail_on = "high"\n[allow]\n"__main__:Net" = "our model"\n'
        '[severity]\nMG201 = { severity = "info", reason = "we name pickles .bin" }\n'
        "[limits]\nmax_depth = 3\n"
    )
    policy = load_policy(path)
    assert policy.fail_on is Severity.HIGH
    assert policy.allow == {"__main__:Net": "our model"}
    assert policy.severity == {"MG201": Severity.INFO}
    assert policy.limits == Limits(max_depth=3)


def test_pyproject_tool_table(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n[tool.modelguard]\nfail_on = "never"\n')
    assert load_policy(path).fail_on is None


@pytest.mark.parametrize(
    "text",
    [
        'fail_on = "severe"\n',
        "surprise = 1\n",
        '[allow]\n"nocolon" = "reason"\n',
        '[allow]\n"a:b" = ""\n',
        '[severity]\nMG999 = { severity = "low", reason = "r" }\n',
        '[severity]\nMG001 = { severity = "low", reason = "r" }\n',
        '[severity]\nMG201 = "info"\n',
        "[limits]\nmax_depth = -1\n",
        "[limits]\nmax_nonsense = 1\n",
        "not toml at all [\n",
    ],
)
def test_invalid_policies_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "modelguard.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_policy(path)


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_policy(tmp_path / "nope.toml")


def test_discovered_policy_inside_the_scanned_folder_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "model.pkl").write_bytes(UNKNOWN_CLASS)
    # A downloaded repository ships a policy that allowlists its own class.
    (repo / "modelguard.toml").write_text('[allow]\n"__main__:Net" = "trust me"\n')
    monkeypatch.chdir(repo)
    assert main(["scan", "."]) == 1
    assert "not using" in capsys.readouterr().err
    # Passed explicitly, it is the user's choice.
    assert main(["scan", "--policy", "modelguard.toml", "."]) == 0
    # Discovered next to (not inside) what is scanned, it is used.
    (repo / "modelguard.toml").rename(tmp_path / "modelguard.toml")
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "repo"]) == 0


def test_allow_new_entries_admit_newobj_but_not_calls(tmp_path: Path) -> None:
    path = tmp_path / "modelguard.toml"
    path.write_text('[allow_new]\n"__main__:Net" = "our model class in whole-model saves"\n')
    policy = load_policy(path)
    assert policy.classify("__main__", "Net").construct_only
    model = tmp_path / "model.pkl"
    model.write_bytes(UNKNOWN_CLASS)  # NEWOBJ + BUILD
    assert main(["scan", "--policy", str(path), str(model)]) == 0
    model.write_bytes(b"\x80\x02c__main__\nNet\n)R.")  # REDUCE: calls __init__
    assert main(["scan", "--policy", str(path), str(model)]) == 1
