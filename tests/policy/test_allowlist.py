"""The shipped allowlist: its shape, what it must never contain, and what it must cover.

Coverage is measured on artifacts made by the real libraries (``factories.benign``): every
global their pickle streams name must be allowlisted, except ``__main__`` classes and the
globals a suspicious sample declares in ``unlisted``. Globals are found by walking opcodes with
``pickletools.genops`` and a small symbolic stack; nothing is ever unpickled.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import io
import lzma
import math
import pickletools
import re
import tomllib
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from factories.benign import SAMPLES, BenignSample

ALLOWLIST = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "modelguard"
    / "policy"
    / "data"
    / "allowlist.toml"
)

# Globals that can run code, import by name, touch files/network/processes, or wrap a call.
# None may match any allowlist entry, literal or pattern. Modules in FORBIDDEN_MODULES are
# checked with a few representative names each (patterns are matched against them too).
FORBIDDEN = {
    f"{mod}:{name}"
    for mod in ("builtins", "__builtin__")
    for name in (
        "getattr",
        "setattr",
        "delattr",
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "type",
        "map",
        "filter",
        "vars",
        "globals",
        "locals",
        "input",
        "breakpoint",
        "help",
        "exit",
        "quit",
        "super",
        "classmethod",
        "staticmethod",
        "property",
        "memoryview",
        "print",
    )
} | {
    "functools:partial",
    "functools:reduce",
    "functools:partialmethod",
    "functools:wraps",
    "_functools:partial",
    "_functools:reduce",
    "copyreg:add_extension",
    "copy_reg:add_extension",
    "copyreg:pickle",
    "torch:load",
    "torch.serialization:load",
    "torch.storage:_load_from_bytes",
    "torch.jit:load",
    "torch._C:import_ir_module",
    "torch.hub:load",
    "torch.hub:download_url_to_file",
    "numpy:load",
    "numpy.lib.npyio:load",
    "numpy:loadtxt",
    "numpy:fromfile",
    "numpy:memmap",
    "numpy.testing._private.utils:runstring",
    "joblib:load",
    "joblib.numpy_pickle:load",
    "codecs:open",
    "io:open",
    "_io:open",
    "_io:FileIO",
    "pandas:read_pickle",
    "numpy.core:_ufunc_reconstruct",
    "numpy._core:_ufunc_reconstruct",
    "joblib.numpy_pickle:NDArrayWrapper",
    "joblib.numpy_pickle_compat:NDArrayWrapper",
    "joblib.numpy_pickle_compat:ZNDArrayWrapper",
    "pandas.io.pickle:read_pickle",
    "pandas:eval",
    "pandas.core.computation.eval:eval",
    "transformers:pipeline",
    "re:_compile",
    "tempfile:mktemp",
    "webbrowser:open",
    "runpy:run_path",
    "code:InteractiveInterpreter.runsource",
    "dill._dill:_create_function",
    "dill._dill:_create_code",
    "dill._dill:_load_type",
    "cloudpickle.cloudpickle:_make_function",
    "cloudpickle.cloudpickle:subimport",
}
FORBIDDEN_MODULES = (
    "os",
    "posix",
    "nt",
    "sys",
    "subprocess",
    "_posixsubprocess",
    "importlib",
    "importlib.util",
    "pkgutil",
    "marshal",
    "ctypes",
    "_ctypes",
    "shutil",
    "socket",
    "operator",
    "_operator",
    "pickle",
    "_pickle",
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "torch.hub",
    "torch.jit",
    "torch._dynamo",
    "torch._inductor",
    "torch.utils.cpp_extension",
    "asyncio",
    "multiprocessing",
    "threading",
    "signal",
    "inspect",
    "code",
    "codeop",
    "runpy",
    "pdb",
    "webbrowser",
    "urllib.request",
    "http.client",
)
FORBIDDEN_MODULE_NAMES = (
    "system",
    "popen",
    "Popen",
    "run",
    "call",
    "loads",
    "load",
    "import_module",
    "attrgetter",
    "methodcaller",
    "itemgetter",
    "FunctionType",
    "CodeType",
    "CDLL",
    "rmtree",
    "socket",
    "Thread",
    "getsource",
    "interact",
    "run_path",
    "open",
    "chdir",
    "exit",
)

_KEY = re.compile(r"^[A-Za-z0-9_.*?\[\]-]+:[A-Za-z0-9_.*?\[\]-]+$")


def _load() -> dict[str, str]:
    with ALLOWLIST.open("rb") as f:
        doc = tomllib.load(f)
    assert set(doc) == {"allow", "allow_new"}, "allowlist.toml has [allow] and [allow_new]"
    allow, allow_new = doc["allow"], doc["allow_new"]
    assert isinstance(allow, dict) and isinstance(allow_new, dict)
    assert not set(allow) & set(allow_new), "an entry belongs to one table"
    # [allow_new] entries are allowed only as NEWOBJ classes; the scanner enforces that, the
    # coverage checks here only need to know the name is listed.
    return {**allow, **allow_new}


ALLOW = _load()
_LITERALS = {k for k in ALLOW if not any(c in k for c in "*?[")}
_PATTERNS = [k.split(":", 1) for k in ALLOW if k not in _LITERALS]


def allowed(name: str) -> bool:
    """Is ``module:qualname`` on the allowlist (literally or through a glob pattern)?"""
    if name in _LITERALS:
        return True
    module, _, qualname = name.partition(":")
    return any(
        fnmatch.fnmatchcase(module, mp) and fnmatch.fnmatchcase(qualname, np)
        for mp, np in _PATTERNS
    )


# --------------------------------------------------------------------------------------------
# (a) the file itself


def test_allowlist_is_not_empty() -> None:
    assert len(ALLOW) > 100


@pytest.mark.parametrize("key", sorted(ALLOW))
def test_entry_shape(key: str) -> None:
    assert _KEY.match(key), f"{key!r} is not 'module:qualname'"
    module, qualname = key.split(":")
    assert not module.startswith(".") and not module.endswith("."), key
    assert ".." not in module and ".." not in qualname, key
    reason = ALLOW[key]
    assert isinstance(reason, str), key
    assert len(reason.split()) >= 4, f"{key}: the reason should be a sentence"
    assert reason[0].isalnum() and reason.endswith("."), f"{key}: {reason!r}"
    assert "\n" not in reason, key


def test_patterns_are_few() -> None:
    # Patterns in [allow_new] only admit NEWOBJ + BUILD of classes; [allow] patterns admit
    # any call, so they are kept fewer still.
    with ALLOWLIST.open("rb") as f:
        doc = tomllib.load(f)
    plain = [k for k in doc["allow"] if any(c in k for c in "*?[")]
    construct_only = [k for k in doc["allow_new"] if any(c in k for c in "*?[")]
    assert len(plain) <= 6, "use patterns sparingly; prefer literal entries"
    assert len(construct_only) <= 10, "use patterns sparingly; prefer literal entries"


def test_module_side_patterns_stay_inside_a_package() -> None:
    # A pattern like "*:Foo" would let a pickle import any module (import side effects).
    for module, _qualname in _PATTERNS:
        head = module.split(".")[0]
        assert not any(c in head for c in "*?["), module


# Reviewed exceptions inside a forbidden package: TorchScript archive helpers that return their
# argument unchanged (torch/jit/_pickle.py).
_FORBIDDEN_MODULE_EXCEPTIONS = frozenset(
    f"torch.jit._pickle:{name}"
    for name in (
        "build_intlist",
        "build_tensorlist",
        "build_doublelist",
        "build_boollist",
        "build_tensor_from_id",
        "restore_type_tag",
    )
)


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_forbidden_globals_are_not_allowed(name: str) -> None:
    assert not allowed(name)


@pytest.mark.parametrize("module", FORBIDDEN_MODULES)
def test_forbidden_modules_are_not_allowed(module: str) -> None:
    for key in ALLOW:
        mp = key.split(":", 1)[0]
        if key in _FORBIDDEN_MODULE_EXCEPTIONS:
            continue
        assert not (mp == module or mp.startswith(module + ".")), key
        assert not fnmatch.fnmatchcase(module, mp), key
    for name in FORBIDDEN_MODULE_NAMES:
        assert not allowed(f"{module}:{name}")


# --------------------------------------------------------------------------------------------
# (b) coverage: an opcode walk that finds every global a pickle stream names


@dataclass
class _Global:
    module: str
    name: str


@dataclass
class _Call:
    func: Any
    args: Any
    state: Any = None


@dataclass
class _Opaque:
    what: str


_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_LOAD_FROM_BYTES = ("torch.storage", "_load_from_bytes")
_LITERAL_OPS = {
    "INT",
    "BININT",
    "BININT1",
    "BININT2",
    "LONG",
    "LONG1",
    "LONG4",
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "BINBYTES",
    "SHORT_BINBYTES",
    "BINBYTES8",
    "UNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "FLOAT",
    "BINFLOAT",
    "BYTEARRAY8",
}


@dataclass
class _Walk:
    """A symbolic pickle stack: values are literals, containers, _Global, _Call or _Opaque."""

    f: BinaryIO
    found: set[str] = field(default_factory=set)

    def run(self) -> None:
        """Walk one pickle (up to STOP), recording every global it names."""
        stack: list[Any] = []
        marks: list[list[Any]] = []
        memo: dict[int, Any] = {}

        def pop_mark() -> list[Any]:
            nonlocal stack
            items, stack = stack, marks.pop()
            return items

        for op, arg, _pos in pickletools.genops(self.f):
            name = op.name
            if name in _LITERAL_OPS:
                stack.append(arg)
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name in ("GLOBAL", "INST"):
                module, qualname = arg.split(" ", 1)
                g = self._global(module, qualname)
                # pop the mark before touching ``stack``: pop_mark() rebinds it
                value = _Call(g, tuple(pop_mark())) if name == "INST" else g
                stack.append(value)
            elif name == "STACK_GLOBAL":
                qualname, module = stack.pop(), stack.pop()
                assert isinstance(module, str) and isinstance(qualname, str), "unresolved"
                stack.append(self._global(module, qualname))
            elif name == "MARK":
                marks.append(stack)
                stack = []
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "EMPTY_TUPLE"):
                stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_SET": []}.get(name, ()))
            elif name in ("TUPLE", "LIST", "FROZENSET"):
                items = pop_mark()
                stack.append(tuple(items) if name == "TUPLE" else items)
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = stack[-n:]
                del stack[-n:]
                stack.append(tuple(items))
            elif name == "DICT":
                value = self._dict({}, pop_mark())
                stack.append(value)
            elif name == "APPEND":
                item = stack.pop()
                if isinstance(stack[-1], list):
                    stack[-1].append(item)
            elif name in ("APPENDS", "ADDITEMS"):
                items = pop_mark()
                if isinstance(stack[-1], list):
                    stack[-1].extend(items)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                if isinstance(stack[-1], dict):
                    self._dict(stack[-1], [key, value])
            elif name == "SETITEMS":
                items = pop_mark()
                if isinstance(stack[-1], dict):
                    self._dict(stack[-1], items)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("REDUCE", "NEWOBJ"):
                args = stack.pop()
                call = _Call(stack.pop(), args)
                self._nested(call)
                stack.append(call)
            elif name == "NEWOBJ_EX":
                _kwargs, args = stack.pop(), stack.pop()
                stack.append(_Call(stack.pop(), args))
            elif name == "OBJ":
                items = pop_mark()
                stack.append(_Call(items[0], tuple(items[1:])))
            elif name == "BUILD":
                state = stack.pop()
                target = stack[-1]
                if isinstance(target, _Call):
                    target.state = state
                    self._after_build(target)
            elif name == "PERSID":
                stack.append(_Opaque(f"persid {arg!r}"))
            elif name == "BINPERSID":
                stack.append(_Opaque(f"persid {stack.pop()!r}"))
            elif name in ("EXT1", "EXT2", "EXT4"):
                self.found.add(f"<extension code {arg}>")
                stack.append(_Opaque("ext"))
            elif name == "NEXT_BUFFER":
                stack.append(_Opaque("buffer"))
            elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
                pass
            elif name == "STOP":
                return
            else:  # pragma: no cover - pickletools knows no other opcodes
                raise AssertionError(f"unhandled opcode {name}")

    def _global(self, module: str, qualname: str) -> _Global:
        self.found.add(f"{module}:{qualname}")
        return _Global(module, qualname)

    @staticmethod
    def _dict(d: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
        for k, v in zip(items[::2], items[1::2], strict=True):
            if isinstance(k, str | int | bytes | float | bool | None):
                d[k] = v
        return d

    def _nested(self, call: _Call) -> None:
        # A storage pickled by the stdlib pickler is torch.storage._load_from_bytes(b), where b
        # is a whole legacy torch.save stream: its globals count too.
        func, args = call.func, call.args
        if (
            isinstance(func, _Global)
            and (func.module, func.name) == _LOAD_FROM_BYTES
            and isinstance(args, tuple)
            and len(args) == 1
            and isinstance(args[0], bytes)
        ):
            self.found |= _globals_of_bytes(args[0])

    def _after_build(self, obj: _Call) -> None:
        # joblib writes each ndarray as a NumpyArrayWrapper followed by the raw array bytes
        # (or, for object arrays, by a nested protocol-5 pickle) in the middle of the stream.
        func = obj.func
        if not (isinstance(func, _Global) and (func.module, func.name) == _JOBLIB_WRAPPER):
            return
        state = obj.state
        dtype = state["dtype"]
        assert isinstance(dtype, _Call), dtype
        descr = dtype.args[0]
        if descr.startswith("O"):
            self.run()
            return
        # dtype state is (version, byteorder, subarray, names, fields, elsize, alignment,
        # flags); elsize is -1 for fixed-size types, whose size is in the descr ("f8").
        elsize = dtype.state[5]
        itemsize = elsize if elsize > 0 else int(descr[1:])
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.f.read(1)[0]
            self.f.seek(padding, io.SEEK_CUR)
        self.f.seek(math.prod(state["shape"]) * itemsize, io.SEEK_CUR)


def _walk_pickles(data: bytes, count: int = 1) -> set[str]:
    walk = _Walk(io.BytesIO(data))
    for _ in range(count):
        walk.run()
    return walk.found


_LEGACY_TORCH = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def _npy_pickle(data: bytes) -> set[str]:
    assert data[:6] == b"\x93NUMPY"
    if data[6] == 1:
        start, size = 10, int.from_bytes(data[8:10], "little")
    else:
        start, size = 12, int.from_bytes(data[8:12], "little")
    header = data[start : start + size].decode("latin-1")
    if "'descr': '|O'" not in header:
        return set()
    return _walk_pickles(data[start + size :])


def _decompress(data: bytes) -> bytes:
    if data[:1] == b"\x78":
        return zlib.decompress(data)
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00" or data[:3] == b"\x5d\x00\x00":
        return lzma.decompress(data)
    return data


def _globals_of_bytes(data: bytes) -> set[str]:
    if data[:4] == b"PK\x03\x04":
        found: set[str] = set()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                if member.endswith(".pkl"):
                    found |= _walk_pickles(zf.read(member))
                elif member.endswith(".npy"):
                    found |= _npy_pickle(zf.read(member))
        return found
    if data[:6] == b"\x93NUMPY":
        return _npy_pickle(data)
    if data.startswith(_LEGACY_TORCH):
        # magic number, protocol version, sys info, the object, the storage keys; raw after.
        return _walk_pickles(data, count=5)
    return _walk_pickles(_decompress(data))


def globals_of(path: Path) -> set[str]:
    """Every ``module:qualname`` the pickle streams inside the file at ``path`` name."""
    return _globals_of_bytes(path.read_bytes())


_PLAIN_NPY = re.compile(r"^numpy-npy-(?!object)")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_benign_globals_are_allowlisted(sample: BenignSample, built: dict[str, Path]) -> None:
    for module in sample.requires:
        pytest.importorskip(module)
    names = globals_of(built[sample.id])
    if _PLAIN_NPY.match(sample.id):
        assert names == set(), "plain .npy files hold no pickle"
        return
    missing = {n for n in names if not allowed(n)}
    main = {n for n in missing if n.startswith("__main__:")}
    assert not (missing - main - sample.unlisted), (
        f"{sample.id} references globals that are not allowlisted: "
        f"{sorted(missing - main - sample.unlisted)}"
    )
    if not sample.may_be_suspicious:
        assert not main, f"{sample.id}: __main__ globals in a sample that must be clean: {main}"


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.unlisted], ids=lambda s: s.id)
def test_declared_unlisted_globals_really_are_unlisted(sample: BenignSample) -> None:
    assert sample.may_be_suspicious
    for name in sample.unlisted:
        assert not allowed(name), f"{name} is allowlisted; drop it from {sample.id}.unlisted"


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.may_be_suspicious], ids=lambda s: s.id)
def test_suspicious_samples_do_reference_something_unlisted(
    sample: BenignSample, built: dict[str, Path]
) -> None:
    for module in sample.requires:
        pytest.importorskip(module)
    names = globals_of(built[sample.id])
    assert any(not allowed(n) for n in names), f"{sample.id} is fully allowlisted"


def test_sample_ids_are_unique() -> None:
    ids = [s.id for s in SAMPLES]
    assert len(ids) == len(set(ids))


def test_walker_resolves_memoised_stack_globals() -> None:
    # STACK_GLOBAL operands fetched from the memo (BINGET), as protocol 4 writes repeats.
    import collections
    import pickle

    data = pickle.dumps([collections.OrderedDict(), collections.OrderedDict(a=1)], protocol=4)
    assert _walk_pickles(data) == {"collections:OrderedDict"}
