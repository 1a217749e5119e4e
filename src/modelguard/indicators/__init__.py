"""Poisoning-risk indicators: evidence that a model may have been tampered with, not verdicts.

Three tiers, all reported in the scan's report model under MG5xx rules:

- **cheap** (every scan of a model folder; headers only): weights against the architecture
  `config.json` declares (`consistency`), signature presence and coverage, Hugging Face
  revision pinning, pickle-only weights (`provenance`);
- **tensor pass** (`scan --indicators`): one streaming pass over the float tensors of every
  weights file (`weights`, `stego`, `carve` over `tensors`), sampled by default, full on
  request;
- **diff** (`modelguard diff BASE CANDIDATE`, `scan --base BASE`): what changed against a
  trusted base and whether the change looks like a surgical edit (`diff`, `linalg`).

Statistical indicators default to info or low severity and never block unless a policy raises
them; every finding carries its statistic, its threshold and where it was measured. Numpy is
imported by the tensor modules only, never by `import modelguard`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from modelguard.results import FileResult, Finding, ScanReport

if TYPE_CHECKING:
    from modelguard.indicators.tensors import TensorListing
    from modelguard.policy import Policy

__all__ = ["TENSOR_FORMATS", "add_indicators", "diff_report"]

TENSOR_FORMATS = frozenset({"safetensors", "torch-zip", "npy", "numpy", "gguf"})
"""Recognised formats (`FileResult.formats`) whose tensors the indicator pass reads."""


def _weights_files(results: Iterable[FileResult]) -> list[FileResult]:
    return [r for r in results if TENSOR_FORMATS.intersection(r.formats)]


def _prefix(display: str) -> str:
    """The prefix the scanner puts before the files of a folder target (none for ".")."""
    return "" if display in ("", ".") else display.rstrip("/") + "/"


def _pair(target: str | os.PathLike[str] | tuple[Path, str]) -> tuple[Path, str]:
    """Return (local path, display name) of a target."""
    if isinstance(target, tuple):
        return target
    path = Path(target)
    return path, path.as_posix()


def _real_path(target: Path, display_target: str, display: str) -> Path:
    """Map a display path from the scanner back to the file on disk."""
    if not target.is_dir():
        return target
    prefix = _prefix(display_target)
    rel = display[len(prefix) :] if display.startswith(prefix) else display
    return target / rel


def _listings(
    target: Path, display_target: str, results: Sequence[FileResult]
) -> tuple[dict[str, TensorListing], dict[str, str]]:
    """Return tensor listings (by display path) of the weights files, and why others failed."""
    from modelguard.errors import FormatError
    from modelguard.indicators.tensors import list_tensors

    listings: dict[str, TensorListing] = {}
    failures: dict[str, str] = {}
    for res in _weights_files(results):
        try:
            listings[res.path] = list_tensors(
                os.fspath(_real_path(target, display_target, res.path))
            )
        except (FormatError, OSError) as exc:
            failures[res.path] = str(exc)
    return listings, failures


def _merge(report: ScanReport, extra: Iterable[Finding], policy: Policy) -> ScanReport:
    """Add `extra` findings to the report's file results (a new result per unknown path)."""
    by_path: dict[str, list[Finding]] = {}
    for finding in extra:
        severity = policy.severity_of(finding.rule_id, finding.severity)
        by_path.setdefault(finding.location.path, []).append(replace(finding, severity=severity))
    if not by_path:
        return report
    files = {r.path: r for r in report.files}
    for folder, findings in list(by_path.items()):
        if folder in files:
            continue
        # a finding about a whole folder (no signature, a moving revision) is reported at the
        # folder's main weights file (else its first file), so that the report keeps one
        # result per scanned file
        anchor = _anchor(folder, files.values())
        if anchor is not None:
            del by_path[folder]
            by_path.setdefault(anchor, []).extend(
                replace(f, location=replace(f.location, path=anchor)) for f in findings
            )
    for path, findings in by_path.items():
        old = files.get(path)
        if old is None:
            files[path] = FileResult(path, 0, ("folder",), tuple(sorted(findings, key=_key)))
        else:
            merged = tuple(sorted({*old.findings, *findings}, key=_key))
            files[path] = replace(old, findings=merged)
    return replace(report, files=tuple(files[p] for p in sorted(files)))


def _anchor(folder: str, results: Iterable[FileResult]) -> str | None:
    prefix = _prefix(folder)
    inside = [r for r in results if r.path.startswith(prefix)]
    weights = [r.path for r in inside if not TENSOR_FORMATS.isdisjoint(r.formats)]
    if weights:
        # the shallowest weights file: the model's own, not a sub-module's
        return min(weights, key=lambda p: (p.count("/"), p))
    return min((r.path for r in inside), default=None)


def _key(finding: Finding) -> tuple[int, tuple[str, ...], int, str, str]:
    return finding.sort_key()


def add_indicators(
    report: ScanReport,
    targets: Sequence[str | os.PathLike[str] | tuple[Path, str]],
    policy: Policy,
    *,
    tensors: bool = False,
    base: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> ScanReport:
    """Return `report` with the indicators of `targets` added.

    Args:
        report: the scan report of `targets`.
        targets: the scanned paths, as given to `scan`, or (local path, display name) pairs
            when the report shows a target under another name (a Hub snapshot).
        policy: thresholds (`policy.indicators`) and severity overrides.
        tensors: run the tensor pass (sampled or full per `policy.indicators.mode`).
        base: a trusted base model to diff each target against.
        workers: threads for the tensor pass.
    """
    from modelguard.indicators.provenance import check_provenance

    settings = policy.indicators
    extra: list[Finding] = []
    pairs = [_pair(target) for target in targets]
    for path, display in pairs:
        prefix = _prefix(display)
        results = [r for r in report.files if r.path == display or r.path.startswith(prefix)]
        weights = _weights_files(results)
        if path.is_dir():
            inside = {
                r.path[len(prefix) :]: r.formats for r in results if r.path.startswith(prefix)
            }
            extra.extend(check_provenance(os.fspath(path), display, list(inside), inside))
        has_config = path.is_dir() and (path / "config.json").is_file()
        if not weights or not (tensors or has_config):
            # the cheap tier reads tensor headers only to compare them with a config
            continue
        listings, failures = _listings(path, display, results)
        for shown, reason in failures.items():
            extra.append(_not_run(shown, reason))
        if has_config and listings:
            from modelguard.indicators.consistency import check_consistency

            extra.extend(
                check_consistency(os.fspath(path), display, listings, settings, duplicates=tensors)
            )
        if tensors:
            from modelguard.indicators.weights import analyse_file

            for shown, listing in listings.items():
                findings, _ = analyse_file(listing, shown, settings, workers=workers)
                extra.extend(findings)
    if base is not None:
        from modelguard.indicators.diff import diff_models

        for path, display in pairs:
            result = diff_models(
                os.fspath(base),
                os.fspath(path),
                settings,
                display=display,
                workers=workers,
            )
            extra.extend(result.findings)
    return _merge(report, extra, policy)


def _not_run(shown: str, reason: str) -> Finding:
    from modelguard.results import Location, Severity

    return Finding(
        "MG506",
        Severity.INFO,
        "the tensor indicators could not read this file",
        Location(shown),
        (("reason", reason),),
    )


def diff_report(
    base: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    policy: Policy,
    *,
    workers: int | None = None,
) -> ScanReport:
    """Return the report of `modelguard diff BASE CANDIDATE`: the candidate's diff findings.

    Raises:
        SourceError: base or candidate does not exist.
    """
    from modelguard._version import __version__
    from modelguard.errors import SourceError
    from modelguard.indicators.diff import diff_models

    for path in (base, candidate):
        if not Path(path).exists():
            raise SourceError(f"no such file or directory: {os.fspath(path)}")
    display = Path(candidate).as_posix()
    result = diff_models(
        os.fspath(base), os.fspath(candidate), policy.indicators, display=display, workers=workers
    )
    shown = sorted({f.location.path for f in result.findings} | {display})
    empty = ScanReport(
        files=tuple(FileResult(p, 0, ("diff",)) for p in shown),
        targets=(os.fspath(base), os.fspath(candidate)),
        fail_on=policy.fail_on,
        version=__version__,
        notes=(_diff_note(result.tensors, result.files, base),),
    )
    return _merge(empty, result.findings, policy)


def _diff_note(
    tensors: Sequence[object], files: Sequence[object], base: str | os.PathLike[str]
) -> str:
    changed = sum(1 for t in tensors if getattr(t, "changed", False))
    return (
        f"diff against {os.fspath(base)}: {changed} of {len(tensors)} tensor(s) changed, "
        f"{len(files)} other file(s) differ"
    )
