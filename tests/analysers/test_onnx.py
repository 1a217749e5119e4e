"""ONNX analysis: external-data paths and links (MG430), invalid entries (MG431), custom
domains (MG432), sniffing and fuzzing.

Fixtures are built with onnx.helper and saved with onnx; malicious ones are made by editing
the protos and writing them without loading any external data.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

import modelguard
from factories import mutate
from modelguard.analysers.onnx import location_problem
from modelguard.analysers.protobuf import analyse_protobuf, sniff_protobuf
from modelguard.errors import FormatError
from modelguard.filescan import FileScan
from modelguard.formats.blob import BytesBlob
from modelguard.formats.onnx import read_onnx, read_onnx_value
from modelguard.formats.protowire import Reader
from modelguard.formats.sniff import looks_like_text
from modelguard.policy import Policy
from modelguard.results import Location, Severity

# -- fixtures ------------------------------------------------------------------------------


def _linear(domain: str = "", op: str = "Relu") -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "W")
    bias = numpy_helper.from_array(np.ones(8, dtype=np.float32), "B")
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["H"], name="matmul"),
        helper.make_node("Add", ["H", "B"], ["A"], name="add"),
        helper.make_node(op, ["A"], ["Y"], name="act", domain=domain),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
        [weight, bias],
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets, producer_name="modelguard-tests")


def _if_model() -> onnx.ModelProto:
    def branch(name: str, value: float) -> onnx.GraphProto:
        const = numpy_helper.from_array(np.full(4, value, dtype=np.float32), f"{name}_c")
        return helper.make_graph(
            [helper.make_node("Identity", [f"{name}_c"], [f"{name}_out"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [4])],
            [const],
        )

    node = helper.make_node(
        "If", ["cond"], ["Y"], then_branch=branch("then", 1.0), else_branch=branch("else", 0.0)
    )
    graph = helper.make_graph(
        [node],
        "if_graph",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _save_external(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(
        _linear(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    return path


def _edit(path: Path, change: Callable[[onnx.ModelProto], None]) -> Path:
    model = onnx.load(str(path), load_external_data=False)
    change(model)
    path.write_bytes(model.SerializeToString())
    return path


def _set_entry(key: str, value: str) -> Callable[[onnx.ModelProto], None]:
    def change(model: onnx.ModelProto) -> None:
        tensor = model.graph.initializer[0]
        for entry in tensor.external_data:
            if entry.key == key:
                entry.value = value
                return
        tensor.external_data.add(key=key, value=value)

    return change


def _scan(path: Path) -> modelguard.FileResult:
    report = modelguard.scan(path)
    (result,) = [r for r in report.files if r.path.endswith(path.name)]
    return result


def _clean(result: modelguard.FileResult) -> None:
    assert result.complete, result.incomplete
    assert not [f for f in result.findings if f.severity >= Severity.LOW], result.findings


# -- benign --------------------------------------------------------------------------------


def test_small_model_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(_linear(), str(path))
    result = _scan(path)
    assert result.formats == ("onnx",)
    _clean(result)


def test_external_data_model_is_clean(tmp_path: Path) -> None:
    path = _save_external(tmp_path / "m")
    model = read_onnx(BytesBlob(path.read_bytes()))
    assert {t.name for t in model.tensors} == {"W", "B"}
    assert all(t.external for t in model.tensors)
    _clean(_scan(path))


def test_if_subgraph_model_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "if.onnx"
    onnx.save(_if_model(), str(path))
    _clean(_scan(path))


def test_subgraph_and_function_tensors_are_found(tmp_path: Path) -> None:
    model = _if_model()
    (then,) = [a.g for a in model.graph.node[0].attribute if a.name == "then_branch"]
    then.initializer[0].data_location = TensorProto.EXTERNAL
    then.initializer[0].external_data.add(key="location", value="../../etc/passwd")
    func = helper.make_function(
        "local.fns",
        "Leak",
        ["a"],
        ["b"],
        [helper.make_node("Constant", [], ["b"], value=helper.make_tensor("k", 1, [1], [0.0]))],
        [helper.make_opsetid("", 17)],
    )
    const = func.node[0].attribute[0].t
    const.data_location = TensorProto.EXTERNAL
    const.external_data.add(key="location", value="/etc/shadow")
    model.functions.append(func)
    path = tmp_path / "nested.onnx"
    path.write_bytes(model.SerializeToString())
    parsed = read_onnx(BytesBlob(path.read_bytes()))
    wheres = sorted(t.where for t in parsed.tensors)
    assert any("attr then_branch" in w for w in wheres)
    assert any(w.startswith("function local.fns.Leak") for w in wheres)
    result = _scan(path)
    locations = {f.evidence_map["location"] for f in result.findings if f.rule_id == "MG430"}
    assert locations == {"../../etc/passwd", "/etc/shadow"}
    # the local function's domain is defined in the model: not a custom-op domain
    assert "MG432" not in {f.rule_id for f in result.findings}


def test_standard_microsoft_domain_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "ms.onnx"
    onnx.save(_linear("com.microsoft", "FusedGemm"), str(path))
    _clean(_scan(path))


# -- external data: MG430 / MG431 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "rule"),
    [
        ("../../etc/passwd", "MG430"),
        ("/etc/passwd", "MG430"),
        ("C:\\Windows\\win.ini", "MG430"),
        ("c:/x", "MG430"),
        ("file:///etc/passwd", "MG430"),
        ("https://example.com/w.bin", "MG430"),
        ("a/../../x", "MG430"),
        ("sub\\..\\..\\x", "MG430"),
        ("\\\\server\\share\\x", "MG430"),
        ("model.onnx.data\x00.txt", "MG430"),
        ("missing.bin", "MG431"),
        (".", "MG431"),
    ],
)
def test_bad_location(tmp_path: Path, location: str, rule: str) -> None:
    path = _edit(_save_external(tmp_path / "m"), _set_entry("location", location))
    result = _scan(path)
    hits = [f for f in result.findings if f.rule_id == rule]
    assert hits, result.findings
    assert hits[0].evidence_map["tensor"] == "W"
    expected = Severity.CRITICAL if rule == "MG430" else Severity.HIGH
    assert hits[0].severity is expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("offset", "999999"),
        ("length", "999999"),
        ("offset", "-1"),
        ("offset", "0x10"),
        ("length", "1e3"),
        ("__class__", "x"),
        ("location", "model.onnx.data"),  # a second location entry: a repeated key
    ],
)
def test_invalid_entry(tmp_path: Path, key: str, value: str) -> None:
    def change(model: onnx.ModelProto) -> None:
        tensor = model.graph.initializer[0]
        if key in ("__class__", "location"):
            tensor.external_data.add(key=key, value=value)
        else:
            _set_entry(key, value)(model)

    path = _edit(_save_external(tmp_path / "m"), change)
    result = _scan(path)
    assert "MG431" in {f.rule_id for f in result.findings}, result.findings


def test_symlink_out_of_folder(tmp_path: Path) -> None:
    path = _save_external(tmp_path / "m")
    secret = tmp_path / "outside" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(b"\x00" * 4096)
    os.symlink(secret, tmp_path / "m" / "weights.bin")
    _edit(path, _set_entry("location", "weights.bin"))
    result = _scan(path)
    assert "MG430" in {f.rule_id for f in result.findings}, result.findings


def test_symlink_inside_folder_is_clean(tmp_path: Path) -> None:
    path = _save_external(tmp_path / "m")
    os.symlink(tmp_path / "m" / "model.onnx.data", tmp_path / "m" / "alias.bin")
    _edit(path, _set_entry("location", "alias.bin"))
    _clean(_scan(path))


def test_hard_link(tmp_path: Path) -> None:
    path = _save_external(tmp_path / "m")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 4096)
    os.link(secret, tmp_path / "m" / "weights.bin")
    _edit(path, _set_entry("location", "weights.bin"))
    result = _scan(path)
    hits = [f for f in result.findings if f.rule_id == "MG430"]
    assert hits and "hard link" in hits[0].message


def test_hugging_face_cache_layout_is_clean(tmp_path: Path) -> None:
    # snapshots/<rev>/{model.onnx, model.onnx.data} -> ../../blobs/<hash>
    built = _save_external(tmp_path / "build")
    blobs = tmp_path / "cache" / "blobs"
    snap = tmp_path / "cache" / "snapshots" / "abc"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for name, digest in (("model.onnx", "1111"), ("model.onnx.data", "2222")):
        (blobs / digest).write_bytes((built.parent / name).read_bytes())
        os.symlink(Path("..", "..", "blobs", digest), snap / name)
    _clean(_scan(snap / "model.onnx"))


def test_archive_member_checks_strings_only(tmp_path: Path) -> None:
    import zipfile

    path = _edit(_save_external(tmp_path / "m"), _set_entry("location", "../../etc/passwd"))
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(path, "model.onnx")
    result = _scan(archive)
    assert "MG430" in {f.rule_id for f in result.findings}


@pytest.mark.parametrize(
    ("location", "escapes"),
    [
        ("w.bin", False),
        ("sub/w.bin", False),
        ("sub/../w.bin", False),
        ("./w.bin", False),
        ("..", True),
        ("a/b/../../../w", True),
        ("D:w.bin", True),
        ("s3://bucket/w", True),
    ],
)
def test_location_problem(location: str, escapes: bool) -> None:
    assert (location_problem(location) is not None) is escapes


# -- custom domains: MG432 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "contrib"),
    [("com.attacker", False), ("ai.onnx.contrib", True)],
)
def test_custom_domain(tmp_path: Path, domain: str, contrib: bool) -> None:
    path = tmp_path / "custom.onnx"
    onnx.save(_linear(domain, "Evil"), str(path))
    result = _scan(path)
    (hit,) = [f for f in result.findings if f.rule_id == "MG432"]
    assert hit.severity is Severity.MEDIUM  # rules.py: host code that cannot be judged
    assert domain in hit.evidence_map["domains"]
    assert hit.evidence_map["op"] == f"{domain}::Evil"
    assert ("onnxruntime-extensions" in hit.message) is contrib


# -- malformed, sniffing, fuzz -------------------------------------------------------------


def test_truncated_model_is_incomplete(tmp_path: Path) -> None:
    data = _linear().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) - 7])
    result = _scan(path)
    assert "onnx" in result.formats
    assert any(i.rule_id == "MG002" for i in result.incomplete)


def test_onnx_is_not_taken_for_savedmodel() -> None:
    data = _linear().SerializeToString()
    assert sniff_protobuf(data[:512], len(data)) == "onnx"


def _top_fields(data: bytes) -> list[bytes]:
    """Split a message into its encoded top-level fields."""
    out, pos = [], 0
    for f in Reader(BytesBlob(data)).fields(0, len(data)):
        out.append(data[pos : f.end])
        pos = f.end
    return out


def test_reordered_fields_are_recognised(tmp_path: Path) -> None:
    # Protobuf fixes no field order: graph and opsets first, ir_version last.
    data = b"".join(reversed(_top_fields(_linear("com.attacker", "Evil").SerializeToString())))
    path = tmp_path / "reordered.onnx"
    path.write_bytes(data)
    result = _scan(path)
    assert result.formats == ("onnx",)
    assert result.complete, result.incomplete
    assert "MG432" in {f.rule_id for f in result.findings}


def test_every_mid_field_cut_is_mg002(tmp_path: Path) -> None:
    data = _linear().SerializeToString()
    ends = set(itertools.accumulate(len(f) for f in _top_fields(data)))
    for cut in range(40, len(data)):
        scan = FileScan("cut.onnx", Policy())
        blob = BytesBlob(data[:cut])
        fmt = analyse_protobuf(scan, blob, data[:cut][:512], Location("cut.onnx"), 0)
        assert fmt == "onnx", cut
        rules = {i.rule_id for i in scan.coll.incomplete}
        assert rules == (set() if cut in ends else {"MG002"}), (cut, scan.coll.incomplete)


@pytest.mark.parametrize(("name", "first_fields"), [("model.onnx", 0), ("blob", 32)])
def test_bit_flips_in_the_head_are_never_silently_clean(name: str, first_fields: int) -> None:
    # A flip that makes the model unparsable must be MG002 whenever the head still looks like
    # ONNX or the file is named .onnx; without the name, flips that wreck the first fields
    # (which protobuf readers reject too) may leave the content unrecognised.
    data = _linear("com.attacker", "Evil").SerializeToString()
    unknown = []
    for pos in range(124):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[pos] ^= 1 << bit
            scan = FileScan(name, Policy())
            blob = BytesBlob(bytes(flipped))
            fmt = analyse_protobuf(scan, blob, bytes(flipped[:512]), Location(name), 0)
            try:
                read_onnx(blob)
                parses = True
            except FormatError:
                parses = False
            if fmt is None:
                unknown.append(pos)
            elif not parses:
                assert any(i.rule_id == "MG002" for i in scan.coll.incomplete), (pos, bit)
            assert not any("internal error" in i.reason for i in scan.coll.incomplete)
    assert all(pos < first_fields for pos in unknown), sorted(set(unknown))


_SEEDS = [
    _linear("com.attacker", "Evil").SerializeToString(),
    _if_model().SerializeToString(),
]


def mutated() -> st.SearchStrategy[bytes]:
    return mutate.mutated(_SEEDS)


@given(data=mutated())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_onnx_parser_fuzz(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        read_onnx(BytesBlob(data))


@given(data=mutated())
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_onnx_scan_fuzz_no_internal_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(data)
    result = modelguard.scan(path).files[0]
    assert not any("internal error" in i.reason for i in result.incomplete), result.incomplete


# -- serialized values (onnx test data: test_data_set_0/input_0.pb) -----------------------


def _tensor_with_external(location: str, **extra: str) -> TensorProto:
    tensor = numpy_helper.from_array(np.arange(4, dtype=np.float32), "x")
    set_external_data(tensor, location)
    for key, value in extra.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.ClearField("raw_data")
    return tensor


_VALUES: dict[str, Callable[[], bytes]] = {
    "random-nchw": lambda: numpy_helper.from_array(
        np.random.default_rng(0).random((1, 3, 8, 8)).astype(np.float32)
    ).SerializeToString(),
    "vector": lambda: numpy_helper.from_array(np.zeros(2, np.float32)).SerializeToString(),
    "logits": lambda: numpy_helper.from_array(np.ones((1, 1000), np.float32)).SerializeToString(),
    "rank5": lambda: numpy_helper.from_array(np.zeros((4, 4, 4, 4, 4))).SerializeToString(),
    "int64": lambda: numpy_helper.from_array(np.arange(7, dtype=np.int64)).SerializeToString(),
    "string": lambda: numpy_helper.from_array(np.array(["ab", "c"])).SerializeToString(),
    "bool": lambda: numpy_helper.from_array(np.array([True, False, True])).SerializeToString(),
    "named": lambda: numpy_helper.from_array(np.ones(3, np.int32), "input").SerializeToString(),
    "scalar": lambda: numpy_helper.from_array(np.array(2.5, np.float32)).SerializeToString(),
    "empty": lambda: numpy_helper.from_array(np.zeros((0, 3), np.float32)).SerializeToString(),
    "typed-float": lambda: helper.make_tensor(
        "t", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0]
    ).SerializeToString(),
    "typed-int64": lambda: helper.make_tensor(
        "t", TensorProto.INT64, [3], [1, -2, 3]
    ).SerializeToString(),
    "sequence": lambda: numpy_helper.from_list(
        [np.zeros(2, np.float32), np.ones(3, np.float32)]
    ).SerializeToString(),
    "map": lambda: numpy_helper.from_dict(
        {1: np.zeros(2, np.float32), 2: np.ones(2, np.float32)}
    ).SerializeToString(),
    "optional": lambda: numpy_helper.from_optional(np.zeros(3)).SerializeToString(),
    "optional-none": lambda: numpy_helper.from_optional(None).SerializeToString(),
    # Tiny files with no NUL byte look like text.
    "bool-scalar": lambda: numpy_helper.from_array(np.array(True)).SerializeToString(),
    "string-scalar": lambda: numpy_helper.from_array(np.array("cat")).SerializeToString(),
    "empty-sequence": lambda: numpy_helper.from_list([]).SerializeToString(),
}


@pytest.mark.parametrize("kind", sorted(_VALUES))
def test_test_data_value_is_clean(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "input_0.pb"
    data = _VALUES[kind]()
    path.write_bytes(data)
    result = _scan(path)
    _clean(result)
    # Under 8 bytes, content that reads as text is taken for text without a protobuf sniff
    # (a torch zip's `version` member): too small to hold external data anyway.
    tiny_text = len(data) < 8 and looks_like_text(data)
    assert result.formats == (("text",) if tiny_text else ("onnx-tensor",))


def test_tensor_with_external_data_beside_it_is_clean(tmp_path: Path) -> None:
    tensor = numpy_helper.from_array(np.arange(16, dtype=np.float32), "w")
    (tmp_path / "w.bin").write_bytes(tensor.raw_data)
    set_external_data(tensor, "w.bin", offset=0, length=len(tensor.raw_data))
    tensor.ClearField("raw_data")
    path = tmp_path / "input_0.pb"
    path.write_bytes(tensor.SerializeToString())
    result = _scan(path)
    _clean(result)
    assert result.formats == ("onnx-tensor",)


@pytest.mark.parametrize(
    ("location", "extra", "rule"),
    [
        ("../../etc/passwd", {}, "MG430"),
        ("/etc/passwd", {}, "MG430"),
        ("missing.bin", {}, "MG431"),
        ("w.bin", {"offset": "-1"}, "MG431"),
    ],
)
def test_tensor_external_data(
    tmp_path: Path, location: str, extra: dict[str, str], rule: str
) -> None:
    (tmp_path / "w.bin").write_bytes(bytes(16))
    path = tmp_path / "input_0.pb"
    path.write_bytes(_tensor_with_external(location, **extra).SerializeToString())
    result = _scan(path)
    assert result.formats == ("onnx-tensor",)
    assert rule in {f.rule_id for f in result.findings}, result.findings


def test_external_tensor_inside_a_sequence(tmp_path: Path) -> None:
    sequence = onnx.SequenceProto(elem_type=onnx.SequenceProto.TENSOR)
    sequence.tensor_values.append(_tensor_with_external("../../etc/passwd"))
    path = tmp_path / "output_0.pb"
    path.write_bytes(sequence.SerializeToString())
    result = _scan(path)
    assert result.formats == ("onnx-tensor",)
    assert "MG430" in {f.rule_id for f in result.findings}


@pytest.mark.parametrize(
    "data",
    [
        # dims say 4 floats, raw_data holds 3
        b"\x08\x04\x10\x01J\x0c" + bytes(12),
        b"\x08\x02\x10\x63J\x08" + bytes(8),  # unknown data_type 99
        b"\x08\x02\x10\x01J\x08" + bytes(8) + b"\x78\x01",  # field 15 is not TensorProto's
    ],
)
def test_incoherent_tensor_is_not_onnx_tensor(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input_0.pb"
    path.write_bytes(data)
    assert _scan(path).formats != ("onnx-tensor",)


def test_onnx_model_is_not_a_value() -> None:
    with pytest.raises(FormatError):
        read_onnx_value(BytesBlob(_linear().SerializeToString()))


_VALUE_SEEDS = [make() for make in _VALUES.values()]


def mutated_value() -> st.SearchStrategy[bytes]:
    return mutate.mutated(_VALUE_SEEDS, edits=(1, 3))


@given(data=mutated_value())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_value_parser_fuzz(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        read_onnx_value(BytesBlob(data))


@given(data=mutated_value())
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_value_scan_fuzz_no_internal_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input_0.pb"
    path.write_bytes(data)
    result = modelguard.scan(path).files[0]
    assert not any("internal error" in i.reason for i in result.incomplete), result.incomplete
