"""ONNX ModelProto structure, read with the bounded protobuf wire reader.

Only what a loader acts on beyond the arithmetic is collected: operator domains (custom
operators need a host library) and tensors whose data lives in external files (the loader
opens a path taken from the model). Tensors are found everywhere onnx looks for them: graph
initializers and sparse initializers, tensor-valued node attributes, subgraphs of control
flow nodes (If/Loop/Scan bodies), training-info graphs and local functions.

Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto,
AttributeProto, TensorProto, SparseTensorProto, FunctionProto, TrainingInfoProto).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob
from modelguard.formats.protowire import (
    I32,
    I64,
    LEN,
    MAX_FIELDS,
    MAX_NESTING,
    MAX_VARINT_BYTES,
    VARINT,
    Budget,
    Field,
    Reader,
)

__all__ = ["ExternalTensor", "OnnxModel", "OnnxValue", "OpUse", "read_onnx", "read_onnx_value"]

# Names, domains and external-data strings longer than this are not real ONNX.
_MAX_NAME = 64 * 1024

# ModelProto
_M_IR_VERSION, _M_GRAPH, _M_OPSET, _M_TRAINING, _M_FUNCTIONS = 1, 7, 8, 20, 25
# GraphProto
_G_NODE, _G_INIT, _G_SPARSE_INIT = 1, 5, 15
# NodeProto
_N_NAME, _N_OP, _N_ATTR, _N_DOMAIN = 3, 4, 5, 7
# AttributeProto: t, g, tensors, graphs, sparse_tensor, sparse_tensors
_A_T, _A_G, _A_TENSORS, _A_GRAPHS, _A_SPARSE, _A_SPARSES = 5, 6, 10, 11, 22, 23
# TensorProto
_T_NAME, _T_EXTERNAL, _T_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
# SparseTensorProto values, indices; TrainingInfoProto initialization, algorithm
_S_VALUES, _S_INDICES = 1, 2
_TI_INIT, _TI_ALGO = 1, 2
# FunctionProto
_F_NAME, _F_NODE, _F_OPSET, _F_DOMAIN, _F_ATTR_PROTO = 1, 7, 9, 10, 11


@dataclass(frozen=True, slots=True)
class ExternalTensor:
    """A tensor that names external data.

    Attributes:
        name: the tensor's name.
        where: where it was found (``graph``, ``function f``, ``graph/node n/attr a``...).
        entries: the external_data key/value pairs, in file order (duplicates kept).
        external: True if data_location is EXTERNAL (the loader opens the file).
    """

    name: str
    where: str
    entries: tuple[tuple[str, str], ...]
    external: bool


@dataclass(frozen=True, slots=True)
class OpUse:
    """An operator domain used by a node, with one op type as an example."""

    domain: str
    op_type: str
    where: str


@dataclass(frozen=True, slots=True)
class OnnxModel:
    """What was read from a ModelProto.

    Attributes:
        ir_version: the IR version (0 if absent).
        opset_domains: domains of the model's and functions' opset_import entries.
        ops: one `OpUse` per distinct (domain, op_type) used by a node.
        functions: (domain, name) of every local function.
        tensors: every tensor carrying external-data entries or an EXTERNAL location.
        nodes: how many nodes were read.
    """

    ir_version: int
    opset_domains: tuple[str, ...]
    ops: tuple[OpUse, ...]
    functions: tuple[tuple[str, str], ...]
    tensors: tuple[ExternalTensor, ...]
    nodes: int


@dataclass
class _State:
    reader: Reader
    opsets: list[str] = field(default_factory=list)
    ops: dict[tuple[str, str], OpUse] = field(default_factory=dict)
    functions: list[tuple[str, str]] = field(default_factory=list)
    tensors: list[ExternalTensor] = field(default_factory=list)
    nodes: int = 0


def read_onnx(blob: Blob, budget: Budget | None = None) -> OnnxModel:
    """Read an ONNX ModelProto's domains and external-data references.

    Returns:
        the `OnnxModel`; the blob's tensor data is never read.

    Raises:
        FormatError: the bytes are not a well-formed ModelProto.
        LimitExceeded: the field budget or a nesting limit was reached.
    """
    st = _State(Reader(blob, budget))
    ir_version = 0
    for f in st.reader.fields(0, blob.size):
        if f.number == _M_IR_VERSION and f.wire == VARINT:
            ir_version = f.value
        elif f.number == _M_GRAPH and f.wire == LEN:
            _graph(st, f, "graph", 1)
        elif f.number == _M_OPSET and f.wire == LEN:
            _opset(st, f)
        elif f.number == _M_TRAINING and f.wire == LEN:
            for g in st.reader.fields(f.offset, f.end):
                if g.number in (_TI_INIT, _TI_ALGO) and g.wire == LEN:
                    _graph(st, g, "training_info", 2)
        elif f.number == _M_FUNCTIONS and f.wire == LEN:
            _function(st, f)
    return OnnxModel(
        ir_version,
        tuple(st.opsets),
        tuple(st.ops.values()),
        tuple(st.functions),
        tuple(st.tensors),
        st.nodes,
    )


def _text(st: _State, f: Field) -> str:
    if f.wire != LEN:
        raise FormatError(f"string field {f.number} has wire type {f.wire}", f.offset)
    return st.reader.text(f, _MAX_NAME)


def _opset(st: _State, f: Field) -> None:
    domain = ""
    for g in st.reader.fields(f.offset, f.end):
        if g.number == 1:
            domain = _text(st, g)
    st.opsets.append(domain)


def _check_depth(depth: int, offset: int) -> None:
    if depth > MAX_NESTING:
        raise FormatError(f"ONNX graphs nested more than {MAX_NESTING} deep", offset)


def _graph(st: _State, f: Field, where: str, depth: int) -> None:
    _check_depth(depth, f.offset)
    for g in st.reader.fields(f.offset, f.end):
        if g.wire != LEN:
            continue
        if g.number == _G_NODE:
            _node(st, g, where, depth)
        elif g.number == _G_INIT:
            _tensor(st, g, f"{where}/initializer", depth)
        elif g.number == _G_SPARSE_INIT:
            _sparse(st, g, f"{where}/sparse_initializer", depth)


def _node(st: _State, f: Field, where: str, depth: int) -> None:
    st.nodes += 1
    name = op_type = domain = ""
    attrs: list[Field] = []
    for g in st.reader.fields(f.offset, f.end):
        if g.number == _N_NAME:
            name = _text(st, g)
        elif g.number == _N_OP:
            op_type = _text(st, g)
        elif g.number == _N_DOMAIN:
            domain = _text(st, g)
        elif g.number == _N_ATTR and g.wire == LEN:
            attrs.append(g)
    key = (domain, op_type)
    if key not in st.ops:
        st.ops[key] = OpUse(domain, op_type, where)
    label = f"{where}/node {name or op_type}"
    for a in attrs:
        _attribute(st, a, label, depth)


def _attribute(st: _State, f: Field, where: str, depth: int) -> None:
    name = ""
    inner: list[Field] = []
    for g in st.reader.fields(f.offset, f.end):
        if g.number == 1 and g.wire == LEN:
            name = _text(st, g)
        elif g.wire == LEN and g.number in (
            _A_T,
            _A_G,
            _A_TENSORS,
            _A_GRAPHS,
            _A_SPARSE,
            _A_SPARSES,
        ):
            inner.append(g)
    label = f"{where}/attr {name}"
    for g in inner:
        if g.number in (_A_T, _A_TENSORS):
            _tensor(st, g, label, depth)
        elif g.number in (_A_G, _A_GRAPHS):
            _graph(st, g, label, depth + 1)
        else:
            _sparse(st, g, label, depth)


def _sparse(st: _State, f: Field, where: str, depth: int) -> None:
    for g in st.reader.fields(f.offset, f.end):
        if g.number in (_S_VALUES, _S_INDICES) and g.wire == LEN:
            _tensor(st, g, where, depth)


def _tensor(st: _State, f: Field, where: str, depth: int) -> None:
    name = ""
    entries: list[tuple[str, str]] = []
    external = False
    for g in st.reader.fields(f.offset, f.end):
        if g.number == _T_NAME:
            name = _text(st, g)
        elif g.number == _T_LOCATION and g.wire == VARINT:
            external = g.value == _EXTERNAL
        elif g.number == _T_EXTERNAL and g.wire == LEN:
            key = value = ""
            for h in st.reader.fields(g.offset, g.end):
                if h.number == 1:
                    key = _text(st, h)
                elif h.number == 2:
                    value = _text(st, h)
            entries.append((key, value))
    if entries or external:
        st.tensors.append(ExternalTensor(name, where, tuple(entries), external))


def _function(st: _State, f: Field) -> None:
    name = domain = ""
    nodes: list[Field] = []
    attrs: list[Field] = []
    for g in st.reader.fields(f.offset, f.end):
        if g.number == _F_NAME:
            name = _text(st, g)
        elif g.number == _F_DOMAIN:
            domain = _text(st, g)
        elif g.number == _F_OPSET and g.wire == LEN:
            _opset(st, g)
        elif g.number == _F_NODE and g.wire == LEN:
            nodes.append(g)
        elif g.number == _F_ATTR_PROTO and g.wire == LEN:
            attrs.append(g)
    st.functions.append((domain, name))
    where = f"function {domain + '.' if domain else ''}{name}"
    for g in nodes:
        _node(st, g, where, 2)
    for g in attrs:
        _attribute(st, g, where, 2)


# --- Serialized values: onnx test data (`test_data_set_0/input_0.pb`) -----------------
# A TensorProto, SequenceProto, MapProto or OptionalProto written alone (onnx/onnx.proto,
# onnx/onnx-data.proto). They have no magic either, so they are read strictly: every field
# must be one the message declares, with its wire type, and the content must be coherent
# (a known data type; as many elements as the dims say).

# TensorProto fields -> allowed wire types (repeated scalars may be packed).
_TENSOR_WIRES: dict[int, tuple[int, ...]] = {
    1: (VARINT, LEN),  # dims
    2: (VARINT,),  # data_type
    3: (LEN,),  # segment
    4: (I32, LEN),  # float_data
    5: (VARINT, LEN),  # int32_data
    6: (LEN,),  # string_data
    7: (VARINT, LEN),  # int64_data
    8: (LEN,),  # name
    9: (LEN,),  # raw_data
    10: (I64, LEN),  # double_data
    11: (VARINT, LEN),  # uint64_data
    12: (LEN,),  # doc_string
    13: (LEN,),  # external_data
    14: (VARINT,),  # data_location
    16: (LEN,),  # metadata_props
}
_MAX_DATA_TYPE = 28  # TensorProto.DataType, FLOAT6E3M2 (onnx 1.23)
_MAX_RANK = 1024
# Bytes per element in raw_data; 4-bit and 2-bit types are packed, FLOAT6 ones not checked.
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}
_ITEMSIZE.update({14: 8, 15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 24: 1})
_BITS = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2}
_CONTINUATION = bytes(range(0x80, 0x100))
_VALUE_KINDS = 5  # SequenceProto/OptionalProto.DataType: TENSOR .. OPTIONAL


@dataclass(frozen=True, slots=True)
class OnnxValue:
    """A serialized ONNX value (test data) that was read.

    Attributes:
        kind: "tensor", "sequence", "map" or "optional" (the top-level message).
        tensors: every tensor carrying external-data entries or an EXTERNAL location.
        count: how many tensors were read.
    """

    kind: str
    tensors: tuple[ExternalTensor, ...]
    count: int


@dataclass
class _ValueState:
    reader: Reader
    tensors: list[ExternalTensor] = field(default_factory=list)
    count: int = 0


def read_onnx_value(blob: Blob, budget: Budget | None = None) -> OnnxValue:
    """Read a serialized TensorProto, SequenceProto, MapProto or OptionalProto strictly.

    The message types are tried in that order; the first one the bytes are is returned.

    Returns:
        the `OnnxValue`; tensor data is counted, never decoded.

    Raises:
        FormatError: the bytes are none of these messages (the TensorProto error is raised).
        LimitExceeded: the field budget or a nesting limit was reached.
    """
    first: FormatError | None = None
    for kind, parse in (
        ("tensor", _v_tensor),
        ("sequence", _v_sequence),
        ("map", _v_map),
        ("optional", _v_optional),
    ):
        st = _ValueState(Reader(blob, Budget(budget.limit if budget else MAX_FIELDS)))
        try:
            parse(st, 0, blob.size, kind, 0)
        except LimitExceeded:
            raise
        except FormatError as exc:
            first = first or exc
            continue
        return OnnxValue(kind, tuple(st.tensors), st.count)
    assert first is not None
    raise first


def _v_fields(
    st: _ValueState, start: int, end: int, wires: dict[int, tuple[int, ...]]
) -> Iterator[Field]:
    """Yield the fields of a message, each one it declares with its wire type."""
    for f in st.reader.fields(start, end):
        allowed = wires.get(f.number)
        if allowed is None or f.wire not in allowed:
            raise FormatError(f"field {f.number} (wire type {f.wire}) not expected here", f.offset)
        yield f


def _v_varints(st: _ValueState, f: Field) -> int:
    """Return how many varints a packed field holds (its last one must be complete)."""
    count = 0
    pos = f.offset
    last = 0
    while pos < f.end:
        chunk = st.reader.blob.read(pos, min(64 * 1024, f.end - pos))
        if not chunk:
            raise FormatError("packed field runs past the end of the data", pos)
        count += len(chunk.translate(None, _CONTINUATION))  # the bytes that end a varint
        last = chunk[-1]
        pos += len(chunk)
    if f.length and last >= 0x80:
        raise FormatError("packed field ends inside a varint", f.end)
    return count


def _v_dims(st: _ValueState, f: Field) -> list[int]:
    if f.wire == VARINT:
        return [f.value]
    if f.length > _MAX_RANK * MAX_VARINT_BYTES:
        raise FormatError("tensor dims longer than any tensor's", f.offset)
    out: list[int] = []
    pos = f.offset
    while pos < f.end:
        value, pos = st.reader.varint(pos, f.end)
        out.append(value)
    return out


def _v_entries(st: _ValueState, f: Field) -> tuple[str, str]:
    key = value = ""
    for g in _v_fields(st, f.offset, f.end, {1: (LEN,), 2: (LEN,)}):
        if g.number == 1:
            key = st.reader.text(g, _MAX_NAME)
        else:
            value = st.reader.text(g, _MAX_NAME)
    return key, value


def _v_tensor(st: _ValueState, start: int, end: int, where: str, depth: int) -> None:
    _check_depth(depth, start)
    dims: list[int] = []
    data_type = location = -1
    name = ""
    segment = False
    raw: int | None = None
    typed = 0
    entries: list[tuple[str, str]] = []
    for f in _v_fields(st, start, end, _TENSOR_WIRES):
        n = f.number
        if n == 1:
            dims += _v_dims(st, f)
        elif n == 2:
            if data_type != -1 or not 1 <= f.value <= _MAX_DATA_TYPE:
                raise FormatError(f"tensor data_type {f.value} repeated or unknown", f.offset)
            data_type = f.value
        elif n == 3:
            segment = True
            for _ in _v_fields(st, f.offset, f.end, {1: (VARINT,), 2: (VARINT,)}):
                pass
        elif n == 8:
            name = st.reader.text(f, _MAX_NAME)
        elif n == 9:
            raw = (raw or 0) + f.length
        elif n in (13, 16):
            entry = _v_entries(st, f)
            if n == 13:
                entries.append(entry)
        elif n == 14:
            if f.value > _EXTERNAL:
                raise FormatError(f"tensor data_location {f.value} unknown", f.offset)
            location = f.value
        elif n == 6 or f.wire in (I32, I64):
            typed += 1
        elif n == 4 and f.wire == LEN:
            if f.length % 4:
                raise FormatError("packed float_data not a multiple of 4 bytes", f.offset)
            typed += f.length // 4
        elif n == 10 and f.wire == LEN:
            if f.length % 8:
                raise FormatError("packed double_data not a multiple of 8 bytes", f.offset)
            typed += f.length // 8
        elif n in (5, 7, 11):
            typed += 1 if f.wire == VARINT else _v_varints(st, f)
    if data_type == -1:
        raise FormatError("tensor without a data_type", start)
    if len(dims) > _MAX_RANK or any(d >= 1 << 63 for d in dims):
        raise FormatError("tensor dims negative or too many", start)
    st.count += 1
    external = location == _EXTERNAL
    if entries or external:
        st.tensors.append(ExternalTensor(name, where, tuple(entries), external))
    if not (external or segment):
        _v_check_count(dims, data_type, raw, typed, start)


def _v_check_count(dims: list[int], data_type: int, raw: int | None, typed: int, at: int) -> None:
    """Check that the tensor holds as many elements as its dims say."""
    elements = 1
    for d in dims:
        elements *= d
        if elements > 1 << 62:
            raise FormatError("tensor has more elements than any file holds", at)
    if raw is not None:
        if typed:
            raise FormatError("tensor has both raw_data and typed data", at)
        if data_type in _ITEMSIZE:
            expected = elements * _ITEMSIZE[data_type]
        elif data_type in _BITS:
            expected = -(-elements * _BITS[data_type] // 8)
        else:
            return
        if raw != expected:
            raise FormatError(f"tensor raw_data is {raw} bytes, dims say {expected}", at)
        return
    # Typed fields hold one value per element, two for complex numbers, several sub-byte
    # values per int32.
    allowed = {elements, 2 * elements, -(-elements // 2), -(-elements // 4)}
    if typed not in allowed:
        raise FormatError(f"tensor holds {typed} values, dims say {elements}", at)


def _v_sparse(st: _ValueState, start: int, end: int, where: str, depth: int) -> None:
    for f in _v_fields(st, start, end, {1: (LEN,), 2: (LEN,), 3: (VARINT, LEN)}):
        if f.number in (1, 2):
            _v_tensor(st, f.offset, f.end, where, depth + 1)


_ELEMENT_WIRES: dict[int, tuple[int, ...]] = {
    1: (LEN,),
    2: (VARINT,),
    **dict.fromkeys(range(3, 8), (LEN,)),
}


def _v_elements(st: _ValueState, start: int, end: int, where: str, depth: int, kind: str) -> None:
    """Read a SequenceProto or OptionalProto (same field numbers and types)."""
    _check_depth(depth, start)
    elem_type = -1
    for f in _v_fields(st, start, end, _ELEMENT_WIRES):
        if f.number == 2:
            if elem_type != -1 or f.value > _VALUE_KINDS:
                raise FormatError(f"{kind} elem_type {f.value} repeated or unknown", f.offset)
            elem_type = f.value
        elif f.number >= 3:
            parse = {3: _v_tensor, 4: _v_sparse, 5: _v_sequence, 6: _v_map, 7: _v_optional}
            parse[f.number](st, f.offset, f.end, f"{where}/{kind}", depth + 1)
    if elem_type == -1 or (kind == "sequence" and elem_type == 0):
        raise FormatError(f"{kind} without an elem_type", start)


def _v_sequence(st: _ValueState, start: int, end: int, where: str, depth: int) -> None:
    _v_elements(st, start, end, where, depth, "sequence")


def _v_optional(st: _ValueState, start: int, end: int, where: str, depth: int) -> None:
    _v_elements(st, start, end, where, depth, "optional")


def _v_map(st: _ValueState, start: int, end: int, where: str, depth: int) -> None:
    _check_depth(depth, start)
    key_type = -1
    values = False
    wires = {1: (LEN,), 2: (VARINT,), 3: (VARINT, LEN), 4: (LEN,), 5: (LEN,)}
    for f in _v_fields(st, start, end, wires):
        if f.number == 2:
            if key_type != -1 or not 1 <= f.value <= _MAX_DATA_TYPE:
                raise FormatError(f"map key_type {f.value} repeated or unknown", f.offset)
            key_type = f.value
        elif f.number == 3 and f.wire == LEN:
            _v_varints(st, f)
        elif f.number == 5:
            values = True
            _v_sequence(st, f.offset, f.end, f"{where}/map", depth + 1)
    if key_type == -1 or not values:
        raise FormatError("map without key_type or values", start)
