from __future__ import annotations

from collections.abc import Callable

import pytest

from modelguard.report import OutputFormat, render
from modelguard.report.json import render_json
from modelguard.report.sarif import render_sarif
from modelguard.report.text import MAX_EVIDENCE_CHARS, printable, render_text, summary_line
from modelguard.results import FileResult, Finding, Location, ScanReport, Severity

from . import SAMPLES, clean_report, empty_report, hostile_report, mixed_report


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_text_matches_golden(name: str, golden: Callable[[str, str], None]) -> None:
    golden(f"{name}.txt", render_text(SAMPLES[name]()))


@pytest.mark.parametrize(
    ("fmt", "renderer"),
    [
        (OutputFormat.TEXT, render_text),
        (OutputFormat.JSON, render_json),
        (OutputFormat.SARIF, render_sarif),
    ],
)
def test_render_dispatches_every_format(
    fmt: OutputFormat, renderer: Callable[[ScanReport], str]
) -> None:
    report = mixed_report()
    assert render(report, fmt) == renderer(report)


def test_output_format_values() -> None:
    assert [f.value for f in OutputFormat] == ["text", "json", "sarif"]


def test_one_line_per_file_with_verdict_and_formats() -> None:
    lines = render_text(mixed_report()).splitlines()
    heads = [line for line in lines if line and not line.startswith(" ")]
    assert heads[:4] == [
        "error       models/broken.pkl  [pickle]",
        "safe        models/clean.safetensors  [safetensors]",
        "dangerous   models/evil.pkl  [pickle]",
        "suspicious  models/sub dir/model#1.pt  [zip, torch-zip]",
    ]


def test_safe_file_is_a_single_line() -> None:
    text = render_text(clean_report())
    lines = text.splitlines()
    assert lines[0] == "safe        weights.pkl  [pickle]"
    assert lines[1] == ""  # the blank line before the summary


@pytest.mark.parametrize(
    "expected",
    [
        "  critical    MG101 dangerous-global: The pickle imports posix.system.",
        "              at models/evil.pkl@14; family=process, global=posix.system",
        "  low         MG111 trailing-data: Bytes follow the last pickle and are not another",
        "              at models/sub dir/model#1.pt!archive/data.pkl@57; global=__main__.MyNet",
        "  incomplete  MG002 parse-error: The pickle stream ends before STOP.",
        "              at models/broken.pkl@9",
        "note: 1 finding suppressed by policy entry 'trusted-net'.",
    ],
)
def test_finding_and_incomplete_lines(expected: str) -> None:
    assert any(line.startswith(expected) for line in render_text(mixed_report()).splitlines())


def test_findings_are_worst_first_within_a_file() -> None:
    text = render_text(mixed_report())
    assert text.index("MG101") < text.index("MG111")


@pytest.mark.parametrize(
    ("report", "last_two"),
    [
        (
            mixed_report(),
            [
                "4 files: 1 dangerous, 1 suspicious, 1 error, 1 safe; "
                "findings: 1 critical, 0 high, 1 medium, 1 low, 0 info; 1 suppressed",
                "verdict: dangerous; blocking: 2 findings at fail-on medium; "
                "incomplete: 1 file not fully analysed",
            ],
        ),
        (
            clean_report(),
            [
                "1 file: 0 dangerous, 0 suspicious, 0 error, 1 safe; "
                "findings: 0 critical, 0 high, 0 medium, 0 low, 0 info; 0 suppressed",
                "verdict: safe; no finding at or above fail-on medium",
            ],
        ),
        (
            empty_report(),
            [
                "0 files: 0 dangerous, 0 suspicious, 0 error, 0 safe; "
                "findings: 0 critical, 0 high, 0 medium, 0 low, 0 info; 0 suppressed",
                "verdict: error; nothing blocks (fail-on never); incomplete: no file was scanned",
            ],
        ),
    ],
)
def test_summary_lines(report: ScanReport, last_two: list[str]) -> None:
    assert render_text(report).splitlines()[-2:] == last_two


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            mixed_report(),
            "modelguard: 4 files, 1 dangerous, 1 suspicious, 1 error, 1 safe; "
            "blocking: 2 (fail-on medium); 1 suppressed; incomplete",
        ),
        (
            clean_report(),
            "modelguard: 1 file, 0 dangerous, 0 suspicious, 0 error, 1 safe; "
            "blocking: 0 (fail-on medium)",
        ),
        (
            empty_report(),
            "modelguard: 0 files, 0 dangerous, 0 suspicious, 0 error, 0 safe; "
            "blocking: 0 (fail-on never); incomplete",
        ),
    ],
)
def test_summary_line(report: ScanReport, expected: str) -> None:
    assert summary_line(report) == expected


def test_colour_only_when_asked() -> None:
    report = mixed_report()
    assert "\x1b[" not in render_text(report)
    coloured = render_text(report, color=True)
    assert "\x1b[1;31mdangerous" in coloured
    assert "\x1b[32msafe" in coloured
    # Removing the escape codes gives back the plain report: columns are padded before colour.
    import re

    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render_text(report)


def test_hostile_strings_are_escaped() -> None:
    text = render_text(hostile_report())
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\x07" not in text
    assert "\r" not in text
    assert "evil\\x1b[31m\\u202e.pkl\\udcff" in text
    assert "os.system\\x0d\\x0aFAKE: all clear." in text
    text.encode("utf-8")  # no lone surrogate survives
    assert "\x1b" not in render_text(hostile_report(), color=True).replace("\x1b[", "")


def test_long_evidence_is_clipped() -> None:
    text = render_text(hostile_report())
    assert "x" * MAX_EVIDENCE_CHARS not in text
    assert "x" * (MAX_EVIDENCE_CHARS - 3) + "..." in text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain/path.pkl", "plain/path.pkl"),
        ("caf\u00e9 \u6a21\u578b.pt", "caf\u00e9 \u6a21\u578b.pt"),
        ("a\tb\nc", "a\\x09b\\x0ac"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\u202eRTL", "\\u202eRTL"),
        ("\x85", "\\x85"),
        ("\udcfe", "\\udcfe"),
        ("\U000e0001", "\\U000e0001"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_unknown_rule_id_is_rendered_without_a_name() -> None:
    report = ScanReport(
        files=(
            FileResult(
                "f.bin",
                1,
                ("blob",),
                (Finding("MG999", Severity.HIGH, "New rule.", Location("f.bin")),),
            ),
        )
    )
    assert "  high        MG999: New rule." in render_text(report)


def test_deterministic() -> None:
    assert render_text(mixed_report()) == render_text(mixed_report())
