"""Structural consistency of a model folder: weights against `config.json`, shard indexes,
and byte-identical tensors (MG520, MG521).

Header-only: shapes and names come from the tensor listings. Tensor data is read only to
hash candidate duplicates (tensors of equal dtype, shape and size, streamed in bounded
memory). Weights are checked against the `config.json` of their own folder; files that a
shard index or an `-NNNNN-of-NNNNN` name ties together form one loading unit, any other file
is a unit on its own (alternative serialisations in one folder are never mixed).

Checks are table driven and only fire when both sides are known: a config value that is
absent or not an integer, or a tensor that is not a float matrix, is not compared. Recognised
names cover BERT-like (`encoder.layer.N`, `attention.self.query`, `intermediate.dense`),
LLaMA/Mistral/Qwen-like (`model.layers.N`, `self_attn.q_proj`, `mlp.up_proj`), GPT-2-like
(`h.N`, `wte`, `wpe`, `mlp.c_fc`) and generic layer stacks (`layers.N.`, `layer.N.`, `h.N.`,
`blk.N.`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from modelguard.errors import ModelGuardError
from modelguard.indicators.settings import IndicatorSettings
from modelguard.indicators.tensors import TensorListing, TensorRef, read_ranges
from modelguard.results import Finding, Location, Severity
from modelguard.rules import RULES

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["check_consistency", "config_value"]

_JSON_MAX = 64 * 1024 * 1024  # config and index files larger than this are not read
_HASH_BUFFER = 1024 * 1024
_FLOATS = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
_SHARD = re.compile(r"(.+)-\d{5}-of-(\d{5})(\.[A-Za-z0-9_.]+)$")
_STACK = re.compile(r"(?:^|\.)(layers|layer|h|blk)\.(\d+)\.")

# Config keys and their aliases across families (transformers' attribute maps).
_KEYS: dict[str, tuple[str, ...]] = {
    "hidden": ("hidden_size", "n_embd", "d_model", "dim"),
    "layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "vocab": ("vocab_size", "n_vocab"),
    "heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "kv_heads": ("num_key_value_heads", "n_kv_heads", "num_kv_heads"),
    "inter": ("intermediate_size", "n_inner", "ffn_dim"),
    "maxpos": ("max_position_embeddings", "n_positions"),
}
# Buffers that transformers saved per layer in older checkpoints (identical by design).
_BUFFERS = re.compile(r"(inv_freq|position_ids|masked_bias|attn\.bias|_float_tensor)$")
_EMBED = r"(?:^|\.)(?:word_embeddings|embed_tokens|wte|tok_embeddings|embed_in|shared)\.weight$"
_HEAD = r"(?:^|\.)(?:lm_head|embed_out|predictions\.decoder)\.weight$|^output\.weight$"
_HEAD_ARCHS = ("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForConditionalGeneration")

# (role, name pattern, expected (rows, cols) as dimension symbols). Symbols: V vocabulary,
# E embedding width, H hidden size, I intermediate size, Q query heads x head size,
# K key/value heads x head size, P positions.
_ROLES: tuple[tuple[str, re.Pattern[str], tuple[str, str]], ...] = tuple(
    (role, re.compile(pattern), dims)
    for role, pattern, dims in (
        ("input embedding", _EMBED, ("V", "E")),
        ("output head", _HEAD, ("V", "E")),
        ("position embedding", r"(?:^|\.)(?:position_embeddings|wpe)\.weight$", ("P", "E")),
        ("MLP up projection", r"\.mlp\.(?:up_proj|gate_proj)\.weight$", ("I", "H")),
        ("MLP down projection", r"\.mlp\.down_proj\.weight$", ("H", "I")),
        ("MLP up projection", r"(?:^|\.)layer\.\d+\.intermediate\.dense\.weight$", ("I", "H")),
        ("MLP down projection", r"(?:^|\.)layer\.\d+\.output\.dense\.weight$", ("H", "I")),
        ("MLP up projection", r"(?:^|\.)h\.\d+\.mlp\.c_fc\.weight$", ("H", "I")),
        ("attention query", r"\.self_attn\.q_proj\.weight$", ("Q", "H")),
        ("attention key/value", r"\.self_attn\.[kv]_proj\.weight$", ("K", "H")),
        ("attention output", r"\.self_attn\.o_proj\.weight$", ("H", "Q")),
        (
            "attention query/key/value",
            r"\.attention\.self\.(?:query|key|value)\.weight$",
            ("Q", "H"),
        ),
    )
)


def config_value(config: Mapping[str, Any], role: str) -> tuple[str, int] | None:
    """Return `(key, value)` of the first integer config key for `role` (see `_KEYS`)."""
    for key in _KEYS[role]:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return key, value
    return None


@dataclass(frozen=True)
class _Dims:
    """The expected size of each dimension symbol and the config keys it comes from."""

    values: Mapping[str, int]
    sources: Mapping[str, str]


def _dims(config: Mapping[str, Any]) -> _Dims:
    values: dict[str, int] = {}
    sources: dict[str, str] = {}

    def put(symbol: str, value: int, source: str) -> None:
        values[symbol] = value
        sources[symbol] = source

    found = {role: config_value(config, role) for role in _KEYS}
    if found["vocab"]:
        put("V", found["vocab"][1], f"{found['vocab'][0]}={found['vocab'][1]}")
    if found["maxpos"]:
        put("P", found["maxpos"][1], f"{found['maxpos'][0]}={found['maxpos'][1]}")
    hidden = found["hidden"]
    if hidden:
        key, size = hidden
        put("H", size, f"{key}={size}")
        put("E", size, f"{key}={size}")
        for wide in ("embedding_size", "word_embed_proj_dim"):  # ALBERT, OPT
            value = config.get(wide)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                put("E", value, f"{wide}={value}")
        inter = found["inter"]
        if inter:
            put("I", inter[1], f"{inter[0]}={inter[1]}")
        elif config.get("model_type") == "gpt2" and config.get("n_inner") is None:
            put("I", 4 * size, f"n_inner=None (4*{key}={4 * size})")
        _attention_dims(config, found, size, key, put)
    return _Dims(values, sources)


def _attention_dims(
    config: Mapping[str, Any],
    found: Mapping[str, tuple[str, int] | None],
    size: int,
    key: str,
    put: Callable[[str, int, str], None],
) -> None:
    # Multi-head latent attention (DeepSeek) sizes its projections by other keys.
    if found["heads"] is None or "kv_lora_rank" in config or "qk_nope_head_dim" in config:
        return
    heads_key, heads = found["heads"]  # checked above
    head_dim = config.get("head_dim")
    if isinstance(head_dim, int) and not isinstance(head_dim, bool) and head_dim > 0:
        dim_text = f"head_dim={head_dim}"
    elif size % heads == 0:
        head_dim = size // heads
        dim_text = f"{key}/{heads_key}={head_dim}"
    else:
        return
    put("Q", heads * head_dim, f"{heads_key}={heads} x {dim_text}")
    kv = found["kv_heads"] or found["heads"]
    put("K", kv[1] * head_dim, f"{kv[0]}={kv[1]} x {dim_text}")


def _finding(
    rule_id: str, message: str, location: Location, evidence: Mapping[str, str]
) -> Finding:
    severity = RULES[rule_id].severity or Severity.INFO
    return Finding(rule_id, severity, message, location, tuple(sorted(evidence.items())))


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > _JSON_MAX:
            return None
        with open(path, "rb") as handle:
            document = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


@dataclass
class _Unit:
    """Weight files a loader reads together, in one folder."""

    folder: str  # model-relative folder ("" for the top)
    files: list[str]  # model-relative names
    index: str | None = None  # model-relative name of the shard index


def _units(rels: Sequence[str], folder: str) -> list[_Unit]:
    by_dir: dict[str, list[str]] = {}
    for rel in rels:
        parent = str(PurePosixPath(rel).parent)
        by_dir.setdefault("" if parent == "." else parent, []).append(rel)
    units: list[_Unit] = []
    for directory, names in sorted(by_dir.items()):
        if not names:
            continue
        left = set(names)
        base = os.path.join(folder, directory)
        try:
            entries = sorted(os.listdir(base))
        except OSError:
            entries = []
        for entry in entries:
            if not entry.endswith(".index.json"):
                continue
            rel_index = f"{directory}/{entry}" if directory else entry
            index = _read_json(os.path.join(base, entry))
            weight_map = index.get("weight_map") if index else None
            if not isinstance(weight_map, dict):
                continue
            shard_names = {str(v) for v in weight_map.values()}
            files = sorted(n for n in left if PurePosixPath(n).name in shard_names)
            left -= set(files)
            units.append(_Unit(directory, files, rel_index))
        groups: dict[tuple[str, str, str], list[str]] = {}
        for name in sorted(left):
            match = _SHARD.match(name)
            key = (match.group(1), match.group(2), match.group(3)) if match else (name, "", "")
            groups.setdefault(key, []).append(name)
        units += [_Unit(directory, files) for _key, files in sorted(groups.items())]
    return units


def _location(display: str, rel: str) -> Location:
    return Location(rel if display in ("", ".") else f"{display.rstrip('/')}/{rel}")


def _tensor_location(display: str, rel: str, name: str) -> Location:
    return _location(display, rel).inner(f"<tensor {name}>")


def _relative(key: str, listing: TensorListing, folder: str, display: str) -> str:
    prefix = "" if display in ("", ".") else display.rstrip("/") + "/"
    if prefix and key.startswith(prefix):
        return key[len(prefix) :]
    if listing.tensors:
        return os.path.relpath(listing.tensors[0].path, folder).replace(os.sep, "/")
    return key


def _shape_checks(
    display: str, config_rel: str, dims: _Dims, tensors: Sequence[tuple[str, TensorRef]]
) -> list[Finding]:
    # One finding per (role, dimension) that disagrees, naming the first tensor and the count.
    bad: dict[tuple[str, int], list[tuple[str, TensorRef, int]]] = {}
    for rel, ref in tensors:
        if ref.dtype not in _FLOATS or len(ref.shape) != 2:
            continue
        for role, pattern, symbols in _ROLES:
            if not pattern.search(ref.name):
                continue
            for axis, symbol in enumerate(symbols):
                expected = dims.values.get(symbol)
                if expected is not None and ref.shape[axis] != expected:
                    bad.setdefault((role, axis), []).append((rel, ref, expected))
            break
    findings: list[Finding] = []
    for (role, axis), hits in sorted(bad.items()):
        rel, ref, expected = hits[0]
        symbol = next(s for r, p, s in _ROLES if r == role and p.search(ref.name))[axis]
        source = dims.sources[symbol]
        findings.append(
            _finding(
                "MG520",
                f"{config_rel} declares {source} but {role} {ref.name} has shape "
                f"{list(ref.shape)} (dimension {axis} is {ref.shape[axis]}, expected "
                f"{expected}); {len(hits)} tensor(s) disagree.",
                _tensor_location(display, rel, ref.name),
                {
                    "check": role,
                    "config": source,
                    "expected": str(expected),
                    "found": str(ref.shape[axis]),
                    "tensor": ref.name,
                    "shape": str(list(ref.shape)),
                    "tensors_disagreeing": str(len(hits)),
                },
            )
        )
    return findings


def _head_split(display: str, config_rel: str, config: Mapping[str, Any]) -> list[Finding]:
    """MG520 when the hidden size does not split into the declared attention heads (and no
    explicit head_dim says how): no loader can build that attention layer as declared."""
    hidden, heads = config_value(config, "hidden"), config_value(config, "heads")
    if hidden is None or heads is None or heads[1] <= 0 or "head_dim" in config:
        return []
    if "kv_lora_rank" in config or hidden[1] % heads[1] == 0:
        return []
    where = f"{display.rstrip('/')}/{config_rel}"
    return [
        _finding(
            "MG520",
            f"{config_rel} declares {hidden[0]}={hidden[1]}, which {heads[0]}={heads[1]} "
            "attention heads do not divide.",
            Location(where),
            {
                "check": "attention heads",
                "config": f"{hidden[0]}={hidden[1]}, {heads[0]}={heads[1]}",
                "expected": f"{hidden[0]} divisible by {heads[0]}",
                "found": f"remainder {hidden[1] % heads[1]}",
            },
        )
    ]


def _layer_checks(
    display: str,
    config_rel: str,
    config: Mapping[str, Any],
    tensors: Sequence[tuple[str, TensorRef]],
) -> list[Finding]:
    stacks: dict[str, set[int]] = {}
    where: dict[str, str] = {}
    for rel, ref in tensors:
        match = _STACK.search(ref.name)
        if match:
            prefix = ref.name[: match.start(2) - 1]
            stacks.setdefault(prefix, set()).add(int(match.group(2)))
            where.setdefault(prefix, rel)
    checks: list[tuple[str, str, int]] = []  # (stack prefix, config key, declared)
    for side in ("encoder", "decoder"):
        value = config.get(f"{side}_layers")
        matching = [p for p in stacks if side in p.split(".")]
        if isinstance(value, int) and not isinstance(value, bool) and len(matching) == 1:
            checks.append((matching[0], f"{side}_layers", value))
    declared = config_value(config, "layers")
    if not checks and declared and len(stacks) == 1:
        checks.append((next(iter(stacks)), declared[0], declared[1]))
    extra = config.get("num_nextn_predict_layers")  # DeepSeek's multi-token-prediction layers
    findings: list[Finding] = []
    for prefix, key, value in checks:
        found = stacks[prefix]
        allowed = [set(range(value))]
        if isinstance(extra, int) and not isinstance(extra, bool) and extra > 0:
            allowed.append(set(range(value + extra)))
        if found in allowed:
            continue
        missing = sorted(set(range(value)) - found)
        beyond = sorted(found - set(range(value)))
        evidence = {
            "check": "layer count",
            "config": f"{key}={value}",
            "expected": str(value),
            "found": str(len(found)),
            "stack": prefix,
        }
        if missing:
            evidence["missing_layers"] = ", ".join(map(str, missing[:50]))
        if beyond:
            evidence["extra_layers"] = ", ".join(map(str, beyond[:50]))
        findings.append(
            _finding(
                "MG520",
                f"{config_rel} declares {key}={value} but the weights hold {len(found)} "
                f"layer(s) under {prefix} (indices {min(found)}-{max(found)}).",
                _location(display, where[prefix]),
                evidence,
            )
        )
    return findings


def _head_checks(
    display: str,
    config_rel: str,
    config: Mapping[str, Any],
    tensors: Sequence[tuple[str, TensorRef]],
) -> list[Finding]:
    # An untied LM architecture without its output matrix: the loader initialises it randomly.
    archs = config.get("architectures")
    if config.get("tie_word_embeddings") is not False or not isinstance(archs, list):
        return []
    if not any(isinstance(a, str) and a.endswith(_HEAD_ARCHS) for a in archs):
        return []
    embed = re.compile(_EMBED)
    head = re.compile(_HEAD)
    embeddings = [(rel, ref) for rel, ref in tensors if embed.search(ref.name)]
    if not embeddings or any(head.search(ref.name) for _rel, ref in tensors):
        return []
    rel, ref = embeddings[0]
    return [
        _finding(
            "MG520",
            f"{config_rel} declares tie_word_embeddings=false for {archs[0]} but the weights "
            "hold no output matrix; the loader initialises it randomly.",
            _location(display, rel),
            {
                "check": "output head",
                "config": "tie_word_embeddings=false",
                "found": "absent",
                "tensor": ref.name,
            },
        )
    ]


def _index_checks(
    folder: str, display: str, unit: _Unit, tensors: Sequence[tuple[str, TensorRef]]
) -> list[Finding]:
    if unit.index is None:
        return []
    index = _read_json(os.path.join(folder, unit.index))
    weight_map: dict[str, Any] = (index or {}).get("weight_map") or {}
    location = _location(display, unit.index)
    base = PurePosixPath(unit.index).parent
    present = {PurePosixPath(f).name for f in unit.files}
    findings: list[Finding] = []
    holders: dict[str, list[str]] = {}
    for rel, ref in tensors:
        holders.setdefault(ref.name, []).append(PurePosixPath(rel).name)
    problems: list[tuple[str, str, str]] = []  # (kind, tensor, detail)
    for name, shard in sorted(weight_map.items()):
        shard = str(shard)
        if shard not in present:
            if not os.path.isfile(os.path.join(folder, str(base), shard)):
                problems.append(("missing shard", name, shard))
        elif shard not in holders.get(name, []):
            problems.append(("tensor not in its shard", name, shard))
    for name, files in sorted(holders.items()):
        if name not in weight_map:
            problems.append(("tensor not in the index", name, ", ".join(files)))
        if len(files) > 1:
            problems.append(("tensor in several shards", name, ", ".join(files)))
    for kind in sorted({p[0] for p in problems}):
        hits = [p for p in problems if p[0] == kind]
        findings.append(
            _finding(
                "MG520",
                f"Shard index {unit.index}: {kind} ({len(hits)}), first {hits[0][1]} "
                f"({hits[0][2]}).",
                location,
                {
                    "check": f"shard index: {kind}",
                    "count": str(len(hits)),
                    "tensor": hits[0][1],
                    "files": hits[0][2],
                },
            )
        )
    return findings


def _digest(ref: TensorRef, buffer: npt.NDArray[np.uint8]) -> tuple[str, bool] | None:
    """Return (sha256, constant) of a tensor's bytes, or None when unreadable."""
    hasher = hashlib.sha256()
    first: bytes | None = None
    constant = True
    unit = ref.itemsize if ref.itemsize > 0 else 1
    try:
        for _offset, view in read_ranges(ref, [(0, ref.nbytes)], buffer):
            hasher.update(view.data)
            if constant:
                if first is None:
                    first = bytes(view[:unit])
                rows = view.reshape(-1, unit)
                constant = bool((rows == rows[0]).all()) and bytes(rows[0]) == first
    except (OSError, ValueError, ModelGuardError):
        return None
    return hasher.hexdigest(), constant


def _duplicates(
    display: str, config: Mapping[str, Any], tensors: Sequence[tuple[str, TensorRef]]
) -> list[Finding]:
    import numpy as np

    tied = config.get("tie_word_embeddings") is not False
    tie_group = re.compile(f"{_EMBED}|{_HEAD}")
    groups: dict[
        tuple[str, tuple[int, ...], int], dict[tuple[str, int], tuple[str, TensorRef]]
    ] = {}
    for rel, ref in tensors:
        if len(ref.shape) < 2 or ref.nbytes == 0 or ref.itemsize == 0 or _BUFFERS.search(ref.name):
            continue
        # Views of one storage (tied in the file itself) count once.
        groups.setdefault((ref.dtype, ref.shape, ref.nbytes), {}).setdefault(
            (ref.path, ref.offset), (rel, ref)
        )
    buffer = np.empty(_HASH_BUFFER, dtype=np.uint8)
    findings: list[Finding] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        by_digest: dict[str, list[tuple[str, TensorRef]]] = {}
        for rel, ref in members.values():
            result = _digest(ref, buffer)
            if result is None or result[1]:  # unreadable, or constant (that is MG502's)
                continue
            by_digest.setdefault(result[0], []).append((rel, ref))
        for digest, same in sorted(by_digest.items()):
            if len(same) < 2:
                continue
            if tied and all(tie_group.search(ref.name) for _rel, ref in same):
                continue
            rel, ref = same[0]
            names = [f"{r.name} ({p})" for p, r in same]
            findings.append(
                _finding(
                    "MG521",
                    f"{len(same)} tensors are byte-identical: {', '.join(names[:10])}.",
                    _tensor_location(display, rel, ref.name),
                    {
                        "tensors": ", ".join(names[:20]),
                        "count": str(len(same)),
                        "dtype": ref.dtype,
                        "shape": str(list(ref.shape)),
                        "sha256": digest,
                        "tie_word_embeddings": str(config.get("tie_word_embeddings", "absent")),
                    },
                )
            )
    return findings


def check_consistency(
    folder: str,
    display: str,
    listings: Mapping[str, TensorListing],
    settings: IndicatorSettings,
    *,
    duplicates: bool = True,
) -> list[Finding]:
    """Return the structural consistency findings of a model folder.

    MG520 (low): a weight shape or the layer count disagrees with the `config.json` of the
    weights' folder (vocabulary, hidden, intermediate, head sizes, positions; evidence has the
    config value and the tensor's), an untied LM head is missing, or a shard index disagrees
    with its shards (missing shard, tensor absent from its shard, unindexed or repeated
    tensor). MG521 (info): byte-identical matrices in one loading unit that tied embeddings
    do not explain (constant tensors and per-layer buffers are left to MG502).

    Args:
        folder: the model folder on disk.
        display: its display path.
        listings: display path of each weights file in the folder -> its tensor listing.
        settings: indicator settings (reserved: the checks use no statistical threshold).
        duplicates: also hash same-shaped matrices to find byte-identical ones (MG521); this
            reads tensor data, so the cheap tier of every scan leaves it to `--indicators`.

    Returns:
        The findings, sorted.
    """
    del settings  # header checks have no thresholds; kept for a uniform signature
    by_rel = {_relative(k, v, folder, display): v for k, v in listings.items()}
    findings: list[Finding] = []
    configs: dict[str, dict[str, Any] | None] = {}
    for unit in _units(sorted(by_rel), folder):
        tensors = [(rel, ref) for rel in unit.files for ref in by_rel[rel].tensors]
        findings += _index_checks(folder, display, unit, tensors)
        if unit.folder not in configs:
            configs[unit.folder] = _read_json(os.path.join(folder, unit.folder, "config.json"))
        config = configs[unit.folder] or {}
        if duplicates:
            findings += _duplicates(display, config, tensors)
        if not config or any(ref.source == "gguf" for _rel, ref in tensors):
            continue
        config_rel = f"{unit.folder}/config.json" if unit.folder else "config.json"
        findings += _shape_checks(display, config_rel, _dims(config), tensors)
        findings += _head_split(display, config_rel, config)
        findings += _layer_checks(display, config_rel, config, tensors)
        findings += _head_checks(display, config_rel, config, tensors)
    return sorted(findings, key=Finding.sort_key)
