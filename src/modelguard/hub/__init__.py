"""Hugging Face: scan cached snapshots (`hf://org/name@revision`) and whole hub caches.

Everything here works offline against the local cache (huggingface_hub's
`snapshot_download(local_files_only=True)` and `scan_cache_dir`), except `preflight`, which
asks the Hub what a download would fetch. huggingface_hub is imported only when a function
runs.

- `resolve_hf_target("hf://org/name@main")`: the cached snapshot, pinned to its commit.
- `scan_hf_cache()`: audit every revision of every cached repository (each blob scanned once).
- `preflight("org/name")`: online only; the Hub's own scan status is evidence, not a verdict.
"""

from __future__ import annotations

from modelguard.hub.cache import relabel, scan_hf_cache, with_digest_checks
from modelguard.hub.preflight import PreflightFile, PreflightReport, preflight
from modelguard.hub.resolve import (
    HF_SCHEME,
    HubSpec,
    ResolvedTarget,
    is_hf_target,
    parse_hf_spec,
    policy_scope,
    resolve_hf_target,
    with_pinned,
    with_resolved,
)

__all__ = [
    "HF_SCHEME",
    "HubSpec",
    "PreflightFile",
    "PreflightReport",
    "ResolvedTarget",
    "is_hf_target",
    "parse_hf_spec",
    "policy_scope",
    "preflight",
    "relabel",
    "resolve_hf_target",
    "scan_hf_cache",
    "with_digest_checks",
    "with_pinned",
    "with_resolved",
]
