"""Value types of a scan: severities, verdicts, findings, per-file results and the report.

Everything here is a frozen dataclass or an enum with no I/O; renderers and the CLI consume
them, the scanner produces them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from modelguard.errors import UnsafeModelError

__all__ = [
    "FileResult",
    "Finding",
    "Incomplete",
    "Location",
    "ScanReport",
    "Severity",
    "Suppressed",
    "Verdict",
]


class Severity(Enum):
    """How bad a finding is, from `CRITICAL` down to `INFO`."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Return 4 for critical down to 0 for info."""
        return _SEVERITY_RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_SEVERITY_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


class Verdict(Enum):
    """The judgement on a file or a whole scan, from `SAFE` up to `DANGEROUS`.

    `DANGEROUS`: a critical or high finding. `SUSPICIOUS`: a medium finding. `ERROR`: the scan
    could not be completed and nothing worse was found. `SAFE`: complete, nothing above low.
    """

    SAFE = "safe"
    ERROR = "error"
    SUSPICIOUS = "suspicious"
    DANGEROUS = "dangerous"

    @property
    def rank(self) -> int:
        """Return 0 for safe up to 3 for dangerous."""
        return _VERDICT_RANK[self]


_VERDICT_RANK = {Verdict.SAFE: 0, Verdict.ERROR: 1, Verdict.SUSPICIOUS: 2, Verdict.DANGEROUS: 3}


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """Where a finding lies.

    Attributes:
        path: the file, relative to the scan target where possible, POSIX style.
        members: the chain of containers inside the file, outermost first: archive member
            names, `<gzip>`-style wrapper names, `<pickle@OFFSET>` for a nested pickle.
        offset: byte offset inside the innermost stream, when known.
    """

    path: str
    members: tuple[str, ...] = ()
    offset: int | None = None

    def __str__(self) -> str:
        text = "!".join((self.path, *self.members))
        if self.offset is not None:
            text += f"@{self.offset}"
        return text

    def inner(self, member: str) -> Location:
        """Return the location of `member` inside this one (offset dropped)."""
        return Location(self.path, (*self.members, member))

    def at(self, offset: int | None) -> Location:
        """Return this location with `offset` set."""
        return Location(self.path, self.members, offset)


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation with a stable rule id.

    Attributes:
        rule_id: stable id such as `MG101`; `modelguard explain RULE` describes it.
        severity: effective severity (after policy overrides).
        message: one human sentence.
        location: where it was seen.
        evidence: ordered key/value pairs (the global, the opcode, the family, ...).
    """

    rule_id: str
    severity: Severity
    message: str
    location: Location
    evidence: tuple[tuple[str, str], ...] = ()

    @property
    def evidence_map(self) -> Mapping[str, str]:
        """Return the evidence as a dict."""
        return dict(self.evidence)

    def sort_key(self) -> tuple[int, tuple[str, ...], int, str, str]:
        """Key that orders findings: worst first, then by place and rule."""
        loc = self.location
        return (
            -self.severity.rank,
            (loc.path, *loc.members),
            -1 if loc.offset is None else loc.offset,
            self.rule_id,
            self.message,
        )


@dataclass(frozen=True, slots=True)
class Incomplete:
    """Why part of a file could not be analysed completely.

    Attributes:
        rule_id: stable id of the kind of failure (parse error, limit, unsupported, ...).
        reason: one human sentence naming the cause (and the limit, when one was reached).
        location: where analysis stopped.
    """

    rule_id: str
    reason: str
    location: Location


@dataclass(frozen=True, slots=True)
class FileResult:
    """The result for one file.

    Attributes:
        path: display path, relative to the target where possible, POSIX style.
        size: size in bytes.
        formats: what the content was recognised as (outermost first), e.g. `("zip",
            "torch-zip")`.
        findings: findings, sorted worst first.
        incomplete: reasons the analysis did not finish; non-empty means the file was not
            fully scanned.
    """

    path: str
    size: int
    formats: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    incomplete: tuple[Incomplete, ...] = ()

    @property
    def complete(self) -> bool:
        """Return True when every part of the file was analysed."""
        return not self.incomplete

    @property
    def verdict(self) -> Verdict:
        """Return the file's verdict (see `Verdict`)."""
        worst = max((f.severity.rank for f in self.findings), default=-1)
        if worst >= Severity.HIGH.rank:
            return Verdict.DANGEROUS
        if worst >= Severity.MEDIUM.rank:
            return Verdict.SUSPICIOUS
        if self.incomplete:
            return Verdict.ERROR
        return Verdict.SAFE


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A finding a policy suppression removed from the findings, kept for the record.

    Attributes:
        finding: the finding as it would have been reported.
        reason: the suppression's reason.
        origin: where the suppression was declared (`FILE [[suppress]] #N`, `command line`).
    """

    finding: Finding
    reason: str
    origin: str = ""


@dataclass(frozen=True, slots=True)
class ScanReport:
    """All results of one scan.

    Attributes:
        files: one result per file, in path order.
        targets: the targets as given.
        fail_on: the lowest severity that blocks; None means nothing blocks.
        version: the modelguard version that produced the report.
        suppressed: how many findings the policy suppressed.
        notes: human notes about the scan as a whole.
        suppressions: the suppressed findings, each with the reason (len == suppressed when
            the report came from `scan`).
        sources: for targets resolved elsewhere (`hf://org/name@main`), pairs of the target
            as given and what was scanned (`org/name@<40-hex commit>`).
        skipped: display paths of the files of folder targets that the policy's
            include/exclude globs left out (not scanned), in path order.
    """

    files: tuple[FileResult, ...]
    targets: tuple[str, ...] = ()
    fail_on: Severity | None = Severity.MEDIUM
    version: str = ""
    suppressed: int = 0
    notes: tuple[str, ...] = field(default=())
    suppressions: tuple[Suppressed, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Return every finding of every file, worst first."""
        return tuple(sorted((f for r in self.files for f in r.findings), key=Finding.sort_key))

    @property
    def complete(self) -> bool:
        """Return True when at least one file was scanned and every file was fully analysed."""
        return bool(self.files) and all(r.complete for r in self.files)

    @property
    def verdict(self) -> Verdict:
        """Return the worst file verdict; an empty scan is `ERROR` (nothing was checked)."""
        if not self.files:
            return Verdict.ERROR
        return max((r.verdict for r in self.files), key=lambda v: v.rank)

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Return the findings at or above `fail_on`."""
        if self.fail_on is None:
            return ()
        threshold = self.fail_on
        return tuple(f for f in self.findings if f.severity >= threshold)

    def counts(self) -> Mapping[str, int]:
        """Return the number of findings per severity name (every severity present)."""
        counter = Counter(f.severity.value for f in self.findings)
        return {s.value: counter.get(s.value, 0) for s in Severity}

    def verdict_counts(self) -> Mapping[str, int]:
        """Return the number of files per verdict name (every verdict present)."""
        counter = Counter(r.verdict.value for r in self.files)
        return {v.value: counter.get(v.value, 0) for v in Verdict}

    def raise_for_findings(self) -> None:
        """Raise `UnsafeModelError` if a finding blocks or the scan is incomplete.

        Raises:
            UnsafeModelError: with this report attached.
        """
        blocking = self.blocking
        if blocking:
            raise UnsafeModelError(
                f"{len(blocking)} blocking finding(s), worst: {blocking[0].rule_id} "
                f"{blocking[0].message} ({blocking[0].location})",
                self,
            )
        if not self.complete:
            raise UnsafeModelError("the scan is incomplete: nothing may be assumed safe", self)


def sorted_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Return `findings` deduplicated and sorted worst first."""
    return tuple(sorted(set(findings), key=Finding.sort_key))
