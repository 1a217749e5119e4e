"""Diff a candidate model against a trusted base: which tensors and files changed, and how.

Tensors are matched by name across all weight files of each side (safetensors shards, torch
zip checkpoints, NumPy, GGUF float tensors; see `tensors.list_tensors`), so a re-sharded or
re-serialised copy compares tensor by tensor. Each matched pair is streamed chunk by chunk
by `_tensordiff` (two bounded buffers per thread; never a whole model; bitwise-equal chunks
skip the float work): relative Frobenius change, largest absolute change, changed rows of
matrices. A changed matrix's delta goes through a randomised SVD (`linalg`): in memory when
it is at most the `svd_memory_max_bytes` setting as float32 (collected during the same pass),
otherwise sketched by re-streaming row blocks, and that only when the change is targeted
(few tensors changed).

Findings point into the candidate (`display` path of the file + ``<tensor NAME>``):
MG510 targeted low-rank edit, MG511 summary, MG512 edited embedding/output rows, MG513
tokenizer/template/config files changed (key-level JSON diff), MG514 tensor set or shapes
changed, MG506 a tensor could not be read.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelguard.errors import FormatError, SourceError
from modelguard.formats.jsonstrict import parse_json
from modelguard.indicators._tensordiff import (
    TensorDelta,
    compare_tensors,
    sketch_rank_energy,
)
from modelguard.indicators.settings import IndicatorSettings
from modelguard.indicators.tensors import TensorRef, list_tensors
from modelguard.results import Finding, Location
from modelguard.rules import get_rule

__all__ = [
    "AUX_FILES",
    "DiffResult",
    "FileDelta",
    "TensorDelta",
    "diff_models",
]

AUX_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "chat_template.json",
        "config.json",
        "generation_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "modules.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "spiece.model",
    }
)
"""File names (anywhere in the model folder) whose changes are MG513; also `*.jinja`,
`*config.json` (sentence-transformers and adapter configs) and `*.py` (code that
`trust_remote_code` imports)."""

_JSON_MAX_BYTES = 64 * 1024 * 1024
_LIST_MAX = 20
# Tensors whose rows are per-token vectors (input embeddings, output heads; GGUF names too).
_EMBEDDING = re.compile(
    r"(embed|(^|\.)wte\.|(^|\.)wpe\.|lm_head|token_embd|(^|\.)output\.weight$|shared\.weight$)",
    re.IGNORECASE,
)
# Preferred serialisation when the two sides hold different formats (loaders' order).
_SOURCE_ORDER = ("safetensors", "torch-zip", "gguf", "numpy")


@dataclass(frozen=True)
class FileDelta:
    """A non-tensor file (or a weights file not compared) that differs.

    Attributes:
        name: path relative to the model folder, POSIX style.
        kind: "added", "removed" or "changed".
        keys: for JSON files, the dotted keys that differ; ("<text>",) for other text.
    """

    name: str
    kind: str
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiffResult:
    """Findings plus the per-tensor and per-file comparison they are drawn from."""

    findings: tuple[Finding, ...]
    tensors: tuple[TensorDelta, ...]
    files: tuple[FileDelta, ...]


@dataclass
class _Side:
    """One model: weight tensors grouped by serialisation, and the other files."""

    root: Path
    single: bool
    groups: dict[str, dict[str, tuple[TensorRef, str]]]
    skipped: set[str]
    other: dict[str, Path]
    weight_files: dict[str, str]  # relative name -> source


def _files(root: Path) -> dict[str, Path]:
    if not root.exists():
        raise SourceError(f"no such file or directory: {os.fspath(root)}")
    if root.is_file():
        return {root.name: root}
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not name.startswith(".") and path.is_file():
                found[path.relative_to(root).as_posix()] = path
    return found


def _load_side(path: str) -> _Side:
    root = Path(path)
    side = _Side(root, root.is_file(), {}, set(), {}, {})
    for rel, file in _files(root).items():
        try:
            listing = list_tensors(os.fspath(file))
        except FormatError:
            side.other[rel] = file
            continue
        if not listing.tensors and not listing.skipped:
            side.other[rel] = file
            continue
        source = listing.tensors[0].source if listing.tensors else "unknown"
        side.weight_files[rel] = source
        group = side.groups.setdefault(source, {})
        for ref in listing.tensors:
            group.setdefault(ref.name, (ref, rel))
        side.skipped.update(name for name, _ in listing.skipped)
    return side


def _preferred(groups: Mapping[str, object]) -> str | None:
    for source in (*_SOURCE_ORDER, *sorted(groups)):
        if source in groups:
            return source
    return None


def _pairs(base: _Side, cand: _Side) -> list[tuple[str, str]]:
    """Return (base source, candidate source) pairs of tensor groups to compare."""
    pairs: list[tuple[str, str]] = []
    fallback = _preferred(base.groups)
    for source in sorted(cand.groups, key=lambda s: (*_SOURCE_ORDER, s).index(s)):
        if source in base.groups:
            pairs.append((source, source))
        elif fallback is not None:
            pairs.append((fallback, source))
    return pairs


# ---- auxiliary files --------------------------------------------------------------------


def _is_aux(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name in AUX_FILES or name.endswith((".jinja", "config.json", ".py"))


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _json_value(path: Path) -> object | None:
    if path.stat().st_size > _JSON_MAX_BYTES:
        return None
    try:
        return parse_json(path.read_bytes()).value
    except FormatError:
        return None


def _key_diff(a: object, b: object, prefix: str, out: list[str], limit: int) -> None:
    """Append dotted paths where `a` and `b` differ (dicts recursed, other values whole)."""
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                out.append(path)
            else:
                _key_diff(a[key], b[key], path, out, limit)
            if len(out) >= limit:
                return
    elif a != b or type(a) is not type(b):
        out.append(prefix or "<document>")


def _changed_keys(base: Path, cand: Path) -> tuple[str, ...]:
    if base.suffix == ".json" or cand.suffix == ".json":
        a, b = _json_value(base), _json_value(cand)
        if a is not None and b is not None:
            keys: list[str] = []
            _key_diff(a, b, "", keys, _LIST_MAX + 1)
            return tuple(keys)
    return ("<text>",)


def _file_deltas(base: _Side, cand: _Side, pairs: list[tuple[str, str]]) -> list[FileDelta]:
    """Differences among files not compared tensor by tensor (none for two single files)."""
    if base.single or cand.single:
        return []
    used_b = {src for src, _ in pairs}
    used_c = {src for _, src in pairs}
    names_b = dict(base.other)
    names_b.update((r, base.root / r) for r, s in base.weight_files.items() if s not in used_b)
    names_c = dict(cand.other)
    names_c.update((r, cand.root / r) for r, s in cand.weight_files.items() if s not in used_c)
    deltas: list[FileDelta] = []
    for rel in sorted(set(names_b) | set(names_c)):
        if rel not in names_c:
            deltas.append(FileDelta(rel, "removed"))
        elif rel not in names_b:
            deltas.append(FileDelta(rel, "added"))
        else:
            pb, pc = names_b[rel], names_c[rel]
            if pb.stat().st_size == pc.stat().st_size and _digest(pb) == _digest(pc):
                continue
            keys = _changed_keys(pb, pc) if _is_aux(rel) else ()
            deltas.append(FileDelta(rel, "changed", keys))
    return deltas


# ---- findings ---------------------------------------------------------------------------


def _finding(rule_id: str, message: str, where: Location, **evidence: object) -> Finding:
    items = tuple((key, str(value)) for key, value in evidence.items())
    severity = get_rule(rule_id).severity
    assert severity is not None
    return Finding(rule_id, severity, message, where, items)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_MAX])
    return shown + (f" (+{len(items) - _LIST_MAX} more)" if len(items) > _LIST_MAX else "")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def diff_models(
    base: str,
    candidate: str,
    settings: IndicatorSettings,
    *,
    display: str | None = None,
    workers: int | None = None,
) -> DiffResult:
    """Compare a candidate model with a trusted base.

    Args:
        base: the trusted model: a folder or a single weights file.
        candidate: the model under review: a folder or a single weights file.
        settings: thresholds (`changed_rel_min`, `lowrank_energy_min`, `lowrank_rank_max`,
            `targeted_fraction_max`, `embedding_rows_max`).
        display: how the candidate is shown in locations (default: its path, POSIX style).
        workers: threads comparing tensors (default: up to 4, by CPU count).

    Returns:
        The findings (MG506, MG510-MG514), every compared tensor, and the other files that
        differ.

    Raises:
        SourceError: base or candidate does not exist.
    """
    shown = display if display is not None else Path(candidate).as_posix()
    side_b, side_c = _load_side(base), _load_side(candidate)

    def where(rel: str | None, tensor: str | None = None) -> Location:
        path = shown if side_c.single or rel is None else f"{shown.rstrip('/')}/{rel}"
        return Location(path, (f"<tensor {tensor}>",) if tensor is not None else ())

    findings: list[Finding] = []
    pairs: list[tuple[str, TensorRef, TensorRef, str]] = []
    added: list[str] = []
    removed: list[str] = []
    reshaped: list[str] = []
    retyped: list[str] = []
    first_rel: dict[str, str] = {}
    for src_b, src_c in _pairs(side_b, side_c):
        group_b, group_c = side_b.groups[src_b], side_c.groups[src_c]
        for name, (ref_c, rel) in group_c.items():
            first_rel.setdefault(name, rel)
            if name not in group_b:
                if name not in side_b.skipped:
                    added.append(name)
                continue
            ref_b = group_b[name][0]
            if ref_b.shape != ref_c.shape:
                reshaped.append(f"{name} {list(ref_b.shape)} -> {list(ref_c.shape)}")
                continue
            if ref_b.dtype != ref_c.dtype:
                retyped.append(f"{name} {ref_b.dtype} -> {ref_c.dtype}")
            pairs.append((name, ref_b, ref_c, rel))
        removed.extend(n for n in group_b if n not in group_c and n not in side_c.skipped)

    for label, items in (
        ("removed", removed),
        ("added", added),
        ("reshaped", reshaped),
        ("dtype-changed", retyped),
    ):
        if items:
            at = first_rel.get(items[0].split(" ", 1)[0]) if label != "removed" else None
            findings.append(
                _finding(
                    "MG514",
                    f"{len(items)} tensor(s) {label} compared with the base",
                    where(at),
                    change=label,
                    count=len(items),
                    tensors=_names(items),
                )
            )

    # Until every tensor is compared the share of changed ones is unknown; a streamed
    # sketch (4 more reads) is owed only if the change turns out targeted.
    def task(item: tuple[str, TensorRef, TensorRef, str]) -> tuple[TensorDelta, bool, str]:
        name, ref_b, ref_c, _ = item
        try:
            delta, owed = compare_tensors(name, ref_b, ref_c, settings)
        except FormatError as exc:
            return (
                TensorDelta(name, ref_c.shape, False, 0.0, 0.0, None, None, None),
                False,
                str(exc),
            )
        return delta, owed, ""

    count = workers if workers is not None else min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, count)) as pool:
        outcomes = list(pool.map(task, pairs))
    total = len(outcomes)
    n_changed = sum(1 for delta, _, _ in outcomes if delta.changed)
    targeted = total > 0 and n_changed / total <= settings.targeted_fraction_max
    deltas: list[TensorDelta] = []
    for (name, ref_b, ref_c, rel), (delta, owed, error) in zip(pairs, outcomes, strict=True):
        if error:
            findings.append(
                _finding(
                    "MG506",
                    "the diff could not read this tensor",
                    where(rel, name),
                    reason=error,
                )
            )
        if owed and targeted:
            energy, erank = sketch_rank_energy(ref_b, ref_c, settings)
            delta = TensorDelta(
                delta.name,
                delta.shape,
                delta.changed,
                delta.rel_change,
                delta.max_abs,
                energy,
                erank,
                delta.rows_changed,
                delta.rows,
            )
        deltas.append(delta)

    findings.extend(_tensor_findings(deltas, pairs, settings, targeted, where))
    files = _file_deltas(side_b, side_c, _pairs(side_b, side_c))
    for fd in files:
        if _is_aux(fd.name):
            findings.append(
                _finding(
                    "MG513",
                    f"{fd.name} {fd.kind} compared with the base",
                    where(fd.name if fd.kind != "removed" else None),
                    file=fd.name,
                    change=fd.kind,
                    keys=_names(list(fd.keys)) if fd.keys else "-",
                )
            )
    findings.sort(key=Finding.sort_key)
    return DiffResult(tuple(findings), tuple(deltas), tuple(files))


_LAYER = re.compile(r"(?:^|\.)(?:layers?|h|blk|blocks?)\.(\d+)\.")


def _layer_of(name: str) -> str | None:
    match = _LAYER.search(name)
    return match.group(1) if match else None


def _localised(
    changed: list[TensorDelta],
    deltas: list[TensorDelta],
    rows_edited: set[str],
    settings: IndicatorSettings,
    rel_of: Mapping[str, str],
    where: Callable[[str | None, str | None], Location],
) -> list[Finding]:
    """MG510 for a change confined to one layer of a model with several, the rest identical
    (BadSeek-style retraining of a single block)."""
    total = len(deltas)
    dense = [d for d in changed if d.name not in rows_edited]
    layers = {_layer_of(d.name) for d in dense}
    all_layers = {_layer_of(d.name) for d in deltas} - {None}
    if not dense or len(layers) != 1 or None in layers or len(all_layers) < 3:
        return []
    (layer,) = layers
    first = max(dense, key=lambda d: d.rel_change)
    return [
        _finding(
            "MG510",
            f"only layer {layer} changed ({len(dense)} tensor(s)); the rest of the model is "
            "identical to the base",
            where(rel_of[first.name], first.name),
            layer=layer,
            tensors=", ".join(sorted(d.name for d in dense)[:_LIST_MAX]),
            changed_tensors=f"{len(changed)} of {total}",
            threshold=f"targeted_fraction_max={settings.targeted_fraction_max}",
            rel_change=_fmt(first.rel_change),
        )
    ]


def _tensor_findings(
    deltas: list[TensorDelta],
    pairs: list[tuple[str, TensorRef, TensorRef, str]],
    settings: IndicatorSettings,
    targeted: bool,
    where: Callable[[str | None, str | None], Location],
) -> list[Finding]:
    findings: list[Finding] = []
    changed = [d for d in deltas if d.changed]
    if not changed:
        return findings
    rel_of = {name: rel for name, _, _, rel in pairs}
    k = settings.lowrank_rank_max
    rows_edited: set[str] = set()
    for d in changed:
        if (
            _EMBEDDING.search(d.name)
            and d.rows_changed is not None
            and 0 < d.rows_changed <= settings.embedding_rows_max
            and d.rows_changed < d.shape[0]
        ):
            rows_edited.add(d.name)
            findings.append(
                _finding(
                    "MG512",
                    f"{d.rows_changed} row(s) of {d.name} differ from the base",
                    where(rel_of[d.name], d.name),
                    rows=", ".join(str(r) for r in d.rows),
                    rows_changed=f"{d.rows_changed} of {d.shape[0]}",
                    threshold=f"embedding_rows_max={settings.embedding_rows_max}",
                    rel_change=_fmt(d.rel_change),
                    max_abs=_fmt(d.max_abs),
                )
            )
    share = len(changed) / len(deltas)
    measured = [d for d in changed if d.rank_energy is not None]
    low = [d for d in measured if (d.rank_energy or 0.0) >= settings.lowrank_energy_min]
    if targeted:
        for d in low:
            if d.name in rows_edited:
                continue
            findings.append(
                _finding(
                    "MG510",
                    f"{d.name} changed by a low-rank delta while few tensors changed",
                    where(rel_of[d.name], d.name),
                    rank_energy=f"{d.rank_energy:.4f}",
                    k=k,
                    effective_rank=d.effective_rank,
                    threshold=f"lowrank_energy_min={settings.lowrank_energy_min}",
                    rel_change=_fmt(d.rel_change),
                    max_abs=_fmt(d.max_abs),
                    changed_tensors=f"{len(changed)} of {len(deltas)} ({share:.2%})",
                    targeted_fraction_max=settings.targeted_fraction_max,
                )
            )
    if not (targeted and low):
        # a dense change confined to one layer is surgical even when that layer is more than
        # `targeted_fraction_max` of the tensors (a six-layer model: one layer is 1/6)
        findings.extend(_localised(changed, deltas, rows_edited, settings, rel_of, where))
    kind = "a targeted change" if targeted else "a broad update (fine-tuning-like)"
    if measured and len(low) == len(measured) and not targeted:
        kind = "a broad low-rank update (a merged adapter such as LoRA)"
    rels = sorted(d.rel_change for d in changed)
    top = max(changed, key=lambda d: d.rel_change)
    findings.append(
        _finding(
            "MG511",
            f"{len(changed)} of {len(deltas)} tensors differ from the base: {kind}",
            where(None, None),
            changed_tensors=f"{len(changed)} of {len(deltas)} ({share:.2%})",
            threshold=f"changed_rel_min={settings.changed_rel_min}",
            median_rel_change=_fmt(rels[len(rels) // 2]),
            max_rel_change=f"{_fmt(top.rel_change)} ({top.name})",
            low_rank=f"{len(low)} of {len(measured)} measured changed matrices hold "
            f">= {settings.lowrank_energy_min} of their delta energy in {k} singular values",
            update=kind,
        )
    )
    return findings
