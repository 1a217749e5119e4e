"""TensorFlow SavedModel / GraphDef analysis: MG460, MG461, saver awareness, sniffing, fuzz.

TensorFlow is not installed: fixtures are built with the small protobuf wire encoder below,
following the field numbers of saved_model.proto, meta_graph.proto, graph.proto,
function.proto, node_def.proto and attr_value.proto.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelguard
from factories import mutate
from modelguard.analysers.protobuf import analyse_protobuf, sniff_protobuf
from modelguard.errors import FormatError
from modelguard.filescan import FileScan
from modelguard.formats.blob import BytesBlob
from modelguard.formats.protowire import Budget, Reader
from modelguard.formats.tfgraph import read_graphdef, read_meta_graph, read_saved_model
from modelguard.policy import Policy
from modelguard.results import Location, Severity

# -- a protobuf wire encoder ---------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fv(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def fb(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def attr(key: str, value: bytes) -> bytes:
    return fb(5, fb(1, key) + fb(2, value))


def node(name: str, op: str, *inputs: str, attrs: bytes = b"") -> bytes:
    body = fb(1, name) + fb(2, op) + b"".join(fb(3, i) for i in inputs)
    # dtype attr (AttrValue.type = DT_FLOAT) as TensorFlow writes on almost every node
    return body + attr("T", fv(6, 1)) + attrs


def function(name: str, *nodes: bytes) -> bytes:
    signature = fb(1, name) + fb(2, fb(1, "x") + fv(3, 1))
    return fb(1, signature) + b"".join(fb(3, n) for n in nodes)


def graphdef(nodes: list[bytes], functions: tuple[bytes, ...] | list[bytes] = ()) -> bytes:
    body = b"".join(fb(1, n) for n in nodes)
    if functions:
        body += fb(2, b"".join(fb(1, f) for f in functions))
    return body + fb(4, fv(1, 1645))  # versions.producer


def meta_graph(graph: bytes, version: str = "2.15.0") -> bytes:
    # MetaInfoDef with a stripped op list large enough to be binary, tags and version.
    op_list = b"".join(fb(1, fb(1, op) + fb(2, fb(1, "x") + fv(3, 1))) for op in _ORDINARY)
    meta_info = fb(2, op_list) + fb(4, "serve") + fb(5, version)
    return fb(1, meta_info) + fb(2, graph)


def saved_model(graph: bytes) -> bytes:
    return fv(1, 1) + fb(2, meta_graph(graph))


_ORDINARY = ("MatMul", "Relu", "VarHandleOp", "ReadVariableOp", "StatefulPartitionedCall")


def save_fn(suffix: int = 456) -> bytes:
    return function(
        f"__inference__traced_save_{suffix}",
        node("StaticRegexFullMatch", "StaticRegexFullMatch", "file_prefix"),
        node("Const", "Const"),
        node("Select", "Select", "StaticRegexFullMatch", "Const"),
        node("StringJoin", "StringJoin", "file_prefix", "Select"),
        node("ShardedFilename", "ShardedFilename", "StringJoin"),
        node("SaveV2", "SaveV2", "ShardedFilename"),
        node("MergeV2Checkpoints", "MergeV2Checkpoints", "ShardedFilename"),
        node("Identity", "Identity", "file_prefix"),
        node("NoOp", "NoOp"),
    )


def restore_fn(suffix: int = 789) -> bytes:
    return function(
        f"__inference__traced_restore_{suffix}",
        node("RestoreV2", "RestoreV2", "file_prefix"),
        node("AssignVariableOp", "AssignVariableOp", "RestoreV2"),
        node("NoOp", "NoOp"),
    )


def call_fn(*extra: bytes) -> bytes:
    return function(
        "__inference_call_123",
        node("MatMul/ReadVariableOp", "ReadVariableOp", "resource"),
        node("MatMul", "MatMul", "x", "MatMul/ReadVariableOp"),
        node("Relu", "Relu", "MatMul"),
        *extra,
    )


def top_nodes(*extra: bytes) -> list[bytes]:
    return [
        node("dense/kernel", "VarHandleOp", attrs=attr("shared_name", fb(2, "dense/kernel"))),
        node("dense/kernel/Read", "ReadVariableOp", "dense/kernel"),
        node("serving_default_x", "Placeholder"),
        node("StatefulPartitionedCall", "StatefulPartitionedCall", "serving_default_x"),
        node("saver_filename", "Placeholder"),
        node("StatefulPartitionedCall_1", "StatefulPartitionedCall", "saver_filename"),
        node("StatefulPartitionedCall_2", "StatefulPartitionedCall", "saver_filename"),
        *extra,
    ]


def benign_saved_model(
    extra_top: tuple[bytes, ...] = (), extra_fn: tuple[bytes, ...] = ()
) -> bytes:
    return saved_model(
        graphdef(list(top_nodes(*extra_top)), [call_fn(*extra_fn), save_fn(), restore_fn()])
    )


def tf1_graphdef(*extra: bytes) -> bytes:
    # A long input list makes the first node's length a two-byte varint: real GraphDefs are
    # binary from their first bytes (see the text-dispatch note in the report).
    first = node("x", "Placeholder", *[f"^dep_{i}" for i in range(20)])
    return graphdef(
        [
            first,
            node("w", "VariableV2"),
            node("MatMul", "MatMul", "x", "w"),
            node("save/Const", "Const"),
            node("save/SaveV2", "SaveV2", "save/Const"),
            node("save/RestoreV2", "RestoreV2", "save/Const"),
            node("save_1/ShardedFilename", "ShardedFilename", "save/Const"),
            node("save_1/MergeV2Checkpoints", "MergeV2Checkpoints", "save/Const"),
            *extra,
        ]
    )


def scan_bytes(tmp_path: Path, data: bytes, name: str = "saved_model.pb") -> modelguard.FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    report = modelguard.scan(path)
    assert len(report.files) == 1
    return report.files[0]


def rules(result: modelguard.FileResult) -> set[str]:
    return {f.rule_id for f in result.findings}


# -- benign --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (benign_saved_model(), "tf-savedmodel"),
        (tf1_graphdef(), "tf-graphdef"),
        (meta_graph(tf1_graphdef(), "1.15.0"), "tf-metagraph"),
        (
            saved_model(graphdef(list(top_nodes()), [save_fn(1), restore_fn(2), save_fn(99)])),
            "tf-savedmodel",
        ),
    ],
    ids=["tf2-savedmodel", "tf1-graphdef-saver", "tf1-meta-graph", "several-savers"],
)
def test_benign_graph_scans_clean(tmp_path: Path, data: bytes, fmt: str) -> None:
    result = scan_bytes(tmp_path, data)
    assert fmt in result.formats
    assert result.complete, result.incomplete
    assert not [f for f in result.findings if f.severity >= Severity.LOW], result.findings


# -- malicious -----------------------------------------------------------------------------

_READ = node("ReadFile", "ReadFile", "filename")
_WRITE = node("WriteFile", "WriteFile", "filename", "contents")


@pytest.mark.parametrize(
    ("data", "rule", "op"),
    [
        (benign_saved_model(extra_fn=(_READ,)), "MG460", "ReadFile"),
        (benign_saved_model(extra_fn=(_WRITE,)), "MG460", "WriteFile"),
        (benign_saved_model(extra_top=(_READ,)), "MG460", "ReadFile"),
        (benign_saved_model(extra_top=(_WRITE,)), "MG460", "WriteFile"),
        (benign_saved_model(extra_fn=(node("PyFunc", "PyFunc", "x"),)), "MG460", "PyFunc"),
        (
            benign_saved_model(extra_top=(node("EagerPyFunc", "EagerPyFunc", "x"),)),
            "MG460",
            "EagerPyFunc",
        ),
        (
            benign_saved_model(extra_fn=(node("MatchingFiles", "MatchingFiles", "p"),)),
            "MG460",
            "MatchingFiles",
        ),
        (
            saved_model(
                graphdef(
                    list(top_nodes()),
                    [call_fn(), save_fn(), restore_fn(), function("__inference_x_1", _WRITE)],
                )
            ),
            "MG460",
            "WriteFile",
        ),
        # WriteFile hidden inside the saver function is still reported.
        (
            saved_model(
                graphdef(list(top_nodes()), [function("__inference__traced_save_7", _WRITE)])
            ),
            "MG460",
            "WriteFile",
        ),
        # Checkpoint ops outside the saver context write files at computed paths.
        (benign_saved_model(extra_fn=(node("SaveV2", "SaveV2", "p"),)), "MG460", "SaveV2"),
        (tf1_graphdef(node("evil/RestoreV2", "RestoreV2", "p")), "MG460", "RestoreV2"),
        (
            benign_saved_model(extra_fn=(node("TFRecordDataset", "TFRecordDataset", "f"),)),
            "MG461",
            "TFRecordDataset",
        ),
        (
            benign_saved_model(extra_top=(node("TextLineDatasetV2", "TextLineDatasetV2", "f"),)),
            "MG461",
            "TextLineDatasetV2",
        ),
        (
            benign_saved_model(
                extra_fn=(
                    node(
                        "PrintV2",
                        "PrintV2",
                        "s",
                        attrs=attr("output_stream", fb(2, "file:///tmp/leak.txt")),
                    ),
                )
            ),
            "MG461",
            "PrintV2",
        ),
        (tf1_graphdef(_READ), "MG460", "ReadFile"),
        (meta_graph(tf1_graphdef(_WRITE), "1.15.0"), "MG460", "WriteFile"),
        (graphdef([node("x", "Placeholder", *["^d"] * 70), _WRITE]), "MG460", "WriteFile"),
    ],
    ids=[
        "readfile-in-function",
        "writefile-in-function",
        "readfile-top-level",
        "writefile-top-level",
        "pyfunc",
        "eagerpyfunc",
        "matchingfiles",
        "writefile-other-function",
        "writefile-in-saver-function",
        "savev2-outside-saver",
        "restorev2-outside-save-scope",
        "tfrecorddataset",
        "textlinedataset",
        "printv2-to-file",
        "graphdef-readfile",
        "metagraph-writefile",
        "graphdef-only-nodes",
    ],
)
def test_malicious_graph_flagged(tmp_path: Path, data: bytes, rule: str, op: str) -> None:
    result = scan_bytes(tmp_path, data)
    assert result.complete, result.incomplete
    hits = [f for f in result.findings if f.rule_id == rule and f.evidence_map["op"] == op]
    assert hits, result.findings
    expected = Severity.CRITICAL if rule == "MG460" else Severity.MEDIUM
    assert hits[0].severity is expected


# -- recognition independent of field order and of the head ---------------------------------
# Protobuf fixes neither field order nor presence, and TensorFlow bounds no name length:
# each of these once scanned as "unknown format".

_PYFUNC = node("PyFunc", "PyFunc", "x")
_DEBUG_FIRST = fb(6, fb(1, "orig/" * 1000)) + node("first", "Const")


@pytest.mark.parametrize(
    ("data", "fmt", "op"),
    [
        (
            fb(4, fv(1, 1645)) + b"".join(fb(1, n) for n in (node("a", "Const"), _READ)),
            "tf-graphdef",
            "ReadFile",
        ),
        (graphdef([node("n" * 1500, "Const"), _READ]), "tf-graphdef", "ReadFile"),
        (
            fb(2, fb(1, function("__inference_" + "f" * 300, _PYFUNC))) + fb(4, fv(1, 1)),
            "tf-graphdef",
            "PyFunc",
        ),
        (graphdef([_DEBUG_FIRST, _READ]), "tf-graphdef", "ReadFile"),
        (graphdef([_READ]), "tf-graphdef", "ReadFile"),
        (graphdef([node("c", "Const" * 300), _READ]), "tf-graphdef", "ReadFile"),
        (fb(2, meta_graph(graphdef(list(top_nodes(_READ))))), "tf-savedmodel", "ReadFile"),
        (
            fb(2, meta_graph(graphdef(list(top_nodes(_READ))))) + fv(1, 1),
            "tf-savedmodel",
            "ReadFile",
        ),
        (
            fb(2, fb(2, graphdef(list(top_nodes(_READ)))) + fb(1, fb(5, "2.15.0"))) + fv(1, 1),
            "tf-savedmodel",
            "ReadFile",
        ),
        (fb(2, graphdef([_WRITE])) + fb(1, fb(5, "1.15.0")), "tf-metagraph", "WriteFile"),
    ],
    ids=[
        "graphdef-versions-first",
        "graphdef-1500-char-node-name",
        "graphdef-300-char-function-name",
        "graphdef-5kb-debug-info-first",
        "graphdef-single-node",
        "graphdef-1500-char-op",
        "savedmodel-no-schema-version",
        "savedmodel-meta-graphs-first",
        "savedmodel-graph-def-first",
        "metagraph-graph-def-first",
    ],
)
def test_recognised_regardless_of_order_and_length(
    tmp_path: Path, data: bytes, fmt: str, op: str
) -> None:
    result = scan_bytes(tmp_path, data, "model.pb")
    assert result.formats == (fmt,), (result.formats, result.incomplete)
    assert result.complete, result.incomplete
    assert any(f.rule_id == "MG460" and f.evidence_map["op"] == op for f in result.findings)


def test_keras_metadata_identifier_after_long_metadata(tmp_path: Path) -> None:
    lam = _LAMBDA[:-1] + ', "pad": "' + "p" * 3000 + '"}'
    body = fb(5, lam) + fb(4, "_tf_keras_layer") + fb(3, "root.layer-0") + fb(2, "x")
    data = fb(1, body)
    result = scan_bytes(tmp_path, data, "keras_metadata.pb")
    assert result.formats == ("tf-keras-metadata",)
    assert "MG440" in rules(result), result.findings


@pytest.mark.parametrize(
    "data",
    [
        graphdef([node("a", "Const"), node("b", "Re\x00adFile"), _READ]),
        graphdef([node("a", "Const"), node("b", "")]),
        tf1_graphdef(_READ)[:-3],
        benign_saved_model(extra_fn=(_READ,))[:700],
    ],
    ids=["non-identifier-op", "empty-op", "cut-mid-field", "savedmodel-cut-mid-field"],
)
def test_clearly_tensorflow_but_unparsable_is_mg002(tmp_path: Path, data: bytes) -> None:
    result = scan_bytes(tmp_path, data, "model.pb")
    assert "unknown" not in result.formats, result.formats
    assert any(i.rule_id == "MG002" for i in result.incomplete), result.incomplete


def test_every_mid_field_cut_is_mg002(tmp_path: Path) -> None:
    data = tf1_graphdef(_READ)
    ends, pos = set(), 0
    for f in Reader(BytesBlob(data)).fields(0, len(data)):
        ends.add(f.end)
        pos = f.end
    assert pos == len(data)
    for cut in range(32, len(data), 7):
        result = scan_bytes(tmp_path, data[:cut], "cut.pb")
        if cut in ends:
            assert result.complete
        else:
            assert any(i.rule_id == "MG002" for i in result.incomplete), (cut, result.formats)


def test_finding_names_the_function(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, benign_saved_model(extra_fn=(_READ, _READ)))
    (hit,) = [f for f in result.findings if f.rule_id == "MG460"]
    assert hit.evidence_map["function"] == "__inference_call_123"
    assert hit.evidence_map["nodes"] == "2"


@pytest.mark.parametrize("stream", ["stderr", "stdout", "log(info)", "log(warning)", "log(error)"])
def test_printv2_to_standard_streams_is_clean(tmp_path: Path, stream: str) -> None:
    printer = node("PrintV2", "PrintV2", "s", attrs=attr("output_stream", fb(2, stream)))
    result = scan_bytes(tmp_path, benign_saved_model(extra_fn=(printer,)))
    assert not rules(result), result.findings


def test_library_only_graphdef_is_recognised() -> None:
    data = fb(2, fb(1, function("__inference_f_1", _READ))) + fb(4, fv(1, 1))
    assert sniff_protobuf(data[:512], len(data)) == "tf-graphdef"
    graph = read_graphdef(BytesBlob(data))
    assert [(n.op, n.function) for n in graph.nodes] == [("ReadFile", "__inference_f_1")]


def test_small_text_like_graphdef_analysed_directly() -> None:
    # A tiny GraphDef can be valid UTF-8 without NUL; the analyser still handles it when
    # handed the bytes (dispatch of text-looking content is filescan's choice).
    data = graphdef([node("a", "Const"), _WRITE])
    scan = FileScan("g.pb", Policy())
    assert analyse_protobuf(scan, BytesBlob(data), data[:512], Location("g.pb"), 0) == "tf-graphdef"
    assert {f.rule_id for f in scan.coll.findings} == {"MG460"}


# -- malformed, limits ---------------------------------------------------------------------


def test_truncated_savedmodel_is_incomplete(tmp_path: Path) -> None:
    data = benign_saved_model()
    result = scan_bytes(tmp_path, data[: len(data) // 2])
    assert "tf-savedmodel" in result.formats
    assert any(i.rule_id == "MG002" for i in result.incomplete)


def test_field_budget_is_mg003(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(Budget.__init__, "__defaults__", (10,))
    result = scan_bytes(tmp_path, benign_saved_model())
    assert any(i.rule_id == "MG003" for i in result.incomplete)


# -- random bytes and fuzzing --------------------------------------------------------------


def test_random_bytes_are_rejected_quickly() -> None:
    rng = random.Random(1234)
    policy = Policy()
    recognised = 0
    for i in range(200):
        data = rng.randbytes(4096)
        scan = FileScan(f"r{i}", policy)
        fmt = analyse_protobuf(scan, BytesBlob(data), data[:512], Location(f"r{i}"), 0)
        assert fmt in (
            None,
            "onnx",
            "tf-savedmodel",
            "tf-metagraph",
            "tf-graphdef",
            "tf-keras-metadata",
        )
        recognised += fmt is not None
        assert not any("internal error" in x.reason for x in scan.coll.incomplete)
    assert recognised <= 2


def test_random_bytes_after_a_plausible_field_are_rejected() -> None:
    # The first 8 bytes are well-formed fields of several of the schemas; the rest is noise.
    rng = random.Random(99)
    policy = Policy()
    recognised = 0
    for i in range(300):
        prefix = fv(1, 1) + fb(2, rng.randbytes(4)) if i % 2 else fb(1, fb(2, b"Op"))[:8]
        data = prefix[:8] + rng.randbytes(4088)
        scan = FileScan(f"r{i}", policy)
        fmt = analyse_protobuf(scan, BytesBlob(data), data[:512], Location(f"r{i}"), 0)
        recognised += fmt is not None
        assert not scan.coll.findings
        assert not any("internal error" in x.reason for x in scan.coll.incomplete)
    assert recognised <= 3


@given(data=st.binary(max_size=2048))
@settings(max_examples=300, deadline=None)
def test_protowire_fuzz(data: bytes) -> None:
    reader = Reader(BytesBlob(data))
    try:
        for f in reader.fields(0, len(data)):
            if f.wire == 2:
                reader.payload(f, 1 << 20)
                for _ in reader.fields(f.offset, f.end):
                    pass
    except FormatError:
        pass


def test_protowire_reads_across_window_edges() -> None:
    # Multi-byte tags and values, fields straddling the 64 KiB read window, and the budget
    # counting every field visited (the fast paths of Reader.fields are inlined).
    expected = []
    data = b""
    for i in range(3000):
        number, value = 1 + (i * 7919) % 5000, (i * 104_729) ** 3 % (1 << 63)
        if i % 3:
            payload = bytes([i % 256]) * (i % 97)
            data += fb(number, payload)
            expected.append((number, 2, len(payload)))
        else:
            data += fv(number, value)
            expected.append((number, 0, value))
    data += fb(7, b"z" * 70_000) + fv(300, 1 << 40) + varint(9 << 3 | 5) + b"\x01\x02\x03\x04"
    expected += [(7, 2, 70_000), (300, 0, 1 << 40), (9, 5, 0x04030201)]
    budget = Budget(len(expected))
    got = [
        (f.number, f.wire, f.value) for f in Reader(BytesBlob(data), budget).fields(0, len(data))
    ]
    assert got == expected
    assert budget.left == 0


_SEEDS = [
    benign_saved_model(extra_fn=(_READ,)),
    tf1_graphdef(_WRITE),
    meta_graph(tf1_graphdef(_READ)),
]


def mutated() -> st.SearchStrategy[bytes]:
    return mutate.mutated(_SEEDS)


@given(data=mutated())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_tfgraph_parser_fuzz(data: bytes) -> None:
    for reader in (read_saved_model, read_graphdef, read_meta_graph):
        with contextlib.suppress(FormatError):
            reader(BytesBlob(data), {"PrintV2": frozenset({"output_stream"})})


@given(data=mutated())
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_tf_scan_fuzz_no_internal_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / f"m{os.getpid()}.pb"
    path.write_bytes(data)
    result = modelguard.scan(path).files[0]
    assert not any("internal error" in i.reason for i in result.incomplete), result.incomplete


# -- keras_metadata.pb ---------------------------------------------------------------------


def keras_metadata(*objects: tuple[str, str, str]) -> bytes:
    out = b""
    for i, (path, identifier, metadata) in enumerate(objects):
        body = (fv(2, i) if i else b"") + fb(3, path) + fb(4, identifier) + fb(5, metadata)
        out += fb(1, body + fb(6, fv(1, 2)))
    return out


_DENSE = (
    '{"name": "dense", "trainable": true, "expects_training_arg": false, "dtype": "float32", '
    '"batch_input_shape": null, "stateful": false, "must_restore_from_config": false, '
    '"class_name": "Dense", "config": {"name": "dense", "trainable": true, "dtype": "float32", '
    '"units": 4, "activation": "relu", "use_bias": true}, "shared_object_id": 1}'
)
_LAMBDA = (
    '{"name": "lambda", "trainable": true, "class_name": "Lambda", "config": {"name": "lambda", '
    '"function": ["4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMEAAAAfABTAKkBTqkAKQHaAXhyAQAAAHIBAAAA", '
    'null, null], "function_type": "lambda", "module": "__main__", "output_shape": null, '
    '"output_shape_type": "raw", "output_shape_module": null, "arguments": {}}}'
)
_MODEL = (
    '{"name": "model", "trainable": true, "class_name": "Sequential", "config": {"name": "model"'
    ', "layers": []}, "is_graph_network": true, "keras_version": "2.15.0", "backend": '
    '"tensorflow"}'
)


def test_keras_metadata_benign_is_clean(tmp_path: Path) -> None:
    data = keras_metadata(
        ("root", "_tf_keras_sequential", _MODEL), ("root.layer-0", "_tf_keras_layer", _DENSE)
    )
    assert sniff_protobuf(data[:512], len(data)) == "tf-keras-metadata"
    result = scan_bytes(tmp_path, data, "keras_metadata.pb")
    assert "tf-keras-metadata" in result.formats
    assert result.complete, result.incomplete
    assert not [f for f in result.findings if f.severity >= Severity.LOW], result.findings


def test_keras_metadata_lambda_is_flagged(tmp_path: Path) -> None:
    data = keras_metadata(
        ("root", "_tf_keras_sequential", _MODEL), ("root.layer-0", "_tf_keras_layer", _LAMBDA)
    )
    result = scan_bytes(tmp_path, data, "keras_metadata.pb")
    assert "MG440" in rules(result), result.findings


def test_keras_metadata_bad_json_is_incomplete(tmp_path: Path) -> None:
    data = keras_metadata(("root", "_tf_keras_layer", "{" + "x" * 300))
    result = scan_bytes(tmp_path, data, "keras_metadata.pb")
    assert any(i.rule_id == "MG002" for i in result.incomplete)


# -- dispatch of text-looking heads --------------------------------------------------------


def test_text_looking_graphdef_is_analysed(tmp_path: Path) -> None:
    data = graphdef([node(f"c{i}", "Const") for i in range(40)] + [_READ])
    assert sniff_protobuf(data[:512], len(data)) == "tf-graphdef"
    result = scan_bytes(tmp_path, data, "frozen.pb")
    assert "MG460" in rules(result)
