"""The human-readable report: one line per file, its findings beneath it, a closing summary.

Example (without colour)::

    dangerous   models/evil.pkl  [pickle]
      critical  MG101 dangerous-global: The pickle imports posix.system.
                at models/evil.pkl@14; family=process, global=posix.system
    safe        models/clean.safetensors  [safetensors]

    2 files: 1 dangerous, 0 suspicious, 0 error, 1 safe; findings: 1 critical, 0 high, ...
    verdict: dangerous; blocking: 1 finding at fail-on medium

Everything that comes from a scanned file (paths, member names, messages, evidence) is
escaped with `printable()` first: a hostile file must not be able to write terminal control
sequences or bidirectional overrides into a reviewer's terminal.
"""

from __future__ import annotations

from modelguard.results import FileResult, Finding, Incomplete, ScanReport, Severity, Verdict
from modelguard.rules import RULES

__all__ = ["MAX_EVIDENCE_CHARS", "printable", "render_text", "summary_line"]

MAX_EVIDENCE_CHARS = 160
"""Evidence values longer than this are cut in the text report (JSON and SARIF carry them whole)."""

_LABEL_WIDTH = 10
_INDENT = "  "
_DETAIL_INDENT = _INDENT + " " * (_LABEL_WIDTH + 2)

_RESET = "\x1b[0m"
_BOLD_RED = "\x1b[1;31m"
_RED = "\x1b[31m"
_YELLOW = "\x1b[33m"
_MAGENTA = "\x1b[35m"
_GREEN = "\x1b[32m"
_CYAN = "\x1b[36m"
_DIM = "\x1b[2m"

_VERDICT_STYLE = {
    Verdict.DANGEROUS: _BOLD_RED,
    Verdict.SUSPICIOUS: _YELLOW,
    Verdict.ERROR: _MAGENTA,
    Verdict.SAFE: _GREEN,
}
_SEVERITY_STYLE = {
    Severity.CRITICAL: _BOLD_RED,
    Severity.HIGH: _RED,
    Severity.MEDIUM: _YELLOW,
    Severity.LOW: _CYAN,
    Severity.INFO: _DIM,
}
_INCOMPLETE_STYLE = _MAGENTA


def printable(text: str) -> str:
    r"""Return `text` with every non-printable character escaped (`\x1b`, `\u202e`, ...).

    Lone surrogates (undecodable bytes of a file name) are escaped too, so the result can
    always be encoded.
    """
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        if char.isprintable():
            out.append(char)
            continue
        code = ord(char)
        if code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _paint(text: str, style: str, color: bool) -> str:
    return f"{style}{text}{_RESET}" if color else text


def _label(text: str, style: str, color: bool) -> str:
    # Pad before painting so that escape codes do not disturb the column.
    return _paint(text.ljust(_LABEL_WIDTH), style, color)


def _clip(text: str) -> str:
    if len(text) <= MAX_EVIDENCE_CHARS:
        return text
    return text[: MAX_EVIDENCE_CHARS - 3] + "..."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _file_lines(result: FileResult, color: bool) -> list[str]:
    verdict = result.verdict
    word = verdict.value
    if verdict is Verdict.SAFE and result.formats == ("signed",):
        word = "verified"  # a verification result: its digest matched, its content was not scanned
    head = f"{_label(word, _VERDICT_STYLE[verdict], color)}  {printable(result.path)}"
    if result.formats:
        head += "  [" + ", ".join(printable(f) for f in result.formats) + "]"
    lines = [head]
    for finding in sorted(result.findings, key=Finding.sort_key):
        lines.extend(_finding_lines(finding, color))
    for item in sorted(result.incomplete, key=_incomplete_key):
        lines.extend(_incomplete_lines(item, color))
    return lines


def _incomplete_key(item: Incomplete) -> tuple[tuple[str, ...], int, str, str]:
    loc = item.location
    return (
        (loc.path, *loc.members),
        -1 if loc.offset is None else loc.offset,
        item.rule_id,
        item.reason,
    )


def _rule_title(rule_id: str) -> str:
    rule = RULES.get(rule_id)
    return printable(rule_id) if rule is None else f"{rule.id} {rule.name}"


def _finding_lines(finding: Finding, color: bool) -> list[str]:
    sev = finding.severity
    label = _label(sev.value, _SEVERITY_STYLE[sev], color)
    detail = f"at {printable(str(finding.location))}"
    if finding.evidence:
        pairs = sorted(finding.evidence)
        detail += "; " + ", ".join(f"{printable(k)}={_clip(printable(v))}" for k, v in pairs)
    return [
        f"{_INDENT}{label}  {_rule_title(finding.rule_id)}: {printable(finding.message)}",
        _DETAIL_INDENT + detail,
    ]


def _incomplete_lines(item: Incomplete, color: bool) -> list[str]:
    label = _label("incomplete", _INCOMPLETE_STYLE, color)
    return [
        f"{_INDENT}{label}  {_rule_title(item.rule_id)}: {printable(item.reason)}",
        f"{_DETAIL_INDENT}at {printable(str(item.location))}",
    ]


def _fail_on(report: ScanReport) -> str:
    return "never" if report.fail_on is None else report.fail_on.value


def _verdict_counts(report: ScanReport) -> str:
    counts = report.verdict_counts()
    order = (Verdict.DANGEROUS, Verdict.SUSPICIOUS, Verdict.ERROR, Verdict.SAFE)
    return ", ".join(f"{counts[v.value]} {v.value}" for v in order)


def summary_line(report: ScanReport) -> str:
    """Return the one-line summary the CLI prints on stderr (no colour, no newline).

    Example: ``modelguard: 3 files, 1 dangerous, 1 suspicious, 0 error, 1 safe; blocking: 2
    (fail-on medium)``, with ``; incomplete`` appended when the scan was not complete.
    """
    line = (
        f"modelguard: {_plural(len(report.files), 'file')}, {_verdict_counts(report)}; "
        f"blocking: {len(report.blocking)} (fail-on {_fail_on(report)})"
    )
    if report.suppressed:
        line += f"; {report.suppressed} suppressed"
    if not report.complete:
        line += "; incomplete"
    return line


def _summary_lines(report: ScanReport, color: bool) -> list[str]:
    counts = report.counts()
    findings = ", ".join(f"{counts[s.value]} {s.value}" for s in Severity)
    first = (
        f"{_plural(len(report.files), 'file')}: {_verdict_counts(report)}; "
        f"findings: {findings}; {report.suppressed} suppressed"
    )
    verdict = report.verdict
    blocking = len(report.blocking)
    if report.fail_on is None:
        gate = "nothing blocks (fail-on never)"
    elif blocking:
        gate = f"blocking: {_plural(blocking, 'finding')} at fail-on {report.fail_on.value}"
    else:
        gate = f"no finding at or above fail-on {report.fail_on.value}"
    second = f"verdict: {_paint(verdict.value, _VERDICT_STYLE[verdict], color)}; {gate}"
    if not report.files:
        second += "; incomplete: no file was scanned"
    elif not report.complete:
        incomplete = sum(1 for r in report.files if not r.complete)
        second += f"; incomplete: {_plural(incomplete, 'file')} not fully analysed"
    return [first, second]


_TENSOR_PREFIX = "<tensor "
_TABLE_COLUMNS = ("rule", "severity", "tensor", "statistic", "value", "threshold", "where")


def _tensor_cells(finding: Finding) -> tuple[str, ...]:
    tensor = next(m for m in finding.location.members if m.startswith(_TENSOR_PREFIX))
    evidence = finding.evidence_map
    where = evidence.get("window") or evidence.get("rows") or ""
    measured = evidence.get("mode")
    if measured:
        where = f"{where} ({measured})" if where else measured
    return tuple(
        printable(_clip(text))
        for text in (
            finding.rule_id,
            finding.severity.value,
            tensor[len(_TENSOR_PREFIX) : -1],
            evidence.get("statistic", ""),
            evidence.get("value", ""),
            evidence.get("threshold", ""),
            where,
        )
    )


def _tensor_table(report: ScanReport) -> list[str]:
    """Return the per-tensor evidence table of the indicator findings (empty when none)."""
    rows = [
        _tensor_cells(f)
        for f in report.findings
        if f.rule_id.startswith("MG5")
        and any(m.startswith(_TENSOR_PREFIX) for m in f.location.members)
    ]
    if not rows:
        return []
    widths = [max(len(row[i]) for row in [_TABLE_COLUMNS, *rows]) for i in range(7)]
    lines = ["", "tensor evidence:"]
    for row in [_TABLE_COLUMNS, *rows]:
        lines.append(_INDENT + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return [line.rstrip() for line in lines]


_SUPPRESSED_SHOWN = 20


def _suppressed_lines(report: ScanReport) -> list[str]:
    """Return one short line per suppressed finding (the first few), with its reason."""
    items = sorted(report.suppressions, key=lambda s: s.finding.sort_key())
    lines = [
        printable(
            f"suppressed: {s.finding.rule_id} {s.finding.severity.value} at "
            f"{s.finding.location}: {s.reason} ({s.origin})"
        )
        for s in items[:_SUPPRESSED_SHOWN]
    ]
    if len(items) > _SUPPRESSED_SHOWN:
        lines.append(
            f"suppressed: ... and {len(items) - _SUPPRESSED_SHOWN} more (see --format json)"
        )
    return lines


def render_text(report: ScanReport, *, color: bool = False) -> str:
    """Return the human-readable report, ending with a newline.

    Args:
        report: the scan report.
        color: wrap verdicts and severities in ANSI colour codes.
    """
    lines: list[str] = []
    for result in sorted(report.files, key=lambda r: r.path):
        lines.extend(_file_lines(result, color))
    lines.extend(_suppressed_lines(report))
    for target, resolved in report.sources:
        lines.append(f"source: {printable(target)} -> {printable(resolved)}")
    for note in report.notes:
        lines.append(f"note: {printable(note)}")
    lines.extend(_tensor_table(report))
    if lines:
        lines.append("")
    lines.extend(_summary_lines(report, color))
    return "\n".join(lines) + "\n"
