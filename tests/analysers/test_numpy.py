"""NumPy .npy/.npz: object arrays (MG206), declared vs stored size (MG470), polyglots (MG202)."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat

import modelguard
from modelguard.errors import FormatError
from modelguard.formats.blob import BytesBlob
from modelguard.formats.numpy import (
    declared_nbytes,
    descr_has_object,
    descr_itemsize,
    read_npy_header,
)
from modelguard.results import FileResult, Severity


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def _npy(array: np.ndarray, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def _scan(tmp_path: Path, data: bytes, name: str = "a.npy") -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return modelguard.scan(path).files[0]


def _rules(result: FileResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def _assert_clean(result: FileResult) -> None:
    assert not result.incomplete, result.incomplete
    bad = [f for f in result.findings if f.severity >= Severity.LOW]
    assert not bad, bad


def _with_header(header: str, body: bytes, version: int = 1) -> bytes:
    text = header.encode("latin-1")
    if version == 1:
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + body
    return b"\x93NUMPY\x02\x00" + len(text).to_bytes(4, "little") + text + body


_STRUCT_ALIGNED = np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "align": True})
_STRUCT_OFFSETS = np.dtype(
    {"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8], "itemsize": 24}
)
_STRUCT_NESTED = np.dtype(
    [("a", "u1", (2, 3)), (("title", "b"), "<f4"), ("n", [("x", "<i2"), ("y", "S3")], 2)]
)

BENIGN_ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "float64": np.linspace(0, 1, 7),
    "float16": np.ones(5, dtype=np.float16),
    "longdouble": np.ones(3, dtype=np.longdouble),
    "int8": np.arange(-4, 4, dtype=np.int8),
    "uint16": np.arange(9, dtype=np.uint16),
    "int64-big-endian": np.arange(4, dtype=">i8"),
    "bool": np.array([True, False, True]),
    "complex64": np.ones(3, dtype=np.complex64),
    "complex128": np.ones((2, 2), dtype=np.complex128),
    "unicode": np.array(["a", "hello", "wörld"]),
    "bytes": np.array([b"ab", b"cdefg"]),
    "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[ns]"),
    "timedelta": np.array([1, 2], dtype="timedelta64[s]"),
    "void": np.zeros(2, dtype="V16"),
    "structured": np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
    "structured-aligned": np.zeros(2, dtype=_STRUCT_ALIGNED),
    "structured-offsets": np.zeros(2, dtype=_STRUCT_OFFSETS),
    "structured-nested": np.zeros(4, dtype=_STRUCT_NESTED),
    "subarray-dtype": np.zeros(3, dtype=("<f4", (2,))),
    "zero-d": np.array(3.5),
    "zero-d-string": np.array("text"),
    "empty": np.zeros(0, dtype=np.float32),
    "empty-2d": np.zeros((3, 0), dtype=np.int32),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
}


@pytest.mark.parametrize("name", sorted(BENIGN_ARRAYS))
def test_benign_arrays_scan_clean(tmp_path: Path, name: str) -> None:
    result = _scan(tmp_path, _npy(BENIGN_ARRAYS[name]))
    _assert_clean(result)
    assert "numpy" in result.formats


@pytest.mark.parametrize("name", sorted(BENIGN_ARRAYS))
def test_sizer_agrees_with_numpy(name: str) -> None:
    array = BENIGN_ARRAYS[name]
    header = read_npy_header(BytesBlob(_npy(array)))
    assert declared_nbytes(header) == array.nbytes


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_header_versions(tmp_path: Path, version: tuple[int, int]) -> None:
    buf = io.BytesIO()
    array = np.arange(5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        npformat.write_array(buf, array, version=version)
    _assert_clean(_scan(tmp_path, buf.getvalue()))


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_scans_clean(tmp_path: Path, compressed: bool) -> None:
    arrays = {k.replace("-", "_"): v for k, v in BENIGN_ARRAYS.items()}
    path = tmp_path / "a.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    result = modelguard.scan(path).files[0]
    _assert_clean(result)
    assert "npz" in result.formats


def test_object_array_is_reported_and_its_pickle_analysed(tmp_path: Path) -> None:
    benign = _scan(tmp_path, _npy(np.array([1, "a", None], dtype=object), allow_pickle=True))
    assert _rules(benign) == {"MG206"}
    assert not benign.incomplete
    evil = _scan(tmp_path, _npy(np.array([_Evil()], dtype=object), allow_pickle=True))
    assert {"MG206", "MG101"} <= _rules(evil)
    inner = [f for f in evil.findings if f.rule_id == "MG101"]
    assert inner[0].location.members == ("<object-array>",)


@pytest.mark.parametrize(
    "descr",
    ["object", "i4,O", "2O", "(2,)O", "|O8", "[('a', '<f4'), ('b', 'O')]", "{('b', 'O'): 1}"],
)
def test_object_spellings_numpy_accepts(tmp_path: Path, descr: str) -> None:
    quoted = descr if descr[0] in "[{" else repr(descr)
    header = "{'descr': " + quoted + ", 'fortran_order': False, 'shape': (1,), }\n"
    body = pickle.dumps([_Evil()], protocol=2)
    result = _scan(tmp_path, _with_header(header, body))
    assert {"MG206", "MG101"} <= _rules(result)


def _header_only(array: np.ndarray) -> tuple[bytes, bytes]:
    data = _npy(array)
    end = read_npy_header(BytesBlob(data)).data_offset
    return data[:end], data[end:]


@pytest.mark.parametrize(
    ("label", "mutate"),
    [
        ("truncated", lambda h, b: h + b[:-4]),
        ("no-data", lambda h, b: h),
        ("padding-after", lambda h, b: h + b + b"\x00" * 16),
        ("shape-larger", lambda h, b: h.replace(b"(3, 4)", b"(9, 4)") + b),
        ("shape-smaller", lambda h, b: h.replace(b"(3, 4)", b"(2, 4)") + b),
        ("huge-shape", lambda h, b: h.replace(b"(3, 4)", b"(99999999999, 4)") + b),
        ("dtype-wider", lambda h, b: h.replace(b"<f4", b"<f8") + b),
    ],
)
def test_size_mismatch(tmp_path: Path, label: str, mutate: object) -> None:
    head, body = _header_only(np.arange(12, dtype=np.float32).reshape(3, 4))
    data = mutate(head, body)  # type: ignore[operator]
    result = _scan(tmp_path, data)
    assert "MG470" in _rules(result), label
    assert not result.incomplete
    finding = next(f for f in result.findings if f.rule_id == "MG470")
    assert finding.severity is Severity.MEDIUM
    evidence = dict(finding.evidence)
    assert int(evidence["stored"]) == len(data) - len(head)


def test_unsized_descr_is_not_guessed(tmp_path: Path) -> None:
    # 'd' is a platform-dependent character code: no size is guessed, so no MG470.
    header = "{'descr': 'd', 'fortran_order': False, 'shape': (3,), }\n"
    result = _scan(tmp_path, _with_header(header, b"\x00" * 5))
    assert "MG470" not in _rules(result)


@pytest.mark.parametrize(
    ("label", "payload"),
    [
        ("pickle", pickle.dumps(_Evil(), protocol=2)),
        ("pickle-p4", pickle.dumps({"a": _Evil()}, protocol=4)),
    ],
)
def test_trailing_format_is_a_polyglot(tmp_path: Path, label: str, payload: bytes) -> None:
    result = _scan(tmp_path, _npy(np.arange(4.0)) + payload)
    assert {"MG470", "MG202", "MG101"} <= _rules(result), label
    assert "pickle" not in result.formats  # the trailing reading is carried by MG202


def test_trailing_zip_is_a_polyglot(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.pkl", pickle.dumps(_Evil(), protocol=2))
    result = _scan(tmp_path, _npy(np.arange(4.0)) + buf.getvalue())
    assert {"MG202", "MG101"} <= _rules(result)


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("list-literal", _with_header("[1, 2, 3]\n", b"")),
        ("call", _with_header("dict(descr='<f4', fortran_order=False, shape=(1,))\n", b"")),
        ("name", _with_header("__import__('os')\n", b"")),
        ("missing-keys", _with_header("{'descr': '<f4'}\n", b"")),
        ("bad-shape", _with_header("{'descr': '<f4', 'fortran_order': False, 'shape': -1}", b"")),
        ("bad-version", b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16),
        ("truncated", b"\x93NUMPY\x01\x00\xff\x00{'descr'"),
        ("oversized", _with_header("{" + " " * 20_000 + "}", b"", version=2)),
        ("deep", _with_header("[" * 5000 + "]" * 5000, b"", version=2)),
    ],
)
def test_bad_headers_are_incomplete(tmp_path: Path, label: str, data: bytes) -> None:
    result = _scan(tmp_path, data)
    assert [i.rule_id for i in result.incomplete] == ["MG002"], label
    assert "internal error" not in result.incomplete[0].reason


# -- the dtype sizer against numpy -------------------------------------------------------------
_SIMPLE = st.sampled_from(
    [
        *("<f4", ">f8", "<f2", "<f16", "|u1", "<i2", ">u8", "|b1", "<c8", "<c16", "<c32", "|i1"),
        *("<M8[ns]", "<m8[D]", ">M8[10ms]", "<M8", "|S0", "|S5", "<U3", "|V8", "<U0"),
        *("<f3", "<i3", "<c4", "|b2", "<f4[ns]", "d", "float32", "|O", "<Q8", ""),
    ]
)
_NAMES = st.text(alphabet="abcxyz", min_size=1, max_size=3)
_SHAPES = st.one_of(
    st.integers(0, 4), st.tuples(st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(1, 3))
)


def _descrs() -> st.SearchStrategy[object]:
    def extend(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        field = st.one_of(
            st.tuples(_NAMES, children), st.tuples(st.just(""), st.just("|V3")),
            st.tuples(_NAMES, children, _SHAPES),
        )  # fmt: skip
        unique = st.lists(field, min_size=0, max_size=4, unique_by=lambda f: f[0])
        return st.one_of(unique, st.tuples(children, _SHAPES))

    return st.recursive(_SIMPLE, extend, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(_descrs())
def test_descr_itemsize_matches_numpy(descr: object) -> None:
    size = descr_itemsize(descr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = npformat.descr_to_dtype(descr).itemsize  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError, IndexError):
        return  # numpy refuses it: any answer (or None) is fine
    if descr_has_object(descr):
        return  # object data is a pickle; never sized
    assert size is None or size == expected, (descr, size, expected)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.one_of(st.text(max_size=6), st.integers(-3, 10), st.none()),
                    lambda c: st.one_of(st.lists(c, max_size=4), st.tuples(c, c),
                                        st.tuples(c, c, c), st.dictionaries(st.text(max_size=3), c,
                                                                            max_size=3)),
                    max_leaves=12))  # fmt: skip
def test_descr_functions_never_raise(descr: object) -> None:
    descr_itemsize(descr)
    descr_has_object(descr)


_SEEDS = [
    _npy(BENIGN_ARRAYS["structured-nested"]),
    _npy(BENIGN_ARRAYS["float32"]),
    _npy(np.array([1, None], dtype=object), allow_pickle=True),
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(_SEEDS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 600),
)
def test_fuzz_header_parser_and_scan(
    tmp_path: Path, seed: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    mutated = bytes(data[: max(cut, 6)])
    with contextlib.suppress(FormatError):
        read_npy_header(BytesBlob(mutated))
    result = _scan(tmp_path, mutated)
    assert not any("internal error" in i.reason for i in result.incomplete), result.incomplete


def test_a_version_numpy_does_not_read_is_a_parse_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.float32))
    data = bytearray(buf.getvalue())
    data[7] = 1  # version 1.1
    path = tmp_path / "a.npy"
    path.write_bytes(bytes(data))
    result = modelguard.scan(path).files[0]
    assert [i.rule_id for i in result.incomplete] == ["MG002"]
