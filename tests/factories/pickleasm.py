"""A small pickle assembler for building test pickles opcode by opcode.

Two layers:

* raw opcode emitters (`proto`, `frame`, `global_`, `binunicode`, `ext1`, ...) that return the
  exact bytes of one opcode with its operand, for hand-written streams;
* a tiny expression compiler (`G`, `Call`, `Build`, `Raw`, `Ext`, `emit`, `program`) that turns a
  Python-like expression tree into opcodes for a chosen protocol, the way `pickle` itself would
  (GLOBAL text for protocols 0-3, STACK_GLOBAL from 4), so that many payload shapes can be written
  compactly and rendered at several protocols.

Nothing here unpickles anything; the output is plain bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union

# -- one-byte opcodes without operands -------------------------------------------------------

MARK = b"("
STOP = b"."
POP = b"0"
POP_MARK = b"1"
DUP = b"2"
NONE = b"N"
REDUCE = b"R"
BUILD = b"b"
APPEND = b"a"
APPENDS = b"e"
LIST = b"l"
EMPTY_LIST = b"]"
DICT = b"d"
EMPTY_DICT = b"}"
SETITEM = b"s"
SETITEMS = b"u"
TUPLE = b"t"
EMPTY_TUPLE = b")"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
TUPLE3 = b"\x87"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"
OBJ = b"o"
NEWOBJ = b"\x81"
NEWOBJ_EX = b"\x92"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
EMPTY_SET = b"\x8f"
ADDITEMS = b"\x90"
FROZENSET = b"\x91"


# -- opcodes with operands -------------------------------------------------------------------


def proto(n: int) -> bytes:
    """PROTO n."""
    return b"\x80" + bytes([n])


def frame(length: int) -> bytes:
    """FRAME with an 8-byte little-endian length (the length is not checked)."""
    return b"\x95" + struct.pack("<Q", length)


def global_(module: str, name: str) -> bytes:
    """GLOBAL 'module name' (text operands, any protocol)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def inst(module: str, name: str) -> bytes:
    """INST 'module name' (protocol 0 class instantiation from the items above MARK)."""
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def put(index: int) -> bytes:
    """PUT (text memo index)."""
    return b"p" + str(index).encode() + b"\n"


def binput(index: int) -> bytes:
    """BINPUT (1-byte memo index)."""
    return b"q" + bytes([index])


def long_binput(index: int) -> bytes:
    """LONG_BINPUT (4-byte memo index)."""
    return b"r" + struct.pack("<I", index)


def get(index: int) -> bytes:
    """GET (text memo index)."""
    return b"g" + str(index).encode() + b"\n"


def binget(index: int) -> bytes:
    """BINGET (1-byte memo index)."""
    return b"h" + bytes([index])


def long_binget(index: int) -> bytes:
    """LONG_BINGET (4-byte memo index)."""
    return b"j" + struct.pack("<I", index)


def ext1(code: int) -> bytes:
    """EXT1 (1-byte extension code)."""
    return b"\x82" + bytes([code])


def ext2(code: int) -> bytes:
    """EXT2 (2-byte extension code)."""
    return b"\x83" + struct.pack("<H", code)


def ext4(code: int) -> bytes:
    """EXT4 (4-byte extension code)."""
    return b"\x84" + struct.pack("<i", code)


def string(text: str) -> bytes:
    """Protocol-0 STRING: a quoted, escaped literal ending in a newline."""
    return b"S" + repr(text).encode("ascii") + b"\n"


def unicode(text: str) -> bytes:
    """Protocol-0 UNICODE: raw-unicode-escape text ending in a newline."""
    escaped = (
        text.replace("\\", "\\u005c")
        .replace("\0", "\\u0000")
        .replace("\n", "\\u000a")
        .replace("\r", "\\u000d")
        .replace("\x1a", "\\u001a")
    )
    return b"V" + escaped.encode("raw-unicode-escape") + b"\n"


def binstring(data: bytes) -> bytes:
    """BINSTRING or SHORT_BINSTRING (protocol 1 byte strings, decoded as str by Python 3)."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def short_binunicode(text: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4)."""
    data = text.encode("utf-8", "surrogatepass")
    return b"\x8c" + bytes([len(data)]) + data


def binunicode(text: str) -> bytes:
    """BINUNICODE (protocol 1+, 4-byte length)."""
    data = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(data)) + data


def binunicode8(text: str) -> bytes:
    """BINUNICODE8 (protocol 4, 8-byte length)."""
    data = text.encode("utf-8", "surrogatepass")
    return b"\x8d" + struct.pack("<Q", len(data)) + data


def binbytes(data: bytes) -> bytes:
    """SHORT_BINBYTES or BINBYTES (protocol 3)."""
    if len(data) < 256:
        return b"C" + bytes([len(data)]) + data
    return b"B" + struct.pack("<I", len(data)) + data


def bytes8(data: bytes) -> bytes:
    """BINBYTES8 (protocol 4)."""
    return b"\x8e" + struct.pack("<Q", len(data)) + data


def int_(value: int) -> bytes:
    """Protocol-0 INT."""
    return b"I" + str(value).encode() + b"\n"


def binint(value: int) -> bytes:
    """The shortest of BININT1, BININT2 and BININT for a 32-bit signed value."""
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


# -- expression tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class G:
    """A global reference `module.name` (name may be dotted; dotted names need protocol 4)."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """`fn(*args)` through REDUCE."""

    fn: Node
    args: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Build:
    """`obj` followed by BUILD with `state` (sets attributes / calls __setstate__)."""

    obj: Node
    state: Node


@dataclass(frozen=True)
class Ext:
    """An EXT1/EXT2/EXT4 reference to a copyreg extension code."""

    code: int


@dataclass(frozen=True)
class Raw:
    """Literal opcode bytes that push exactly one value."""

    data: bytes


@dataclass(frozen=True)
class Seq:
    """Evaluate `effects` for their side effects (each result popped), then push `value`."""

    effects: tuple[Node, ...]
    value: Node


Node = Union[G, Call, Build, Ext, Raw, Seq, str, bytes, int, float, bool, None, tuple, list, dict]  # noqa: UP007


def _emit_str(text: str, protocol: int) -> bytes:
    if protocol == 0:
        return unicode(text)
    if protocol >= 4 and len(text.encode("utf-8", "surrogatepass")) < 256:
        return short_binunicode(text)
    return binunicode(text)


def _emit_int(value: int, protocol: int) -> bytes:
    if protocol == 0 or not -(2**31) <= value < 2**31:
        return int_(value)
    return binint(value)


def _emit_items(items: Iterable[Node], protocol: int) -> bytes:
    return b"".join(emit(item, protocol) for item in items)


def _emit_tuple(items: Sequence[Node], protocol: int) -> bytes:
    if not items and protocol >= 1:
        return EMPTY_TUPLE
    if protocol >= 2 and len(items) <= 3:
        return _emit_items(items, protocol) + (TUPLE1, TUPLE2, TUPLE3)[len(items) - 1]
    return MARK + _emit_items(items, protocol) + TUPLE


def emit(node: Node, protocol: int) -> bytes:
    """Return opcodes that push the value of `node`, rendered for `protocol`.

    Raises:
        TypeError: for a value this assembler cannot render.
        ValueError: for a value the chosen protocol cannot express (bytes below 3, EXT below 2).
    """
    if isinstance(node, G):
        if protocol >= 4:
            return _emit_str(node.module, protocol) + _emit_str(node.name, protocol) + STACK_GLOBAL
        return global_(node.module, node.name)
    if isinstance(node, Call):
        return emit(node.fn, protocol) + _emit_tuple(node.args, protocol) + REDUCE
    if isinstance(node, Build):
        return emit(node.obj, protocol) + emit(node.state, protocol) + BUILD
    if isinstance(node, Ext):
        if protocol < 2:
            raise ValueError("EXT opcodes need protocol 2")
        if node.code < 256:
            return ext1(node.code)
        if node.code < 65536:
            return ext2(node.code)
        return ext4(node.code)
    if isinstance(node, Raw):
        return node.data
    if isinstance(node, Seq):
        effects = b"".join(emit(effect, protocol) + POP for effect in node.effects)
        return effects + emit(node.value, protocol)
    if node is None:
        return NONE
    if isinstance(node, bool):
        if protocol >= 2:
            return NEWTRUE if node else NEWFALSE
        return b"I01\n" if node else b"I00\n"
    if isinstance(node, int):
        return _emit_int(node, protocol)
    if isinstance(node, float):
        return (
            b"G" + struct.pack(">d", node) if protocol >= 1 else b"F" + repr(node).encode() + b"\n"
        )
    if isinstance(node, str):
        return _emit_str(node, protocol)
    if isinstance(node, bytes):
        if protocol < 3:
            raise ValueError("bytes need protocol 3")
        return binbytes(node)
    if isinstance(node, tuple):
        return _emit_tuple(node, protocol)
    if isinstance(node, list):
        if protocol == 0:
            return MARK + LIST + b"".join(emit(item, protocol) + APPEND for item in node)
        body = MARK + _emit_items(node, protocol) + APPENDS if node else b""
        return EMPTY_LIST + body
    if isinstance(node, dict):
        if protocol == 0:
            return (
                MARK + DICT + b"".join(emit(k, 0) + emit(v, 0) + SETITEM for k, v in node.items())
            )
        pairs = b"".join(emit(k, protocol) + emit(v, protocol) for k, v in node.items())
        return EMPTY_DICT + (MARK + pairs + SETITEMS if node else b"")
    raise TypeError(f"cannot emit {type(node).__name__}")


def wrap(body: bytes, protocol: int, *, framed: bool = True) -> bytes:
    """Return a complete stream: PROTO (protocol >= 2), an optional FRAME (>= 4), body, STOP."""
    head = proto(protocol) if protocol >= 2 else b""
    payload = body + STOP
    if protocol >= 4 and framed:
        return head + frame(len(payload)) + payload
    return head + payload


def program(node: Node, protocol: int, *, framed: bool = True) -> bytes:
    """Return a complete pickle whose result is the value of `node`."""
    return wrap(emit(node, protocol), protocol, framed=framed)
