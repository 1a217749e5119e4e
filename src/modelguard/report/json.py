"""The JSON report: a stable, versioned document for machines.

The shape is described by `schema.json` beside this module (JSON Schema draft 2020-12), which is
shipped in the package; `SCHEMA_VERSION` changes whenever the shape does. Output is
deterministic: keys sorted, files sorted by path, findings worst first, no timestamps.

Every finding carries a `fingerprint`: a SHA-256 over its rule id, location and evidence, stable
across runs and machines, so that CI systems can match a finding from one run to the next. The
SARIF renderer uses the same value for `partialFingerprints`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelguard._version import __version__
from modelguard.results import FileResult, Finding, Incomplete, Location, ScanReport
from modelguard.rules import RULES

__all__ = [
    "SCHEMA_VERSION",
    "TOOL_NAME",
    "fingerprint",
    "load_schema",
    "render_json",
    "report_to_dict",
]

SCHEMA_VERSION = "1.1"
TOOL_NAME = "modelguard"


def fingerprint(finding: Finding) -> str:
    """Return a stable identity for `finding`: hex SHA-256 of rule id, location and evidence.

    The severity and message are left out on purpose: a policy change or a reworded message
    must not make a known finding look new.
    """
    payload = {
        "rule_id": finding.rule_id,
        "location": location_to_dict(finding.location),
        "evidence": sorted([key, value] for key, value in finding.evidence),
    }
    # ensure_ascii keeps lone surrogates (undecodable file names) encodable.
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def fail_on_name(report: ScanReport) -> str:
    """Return the report's threshold as the CLI spells it: a severity name or `never`."""
    return "never" if report.fail_on is None else report.fail_on.value


def location_to_dict(location: Location) -> dict[str, Any]:
    """Return `location` as a JSON object."""
    return {"path": location.path, "members": list(location.members), "offset": location.offset}


def _finding_to_dict(finding: Finding) -> dict[str, Any]:
    rule = RULES.get(finding.rule_id)
    return {
        "rule_id": finding.rule_id,
        "rule_name": None if rule is None else rule.name,
        "severity": finding.severity.value,
        "message": finding.message,
        "location": location_to_dict(finding.location),
        "evidence": dict(finding.evidence),
        "fingerprint": fingerprint(finding),
    }


def _incomplete_key(item: Incomplete) -> tuple[tuple[str, ...], int, str, str]:
    loc = item.location
    offset = -1 if loc.offset is None else loc.offset
    return ((loc.path, *loc.members), offset, item.rule_id, item.reason)


def _incomplete_to_dict(item: Incomplete) -> dict[str, Any]:
    return {
        "rule_id": item.rule_id,
        "reason": item.reason,
        "location": location_to_dict(item.location),
    }


def _file_to_dict(result: FileResult) -> dict[str, Any]:
    return {
        "path": result.path,
        "size": result.size,
        "formats": list(result.formats),
        "verdict": result.verdict.value,
        "complete": result.complete,
        "findings": [_finding_to_dict(f) for f in sorted(result.findings, key=Finding.sort_key)],
        "incomplete": [
            _incomplete_to_dict(i) for i in sorted(result.incomplete, key=_incomplete_key)
        ],
    }


def report_to_dict(report: ScanReport) -> dict[str, Any]:
    """Return the JSON document for `report` as plain dicts and lists (see `schema.json`)."""
    files = sorted(report.files, key=lambda r: r.path)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": TOOL_NAME, "version": report.version or __version__},
        "verdict": report.verdict.value,
        "complete": report.complete,
        "fail_on": fail_on_name(report),
        "targets": list(report.targets),
        "notes": list(report.notes),
        "summary": {
            "files": len(report.files),
            "verdicts": dict(report.verdict_counts()),
            "findings": dict(report.counts()),
            "blocking": len(report.blocking),
            "incomplete_files": sum(1 for r in report.files if not r.complete),
            "suppressed": report.suppressed,
        },
        "files": [_file_to_dict(r) for r in files],
        # Only when something was suppressed, so reports without suppressions keep their shape.
        **({"suppressions": _suppressions(report)} if report.suppressions else {}),
        # Only for resolved targets (hf://...): the target as given -> the commit scanned.
        **({"sources": _sources(report)} if report.sources else {}),
        # Only when include/exclude left files of a folder target out: every one, by path.
        **({"skipped": list(report.skipped)} if report.skipped else {}),
    }


def _sources(report: ScanReport) -> list[dict[str, str]]:
    """Return each resolved target with what was scanned for it (`org/name@<commit>`)."""
    return [{"target": target, "resolved": resolved} for target, resolved in report.sources]


def _suppressions(report: ScanReport) -> list[dict[str, Any]]:
    """Return the suppressed findings, each with its suppression's reason and origin."""
    return [
        {**_finding_to_dict(s.finding), "reason": s.reason, "origin": s.origin}
        for s in sorted(report.suppressions, key=lambda s: s.finding.sort_key())
    ]


def load_schema() -> dict[str, Any]:
    """Return the shipped JSON Schema of the report (`schema.json`, draft 2020-12)."""
    from importlib import resources

    text = resources.files("modelguard.report").joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def render_json(report: ScanReport) -> str:
    """Return `report` as a JSON document (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(report_to_dict(report), indent=2, sort_keys=True, ensure_ascii=True) + "\n"
