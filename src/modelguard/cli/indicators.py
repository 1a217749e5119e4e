"""`modelguard diff BASE CANDIDATE`: what changed against a trusted base model.

The report, formats and exit codes are those of `scan`: 0 nothing at or above `--fail-on`,
1 a blocking finding (a targeted edit, MG510, is medium), 2 unusable input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parsers"]

_FORMATS = ("text", "json", "sarif")
_FAIL_ON = ("critical", "high", "medium", "low", "never")


def add_parsers(commands: Any, epilog: str) -> None:
    """Add the `diff` sub-command to `commands` (an argparse sub-parsers object)."""
    diff = commands.add_parser(
        "diff",
        help="compare a model with a trusted base model",
        description="Compare CANDIDATE with a trusted BASE model (folders or weights files): "
        "which tensors changed and how much, whether a change is a low-rank surgical edit, "
        "edited embedding rows, and tokenizer, chat template and config differences. Nothing "
        "is loaded or executed.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("base", metavar="BASE", help="the trusted base model")
    diff.add_argument("candidate", metavar="CANDIDATE", help="the model to compare")
    diff.add_argument("--format", choices=_FORMATS, default="text", help="report format")
    diff.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    diff.add_argument("--fail-on", choices=_FAIL_ON, default=None, help="lowest blocking severity")
    diff.add_argument("--policy", metavar="FILE", help="policy file (thresholds: [indicators])")
    diff.add_argument("--workers", type=int, metavar="N", help="threads")
    diff.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    diff.set_defaults(handler=_cmd_diff)


def _cmd_diff(args: argparse.Namespace) -> int:
    import dataclasses

    from modelguard.cli import ExitCode, console, exit_code
    from modelguard.errors import ModelGuardError
    from modelguard.indicators import diff_report
    from modelguard.policy import load_policy, parse_severity
    from modelguard.report import OutputFormat, render
    from modelguard.report.text import summary_line

    fmt = OutputFormat(args.format)
    try:
        policy = load_policy(args.policy, scan_targets=[args.base, args.candidate])
        if args.fail_on is not None:
            policy = dataclasses.replace(policy, fail_on=parse_severity(args.fail_on))
        report = diff_report(args.base, args.candidate, policy, workers=args.workers)
    except ModelGuardError as exc:
        console.error(str(exc))
        return ExitCode.USAGE
    color = fmt is OutputFormat.TEXT and args.output is None and console.wants_color(sys.stdout)
    if not console.write_output(args.output, render(report, fmt, color=color)):
        return ExitCode.USAGE
    if not args.quiet:
        console.write(sys.stderr, summary_line(report) + "\n")
    return exit_code(report)
