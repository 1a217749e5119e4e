"""Hand-built scan reports shared by the renderer tests (no scanner involved)."""

from __future__ import annotations

from modelguard.results import FileResult, Finding, Incomplete, Location, ScanReport, Severity
from modelguard.rules import Rule

VERSION = "0.0.0+test"


def mixed_report() -> ScanReport:
    """Return a report with one file per verdict, archive members, evidence and a note."""
    evil = "models/evil.pkl"
    zipped = "models/sub dir/model#1.pt"
    return ScanReport(
        files=(
            FileResult(
                path=evil,
                size=120,
                formats=("pickle",),
                findings=(
                    Finding(
                        "MG111",
                        Severity.LOW,
                        "Bytes follow the last pickle and are not another pickle.",
                        Location(evil, (), 96),
                    ),
                    Finding(
                        "MG101",
                        Severity.CRITICAL,
                        "The pickle imports posix.system.",
                        Location(evil, (), 14),
                        (("global", "posix.system"), ("family", "process")),
                    ),
                ),
            ),
            FileResult(
                path=zipped,
                size=4096,
                formats=("zip", "torch-zip"),
                findings=(
                    Finding(
                        "MG102",
                        Severity.MEDIUM,
                        "The pickle imports __main__.MyNet, which is not on the allowlist.",
                        Location(zipped, ("archive/data.pkl",), 57),
                        (("global", "__main__.MyNet"),),
                    ),
                ),
            ),
            FileResult(
                path="models/broken.pkl",
                size=9,
                formats=("pickle",),
                incomplete=(
                    Incomplete(
                        "MG002",
                        "The pickle stream ends before STOP.",
                        Location("models/broken.pkl", (), 9),
                    ),
                ),
            ),
            FileResult(path="models/clean.safetensors", size=64, formats=("safetensors",)),
        ),
        targets=("models",),
        fail_on=Severity.MEDIUM,
        version=VERSION,
        suppressed=1,
        notes=("1 finding suppressed by policy entry 'trusted-net'.",),
    )


def clean_report() -> ScanReport:
    """Return a complete report with one safe file."""
    return ScanReport(
        files=(FileResult(path="weights.pkl", size=42, formats=("pickle",)),),
        targets=("weights.pkl",),
        version=VERSION,
    )


def empty_report() -> ScanReport:
    """Return a report in which nothing was scanned (incomplete by definition)."""
    return ScanReport(files=(), targets=("empty-dir",), fail_on=None, version=VERSION)


def hostile_report() -> ScanReport:
    """Return a report whose file-supplied strings carry control and bidi characters."""
    path = "evil\x1b[31m\u202e.pkl\udcff"
    return ScanReport(
        files=(
            FileResult(
                path=path,
                size=1,
                formats=("pickle",),
                findings=(
                    Finding(
                        "MG101",
                        Severity.CRITICAL,
                        "The pickle imports os.system\r\nFAKE: all clear.",
                        Location(path, ("a\x07b",), 0),
                        (("global", "os.system\x1b]0;pwned\x07"), ("argv", "x" * 500)),
                    ),
                ),
            ),
        ),
        version=VERSION,
    )


SAMPLES = {
    "mixed": mixed_report,
    "clean": clean_report,
    "empty": empty_report,
}


def fixed_rules() -> dict[str, Rule]:
    """Return a small, frozen rule catalogue, so that SARIF goldens do not change with help text.

    The real catalogue is checked field by field in test_sarif.py instead.
    """
    rules = (
        Rule("MG002", "parse-error", None, "A stream is malformed.", "Help for MG002."),
        Rule("MG101", "dangerous-global", Severity.CRITICAL, "Dangerous import.", "Help `101`."),
        Rule("MG102", "unknown-global", Severity.MEDIUM, "Unknown import.", "Help for MG102."),
        Rule("MG111", "trailing-data", Severity.LOW, "Trailing bytes.", "Help for MG111."),
    )
    return {r.id: r for r in rules}
