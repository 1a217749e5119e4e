"""Protobuf-based model formats: which one a binary blob is, and its analysis.

ONNX models, TensorFlow SavedModels (`saved_model.pb`), TF1 MetaGraphDefs (`.meta`), bare
TensorFlow GraphDefs (frozen `.pb` graphs) and Keras' `keras_metadata.pb` are all protobuf
messages with no magic number. They are told apart by the structure of their first fields,
read leniently from the first bytes (the head may cut a field short): random binary fails
these checks within a few bytes.

- SavedModel: field 1 varint (schema version) then field 2, a MetaGraphDef whose first field
  is meta_info_def (1) or graph_def (2). An ONNX ModelProto also starts with field 1 varint
  and may continue with field 2 (producer_name), a short string: it never starts with a tag.
- ONNX: `modelguard.formats.sniff.looks_like_onnx` (ir_version, then ModelProto fields).
- keras_metadata.pb: field 1 (a SavedObject) whose identifier (field 4) starts with
  ``_tf_keras``.
- MetaGraphDef (TF1 `.meta`): field 1 a MetaInfoDef with a stripped op list or a
  tensorflow_version string.
- GraphDef: field 1 a NodeDef with an op name (field 2) that is an identifier, or field 2 a
  function library whose first function's signature has an identifier name.

Once a format is recognised, a parse failure is reported as malformed (MG002), never as
"unknown format".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modelguard.formats.sniff import looks_like_onnx

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = ["analyse_protobuf", "sniff_protobuf"]

_VARINT, _LEN = 0, 2
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_.>/\-]{0,255}")
_VERSION = re.compile(rb"[0-9]{1,3}\.[0-9]{1,3}[0-9A-Za-z.\-+]{0,60}")
_NODE_NAME = re.compile(rb"[A-Za-z0-9_.][A-Za-z0-9_.>/\-]{0,1023}")
# NodeDef fields: name, op, input, device, attr, experimental_debug_info, experimental_type.
_NODEDEF_FIELDS = frozenset(range(1, 8))
_HEAD_FIELDS = 8

# (number, wire type, value or declared length, payload offset)
_HeadField = tuple[int, int, int, int]


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


def _head_fields(data: bytes, start: int, end: int) -> list[_HeadField] | None:
    """Read the first fields of a message from a head that may stop mid-message.

    Returns the fields read (the last LEN field's payload may run past the head, or past
    `end` in a truncated file), or None when the bytes cannot be a message (bad tag or wire
    type).
    """
    out: list[_HeadField] = []
    pos = start
    while pos < min(end, len(data)) and len(out) < _HEAD_FIELDS:
        tag = _varint(data, pos)
        if tag is None:
            return out if len(data) - pos < 10 else None
        key, pos = tag
        number, wire = key >> 3, key & 7
        if number == 0 or wire not in (0, 1, 2, 5):
            return None
        if wire == _VARINT:
            val = _varint(data, pos)
            if val is None:
                return out if len(data) - pos < 10 else None
            out.append((number, wire, val[0], pos))
            pos = val[1]
        elif wire == _LEN:
            val = _varint(data, pos)
            if val is None:
                return out if len(data) - pos < 10 else None
            length, pos = val
            out.append((number, wire, length, pos))
            if length > end - pos:
                break  # a truncated file: reported as malformed once recognised
            pos += length
        else:
            size = 8 if wire == 1 else 4
            if size > end - pos:
                return None
            out.append((number, wire, 0, pos))
            pos += size
    return out


def _payload(head: bytes, field: _HeadField) -> bytes | None:
    """The payload of a LEN field when it lies wholly within the head."""
    _, _, length, offset = field
    if offset + length > len(head):
        return None
    return head[offset : offset + length]


def _is_savedmodel(head: bytes, size: int, top: list[_HeadField]) -> bool:
    if len(top) < 2 or top[0][:2] != (1, _VARINT) or top[1][:2] != (2, _LEN):
        return False
    if not 1 <= top[0][2] <= 16:
        return False
    _, _, length, offset = top[1]
    inner = _head_fields(head, offset, offset + length)
    return bool(inner) and inner is not None and inner[0][:2] in ((1, _LEN), (2, _LEN))


def _is_keras_metadata(head: bytes, top: list[_HeadField]) -> bool:
    if top[0][:2] != (1, _LEN):
        return False
    _, _, length, offset = top[0]
    inner = _head_fields(head, offset, offset + length)
    if not inner:
        return False
    for field in inner:
        if field[0] not in range(2, 7):
            return False
        if field[:2] == (4, _LEN):
            _, _, flen, foff = field
            return head[foff : foff + min(flen, 9)] == b"_tf_keras"[: min(flen, 9)] and flen >= 9
    return False


def _is_graphdef(head: bytes, top: list[_HeadField]) -> bool:
    first = top[0]
    if first[:2] == (1, _LEN):
        inner = _head_fields(head, first[3], first[3] + first[2])
        if not inner or any(f[0] not in _NODEDEF_FIELDS for f in inner):
            return False
        op = next((f for f in inner if f[:2] == (2, _LEN)), None)
        name = next((f for f in inner if f[:2] == (1, _LEN)), None)
        if op is None:
            return False
        op_text = _payload(head, op)
        if op_text is None or not _IDENT.fullmatch(op_text):
            return False
        if name is not None:
            name_text = _payload(head, name)
            if name_text is not None and not _NODE_NAME.fullmatch(name_text):
                return False
        return True
    if first[:2] == (2, _LEN):
        # No nodes: the library comes first. FunctionDef -> signature (OpDef) -> name.
        field = first
        for _ in range(3):
            inner = _head_fields(head, field[3], field[3] + field[2])
            if not inner or inner[0][:2] != (1, _LEN):
                return False
            field = inner[0]
        text = _payload(head, field)
        return text is not None and bool(_IDENT.fullmatch(text))
    return False


def _is_metagraph(head: bytes, top: list[_HeadField]) -> bool:
    # MetaGraphDef.meta_info_def (1): MetaInfoDef fields 1-8, with a stripped op list (2)
    # whose first OpDef has an identifier name, or a tensorflow_version (5) like "1.15.0".
    if top[0][:2] != (1, _LEN):
        return False
    inner = _head_fields(head, top[0][3], top[0][3] + top[0][2])
    if not inner or any(f[0] not in range(1, 9) for f in inner):
        return False
    for field in inner:
        if field[:2] == (5, _LEN):
            text = _payload(head, field)
            if text is not None and _VERSION.fullmatch(text):
                return True
        elif field[:2] == (2, _LEN):
            op = _head_fields(head, field[3], field[3] + field[2])
            if op and op[0][:2] == (1, _LEN):
                name = _head_fields(head, op[0][3], op[0][3] + op[0][2])
                if name and name[0][:2] == (1, _LEN):
                    text = _payload(head, name[0])
                    if text is not None and _IDENT.fullmatch(text):
                        return True
    return False


def sniff_protobuf(head: bytes, size: int) -> str | None:
    """Return which protobuf model format `head` starts like, or None.

    Returns:
        "tf-savedmodel", "onnx", "tf-keras-metadata", "tf-metagraph", "tf-graphdef", or
        None.
    """
    top = _head_fields(head, 0, size)
    if not top:
        return None
    if _is_savedmodel(head, size, top):
        return "tf-savedmodel"
    if looks_like_onnx(head):
        return "onnx"
    if _is_keras_metadata(head, top):
        return "tf-keras-metadata"
    if _is_metagraph(head, top):
        return "tf-metagraph"
    if _is_graphdef(head, top):
        return "tf-graphdef"
    return None


def analyse_protobuf(
    scan: FileScan, blob: Blob, head: bytes, loc: Location, depth: int
) -> str | None:
    """Recognise and analyse an ONNX model or a TensorFlow graph.

    Returns:
        the format ("onnx", "tf-savedmodel", "tf-metagraph", "tf-graphdef",
        "tf-keras-metadata"), or None when the content is none of them (nothing is
        reported then).
    """
    kind = sniff_protobuf(head, blob.size)
    if kind is None:
        return None
    if kind == "onnx":
        from modelguard.analysers.onnx import analyse_onnx

        analyse_onnx(scan, blob, loc)
    elif kind == "tf-keras-metadata":
        from modelguard.analysers.tensorflow import analyse_keras_metadata

        analyse_keras_metadata(scan, blob, loc)
    else:
        from modelguard.analysers.tensorflow import analyse_tf_graph

        analyse_tf_graph(scan, blob, loc, kind)
    return kind
