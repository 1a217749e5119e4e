"""modelguard blocks every sample of the malicious corpus, without executing any of them.

`tests/test_corpus_executes.py` proves each sample really runs its payload when loaded; here
each one is built, scanned in-process with the default policy (fail on medium), and must come
out at least `min_verdict`, with a blocking finding and at least one of its `expect_rules`.
The canary must not exist afterwards: scanning never loads what it scans.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import modelguard
from factories.malicious import SAMPLES, VERDICT_ORDER, MaliciousSample
from modelguard.rules import RULES


def _describe(report: modelguard.ScanReport) -> str:
    lines = [f"verdict={report.verdict.value}"]
    for result in report.files:
        lines.append(f"{result.path} formats={result.formats}")
        lines.extend(
            f"  {f.rule_id} {f.severity.value} {f.message} {dict(f.evidence)}"
            for f in result.findings
        )
        lines.extend(f"  incomplete {i.rule_id}: {i.reason}" for i in result.incomplete)
    return "\n".join(lines)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_expected_rules_exist(sample: MaliciousSample) -> None:
    assert sample.expect_rules, "a sample must name the rules that may block it"
    assert sample.expect_rules <= set(RULES), sorted(sample.expect_rules - set(RULES))
    assert sample.min_verdict in ("suspicious", "dangerous")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_sample_is_blocked(sample: MaliciousSample, tmp_path: Path) -> None:
    out_dir = tmp_path / "artifact"
    out_dir.mkdir()
    canary = tmp_path / "canary"
    artifact = sample.build(out_dir, canary)

    report = modelguard.scan(artifact)

    assert not canary.exists(), "scanning executed the payload"
    details = _describe(report)
    rank = VERDICT_ORDER.index(report.verdict.value)
    assert rank >= VERDICT_ORDER.index(sample.min_verdict), details
    assert report.blocking, details
    rule_ids = {f.rule_id for result in report.files for f in result.findings}
    assert rule_ids & sample.expect_rules, f"want one of {sorted(sample.expect_rules)}\n{details}"
