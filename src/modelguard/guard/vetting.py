"""What one policy-enforcing load has resolved, and what each resolved object may be used for.

`Vetting` is the policy side of `SafeUnpickler`: it resolves allowlisted names, hands out
guarded stand-ins for the policy's conditional callables, and answers the engine's questions
(may this be called? rebuilt by NEWOBJ? mutated by BUILD?). Objects are tracked by identity and
kept alive for the duration of the load, so identities are not reused.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import types
from collections.abc import Callable, Iterable
from typing import Any, cast

from modelguard.guard.errors import UnsafeLoadError
from modelguard.policy import Policy
from modelguard.policy.names import (
    CALLABLE_ATTRS,
    CALLEE_ARGS,
    TORCH_STATE_ARGS,
    Class,
    Conditional,
    Ruling,
    builtin_method,
    inert_literal,
    torchscript_name,
)
from modelguard.policy.states import VALUE_CTORS, arguments_problem

__all__ = ["Vetting", "describe", "refuse"]

# Dunder attributes that are plain data on an instance (np.vectorize keeps __name__, __doc__).
_INERT_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__", "__module__"})
_SCIPY_SETSTATE = ("scipy.stats.",)
_SCRIPT_CLASS_PREFIXES = (
    "__torch__.torch.classes.quantized.",
    "__torch__.torch.classes.xnnpack.",
    "__torch__.torch.classes.onednn.",
)
_PICKLE_LOADERS = {
    "pickle:loads": "loads",
    "_pickle:loads": "loads",
    "pickle:load": "load",
    "_pickle:load": "load",
}
_MISSING = object()
_CLASS_TAKERS = frozenset({"copyreg:__newobj__", "copyreg:__newobj_ex__", "copyreg:_reconstructor"})


def refuse(message: str, name: str | None = None) -> UnsafeLoadError:
    """Return the `UnsafeLoadError` to raise for a refusal (`name`: the global refused)."""
    return UnsafeLoadError(message, name=name)


def _resolve(ruling: Ruling) -> object:
    """Import `module` and walk `qualname` for an allowlisted "module:qualname".

    TorchScript names (`__torch__...`) are never imported: only the TorchScript unpickler
    resolves them, from the archive's own code. A name matched by an allowlist pattern (the
    Cython `__pyx_unpickle_*` helpers) is imported only from a compiled extension module, so a
    pattern cannot import an arbitrary Python submodule (and run its top level). Any import or
    lookup failure is a refusal.
    """
    dotted = ruling.name
    module, _, qualname = dotted.partition(":")
    if torchscript_name(module):
        raise refuse(
            f"refused {dotted}: a TorchScript class name; only torch.jit.load resolves these",
            dotted,
        )
    try:
        if ruling.pattern and not ruling.construct_only and not _is_extension(module):
            raise refuse(
                f"refused {dotted}: matched an allowlist pattern but {module} is not a compiled "
                "extension module",
                dotted,
            )
        obj: object = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except UnsafeLoadError:
        raise
    except Exception as exc:  # ImportError, AttributeError, or an error in the module's code
        raise refuse(f"refused {dotted}: it cannot be resolved ({exc!r})", dotted) from exc
    return obj


def _is_extension(module: str) -> bool:
    """Is `module` a compiled extension (found without running the module itself)?"""
    import importlib.machinery
    import importlib.util
    import sys

    loaded = sys.modules.get(module)
    if loaded is not None:
        origin = getattr(getattr(loaded, "__spec__", None), "origin", None)
    else:
        spec = importlib.util.find_spec(module)  # imports the parent packages only
        origin = spec.origin if spec is not None else None
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return isinstance(origin, str) and origin.endswith(suffixes)


class Vetting:
    """What one load has resolved, and what each resolved object may be used for."""

    def __init__(self, policy: Policy, options: dict[str, Any]) -> None:
        self.policy = policy
        self.options = options  # encoding/errors for nested pickle.loads
        self.names: dict[int, str] = {}  # id -> "module:qualname" of resolved globals
        self.callables: dict[int, object] = {}  # may be called (REDUCE/INST/OBJ)
        self.classes: dict[int, object] = {}  # may be rebuilt by NEWOBJ
        # Construct-only classes, and tuples holding one as the class operand of a copyreg
        # class taker: usable only there (or by NEWOBJ), never as a value.
        self.restricted: dict[int, object] = {}
        self.made: dict[int, object] = {}  # callable objects built by vetted calls/NEWOBJ
        self.keep: list[object] = []  # keep guard wrappers alive while ids are in use

    # -- registration -----------------------------------------------------------------
    def add(self, obj: object, ruling: Ruling) -> object:
        key = id(obj)
        self.names[key] = ruling.name
        self.keep.append(obj)
        if not ruling.construct_only:
            self.callables[key] = obj
        elif self.callables.get(key) is not obj:
            self.restricted[key] = obj
        if isinstance(obj, type):
            self.classes[key] = obj
        return obj

    def add_guard(self, fn: Callable[..., Any], name: str) -> object:
        self.names[id(fn)] = name
        self.callables[id(fn)] = fn
        self.keep.append(fn)
        return fn

    def is_global(self, obj: object) -> bool:
        return id(obj) in self.names or isinstance(obj, (type, types.ModuleType))

    # -- judging ----------------------------------------------------------------------
    def judge(self, dotted: str, proto: int = 4) -> Ruling:
        module, _, name = dotted.partition(":")
        return builtin_method(dotted) or self.policy.classify(module, name, proto)

    def resolve(self, module: str, name: str, proto: int) -> object:
        """Resolve a global named by the stream, or raise `UnsafeLoadError`."""
        ruling = self.policy.classify(module, name, proto)
        return self.admit(ruling)

    def admit(self, ruling: Ruling) -> object:
        if ruling.klass is Class.ALLOW:
            obj = _resolve(ruling)
            if ruling.name in _CLASS_TAKERS:
                return self.add_guard(self._class_taker(ruling.name, obj), ruling.name)
            if ruling.name in CALLEE_ARGS and not isinstance(obj, type):
                return self.add_guard(self._callee_checker(ruling.name, obj), ruling.name)
            return self.add(obj, ruling)
        if ruling.klass is Class.CONDITIONAL:
            return self.add_guard(self._conditional(ruling), ruling.name)
        if ruling.klass is Class.DENY:
            why = f"{ruling.family}: {ruling.reason}" if ruling.reason else ruling.family
            raise refuse(f"refused {ruling.name}: denied ({why})", ruling.name)
        raise refuse(
            f"refused {ruling.name}: not on the allowlist (add it to [allow] in a policy file "
            "with a reason if you trust it)",
            ruling.name,
        )

    # -- uses ---------------------------------------------------------------------------
    def check_call(self, func: object, opcode: str) -> None:
        if self.callables.get(id(func), _MISSING) is func:
            return
        name = self.names.get(id(func))
        if name is not None:
            raise refuse(
                f"refused {opcode} of {name}: allowlisted only for rebuilding by NEWOBJ "
                "(a call would run its __init__)",
                name,
            )
        raise refuse(f"refused {opcode} of {describe(func)}: not a vetted callable")

    # -- construct-only classes used as values, built objects, value arguments --------
    def is_restricted(self, value: object) -> bool:
        """Is `value` a construct-only class (or a tuple holding one) outside its one use?"""
        return self.restricted.get(id(value), _MISSING) is value

    def check_values(self, values: Iterable[object], where: str) -> None:
        """Refuse a construct-only class stored as a value (in a container, state, argument).

        Allowlisted code that receives the class may call it by method name (`dict(ns)`
        calls `ns.keys()`), which would run the `__init__` the policy keeps from running.
        """
        if not self.restricted:
            return
        for value in values:
            if self.is_restricted(value):
                raise refuse(self._value_use(value, where), self.names.get(id(value)))

    def _value_use(self, value: object, where: str) -> str:
        name = self.names.get(id(value)) or "a tuple holding a construct-only class"
        return (
            f"refused {where} of {name}: a construct-only class may only be rebuilt by NEWOBJ, "
            "not used as a value (code given the class could call it, running its __init__)"
        )

    def new_tuple(self, items: tuple[object, ...]) -> None:
        """Check a tuple the stream built: a construct-only class may be its first item only
        (the class operand of copyreg's class takers); such a tuple is then restricted too."""
        if not self.restricted:
            return
        for pos, value in enumerate(items):
            if self.is_restricted(value):
                if pos or not isinstance(value, type):
                    raise refuse(self._value_use(value, "a tuple"), self.names.get(id(value)))
                self.restricted[id(items)] = items

    def check_args_tuple(self, func: object, args: object) -> None:
        """REDUCE: a tuple holding a construct-only class may only go to a class taker."""
        if self.is_restricted(args):
            name = self.names.get(id(func))
            if name not in _CLASS_TAKERS or self.callables.get(id(func)) is not func:
                first = args[0] if isinstance(args, tuple) else args
                raise refuse(self._value_use(first, "an argument"), self.names.get(id(first)))
        elif not isinstance(args, tuple):
            self.check_values((args,), "an argument")

    def built(self, obj: object) -> None:
        """Record an object a vetted call or NEWOBJ built (a callable one may be a state value)."""
        if callable(obj) and not isinstance(obj, type):
            self.made[id(obj)] = obj

    def check_value_args(self, cls: object, args: object, kwargs: object = None) -> None:
        """Refuse number constructors whose arguments are a time/memory bomb (`VALUE_CTORS`)."""
        name = self.names.get(id(cls))
        if name in VALUE_CTORS:
            values = tuple(args) if isinstance(args, list) else args
            problem = arguments_problem(name, values, kwargs)
            if problem:
                raise refuse(f"refused {name} with {problem}", name)

    def check_callees(self, func: object, args: object) -> None:
        """Check the callee arguments of an allowlisted class that calls one (`CALLEE_ARGS`)."""
        name = self.names.get(id(func))
        if name in CALLEE_ARGS and isinstance(args, (tuple, list)):
            self._check_args(name, tuple(args))
        if name in TORCH_STATE_ARGS and isinstance(args, (tuple, list)):
            self._check_torch_state(name, tuple(args))

    def _check_torch_state(self, name: str, args: tuple[object, ...]) -> None:
        """Check the backward hooks and the setattr state a torch rebuilder stores."""
        hooks, state = TORCH_STATE_ARGS[name]
        if hooks is not None and hooks < len(args) and args[hooks] is not None:
            found = args[hooks]
            if not isinstance(found, dict):
                raise refuse(f"refused {name}: backward_hooks is {describe(found)}, not a dict")
            for hook in found.values():
                self.check_call(hook, f"{name} (a backward hook, called by autograd)")
        if state is not None and state < len(args):
            new_type = args[1] if name == "torch._tensor:_rebuild_from_type_v2" else None
            if new_type is None:
                import torch

                new_type = torch.nn.Parameter
            self._check_dunders(args[state], f"{name} setattr of")
            self._check_state_values(
                new_type if isinstance(new_type, type) else object, args[state]
            )

    def _check_args(self, name: str, args: tuple[object, ...]) -> None:
        for pos, use in CALLEE_ARGS[name]:
            if pos >= len(args):
                continue
            value = args[pos]
            if inert_literal(value):
                continue  # not callable: a name numpy looks up in its own table, or no factory
            if use == "call" or (use == "type" and isinstance(value, type)):
                self.check_call(value, f"{name} (argument {pos}, which it calls)")
            elif use == "type":
                continue  # an instance (a bit generator): used, not called
            else:
                self.check_class(value, f"{name} (argument {pos})")

    def check_class(self, cls: object, opcode: str) -> None:
        if self.classes.get(id(cls), _MISSING) is cls:
            return
        raise refuse(f"refused {opcode} of {describe(cls)}: not an allowlisted class")

    def check_target(self, target: object, opcode: str) -> None:
        if self.is_global(target):
            name = self.names.get(id(target)) or describe(target)
            raise refuse(f"refused {opcode} on {name}: it would change a global object", name)

    def check_build(self, inst: object, state: object) -> None:
        self.check_target(inst, "BUILD")
        # BUILD calls getattr(inst, "__setstate__"): it must be the class's own, not a value
        # planted in the instance (by an earlier BUILD or a __dict__.update in a __setstate__)
        # or produced by a __getattr__ fallback (mapping-like classes).
        found = inspect.getattr_static(inst, "__setstate__", None)
        if found is not inspect.getattr_static(type(inst), "__setstate__", None) or (
            found is None and getattr(inst, "__setstate__", None) is not None
        ):
            raise refuse("refused BUILD: the instance's __setstate__ is not its class's own")
        if found is None:
            # The default BUILD writes the state into the instance: a dunder written there
            # (`__setstate__`, `__class__`, ...) would make a later BUILD call a stream value,
            # or change what the object is.
            self._check_dunders(state, "BUILD writing")
        if isinstance(inst, functools.partial):
            func = state[0] if isinstance(state, tuple) and state else None
            self.check_call(func, "functools.partial state")
        self._check_state_values(type(inst), state)
        cls = type(inst)
        module = getattr(cls, "__module__", "") or ""
        if module.startswith(_SCIPY_SETSTATE):
            from modelguard.policy.states import scipy_template_ok

            body = state[0] if isinstance(state, tuple) and state else state
            template = body.get("_parse_arg_template") if isinstance(body, dict) else None
            if template is not None and not scipy_template_ok(template):
                raise refuse(
                    "refused BUILD: the state's _parse_arg_template is not scipy's "
                    "generated argument parser (rv_generic.__setstate__ exec()s it)"
                )
        if cls.__name__ == "ScriptObject" and module.startswith("torch"):
            named = state[1] if isinstance(state, tuple) and len(state) == 2 else None
            if not (isinstance(named, str) and named.startswith(_SCRIPT_CLASS_PREFIXES)):
                raise refuse(
                    f"refused BUILD of a torch ScriptObject naming {named!r}: not one of "
                    "torch's quantized packed-parameter classes"
                )

    def _check_dunders(self, state: object, what: str) -> None:
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if isinstance(part, dict):
                for key in part:
                    if _dunder(key) and key not in _INERT_DUNDERS:
                        raise refuse(f"refused {what} {key!r} into an instance")

    def _check_state_values(self, cls: type, state: object) -> None:
        """Refuse state values that allowlisted code would later call by attribute name.

        A key naming a method (any callable class attribute) of the instance's class may hold
        only a vetted callable or plain data: in the instance `__dict__` (or set by slot
        state) an unvetted callable would shadow the method. The callable-holding attributes
        of `CALLABLE_ATTRS` (defaultdict's factory, FunctionTransformer's func, ...) are checked
        like the "call" arguments of `CALLEE_ARGS`.
        """
        held = CALLABLE_ATTRS.get(f"{cls.__module__}:{cls.__qualname__}", frozenset())
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if not isinstance(part, dict):
                continue
            for key, value in part.items():
                if not isinstance(key, str) or inert_literal(value):
                    continue
                if key in held:
                    where = f"BUILD setting {key!r} (called after the load)"
                    for one in value.values() if isinstance(value, dict) else (value,):
                        if not inert_literal(one) and (callable(one) or one is value):
                            self.check_call(one, where)
                elif callable(value) and self.callables.get(id(value), _MISSING) is not value:
                    found = inspect.getattr_static(cls, key, _MISSING)
                    if callable(found) or isinstance(found, (staticmethod, classmethod)):
                        raise refuse(
                            f"refused BUILD writing {key!r}: it would shadow the method of "
                            f"{cls.__module__}.{cls.__qualname__} with {describe(value)}"
                        )
                    if self.made.get(id(value), _MISSING) is not value:
                        # Not an object built by vetted code: a class (a construct-only one,
                        # or one a type() call returned); code may call it by attribute name.
                        raise refuse(
                            f"refused BUILD writing {key!r} into a {cls.__module__}."
                            f"{cls.__qualname__}: {describe(value)} is callable but not vetted"
                        )

    # -- guarded stand-ins for the conditional callables -------------------------------
    def _conditional(self, ruling: Ruling) -> Callable[..., Any]:
        kind = ruling.conditional
        if kind is Conditional.BUFFER:
            return io.BytesIO
        if kind is Conditional.GETATTR:
            return self._getattr
        if kind is Conditional.TYPE:
            return _type_of
        if kind is Conditional.PARTIAL:
            return self._partial
        loader = _PICKLE_LOADERS.get(ruling.name)
        if kind is Conditional.LOADER and loader is not None:
            return self._nested_loads if loader == "loads" else self._nested_load
        if ruling.name == "torch.storage:_load_from_bytes":
            return self._torch_from_bytes
        raise refuse(
            f"refused {ruling.name}: a loader the guard cannot enforce the policy in", ruling.name
        )

    def _getattr(self, obj: object, name: object, *default: object) -> object:
        if not isinstance(name, str):
            raise refuse("refused getattr with a non-string attribute name")
        if len(default) > 1:
            raise refuse("refused getattr with more than three arguments")
        for value in default:
            # The result may be the default: it must be inert or itself a vetted global.
            if not (inert_literal(value) or id(value) in self.names):
                raise refuse(f"refused getattr with a default of {describe(value)}")
        base = self.names.get(id(obj))
        if base is not None:
            dotted = f"{base}.{name}"
            ruling = self.judge(dotted)
            if ruling.klass is not Class.ALLOW:
                raise refuse(f"refused getattr reaching {dotted}: {ruling.klass.value}", dotted)
            found = getattr(obj, name, *default)
            if default and found is default[0]:
                return found  # the default: inert, or vetted on its own
            return self.add(found, ruling)
        if self.is_global(obj):
            raise refuse(f"refused getattr({describe(obj)}, {name!r})")
        return self._instance_attribute(obj, name, default)

    def _instance_attribute(self, obj: object, name: str, default: tuple[object, ...]) -> object:
        """getattr on an instance built during the load.

        Allowed when `module:Class.name` (the instance's class) is itself allowlisted, or when
        the attribute is plain data (None or a literal) stored in the instance's own
        `__dict__`: a bound method read here would be called later by allowlisted code that
        calls methods by name (`dict(x)` calls `x.keys()`), where no opcode check sees it.
        The result is never registered as a vetted callable.
        """
        cls = type(obj)
        dotted = f"{cls.__module__}:{cls.__qualname__}.{name}"
        ruling = self.judge(dotted)
        if ruling.klass is Class.ALLOW:
            return getattr(obj, name, *default)
        if not name.startswith("_"):
            try:  # the instance's own dict, without running a class's __getattr__
                own = object.__getattribute__(obj, "__dict__")
            except AttributeError:
                own = None
            value = own.get(name, _MISSING) if isinstance(own, dict) else _MISSING
            class_attr = inspect.getattr_static(cls, name, _MISSING)
            plain = inert_literal(value)
            if plain and not _is_data_descriptor(class_attr):
                return value
        raise refuse(
            f"refused getattr reaching {dotted} on an instance built by the load: "
            f"{ruling.klass.value} (allowlist {dotted} if it is inert)",
            dotted,
        )

    def _callee_checker(self, name: str, real: object) -> Callable[..., Any]:
        fn = cast(Callable[..., Any], real)

        def helper(*args: object, **kwargs: object) -> object:
            self._check_args(name, args)
            return fn(*args, **kwargs)

        return helper

    def _partial(self, func: object, *args: object, **kwargs: object) -> object:
        self.check_call(func, "functools.partial")
        return functools.partial(cast(Callable[..., Any], func), *args, **kwargs)

    def _nested_loads(self, data: object, **_: object) -> object:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise refuse("refused pickle.loads of a non-bytes value")
        from modelguard.guard.unpickler import _load_with

        return _load_with(io.BytesIO(bytes(data)), self.policy, self.options)

    def _nested_load(self, file: object, **_: object) -> object:
        if not isinstance(file, io.BytesIO):
            raise refuse("refused pickle.load of anything but an in-memory buffer")
        from modelguard.guard.unpickler import _load_with

        return _load_with(file, self.policy, self.options)

    def _torch_from_bytes(self, data: object) -> object:
        # torch.storage._load_from_bytes is torch.load(BytesIO(b), weights_only=False): load
        # the embedded checkpoint with this policy enforced instead.
        if not isinstance(data, (bytes, bytearray)):
            raise refuse("refused torch.storage._load_from_bytes of a non-bytes value")
        import torch

        from modelguard.guard.loaders import _enforcing_pickle_module, is_torchscript_archive

        if is_torchscript_archive(bytes(data)):
            raise refuse(
                "refused torch.storage._load_from_bytes of a TorchScript archive (torch.load "
                "would run its code through torch.jit.load)",
                "torch.storage:_load_from_bytes",
            )

        module = _enforcing_pickle_module(self.policy)
        return torch.load(io.BytesIO(bytes(data)), weights_only=False, pickle_module=module)

    def _class_taker(self, name: str, real: object) -> Callable[..., Any]:
        fn = cast(Callable[..., Any], real)

        def taker(cls: object, *args: object, **kwargs: object) -> object:
            self.check_class(cls, name)
            if name == "copyreg:_reconstructor" and args and args[0] is not object:
                self.check_call(args[0], name)  # base.__init__(obj, state) runs
                self.check_value_args(args[0], args[1:2])  # base.__new__(cls, state)
            elif name == "copyreg:__newobj__":
                self.check_value_args(cls, args)
            elif name == "copyreg:__newobj_ex__":
                self.check_value_args(cls, *args[:2])
            return fn(cls, *args, **kwargs)

        return taker


def _is_data_descriptor(attr: object) -> bool:
    kind = type(attr)
    return hasattr(kind, "__get__") and (hasattr(kind, "__set__") or hasattr(kind, "__delete__"))


def _dunder(key: object) -> bool:
    return isinstance(key, str) and key.startswith("__") and key.endswith("__")


def _type_of(*args: object) -> type:
    if len(args) != 1:
        raise refuse("refused type() with more than one argument (class synthesis)")
    return type(args[0])


def describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"class {obj.__module__}:{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__} value"
