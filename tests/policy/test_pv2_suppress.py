"""Suppressions: policy `[[suppress]]`, `--ignore`, expiry (MG010), and how reports show them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from factories.malicious import sample_by_id
from modelguard.cli import main
from modelguard.errors import ConfigError
from modelguard.policy import Policy, Suppression, extend_policy, load_policy
from modelguard.policy.suppress import apply_suppressions, parse_ignore
from modelguard.report.json import load_schema, render_json
from modelguard.report.sarif import render_sarif
from modelguard.report.text import render_text
from modelguard.results import Severity, Verdict
from modelguard.scanner import scan

UNKNOWN_CLASS = b"\x80\x02c__main__\nNet\n)\x81}b."  # MG102 (medium)
TRUNCATED = b"\x80\x02c__main__\nNet\n)\x81"  # MG102 and an incomplete parse (MG002)


def _write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modelguard.toml"
    path.write_text(text)
    return path


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "legacy").mkdir(parents=True)
    (repo / "model.pkl").write_bytes(UNKNOWN_CLASS)
    (repo / "legacy" / "old.pkl").write_bytes(UNKNOWN_CLASS)
    return repo


def _json(args: list[str], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "report.json"
    code = main(["scan", "-q", "--format", "json", "-o", str(out), *args])
    doc: dict[str, Any] = json.loads(out.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    return code, doc


# -- parsing ----------------------------------------------------------------------------------


def test_suppress_entries_parse(tmp_path: Path) -> None:
    path = _write_policy(
        tmp_path,
        '[[suppress]]\nrule = "mg102"\nreason = "our class"\n'
        '[[suppress]]\nrule = ["MG201", "MG102"]\npath = "legacy/**"\nreason = " old "\n'
        "expires = 2027-01-31\n"
        '[[suppress]]\nrule = "MG201"\nreason = "r"\nexpires = "2026-05-01"\n',
    )
    first, second, third = load_policy(path).suppressions
    assert first == Suppression(("MG102",), "our class", None, None, f"{path} [[suppress]] #1")
    assert second.rules == ("MG201", "MG102") and second.path == "legacy/**"
    assert second.reason == "old" and second.expires == dt.date(2027, 1, 31)
    assert third.expires == dt.date(2026, 5, 1)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('rule = "MG102"', "reason is required"),
        ('rule = "MG102"\nreason = ""', "reason is required"),
        ('reason = "r"', "rule is required"),
        ('rule = []\nreason = "r"', "non-empty list"),
        ('rule = "MG999"\nreason = "r"', "unknown rule"),
        ('rule = "MG301"\nreason = "r"', "verification failure"),
        ('rule = ["MG102", "MG310"]\nreason = "r"', "cannot be suppressed"),
        ('rule = "MG002"\nreason = "r"', "incomplete scan"),
        ('rule = "MG010"\nreason = "r"', "policy itself"),
        ('rule = "MG102"\nreason = "r"\nexpires = "soon"', "expires must be a date"),
        ('rule = "MG102"\nreason = "r"\nexpires = 5', "expires must be a date"),
        ('rule = "MG102"\nreason = "r"\npath = ""', "path must be"),
        ('rule = "MG102"\nreason = "r"\nline = 3', "unknown fields line"),
    ],
)
def test_invalid_suppressions_are_config_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = _write_policy(tmp_path, f"[[suppress]]\n{entry}\n")
    with pytest.raises(ConfigError, match=message):
        load_policy(path)


def test_suppress_must_be_an_array_of_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="array of tables"):
        load_policy(_write_policy(tmp_path, '[suppress]\nrule = "MG102"\n'))


def test_parse_ignore() -> None:
    assert parse_ignore("mg102") == Suppression(
        ("MG102",), "command line", None, None, "--ignore mg102"
    )
    assert parse_ignore("MG102:legacy/*.pkl").path == "legacy/*.pkl"
    for bad in ("MG301", "MG001", "MG999", "MG102:"):
        with pytest.raises(ConfigError):
            parse_ignore(bad)


# -- applying them ----------------------------------------------------------------------------


def test_suppressed_findings_leave_the_findings_and_are_listed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert main(["scan", "-q", str(repo)]) == 1
    policy = _write_policy(
        tmp_path, '[[suppress]]\nrule = "MG102"\nreason = "our class, reviewed in PR 7"\n'
    )
    code, doc = _json(["--policy", str(policy), str(repo)], tmp_path)
    assert code == 0
    assert doc["verdict"] == "safe"
    assert doc["summary"]["suppressed"] == 2
    assert doc["summary"]["findings"]["medium"] == 0
    listed = [
        (Path(s["location"]["path"]).name, s["rule_id"], s["reason"]) for s in doc["suppressions"]
    ]
    assert sorted(listed) == [
        ("model.pkl", "MG102", "our class, reviewed in PR 7"),
        ("old.pkl", "MG102", "our class, reviewed in PR 7"),
    ]
    assert all(s["origin"].endswith("[[suppress]] #1") for s in doc["suppressions"])


def test_path_glob_limits_a_suppression(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    policy = _write_policy(
        tmp_path, '[[suppress]]\nrule = "MG102"\npath = "legacy/**"\nreason = "old exports"\n'
    )
    code, doc = _json(["--policy", str(policy), str(repo)], tmp_path)
    assert code == 1  # model.pkl is still reported
    assert doc["summary"]["suppressed"] == 1
    assert doc["suppressions"][0]["location"]["path"].endswith("legacy/old.pkl")
    medium = [f for f in doc["files"] if any(x["rule_id"] == "MG102" for x in f["findings"])]
    assert [Path(f["path"]).name for f in medium] == ["model.pkl"]


def test_malicious_payload_only_suppressed_where_the_glob_says(tmp_path: Path) -> None:
    sample = sample_by_id("direct-os-system-p4")
    canary = tmp_path / "canary"
    models = tmp_path / "models"
    models.mkdir()
    built = sample.build(models, canary)
    report = scan(models, policy=Policy(suppressions=(parse_ignore("MG101:elsewhere/*"),)))
    assert report.verdict is Verdict.DANGEROUS and report.suppressed == 0
    assert not canary.exists()
    everything = Policy(suppressions=(Suppression(tuple(sample.expect_rules), "test", built.name),))
    report = scan(models, policy=everything)
    assert report.suppressed >= 1
    assert not any(f.rule_id in sample.expect_rules for f in report.findings)
    assert not canary.exists()


def test_incomplete_results_are_never_suppressed(tmp_path: Path) -> None:
    model = tmp_path / "cut.pkl"
    model.write_bytes(TRUNCATED)
    policy = Policy(suppressions=(Suppression(("MG102",), "reviewed"),))
    report = scan(model, policy=policy)
    assert report.suppressed == 1
    assert not report.complete and report.verdict is Verdict.ERROR
    assert main(["scan", "-q", "--ignore", "MG102", str(model)]) == 2


def test_expired_suppression_stops_applying_and_is_reported(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    policy = _write_policy(
        tmp_path,
        '[[suppress]]\nrule = "MG102"\nreason = "until the re-export"\nexpires = 2020-01-31\n',
    )
    code, doc = _json(["--policy", str(policy), str(repo)], tmp_path)
    assert code == 1
    assert doc["summary"]["suppressed"] == 0 and "suppressions" not in doc
    expired = [f for file in doc["files"] for f in file["findings"] if f["rule_id"] == "MG010"]
    assert len(expired) == 1
    assert expired[0]["severity"] == "low"
    assert expired[0]["location"]["path"] == str(policy)
    assert expired[0]["evidence"]["entry"] == f"{policy} [[suppress]] #1"
    assert expired[0]["evidence"]["expires"] == "2020-01-31"
    assert sum(f["findings"][0]["rule_id"] == "MG102" for f in doc["files"] if f["findings"]) == 2


def test_expiry_day_is_the_last_day_it_applies(tmp_path: Path) -> None:
    model = tmp_path / "m.pkl"
    model.write_bytes(UNKNOWN_CLASS)
    entry = Suppression(("MG102",), "r", None, dt.date(2026, 3, 1), "p.toml [[suppress]] #1")
    report = scan(model)
    on_day = apply_suppressions(report, [entry], source="p.toml", today=dt.date(2026, 3, 1))
    assert on_day.suppressed == 1 and on_day.findings == ()
    after = apply_suppressions(report, [entry], source="p.toml", today=dt.date(2026, 3, 2))
    assert after.suppressed == 0
    assert sorted(f.rule_id for f in after.findings) == ["MG010", "MG102"]
    assert [r.path for r in after.files] == sorted([model.as_posix(), "p.toml"])
    assert after.files[[r.path for r in after.files].index("p.toml")].formats == ("policy",)


@pytest.mark.parametrize(("override", "code"), [("", 0), ("medium", 1)])
def test_mg010_severity_follows_the_policy(tmp_path: Path, override: str, code: int) -> None:
    repo = _repo(tmp_path)
    severity = f'[severity]\nMG010 = {{ severity = "{override}", reason = "stale must block" }}\n'
    policy = _write_policy(
        tmp_path,
        (severity if override else "") + '[[suppress]]\nrule = "MG102"\nreason = "reviewed"\n'
        '[[suppress]]\nrule = "MG201"\nreason = "r"\nexpires = 2020-01-01\n',
    )
    got, doc = _json(["--policy", str(policy), str(repo)], tmp_path)
    assert got == code
    assert doc["summary"]["suppressed"] == 2
    assert doc["summary"]["findings"]["medium" if override else "low"] == 1


def test_expired_entry_on_an_empty_scan_keeps_it_incomplete(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    policy = _write_policy(
        tmp_path, '[[suppress]]\nrule = "MG102"\nreason = "r"\nexpires = 2020-01-01\n'
    )
    code, doc = _json(["--policy", str(policy), "--exclude", "*.pkl", str(repo)], tmp_path)
    assert code == 2 and doc["files"] == [] and not doc["complete"]
    assert any("expired on 2020-01-01" in n for n in doc["notes"])


def test_unmatched_suppression_is_noted(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    policy = _write_policy(
        tmp_path,
        '[[suppress]]\nrule = "MG102"\nreason = "r"\n'
        '[[suppress]]\nrule = "MG101"\npath = "*.bin"\nreason = "never matches"\n',
    )
    code, doc = _json(["--policy", str(policy), str(repo)], tmp_path)
    assert code == 0
    assert any("#2: MG101 at *.bin matched no finding" in n for n in doc["notes"])
    assert not any("#1" in n for n in doc["notes"])


def test_cli_ignore_with_and_without_glob(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    code, doc = _json(["--ignore", "MG102:legacy/*", str(repo)], tmp_path)
    assert code == 1 and doc["summary"]["suppressed"] == 1
    assert doc["suppressions"][0]["reason"] == "command line"
    assert doc["suppressions"][0]["origin"] == "--ignore MG102:legacy/*"
    code, doc = _json(["--ignore", "MG102", "--ignore", "MG530", str(repo)], tmp_path)
    assert code == 0 and doc["summary"]["suppressed"] >= 2


@pytest.mark.parametrize("spec", ["MG301", "MG003", "MG999", "MG102:"])
def test_cli_ignore_refuses_what_cannot_be_suppressed(
    tmp_path: Path, spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo(tmp_path)
    assert main(["scan", "-q", "--ignore", spec, str(repo)]) == 2
    assert "--ignore" in capsys.readouterr().err


def test_cli_ignore_adds_to_the_policy_file(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    policy = _write_policy(
        tmp_path, '[[suppress]]\nrule = "MG102"\npath = "legacy/**"\nreason = "old"\n'
    )
    code, doc = _json(["--policy", str(policy), "--ignore", "MG102:model.pkl", str(repo)], tmp_path)
    assert code == 0 and doc["summary"]["suppressed"] == 2
    extended = extend_policy(load_policy(policy), ignore=["MG201"], exclude=["x"])
    assert len(extended.suppressions) == 2 and extended.exclude == ("x",)


# -- rendering ------------------------------------------------------------------------------


def _suppressed_report(tmp_path: Path) -> Any:
    repo = _repo(tmp_path)
    return scan(repo, policy=Policy(suppressions=(parse_ignore("MG102:legacy/**"),)))


def test_sarif_marks_suppressed_results(tmp_path: Path) -> None:
    report = _suppressed_report(tmp_path)
    run = json.loads(render_sarif(report))["runs"][0]
    quiet = [r for r in run["results"] if "suppressions" in r]
    loud = [r for r in run["results"] if "suppressions" not in r]
    assert len(quiet) == 1 and quiet[0]["ruleId"] == "MG102"
    assert quiet[0]["suppressions"] == [
        {"kind": "external", "status": "accepted", "justification": "command line"}
    ]
    assert quiet[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith(
        "legacy/old.pkl"
    )
    assert any(r["ruleId"] == "MG102" for r in loud)
    assert run["properties"]["suppressed"] == 1
    rule_ids = [d["id"] for d in run["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert all(rule_ids[r["ruleIndex"]] == r["ruleId"] for r in run["results"])


def test_text_lists_suppressed_findings(tmp_path: Path) -> None:
    report = _suppressed_report(tmp_path)
    text = render_text(report)
    assert "suppressed: MG102 medium at " in text
    assert "legacy/old.pkl@2: command line (--ignore MG102:legacy/**)" in text
    assert "1 suppressed" in text


def test_json_without_suppressions_has_no_suppressions_key(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    doc = json.loads(render_json(scan(repo)))
    assert "suppressions" not in doc and doc["summary"]["suppressed"] == 0


def test_severity_overrides_apply_before_suppressions(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    policy = Policy(
        severity={"MG102": Severity.HIGH},
        suppressions=(Suppression(("MG102",), "r", "model.pkl"),),
    )
    report = scan(repo, policy=policy)
    assert [s.finding.severity for s in report.suppressions] == [Severity.HIGH]
    assert report.verdict is Verdict.DANGEROUS  # legacy/old.pkl, raised to high


@pytest.mark.parametrize(
    ("glob", "suppressed"),
    [
        ("/legacy/**", {"legacy/old.pkl"}),  # anchored at the top of the scanned folder
        ("old.pkl", {"legacy/old.pkl"}),  # no leading /: any trailing part of the path
        ("/old.pkl", set()),  # anchored: not at the top, so nothing
        ("*.pkl", {"legacy/old.pkl", "model.pkl"}),
    ],
)
def test_suppression_globs_anchor_like_include_exclude(
    tmp_path: Path, glob: str, suppressed: set[str]
) -> None:
    repo = _repo(tmp_path)
    policy = extend_policy(Policy(), ignore=(f"MG102:{glob}",))
    report = scan(repo, policy=policy)
    hidden = {
        s.finding.location.path.removeprefix(f"{repo.as_posix()}/") for s in report.suppressions
    }
    assert hidden == suppressed
