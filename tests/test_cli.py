"""The CLI in process through `main(argv)`, with the scanning engine replaced by a fake.

The fake `scan` maps target names to canned file results, so every exit-code path is reachable
without real model files; `test_real_engine_*` at the end runs the real scanner once it exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from modelguard import cli
from modelguard._version import __version__
from modelguard.cli import ExitCode, exit_code, main
from modelguard.errors import ConfigError, SourceError
from modelguard.report import OutputFormat
from modelguard.results import FileResult, Finding, Incomplete, Location, ScanReport, Severity
from modelguard.rules import RULES


@dataclasses.dataclass(frozen=True)
class FakePolicy:
    fail_on: Severity | None = Severity.MEDIUM


def _finding(path: str, severity: Severity, rule: str = "MG101") -> Finding:
    return Finding(rule, severity, f"{severity.value} thing.", Location(path, (), 3))


CANNED: dict[str, FileResult] = {
    "clean.pkl": FileResult("clean.pkl", 10, ("pickle",)),
    "critical.pkl": FileResult(
        "critical.pkl", 10, ("pickle",), (_finding("critical.pkl", Severity.CRITICAL),)
    ),
    "medium.pkl": FileResult(
        "medium.pkl", 10, ("pickle",), (_finding("medium.pkl", Severity.MEDIUM, "MG102"),)
    ),
    "low.pkl": FileResult(
        "low.pkl", 10, ("pickle",), (_finding("low.pkl", Severity.LOW, "MG111"),)
    ),
    "broken.pkl": FileResult(
        "broken.pkl",
        10,
        ("pickle",),
        incomplete=(Incomplete("MG002", "Truncated.", Location("broken.pkl", (), 9)),),
    ),
    "empty-dir": None,  # type: ignore[dict-item]  # a target that yields no file
}


class FakeEngine:
    """Records calls; `scan` builds a report from CANNED, honouring the policy's fail_on."""

    def __init__(self) -> None:
        self.policy_paths: list[str | None] = []
        self.policies: list[FakePolicy] = []
        self.progress: list[Any] = []
        self.policy_error: str | None = None

    def load_policy(self, path: str | None, **kw: object) -> FakePolicy:
        self.policy_paths.append(path)
        if self.policy_error:
            raise ConfigError(self.policy_error)
        return FakePolicy()

    def scan(
        self,
        targets: Sequence[str],
        *,
        policy: FakePolicy | None = None,
        progress: Callable[[int, int | None, str], None] | None = None,
        **options: object,
    ) -> ScanReport:
        assert policy is not None
        assert options.get("indicators") in (None, False)  # no --indicators in these tests
        self.policies.append(policy)
        self.progress.append(progress)
        files = []
        for done, target in enumerate(targets):
            if progress is not None:
                progress(done, len(targets), target + "\x1b[2J[bold]")
            if target not in CANNED:
                raise SourceError(f"no such file or directory: {target}")
            if CANNED[target] is not None:
                files.append(CANNED[target])
        return ScanReport(
            files=tuple(files), targets=tuple(targets), fail_on=policy.fail_on, version="9.9.9"
        )


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(cli, "_engine", lambda: (fake.scan, fake.load_policy))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return fake


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["scan", "clean.pkl"], ExitCode.OK),
        (["scan", "critical.pkl"], ExitCode.FINDINGS),
        (["scan", "medium.pkl"], ExitCode.FINDINGS),  # default fail-on medium
        (["scan", "low.pkl"], ExitCode.OK),
        (["scan", "broken.pkl"], ExitCode.INCOMPLETE),
        (["scan", "empty-dir"], ExitCode.INCOMPLETE),  # nothing scanned: fail closed
        (["scan", "clean.pkl", "broken.pkl"], ExitCode.INCOMPLETE),
        (["scan", "broken.pkl", "critical.pkl"], ExitCode.FINDINGS),  # 1 wins over 2
        (["scan", "--fail-on", "never", "critical.pkl"], ExitCode.OK),
        (["scan", "--fail-on", "never", "critical.pkl", "broken.pkl"], ExitCode.INCOMPLETE),
        (["scan", "--fail-on", "never", "empty-dir"], ExitCode.INCOMPLETE),
        (["scan", "--fail-on", "critical", "medium.pkl"], ExitCode.OK),
        (["scan", "--fail-on", "high", "critical.pkl"], ExitCode.FINDINGS),
        (["scan", "--fail-on", "low", "low.pkl"], ExitCode.FINDINGS),
        (["scan", "--strict", "low.pkl"], ExitCode.FINDINGS),
        (["scan", "--strict", "clean.pkl"], ExitCode.OK),
        (["scan", "missing.pkl"], ExitCode.USAGE),
        (["scan", "clean.pkl", "missing.pkl"], ExitCode.USAGE),
        (["scan", "--strict", "--fail-on", "high", "low.pkl"], ExitCode.USAGE),
        (["scan", "--fail-on", "sometimes", "clean.pkl"], ExitCode.USAGE),
        (["scan", "--format", "xml", "clean.pkl"], ExitCode.USAGE),
        (["scan"], ExitCode.USAGE),
        (["frobnicate"], ExitCode.USAGE),
        ([], ExitCode.USAGE),
    ],
)
def test_exit_codes(engine: FakeEngine, argv: list[str], code: ExitCode) -> None:
    assert main(argv) == code


def test_exit_code_values() -> None:
    assert [int(ExitCode.OK), int(ExitCode.FINDINGS), int(ExitCode.INCOMPLETE)] == [0, 1, 2]
    assert int(ExitCode.USAGE) == 2


@pytest.mark.parametrize(
    ("files", "fail_on", "code"),
    [
        ((), Severity.MEDIUM, ExitCode.INCOMPLETE),
        (("clean.pkl",), Severity.MEDIUM, ExitCode.OK),
        (("critical.pkl", "broken.pkl"), Severity.MEDIUM, ExitCode.FINDINGS),
        (("critical.pkl", "broken.pkl"), None, ExitCode.INCOMPLETE),
        (("critical.pkl",), None, ExitCode.OK),
    ],
)
def test_exit_code_of_report(
    files: tuple[str, ...], fail_on: Severity | None, code: ExitCode
) -> None:
    report = ScanReport(files=tuple(CANNED[f] for f in files), fail_on=fail_on)
    assert exit_code(report) is code


@pytest.mark.parametrize(
    ("argv", "fail_on"),
    [
        (["scan", "clean.pkl"], Severity.MEDIUM),  # the policy's own value
        (["scan", "--fail-on", "critical", "clean.pkl"], Severity.CRITICAL),
        (["scan", "--fail-on", "never", "clean.pkl"], None),
        (["scan", "--strict", "clean.pkl"], Severity.LOW),
    ],
)
def test_fail_on_reaches_the_policy(
    engine: FakeEngine, argv: list[str], fail_on: Severity | None
) -> None:
    main(argv)
    assert engine.policies[-1].fail_on is fail_on


def test_policy_file_is_passed_through(engine: FakeEngine) -> None:
    main(["scan", "--policy", "custom.toml", "clean.pkl"])
    main(["scan", "clean.pkl"])
    assert engine.policy_paths == ["custom.toml", None]


def test_stdout_has_only_the_report_and_stderr_the_summary(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", "critical.pkl", "clean.pkl"]) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    assert out.startswith("safe        clean.pkl  [pickle]\n")
    assert "modelguard:" not in out
    assert "\x1b[" not in out  # not a terminal: no colour
    assert err == (
        "modelguard: 2 files, 1 dangerous, 0 suspicious, 0 error, 1 safe; "
        "blocking: 1 (fail-on medium)\n"
    )


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_machine_formats_on_stdout(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    assert main(["scan", "--format", fmt, "critical.pkl", "broken.pkl"]) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    document = json.loads(out)  # the whole of stdout is one document
    if fmt == "json":
        assert document["verdict"] == "dangerous"
        assert document["tool"]["version"] == "9.9.9"
    else:
        assert document["version"] == "2.1.0"
        assert document["runs"][0]["invocations"][0]["executionSuccessful"] is False
    assert err.startswith("modelguard: 2 files")


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_output_file(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / f"report.{fmt}"
    assert main(["scan", "--format", fmt, "-o", str(target), "medium.pkl"]) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    assert out == ""
    assert "blocking: 1" in err
    written = target.read_text(encoding="utf-8")
    assert "MG102" in written
    if fmt != "text":
        json.loads(written)


def test_unwritable_output_is_an_error(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "no-such-dir" / "report.json"
    assert main(["scan", "--output", str(target), "clean.pkl"]) == ExitCode.USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert "modelguard: error: cannot write" in err


def test_quiet_prints_no_summary(engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "-q", "critical.pkl"]) == ExitCode.FINDINGS
    out, err = capsys.readouterr()
    assert "critical.pkl" in out
    assert err == ""


@pytest.mark.parametrize("extra", [[], ["--no-progress"], ["-q"]])
def test_no_progress_when_stderr_is_not_a_terminal(engine: FakeEngine, extra: list[str]) -> None:
    main(["scan", *extra, "clean.pkl"])
    assert engine.progress == [None]


def test_progress_on_a_terminal(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelguard.cli.console.is_tty", lambda stream: True)
    main(["scan", "clean.pkl"])
    assert callable(engine.progress[0])  # and the fake called it: rich drew on stderr
    main(["scan", "--no-progress", "clean.pkl"])
    assert engine.progress[1] is None


def test_colour_only_on_a_terminal(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelguard.cli.console.wants_color", lambda stream: True)
    main(["scan", "critical.pkl"])
    assert "\x1b[1;31mdangerous" in capsys.readouterr().out
    main(["scan", "--format", "json", "critical.pkl"])
    assert "\x1b[" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("env", "expected"), [({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True), ({}, True)]
)
def test_no_color_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    from modelguard.cli import console

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert console.wants_color(Tty()) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scan", "missing.pkl"], "modelguard: error: no such file or directory: missing.pkl\n"),
        (["scan", "--policy", "bad.toml", "clean.pkl"], "modelguard: error: bad policy\n"),
    ],
)
def test_errors_go_to_stderr(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    engine.policy_error = "bad policy" if "--policy" in argv else None
    assert main(argv) == ExitCode.USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == message


def test_internal_error_fails_closed(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> ScanReport:
        raise RuntimeError("bug")

    monkeypatch.setattr(cli, "_engine", lambda: (boom, engine.load_policy))
    assert main(["scan", "clean.pkl"]) == ExitCode.INCOMPLETE
    out, err = capsys.readouterr()
    assert out == ""
    assert "RuntimeError: bug" in err
    assert "internal error" in err


def test_usage_error_message(engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--strict", "--fail-on", "high", "x"]) == ExitCode.USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert "not allowed with argument" in err


def test_format_choices_match_output_format() -> None:
    assert tuple(f.value for f in OutputFormat) == cli.FORMATS


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == ExitCode.OK
    assert capsys.readouterr().out == f"modelguard {__version__}\n"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--help"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "--fail-on" in out
    assert "exit codes:" in out


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_explain_every_rule(capsys: pytest.CaptureFixture[str], rule_id: str) -> None:
    assert main(["explain", rule_id.lower()]) == ExitCode.OK
    out, err = capsys.readouterr()
    rule = RULES[rule_id]
    assert out.startswith(f"{rule.id} {rule.name}\ndefault severity: ")
    assert rule.help in out  # the same text SARIF carries
    assert err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "MG999"], "unknown rule 'MG999'"),
        (["explain"], "give a rule id"),
        (["explain", "MG101", "--list"], "not both"),
    ],
)
def test_explain_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == ExitCode.USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err


def test_explain_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--list"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(RULES)
    assert any(line.split()[:3] == ["MG101", "dangerous-global", "critical"] for line in lines)


def test_import_is_light() -> None:
    # Only what `import modelguard.cli` adds counts: site hooks may preload other modules.
    code = (
        "import sys; before = set(sys.modules); import modelguard.cli; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.split('.')[0] in {'rich', 'json', 'hashlib', 'urllib'} "
        "or m.startswith(('modelguard.report', 'modelguard.scanner', 'modelguard.policy', "
        "'modelguard.rules'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_python_m_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelguard", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout == f"modelguard {__version__}\n"


# The real engine, once it exists: a clean pickle and a dangerous one (never loaded).


class _Dangerous:
    def __reduce__(self) -> tuple[Callable[[], str], tuple[()]]:
        return (os.getcwd, ())


def _real_engine_available() -> bool:
    try:
        cli._engine()
    except ImportError:
        return False
    return True


real_engine = pytest.mark.skipif(
    not _real_engine_available(), reason="modelguard.scanner is not available yet"
)


@real_engine
def test_real_engine_clean_and_dangerous(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray modelguard.toml / pyproject.toml is discovered
    (tmp_path / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Dangerous()))

    assert main(["scan", "clean.pkl"]) == ExitCode.OK
    capsys.readouterr()
    assert main(["scan", "--format", "json", "evil.pkl"]) == ExitCode.FINDINGS
    document = json.loads(capsys.readouterr().out)
    assert document["verdict"] == "dangerous"
    assert main(["scan", "--fail-on", "never", "evil.pkl"]) == ExitCode.OK
    assert main(["scan", "no-such-file.pkl"]) == ExitCode.USAGE
