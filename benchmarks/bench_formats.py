"""Time modelguard's non-pickle analysers against each format's own metadata reader.

For every input, `modelguard.scan(path)` and the reference reader that a loader would use to
get the same metadata (header, tensor table, graph) run in the same process, interleaved,
several rounds; the figure reported is the median of the per-round ratios
modelguard / reference. The reference readers *load* the format's structure (that is their
job); modelguard additionally judges it. Fixtures are benign and built by the formats' own
writers in a temporary folder (numpy, safetensors, gguf, onnx, h5py are needed).

    python benchmarks/bench_formats.py            # about a minute
    python benchmarks/bench_formats.py --rounds 5 --json formats.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def build_safetensors(folder: Path) -> Path:
    """About 1 GiB of float32 in 512 tensors."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    block = rng.standard_normal((512, 1024), dtype=np.float32)
    tensors = {f"layers.{i}.weight": block for i in range(512)}
    path = folder / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def build_gguf(folder: Path) -> Path:
    """A GGUF with a 150,000-token vocabulary, a chat template and 300 small tensors."""
    import gguf

    path = folder / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(150_000)])
    writer.add_token_scores([0.0] * 150_000)
    writer.add_chat_template(
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{{ message['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    for i in range(300):
        writer.add_tensor(f"blk.{i}.w", np.ones((64, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_onnx(folder: Path) -> Path:
    """An ONNX graph of 20,000 nodes with inline initialisers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    prev = "x"
    for i in range(20_000):
        name = f"w{i}"
        inits.append(numpy_helper.from_array(np.full((4,), i, dtype=np.float32), name))
        nodes.append(helper.make_node("Add", [prev, name], [f"y{i}"]))
        prev = f"y{i}"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [4])],
        inits,
    )
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def build_hdf5(folder: Path) -> Path:
    """A Keras-style weights file: 400 datasets in nested groups and a JSON config attribute."""
    import h5py

    path = folder / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        for i in range(400):
            f.create_dataset(f"layers/dense_{i}/vars/0", data=np.ones((64, 64), np.float32))
    return path


def reference(kind: str) -> Callable[[Path], object]:
    """The format's own metadata reader."""
    if kind == "safetensors":
        from safetensors import safe_open

        def read_st(p: Path) -> object:
            with safe_open(str(p), "np") as f:
                return (f.metadata(), list(f.keys()))

        return read_st
    if kind == "gguf":
        import gguf

        return lambda p: gguf.GGUFReader(str(p))
    if kind == "onnx":
        import onnx

        return lambda p: onnx.load(str(p), load_external_data=False)
    import h5py

    def read_h5(p: Path) -> object:
        names: list[str] = []
        with h5py.File(p, "r") as f:
            f.visit(names.append)
            return (dict(f.attrs), names)

    return read_h5


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Build the fixtures, time both readers, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    import modelguard

    builders = {
        "safetensors": build_safetensors,
        "gguf": build_gguf,
        "onnx": build_onnx,
        "hdf5": build_hdf5,
    }
    summary: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, build in builders.items():
            folder = Path(tmp) / kind
            folder.mkdir()
            path = build(folder)
            ref = reference(kind)
            report = modelguard.scan(path)
            assert report.files[0].complete and not report.files[0].findings, report
            ratios, ours, theirs = [], [], []
            for _ in range(args.rounds):
                a = timed(lambda: modelguard.scan(path))  # noqa: B023
                b = timed(lambda: ref(path))  # noqa: B023
                ours.append(a)
                theirs.append(b)
                ratios.append(a / b)
            summary[kind] = {
                "bytes": path.stat().st_size,
                "modelguard_s": statistics.median(ours),
                "reference_s": statistics.median(theirs),
                "ratio": statistics.median(ratios),
            }
            s = summary[kind]
            print(
                f"{kind:12} {s['bytes'] / 1e6:9.1f} MB  modelguard {s['modelguard_s']:.3f} s  "
                f"reference {s['reference_s']:.3f} s  ratio {s['ratio']:.2f}x"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
