"""Symbolic values of the pickle machine and the record of one analysed pickle.

Literals (str, bytes, int, float, bool, None) and tuples are kept as plain Python values; what
the unpickler would create by importing or calling is kept as a symbol that says how it came
to be. Nothing here is ever imported or called.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelguard.errors import FormatError

__all__ = [
    "Anomaly",
    "BigData",
    "BufferRef",
    "CallResult",
    "DictV",
    "ExtRef",
    "GlobalRef",
    "ListV",
    "Mutation",
    "PersRef",
    "PickleResult",
    "SetV",
    "Sym",
]


class Sym:
    """Base of every symbolic (non-literal) value."""

    __slots__ = ()


class GlobalRef(Sym):
    """A callable or object the unpickler would import (GLOBAL, STACK_GLOBAL, INST, EXT).

    Attributes:
        module: module name as written, or "?" when computed at run time.
        name: qualified name as written (may be dotted), or "?".
        offset: absolute byte offset of the opcode.
        opcode: the opcode that named it.
        proto: the protocol in force (protocol < 3 maps Python 2 names, as CPython does).
        dynamic: the name was computed at run time and cannot be known statically.
    """

    __slots__ = ("dynamic", "module", "name", "offset", "opcode", "proto")

    def __init__(
        self, module: str, name: str, offset: int, opcode: str, proto: int, dynamic: bool = False
    ) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.opcode = opcode
        self.proto = proto
        self.dynamic = dynamic

    def __repr__(self) -> str:
        return f"GlobalRef({self.module}:{self.name}@{self.offset})"


class ExtRef(Sym):
    """An EXT1/2/4 reference whose code the stream did not register itself."""

    __slots__ = ("code", "offset", "opcode")

    def __init__(self, code: int, offset: int, opcode: str) -> None:
        self.code = code
        self.offset = offset
        self.opcode = opcode


class CallResult(Sym):
    """The value a call would return (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST).

    Attributes:
        func: the callable (a symbol or literal).
        args: the positional arguments as given (normally a tuple).
        kwargs: keyword arguments (NEWOBJ_EX only).
        offset: absolute offset of the calling opcode.
        kind: "reduce", "newobj", "newobj_ex", "obj" or "inst".
        states: BUILD states applied to the result, in order.
        items: values added by APPEND(S)/SETITEM(S)/ADDITEMS (method calls on the object).
    """

    __slots__ = ("args", "func", "items", "kind", "kwargs", "offset", "states")

    def __init__(self, func: object, args: object, kwargs: object, offset: int, kind: str) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.offset = offset
        self.kind = kind
        self.states: list[object] = []
        self.items: list[object] = []

    def __repr__(self) -> str:
        return f"CallResult({self.kind} {self.func!r}@{self.offset})"


class ListV(Sym):
    """A list built by the stream."""

    __slots__ = ("items",)

    def __init__(self, items: list[object]) -> None:
        self.items = items


class DictV(Sym):
    """A dict built by the stream, as key/value pairs (keys may be symbolic)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[object, object]]) -> None:
        self.pairs = pairs

    def get(self, key: str) -> object:
        """Return the last value stored under the literal `key`, or None."""
        found: object = None
        for k, v in self.pairs:
            if k == key:
                found = v
        return found


class SetV(Sym):
    """A set or frozenset built by the stream."""

    __slots__ = ("frozen", "items")

    def __init__(self, items: list[object], frozen: bool) -> None:
        self.items = items
        self.frozen = frozen


class PersRef(Sym):
    """The result of persistent_load(pid) (PERSID/BINPERSID): torch storages, for example."""

    __slots__ = ("offset", "pid")

    def __init__(self, pid: object, offset: int) -> None:
        self.pid = pid
        self.offset = offset


class BigData(Sym):
    """A bytes or str literal too large to hold in memory: where it lies in the blob.

    Loader payloads embedded this way are read back from `blob` for nested analysis.
    """

    __slots__ = ("blob", "kind", "length", "offset")

    def __init__(self, blob: object, offset: int, length: int, kind: str) -> None:
        self.blob = blob
        self.offset = offset
        self.length = length
        self.kind = kind


class BufferRef(Sym):
    """An out-of-band buffer (NEXT_BUFFER, protocol 5)."""

    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        self.offset = offset


@dataclass(slots=True)
class Mutation:
    """A change to an existing object: BUILD/SETITEM/APPEND/ADDITEMS on an imported object."""

    kind: str
    target: object
    value: object
    offset: int


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something in the stream's syntax that matters for evasion (frames, PROTO, ...)."""

    kind: str
    offset: int
    detail: str
    span: tuple[int, int] | None = None  # bytes a differently-reading loader may execute


@dataclass(slots=True)
class PickleResult:
    """Everything the symbolic machine learnt from one pickle.

    Attributes:
        start: absolute offset of the first opcode.
        end: absolute offset just after STOP, or where analysis stopped.
        complete: STOP was reached.
        error: why analysis stopped early (the loader would fail there too), if it did.
        proto: the last protocol declared (0 when no PROTO).
        imports: every global the loader would import, in stream order.
        calls: every call site, in stream order.
        mutations: changes to imported objects.
        ext_refs: EXT references the stream did not register.
        persids: persistent ids (torch storages and the like).
        anomalies: syntax anomalies (frame overruns, misplaced PROTO, ...).
        nested: pickles embedded inline in the same stream (joblib object arrays).
        value: the value STOP returned.
        opcodes: number of opcodes executed.
        skipped_bytes: raw (non-pickle) bytes skipped inline (joblib array data).
    """

    start: int
    end: int = 0
    complete: bool = False
    error: FormatError | None = None
    proto: int = 0
    imports: list[GlobalRef] = field(default_factory=list)
    calls: list[CallResult] = field(default_factory=list)
    mutations: list[Mutation] = field(default_factory=list)
    ext_refs: list[ExtRef] = field(default_factory=list)
    persids: list[PersRef] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    nested: list[PickleResult] = field(default_factory=list)
    value: object = None
    opcodes: int = 0
    skipped_bytes: int = 0

    @property
    def effective(self) -> bool:
        """Return True if loading the stream would import or call anything."""
        return bool(self.imports or self.calls or self.ext_refs or self.nested)
