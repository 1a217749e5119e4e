"""safetensors: strict header rules (MG410), duplicates (MG403), metadata (MG411), trailing
polyglots (MG202) and sharded-index consistency (MG412)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard.analysers.safetensors import check_shard_index
from modelguard.errors import FormatError
from modelguard.filescan import FileScan
from modelguard.formats.blob import BytesBlob
from modelguard.formats.safetensors import DTYPE_BITS, read_header
from modelguard.policy import Policy
from modelguard.results import FileResult, Severity
from modelguard.scanner import scan_file

# -- helpers -------------------------------------------------------------------------------


def scan_path(path: Path) -> FileResult:
    """Scan one file the way `modelguard.scan` does for each file of a target."""
    return scan_file(path, path.name, Policy())


def rules(res: FileResult) -> set[str]:
    return {f.rule_id for f in res.findings}


def evidence(res: FileResult, rule: str, key: str) -> set[str]:
    return {f.evidence_map.get(key, "") for f in res.findings if f.rule_id == rule}


def assert_clean(res: FileResult) -> None:
    bad = [f for f in res.findings if f.severity >= Severity.LOW]
    assert not bad, bad
    assert res.complete, res.incomplete


def raw_file(
    header: bytes | str | dict[str, object], data: bytes = b"", length: int | None = None
) -> bytes:
    """A safetensors file from a literal header (bytes are used exactly as given)."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def entry(dtype: str, shape: list[object], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def write(tmp_path: Path, data: bytes, name: str = "m.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- benign files, written the ordinary way --------------------------------------------------


def test_numpy_all_dtypes_and_metadata_clean(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {
        f"t.{np.dtype(dt).name}": np.arange(6).astype(dt).reshape(2, 3)
        for dt in (
            np.bool_,
            np.uint8,
            np.int8,
            np.int16,
            np.uint16,
            np.float16,
            np.int32,
            np.uint32,
            np.float32,
            np.float64,
            np.int64,
            np.uint64,
            np.complex64,
        )
    }
    tensors["empty"] = np.zeros((0, 4), np.float32)
    tensors["scalar"] = np.array(3.0, np.float32)
    path = tmp_path / "np.safetensors"
    save_file(tensors, str(path), metadata={"format": "np", "note": "plain text"})
    res = scan_path(path)
    assert res.formats == ("safetensors",)
    assert_clean(res)


def test_torch_dtypes_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    tensors = {
        "bf16": torch.ones(3, 5, dtype=torch.bfloat16),
        "f8e4m3": torch.zeros(7, dtype=torch.float8_e4m3fn),
        "f8e5m2": torch.zeros(7, dtype=torch.float8_e5m2),
        "empty": torch.zeros(0, dtype=torch.float16),
        "i64": torch.arange(4),
    }
    path = tmp_path / "pt.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    assert_clean(scan_path(path))


def test_empty_file_clean(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "empty.safetensors"
    save_file({}, str(path))
    assert_clean(scan_path(path))


@pytest.mark.parametrize(
    ("dtype", "shape", "nbytes"),
    [
        ("F4", [2, 4], 4),
        ("F6_E2M3", [4], 3),
        ("F6_E3M2", [8], 6),
        ("F8_E8M0", [3], 3),
        ("C64", [2], 16),
    ],
)
def test_subbyte_and_rare_dtypes_clean(
    tmp_path: Path, dtype: str, shape: list[int], nbytes: int
) -> None:
    header = json.dumps({"x": entry(dtype, shape, 0, nbytes)}).encode()
    header += b" " * (-len(header) % 8)  # writers pad with spaces to 8 bytes
    res = scan_path(write(tmp_path, raw_file(header, b"\0" * nbytes)))
    assert_clean(res)


def test_dtype_table_matches_reference() -> None:
    # safetensors tensor.rs Dtype::bitsize (0.6+).
    assert DTYPE_BITS == {
        "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8,
        "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32,
        "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
        # safetensors.torch writes these for torch.float8_e4m3fnuz / float8_e5m2fnuz
        "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    }  # fmt: skip


@pytest.fixture(scope="module")
def bert_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny BERT saved by transformers: sharded (with an index) and as one file."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    model = transformers.BertModel(cfg)
    root = tmp_path_factory.mktemp("bert")
    model.save_pretrained(root / "sharded", max_shard_size="20KB")
    model.save_pretrained(root / "single")
    return root / "sharded", root / "single"


def test_transformers_checkpoints_clean(bert_dirs: tuple[Path, Path]) -> None:
    sharded, single = bert_dirs
    shards = sorted(sharded.glob("*.safetensors"))
    assert len(shards) > 1
    for path in [*shards, single / "model.safetensors"]:
        res = scan_path(path)
        assert res.formats == ("safetensors",)
        assert_clean(res)
    index = sharded / "model.safetensors.index.json"
    scan = index_scan(index)
    assert not scan.coll.findings
    assert not scan.coll.incomplete


def test_transformers_index_full_scan_clean(bert_dirs: tuple[Path, Path]) -> None:
    pytest.importorskip("modelguard.analysers.hfrepo", exc_type=ImportError)
    index = bert_dirs[0] / "model.safetensors.index.json"
    assert_clean(scan_path(index))


# -- MG410: the format's rules ---------------------------------------------------------------

_A = entry("U8", [4], 0, 4)

MG410_CASES: list[tuple[str, bytes, str]] = [
    ("utf8", raw_file(b'{"\xff":' + json.dumps(_A).encode() + b"}", b"abcd"), "invalid-utf8"),
    ("json", raw_file(b'{"a": [1,2', b"abcd"), "invalid-json"),
    ("huge-int", raw_file(b'{"a":' + b"9" * 5000 + b"}"), "invalid-json"),
    ("deep", raw_file(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "invalid-json"),
    (
        "nul-padding",
        raw_file(b'{"a":' + json.dumps(_A).encode() + b"}\0\0", b"abcd"),
        "invalid-json",
    ),
    ("not-object-entry", raw_file({"a": [1, 2]}), "bad-entry"),
    ("missing-field", raw_file({"a": {"dtype": "U8", "shape": [0]}}), "bad-entry"),
    ("dtype", raw_file({"a": entry("F128", [4], 0, 4)}, b"abcd"), "unknown-dtype"),
    ("dtype-lower", raw_file({"a": entry("u8", [4], 0, 4)}, b"abcd"), "unknown-dtype"),
    ("neg-dim", raw_file({"a": entry("U8", [-4], 0, 4)}, b"abcd"), "bad-shape"),
    ("float-dim", raw_file({"a": entry("U8", [4.0], 0, 4)}, b"abcd"), "bad-shape"),
    ("bool-dim", raw_file({"a": entry("U8", [True], 0, 1)}, b"a"), "bad-shape"),
    (
        "shape-not-list",
        raw_file({"a": {"dtype": "U8", "shape": 4, "data_offsets": [0, 4]}}, b"abcd"),
        "bad-shape",
    ),
    ("overflow", raw_file({"a": entry("F64", [2**40, 2**40], 0, 4)}, b"abcd"), "bad-shape"),
    ("misaligned", raw_file({"a": entry("F4", [3], 0, 2)}, b"ab"), "misaligned-bits"),
    (
        "offsets-3",
        raw_file({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4, 8]}}, b"abcd"),
        "bad-offsets",
    ),
    ("offsets-reversed", raw_file({"a": entry("U8", [0], 4, 0)}, b"abcd"), "bad-offsets"),
    ("offsets-huge", raw_file({"a": entry("U8", [0], 2**64, 2**64)}), "bad-offsets"),
    ("size", raw_file({"a": entry("F32", [2], 0, 4)}, b"abcd"), "size-mismatch"),
    (
        "overlap",
        raw_file({"a": entry("U8", [4], 0, 4), "b": entry("U8", [2], 2, 4)}, b"abcd"),
        "overlap",
    ),
    ("hole", raw_file({"a": entry("U8", [2], 0, 2), "b": entry("U8", [1], 3, 4)}, b"abcd"), "hole"),
    ("beyond", raw_file({"a": entry("U8", [8], 0, 8)}, b"abcd"), "beyond-file"),
    ("metadata-int", raw_file({"__metadata__": {"a": 1}}), "bad-metadata"),
    ("metadata-list", raw_file({"__metadata__": ["x"]}), "bad-metadata"),
    ("surrogate", raw_file(b'{"__metadata__": {"a": "\\ud800"}}'), "invalid-json"),
    ("trailing", raw_file({"a": _A}, b"abcd" + b"\x01\x02\x03"), "trailing-bytes"),
]


@pytest.mark.parametrize(("name", "data", "problem"), MG410_CASES, ids=[c[0] for c in MG410_CASES])
def test_mg410(tmp_path: Path, name: str, data: bytes, problem: str) -> None:
    res = scan_path(write(tmp_path, data))
    assert problem in evidence(res, "MG410", "problem"), res.findings
    assert all(f.severity is Severity.HIGH for f in res.findings if f.rule_id == "MG410")
    assert not any("internal error" in i.reason for i in res.incomplete), res.incomplete


def test_mg410_header_too_large(tmp_path: Path) -> None:
    # Sparse: the sniffer wants the declared header inside the file, as a loader would.
    path = write(tmp_path, struct.pack("<Q", 100_000_001) + b"{}")
    with path.open("r+b") as fh:
        fh.truncate(100_000_200)
    res = scan_path(path)
    assert "header-too-large" in evidence(res, "MG410", "problem"), res.findings


def test_header_leading_space_parser() -> None:
    # The reference accepts leading JSON whitespace; writers never emit it.
    data = raw_file(b' {"a":' + json.dumps(_A).encode() + b"}", b"abcd")
    parsed = read_header(BytesBlob(data))
    assert [p.kind for p in parsed.problems] == ["header-start"]


def test_mg410_one_finding_per_kind(tmp_path: Path) -> None:
    header = {f"t{i}": entry("Q8", [1], i, i + 1) for i in range(10)}
    res = scan_path(write(tmp_path, raw_file(header, b"x" * 10)))
    found = [f for f in res.findings if f.rule_id == "MG410"]
    assert len(found) == 1
    assert found[0].evidence_map["count"] == "10"


@pytest.mark.parametrize(
    ("problem", "data"),
    [
        ("header-beyond-file", struct.pack("<Q", 50) + b"{}"),
        ("header-too-small", b"\x02\0\0"),
        ("not-object", raw_file(b"[]")),
        ("header-too-large", struct.pack("<Q", 2**40) + b"{}"),
    ],
)
def test_parser_fatal_kinds(problem: str, data: bytes) -> None:
    with pytest.raises(FormatError) as info:
        read_header(BytesBlob(data))
    assert getattr(info.value, "kind", None) == problem


def test_header_over_our_limit_is_incomplete(tmp_path: Path) -> None:
    from dataclasses import replace

    header = json.dumps({"__metadata__": {"pad": "x" * 5000}}).encode()
    path = write(tmp_path, raw_file(header))
    policy = Policy()
    policy = replace(policy, limits=replace(policy.limits, max_header_bytes=1000))
    res = scan_file(path, path.name, policy)
    assert any(i.rule_id == "MG003" and "max_header_bytes" in i.reason for i in res.incomplete)


def test_empty_tensors_at_one_offset_are_valid() -> None:
    header = {
        "a": entry("U8", [0], 0, 0),
        "b": entry("F32", [0, 3], 0, 0),
        "c": entry("U8", [2], 0, 2),
        "d": entry("U8", [0], 2, 2),
    }
    parsed = read_header(BytesBlob(raw_file(header, b"xy")))
    assert parsed.problems == ()
    assert parsed.data_end == parsed.data_start + 2


# -- MG403: duplicates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
        '"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}',
        '{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"dtype":"I8"}}',
        '{"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}',
    ],
    ids=["tensor", "field", "metadata"],
)
def test_mg403_duplicates(tmp_path: Path, header: str) -> None:
    res = scan_path(write(tmp_path, raw_file(header, b"abcd")))
    assert "MG403" in rules(res)


# -- MG411: unusual metadata (low) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"a": {**_A, "exec": "x"}}, "extra-keys"),
        ({"../../etc/passwd": _A}, "tensor-name"),
        ({"a\x1b[2Jb": _A}, "tensor-name"),
        ({"a\\b": _A}, "tensor-name"),
        ({"a": _A, "__metadata__": {"src": "see https://evil.example/x"}}, "url"),
        ({"a": _A, "__metadata__": {"hook": "__import__('os').system('id')"}}, "code"),
        ({"a": _A, "__metadata__": {"hook": "import os; os.system('id')"}}, "code"),
        ({"a": _A, "__metadata__": {"html": "<script>alert(1)</script>"}}, "code"),
        ({"a": _A, "__metadata__": {"py": "x = 1\nfrom os import system\n"}}, "code"),
        ({"a": _A, "__metadata__": {"py": "subprocess.run(['id'])"}}, "code"),
        ({"a": _A, "__metadata__": {"tpl": "{% for x in y %}{{ x }}{% endfor %}"}}, "template"),
        ({"a": _A, "__metadata__": {"big": "A" * (64 * 1024 + 1)}}, "long-value"),
    ],
)
def test_mg411(tmp_path: Path, header: dict[str, object], reason: str) -> None:
    res = scan_path(write(tmp_path, raw_file(header, b"abcd")))
    # Code and templates are their own rule (MG413, medium); the rest stay low (MG411).
    rule, severity = (
        ("MG413", Severity.MEDIUM)
        if reason in ("code", "template")
        else (
            "MG411",
            Severity.LOW,
        )
    )
    assert reason in evidence(res, rule, "reason"), res.findings
    assert all(f.severity is severity for f in res.findings if f.rule_id == rule)


@pytest.mark.parametrize(
    "metadata",
    [
        {"format": "pt"},
        {"format": "tf", "total_size": "123"},
        {"modelspec.title": "My model", "modelspec.date": "2024-01-01", "ss_lr": "1e-4"},
        {"ss_tag_frequency": json.dumps({"set": {"a photo": 3, "import": 1}})},
        {"notes": "evaluation(s) of the model; imported from a checkpoint"},
        {"notes": "we import weights from the hub", "os": "operating system (Linux)"},
        {"eval": "eval (held-out) accuracy 0.9", "cfg": "{'lr': 0.1, 'sched': {'warmup': 3}}"},
    ],
)
def test_ordinary_metadata_is_quiet(tmp_path: Path, metadata: dict[str, str]) -> None:
    res = scan_path(
        write(tmp_path, raw_file({"__metadata__": metadata, "a.b.weight": _A}, b"abcd"))
    )
    assert_clean(res)


# -- trailing bytes: polyglots -----------------------------------------------------------------


def _valid() -> bytes:
    return raw_file({"__metadata__": {"format": "pt"}, "w": _A}, b"abcd")


def _zip_with_pickle() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(os.system))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (pickle.dumps(os.system, protocol=2), {"MG202", "MG101"}),
        (pickle.dumps({"a": 1}, protocol=4), {"MG202"}),
        (_zip_with_pickle(), {"MG202", "MG101"}),
        (raw_file({"x": _A}, b"wxyz"), {"MG202"}),
    ],
    ids=["pickle-system", "pickle-inert", "zip", "safetensors"],
)
def test_trailing_polyglot(tmp_path: Path, tail: bytes, expected: set[str]) -> None:
    res = scan_path(write(tmp_path, _valid() + tail))
    assert expected <= rules(res), res.findings
    assert res.formats[-1] != "pickle" or "zip" in res.formats
    assert not any("internal error" in i.reason for i in res.incomplete), res.incomplete


def test_trailing_formats_not_added(tmp_path: Path) -> None:
    res = scan_path(write(tmp_path, _valid() + pickle.dumps([1, 2], protocol=4)))
    assert res.formats == ("safetensors",)
    assert "MG202" in rules(res)


# -- MG412: sharded indexes --------------------------------------------------------------------


def index_scan(index: Path) -> FileScan:
    """Run check_shard_index over an index file on disk, as textfiles.py does."""
    scan = FileScan(index.name, Policy(), str(index))
    check_shard_index(scan, json.loads(index.read_text()), scan.root)
    return scan


def _shard(tmp_path: Path, name: str, tensors: list[str]) -> None:
    header = {t: entry("U8", [1], i, i + 1) for i, t in enumerate(tensors)}
    (tmp_path / name).write_bytes(raw_file(header, b"x" * len(tensors)))


def _index(tmp_path: Path, weight_map: dict[str, object]) -> Path:
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {"total_size": 3}, "weight_map": weight_map}))
    return path


def mg412(scan: FileScan) -> dict[str, dict[str, str]]:
    return {
        f.evidence_map["problem"]: f.evidence_map
        for f in scan.coll.findings
        if f.rule_id == "MG412"
    }


def test_index_consistent_clean(tmp_path: Path) -> None:
    _shard(tmp_path, "s1.safetensors", ["a", "b"])
    _shard(tmp_path, "s2.safetensors", ["c"])
    scan = index_scan(
        _index(tmp_path, {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"})
    )
    assert not scan.coll.findings and not scan.coll.incomplete


@pytest.mark.parametrize(
    ("shards", "weight_map", "problem", "example"),
    [
        (
            {"s1.safetensors": ["a"]},
            {"a": "s1.safetensors", "b": "s1.safetensors"},
            "missing-tensor",
            "b",
        ),
        ({"s1.safetensors": ["a", "hidden"]}, {"a": "s1.safetensors"}, "unreferenced", "hidden"),
        (
            {"s1.safetensors": ["a", "b"], "s2.safetensors": ["b", "c"]},
            {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"},
            "shadowed",
            "b",
        ),
        (
            {"s1.safetensors": ["a"]},
            {"a": "s1.safetensors", "b": "gone.safetensors"},
            "missing-shard",
            "gone",
        ),
        (
            {"s1.safetensors": ["a"]},
            {"a": "s1.safetensors", "b": "../outside.safetensors"},
            "shard-path",
            "outside",
        ),
        (
            {"s1.safetensors": ["a"]},
            {"a": "s1.safetensors", "b": "/etc/passwd"},
            "shard-path",
            "passwd",
        ),
        (
            {"s1.safetensors": ["a"]},
            {"a": "s1.safetensors", "b": "sub/s.safetensors"},
            "shard-path",
            "sub",
        ),
        (
            {"s1.safetensors": ["a"]},
            {"a": "s1.safetensors", "b": "C:\\x.safetensors"},
            "shard-path",
            "x.",
        ),
        ({"s1.safetensors": ["a"]}, {"a": "s1.safetensors", "b": 7}, "bad-entry", "b"),
    ],
    ids=[
        "missing",
        "unreferenced",
        "shadowed",
        "missing-shard",
        "dotdot",
        "absolute",
        "subdir",
        "drive",
        "value",
    ],
)
def test_mg412(
    tmp_path: Path,
    shards: dict[str, list[str]],
    weight_map: dict[str, object],
    problem: str,
    example: str,
) -> None:
    for name, tensors in shards.items():
        _shard(tmp_path, name, tensors)
    found = mg412(index_scan(_index(tmp_path, weight_map)))
    assert problem in found, found
    assert example in found[problem]["examples"]


def test_misplaced_tensor_is_missing_and_unreferenced(tmp_path: Path) -> None:
    _shard(tmp_path, "s1.safetensors", ["a", "c"])
    _shard(tmp_path, "s2.safetensors", ["b"])
    weight_map = {"a": "s2.safetensors", "b": "s2.safetensors", "c": "s1.safetensors"}
    found = mg412(index_scan(_index(tmp_path, weight_map)))
    assert {"missing-tensor", "unreferenced"} <= found.keys()


def test_unreadable_shard_makes_index_incomplete(tmp_path: Path) -> None:
    (tmp_path / "s1.safetensors").write_bytes(raw_file(b"{not json", b""))
    scan = index_scan(_index(tmp_path, {"a": "s1.safetensors"}))
    assert any(i.rule_id == "MG002" for i in scan.coll.incomplete)
    assert not mg412(scan)


def test_pytorch_bin_index_not_opened(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model-00001-of-00001.bin").write_bytes(pickle.dumps({"a": 1}))
    scan = index_scan(_index(tmp_path, {"a": "pytorch_model-00001-of-00001.bin"}))
    assert not scan.coll.findings and not scan.coll.incomplete


def test_index_in_archive_not_followed(tmp_path: Path) -> None:
    scan = FileScan("x.zip", Policy(), str(tmp_path / "x.zip"))
    check_shard_index(
        scan, {"weight_map": {"a": "nowhere.safetensors"}}, scan.root.inner("idx.json")
    )
    assert not scan.coll.findings


def test_shard_count_capped(tmp_path: Path) -> None:
    from dataclasses import replace

    for i in range(3):
        _shard(tmp_path, f"s{i}.safetensors", [f"t{i}"])
    index = _index(tmp_path, {f"t{i}": f"s{i}.safetensors" for i in range(3)})
    policy = Policy()
    scan = FileScan(
        index.name, replace(policy, limits=replace(policy.limits, max_members=2)), str(index)
    )
    check_shard_index(scan, json.loads(index.read_text()), scan.root)
    assert any(i.rule_id == "MG003" and "max_members" in i.reason for i in scan.coll.incomplete)


def test_index_full_scan_flags_mismatch(tmp_path: Path) -> None:
    pytest.importorskip("modelguard.analysers.hfrepo", exc_type=ImportError)
    _shard(tmp_path, "s1.safetensors", ["a", "hidden"])
    res = scan_path(_index(tmp_path, {"a": "s1.safetensors", "b": "../x.safetensors"}))
    assert {"unreferenced", "shard-path"} <= evidence(res, "MG412", "problem"), res.findings


@settings(max_examples=100, deadline=None)
@given(
    names=st.dictionaries(
        st.text(max_size=6),
        st.one_of(
            st.text(max_size=12), st.sampled_from(["s1.safetensors", "..", ""]), st.integers()
        ),
        max_size=6,
    )
)
def test_fuzz_index(tmp_path_factory: pytest.TempPathFactory, names: dict[str, object]) -> None:
    folder = tmp_path_factory.mktemp("idx")
    _shard(folder, "s1.safetensors", ["a"])
    index = _index(folder, names)
    scan = FileScan(index.name, Policy(), str(index))
    check_shard_index(scan, {"weight_map": names}, scan.root)


# -- fuzz --------------------------------------------------------------------------------------

_SEEDS = [
    _valid(),
    raw_file({"a": entry("F4", [2, 2], 0, 2), "b": entry("BF16", [3], 2, 8)}, b"\0" * 8),
    raw_file({}),
    _valid() + pickle.dumps([1], protocol=2),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif len(data) >= 8:
            data[0:8] = struct.pack("<Q", draw(st.integers(0, 2**64 - 1)))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_fuzz_parser(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        read_header(BytesBlob(data))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated())
def test_fuzz_scan(tmp_path: Path, data: bytes) -> None:
    res = scan_path(write(tmp_path, data, "fuzz.safetensors"))
    assert not any("internal error" in i.reason for i in res.incomplete), res.incomplete


@pytest.mark.parametrize("keep", [9, 40, 100])
def test_a_file_truncated_inside_its_header_is_incomplete_never_safe(
    tmp_path: Path, keep: int
) -> None:
    header = {"w": entry("F32", [4, 4], 0, 64), "__metadata__": {"format": "pt"}}
    full = raw_file(header, b"\0" * 64)
    res = scan_path(write(tmp_path, full[:keep]))
    assert res.formats == ("safetensors",)
    assert [i.rule_id for i in res.incomplete] == ["MG002"]
    assert "truncated" in res.incomplete[0].reason


def test_a_length_beyond_the_cap_and_the_file_is_still_reported_invalid(tmp_path: Path) -> None:
    header = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    path = write(tmp_path, struct.pack("<Q", 1 << 40) + header + b"\0" * 8)
    res = scan_path(path)
    assert res.formats == ("safetensors",)
    assert "header-too-large" in evidence(res, "MG410", "problem")


def test_metadata_code_is_its_own_medium_rule(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"post": "__import__('os').system('id')", "format": "pt"},
        "w": entry("F32", [1], 0, 4),
    }
    res = scan_path(write(tmp_path, raw_file(header, b"\0" * 4)))
    assert "MG413" in rules(res) and "MG411" not in rules(res)
    assert res.verdict.value == "suspicious"


def test_fnuz_float8_dtypes_are_known(tmp_path: Path) -> None:
    header = {"a": entry("F8_E4M3FNUZ", [4], 0, 4), "b": entry("F8_E5M2FNUZ", [4], 4, 8)}
    res = scan_path(write(tmp_path, raw_file(header, b"\0" * 8)))
    assert res.findings == () and res.complete


def test_an_index_without_any_of_its_shards_is_not_a_mismatch(tmp_path: Path) -> None:
    index = {
        "metadata": {"total_size": 8},
        "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"},
    }
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps(index))
    res = scan_path(path)
    assert res.findings == () and res.complete
