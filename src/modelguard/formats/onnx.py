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

from dataclasses import dataclass, field

from modelguard.errors import FormatError
from modelguard.formats.blob import Blob
from modelguard.formats.protowire import LEN, MAX_NESTING, VARINT, Budget, Field, Reader

__all__ = ["ExternalTensor", "OnnxModel", "OpUse", "read_onnx"]

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
