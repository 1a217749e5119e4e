"""Gathering verification problems into the scan report model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from modelguard._version import __version__
from modelguard.results import FileResult, Finding, Incomplete, Location, ScanReport, Severity
from modelguard.rules import RULES
from modelguard.signing.types import Problem

__all__ = ["Collector", "combine_reports"]


@dataclass
class Collector:
    """Findings and file sizes gathered during one verification."""

    display: str
    single_file: bool
    signature_display: str
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    incomplete: dict[str, list[Incomplete]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    formats: dict[str, tuple[str, ...]] = field(default_factory=dict)
    first: Finding | Incomplete | None = None

    def shown(self, name: str | None) -> str:
        if name is None:
            return self.signature_display
        if self.single_file:
            return self.display
        return f"{self.display.rstrip('/')}/{name}" if self.display not in ("", ".") else name

    def add(self, problem: Problem, severity: Severity | None = None) -> None:
        rule = RULES[problem.rule_id]
        sev = severity or problem.severity or rule.severity or Severity.HIGH
        path = self.shown(problem.name)
        finding = Finding(problem.rule_id, sev, problem.message, Location(path), problem.evidence)
        self.findings.setdefault(path, []).append(finding)
        if self.first is None and sev >= Severity.MEDIUM:
            self.first = finding

    def unreadable(self, name: str, reason: str) -> None:
        path = self.shown(name)
        item = Incomplete("MG001", reason, Location(path))
        self.incomplete.setdefault(path, []).append(item)
        if self.first is None:
            self.first = item

    def report(self, target: str, notes: Sequence[str]) -> ScanReport:
        paths = set(self.findings) | set(self.incomplete) | set(self.formats)
        files = tuple(
            FileResult(
                path,
                self.sizes.get(path, 0),
                self.formats.get(path, ()),
                tuple(sorted(self.findings.get(path, ()), key=Finding.sort_key)),
                tuple(self.incomplete.get(path, ())),
            )
            for path in sorted(paths)
        )
        return ScanReport(
            files=files,
            targets=(target,),
            fail_on=Severity.MEDIUM,
            version=__version__,
            notes=tuple(notes),
        )


def combine_reports(verification: ScanReport, scan: ScanReport) -> ScanReport:
    """Return one report holding a verification and a scan of the same model (`--scan`).

    Results for the same path are merged (findings, incomplete reasons, formats); the scan's
    `fail_on` applies, and the notes of both are kept.
    """
    merged: dict[str, FileResult] = {r.path: r for r in verification.files}
    for res in scan.files:
        old = merged.get(res.path)
        if old is None:
            merged[res.path] = res
            continue
        formats = tuple(dict.fromkeys((*res.formats, *old.formats)))
        findings = tuple(sorted({*old.findings, *res.findings}, key=Finding.sort_key))
        merged[res.path] = FileResult(
            res.path,
            max(res.size, old.size),
            formats,
            findings,
            (*old.incomplete, *res.incomplete),
        )
    return ScanReport(
        files=tuple(merged[p] for p in sorted(merged)),
        targets=tuple(dict.fromkeys((*verification.targets, *scan.targets))),
        fail_on=scan.fail_on,
        version=verification.version or scan.version,
        suppressed=scan.suppressed,
        suppressions=scan.suppressions,
        notes=(*verification.notes, *scan.notes),
    )
