from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from modelguard.report.json import (
    SCHEMA_VERSION,
    fingerprint,
    load_schema,
    render_json,
    report_to_dict,
)
from modelguard.results import Finding, Location, Severity

from . import SAMPLES, hostile_report, mixed_report


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_json_matches_golden(name: str, golden: Callable[[str, str], None]) -> None:
    golden(f"{name}.json", render_json(SAMPLES[name]()))


@pytest.mark.parametrize("name", [*sorted(SAMPLES), "hostile"])
def test_json_validates_against_shipped_schema(
    name: str, validator: jsonschema.Draft202012Validator
) -> None:
    report = hostile_report() if name == "hostile" else SAMPLES[name]()
    validator.validate(json.loads(render_json(report)))


def test_schema_version_matches_schema() -> None:
    assert load_schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("summary"),
        lambda d: d.update(verdict="fine"),
        lambda d: d["files"][0].update(size=-1),
        lambda d: d["files"][2]["findings"][0].update(fingerprint="abc"),
        lambda d: d["files"][2]["findings"][0].update(severity="urgent"),
        lambda d: d.update(extra=1),
    ],
)
def test_schema_rejects_malformed_documents(
    mutate: Callable[[dict[str, Any]], object], validator: jsonschema.Draft202012Validator
) -> None:
    document = report_to_dict(mixed_report())
    mutate(document)
    assert not validator.is_valid(document)


def test_top_level_and_summary() -> None:
    document = json.loads(render_json(mixed_report()))
    assert document["schema_version"] == "1.1"
    assert document["tool"] == {"name": "modelguard", "version": "0.0.0+test"}
    assert document["verdict"] == "dangerous"
    assert document["complete"] is False
    assert document["fail_on"] == "medium"
    assert document["targets"] == ["models"]
    assert document["summary"] == {
        "files": 4,
        "verdicts": {"safe": 1, "error": 1, "suspicious": 1, "dangerous": 1},
        "findings": {"critical": 1, "high": 0, "medium": 1, "low": 1, "info": 0},
        "blocking": 2,
        "incomplete_files": 1,
        "suppressed": 1,
    }


def test_files_sorted_and_findings_worst_first() -> None:
    document = report_to_dict(mixed_report())
    assert [f["path"] for f in document["files"]] == sorted(f["path"] for f in document["files"])
    evil = next(f for f in document["files"] if f["path"] == "models/evil.pkl")
    assert [f["rule_id"] for f in evil["findings"]] == ["MG101", "MG111"]
    finding = evil["findings"][0]
    assert finding["rule_name"] == "dangerous-global"
    assert finding["location"] == {"path": "models/evil.pkl", "members": [], "offset": 14}
    assert finding["evidence"] == {"global": "posix.system", "family": "process"}


def test_incomplete_entries() -> None:
    document = report_to_dict(mixed_report())
    broken = next(f for f in document["files"] if f["path"] == "models/broken.pkl")
    assert broken["verdict"] == "error"
    assert broken["complete"] is False
    assert broken["incomplete"] == [
        {
            "rule_id": "MG002",
            "reason": "The pickle stream ends before STOP.",
            "location": {"path": "models/broken.pkl", "members": [], "offset": 9},
        }
    ]


def test_fail_on_never_and_empty_report() -> None:
    document = report_to_dict(SAMPLES["empty"]())
    assert document["fail_on"] == "never"
    assert document["verdict"] == "error"
    assert document["complete"] is False
    assert document["files"] == []


def test_output_is_deterministic_sorted_and_ascii() -> None:
    text = render_json(hostile_report())
    assert text == render_json(hostile_report())
    assert text.isascii()
    assert text.endswith("}\n")
    document = json.loads(text)
    assert json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n" == text


_BASE = Finding(
    "MG101",
    Severity.CRITICAL,
    "msg",
    Location("a.pkl", ("m",), 3),
    (("global", "os.system"), ("family", "process")),
)


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (Finding("MG101", Severity.LOW, "other words", _BASE.location, _BASE.evidence), True),
        (
            Finding("MG101", Severity.CRITICAL, "msg", _BASE.location, _BASE.evidence[::-1]),
            True,
        ),
        (Finding("MG103", Severity.CRITICAL, "msg", _BASE.location, _BASE.evidence), False),
        (Finding("MG101", Severity.CRITICAL, "msg", Location("b.pkl", ("m",), 3)), False),
        (
            Finding("MG101", Severity.CRITICAL, "msg", Location("a.pkl", (), 3), _BASE.evidence),
            False,
        ),
        (
            Finding(
                "MG101", Severity.CRITICAL, "msg", Location("a.pkl", ("m",), 4), _BASE.evidence
            ),
            False,
        ),
        (
            Finding("MG101", Severity.CRITICAL, "msg", _BASE.location, (("global", "os.popen"),)),
            False,
        ),
    ],
)
def test_fingerprint_identity(other: Finding, same: bool) -> None:
    assert (fingerprint(other) == fingerprint(_BASE)) is same


def test_fingerprint_is_a_pinned_sha256() -> None:
    value = fingerprint(_BASE)
    assert len(value) == 64
    assert int(value, 16) >= 0
    # Pinned: a change here silently re-opens every alert users have triaged.
    assert value == fingerprint(
        Finding("MG101", Severity.INFO, "", Location("a.pkl", ("m",), 3), _BASE.evidence)
    )
    assert value == _PINNED_FINGERPRINT


_PINNED_FINGERPRINT = "6a72f9b0ecd40663e594215f5fa1d5196c545ab9494383b9636845365ca8c4fb"
