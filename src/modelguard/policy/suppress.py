"""Suppressions: findings a team has reviewed and accepted, with a reason and an expiry.

::

    [[suppress]]
    rule = ["MG201", "MG402"]      # one rule id or a list
    path = "legacy/**"            # optional glob on the display path (see policy.globs)
    reason = "legacy exports, re-saved as safetensors in Q3"
    expires = 2027-01-31          # optional (TOML date or "YYYY-MM-DD"), last day it applies

A suppressed finding leaves the findings (so it neither blocks nor changes a verdict) and is
counted and listed in the report with its reason. An expired entry stops applying and is itself
reported (MG010, naming the entry). Suppressions never touch integrity failures (MG3xx
verification, MG604 a Hugging Face cache blob whose content does not match its digest) nor
incomplete results (MG0xx are not findings): a scan that could not finish is never made to
look complete. A policy naming one of them is refused (ConfigError), and so is a path glob
that does not compile. `--ignore RULE[:GLOB]` on the command line adds an entry with reason
"command line".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from modelguard.errors import ConfigError
from modelguard.policy.globs import check_glob, glob_matches
from modelguard.results import FileResult, Finding, Location, ScanReport, Severity, Suppressed
from modelguard.rules import INTEGRITY_RULES, integrity_rule

if TYPE_CHECKING:
    import datetime as dt

__all__ = [
    "INTEGRITY_RULES",
    "Suppression",
    "apply_suppressions",
    "integrity_rule",
    "parse_ignore",
    "parse_suppressions",
    "suppressible",
]

_FIELDS = {"rule", "path", "reason", "expires"}


@dataclass(frozen=True)
class Suppression:
    """One suppression entry.

    Attributes:
        rules: rule ids it applies to.
        reason: why the findings are accepted (required).
        path: glob on the display path; None: every path.
        expires: last day the entry applies; None: no expiry.
        origin: where it was declared (`FILE [[suppress]] #N` or `command line`).
    """

    rules: tuple[str, ...]
    reason: str
    path: str | None = None
    expires: dt.date | None = None
    origin: str = ""

    def expired(self, today: dt.date) -> bool:
        """Return True if the entry no longer applies on `today`."""
        return self.expires is not None and today > self.expires

    def matches(self, finding: Finding, bases: Sequence[str] = ()) -> bool:
        """Return True if the entry covers `finding` (expiry not considered).

        `bases` are the display prefixes of the folder targets (`repo/`): a glob is matched
        against the finding's path and against its path inside each of them, so `/legacy/**`
        anchors at the top of a scanned folder, as include/exclude globs do.
        """
        if finding.rule_id not in self.rules or not suppressible(finding.rule_id):
            return False
        if self.path is None:
            return True
        path = finding.location.path
        if glob_matches(self.path, path):
            return True
        return any(
            path.startswith(base) and glob_matches(self.path, path[len(base) :]) for base in bases
        )

    def describe(self) -> str:
        """Return a short human description of the entry."""
        text = f"{self.origin}: {', '.join(self.rules)}"
        if self.path is not None:
            text += f" at {self.path}"
        return text


def suppressible(rule_id: str) -> bool:
    """Return False for rules no suppression may touch (MG0xx incompletes, integrity)."""
    return not rule_id.startswith("MG0") and not integrity_rule(rule_id)


def _rule_ids(raw: object, where: str) -> tuple[str, ...]:
    from modelguard.rules import RULES

    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: rule must be a rule id or a non-empty list of them")
    out: list[str] = []
    for value in values:
        rule_id = str(value).strip().upper()
        rule = RULES.get(rule_id)
        if rule is None:
            raise ConfigError(f"{where}: unknown rule {value!r}")
        if integrity_rule(rule_id):
            kind = "a verification" if rule_id.startswith("MG3") else "an integrity"
            raise ConfigError(
                f"{where}: {rule_id} is {kind} failure and cannot be suppressed "
                "(fix the signature or the files instead)"
            )
        if rule_id.startswith("MG01"):
            raise ConfigError(f"{where}: {rule_id} reports on the policy itself; fix the policy")
        if rule.severity is None:
            raise ConfigError(
                f"{where}: {rule_id} marks an incomplete scan, not a finding; it cannot be "
                "suppressed (raise the limit in [limits] if the file is trusted)"
            )
        out.append(rule_id)
    return tuple(dict.fromkeys(out))


def _expiry(raw: object, where: str) -> dt.date:
    import datetime as dt  # only when a suppression has an expiry

    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str):
        try:
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ConfigError(f'{where}: expires must be a date (2027-01-31 or "YYYY-MM-DD")')


def parse_suppressions(raw: object, source: str) -> tuple[Suppression, ...]:
    """Parse the `[[suppress]]` array of a policy file.

    Raises:
        ConfigError: malformed entry, missing reason, unknown rule, a rule that may not be
            suppressed (MG3xx verification, MG604 integrity, MG0xx incomplete) or an invalid
            path glob.
    """
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: suppress must be an array of tables ([[suppress]])")
    out: list[Suppression] = []
    for number, entry in enumerate(raw, 1):
        origin = f"{source} [[suppress]] #{number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{origin}: must be a table")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ConfigError(f"{origin}: unknown fields {', '.join(sorted(unknown))}")
        if "rule" not in entry:
            raise ConfigError(f"{origin}: rule is required")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{origin}: a non-empty reason is required")
        path = entry.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ConfigError(f"{origin}: path must be a non-empty glob string")
        expires = _expiry(entry["expires"], origin) if "expires" in entry else None
        out.append(
            Suppression(
                _rule_ids(entry["rule"], origin),
                reason.strip(),
                check_glob(path.strip(), f"{origin}: path") if isinstance(path, str) else None,
                expires,
                origin,
            )
        )
    return tuple(out)


def parse_ignore(spec: str) -> Suppression:
    """Parse a command-line `--ignore RULE[:GLOB]` into a suppression ("command line").

    Raises:
        ConfigError: unknown rule, one that may not be suppressed, or an invalid glob.
    """
    rule, colon, glob = spec.partition(":")
    where = f"--ignore {spec}"
    if colon and not glob.strip():
        raise ConfigError(f"{where}: empty glob after ':'")
    path = check_glob(glob.strip(), where) if glob.strip() else None
    return Suppression(_rule_ids(rule, where), "command line", path, None, where)


def _expired_finding(entry: Suppression, source: str, severity: Severity) -> Finding:
    assert entry.expires is not None
    evidence = [("entry", entry.origin), ("rules", ", ".join(entry.rules))]
    if entry.path is not None:
        evidence.append(("path", entry.path))
    evidence += [("expires", entry.expires.isoformat()), ("reason", entry.reason)]
    return Finding(
        "MG010",
        severity,
        f"suppression {entry.describe()} expired on {entry.expires.isoformat()}; "
        "it no longer applies",
        Location(source),
        tuple(evidence),
    )


def apply_suppressions(
    report: ScanReport,
    suppressions: Sequence[Suppression],
    *,
    source: str | None = None,
    severity: Severity = Severity.LOW,
    today: dt.date | None = None,
) -> ScanReport:
    """Return `report` with the findings the live suppressions cover moved aside.

    Args:
        report: a finished scan report.
        suppressions: the entries to apply, in order (the first matching one is recorded).
        source: the policy file, where MG010 findings for expired entries are located.
        severity: the severity of MG010 findings.
        today: the date expiry is judged against (default: today, local time).

    Returns:
        A report whose `suppressed`/`suppressions` count and list what was removed, with an
        MG010 finding per expired entry and a note per live entry that matched nothing.
    """
    if not suppressions:
        return report
    if today is None:
        import datetime as dt

        today = dt.date.today()
    bases = _folder_bases(report)
    live = [s for s in suppressions if not s.expired(today)]
    used: set[int] = set()
    removed: list[Suppressed] = []
    files: list[FileResult] = []
    for result in report.files:
        kept: list[Finding] = []
        for finding in result.findings:
            index = next((i for i, s in enumerate(live) if s.matches(finding, bases)), None)
            if index is None:
                kept.append(finding)
                continue
            used.add(index)
            removed.append(Suppressed(finding, live[index].reason, live[index].origin))
        changed = len(kept) != len(result.findings)
        files.append(replace(result, findings=tuple(kept)) if changed else result)
    expired = [s for s in suppressions if s.expired(today)]
    where = source or "policy"
    notes: list[str] = []
    if expired and files:
        files = _add_policy_findings(
            files, where, [_expired_finding(e, where, severity) for e in expired]
        )
    elif expired:  # no file scanned: a result for the policy would make the scan look complete
        notes += [f"{_expired_finding(e, where, severity).message} (MG010)" for e in expired]
    notes += [
        f"suppression {s.describe()} matched no finding"
        for i, s in enumerate(live)
        if i not in used
    ]
    removed.sort(key=lambda s: s.finding.sort_key())
    return replace(
        report,
        files=tuple(files),
        suppressed=report.suppressed + len(removed),
        suppressions=(*report.suppressions, *removed),
        notes=(*report.notes, *notes),
    )


def _folder_bases(report: ScanReport) -> tuple[str, ...]:
    """Return the display prefixes of the report's folder targets (`repo/`, `org/name@c/`)."""
    import os
    from pathlib import Path

    bases: list[str] = []
    for target in report.targets:
        if not target.startswith("hf://") and os.path.isdir(target):
            shown = Path(target).as_posix()
            if shown not in ("", "."):
                bases.append(shown.rstrip("/") + "/")
    bases.extend(resolved.rstrip("/") + "/" for _, resolved in report.sources)
    return tuple(dict.fromkeys(bases))


def _add_policy_findings(
    files: list[FileResult], source: str, findings: list[Finding]
) -> list[FileResult]:
    """Attach findings about the policy file to its result (added when it was not scanned)."""
    for index, result in enumerate(files):
        if result.path == source:
            merged = tuple(sorted({*result.findings, *findings}, key=Finding.sort_key))
            files[index] = replace(result, findings=merged)
            return files
    findings.sort(key=Finding.sort_key)
    files.append(FileResult(source, 0, ("policy",), tuple(findings)))
    files.sort(key=lambda r: r.path)
    return files
