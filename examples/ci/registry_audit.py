"""Audit a model registry with modelguard and write a JSON summary, one entry per model.

A registry is a folder with one model per sub-folder (or per file), like
`registry/bert-base/`, `registry/resnet50.pt`; or a Hugging Face cache (`--hf-cache`), where
each `org/name@commit` snapshot is one model. Every model is scanned statically (nothing is
loaded), in one run so that `--jobs` and the result cache apply to the whole registry.

    python registry_audit.py /srv/registry -o audit.json
    python registry_audit.py --hf-cache -o audit.json          # the default HF cache
    python registry_audit.py --hf-cache ~/hf-cache --policy modelguard.toml

The summary (stdout, or `-o FILE`) lists each model with its verdict, whether it blocks, and
its counts; the full reports are a `modelguard scan --format json` away. Exit codes are the
CLI's: 0 every model is clean, 1 at least one model has a blocking finding, 2 a model could not
be fully scanned (or nothing was found to scan).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import modelguard
from modelguard import FileResult, ScanReport

SUMMARY_VERSION = "1"


def registry_models(root: Path) -> list[Path]:
    """Return the models of a registry folder: its sub-folders and files, sorted by name.

    Hidden entries (`.git`, `.cache`) are left out.
    """
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def _model_of_hf_path(path: str) -> str:
    """`org/name@commit/sub/file` -> `org/name@commit` (the snapshot a cache file belongs to)."""
    at = path.find("@")
    if at < 0:
        return path.split("/", 1)[0]
    slash = path.find("/", at)
    return path if slash < 0 else path[:slash]


def _entry(model: str, files: Sequence[FileResult], fail_on: modelguard.Severity | None) -> Any:
    findings = [f for result in files for f in result.findings]
    blocking = [f for f in findings if fail_on is not None and f.severity >= fail_on]
    worst = max((r.verdict for r in files), key=lambda v: v.rank, default=None)
    counts = {s.value: sum(f.severity is s for f in findings) for s in modelguard.Severity}
    return {
        "model": model,
        "verdict": worst.value if worst is not None else "error",
        "blocking": len(blocking),
        "complete": bool(files) and all(r.complete for r in files),
        "files": len(files),
        "findings": counts,
        "rules": sorted({f.rule_id for f in findings}),
        "incomplete": sorted({i.rule_id for r in files for i in r.incomplete}),
    }


def summarize(report: ScanReport, models: dict[str, list[FileResult]]) -> dict[str, Any]:
    """Build the JSON summary of `report`, whose files are grouped by model in `models`."""
    entries = [_entry(name, files, report.fail_on) for name, files in sorted(models.items())]
    return {
        "summary_version": SUMMARY_VERSION,
        "modelguard": report.version,
        "fail_on": report.fail_on.value if report.fail_on is not None else "never",
        "models": entries,
        "totals": {
            "models": len(entries),
            "blocking_models": sum(1 for e in entries if e["blocking"]),
            "incomplete_models": sum(1 for e in entries if not e["complete"]),
            "files": len(report.files),
            "suppressed": report.suppressed,
        },
        "notes": list(report.notes),
    }


def audit_folder(
    root: Path, *, policy: modelguard.Policy | None = None, jobs: int | None = None
) -> tuple[ScanReport, dict[str, Any]]:
    """Scan every model of the registry folder `root`; return the report and the summary."""
    models = registry_models(root)
    if not models:
        report = modelguard.ScanReport(files=(), targets=(str(root),))
        return report, summarize(report, {})
    targets = [str(m) for m in models]
    report = modelguard.scan(targets, policy=policy, jobs=jobs, cache=True)
    grouped: dict[str, list[FileResult]] = {m.name: [] for m in models}
    for result in report.files:
        for model, target in zip(models, targets, strict=True):
            if result.path == target or result.path.startswith(target + "/"):
                grouped[model.name].append(result)
                break
    return report, summarize(report, grouped)


def audit_hf_cache(
    cache_dir: str | None, *, policy: modelguard.Policy | None = None
) -> tuple[ScanReport, dict[str, Any]]:
    """Scan a Hugging Face cache (each blob once); return the report and the summary."""
    from modelguard.hub import scan_hf_cache

    report = scan_hf_cache(cache_dir, policy=policy)
    grouped: dict[str, list[FileResult]] = {}
    for result in report.files:
        grouped.setdefault(_model_of_hf_path(result.path), []).append(result)
    return report, summarize(report, grouped)


def exit_code(summary: dict[str, Any]) -> int:
    """0 clean, 1 a model blocks (wins over 2), 2 a model is incomplete or none was found."""
    totals = summary["totals"]
    if totals["blocking_models"]:
        return 1
    if totals["incomplete_models"] or not totals["models"]:
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the audit from the command line; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("root", nargs="?", type=Path, help="registry folder (one model each)")
    source.add_argument(
        "--hf-cache", nargs="?", const="", metavar="DIR", help="a Hugging Face cache"
    )
    parser.add_argument("--policy", metavar="FILE", help="modelguard policy file")
    parser.add_argument("--jobs", type=int, metavar="N", help="scan processes (folders)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the summary to FILE")
    args = parser.parse_args(argv)

    try:
        # A discovered policy inside the registry came with the models: never used.
        scanned = [args.root] if args.root is not None else []
        policy = modelguard.load_policy(args.policy, scan_targets=scanned)
        if args.hf_cache is not None:
            _, summary = audit_hf_cache(args.hf_cache or None, policy=policy)
        else:
            _, summary = audit_folder(args.root, policy=policy, jobs=args.jobs)
    except (modelguard.ModelGuardError, OSError) as exc:
        print(f"registry_audit: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    totals = summary["totals"]
    print(
        f"registry_audit: {totals['models']} model(s), {totals['blocking_models']} blocking, "
        f"{totals['incomplete_models']} incomplete",
        file=sys.stderr,
    )
    return exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
