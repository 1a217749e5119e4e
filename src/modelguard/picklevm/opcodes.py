"""The pickle opcode table (protocols 0-5) and a bounded, tolerant linear decoder.

The symbolic machine in `vm.py` decodes inline for speed; this module is the reference table
both use, and `iter_opcodes` is the plain decoder used for diagnostics, tests and fuzzing.
Argument kinds follow the reading rules of CPython's C unpickler (`Modules/_pickle.c`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from modelguard.errors import FormatError

__all__ = ["OPCODES", "Arg", "Op", "Opcode", "iter_opcodes"]


class Arg(Enum):
    """How an opcode's inline argument is encoded."""

    NONE = "none"
    LINE = "line"  # bytes up to and including b"\n"
    TWO_LINES = "two-lines"  # GLOBAL and INST: module line then name line
    U1 = "u1"  # 1-byte unsigned
    U2 = "u2"  # 2-byte little-endian unsigned
    I4 = "i4"  # 4-byte little-endian signed
    U4 = "u4"  # 4-byte little-endian unsigned
    U8 = "u8"  # 8-byte little-endian unsigned
    F8 = "f8"  # 8-byte big-endian IEEE double
    LEN1 = "len1"  # 1-byte length, then that many bytes
    LEN4 = "len4"  # 4-byte signed length, then bytes
    LEN4U = "len4u"  # 4-byte unsigned length, then bytes
    LEN8 = "len8"  # 8-byte length, then bytes


@dataclass(frozen=True, slots=True)
class Opcode:
    """One opcode: its byte, name, argument encoding and the protocol that introduced it."""

    code: int
    name: str
    arg: Arg
    proto: int


_TABLE = (
    ("(", "MARK", Arg.NONE, 0),
    (".", "STOP", Arg.NONE, 0),
    ("0", "POP", Arg.NONE, 0),
    ("1", "POP_MARK", Arg.NONE, 1),
    ("2", "DUP", Arg.NONE, 0),
    ("F", "FLOAT", Arg.LINE, 0),
    ("I", "INT", Arg.LINE, 0),
    ("J", "BININT", Arg.I4, 1),
    ("K", "BININT1", Arg.U1, 1),
    ("L", "LONG", Arg.LINE, 0),
    ("M", "BININT2", Arg.U2, 1),
    ("N", "NONE", Arg.NONE, 0),
    ("P", "PERSID", Arg.LINE, 0),
    ("Q", "BINPERSID", Arg.NONE, 1),
    ("R", "REDUCE", Arg.NONE, 0),
    ("S", "STRING", Arg.LINE, 0),
    ("T", "BINSTRING", Arg.LEN4, 1),
    ("U", "SHORT_BINSTRING", Arg.LEN1, 1),
    ("V", "UNICODE", Arg.LINE, 0),
    ("X", "BINUNICODE", Arg.LEN4U, 1),
    ("a", "APPEND", Arg.NONE, 0),
    ("b", "BUILD", Arg.NONE, 0),
    ("c", "GLOBAL", Arg.TWO_LINES, 0),
    ("d", "DICT", Arg.NONE, 0),
    ("}", "EMPTY_DICT", Arg.NONE, 1),
    ("e", "APPENDS", Arg.NONE, 1),
    ("g", "GET", Arg.LINE, 0),
    ("h", "BINGET", Arg.U1, 1),
    ("i", "INST", Arg.TWO_LINES, 0),
    ("j", "LONG_BINGET", Arg.U4, 1),
    ("l", "LIST", Arg.NONE, 0),
    ("]", "EMPTY_LIST", Arg.NONE, 1),
    ("o", "OBJ", Arg.NONE, 1),
    ("p", "PUT", Arg.LINE, 0),
    ("q", "BINPUT", Arg.U1, 1),
    ("r", "LONG_BINPUT", Arg.U4, 1),
    ("s", "SETITEM", Arg.NONE, 0),
    ("t", "TUPLE", Arg.NONE, 0),
    (")", "EMPTY_TUPLE", Arg.NONE, 1),
    ("u", "SETITEMS", Arg.NONE, 1),
    ("G", "BINFLOAT", Arg.F8, 1),
    ("\x80", "PROTO", Arg.U1, 2),
    ("\x81", "NEWOBJ", Arg.NONE, 2),
    ("\x82", "EXT1", Arg.U1, 2),
    ("\x83", "EXT2", Arg.U2, 2),
    ("\x84", "EXT4", Arg.I4, 2),
    ("\x85", "TUPLE1", Arg.NONE, 2),
    ("\x86", "TUPLE2", Arg.NONE, 2),
    ("\x87", "TUPLE3", Arg.NONE, 2),
    ("\x88", "NEWTRUE", Arg.NONE, 2),
    ("\x89", "NEWFALSE", Arg.NONE, 2),
    ("\x8a", "LONG1", Arg.LEN1, 2),
    ("\x8b", "LONG4", Arg.LEN4, 2),
    ("B", "BINBYTES", Arg.LEN4U, 3),
    ("C", "SHORT_BINBYTES", Arg.LEN1, 3),
    ("\x8c", "SHORT_BINUNICODE", Arg.LEN1, 4),
    ("\x8d", "BINUNICODE8", Arg.LEN8, 4),
    ("\x8e", "BINBYTES8", Arg.LEN8, 4),
    ("\x8f", "EMPTY_SET", Arg.NONE, 4),
    ("\x90", "ADDITEMS", Arg.NONE, 4),
    ("\x91", "FROZENSET", Arg.NONE, 4),
    ("\x92", "NEWOBJ_EX", Arg.NONE, 4),
    ("\x93", "STACK_GLOBAL", Arg.NONE, 4),
    ("\x94", "MEMOIZE", Arg.NONE, 4),
    ("\x95", "FRAME", Arg.U8, 4),
    ("\x96", "BYTEARRAY8", Arg.LEN8, 5),
    ("\x97", "NEXT_BUFFER", Arg.NONE, 5),
    ("\x98", "READONLY_BUFFER", Arg.NONE, 5),
)

OPCODES: dict[int, Opcode] = {
    ord(ch): Opcode(ord(ch), name, arg, proto) for ch, name, arg, proto in _TABLE
}
"""Every opcode of protocols 0-5, keyed by its byte value."""

_FIXED = {Arg.U1: 1, Arg.U2: 2, Arg.I4: 4, Arg.U4: 4, Arg.U8: 8, Arg.F8: 8}
_LEN = {Arg.LEN1: 1, Arg.LEN4: 4, Arg.LEN4U: 4, Arg.LEN8: 8}


@dataclass(frozen=True, slots=True)
class Op:
    """One decoded opcode: where it starts, what it is, its raw argument bytes."""

    offset: int
    opcode: Opcode
    arg: bytes


def iter_opcodes(data: bytes, start: int = 0, *, max_ops: int = 10_000_000) -> Iterator[Op]:
    """Decode opcodes linearly from `start` until the first STOP (inclusive).

    This is a syntax-only walk (no stack), reading arguments the way CPython's C unpickler
    does: lines end at b"\\n", counted arguments take exactly their count.

    Raises:
        FormatError: unknown opcode, truncated argument, negative length, too many opcodes.
    """
    pos = start
    n = len(data)
    count = 0
    while True:
        if pos >= n:
            raise FormatError("pickle truncated: no STOP opcode", pos)
        count += 1
        if count > max_ops:
            raise FormatError(f"more than {max_ops} opcodes", pos)
        code = data[pos]
        op = OPCODES.get(code)
        if op is None:
            raise FormatError(f"invalid opcode byte 0x{code:02x}", pos)
        at = pos
        pos += 1
        kind = op.arg
        if kind is Arg.NONE:
            arg = b""
        elif kind is Arg.LINE:
            end = data.find(b"\n", pos)
            if end < 0:
                raise FormatError(f"{op.name}: unterminated line argument", at)
            arg = data[pos : end + 1]
            pos = end + 1
        elif kind is Arg.TWO_LINES:
            end1 = data.find(b"\n", pos)
            end2 = data.find(b"\n", end1 + 1) if end1 >= 0 else -1
            if end2 < 0:
                raise FormatError(f"{op.name}: unterminated line argument", at)
            arg = data[pos : end2 + 1]
            pos = end2 + 1
        elif kind in _FIXED:
            width = _FIXED[kind]
            if pos + width > n:
                raise FormatError(f"{op.name}: truncated argument", at)
            arg = data[pos : pos + width]
            pos += width
        else:
            width = _LEN[kind]
            if pos + width > n:
                raise FormatError(f"{op.name}: truncated length", at)
            length = int.from_bytes(data[pos : pos + width], "little", signed=kind is Arg.LEN4)
            if length < 0:
                raise FormatError(f"{op.name}: negative length", at)
            pos += width
            if pos + length > n:
                raise FormatError(f"{op.name}: argument runs past the end of the data", at)
            arg = data[pos : pos + length]
            pos += length
        yield Op(at, op, arg)
        if code == 0x2E:  # STOP
            return
