"""Policy v2 after red team 5: relative include/exclude, `skipped`, integrity rules, discovery."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import jsonschema
import pytest

from modelguard.errors import ConfigError
from modelguard.policy import Policy, extend_policy, load_policy, policy_inside
from modelguard.report.json import load_schema, render_json
from modelguard.report.sarif import render_sarif
from modelguard.results import Severity
from modelguard.scanner import scan

CLEAN = pickle.dumps({"w": [1.0]}, protocol=4)


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "docs" / "repo"  # the target itself lives under a `docs` folder
    (repo / "docs").mkdir(parents=True)
    (repo / "sub" / "docs").mkdir(parents=True)
    (repo / "model.pkl").write_bytes(CLEAN)
    (repo / "docs" / "a.pkl").write_bytes(CLEAN)
    (repo / "sub" / "docs" / "b.pkl").write_bytes(CLEAN)
    return repo


def _names(report_paths: list[str], repo: Path) -> list[str]:
    return sorted(Path(p).relative_to(repo).as_posix() for p in report_paths)


def test_globs_match_paths_relative_to_the_folder_target(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    report = scan(repo, policy=Policy(exclude=("docs/**",)))
    assert _names([r.path for r in report.files], repo) == ["model.pkl"]
    assert _names(list(report.skipped), repo) == ["docs/a.pkl", "sub/docs/b.pkl"]
    anchored = scan(repo, policy=Policy(exclude=("/docs/**",)))
    assert _names([r.path for r in anchored.files], repo) == ["model.pkl", "sub/docs/b.pkl"]
    assert _names(list(anchored.skipped), repo) == ["docs/a.pkl"]


def test_fully_excluded_folder_target_gets_a_note(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.pkl").write_bytes(CLEAN)
    report = scan([repo, other], policy=Policy(include=("m.pkl",)))
    assert [Path(r.path).name for r in report.files] == ["m.pkl"]
    assert any(n.startswith(f"{repo.as_posix()}: all 3 file(s) left out") for n in report.notes)
    assert not any(n.startswith(other.as_posix()) for n in report.notes)


def test_skipped_is_rendered_in_json_and_sarif(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    report = scan(repo, policy=Policy(exclude=("docs/**",)))
    doc = json.loads(render_json(report))
    jsonschema.validate(doc, load_schema())
    assert doc["skipped"] == list(report.skipped) and len(report.skipped) == 2
    run = json.loads(render_sarif(report))["runs"][0]
    assert run["properties"]["skipped"] == list(report.skipped)
    plain = scan(repo)
    assert "skipped" not in json.loads(render_json(plain))
    assert "skipped" not in json.loads(render_sarif(plain))["runs"][0]["properties"]


@pytest.mark.parametrize("rule", ["MG604", "mg311"])
def test_integrity_rules_keep_their_severity(tmp_path: Path, rule: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f'[severity]\n{rule} = {{ severity = "info", reason = "r" }}\n')
    with pytest.raises(ConfigError, match="integrity"):
        load_policy(path)
    forced = Policy(severity={rule.upper(): Severity.INFO})
    assert forced.severity_of(rule.upper(), Severity.HIGH) is Severity.HIGH


def test_bad_glob_and_bad_home_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid glob"):
        extend_policy(Policy(), include=["a[z-a]"])
    path = tmp_path / "p.toml"
    path.write_text("[indicators]\nlsb_z_max = inf\n")
    with pytest.raises(ConfigError, match="finite"):
        load_policy(path)


def test_policy_inside_compares_links_and_their_targets(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "modelguard.toml").write_text("")
    link = tmp_path / "link"
    os.symlink(real, link)
    outside = tmp_path / "outside.toml"
    outside.write_text("")
    os.symlink(outside, real / "pyproject.toml")
    assert policy_inside(link / "modelguard.toml", [real])
    assert policy_inside(real / "modelguard.toml", [link])
    assert policy_inside(real / "pyproject.toml", [real])  # a link out of the folder
    assert not policy_inside(outside, [real])
