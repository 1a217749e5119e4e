"""Judge what a pickle would do: imports, calls, mutations and stream anomalies -> findings.

Every import is classified by name (allowlist first). Calls are then judged by what they
reach: a name-reaching wrapper (getattr) is judged by the attribute it yields, a loader by
the bytes it would deserialise (analysed recursively), `type()` by its arity, and a call of
a value computed at load time is dangerous because nobody can name it statically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from modelguard.errors import LimitExceeded
from modelguard.formats.blob import Blob, BytesBlob, SliceBlob
from modelguard.picklevm.values import (
    BigData,
    CallResult,
    DictV,
    ExtRef,
    GlobalRef,
    ListV,
    PersRef,
    PickleResult,
    SetV,
)
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
from modelguard.policy.states import VALUE_CTORS, arguments_problem, state_problem
from modelguard.results import Finding, Incomplete, Location, Severity
from modelguard.rules import RULES

__all__ = ["Collected", "NestedScan", "evaluate_pickle", "make_finding"]

NestedScan = Callable[[Blob, Location], "Collected"]
"""Scans embedded bytes (a nested pickle, an in-memory file) found at a location."""

# Calls that change what later opcodes (or later loads in the process) resolve names to.
_STATE_CALLS = frozenset(
    {"copyreg:add_extension", "copyreg:pickle", "builtins:setattr", "builtins:delattr"}
)
# copyreg helpers whose first argument is the class they rebuild (a class operand, not a value).
_CLASS_TAKERS = frozenset({"copyreg:__newobj__", "copyreg:__newobj_ex__", "copyreg:_reconstructor"})


@dataclass
class Collected:
    """Findings and incomplete reasons gathered for one file."""

    findings: list[Finding] = field(default_factory=list)
    incomplete: list[Incomplete] = field(default_factory=list)

    def extend(self, other: Collected) -> None:
        """Add everything from `other`."""
        self.findings.extend(other.findings)
        self.incomplete.extend(other.incomplete)


def make_finding(
    policy: Policy,
    rule_id: str,
    message: str,
    location: Location,
    evidence: dict[str, str] | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding with the rule's (or the given) severity, after policy overrides."""
    rule = RULES[rule_id]
    default = severity or rule.severity or Severity.INFO
    items = tuple(sorted((evidence or {}).items()))
    return Finding(rule_id, policy.severity_of(rule_id, default), message, location, items)


class _Judge:
    """Evaluates one PickleResult under a policy."""

    def __init__(self, policy: Policy, loc: Location, nested: NestedScan | None) -> None:
        self.policy = policy
        self.loc = loc
        self.nested = nested
        self.out = Collected()
        self.rulings: dict[int, Ruling] = {}

    def ruling(self, ref: GlobalRef) -> Ruling:
        key = id(ref)
        got = self.rulings.get(key)
        if got is None:
            got = self.policy.classify(ref.module, ref.name, ref.proto)
            if got.klass is Class.ALLOW and torchscript_name(ref.module) and not self.loc.members:
                # TorchScript names are allowed for the pickles inside a TorchScript archive,
                # where torch resolves them from the archive's own code; a plain pickle that
                # names them makes pickle import a module called __torch__.
                got = Ruling(Class.UNKNOWN, got.name)
            self.rulings[key] = got
        return got

    def add(self, rule_id: str, message: str, offset: int | None, **evidence: str) -> None:
        self.out.findings.append(
            make_finding(self.policy, rule_id, message, self.loc.at(offset), evidence)
        )

    # -- imports ------------------------------------------------------------------------
    def imports(self, res: PickleResult) -> None:
        seen: set[tuple[str, str, str]] = set()
        for ref in res.imports:
            if ref.dynamic:
                self.add(
                    "MG103",
                    f"imports a name computed at load time ({ref.module}:{ref.name}); "
                    "it cannot be known before loading",
                    ref.offset,
                    opcode=ref.opcode,
                    mechanism="dynamic-name",
                )
                continue
            ruling = self.ruling(ref)
            dedupe = (ruling.name, ruling.klass.value, ref.opcode)
            if dedupe in seen:
                continue
            seen.add(dedupe)
            if ruling.klass is Class.DENY:
                self.add(
                    "MG101",
                    f"imports {ruling.name} ({ruling.family})",
                    ref.offset,
                    **{"global": ruling.name, "family": ruling.family, "opcode": ref.opcode,
                       "matched": ruling.reason},
                )  # fmt: skip
            elif ruling.klass is Class.UNKNOWN:
                self.add(
                    "MG102",
                    f"imports {ruling.name}, which is not on the allowlist",
                    ref.offset,
                    **{"global": ruling.name, "opcode": ref.opcode},
                )
        for ext in res.ext_refs:
            self.add(
                "MG105",
                f"{ext.opcode} {ext.code} refers to a copyreg extension the stream did not "
                "register",
                ext.offset,
                opcode=ext.opcode,
                code=str(ext.code),
            )

    # -- what a value denotes -------------------------------------------------------------
    def denote(self, value: object, depth: int = 0) -> str | None:
        """Return the `module:qualname` a value names, or None when it cannot be named."""
        if depth > 32:
            return None
        if isinstance(value, GlobalRef):
            if value.dynamic:
                return None
            return self.ruling(value).name
        if isinstance(value, PersRef):
            # torch's legacy persistent_load returns the class for ("module", cls, file, src).
            pid = value.pid
            if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module":
                return self.denote(pid[1], depth + 1)
            return None
        if isinstance(value, CallResult) and isinstance(value.func, GlobalRef):
            ruling = self.ruling(value.func)
            args = value.args if isinstance(value.args, tuple) else ()
            if ruling.conditional is Conditional.GETATTR and len(args) >= 2:
                if len(args) > 2 and not inert_literal(args[2]):
                    return None  # the result may be the default: a value, not a name
                base = self.denote(args[0], depth + 1)
                if base is not None and isinstance(args[1], str):
                    return f"{base}.{args[1]}" if not base.endswith(":") else base + args[1]
            importer = ruling.name in ("builtins:__import__", "importlib:import_module")
            if importer and args and isinstance(args[0], str):
                return f"{args[0]}:"
        return None

    def inert_attribute(self, cls: object, attr: str) -> bool:
        """Is reading `attr` from an instance of `cls` allowlisted (`module:Class.attr`)?

        Only an allowlisted `module:Class.attr` is inert. Any other attribute may be a bound
        method that allowlisted code calls later by name (`dict(x)` calls `x.keys()`, a
        `__setstate__` calls `self._helper()`), where no opcode is ever judged; the scanner
        cannot tell a method from data, so it requires the allowlist.
        """
        if not isinstance(cls, GlobalRef) or cls.dynamic:
            return False
        return self.judge_name(f"{self.ruling(cls).name}.{attr}").klass is Class.ALLOW

    def judge_name(self, dotted: str) -> Ruling:
        module, _, name = dotted.partition(":")
        if not name:
            return self.policy.classify(module, "__module__")
        return builtin_method(dotted) or self.policy.classify(module, name)

    # -- calls ----------------------------------------------------------------------------
    def calls(self, res: PickleResult) -> None:
        callees = {id(c.func) for c in res.calls}
        reported: set[str] = set()
        for ref in res.imports:
            if ref.dynamic or id(ref) in callees:
                continue
            ruling = self.ruling(ref)
            if ruling.klass is Class.CONDITIONAL and ruling.conditional is not Conditional.BUFFER:
                if ruling.name in reported:
                    continue
                reported.add(ruling.name)
                self.add(
                    "MG103",
                    f"{ruling.name} is used as a value, not called directly: it would run "
                    "later with arguments nobody checked",
                    ref.offset,
                    mechanism="escaped-wrapper",
                    callee=ruling.name,
                )
        for call in res.calls:
            func = call.func
            if isinstance(func, GlobalRef) and not func.dynamic:
                ruling = self.ruling(func)
                if ruling.klass is Class.ALLOW:
                    self.value_args(call, ruling)
                    if ruling.name in TORCH_STATE_ARGS:
                        self.torch_state(call, ruling.name)
                if ruling.klass is Class.CONDITIONAL:
                    self.conditional(call, ruling)
                elif ruling.construct_only and call.kind in ("reduce", "inst", "obj"):
                    self.add(
                        "MG102",
                        f"calls {ruling.name}, which is allowlisted only for rebuilding by "
                        "NEWOBJ; a call runs its __init__",
                        call.offset,
                        **{"global": ruling.name, "mechanism": call.kind},
                    )
                elif ruling.name in CALLEE_ARGS:
                    self.callees(call, ruling)
                    if ruling.name in _STATE_CALLS:
                        continue
                elif ruling.name in _STATE_CALLS:
                    self.add(
                        "MG104",
                        f"calls {ruling.name}, which changes process-wide state",
                        call.offset,
                        callee=ruling.name,
                        opcode=call.kind.upper(),
                    )
                continue
            if isinstance(func, (ExtRef, str, bytes, int, float, bool)) or func is None:
                continue  # flagged as MG105 already, or the loader fails on a literal
            if isinstance(func, GlobalRef):
                continue  # dynamic name: flagged at import
            target = self.denote(func)
            if target is None:
                self.add(
                    "MG103",
                    "calls a value computed at load time (the result of another call or a "
                    "persistent id); what runs cannot be named before loading",
                    call.offset,
                    mechanism="call-of-runtime-value",
                    callee=_describe(func),
                )
                continue
            ruling = self.judge_name(target)
            if ruling.klass is Class.DENY:
                self.add(
                    "MG103",
                    f"calls {ruling.name} ({ruling.family}), reached through {_describe(func)}",
                    call.offset,
                    mechanism="indirect-call",
                    callee=ruling.name,
                    family=ruling.family,
                )
            elif ruling.klass is not Class.ALLOW or (
                ruling.construct_only and call.kind in ("reduce", "inst", "obj")
            ):
                self.add(
                    "MG102",
                    f"calls {ruling.name}, reached through {_describe(func)}; not allowlisted "
                    "for a call",
                    call.offset,
                    **{"global": ruling.name, "mechanism": "indirect-call"},
                )

    def value_uses(self, res: PickleResult) -> None:
        """Report construct-only classes used as values: anywhere but a class operand.

        A construct-only (`[allow_new]`) class may only be rebuilt by NEWOBJ (or handed to a
        copyreg class taker); stored in a state, a container or an argument, allowlisted code
        may call it by method name (`dict(ns)` calls `ns.keys()`), running its `__init__`.
        """
        restricted = {
            id(ref) for ref in res.imports if not ref.dynamic and self.ruling(ref).construct_only
        }
        getattrs = any(
            self.ruling(ref).conditional is Conditional.GETATTR
            for ref in res.imports
            if not ref.dynamic
        )
        if not (restricted or getattrs):
            return
        seen: set[int] = set()
        reported: set[str] = set()

        def visit(value: object, offset: int | None) -> None:
            todo = [value]
            while todo:
                item = todo.pop()
                name: str | None = None
                if isinstance(item, GlobalRef):
                    name = self.ruling(item).name if id(item) in restricted else None
                elif isinstance(item, CallResult):
                    named = self.denote(item) if getattrs else None
                    if named is not None and self.judge_name(named).construct_only:
                        name = named
                elif id(item) not in seen and isinstance(item, (tuple, ListV, SetV, DictV)):
                    seen.add(id(item))
                    if isinstance(item, DictV):
                        todo.extend(part for pair in item.pairs for part in pair)
                    else:
                        todo.extend(item if isinstance(item, tuple) else item.items)
                elif isinstance(item, PersRef):
                    todo.append(item.pid)
                if name is not None and name not in reported:
                    reported.add(name)
                    self.add(
                        "MG102",
                        f"construct-only class used as a value: {name} is allowlisted only "
                        "for rebuilding by NEWOBJ; code handed the class may call it, running "
                        "its __init__",
                        offset,
                        **{"global": name, "mechanism": "construct-only-value"},
                    )

        for call in res.calls:
            args = call.args
            func = call.func
            if isinstance(func, GlobalRef) and not func.dynamic and isinstance(args, tuple):
                args = args[1:] if self.ruling(func).name in _CLASS_TAKERS else args
            visit(args, call.offset)
            visit(call.kwargs, call.offset)
            for part in (*call.states, *call.items):
                visit(part, call.offset)
        for mut in res.mutations:
            visit(mut.value, mut.offset)
        for pers in res.persids:
            visit(pers.pid, pers.offset)
        visit(res.value, res.end)

    def value_args(self, call: CallResult, ruling: Ruling) -> None:
        """Judge the arguments of a number constructor whose cost they decide (`VALUE_CTORS`)."""
        name, args, kwargs = ruling.name, call.args, call.kwargs
        if name in _CLASS_TAKERS and isinstance(args, tuple) and args:
            target = self.denote(args[1] if name == "copyreg:_reconstructor" else args[0])
            if name == "copyreg:_reconstructor":
                name, args = target or "", args[2:3]
            elif name == "copyreg:__newobj_ex__":
                name, kwargs = target or "", args[2] if len(args) > 2 else None
                args = args[1] if len(args) > 1 else ()
            else:
                name, args = target or "", args[1:]
        if name not in VALUE_CTORS:
            return
        if isinstance(kwargs, DictV):
            kwargs = kwargs.pairs
        problem = arguments_problem(name, args, kwargs)
        if problem:
            self.add(
                "MG102",
                f"calls {name} with {problem}: its cost is not bounded",
                call.offset,
                **{"global": name, "mechanism": "unbounded-value"},
            )

    def callees(self, call: CallResult, ruling: Ruling) -> None:
        """Judge the arguments an allowlisted helper calls or instantiates (`CALLEE_ARGS`).

        A helper such as `_rebuild_from_type_v2(func, ...)` runs `func(*args)`: `func` must be
        a name the allowlist allows (a global, or a getattr of one), never a load-time value.
        """
        args = call.args if isinstance(call.args, tuple) else None
        if args is None:
            return
        for pos, use in CALLEE_ARGS[ruling.name]:
            if pos < len(args):
                self.callee(ruling.name, f"its argument {pos}", args[pos], use, call.offset)

    def callee(self, owner: str, where: str, value: object, use: str, offset: int | None) -> None:
        """Judge one value that `owner` calls (`use` "call") or instantiates ("class"/"type")."""
        if inert_literal(value) or (isinstance(value, GlobalRef) and value.dynamic):
            return  # a literal, or a dynamic name flagged at import
        if use == "type" and self.built_by_allowed(value):
            return  # an instance made by an allowlisted class: used, not called
        target = self.denote(value)
        if target is None:
            self.add(
                "MG103",
                f"{owner} calls {where}, {_describe(value)}: a value computed at load time "
                "that cannot be named before loading",
                offset,
                mechanism="helper-callee",
                callee=_describe(value),
            )
            return
        reached = self.judge_name(target)
        if reached.klass is Class.DENY:
            self.add(
                "MG103",
                f"{owner} calls {reached.name} ({reached.family})",
                offset,
                mechanism="helper-callee",
                callee=reached.name,
                family=reached.family,
            )
        elif reached.klass is not Class.ALLOW or (use != "class" and reached.construct_only):
            if isinstance(value, GlobalRef) and reached.klass is not Class.ALLOW:
                return  # an import not on the allowlist: flagged at import
            self.add(
                "MG102",
                f"{owner} {'calls' if use == 'call' else 'instantiates'} "
                f"{reached.name}, which is not allowlisted for that",
                offset,
                **{"global": reached.name, "mechanism": "helper-callee"},
            )

    def held_callables(self, name: str, state: object, offset: int | None) -> None:
        """Judge callables a BUILD state stores where the class calls them (`CALLABLE_ATTRS`)."""
        held = CALLABLE_ATTRS.get(name)
        if not held:
            return
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if isinstance(part, DictV):
                for key, value in part.pairs:
                    if isinstance(key, str) and key in held:
                        # a dict there (metric_params) holds keyword arguments of the callable:
                        # its values that name a callable are judged, built data passes
                        for one in (
                            (v for _, v in value.pairs) if isinstance(value, DictV) else (value,)
                        ):
                            if one is value or not self.built_by_allowed(one):
                                self.callee(name, f"its attribute {key!r}", one, "call", offset)

    def torch_state(self, call: CallResult, name: str) -> None:
        """Judge the backward hooks and setattr state a torch rebuilder stores on a tensor."""
        args = call.args if isinstance(call.args, tuple) else ()
        hooks, state = TORCH_STATE_ARGS[name]
        if hooks is not None and hooks < len(args) and args[hooks] is not None:
            for hook in self._mapping_values(args[hooks]):
                self.callee(name, "a backward hook (called by autograd)", hook, "call", call.offset)
        if state is None or state >= len(args):
            return
        body = args[state]
        new_type = self.denote(args[1]) if name == "torch._tensor:_rebuild_from_type_v2" else None
        self.held_callables(new_type or "torch.nn.parameter:Parameter", body, call.offset)
        for part in body if isinstance(body, tuple) else (body,):
            for key, _ in part.pairs if isinstance(part, DictV) else ():
                if isinstance(key, str) and key.startswith("__") and key.endswith("__"):
                    self.add(
                        "MG104",
                        f"{name} sets {key} with setattr on the tensor it rebuilds",
                        call.offset,
                        target=key,
                        opcode="REDUCE",
                    )

    def _mapping_values(self, value: object) -> list[object]:
        """The values of a dict built by the stream (a dict, or an OrderedDict call + SETITEMS);
        anything else is returned as itself (judged as one callable)."""
        if isinstance(value, DictV):
            return [v for _, v in value.pairs]
        if isinstance(value, CallResult) and self.built_by_allowed(value):
            found = [p[1] for p in value.items if isinstance(p, tuple) and len(p) == 2]
            args = value.args if isinstance(value.args, tuple) else ()
            for first in args[:1]:
                items = first.items if isinstance(first, ListV) else ()
                found += [p[1] for p in items if isinstance(p, tuple) and len(p) == 2]
            return found
        return [value]

    def built_by_allowed(self, value: object) -> bool:
        """Is `value` the result of a call of an allowlisted callable (not a name it reaches)?"""
        if not (isinstance(value, CallResult) and isinstance(value.func, GlobalRef)):
            return False
        func = value.func
        if func.dynamic:
            return False
        ruling = self.ruling(func)
        return ruling.klass is Class.ALLOW and not ruling.construct_only

    def conditional(self, call: CallResult, ruling: Ruling) -> None:
        args = call.args if isinstance(call.args, tuple) else None
        kind = ruling.conditional
        if kind is Conditional.GETATTR:
            if args is not None and len(args) > 2 and not inert_literal(args[2]):
                default = self.denote(args[2])
                if default is None or self.judge_name(default).klass is not Class.ALLOW:
                    self.add(
                        "MG103",
                        f"getattr with a default of {default or _describe(args[2])}: the result "
                        "may be that value, which a later call would run unchecked",
                        call.offset,
                        mechanism="getattr-default",
                        callee=default or _describe(args[2]),
                    )
                return
            target = self.denote(call)
            if target is None:
                instance = _instance_attribute(args)
                if instance is not None and self.inert_attribute(*instance):
                    return
                if instance is not None:
                    # An attribute of an object built by this stream: a bound method or a
                    # value, not allowlisted as `module:Class.attr`.
                    cls = self.denote(instance[0]) or "?"
                    self.add(
                        "MG102",
                        f"getattr reads {instance[1]!r} from an instance of {cls}; "
                        f"{cls}.{instance[1]} is not allowlisted (a bound method there could "
                        "be called later by code that calls methods by name)",
                        call.offset,
                        **{"global": f"{cls}.{instance[1]}", "mechanism": "getattr-on-instance"},
                    )
                    return
                self.add(
                    "MG103",
                    "getattr on an object or with a name computed at load time",
                    call.offset,
                    mechanism="getattr",
                    callee=ruling.name,
                )
                return
            reached = self.judge_name(target)
            if reached.klass is Class.DENY:
                self.add(
                    "MG103",
                    f"getattr reaches {reached.name} ({reached.family})",
                    call.offset,
                    mechanism="getattr",
                    callee=reached.name,
                    family=reached.family,
                )
            elif reached.klass is Class.UNKNOWN:
                self.add(
                    "MG102",
                    f"getattr reaches {reached.name}, which is not on the allowlist",
                    call.offset,
                    **{"global": reached.name, "mechanism": "getattr"},
                )
        elif kind is Conditional.TYPE:
            if args is not None and len(args) == 1 and not isinstance(args[0], CallResult):
                return  # type(None), type(Ellipsis): inert
            self.add(
                "MG103",
                "synthesises a class with type(name, bases, namespace) at load time",
                call.offset,
                mechanism="class-synthesis",
                callee=ruling.name,
            )
        elif kind is Conditional.PARTIAL:
            inner = args[0] if args else None
            if isinstance(inner, GlobalRef) and not inner.dynamic:
                wrapped = self.ruling(inner)
                if wrapped.klass is not Class.CONDITIONAL:
                    return  # the wrapped callable was judged as an import
                self.add(
                    "MG103",
                    f"functools.partial wraps {wrapped.name}, whose arguments decide whether "
                    "it is safe",
                    call.offset,
                    mechanism="partial",
                    callee=wrapped.name,
                )
                return
            target = self.denote(inner)
            wrapped_by: Ruling | None = self.judge_name(target) if target else None
            if wrapped_by is None or wrapped_by.klass in (Class.DENY, Class.CONDITIONAL):
                self.add(
                    "MG103",
                    f"functools.partial wraps {target or 'a value computed at load time'}",
                    call.offset,
                    mechanism="partial",
                    callee=target or "?",
                )
        elif kind is Conditional.LOADER:
            self.loader(call, ruling, args)
        # Conditional.BUFFER (io.BytesIO) is inert by itself; loaders look inside it.

    def loader(self, call: CallResult, ruling: Ruling, args: tuple[object, ...] | None) -> None:
        payload = _embedded_bytes(args[0] if args else None, self)
        if payload is None:
            self.add(
                "MG106",
                f"{ruling.name} loads a payload that is not embedded in this file "
                "(a path or a value computed at load time)",
                call.offset,
                loader=ruling.name,
            )
            return
        label = f"<{ruling.name}@{call.offset}>"
        if self.nested is None:
            self.out.incomplete.append(
                Incomplete("MG003", "nested payload not analysed", self.loc.inner(label))
            )
            return
        self.out.extend(self.nested(payload, self.loc.inner(label)))

    # -- mutations and syntax ---------------------------------------------------------------
    def mutations(self, res: PickleResult) -> None:
        for mut in res.mutations:
            target = mut.target
            if isinstance(target, (GlobalRef, ExtRef)):
                name = (
                    self.ruling(target).name
                    if isinstance(target, GlobalRef) and not target.dynamic
                    else _describe(target)
                )
                self.add(
                    "MG104",
                    f"{mut.kind.upper()} modifies the imported object {name}",
                    mut.offset,
                    target=name,
                    opcode=mut.kind.upper(),
                )
            elif isinstance(target, CallResult):
                if self.denote(target) is not None:
                    self.add(
                        "MG104",
                        f"{mut.kind.upper()} modifies {self.denote(target)}, an existing object",
                        mut.offset,
                        target=str(self.denote(target)),
                        opcode=mut.kind.upper(),
                    )
            elif mut.kind == "setitem":
                # Picklers only write SETITEM(S) after a dict; on a list or a literal it is
                # crafted, and torch's weights_only unpickler before 2.10 corrupted memory on
                # it (CVE-2026-24747).
                self.add(
                    "MG114",
                    f"SETITEM applied to a {_kind_of(target)}, not a dict",
                    mut.offset,
                    target=_kind_of(target),
                    opcode="SETITEM",
                )

        # BUILD's (state, slotstate) form assigns slotstate with setattr, which reaches
        # properties and __class__; a dunder there rewires the object (a plain __dict__ update
        # does not).
        for call in res.calls:
            if call.states and isinstance(call.func, GlobalRef) and not call.func.dynamic:
                ruling = self.ruling(call.func)
                for state in call.states if ruling.klass is Class.ALLOW else ():
                    self.held_callables(ruling.name, state, call.offset)
                    problem = state_problem(ruling.name, state)
                    if problem:
                        self.add(
                            "MG103",
                            f"{ruling.name}: {problem}",
                            call.offset,
                            mechanism="code-in-state",
                            callee=ruling.name,
                        )
            for state in call.states:
                if not (isinstance(state, tuple) and len(state) == 2):
                    continue
                slots = state[1]
                if not isinstance(slots, DictV):
                    continue
                for key, _ in slots.pairs:
                    if isinstance(key, str) and key.startswith("__") and key.endswith("__"):
                        self.add(
                            "MG104",
                            f"BUILD sets {key} with setattr on the object built at offset "
                            f"{call.offset}",
                            call.offset,
                            target=key,
                            opcode="BUILD",
                        )

    def anomalies(self, res: PickleResult) -> None:
        for anomaly in res.anomalies:
            if anomaly.kind.startswith("frame"):
                self.add("MG110", anomaly.detail, anomaly.offset, anomaly=anomaly.kind)
            else:
                self.add("MG113", anomaly.detail, anomaly.offset, anomaly=anomaly.kind)


def _kind_of(value: object) -> str:
    """A short name for the kind of a symbolic value (list, str, storage, ...)."""
    if isinstance(value, ListV):
        return "list"
    if isinstance(value, PersRef):
        return "persistent object"
    return type(value).__name__.removesuffix("V").lower()


def _describe(value: object) -> str:
    if isinstance(value, GlobalRef):
        return f"{value.module}:{value.name}"
    if isinstance(value, CallResult):
        return f"the result of the {value.kind.upper()} at offset {value.offset}"
    if isinstance(value, ExtRef):
        return f"{value.opcode} {value.code}"
    if isinstance(value, PersRef):
        return "a persistent id"
    return type(value).__name__


def _instance_attribute(args: tuple[object, ...] | None) -> tuple[object, str] | None:
    """Return (class, attribute) for getattr(<instance built by a class call>, "name")."""
    if args is None or len(args) < 2 or not isinstance(args[1], str):
        return None
    obj = args[0]
    if isinstance(obj, CallResult) and isinstance(obj.func, GlobalRef):
        return (obj.func, args[1])
    return None


def _embedded_bytes(value: object, judge: _Judge) -> Blob | None:
    """Return the bytes a loader argument carries (bytes, bytearray, io.BytesIO(bytes)).

    Large literals were left in the file by the machine (BigData); they are read back as a
    slice of it, never copied whole into memory.
    """
    if isinstance(value, bytes):
        return BytesBlob(value)
    if isinstance(value, BigData) and value.kind != "str":
        return SliceBlob(cast("Blob", value.blob), value.offset, value.length)
    if isinstance(value, CallResult) and isinstance(value.func, GlobalRef):
        ruling = judge.ruling(value.func)
        args = value.args if isinstance(value.args, tuple) else ()
        if ruling.conditional is Conditional.BUFFER and args:
            return _embedded_bytes(args[0], judge)
    return None


def evaluate_pickle(
    res: PickleResult,
    loc: Location,
    policy: Policy,
    nested: NestedScan | None = None,
) -> Collected:
    """Turn one pickle's analysis into findings and incomplete reasons.

    Args:
        res: what the symbolic machine recorded.
        loc: where the pickle lies (its offsets are absolute within that location).
        policy: the allowlist, severities and limits.
        nested: scans bytes embedded in the pickle that a loader call would deserialise.
    """
    judge = _Judge(policy, loc, nested)
    judge.imports(res)
    judge.calls(res)
    judge.value_uses(res)
    judge.mutations(res)
    judge.anomalies(res)
    for inner in res.nested:
        judge.out.extend(
            evaluate_pickle(inner, loc.inner(f"<inline-pickle@{inner.start}>"), policy, nested)
        )
    if res.error is not None:
        rule = "MG003" if isinstance(res.error, LimitExceeded) else "MG002"
        where = loc.at(res.error.offset)
        judge.out.incomplete.append(Incomplete(rule, f"pickle: {res.error}", where))
    return judge.out
