"""TensorFlow graphs (SavedModel, MetaGraphDef, GraphDef) and Keras metadata, read by wire.

Every op a TensorFlow graph can run is a `NodeDef.op`, in the graph itself or in a function
of its library (a `tf.function` body, the save/restore functions, control-flow branches).
This reader collects them all with the node's name and the function it belongs to, without
TensorFlow. Field numbers are those of tensorflow/core/protobuf/saved_model.proto and
meta_graph.proto, tensorflow/core/framework/graph.proto, function.proto, node_def.proto,
op_def.proto and attr_value.proto; Keras' saved_metadata.proto for `keras_metadata.pb`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelguard.errors import FormatError
from modelguard.formats.blob import Blob
from modelguard.formats.protowire import LEN, Budget, Field, Reader

__all__ = [
    "TfGraph",
    "TfNode",
    "read_graphdef",
    "read_keras_metadata",
    "read_meta_graph",
    "read_saved_model",
]

_MAX_NAME = 64 * 1024
# String attributes kept per node (PrintV2's output_stream): short values only.
_MAX_ATTR = 4096

# SavedModel.meta_graphs; MetaGraphDef.graph_def; GraphDef.node, library;
# FunctionDefLibrary.function; FunctionDef.signature, node_def; OpDef.name;
# NodeDef.name, op, attr (map entry key 1, value 2); AttrValue.s
_SM_META_GRAPHS = 2
_MG_GRAPH_DEF = 2
_GD_NODE, _GD_LIBRARY = 1, 2
_LIB_FUNCTION = 1
_FD_SIGNATURE, _FD_NODE_DEF = 1, 3
_OPDEF_NAME = 1
_ND_NAME, _ND_OP, _ND_ATTR = 1, 2, 5
_AV_S = 2
# keras SavedMetadata.nodes; SavedObject.identifier, metadata
_KM_NODES, _KO_IDENTIFIER, _KO_METADATA = 1, 4, 5


@dataclass(frozen=True, slots=True)
class TfNode:
    """One node of a graph or of a library function.

    Attributes:
        op: the op (or library function) it runs.
        name: the node's name.
        function: the library function it belongs to; None for the graph's own nodes.
        attrs: the string attributes asked for (for its op), as (name, value) pairs.
    """

    op: str
    name: str
    function: str | None
    attrs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TfGraph:
    """Every node of a SavedModel's meta graphs or of a GraphDef, library functions included.

    Attributes:
        nodes: the nodes, graph first then each function's.
        functions: the names of the library functions.
        meta_graphs: how many MetaGraphDefs (0 for a bare GraphDef).
    """

    nodes: tuple[TfNode, ...]
    functions: tuple[str, ...]
    meta_graphs: int


class _Walk:
    def __init__(self, reader: Reader, attrs: Mapping[str, frozenset[str]]) -> None:
        self.r = reader
        self.attrs = attrs
        self.attr_names: frozenset[str] = frozenset()
        self.nodes: list[TfNode] = []
        self.functions: list[str] = []

    def text(self, f: Field, cap: int = _MAX_NAME) -> str:
        if f.wire != LEN:
            raise FormatError(f"string field {f.number} has wire type {f.wire}", f.offset)
        return self.r.text(f, cap)

    def meta_graph(self, start: int, end: int) -> None:
        for f in self.r.fields(start, end):
            if f.number == _MG_GRAPH_DEF and f.wire == LEN:
                self.graph(f.offset, f.end)

    def graph(self, start: int, end: int) -> None:
        for f in self.r.fields(start, end):
            if f.wire != LEN:
                continue
            if f.number == _GD_NODE:
                self.node(f, None)
            elif f.number == _GD_LIBRARY:
                for g in self.r.fields(f.offset, f.end):
                    if g.number == _LIB_FUNCTION and g.wire == LEN:
                        self.function(g)

    def function(self, f: Field) -> None:
        name = ""
        bodies: list[Field] = []
        for g in self.r.fields(f.offset, f.end):
            if g.number == _FD_SIGNATURE and g.wire == LEN:
                for h in self.r.fields(g.offset, g.end):
                    if h.number == _OPDEF_NAME:
                        name = self.text(h)
            elif g.number == _FD_NODE_DEF and g.wire == LEN:
                bodies.append(g)
        self.functions.append(name)
        for g in bodies:
            self.node(g, name)

    def node(self, f: Field, function: str | None) -> None:
        name = op = ""
        fields: list[Field] = []
        for g in self.r.fields(f.offset, f.end):
            if g.number == _ND_NAME:
                name = self.text(g)
            elif g.number == _ND_OP:
                op = self.text(g)
            elif g.number == _ND_ATTR and g.wire == LEN:
                fields.append(g)
        attrs: list[tuple[str, str]] = []
        # Attribute maps are most of a graph's fields: walked only for the ops asked for.
        self.attr_names = self.attrs.get(op, frozenset())
        if self.attr_names:
            for g in fields:
                kept = self.attr(g)
                if kept is not None:
                    attrs.append(kept)
        self.nodes.append(TfNode(op, name, function, tuple(attrs)))

    def attr(self, f: Field) -> tuple[str, str] | None:
        key: str | None = None
        value: Field | None = None
        for g in self.r.fields(f.offset, f.end):
            if g.number == 1:
                key = self.text(g)
            elif g.number == 2 and g.wire == LEN:
                value = g
        if key is None or value is None or key not in self.attr_names:
            return None
        for h in self.r.fields(value.offset, value.end):
            if h.number == _AV_S and h.wire == LEN:
                if h.length > _MAX_ATTR:
                    return key, "<long string>"
                return key, self.text(h)
        return None

    def result(self, meta_graphs: int) -> TfGraph:
        return TfGraph(tuple(self.nodes), tuple(self.functions), meta_graphs)


def read_saved_model(
    blob: Blob,
    attrs: Mapping[str, frozenset[str]] | None = None,
    budget: Budget | None = None,
) -> TfGraph:
    """Read every node of every meta graph of a SavedModel (`saved_model.pb`).

    Args:
        blob: the SavedModel message.
        attrs: op -> names of the string attributes to keep on nodes of that op.
        budget: the field budget shared with other walks of the same file.

    Raises:
        FormatError: the bytes are not a well-formed SavedModel.
        LimitExceeded: the field budget was reached.
    """
    walk = _Walk(Reader(blob, budget), attrs or {})
    count = 0
    for f in walk.r.fields(0, blob.size):
        if f.number == _SM_META_GRAPHS and f.wire == LEN:
            count += 1
            walk.meta_graph(f.offset, f.end)
    return walk.result(count)


def read_meta_graph(
    blob: Blob,
    attrs: Mapping[str, frozenset[str]] | None = None,
    budget: Budget | None = None,
) -> TfGraph:
    """Read every node of a bare MetaGraphDef (a TF1 checkpoint's `.meta` file).

    Raises:
        FormatError: the bytes are not a well-formed MetaGraphDef.
        LimitExceeded: the field budget was reached.
    """
    walk = _Walk(Reader(blob, budget), attrs or {})
    walk.meta_graph(0, blob.size)
    return walk.result(1)


def read_graphdef(
    blob: Blob,
    attrs: Mapping[str, frozenset[str]] | None = None,
    budget: Budget | None = None,
) -> TfGraph:
    """Read every node of a bare GraphDef (a frozen `.pb` graph), library included.

    Raises:
        FormatError: the bytes are not a well-formed GraphDef.
        LimitExceeded: the field budget was reached.
    """
    walk = _Walk(Reader(blob, budget), attrs or {})
    walk.graph(0, blob.size)
    return walk.result(0)


def read_keras_metadata(
    blob: Blob, max_string: int, budget: Budget | None = None
) -> tuple[tuple[str, str], ...]:
    """Read the (identifier, metadata JSON text) of each object in `keras_metadata.pb`.

    Raises:
        FormatError: the bytes are not a well-formed SavedMetadata message.
        LimitExceeded: a metadata string is longer than `max_string`, or the field budget.
    """
    reader = Reader(blob, budget)
    out: list[tuple[str, str]] = []
    for f in reader.fields(0, blob.size):
        if f.number != _KM_NODES or f.wire != LEN:
            continue
        identifier = metadata = ""
        for g in reader.fields(f.offset, f.end):
            if g.number == _KO_IDENTIFIER and g.wire == LEN:
                identifier = reader.text(g, _MAX_NAME)
            elif g.number == _KO_METADATA and g.wire == LEN:
                metadata = reader.text(g, max_string)
        out.append((identifier, metadata))
    return tuple(out)
