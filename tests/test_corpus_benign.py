"""Benign artifacts made by real ML libraries are never dangerous and, unless they reference
the saving script's own classes (or a deliberately unlisted name), never blocked."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelguard
from factories.benign import SAMPLES, BenignSample
from modelguard.results import Severity, Verdict


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_benign_sample_is_not_blocked(sample: BenignSample, built: dict[str, Path]) -> None:
    for module in sample.requires:
        pytest.importorskip(module)
    report = modelguard.scan(built[sample.id])
    findings = report.findings
    assert report.complete, [(i.rule_id, i.reason) for r in report.files for i in r.incomplete]
    assert not [f for f in findings if f.severity >= Severity.HIGH], findings
    if not sample.may_be_suspicious:
        assert not report.blocking, findings
        assert report.verdict is Verdict.SAFE
        return
    # Suspicious samples: only unknown imports of the script's own or declared names.
    for finding in report.blocking:
        assert finding.rule_id == "MG102", finding
        evidence = finding.evidence_map
        name = evidence.get("global", "")
        via_getattr = (
            evidence.get("mechanism") in ("getattr", "getattr-on-instance")
            and "builtins:getattr" in sample.unlisted
        )
        assert name.startswith("__main__:") or name in sample.unlisted or via_getattr, finding
