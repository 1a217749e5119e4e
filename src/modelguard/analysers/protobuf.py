"""Protobuf-based model formats: which one a binary blob is, and its analysis.

ONNX models, TensorFlow SavedModels (`saved_model.pb`), TF1 MetaGraphDefs (`.meta`), bare
TensorFlow GraphDefs (frozen `.pb` graphs) and Keras' `keras_metadata.pb` are all protobuf
messages with no magic number. Protobuf fixes neither the order of fields nor their
presence (proto3 omits zero values), nor does TensorFlow bound the length of names, so the
recognition does not rely on any of that. It runs in two steps:

1. Shape (cheap, the head only): for each message type, every field read from the head -
   top level and, recursively, inside the submessages that start in the head - must have a
   field number and wire type that message type declares, and lengths must fit the file.
   The number of tags that passed is the sniff's *score*; random binary fails within a few
   tags.
2. Confirmation: the full bounded structural parse of each type, those whose shape
   passed first, best score first (a type whose shape failed is still tried: protobuf
   parsers keep a field of an unexpected number or wire type as an unknown field). The
   content is that format when the parse succeeds and yields what the format is made of:
   ONNX graph nodes or opset imports; TensorFlow graphs at least one node, every op an
   identifier; keras_metadata.pb an object with a ``_tf_keras`` identifier. The parse that
   confirms is the one judged (the file is not read twice).
3. Last, a serialized ONNX value - onnx test data (`test_data_set_0/input_0.pb`): a
   TensorProto, SequenceProto, MapProto or OptionalProto, reported as "onnx-tensor". It is
   recognised by a strict parse only (every field one the message declares, with its wire
   type; a known data type; as many elements as the dims say), tried after the richer
   formats so that a malformed graph is not taken for a tensor.

When no type is confirmed but the head is confidently one of them (at least
`_CONFIDENT` tags passed, even if a later one failed), or the file is named like one of them
(`model.onnx`, `saved_model.pb`, `*.pb`, `*.meta`), and the head is not text, the file is
reported as malformed (MG002), never as "unknown format".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.protowire import Budget
from modelguard.formats.sniff import looks_like_text

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = ["analyse_protobuf", "sniff_protobuf", "sniff_scores"]

_V, _I64, _L, _I32 = 0, 1, 2, 5
# A schema: field number -> (allowed wire types, the schema of its payload or "" if none).
_Schema = dict[int, tuple[tuple[int, ...], str]]
_L_ = (_L,)
_V_ = (_V,)
# Field numbers from tensorflow/core/framework (graph, node_def, function, op_def,
# attr_value, versions), tensorflow/core/protobuf (saved_model, meta_graph), Keras'
# saved_metadata.proto and onnx/onnx.proto. Repeated scalars may be packed (LEN).
_SCHEMAS: dict[str, _Schema] = {
    "SavedModel": {1: (_V_, ""), 2: (_L_, "MetaGraphDef")},
    "MetaGraphDef": {
        1: (_L_, "MetaInfoDef"),
        2: (_L_, "GraphDef"),
        3: (_L_, ""),
        4: (_L_, "MapEntry"),
        5: (_L_, "MapEntry"),
        6: (_L_, ""),
        7: (_L_, ""),
    },
    "MetaInfoDef": {
        1: (_L_, ""),
        2: (_L_, "OpList"),
        3: (_L_, ""),
        4: (_L_, ""),
        5: (_L_, ""),
        6: (_L_, ""),
        7: (_V_, ""),
        8: (_L_, "MapEntry"),
    },
    "OpList": {1: (_L_, "OpDef")},
    "OpDef": {
        1: (_L_, ""),
        2: (_L_, ""),
        3: (_L_, ""),
        4: (_L_, ""),
        5: (_L_, ""),
        6: (_L_, ""),
        8: (_L_, ""),
        16: (_V_, ""),
        17: (_V_, ""),
        18: (_V_, ""),
        19: (_V_, ""),
        20: (_L_, ""),
        21: (_V_, ""),
    },
    "GraphDef": {
        1: (_L_, "NodeDef"),
        2: (_L_, "FunctionDefLibrary"),
        3: (_V_, ""),
        4: (_L_, "VersionDef"),
        5: (_L_, ""),
    },
    "VersionDef": {1: (_V_, ""), 2: (_V_, ""), 3: ((_V, _L), "")},
    "NodeDef": {
        1: (_L_, ""),
        2: (_L_, ""),
        3: (_L_, ""),
        4: (_L_, ""),
        5: (_L_, "AttrEntry"),
        6: (_L_, "NodeDebugInfo"),
        7: (_L_, ""),
    },
    "NodeDebugInfo": {1: (_L_, ""), 2: (_L_, "")},
    "AttrEntry": {1: (_L_, ""), 2: (_L_, "AttrValue")},
    "AttrValue": {
        1: (_L_, ""),
        2: (_L_, ""),
        3: (_V_, ""),
        4: ((_I32,), ""),
        5: (_V_, ""),
        6: (_V_, ""),
        7: (_L_, ""),
        8: (_L_, ""),
        9: (_L_, ""),
        10: (_L_, ""),
    },
    "MapEntry": {1: ((_V, _L), ""), 2: ((_V, _L), "")},
    "FunctionDefLibrary": {1: (_L_, "FunctionDef"), 2: (_L_, ""), 3: (_L_, "")},
    "FunctionDef": {
        1: (_L_, "OpDef"),
        3: (_L_, "NodeDef"),
        4: (_L_, "MapEntry"),
        5: (_L_, "AttrEntry"),
        6: (_L_, "MapEntry"),
        7: (_L_, ""),
        8: (_L_, ""),
    },
    "SavedMetadata": {1: (_L_, "SavedObject")},
    "SavedObject": {2: ((_V, _L), ""), 3: (_L_, ""), 4: (_L_, ""), 5: (_L_, ""), 6: (_L_, "")},
    "ModelProto": {
        1: (_V_, ""),
        2: (_L_, ""),
        3: (_L_, ""),
        4: (_L_, ""),
        5: (_V_, ""),
        6: (_L_, ""),
        7: (_L_, "GraphProto"),
        8: (_L_, "OperatorSetId"),
        14: (_L_, ""),
        20: (_L_, ""),
        25: (_L_, ""),
        26: (_L_, ""),
    },
    "GraphProto": {
        1: (_L_, "NodeProto"),
        2: (_L_, ""),
        5: (_L_, ""),
        10: (_L_, ""),
        11: (_L_, ""),
        12: (_L_, ""),
        13: (_L_, ""),
        14: (_L_, ""),
        15: (_L_, ""),
        16: (_L_, ""),
    },
    "NodeProto": {n: (_L_, "") for n in range(1, 11)},
    "OperatorSetId": {1: (_L_, ""), 2: (_V_, "")},
    # onnx TensorProto, SequenceProto, MapProto (test data): only sniffed, for heads that look
    # like text (a string tensor has no NUL byte).
    "TensorProto": {
        1: ((_V, _L), ""),
        2: (_V_, ""),
        3: (_L_, ""),
        4: ((_I32, _L), ""),
        5: ((_V, _L), ""),
        6: (_L_, ""),
        7: ((_V, _L), ""),
        8: (_L_, ""),
        9: (_L_, ""),
        10: ((_I64, _L), ""),
        11: ((_V, _L), ""),
        12: (_L_, ""),
        13: (_L_, ""),
        14: (_V_, ""),
        16: (_L_, ""),
    },
    # SequenceProto and OptionalProto share their field numbers and types.
    "SequenceProto": {
        1: (_L_, ""),
        2: (_V_, ""),
        3: (_L_, "TensorProto"),
        4: (_L_, ""),
        5: (_L_, "SequenceProto"),
        6: (_L_, "MapProto"),
        7: (_L_, "SequenceProto"),
    },
    "MapProto": {
        1: (_L_, ""),
        2: (_V_, ""),
        3: ((_V, _L), ""),
        4: (_L_, ""),
        5: (_L_, "SequenceProto"),
    },
}
# A serialized ONNX value (TensorProto, SequenceProto, MapProto, OptionalProto: onnx test
# data). Recognised by its strict parse alone, after every other format.
_VALUE = "onnx-tensor"
# Tags a text-looking head must pass as a TensorProto to be parsed as one (a string
# tensor: dims, data_type, one string); a file wholly in the head needs one (a scalar
# bool is 5 bytes). Every value needs its data_type/elem_type tag, byte 0x10, which text
# does not contain, so text sniffed this way still fails the parse and stays text.
_VALUE_SNIFF = 3
# Format -> its top-level message, in the order ties are broken.
_FORMATS = (
    ("tf-savedmodel", "SavedModel"),
    ("onnx", "ModelProto"),
    ("tf-keras-metadata", "SavedMetadata"),
    ("tf-metagraph", "MetaGraphDef"),
    ("tf-graphdef", "GraphDef"),
)
# Tags that must pass before a failing head is taken for a malformed model (MG002) rather
# than unknown content: a random byte passes as a tag about once in 30 per message type,
# so five in a row by chance is rare even after a few well-formed bytes.
_CONFIDENT = 5
_MAX_TAGS = 256
_MAX_DEPTH = 8
_OP = re.compile(r"[A-Za-z_][A-Za-z0-9_.>/\-]*")


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for i in range(10):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    return None


class _Shape:
    """Checks the fields of a head against a schema, counting the tags that pass."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.score = 0

    def walk(self, schema: _Schema, start: int, end: int, depth: int) -> bool:
        """Walk the message in `[start, end)` (cut at the head); False on a violation."""
        head = self.head
        pos = start
        stop = min(end, len(head))
        while pos < stop:
            if self.score >= _MAX_TAGS:
                return True
            tag = _varint(head, pos)
            if tag is None:
                return len(head) - pos < 10  # cut by the head
            key, pos = tag
            allowed = schema.get(key >> 3)
            wire = key & 7
            if allowed is None or wire not in allowed[0]:
                return False
            if wire == _V:
                val = _varint(head, pos)
                if val is None:
                    return len(head) - pos < 10
                pos = val[1]
            elif wire == _L:
                val = _varint(head, pos)
                if val is None:
                    return len(head) - pos < 10
                length, pos = val
                self.score += 1
                sub = allowed[1]
                # A payload running past its message or the file (a truncated file) still
                # has its head checked, so the format is known when reporting it malformed.
                fits = length <= end - pos
                if (
                    sub
                    and depth < _MAX_DEPTH
                    and not self.walk(_SCHEMAS[sub], pos, min(pos + length, end), depth + 1)
                ):
                    return False
                if not fits:
                    return False
                pos += length
                continue
            else:
                pos += 8 if wire == _I64 else 4
                if pos > end:
                    return False
            self.score += 1
        return True


def sniff_scores(head: bytes, size: int) -> list[tuple[str, int, bool]]:
    """Return (format, score, shape passed) for each protobuf model format, best first.

    The score is the number of tags of the head that passed that format's schema before the
    first violation (if any).
    """
    out: list[tuple[str, int, bool]] = []
    for kind, message in _FORMATS:
        shape = _Shape(head)
        ok = shape.walk(_SCHEMAS[message], 0, size, 0)
        out.append((kind, shape.score, ok))
    # Stable: ties keep the order of _FORMATS.
    return sorted(out, key=lambda item: (not item[2], -item[1]))


def sniff_protobuf(head: bytes, size: int) -> str | None:
    """Return which protobuf model format `head` confidently looks like, or None.

    Only the head's shape is checked (`sniff_scores`): `analyse_protobuf` confirms with a
    full parse.

    Returns:
        "tf-savedmodel", "onnx", "tf-keras-metadata", "tf-metagraph", "tf-graphdef",
        "onnx-tensor", or None.
    """
    if not head:
        return None
    kind, score, ok = sniff_scores(head, size)[0]
    if ok and score >= _CONFIDENT:
        return kind
    for message in ("TensorProto", "SequenceProto", "MapProto"):
        shape = _Shape(head)
        whole = size <= len(head)
        if shape.walk(_SCHEMAS[message], 0, size, 0) and (
            shape.score >= _VALUE_SNIFF or (whole and shape.score)
        ):
            return _VALUE
    return None


# A confirmed parse: a callable that reports the findings.
_Report = Callable[[], None]


def _confirm(scan: FileScan, blob: Blob, loc: Location, kind: str) -> _Report | None:
    """Parse the whole blob as `kind`; return how to report it when it is that format.

    Raises:
        FormatError: the parse failed (LimitExceeded: a limit was reached).
    """
    if kind == "onnx":
        from modelguard.analysers.onnx import report_onnx
        from modelguard.formats.onnx import read_onnx

        model = read_onnx(blob, Budget())
        if model.nodes or model.opset_domains:
            return lambda: report_onnx(scan, model, loc)
        return None
    if kind == "onnx-tensor":
        from modelguard.analysers.onnx import report_external
        from modelguard.formats.onnx import read_onnx_value

        value = read_onnx_value(blob, Budget())
        return lambda: report_external(scan, value.tensors, loc)
    if kind == "tf-keras-metadata":
        from modelguard.analysers.tensorflow import report_keras_metadata
        from modelguard.formats.tfgraph import read_keras_metadata

        objects = read_keras_metadata(blob, scan.limits.max_header_bytes, Budget())
        if any(identifier.startswith("_tf_keras") for identifier, _ in objects):
            return lambda: report_keras_metadata(scan, objects, loc)
        return None
    from modelguard.analysers.tensorflow import read_tf_graph, report_tf_graph

    graph = read_tf_graph(blob, kind, Budget())
    if graph.nodes and all(_OP.fullmatch(n.op) for n in graph.nodes):
        return lambda: report_tf_graph(scan, graph, loc)
    return None


def _malformed(scan: FileScan, kind: str, exc: FormatError | None, loc: Location) -> None:
    if kind == "onnx":
        what = "ONNX model"
    elif kind == "onnx-tensor":
        what = "ONNX tensor"
    elif kind == "tf-keras-metadata":
        what = "keras_metadata.pb"
    else:
        what = (
            "TensorFlow "
            + {
                "tf-savedmodel": "SavedModel",
                "tf-metagraph": "MetaGraphDef",
                "tf-graphdef": "GraphDef",
            }[kind]
        )
    if exc is None:
        scan.incomplete("MG002", f"malformed {what}: not the structure of that format", loc)
    elif isinstance(exc, LimitExceeded):
        scan.incomplete("MG003", f"{what} not fully read: {exc}", loc.at(exc.offset))
    else:
        scan.incomplete("MG002", f"malformed {what}: {exc}", loc.at(exc.offset))


def analyse_protobuf(
    scan: FileScan, blob: Blob, head: bytes, loc: Location, depth: int
) -> str | None:
    """Recognise and analyse an ONNX model or a TensorFlow graph.

    Returns:
        the format ("onnx", "tf-savedmodel", "tf-metagraph", "tf-graphdef",
        "tf-keras-metadata", "onnx-tensor"), or None when the content is none of them (nothing is
        reported then).
    """
    if not head:
        return None
    scores = sniff_scores(head, blob.size)
    errors: dict[str, FormatError] = {}
    for kind, score, _ok in scores:
        # Shapes that failed are still tried (after those that passed): a parser takes a
        # field with an unexpected wire type or number for an unknown field.
        if score == 0:
            continue
        try:
            report = _confirm(scan, blob, loc, kind)
        except FormatError as exc:
            errors[kind] = exc
            continue
        if report is not None:
            report()
            return kind
    # Last, a serialized ONNX value (test data): its strict parse is what recognises it,
    # so it is tried after the richer formats, whatever its head scored.
    try:
        report = _confirm(scan, blob, loc, _VALUE)
    except FormatError as exc:
        if isinstance(exc, LimitExceeded):
            errors[_VALUE] = exc
    else:
        if report is not None:
            report()
            return _VALUE
    # A limit reached while reading (millions of well-formed fields, an oversized string):
    # that format, too big to read entirely, unless another one was confirmed above.
    limited = next((k for k, e in errors.items() if isinstance(e, LimitExceeded)), None)
    if limited is not None:
        _malformed(scan, limited, errors[limited], loc)
        return limited
    if looks_like_text(head):
        return None
    kind, score, _ok = max(scores, key=lambda item: item[1])
    if score < _CONFIDENT:
        # Too little structure to tell by content; a binary file named like one of these
        # formats is still meant as it (a corrupted `model.onnx`), and loaders try it.
        hinted = _name_hint(loc)
        if not hinted:
            return None
        kind = max((item for item in scores if item[0] in hinted), key=lambda item: item[1])[0]
    _malformed(scan, kind, errors.get(kind), loc)
    return kind


_TF_KINDS = ("tf-savedmodel", "tf-metagraph", "tf-graphdef", "tf-keras-metadata")


def _name_hint(loc: Location) -> tuple[str, ...]:
    """Return the formats the file's (or innermost member's) name says it is."""
    name = (loc.members[-1] if loc.members else loc.path).replace("\\", "/").rsplit("/", 1)[-1]
    name = name.lower()
    if name.endswith(".onnx"):
        return ("onnx",)
    if name == "saved_model.pb":
        return ("tf-savedmodel",)
    if name == "keras_metadata.pb":
        return ("tf-keras-metadata",)
    if name.endswith(".meta"):
        return ("tf-metagraph",)
    if name.endswith(".pb"):
        return _TF_KINDS
    return ()
