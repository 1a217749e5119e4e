"""A small model registry built by code: several model folders, one malicious pickle."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

from factories.malicious import sample_by_id

__all__ = ["build_registry", "safetensors_bytes"]


def safetensors_bytes(values: list[float]) -> bytes:
    """Return a valid safetensors file holding one F32 tensor."""
    data = struct.pack(f"<{len(values)}f", *values)
    header = {"w": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, len(data)]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def _npy(values: list[int]) -> bytes:
    header = f"{{'descr': '<i4', 'fortran_order': False, 'shape': ({len(values)},), }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(header))
        + header.encode()
        + struct.pack(f"<{len(values)}i", *values)
    )


def build_registry(root: Path, models: int = 6, canary: Path | None = None) -> Path:
    """Write `models` model folders under `root/registry` and return that folder.

    Each folder has a safetensors file, a plain pickle, an .npy array, a zip holding a pickle
    and a config.json; model 0 also holds a malicious pickle (its payload only ever creates
    `canary`).
    """
    registry = root / "registry"
    for m in range(models):
        folder = registry / f"org{m % 3}" / f"model{m}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(safetensors_bytes([m, m + 1.5, -2.0]))
        (folder / "state.pkl").write_bytes(
            pickle.dumps({"epoch": m, "lr": 0.1 * m, "layers": list(range(m + 3))}, protocol=4)
        )
        (folder / "array.npy").write_bytes(_npy(list(range(m, m + 10))))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", pickle.dumps([m, "x" * m], protocol=2))
        (folder / "bundle.zip").write_bytes(buf.getvalue())
        (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden": 8 + m}))
    if models:
        bad = registry / "org0" / "model0"
        built = sample_by_id("direct-os-system-p4").build(
            bad, canary or root / "canary-never-created"
        )
        built.rename(bad / "weights.pkl")
    return registry
