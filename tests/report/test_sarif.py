"""SARIF output: the fields GitHub code scanning requires, checked structurally (offline)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from modelguard.report.json import fingerprint
from modelguard.report.sarif import (
    FINGERPRINT_KEY,
    SARIF_VERSION,
    level,
    render_sarif,
    sarif_log,
    security_severity,
)
from modelguard.results import FileResult, Finding, Incomplete, Location, ScanReport, Severity
from modelguard.rules import RULES

from . import SAMPLES, clean_report, empty_report, fixed_rules, hostile_report, mixed_report

_LEVELS = {"error", "warning", "note", "none"}


def _run(report: ScanReport) -> dict[str, Any]:
    log = json.loads(render_sarif(report))
    assert len(log["runs"]) == 1
    run: dict[str, Any] = log["runs"][0]
    return run


def _nonempty_text(obj: dict[str, Any], key: str) -> None:
    assert isinstance(obj[key]["text"], str)
    assert obj[key]["text"].strip(), key


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sarif_matches_golden(
    name: str, golden: Callable[[str, str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelguard.report.sarif.RULES", fixed_rules())
    golden(f"{name}.sarif", render_sarif(SAMPLES[name]()))


@pytest.mark.parametrize("name", [*sorted(SAMPLES), "hostile"])
def test_github_required_fields(name: str) -> None:
    report = hostile_report() if name == "hostile" else SAMPLES[name]()
    log = json.loads(render_sarif(report))
    assert log["$schema"].startswith("https://")
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert log["version"] == SARIF_VERSION == "2.1.0"
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "modelguard"
    assert driver["version"] == driver["semanticVersion"] == "0.0.0+test"
    assert driver["informationUri"] == "https://github.com/modelguard/modelguard"
    assert isinstance(run["results"], list)
    ids = [rule["id"] for rule in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        for key in ("shortDescription", "fullDescription", "help"):
            _nonempty_text(rule, key)
    for result in run["results"]:
        _nonempty_text(result, "message")
        assert result["level"] in _LEVELS
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["ruleId"] in ids
        assert len(result["locations"]) >= 1
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"]
        assert physical["region"]["startLine"] >= 1
        assert result["partialFingerprints"][FINGERPRINT_KEY]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is report.complete
    for note in invocation["toolExecutionNotifications"]:
        assert note["level"] in _LEVELS
        _nonempty_text(note, "message")


def test_every_catalogue_rule_is_described() -> None:
    rules = _run(clean_report())["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(RULES)
    for descriptor in rules:
        rule = RULES[descriptor["id"]]
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["help"]["text"] == rule.help  # what `modelguard explain` prints
        assert rule.help in descriptor["help"]["markdown"]
        assert descriptor["defaultConfiguration"]["level"] == level(rule.severity)
        assert "security" in descriptor["properties"]["tags"]
        if rule.severity is None:
            assert "security-severity" not in descriptor["properties"]
        else:
            score = descriptor["properties"]["security-severity"]
            assert score == security_severity(rule.severity)


@pytest.mark.parametrize(
    ("severity", "sarif_level", "score", "band"),
    [
        (Severity.CRITICAL, "error", "9.5", (9.0, 10.0)),
        (Severity.HIGH, "error", "8.0", (7.0, 8.9)),
        (Severity.MEDIUM, "warning", "5.5", (4.0, 6.9)),
        (Severity.LOW, "note", "3.0", (0.1, 3.9)),
        (Severity.INFO, "note", "1.0", (0.1, 3.9)),
    ],
)
def test_levels_and_security_severity(
    severity: Severity, sarif_level: str, score: str, band: tuple[float, float]
) -> None:
    assert level(severity) == sarif_level
    assert security_severity(severity) == score
    low, high = band
    assert low <= float(score) <= high  # GitHub's bands for critical/high/medium/low


def test_incomplete_rules_are_error_level() -> None:
    assert level(None) == "error"


def test_results_carry_location_members_and_fingerprint() -> None:
    report = mixed_report()
    run = _run(report)
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert [r["ruleId"] for r in run["results"]] == ["MG101", "MG102", "MG111"]  # worst first

    top = by_rule["MG101"]
    assert top["level"] == "error"
    assert top["message"]["text"] == "The pickle imports posix.system. (at models/evil.pkl@14)"
    location = top["locations"][0]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "models/evil.pkl", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 1},
    }
    assert "logicalLocations" not in location
    assert top["properties"]["offset"] == 14
    assert top["properties"]["evidence"] == {"global": "posix.system", "family": "process"}
    finding = next(f for f in report.findings if f.rule_id == "MG101")
    assert top["partialFingerprints"] == {FINGERPRINT_KEY: fingerprint(finding)}

    member = by_rule["MG102"]
    assert member["level"] == "warning"
    location = member["locations"][0]
    # Spaces and '#' must be escaped in a URI reference.
    assert (
        location["physicalLocation"]["artifactLocation"]["uri"] == "models/sub%20dir/model%231.pt"
    )
    assert location["logicalLocations"] == [
        {"name": "archive/data.pkl", "fullyQualifiedName": "archive/data.pkl", "kind": "resource"}
    ]
    assert member["properties"]["members"] == ["archive/data.pkl"]
    assert by_rule["MG111"]["level"] == "note"


def test_binary_regions_never_mix_text_and_byte_properties() -> None:
    # SARIF 2.1.0 section 3.30.4: an invented line beside a byte offset is an invalid region.
    for result in _run(mixed_report())["results"]:
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region == {"startLine": 1}


def test_incomplete_files_become_error_notifications() -> None:
    run = _run(mixed_report())
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert note["associatedRule"]["id"] == "MG002"
    rules = run["tool"]["driver"]["rules"]
    assert rules[note["associatedRule"]["index"]]["id"] == "MG002"
    assert note["message"]["text"] == "The pickle stream ends before STOP. (at models/broken.pkl@9)"
    uri = note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "models/broken.pkl"


def test_complete_scan_is_successful_without_notifications() -> None:
    invocation = _run(clean_report())["invocations"][0]
    assert invocation == {"executionSuccessful": True, "toolExecutionNotifications": []}


def test_empty_scan_is_unsuccessful() -> None:
    run = _run(empty_report())
    assert run["results"] == []
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["level"] == "error"
    assert run["properties"]["failOn"] == "never"


@pytest.mark.parametrize(
    ("path", "uri", "base"),
    [
        ("a/b.pkl", "a/b.pkl", "%SRCROOT%"),
        ("./a/b.pkl", "a/b.pkl", "%SRCROOT%"),
        ("caf\u00e9/m odel.pt", "caf%C3%A9/m%20odel.pt", "%SRCROOT%"),
        ("x%y?.bin", "x%25y%3F.bin", "%SRCROOT%"),
        ("bad\udcff.pkl", "bad%FF.pkl", "%SRCROOT%"),
        ("/abs/m.pkl", "file:///abs/m.pkl", None),
        ("C:/models/m.pkl", "file:///C:/models/m.pkl", None),
    ],
)
def test_artifact_uris(path: str, uri: str, base: str | None) -> None:
    report = ScanReport(
        files=(
            FileResult(
                path, 1, ("pickle",), (Finding("MG101", Severity.HIGH, "m", Location(path)),)
            ),
        )
    )
    artifact = _run(report)["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact["uri"] == uri
    assert artifact.get("uriBaseId") == base


def test_unknown_rule_gets_a_descriptor() -> None:
    report = ScanReport(
        files=(
            FileResult(
                "f.bin", 1, ("blob",), (Finding("MG999", Severity.HIGH, "m", Location("f.bin")),)
            ),
            FileResult(
                "g.bin", 1, ("blob",), incomplete=(Incomplete("MG098", "r", Location("g")),)
            ),
        )
    )
    run = _run(report)
    rules = run["tool"]["driver"]["rules"]
    (result,) = run["results"]
    assert rules[result["ruleIndex"]]["id"] == "MG999"
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["associatedRule"] == {"id": "MG098"}


def test_results_are_capped_with_a_warning() -> None:
    findings = tuple(
        Finding(
            "MG111" if i % 2 else "MG101",
            Severity.LOW if i % 2 else Severity.CRITICAL,
            f"m{i}",
            Location("f.pkl", (), i),
        )
        for i in range(10)
    )
    report = ScanReport(files=(FileResult("f.pkl", 10, ("pickle",), findings),))
    run = sarif_log(report, max_results=4)["runs"][0]
    assert len(run["results"]) == 4
    assert {r["ruleId"] for r in run["results"]} == {"MG101"}  # the worst are kept
    assert run["properties"]["resultsOmitted"] == 6
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["level"] == "warning"
    assert "6 less severe results" in note["message"]["text"]


def test_output_is_deterministic_ascii_json() -> None:
    text = render_sarif(hostile_report())
    assert text == render_sarif(hostile_report())
    assert text.isascii()
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["$schema", "version", "runs"]
