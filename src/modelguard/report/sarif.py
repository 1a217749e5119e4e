"""The SARIF 2.1.0 report, shaped for GitHub code scanning.

One run. `tool.driver.rules` lists every rule of the catalogue (`modelguard.rules.RULES`) with
the same help text `modelguard explain` prints, a default level, and the `security-severity`
score and `security` tag that GitHub uses to rank security alerts. Each finding is a result;
each reason a file was not fully analysed is an error-level `toolExecutionNotification` of
`invocations[0]`, whose `executionSuccessful` is the report's `complete`.

Regions in binary files. Model files have no lines, and modelguard's offsets often point
inside an archive member or a decompressed stream rather than into the file on disk. SARIF
§3.30.4 makes a region that mixes text properties (`startLine`) and binary properties
(`byteOffset`) invalid when the two disagree, so no invented line may sit beside a byte offset;
GitHub, for its part, requires `region.startLine` to place an alert (its "SARIF support for
code scanning" page, and rule GH1003 of the SARIF validator's GitHub profile). modelguard
therefore anchors every result at the file itself, `region = {"startLine": 1}`, and carries the
precise place elsewhere: in the message text (`path!member@offset`), in `logicalLocations`
(one `resource` entry naming the archive members) and in the result's `properties`
(`members`, `offset`). A `byteOffset` region would be exact only for offsets into the file on
disk, and GitHub may not display it.

Fingerprints. GitHub computes `primaryLocationLineHash` from source lines, which binary files
do not have, so every result carries its own `partialFingerprints` entry
(`modelguardFingerprint/v1`, the JSON report's `fingerprint`).

Suppressions. A finding a policy suppressed is still a result, with `suppressions: [{"kind":
"external", "status": "accepted", "justification": REASON}]` (SARIF 2.1.0 §3.27.23, §3.35):
code scanning then records it as closed rather than open, and the reason stays with it.

GitHub shows at most 25,000 results per run; beyond `MAX_RESULTS` the least severe results are
dropped and a warning notification says how many.
"""

from __future__ import annotations

import json
import re
from typing import Any, assert_never
from urllib.parse import quote

from modelguard._version import __version__
from modelguard.report.json import TOOL_NAME, fail_on_name, fingerprint
from modelguard.results import Finding, Incomplete, Location, ScanReport, Severity, Suppressed
from modelguard.rules import RULES, Rule

__all__ = [
    "FINGERPRINT_KEY",
    "INFORMATION_URI",
    "MAX_RESULTS",
    "SARIF_SCHEMA",
    "SARIF_VERSION",
    "level",
    "render_sarif",
    "sarif_log",
    "security_severity",
]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI = "https://github.com/modelguard/modelguard"
FINGERPRINT_KEY = "modelguardFingerprint/v1"
MAX_RESULTS = 25_000
"""GitHub code scanning accepts at most 25,000 results per run."""

_SRCROOT = "%SRCROOT%"
_ABSOLUTE_WINDOWS = re.compile(r"^[A-Za-z]:/")


def level(severity: Severity | None) -> str:
    """Return the SARIF level for `severity` (None: rules that mark a scan incomplete)."""
    match severity:
        case Severity.CRITICAL | Severity.HIGH | None:
            return "error"
        case Severity.MEDIUM:
            return "warning"
        case Severity.LOW | Severity.INFO:
            return "note"
        case _:
            assert_never(severity)


def security_severity(severity: Severity) -> str:
    """Return GitHub's `security-severity` score for `severity`, as a numeric string.

    GitHub's bands: over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
    """
    match severity:
        case Severity.CRITICAL:
            return "9.5"
        case Severity.HIGH:
            return "8.0"
        case Severity.MEDIUM:
            return "5.5"
        case Severity.LOW:
            return "3.0"
        case Severity.INFO:
            return "1.0"
        case _:
            assert_never(severity)


def _artifact_location(path: str) -> dict[str, Any]:
    # surrogateescape restores the original bytes of undecodable file names before quoting.
    raw = path.encode("utf-8", "surrogateescape")
    if path.startswith("/"):
        return {"uri": "file://" + quote(raw, safe="/")}
    if _ABSOLUTE_WINDOWS.match(path):
        return {"uri": "file:///" + quote(raw, safe="/:")}
    relative = path[2:] if path.startswith("./") else path
    return {
        "uri": quote(relative.encode("utf-8", "surrogateescape"), safe="/"),
        "uriBaseId": _SRCROOT,
    }


def _location(location: Location) -> dict[str, Any]:
    out: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": _artifact_location(location.path),
            # A file-level anchor: see the module docstring.
            "region": {"startLine": 1},
        }
    }
    if location.members:
        out["logicalLocations"] = [
            {
                "name": location.members[-1],
                "fullyQualifiedName": "!".join(location.members),
                "kind": "resource",
            }
        ]
    return out


def _rule_descriptor(rule: Rule) -> dict[str, Any]:
    properties: dict[str, Any] = {"tags": ["security"]}
    if rule.severity is not None:
        properties["security-severity"] = security_severity(rule.severity)
    default = "none (marks the scan incomplete)" if rule.severity is None else rule.severity.value
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.help},
        "help": {
            "text": rule.help,
            "markdown": f"**{rule.id} {rule.name}**: {rule.summary}\n\n{rule.help}\n\n"
            f"Default severity: {default}.",
        },
        "defaultConfiguration": {"level": level(rule.severity)},
        "properties": properties,
    }


def _unknown_descriptor(rule_id: str) -> dict[str, Any]:
    # A rule id missing from the catalogue still needs a descriptor: GitHub requires one.
    text = f"{rule_id} (not in this version's rule catalogue)."
    return {
        "id": rule_id,
        "shortDescription": {"text": text},
        "fullDescription": {"text": text},
        "help": {"text": text, "markdown": text},
        "properties": {"tags": ["security"]},
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    loc = finding.location
    return {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": {"text": f"{finding.message} (at {loc})"},
        "locations": [_location(loc)],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding)},
        "properties": {
            "severity": finding.severity.value,
            # The effective severity may differ from the rule's default after policy.
            "security-severity": security_severity(finding.severity),
            "location": str(loc),
            "members": list(loc.members),
            "offset": loc.offset,
            "evidence": dict(finding.evidence),
        },
    }


def _suppressed_result(item: Suppressed, rule_index: int) -> dict[str, Any]:
    out = _result(item.finding, rule_index)
    out["suppressions"] = [{"kind": "external", "status": "accepted", "justification": item.reason}]
    out["properties"]["suppressedBy"] = item.origin
    return out


def _notification(item: Incomplete, rule_index: dict[str, int]) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": item.rule_id}
    if item.rule_id in rule_index:
        rule["index"] = rule_index[item.rule_id]
    return {
        "level": "error",
        "message": {"text": f"{item.reason} (at {item.location})"},
        "associatedRule": rule,
        "locations": [_location(item.location)],
    }


def sarif_log(report: ScanReport, *, max_results: int = MAX_RESULTS) -> dict[str, Any]:
    """Return the SARIF 2.1.0 log for `report` as plain dicts and lists.

    Args:
        report: the scan report.
        max_results: results kept, worst first; the rest are counted in a notification.
    """
    findings = report.findings
    kept = findings[:max_results]
    quiet = sorted(report.suppressions, key=lambda s: s.finding.sort_key())
    quiet = quiet[: max(0, max_results - len(kept))]
    descriptors = [_rule_descriptor(RULES[rid]) for rid in sorted(RULES)]
    unknown = sorted(
        ({f.rule_id for f in kept} | {s.finding.rule_id for s in quiet}) - RULES.keys()
    )
    descriptors.extend(_unknown_descriptor(rid) for rid in unknown)
    rule_index = {d["id"]: i for i, d in enumerate(descriptors)}

    notifications: list[dict[str, Any]] = []
    if not report.files:
        notifications.append({"level": "error", "message": {"text": "No file was scanned."}})
    for result in sorted(report.files, key=lambda r: r.path):
        notifications.extend(_notification(i, rule_index) for i in result.incomplete)
    if len(findings) > len(kept):
        dropped = len(findings) - len(kept)
        notifications.append(
            {
                "level": "warning",
                "message": {
                    "text": f"{dropped} less severe results were left out: SARIF consumers "
                    f"accept at most {max_results} results per run. See the JSON report."
                },
            }
        )

    version = report.version or __version__
    run = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": version,
                "semanticVersion": version,
                "informationUri": INFORMATION_URI,
                "rules": descriptors,
            }
        },
        "invocations": [
            {
                "executionSuccessful": report.complete,
                "toolExecutionNotifications": notifications,
            }
        ],
        "columnKind": "unicodeCodePoints",
        "results": [
            *(_result(f, rule_index[f.rule_id]) for f in kept),
            *(_suppressed_result(s, rule_index[s.finding.rule_id]) for s in quiet),
        ],
        "properties": {
            "verdict": report.verdict.value,
            "complete": report.complete,
            "failOn": fail_on_name(report),
            "blocking": len(report.blocking),
            "suppressed": report.suppressed,
            "resultsOmitted": len(findings) - len(kept),
            "targets": list(report.targets),
            "notes": list(report.notes),
            **(
                {"sources": [{"target": t, "resolved": r} for t, r in report.sources]}
                if report.sources
                else {}
            ),
            # Files the policy's include/exclude left out (not scanned), when there are some.
            **({"skipped": list(report.skipped)} if report.skipped else {}),
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(report: ScanReport) -> str:
    """Return `report` as a SARIF 2.1.0 document (two-space indent, trailing newline)."""
    return json.dumps(sarif_log(report), indent=2, ensure_ascii=True) + "\n"
