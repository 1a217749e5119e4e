"""Rendering of a `ScanReport` as text, JSON or SARIF.

Rendering only: this package takes a finished report and returns a string. It never scans,
prints or touches the file system (the JSON Schema it ships is read on request).
"""

from __future__ import annotations

from enum import Enum
from typing import assert_never

from modelguard.results import ScanReport

__all__ = ["OutputFormat", "render"]


class OutputFormat(Enum):
    """The report formats: human text, the JSON document, SARIF 2.1.0."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


def render(report: ScanReport, fmt: OutputFormat, *, color: bool = False) -> str:
    """Return `report` rendered as `fmt`, ending with a newline.

    Args:
        report: the scan report.
        fmt: the output format.
        color: ANSI colour in the text format; ignored by the machine formats.
    """
    # Each renderer is imported on use: a CLI run needs only one of them.
    match fmt:
        case OutputFormat.TEXT:
            from modelguard.report.text import render_text

            return render_text(report, color=color)
        case OutputFormat.JSON:
            from modelguard.report.json import render_json

            return render_json(report)
        case OutputFormat.SARIF:
            from modelguard.report.sarif import render_sarif

            return render_sarif(report)
        case _:
            assert_never(fmt)
