"""The `modelguard` command line: `scan`, `explain`, and `manifest`, `sign`, `verify`, `keygen`
(in `modelguard.cli.integrity`).

The CLI owns argv, streams, colour and exit codes; the library never prints. stdout carries
only the report; the one-line summary, progress and errors go to stderr.

Exit codes (`ExitCode`): 0 the scan is complete and no finding is at or above `--fail-on`;
1 at least one blocking finding (this wins over 2, so a known-bad file is never hidden behind
another file's read error); 2 the scan is incomplete (a file could not be fully analysed, or
nothing was scanned) or the command line, a target or the policy file is invalid.

Only light standard-library modules are imported here at import time, so that
`modelguard --version` and `--help` start fast; every command imports what it needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from modelguard._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from modelguard.cli.console import ProgressCallback
    from modelguard.policy import Policy
    from modelguard.results import ScanReport

    ScanFn = Callable[..., ScanReport]
    LoadPolicyFn = Callable[..., Policy]

__all__ = ["ExitCode", "build_parser", "exit_code", "main", "run"]


class ExitCode(IntEnum):
    """The process exit codes of `modelguard`."""

    OK = 0
    FINDINGS = 1
    INCOMPLETE = 2
    USAGE = 2  # an alias: argparse exits 2 on usage errors, and a bad invocation scans nothing


FORMATS = ("text", "json", "sarif")
"""Values of `--format`; the same as `modelguard.report.OutputFormat` (a test checks it)."""

FAIL_ON = ("critical", "high", "medium", "low", "never")
"""Values of `--fail-on`: a severity name, or `never`."""

_EPILOG = """\
exit codes:
  0  the scan is complete and no finding is at or above --fail-on
  1  at least one finding is at or above --fail-on (wins over 2)
  2  the scan is incomplete, nothing was scanned, or the command line is invalid
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `modelguard` command."""
    parser = argparse.ArgumentParser(
        prog="modelguard",
        description="Statically scan ML model files for code that would run when they are "
        "loaded. Nothing scanned is ever loaded or executed.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"modelguard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = commands.add_parser(
        "scan",
        help="scan files and directories",
        description="Scan model files and directories; write the report to stdout.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="file or directory to scan, or hf://org/name[@revision][/file] (from the local "
        "Hugging Face cache)",
    )
    scan.add_argument("--format", choices=FORMATS, default="text", help="report format")
    scan.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    gate = scan.add_mutually_exclusive_group()
    gate.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default=None,
        help="lowest severity that fails the run (default: the policy's, normally medium)",
    )
    gate.add_argument(
        "--strict",
        dest="fail_on",
        action="store_const",
        const="low",
        help="same as --fail-on low",
    )
    scan.add_argument(
        "--policy",
        metavar="FILE",
        help="policy file (default: modelguard.toml or [tool.modelguard] in pyproject.toml)",
    )
    scan.add_argument(
        "-q", "--quiet", action="store_true", help="no summary and no progress on stderr"
    )
    scan.add_argument("--no-progress", action="store_true", help="no progress display")
    scan.add_argument(
        "--indicators",
        action="store_true",
        help="also read the tensors for poisoning-risk indicators (sampled; see --full)",
    )
    scan.add_argument(
        "--full", action="store_true", help="with --indicators: read every byte of every tensor"
    )
    scan.add_argument(
        "--base", metavar="BASE", help="trusted base model: report what changed against it"
    )
    scan.add_argument("--workers", type=int, metavar="N", help="threads for the tensor pass")
    scan.add_argument(
        "--jobs",
        type=_jobs,
        metavar="N",
        help="scan files in N worker processes (0: one per CPU; default: in this process)",
    )
    scan.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or write the result cache (results are cached by file content)",
    )
    scan.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="result cache folder (default: $MODELGUARD_CACHE_DIR, else the user cache folder); "
        "not used (with a note) unless private to you and outside the scanned paths",
    )
    scan.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULE[:GLOB]",
        help="suppress RULE (at paths matching GLOB); reported as suppressed (repeatable)",
    )
    scan.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="scan only the files of folders that match GLOB (repeatable)",
    )
    scan.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip the files of folders that match GLOB (repeatable)",
    )
    scan.add_argument(
        "--hf-cache",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="audit a whole Hugging Face hub cache instead of PATHs (default DIR: $HF_HUB_CACHE, "
        "else ~/.cache/huggingface/hub); each blob is scanned once",
    )
    scan.set_defaults(handler=_cmd_scan)

    explain = commands.add_parser(
        "explain",
        help="describe a rule",
        description="Print a rule's id, name, default severity and help text.",
    )
    explain.add_argument("rule", nargs="?", metavar="RULE", help="rule id, e.g. MG101")
    explain.add_argument("--list", action="store_true", help="list every rule")
    explain.set_defaults(handler=_cmd_explain)

    from modelguard.cli import indicators, integrity

    integrity.add_parsers(commands, _EPILOG)
    indicators.add_parsers(commands, _EPILOG)
    return parser


def exit_code(report: ScanReport) -> ExitCode:
    """Return the exit code for `report`: FINDINGS, else INCOMPLETE, else OK."""
    if report.blocking:
        return ExitCode.FINDINGS
    if not report.complete:
        return ExitCode.INCOMPLETE
    return ExitCode.OK


def _engine() -> tuple[ScanFn, LoadPolicyFn]:
    """Return `(scan, load_policy)`; imported here so that light commands stay light."""
    from modelguard.policy import load_policy
    from modelguard.scanner import scan

    return scan, load_policy


def _jobs(text: str) -> int:
    """Parse `--jobs`: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of processes (0 or more): {text!r}")
    return value


def _cmd_scan(args: argparse.Namespace) -> ExitCode:
    import dataclasses

    from modelguard.cli import console
    from modelguard.errors import ModelGuardError
    from modelguard.report import OutputFormat, render
    from modelguard.report.text import summary_line
    from modelguard.results import Severity

    fmt = OutputFormat(args.format)
    show_progress = not (args.quiet or args.no_progress) and console.is_tty(sys.stderr)
    if (args.hf_cache is None) == (not args.paths):
        console.error(
            "give PATHs to scan or --hf-cache [DIR], not both"
            if args.paths
            else "give a PATH to scan (or --hf-cache [DIR])"
        )
        return ExitCode.USAGE
    if args.hf_cache is not None:
        unsupported = [
            flag
            for flag, given in (
                ("--indicators", args.indicators),
                ("--base", args.base is not None),
                ("--jobs", args.jobs is not None),
                ("--cache-dir", args.cache_dir is not None),
            )
            if given
        ]
        if unsupported:
            console.error(
                f"{', '.join(unsupported)}: not supported with --hf-cache (the audit scans each "
                "blob once, in this process, without the result cache or the tensor pass)"
            )
            return ExitCode.USAGE
    try:
        scan, load_policy = _engine()
        if args.policy is None:  # hf:// targets and --hf-cache: their local folders count
            scope: list[str] = list(args.paths)
            if args.hf_cache is not None or any(p.startswith("hf://") for p in args.paths):
                from modelguard.hub import policy_scope

                scope = [os.fspath(p) for p in policy_scope(args.paths, args.hf_cache)]
            policy = load_policy(None, scan_targets=scope)
        else:
            policy = load_policy(args.policy)
        ignored = getattr(policy, "ignored", None)
        if ignored and not args.quiet:
            console.write(
                sys.stderr,
                f"modelguard: warning: not using {ignored}: it lies inside a scanned folder "
                "(pass it with --policy to use it)\n",
            )
        if args.fail_on is not None:
            fail_on = None if args.fail_on == "never" else Severity(args.fail_on)
            policy = dataclasses.replace(policy, fail_on=fail_on)
        if args.ignore or args.include or args.exclude:
            from modelguard.policy import extend_policy

            policy = extend_policy(
                policy, ignore=args.ignore, include=args.include, exclude=args.exclude
            )
        if args.full:
            if not args.indicators:
                console.error("--full needs --indicators")
                return ExitCode.USAGE
            full = dataclasses.replace(policy.indicators, mode="full")
            policy = dataclasses.replace(policy, indicators=full)
        progress: ProgressCallback | None
        with console.progress_reporter(show_progress) as progress:
            if args.hf_cache is not None:
                from modelguard.hub import scan_hf_cache

                report = scan_hf_cache(args.hf_cache or None, policy=policy, progress=progress)
            else:
                report = scan(
                    args.paths,
                    policy=policy,
                    progress=progress,
                    indicators=args.indicators,
                    base=args.base,
                    workers=args.workers,
                    jobs=args.jobs,
                    cache=False if args.no_cache else (args.cache_dir or True),
                )
    except ModelGuardError as exc:  # SourceError, ConfigError: a bad target or option
        console.error(str(exc))
        return ExitCode.USAGE

    color = fmt is OutputFormat.TEXT and args.output is None and console.wants_color(sys.stdout)
    if not console.write_output(args.output, render(report, fmt, color=color)):
        return ExitCode.USAGE
    if not args.quiet:
        console.write(sys.stderr, summary_line(report) + "\n")
    return exit_code(report)


def _cmd_explain(args: argparse.Namespace) -> ExitCode:
    from modelguard.cli import console
    from modelguard.rules import RULES

    if args.list:
        if args.rule is not None:
            console.error("give a rule id or --list, not both")
            return ExitCode.USAGE
        width = max(len(rule.name) for rule in RULES.values())
        lines = []
        for rule_id in sorted(RULES):
            rule = RULES[rule_id]
            severity = "-" if rule.severity is None else rule.severity.value
            lines.append(f"{rule.id}  {rule.name:<{width}}  {severity:<8}  {rule.summary}\n")
        console.write(sys.stdout, "".join(lines))
        return ExitCode.OK
    if args.rule is None:
        console.error("give a rule id (e.g. MG101) or --list")
        return ExitCode.USAGE
    found = RULES.get(args.rule.strip().upper())
    if found is None:
        console.error(f"unknown rule {args.rule!r} (see 'modelguard explain --list')")
        return ExitCode.USAGE
    if found.severity is None:
        severity = "none: this rule marks the scan incomplete (exit code 2)"
    else:
        severity = found.severity.value
    console.write(
        sys.stdout,
        f"{found.id} {found.name}\ndefault severity: {severity}\n\n"
        f"{found.summary}\n\n{found.help}\n",
    )
    return ExitCode.OK


def _status(code: Any) -> int:
    # SystemExit.code: None means success, an int is the status, anything else was printed.
    if code is None:
        return ExitCode.OK
    if isinstance(code, int):
        return code
    return ExitCode.USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`) and return the exit code.

    Never raises SystemExit: `--help`, `--version` and usage errors return 0 or 2.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return _status(exc.code)
    if args.command is None:
        parser.print_usage(sys.stderr)
        sys.stderr.write(
            "modelguard: error: a command is required "
            "(scan, diff, verify, sign, manifest, keygen, explain)\n"
        )
        return ExitCode.USAGE
    try:
        return int(args.handler(args))
    except Exception:
        # A crash must never read as "findings" (1) or "clean" (0): fail closed with 2.
        import traceback

        traceback.print_exc(file=sys.stderr)
        sys.stderr.write("modelguard: internal error; the scan is incomplete\n")
        return ExitCode.INCOMPLETE


def run() -> None:
    """Console-script entry point: exit with `main()`'s code (130 on Ctrl-C)."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
