"""A pickle loader that enforces the allowlist policy while it loads.

`SafeUnpickler` resolves only names the policy allowlists (`Policy.classify`), the same tables
the scanner judges with, and checks how each resolved object is used:

* a callable may be called (REDUCE, INST, OBJ) only if it was resolved from the allowlist as
  callable; a construct-only class (`[allow_new]`) may only be rebuilt by NEWOBJ/NEWOBJ_EX,
  which runs `__new__` but not `__init__`;
* the conditional callables of the policy get guarded stand-ins: `getattr` is judged by the
  attribute it reaches, `type` accepts one argument, `functools.partial` wraps only vetted
  callables, `pickle.loads`/`pickle.load` load through this same unpickler, other loaders are
  refused;
* BUILD, APPEND(S), SETITEM(S) and ADDITEMS may not mutate a resolved global (a class, module or
  function); BUILD may only call the class's own `__setstate__` (not one planted in the
  instance or produced by `__getattr__`), may not write dunders into an instance, and the
  states of the few classes whose `__setstate__` runs code are checked as the scanner checks
  them (scipy argument templates, torch ScriptObject class names);
* allowlisted helpers that call one of their arguments (`_rebuild_from_type_v2`, the numpy
  random ctors, dill's `_create_array`, ...: `policy.names.CALLEE_ARGS`) accept only vetted
  callables and allowlisted classes there; a getattr default must be inert or vetted, and
  getattr on an instance never reads a private attribute;
* TorchScript names (`__torch__...`) are never imported, and a name matched by an allowlist
  pattern is imported only from a compiled extension module; import failures are refusals;
* `torch.storage._load_from_bytes` (plain-pickled tensors) loads the embedded checkpoint with
  the same policy enforced, and refuses TorchScript archives (torch.load would hand them to
  torch.jit.load, which runs their code);
* extension codes (copyreg registry) are resolved through the same check, never from the
  process-wide cache; persistent ids are refused unless a subclass defines `persistent_load`.

The executing engine is CPython's pure-Python unpickler (`pickle._Unpickler`) with those opcodes
replaced, so the checks run on exactly what is executed (no second parser that could disagree).
It is about 10x slower than the C unpickler per opcode (1M pickled floats: ~0.26 s instead of
~0.03 s); array data (NumPy, torch) is bytes and costs nothing extra. The bookkeeping of what
was resolved lives in `modelguard.guard.vetting`.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, ClassVar

from modelguard.guard.vetting import Vetting, refuse
from modelguard.policy import Policy

if TYPE_CHECKING:
    from modelguard.verification import VerifiedModel

__all__ = ["SafeUnpickler", "safe_load", "safe_loads"]


def _make_engine(base: type[Any]) -> type[Any]:
    """Return a subclass of the pure-Python unpickler `base` with the checked opcodes."""

    class Engine(base):  # type: ignore[misc]
        dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(base.dispatch)
        _vet: Vetting
        _outer: Any

        def find_class(self, module: str, name: str) -> object:
            return self._outer.find_class(module, name)

        def persistent_load(self, pid: object) -> object:
            self._vet.check_values((pid,), "a persistent id")
            return self._outer.persistent_load(pid)

        def get_extension(self, code: int) -> None:
            import copyreg

            key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
            if not key:
                raise refuse(f"refused extension code {code}: not registered")
            # Resolved through the policy every time, never from the shared cache.
            self.append(self.find_class(*key))

        def load_reduce(self) -> None:
            func, args = self.stack[-2], self.stack[-1]
            self._vet.check_call(func, "REDUCE")
            self._vet.check_args_tuple(func, args)
            self._vet.check_callees(func, args)
            self._vet.check_value_args(func, args)
            base.load_reduce(self)
            self._vet.built(self.stack[-1])

        def _instantiate(self, klass: object, args: list[object]) -> None:
            self._vet.check_values(args, "an INST/OBJ argument")
            if isinstance(klass, type) and not args and not hasattr(klass, "__getinitargs__"):
                self._vet.check_class(klass, "INST/OBJ")  # klass.__new__(klass) only
            else:
                self._vet.check_call(klass, "INST/OBJ")
                self._vet.check_callees(klass, args)
                self._vet.check_value_args(klass, args)
            base._instantiate(self, klass, args)
            self._vet.built(self.stack[-1])

        def load_newobj(self) -> None:
            self._vet.check_class(self.stack[-2], "NEWOBJ")
            self._vet.check_values((self.stack[-1],), "NEWOBJ arguments")
            self._vet.check_value_args(self.stack[-2], self.stack[-1])  # __new__ parses
            base.load_newobj(self)
            self._vet.built(self.stack[-1])

        def load_newobj_ex(self) -> None:
            self._vet.check_class(self.stack[-3], "NEWOBJ_EX")
            self._vet.check_values(self.stack[-2:], "NEWOBJ_EX arguments")
            self._vet.check_value_args(self.stack[-3], self.stack[-2], self.stack[-1])
            base.load_newobj_ex(self)
            self._vet.built(self.stack[-1])

        def load_build(self) -> None:
            self._vet.check_values((self.stack[-1],), "a BUILD state")
            self._vet.check_build(self.stack[-2], self.stack[-1])
            base.dispatch[pickle.BUILD[0]](self)

        def load_append(self) -> None:
            self._vet.check_target(self.stack[-2], "APPEND")
            self._vet.check_values((self.stack[-1],), "APPEND")
            base.load_append(self)

        def load_setitem(self) -> None:
            self._vet.check_target(self.stack[-3], "SETITEM")
            self._vet.check_values(self.stack[-2:], "SETITEM")
            base.load_setitem(self)

        # A construct-only class may not become a value: every opcode that stores one
        # somewhere (containers, tuples, the load's result) is checked.
        def load_tuple(self) -> None:
            base.load_tuple(self)
            self._vet.new_tuple(self.stack[-1])

        def load_tuple1(self) -> None:
            base.load_tuple1(self)
            self._vet.new_tuple(self.stack[-1])

        def load_tuple2(self) -> None:
            base.load_tuple2(self)
            self._vet.new_tuple(self.stack[-1])

        def load_tuple3(self) -> None:
            base.load_tuple3(self)
            self._vet.new_tuple(self.stack[-1])

        def load_list(self) -> None:
            self._vet.check_values(self.stack, "a list")
            base.load_list(self)

        def load_dict(self) -> None:
            self._vet.check_values(self.stack, "a dict")
            base.load_dict(self)

        def load_frozenset(self) -> None:
            self._vet.check_values(self.stack, "a frozenset")
            base.load_frozenset(self)

        def load_stop(self) -> None:
            self._vet.check_values(self.stack[-1:], "the load's result")
            base.load_stop(self)

        def _marked_target(self, opcode: str) -> None:
            below = self.metastack[-1] if self.metastack else []
            if below:
                self._vet.check_target(below[-1], opcode)

        def load_appends(self) -> None:
            self._marked_target("APPENDS")
            self._vet.check_values(self.stack, "APPENDS")
            base.load_appends(self)

        def load_setitems(self) -> None:
            self._marked_target("SETITEMS")
            self._vet.check_values(self.stack, "SETITEMS")
            base.load_setitems(self)

        def load_additems(self) -> None:
            self._marked_target("ADDITEMS")
            self._vet.check_values(self.stack, "ADDITEMS")
            base.load_additems(self)

    table = Engine.dispatch
    for opcode, method in (
        (pickle.REDUCE, Engine.load_reduce),
        (pickle.NEWOBJ, Engine.load_newobj),
        (pickle.NEWOBJ_EX, Engine.load_newobj_ex),
        (pickle.BUILD, Engine.load_build),
        (pickle.APPEND, Engine.load_append),
        (pickle.APPENDS, Engine.load_appends),
        (pickle.SETITEM, Engine.load_setitem),
        (pickle.SETITEMS, Engine.load_setitems),
        (pickle.ADDITEMS, Engine.load_additems),
        (pickle.TUPLE, Engine.load_tuple),
        (pickle.TUPLE1, Engine.load_tuple1),
        (pickle.TUPLE2, Engine.load_tuple2),
        (pickle.TUPLE3, Engine.load_tuple3),
        (pickle.LIST, Engine.load_list),
        (pickle.DICT, Engine.load_dict),
        (pickle.FROZENSET, Engine.load_frozenset),
        (pickle.STOP, Engine.load_stop),
    ):
        table[opcode[0]] = method
    return Engine


_Engine = _make_engine(pickle._Unpickler)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only what the policy allowlists (see the module docstring).

    Use it like `pickle.Unpickler`: `SafeUnpickler(file, policy=...).load()`. Anything the
    policy does not allow raises `UnsafeLoadError` (a `pickle.UnpicklingError`) naming the
    `module:qualname`; nothing that was refused is imported.

    Subclasses may override `persistent_load` (the default refuses persistent ids) and
    `find_class` (call `super().find_class` to keep the enforcement).
    """

    def __init__(
        self,
        file: IO[bytes],
        *,
        policy: Policy | None = None,
        fix_imports: bool = True,
        encoding: str = "ASCII",
        errors: str = "strict",
        buffers: Iterable[Any] | None = None,
    ) -> None:
        super().__init__(file, fix_imports=fix_imports, encoding=encoding, errors=errors)
        self.policy = policy if policy is not None else Policy()
        options = {"encoding": encoding, "errors": errors}
        self._vet = Vetting(self.policy, options)
        self._engine = self._make_engine(file, encoding, errors, buffers)

    def _make_engine(
        self, file: IO[bytes], encoding: str, errors: str, buffers: Iterable[Any] | None = None
    ) -> Any:
        engine = _Engine(file, encoding=encoding, errors=errors, buffers=buffers)
        engine._vet = self._vet
        engine._outer = self
        return engine

    def find_class(self, module: str, name: str) -> Any:
        """Return the global `module:name` if the policy allowlists it, else raise.

        Raises:
            UnsafeLoadError: the name is denied, unknown, or a loader the guard cannot check.
        """
        return self._vet.resolve(module, name, getattr(self._engine, "proto", 4))

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids (a subclass that knows its format may override this).

        Raises:
            UnsafeLoadError: always.
        """
        raise refuse(f"refused persistent id {pid!r}: no persistent_load for this stream")

    def load(self) -> Any:
        """Read one pickle from the file and return the object, enforcing the policy.

        Raises:
            UnsafeLoadError: the stream asked for something the policy does not allow.
            pickle.UnpicklingError, EOFError: the stream is malformed or empty.
        """
        return self._engine.load()


def _load_with(file: IO[bytes], policy: Policy, options: dict[str, Any]) -> Any:
    return SafeUnpickler(file, policy=policy, **options).load()


def _verified_name(verified: VerifiedModel, file: str | os.PathLike[str]) -> str | None:
    if verified.single_file:
        return None
    path = os.fspath(file)
    root = os.fspath(verified.root)
    if os.path.isabs(path) and os.path.commonpath([os.path.abspath(root), path]) == (
        os.path.abspath(root)
    ):
        path = os.path.relpath(path, os.path.abspath(root))
    return path.replace(os.sep, "/")


def safe_load(
    file: str | os.PathLike[str] | IO[bytes],
    *,
    policy: Policy | None = None,
    verified: VerifiedModel | None = None,
    encoding: str = "ASCII",
    errors: str = "strict",
) -> Any:
    """Load one pickle from a path or binary file, enforcing the allowlist policy.

    Args:
        file: a path, or a binary file object positioned at the pickle.
        policy: the allowlist (default: the shipped one).
        verified: a `VerifiedModel`: `file` names one of its files (a path under its root or a
            model-relative name; ignored for a single-file model), opened through
            `VerifiedModel.open` so a file changed since verification is not loaded.
        encoding, errors: as for `pickle.load` (Python 2 strings).

    Raises:
        UnsafeLoadError: the pickle asked for something the policy does not allow.
        FileChangedError: `verified` was given and the file changed since verification.
    """
    options = {"encoding": encoding, "errors": errors}
    pol = policy if policy is not None else Policy()
    if verified is not None:
        if not isinstance(file, (str, os.PathLike)):
            raise TypeError("with verified=, pass the file's name or path, not a file object")
        with verified.open(_verified_name(verified, file)) as handle:
            return _load_with(handle, pol, options)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            return _load_with(handle, pol, options)
    return _load_with(file, pol, options)


def safe_loads(
    data: bytes | bytearray | memoryview,
    *,
    policy: Policy | None = None,
    encoding: str = "ASCII",
    errors: str = "strict",
) -> Any:
    """Load a pickle from bytes, enforcing the allowlist policy (see `safe_load`).

    Raises:
        UnsafeLoadError: the pickle asked for something the policy does not allow.
    """
    pol = policy if policy is not None else Policy()
    return _load_with(io.BytesIO(bytes(data)), pol, {"encoding": encoding, "errors": errors})
