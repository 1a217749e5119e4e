"""The symbolic pickle machine: what would loading this stream import, call and change?

It decodes every opcode of protocols 0-5 and runs them over a symbolic stack, mark stack and
memo exactly as CPython's C unpickler orders them (frames read linearly, POP of an empty mark
region pops the mark, GET of a missing key fails, STACK_GLOBAL needs two str), so the names it
resolves are the names the loader would import however they were assembled. It never imports,
instantiates or executes anything: calls become `CallResult` symbols.

Where the loader would fail (truncation, invalid opcode, stack underflow) the machine stops
too and records the error; everything seen before it stays in the result, because a loader
runs what it meets before it fails.
"""

from __future__ import annotations

import codecs
import re
import struct

from modelguard.config import Limits
from modelguard.errors import FormatError, LimitExceeded
from modelguard.formats.blob import Blob
from modelguard.picklevm.values import (
    Anomaly,
    BigData,
    BufferRef,
    CallResult,
    DictV,
    ExtRef,
    GlobalRef,
    ListV,
    Mutation,
    PersRef,
    PickleResult,
    SetV,
    Sym,
)

__all__ = ["ExtRegistry", "run_pickle"]

ExtRegistry = dict[int, tuple[str, str]]
"""copyreg extension codes registered by streams analysed in the same (simulated) process."""

_CHUNK = 64 * 1024
# Literals above this size are not read into memory (BigData); consumed opcode bytes are
# dropped from the window once it passes _COMPACT: memory stays bounded whatever the pickle.
_BIG = 1 << 20
_COMPACT = 4 << 20
_HIGHEST_PROTOCOL = 5
_unpack_d = struct.Struct(">d").unpack_from

# joblib writes raw array bytes (or a whole nested pickle for object arrays) into the stream
# right after the BUILD of these wrappers; its unpickler reads them from the file there.
_JOBLIB_WRAPPERS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
_COPYREG = frozenset({"copyreg", "copy_reg"})


class _Fail(Exception):
    """The loader would raise here; analysis of this stream stops."""

    def __init__(self, message: str, offset: int, opcodes: int = 0) -> None:
        super().__init__(message)
        self.offset = offset
        self.opcodes = opcodes


class _Window:
    """A growing window of a blob, starting at an absolute offset."""

    __slots__ = ("base", "blob", "cap", "data", "limit", "max_bytes")

    def __init__(self, blob: Blob, base: int, limit: int, chunk: int = _CHUNK) -> None:
        self.blob = blob
        self.base = base
        self.max_bytes = limit  # max_pickle_bytes, for messages
        self.limit = limit  # what is left of it, relative to base
        self.cap = min(limit, max(blob.size - base, 0))
        self.data = blob.read(base, min(chunk, self.cap))

    def grow(self, need: int) -> bytes:
        """Extend the window to `need` bytes (relative) when the blob has them.

        Returns the (possibly unchanged) data; callers treat a short result as truncation.

        Raises:
            LimitExceeded: the stream would be longer than max_pickle_bytes.
        """
        have = len(self.data)
        if need <= have:
            return self.data
        if need > self.cap:
            if self.cap < self.limit:
                need = self.cap  # the blob ends first: the caller sees a truncated stream
            else:
                raise LimitExceeded(
                    "max_pickle_bytes",
                    f"pickle stream longer than max_pickle_bytes ({self.max_bytes} bytes)",
                    self.base + have,
                )
            if need <= have:
                return self.data
        want = min(max(need - have, have, 256), self.cap - have)
        more = self.blob.read(self.base + have, want)
        if more:
            self.data = self.data + more
        return self.data

    def compact(self, rel: int) -> bytes:
        """Drop the bytes before relative offset `rel` (already decoded); they still count."""
        self.data = self.data[rel:]
        self.base += rel
        self.cap -= rel
        self.limit -= rel
        return self.data

    def jump(self, rel: int) -> bytes:
        """Restart the window at relative offset `rel` (skipping raw data in between)."""
        # Skipped raw data does not count against max_pickle_bytes; opcodes still do.
        self.base += rel
        self.cap = min(self.limit, max(self.blob.size - self.base, 0))
        self.data = self.blob.read(self.base, min(_CHUNK, self.cap))
        return self.data


def _decode_string_line(raw: bytes, at: int) -> str:
    """Decode a protocol-0 STRING argument (a quoted, escaped repr) as CPython does."""
    if len(raw) < 2 or raw[0] != raw[-1] or raw[0] not in b"'\"":
        raise _Fail("STRING opcode argument must be quoted", at)
    try:
        value, _ = codecs.escape_decode(raw[1:-1])
    except ValueError as exc:
        raise _Fail(f"STRING: bad escape ({exc})", at) from None
    # Python 3 unpickles str8 with the caller's encoding ("ASCII" by default, torch passes
    # utf-8); latin-1 keeps every byte so names built from it are never lost.
    return bytes(value).decode("latin-1")


def _line_int(raw: bytes, at: int, what: str) -> int:
    """Parse a decimal line argument (GET, PUT) as PyLong_FromString(s, NULL, 10) does."""
    try:
        return int(raw)
    except ValueError:
        raise _Fail(f"{what}: invalid integer argument", at) from None


_OCTAL = re.compile(rb"\s*[+-]?0[0-7]+\s*")


def _c_int(raw: bytes, at: int, what: str) -> int:
    """Parse an INT/LONG line argument the way CPython's C unpickler does.

    INT tries strtol(s, base 0) and then PyLong_FromString(s, base 0); LONG uses the
    latter. So "0x1f", "0o17", "0b1" and, through strtol, C octal "017" are all integers:
    reading them as decimal would stop the analysis where the loader goes on.
    """
    if _OCTAL.fullmatch(raw):
        return int(raw.strip(), 8)
    try:
        return int(raw.strip(), 0)
    except ValueError:
        pass
    try:
        return int(raw)  # leading zeros in a decimal ("007") are accepted by base 10
    except ValueError:
        raise _Fail(f"{what}: invalid integer argument", at) from None


def _dtype_info(dtype: object) -> tuple[int, bool] | None:
    """Return (itemsize, has_object) of a symbolic numpy dtype, or None if unknown."""
    if not isinstance(dtype, CallResult) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    typestr = dtype.args[0]
    if not isinstance(typestr, str) or not typestr:
        return None
    state = dtype.states[-1] if dtype.states else None
    flags = 0
    elsize = -1
    if isinstance(state, tuple) and len(state) >= 8:
        if isinstance(state[5], int):
            elsize = state[5]
        if isinstance(state[7], int):
            flags = state[7]
    kind = typestr[0]
    if kind == "O" or flags & 1:  # NPY_ITEM_HASOBJECT
        return (8, True)
    digits = typestr[1:]
    from_name = int(digits) * (4 if kind == "U" else 1) if digits.isdigit() else None
    # The size joblib skips must be the one numpy computes; where the type string and the
    # state's element size disagree, nobody can tell which bytes are data and which are
    # opcodes, so the stream is not read past this point (the result is incomplete).
    if from_name is not None and elsize > 0 and elsize != from_name:
        return None
    size = from_name if from_name is not None else elsize
    return (size, False) if size > 0 else None


def run_pickle(
    blob: Blob,
    start: int,
    limits: Limits,
    registry: ExtRegistry | None = None,
    *,
    depth: int = 0,
    chunk: int = _CHUNK,
) -> PickleResult:
    """Run one pickle (up to and including its STOP) symbolically.

    Args:
        blob: the bytes; only the pickle's own bytes are read.
        start: absolute offset of the first opcode.
        limits: bounds on opcodes, stack, memo and stream size.
        registry: copyreg extension registrations seen so far in this (simulated) process;
            updated in place when the stream registers codes.
        depth: nesting depth of inline pickles (joblib object arrays).
        chunk: bytes read up front (small for trial runs at many offsets).

    Returns:
        The analysis; `error` is set (and `complete` False) when the loader would fail or a
        limit was reached before STOP.
    """
    result = PickleResult(start=start)
    if registry is None:
        registry = {}
    win = _Window(blob, start, limits.max_pickle_bytes, chunk)
    try:
        _execute(win, result, limits, registry, depth)
    except _Fail as exc:
        result.opcodes = exc.opcodes
        result.error = FormatError(str(exc), exc.offset)
        result.end = exc.offset
    except LimitExceeded as exc:
        result.error = exc
        result.end = exc.offset if exc.offset is not None else start
    return result


def _execute(
    win: _Window, result: PickleResult, limits: Limits, registry: ExtRegistry, depth: int
) -> None:
    data = win.data
    n = len(data)
    pos = 0
    stack: list[object] = []
    marks: list[int] = []
    fence = 0
    memo: dict[int, object] = {}
    proto = 0
    seen_proto = False
    frame_end = -1  # relative end of the current frame, -1 when none
    ops = 0
    max_ops = limits.max_opcodes
    imports = result.imports
    calls = result.calls
    base = win.base

    def fail(message: str, at: int) -> _Fail:
        return _Fail(message, base + at, ops)

    while True:
        if pos > _COMPACT:
            data = win.compact(pos)
            base = win.base
            n = len(data)
            frame_end = frame_end - pos if frame_end > pos else -1
            pos = 0
        if pos >= n:
            data = win.grow(pos + 1)
            n = len(data)
            if pos >= n:
                raise fail("pickle data was truncated (no STOP opcode)", pos)
        at = pos
        code = data[pos]
        pos += 1
        ops += 1
        if not ops & 0xFFF:
            if ops > max_ops:
                raise LimitExceeded(
                    "max_opcodes", f"more than max_opcodes ({max_ops}) opcodes", base + at
                )
            if len(stack) > limits.max_stack or len(marks) > limits.max_stack:
                raise LimitExceeded(
                    "max_stack",
                    f"symbolic stack deeper than max_stack ({limits.max_stack})",
                    base + at,
                )
            if len(memo) > limits.max_memo:
                raise LimitExceeded(
                    "max_memo", f"memo larger than max_memo ({limits.max_memo})", base + at
                )

        # ---- fixed-width arguments, most frequent first ------------------------------------
        if code == 0x71:  # BINPUT
            if pos + 1 > n:
                data = win.grow(pos + 1)
                n = len(data)
                if pos + 1 > n:
                    raise fail("BINPUT: truncated", at)
            if len(stack) <= fence:
                raise fail("memo PUT with an empty stack", at)
            memo[data[pos]] = stack[-1]
            pos += 1
        elif code == 0x68:  # BINGET
            if pos + 1 > n:
                data = win.grow(pos + 1)
                n = len(data)
                if pos + 1 > n:
                    raise fail("BINGET: truncated", at)
            key = data[pos]
            pos += 1
            if key not in memo:
                raise fail(f"memo value not found at index {key}", at)
            stack.append(memo[key])
        elif code == 0x94:  # MEMOIZE
            if len(stack) <= fence:
                raise fail("MEMOIZE with an empty stack", at)
            memo[len(memo)] = stack[-1]
        elif code == 0x28:  # MARK
            marks.append(len(stack))
            fence = len(stack)
        elif code == 0x4B:  # BININT1
            if pos + 1 > n:
                data = win.grow(pos + 1)
                n = len(data)
                if pos + 1 > n:
                    raise fail("BININT1: truncated", at)
            stack.append(data[pos])
            pos += 1
        elif code in (0x85, 0x86, 0x87):  # TUPLE1, TUPLE2, TUPLE3
            k = code - 0x84
            if len(stack) - k < fence:
                raise fail("unpickling stack underflow", at)
            items = tuple(stack[-k:])
            del stack[-k:]
            stack.append(items)
        elif code == 0x74:  # TUPLE
            if not marks:
                raise fail("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            items = tuple(stack[k:])
            del stack[k:]
            stack.append(items)
        elif code == 0x29:  # EMPTY_TUPLE
            stack.append(())
        elif code == 0x52:  # REDUCE
            if len(stack) - 2 < fence:
                raise fail("unpickling stack underflow", at)
            args = stack.pop()
            func = stack.pop()
            call = CallResult(func, args, None, base + at, "reduce")
            calls.append(call)
            _model_call(call, registry)
            stack.append(call)
        elif code == 0x62:  # BUILD
            if len(stack) - 2 < fence:
                raise fail("unpickling stack underflow", at)
            state = stack.pop()
            inst = stack[-1]
            if isinstance(inst, CallResult):
                inst.states.append(state)
                func = inst.func
                if (
                    isinstance(func, GlobalRef)
                    and (func.module, func.name) in _JOBLIB_WRAPPERS
                    and isinstance(state, DictV)
                ):
                    skip = _joblib_array(win, base + pos, state, result, limits, registry, depth)
                    if skip:
                        rel = pos + skip
                        if frame_end > pos:
                            result.anomalies.append(
                                Anomaly(
                                    "frame-overrun",
                                    base + at,
                                    "joblib array data inside a pickle frame",
                                )
                            )
                        data = win.jump(rel)
                        base = win.base
                        n = len(data)
                        pos = 0
                        frame_end = -1
            else:
                result.mutations.append(Mutation("build", inst, state, base + at))
        elif code == 0x58 or code == 0x8C or code == 0x55 or code == 0x43 or code == 0x42:
            # BINUNICODE, SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES, BINBYTES
            width = 4 if code in (0x58, 0x42) else 1
            if pos + width > n:
                data = win.grow(pos + width)
                n = len(data)
                if pos + width > n:
                    raise fail("truncated length", at)
            length = int.from_bytes(data[pos : pos + width], "little")
            pos += width
            if length > _BIG:
                data, base, n, pos, frame_end = _skip_big(
                    win, result, stack, at, pos, length, frame_end, code
                )
                continue
            if pos + length > n:
                data = win.grow(pos + length)
                n = len(data)
                if pos + length > n:
                    raise fail("pickle data was truncated", at)
            raw = data[pos : pos + length]
            pos += length
            if code == 0x58 or code == 0x8C:
                try:
                    stack.append(raw.decode("utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    raise fail("invalid UTF-8 in a unicode string", at) from None
            elif code == 0x55:
                stack.append(raw.decode("latin-1"))
            else:
                stack.append(raw)
        elif code == 0x89:  # NEWFALSE
            stack.append(False)
        elif code == 0x88:  # NEWTRUE
            stack.append(True)
        elif code == 0x4E:  # NONE
            stack.append(None)
        elif code == 0x7D:  # EMPTY_DICT
            stack.append(DictV([]))
        elif code == 0x5D:  # EMPTY_LIST
            stack.append(ListV([]))
        elif code == 0x75 or code == 0x73:  # SETITEMS, SETITEM
            if code == 0x75:
                if not marks:
                    raise fail("could not find MARK", at)
                k = marks.pop()
                fence = marks[-1] if marks else 0
                flat = stack[k:]
                del stack[k:]
            else:
                if len(stack) - 2 < fence:
                    raise fail("unpickling stack underflow", at)
                flat = stack[-2:]
                del stack[-2:]
            if len(stack) <= fence:
                raise fail("unpickling stack underflow", at)
            target = stack[-1]
            pairs = list(zip(flat[::2], flat[1::2], strict=False))
            if isinstance(target, DictV):
                target.pairs.extend(pairs)
            elif isinstance(target, CallResult):
                target.items.extend(pairs)
            elif pairs:
                result.mutations.append(Mutation("setitem", target, pairs, base + at))
                _model_registry_write(target, pairs, registry)
        elif code == 0x65 or code == 0x61:  # APPENDS, APPEND
            if code == 0x65:
                if not marks:
                    raise fail("could not find MARK", at)
                k = marks.pop()
                fence = marks[-1] if marks else 0
                vals = stack[k:]
                del stack[k:]
            else:
                if len(stack) - 1 <= fence:
                    raise fail("unpickling stack underflow", at)
                vals = [stack.pop()]
            if len(stack) <= fence:
                raise fail("unpickling stack underflow", at)
            target = stack[-1]
            if isinstance(target, (ListV, CallResult)):
                target.items.extend(vals)
            elif vals:
                result.mutations.append(Mutation("append", target, vals, base + at))
        elif code == 0x51:  # BINPERSID
            if len(stack) <= fence:
                raise fail("unpickling stack underflow", at)
            pref = PersRef(stack.pop(), base + at)
            result.persids.append(pref)
            stack.append(pref)
        elif code == 0x72 or code == 0x6A:  # LONG_BINPUT, LONG_BINGET
            if pos + 4 > n:
                data = win.grow(pos + 4)
                n = len(data)
                if pos + 4 > n:
                    raise fail("truncated argument", at)
            key = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
            if code == 0x72:
                if len(stack) <= fence:
                    raise fail("memo PUT with an empty stack", at)
                memo[key] = stack[-1]
            else:
                if key not in memo:
                    raise fail(f"memo value not found at index {key}", at)
                stack.append(memo[key])
        elif code == 0x4A or code == 0x4D:  # BININT, BININT2
            width = 4 if code == 0x4A else 2
            if pos + width > n:
                data = win.grow(pos + width)
                n = len(data)
                if pos + width > n:
                    raise fail("truncated argument", at)
            stack.append(int.from_bytes(data[pos : pos + width], "little", signed=code == 0x4A))
            pos += width
        elif code == 0x93:  # STACK_GLOBAL
            if len(stack) - 2 < fence:
                raise fail("unpickling stack underflow", at)
            name = stack.pop()
            module = stack.pop()
            if isinstance(module, str) and isinstance(name, str):
                ref = GlobalRef(module, name, base + at, "STACK_GLOBAL", proto)
            elif isinstance(module, (str, Sym)) and isinstance(name, (str, Sym)):
                # A value computed at run time may well be a str: the loader imports it.
                ref = GlobalRef(
                    module if isinstance(module, str) else "?",
                    name if isinstance(name, str) else "?",
                    base + at,
                    "STACK_GLOBAL",
                    proto,
                    dynamic=True,
                )
            else:
                raise fail("STACK_GLOBAL requires str", at)
            imports.append(ref)
            stack.append(ref)
        elif code == 0x63 or code == 0x69:  # GLOBAL, INST
            end1 = data.find(b"\n", pos)
            end2 = data.find(b"\n", end1 + 1) if end1 >= 0 else -1
            while end2 < 0:
                if n - pos > limits.max_line_bytes:
                    raise LimitExceeded(
                        "max_line_bytes",
                        f"GLOBAL/INST line longer than max_line_bytes ({limits.max_line_bytes})",
                        base + at,
                    )
                grown = win.grow(n + 1)
                if len(grown) == n:
                    raise fail("pickle data was truncated (unterminated GLOBAL/INST)", at)
                data = grown
                n = len(data)
                end1 = data.find(b"\n", pos)
                end2 = data.find(b"\n", end1 + 1) if end1 >= 0 else -1
            try:
                module = data[pos:end1].decode("utf-8")
                name = data[end1 + 1 : end2].decode("utf-8")
            except UnicodeDecodeError:
                raise fail("invalid UTF-8 in a GLOBAL/INST name", at) from None
            pos = end2 + 1
            opname = "GLOBAL" if code == 0x63 else "INST"
            if code == 0x69 and not marks:
                raise fail("could not find MARK", at)  # INST takes its mark before importing
            ref = GlobalRef(module, name, base + at, opname, proto)
            imports.append(ref)
            if code == 0x63:
                stack.append(ref)
            else:
                k = marks.pop()
                fence = marks[-1] if marks else 0
                args = tuple(stack[k:])
                del stack[k:]
                call = CallResult(ref, args, None, base + at, "inst")
                calls.append(call)
                stack.append(call)
        elif code == 0x81:  # NEWOBJ
            if len(stack) - 2 < fence:
                raise fail("unpickling stack underflow", at)
            args = stack.pop()
            cls = stack.pop()
            call = CallResult(cls, args, None, base + at, "newobj")
            calls.append(call)
            stack.append(call)
        elif code == 0x92:  # NEWOBJ_EX
            if len(stack) - 3 < fence:
                raise fail("unpickling stack underflow", at)
            kwargs = stack.pop()
            args = stack.pop()
            cls = stack.pop()
            call = CallResult(cls, args, kwargs, base + at, "newobj_ex")
            calls.append(call)
            stack.append(call)
        elif code == 0x6F:  # OBJ
            if not marks:
                raise fail("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            objs = stack[k:]
            del stack[k:]
            if not objs:
                raise fail("OBJ without a class", at)
            call = CallResult(objs[0], tuple(objs[1:]), None, base + at, "obj")
            calls.append(call)
            stack.append(call)
        elif code == 0x95:  # FRAME
            if pos + 8 > n:
                data = win.grow(pos + 8)
                n = len(data)
                if pos + 8 > n:
                    raise fail("FRAME: truncated", at)
            size = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
            if frame_end > at:
                # The pure-Python unpickler refuses this; the C one reads on linearly.
                result.anomalies.append(
                    Anomaly(
                        "frame-nested",
                        base + at,
                        f"a new FRAME starts {frame_end - at} bytes before the current one ends",
                    )
                )
            if pos + size > n:
                data = win.grow(pos + size)
                n = len(data)
                if pos + size > n:
                    raise fail("FRAME: frame runs past the end of the data", at)
            frame_end = pos + size
        elif code == 0x80:  # PROTO
            if pos + 1 > n:
                data = win.grow(pos + 1)
                n = len(data)
                if pos + 1 > n:
                    raise fail("PROTO: truncated", at)
            value = data[pos]
            pos += 1
            if value > _HIGHEST_PROTOCOL:
                raise fail(f"unsupported pickle protocol: {value}", at)
            if seen_proto or at != 0:
                result.anomalies.append(
                    Anomaly(
                        "proto-misplaced",
                        base + at,
                        f"PROTO {value} after the first opcode or repeated",
                    )
                )
            seen_proto = True
            proto = value
            result.proto = value
        elif code == 0x2E:  # STOP
            if len(stack) <= fence:
                raise fail("STOP with an empty stack", at)
            # The in-loop checks run every 4096 opcodes; a short pickle is judged here.
            if ops > max_ops:
                raise LimitExceeded(
                    "max_opcodes", f"more than max_opcodes ({max_ops}) opcodes", base + at
                )
            if len(memo) > limits.max_memo:
                raise LimitExceeded(
                    "max_memo", f"memo larger than max_memo ({limits.max_memo})", base + at
                )
            result.value = stack[-1]
            result.complete = True
            result.end = base + pos
            result.opcodes = ops
            if frame_end > pos:
                result.anomalies.append(
                    Anomaly(
                        "frame-overrun",
                        base + at,
                        f"STOP {frame_end - pos} bytes before the end of the current frame",
                    )
                )
            return
        elif code == 0x30:  # POP
            if len(stack) > fence:
                stack.pop()
            elif marks:
                # An empty mark region: CPython pops the mark itself.
                marks.pop()
                fence = marks[-1] if marks else 0
            else:
                raise fail("unpickling stack underflow", at)
        elif code == 0x31:  # POP_MARK
            if not marks:
                raise fail("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            del stack[k:]
        elif code == 0x32:  # DUP
            if len(stack) <= fence:
                raise fail("unpickling stack underflow", at)
            stack.append(stack[-1])
        elif code == 0x8F:  # EMPTY_SET
            stack.append(SetV([], frozen=False))
        elif code == 0x90:  # ADDITEMS
            if not marks:
                raise fail("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            vals = stack[k:]
            del stack[k:]
            if len(stack) <= fence:
                raise fail("unpickling stack underflow", at)
            target = stack[-1]
            if isinstance(target, (SetV, CallResult)):
                target.items.extend(vals)
            elif vals:
                result.mutations.append(Mutation("additems", target, vals, base + at))
        elif code == 0x91:  # FROZENSET
            if not marks:
                raise fail("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            vals = stack[k:]
            del stack[k:]
            stack.append(SetV(vals, frozen=True))
        elif code == 0x6C:  # LIST
            if not marks:
                raise fail("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            vals = stack[k:]
            del stack[k:]
            stack.append(ListV(vals))
        elif code == 0x64:  # DICT
            if not marks:
                raise fail("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            flat = stack[k:]
            del stack[k:]
            if len(flat) % 2:
                raise fail("odd number of items for DICT", at)
            stack.append(DictV(list(zip(flat[::2], flat[1::2], strict=True))))
        elif code == 0x47:  # BINFLOAT
            if pos + 8 > n:
                data = win.grow(pos + 8)
                n = len(data)
                if pos + 8 > n:
                    raise fail("BINFLOAT: truncated", at)
            stack.append(_unpack_d(data, pos)[0])
            pos += 8
        elif code == 0x8A or code == 0x8B:  # LONG1, LONG4
            width = 1 if code == 0x8A else 4
            if pos + width > n:
                data = win.grow(pos + width)
                n = len(data)
                if pos + width > n:
                    raise fail("truncated length", at)
            length = int.from_bytes(data[pos : pos + width], "little", signed=code == 0x8B)
            pos += width
            if length < 0:
                raise fail("LONG pickle has negative byte count", at)
            if pos + length > n:
                data = win.grow(pos + length)
                n = len(data)
                if pos + length > n:
                    raise fail("pickle data was truncated", at)
            stack.append(int.from_bytes(data[pos : pos + length], "little", signed=True))
            pos += length
        elif code in (0x54, 0x8D, 0x8E, 0x96):  # BINSTRING, BINUNICODE8, BINBYTES8, BYTEARRAY8
            width = 4 if code == 0x54 else 8
            if pos + width > n:
                data = win.grow(pos + width)
                n = len(data)
                if pos + width > n:
                    raise fail("truncated length", at)
            length = int.from_bytes(data[pos : pos + width], "little", signed=code == 0x54)
            pos += width
            if length < 0:
                raise fail("BINSTRING pickle has negative byte count", at)
            if length > _BIG:
                data, base, n, pos, frame_end = _skip_big(
                    win, result, stack, at, pos, length, frame_end, code
                )
                continue
            if pos + length > n:
                data = win.grow(pos + length)
                n = len(data)
                if pos + length > n:
                    raise fail("pickle data was truncated", at)
            raw = data[pos : pos + length]
            pos += length
            if code == 0x54:
                stack.append(raw.decode("latin-1"))
            elif code == 0x8D:
                try:
                    stack.append(raw.decode("utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    raise fail("invalid UTF-8 in a unicode string", at) from None
            else:
                stack.append(raw)
        elif code in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
            width = {0x82: 1, 0x83: 2, 0x84: 4}[code]
            if pos + width > n:
                data = win.grow(pos + width)
                n = len(data)
                if pos + width > n:
                    raise fail("EXT: truncated", at)
            ext = int.from_bytes(data[pos : pos + width], "little", signed=code == 0x84)
            pos += width
            opname = {0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4"}[code]
            if ext <= 0:
                raise fail("EXT specifies code <= 0", at)
            pair = registry.get(ext)
            if pair is not None:
                ref = GlobalRef(pair[0], pair[1], base + at, opname, proto)
                imports.append(ref)
                stack.append(ref)
            else:
                xref = ExtRef(ext, base + at, opname)
                result.ext_refs.append(xref)
                stack.append(xref)
        elif code == 0x97:  # NEXT_BUFFER
            stack.append(BufferRef(base + at))
        elif code == 0x98:  # READONLY_BUFFER
            if len(stack) <= fence:
                raise fail("unpickling stack underflow", at)
        elif code in (0x46, 0x49, 0x4C, 0x50, 0x53, 0x56, 0x67, 0x70):
            # FLOAT, INT, LONG, PERSID, STRING, UNICODE, GET, PUT: newline-terminated
            end = data.find(b"\n", pos)
            while end < 0:
                if n - pos > limits.max_line_bytes:
                    raise LimitExceeded(
                        "max_line_bytes",
                        f"line argument longer than max_line_bytes ({limits.max_line_bytes})",
                        base + at,
                    )
                grown = win.grow(n + 1)
                if len(grown) == n:
                    raise fail("pickle data was truncated (unterminated line)", at)
                data = grown
                n = len(data)
                end = data.find(b"\n", pos)
            raw = data[pos:end]
            pos = end + 1
            if code == 0x49:  # INT
                if raw == b"00":
                    stack.append(False)
                elif raw == b"01":
                    stack.append(True)
                else:
                    stack.append(_c_int(raw, at, "INT"))
            elif code == 0x4C:  # LONG
                stack.append(_c_int(raw[:-1] if raw.endswith(b"L") else raw, at, "LONG"))
            elif code == 0x46:  # FLOAT
                try:
                    stack.append(float(raw))
                except ValueError:
                    raise fail("FLOAT: invalid argument", at) from None
            elif code == 0x53:  # STRING
                stack.append(_decode_string_line(raw.rstrip(b"\r"), at))
            elif code == 0x56:  # UNICODE
                try:
                    stack.append(raw.decode("raw-unicode-escape"))
                except UnicodeDecodeError:
                    raise fail("UNICODE: bad escape", at) from None
            elif code == 0x50:  # PERSID
                try:
                    pid = raw.decode("ascii")
                except UnicodeDecodeError:
                    raise fail("PERSID: persistent IDs in protocol 0 must be ASCII", at) from None
                pref = PersRef(pid, base + at)
                result.persids.append(pref)
                stack.append(pref)
            elif code == 0x67:  # GET
                key = _line_int(raw, at, "GET")
                if key not in memo:
                    raise fail(f"memo value not found at index {key}", at)
                stack.append(memo[key])
            else:  # PUT
                key = _line_int(raw, at, "PUT")
                if key < 0:
                    raise fail("negative PUT argument", at)
                if len(stack) <= fence:
                    raise fail("memo PUT with an empty stack", at)
                memo[key] = stack[-1]
        else:
            raise fail(f"invalid load key, 0x{code:02x}", at)

        if at < frame_end < pos:
            # CPython's C unpickler before 3.13.15/3.14.7 (gh-154848) could execute the bytes
            # after the frame end as opcodes; keep their span for a second reading.
            result.anomalies.append(
                Anomaly(
                    "frame-overrun",
                    base + at,
                    f"opcode argument runs {pos - frame_end} bytes past the end of its FRAME",
                    (base + frame_end, base + pos),
                )
            )


def _skip_big(
    win: _Window,
    result: PickleResult,
    stack: list[object],
    at: int,
    pos: int,
    length: int,
    frame_end: int,
    code: int,
) -> tuple[bytes, int, int, int, int]:
    """Push a large literal as BigData and move the window past it without reading it.

    Returns the new (data, base, n, pos, frame_end) of the decoding loop.

    Raises:
        _Fail: the literal runs past the end of the blob (the loader fails there too).
    """
    base = win.base
    start = base + pos
    if start + length > win.blob.size:
        raise _Fail("pickle data was truncated", base + at)
    end_rel = pos + length
    if at < frame_end < end_rel:
        result.anomalies.append(
            Anomaly(
                "frame-overrun",
                base + at,
                f"opcode argument runs {end_rel - frame_end} bytes past the end of its FRAME",
                (base + frame_end, base + end_rel),
            )
        )
    frame_abs = base + frame_end if frame_end > end_rel else -1
    kind = "bytes" if code in (0x42, 0x43, 0x8E) else "bytearray" if code == 0x96 else "str"
    stack.append(BigData(win.blob, start, length, kind))
    data = win.jump(end_rel)
    new_base = win.base
    return data, new_base, len(data), 0, (frame_abs - new_base if frame_abs >= 0 else -1)


def _model_call(call: CallResult, registry: ExtRegistry) -> None:
    """Apply the few calls whose effect later opcodes depend on (copyreg registration)."""
    func = call.func
    if (
        isinstance(func, GlobalRef)
        and func.module in _COPYREG
        and func.name == "add_extension"
        and isinstance(call.args, tuple)
        and len(call.args) == 3
    ):
        module, name, code = call.args
        if isinstance(module, str) and isinstance(name, str) and isinstance(code, int):
            registry[code] = (module, name)


def _model_registry_write(
    target: object, pairs: list[tuple[object, object]], reg: ExtRegistry
) -> None:
    """Apply writes into copyreg's inverted registry (what EXT opcodes look codes up in)."""
    if (
        isinstance(target, GlobalRef)
        and target.module in _COPYREG
        and target.name == "_inverted_registry"
    ):
        for key, value in pairs:
            if (
                isinstance(key, int)
                and isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, str) for v in value)
            ):
                reg[key] = (str(value[0]), str(value[1]))


def _joblib_array(
    win: _Window,
    abs_pos: int,
    state: DictV,
    result: PickleResult,
    limits: Limits,
    registry: ExtRegistry,
    depth: int,
) -> int:
    """Account for the array data joblib writes after a NumpyArrayWrapper's BUILD.

    Returns the number of bytes to skip from `abs_pos`. Object arrays are a whole pickle
    written there, which is analysed as a nested result.

    Raises:
        _Fail: the array size cannot be determined or the data is missing.
    """
    dtype = state.get("dtype")
    shape = state.get("shape")
    info = _dtype_info(dtype)
    if info is None or not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        raise _Fail("joblib array wrapper with an unknown dtype or shape", abs_pos)
    itemsize, has_object = info
    if has_object:
        if depth + 1 > limits.max_depth:
            raise LimitExceeded("max_depth", "joblib object arrays nested too deeply", abs_pos)
        inner = run_pickle(win.blob, abs_pos, limits, registry, depth=depth + 1)
        result.nested.append(inner)
        if inner.error is not None:
            raise _Fail(f"joblib object array pickle: {inner.error}", inner.end)
        return inner.end - abs_pos
    skip = 0
    # joblib >= 1.2 pads array data to an alignment: one length byte, then that many bytes.
    if state.get("numpy_array_alignment_bytes") is not None:
        pad = win.blob.read(abs_pos, 1)
        if not pad:
            raise _Fail("joblib array: missing alignment padding", abs_pos)
        skip = 1 + pad[0]
    count = 1
    for dim in shape:
        if dim < 0:
            raise _Fail("joblib array with a negative dimension", abs_pos)
        count *= dim
    skip += count * itemsize
    if abs_pos + skip > win.blob.size:
        raise _Fail("joblib array data runs past the end of the file", abs_pos)
    result.skipped_bytes += skip
    return skip
