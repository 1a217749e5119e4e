"""Constant folding of Jinja expressions: the strings a template can build from its literals.

Chat-template checks (`modelguard.analysers.templates`) use this to see through names that
are assembled rather than written (`'__cla' ~ 'ss__'`, `['__glo', 'bals__']|join`,
`{% set a, b = '__glo', 'bals__' %}`, `namespace(k='__globals__')`, a macro parameter's
default). Nothing is rendered: each Jinja operation is re-done on the template's own
literals, bounded in depth, candidates and string length so that a hostile template cannot
make the scanner build huge strings or look attributes up (`'{0.__class__}'.format`).
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from jinja2 import nodes

__all__ = ["MAX_FOLD_DEPTH", "Folder"]

_MAX_FOLD_LEN = 4096
_MAX_CANDIDATES = 16
MAX_FOLD_DEPTH = 32


class Folder:
    """Folds expressions of one template, knowing the strings its variables were given.

    Variables are keyed by name, namespace and dict members by `name.key`; list and tuple
    literals bound to a name are kept as their items (for `|join`, `|first`, `[0]`).
    """

    def __init__(self) -> None:
        self._names: dict[str, set[str] | None] = {}
        self._seqs: dict[str, list[nodes.Expr]] = {}

    def bind_all(self, tree: nodes.Template) -> None:
        """Give every variable the strings it can hold, in document order: `{% set %}`
        (also tuple targets, `{% set ns.k %}`, namespace/dict members), `{% for %}` targets,
        macro parameters (defaults and the arguments of calls by name). Each binding is
        computed from the values before it (`{% set a = a ~ 'ss__' %}` builds on the
        previous `a`); afterwards a variable stands for every value it was given, as an
        access may sit anywhere. Linear in the number of bindings."""
        from jinja2 import nodes

        current: dict[str, set[str] | None] = {}
        ever: dict[str, set[str]] = {}
        self._names = current
        macros: dict[str, list[str]] = {}

        def bind(name: str, got: set[str] | None) -> None:
            current[name] = got
            known = ever.setdefault(name, set())
            for item in sorted(got or ()):
                if len(known) < _MAX_CANDIDATES:
                    known.add(item)

        kinds = (nodes.Assign, nodes.AssignBlock, nodes.For, nodes.Macro, nodes.Call)
        for node in tree.find_all(kinds):
            if isinstance(node, nodes.Assign):
                self._bind_target(node.target, node.node, bind, iterate=False)
            elif isinstance(node, nodes.AssignBlock):
                self._bind_target(node.target, nodes.Concat(node.body), bind, iterate=False)
            elif isinstance(node, nodes.For):
                self._bind_target(node.target, node.iter, bind, iterate=True)
            elif isinstance(node, nodes.Macro):
                params = [a.name for a in node.args]
                macros[node.name] = params
                for param, default in zip(
                    params[len(params) - len(node.defaults) :], node.defaults, strict=True
                ):
                    bind(param, self.fold(default))
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
                params = macros.get(node.node.name, [])
                for param, arg in zip(params, node.args, strict=False):
                    bind(param, self.fold(arg))
                for kw in node.kwargs:
                    if kw.key in params:
                        bind(kw.key, self.fold(kw.value))
        self._names = {name: values or None for name, values in ever.items()}

    def _bind_target(
        self,
        target: nodes.Node,
        value: nodes.Node,
        bind: Callable[[str, set[str] | None], None],
        *,
        iterate: bool,
    ) -> None:
        from jinja2 import nodes

        if isinstance(target, nodes.Tuple):
            names = [_target_name(t) for t in target.items]
            rows = self._seq(value) if iterate else [value]
            for row in (rows or [])[:_MAX_CANDIDATES]:
                items = self._seq(row)
                if items is not None and len(items) == len(names):
                    for name, item in zip(names, items, strict=True):
                        if name is not None:
                            bind(name, self.fold(item))
            return
        name = _target_name(target)
        if name is None:
            return
        if iterate:
            items = self._seq(value)
            if items is not None:
                for item in items[:_MAX_CANDIDATES]:
                    bind(name, self.fold(item))
            return
        bind(name, self.fold(value))
        items = self._seq(value)
        if items is not None:
            self._seqs[name] = items
        members: list[tuple[str, nodes.Expr]] = []
        if isinstance(value, nodes.Dict):
            members = [
                (p.key.value, p.value)
                for p in value.items
                if isinstance(p.key, nodes.Const) and isinstance(p.key.value, str)
            ]
        elif (
            isinstance(value, nodes.Call)
            and isinstance(value.node, nodes.Name)
            and value.node.name in ("namespace", "dict")
        ):
            members = [(k.key, k.value) for k in value.kwargs]
        for key, member in members[:_MAX_FOLD_LEN]:
            bind(f"{name}.{key}", self.fold(member))

    def _seq(self, node: nodes.Node | None) -> list[nodes.Expr] | None:
        """The items of a list or tuple literal, or of a variable bound to one."""
        from jinja2 import nodes

        if isinstance(node, nodes.List | nodes.Tuple):
            return list(node.items)
        if isinstance(node, nodes.Name):
            return self._seqs.get(node.name)
        return None

    def _member(self, base: nodes.Node, key: str, d: int) -> set[str] | None:
        """`base.key` / `base['key']` on a dict literal, a namespace or a dict variable."""
        from jinja2 import nodes

        if isinstance(base, nodes.Dict):
            for pair in base.items:
                if isinstance(pair.key, nodes.Const) and pair.key.value == key:
                    return self.fold(pair.value, d)
            return None
        if isinstance(base, nodes.Name):
            return self._names.get(f"{base.name}.{key}")
        return None

    def fold(self, node: nodes.Node | None, depth: int = 0) -> set[str] | None:
        """The strings an expression can evaluate to, when computable from literals alone."""
        if node is None or depth > MAX_FOLD_DEPTH:
            return None
        try:
            result = self._fold(node, depth)
        except (ValueError, TypeError, IndexError, KeyError, OverflowError):
            return None
        if result is None or len(result) > _MAX_CANDIDATES:
            return None
        if any(len(s) > _MAX_FOLD_LEN for s in result):
            return None
        return result

    def _fold(self, node: nodes.Node, depth: int) -> set[str] | None:
        from jinja2 import nodes

        d = depth + 1
        if isinstance(node, nodes.Const):
            v = node.value
            if isinstance(v, str):
                return {v}
            if isinstance(v, int | float) and not isinstance(v, bool):
                return {str(v)}
            return None
        if isinstance(node, nodes.TemplateData):
            return {node.data}
        if isinstance(node, nodes.Output):
            return self._join_all(list(node.nodes), d)
        if isinstance(node, nodes.Concat):
            return self._join_all(list(node.nodes), d)
        if isinstance(node, nodes.Add):
            return self._join_all([node.left, node.right], d)
        if isinstance(node, nodes.Mul):
            left, right = node.left, node.right
            times = _const_int(right)
            if times is None:
                left, right = right, left
                times = _const_int(right)
            base = self.fold(left, d)
            if (
                times is None
                or base is None
                or times * max((len(b) for b in base), default=0) > _MAX_FOLD_LEN
            ):
                return None
            return {b * times for b in base}
        if isinstance(node, nodes.Mod):
            fmt = self.fold(node.left, d)
            args = self._fold_args(node.right, d)
            if fmt is None or args is None:
                return None
            return {_percent(f, a) for f in fmt for a in args}
        if isinstance(node, nodes.Name):
            return self._names.get(node.name)
        if isinstance(node, nodes.Getattr):
            return self._member(node.node, node.attr, d)
        if isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                return self._member(node.node, node.arg.value, d)
            items = self._seq(node.node)
            index = _const_int(node.arg)
            if items is not None and index is not None:
                return self.fold(items[index], d)
            base = self.fold(node.node, d)
            if base is None:
                return None
            if isinstance(node.arg, nodes.Slice):
                sl = slice(
                    *(
                        _const_int(p) if p is not None else None
                        for p in (node.arg.start, node.arg.stop, node.arg.step)
                    )
                )
                return {b[sl] for b in base}
            index = _const_int(node.arg)
            return None if index is None else {b[index] for b in base}
        if isinstance(node, nodes.Filter) and node.node is not None:
            return self._fold_filter(node.name, node.node, list(node.args), d)
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            return self._fold_filter(node.node.attr, node.node.node, list(node.args), d)
        return None

    def _fold_filter(
        self, name: str, target: nodes.Node, args: list[nodes.Expr], d: int
    ) -> set[str] | None:
        from jinja2 import nodes

        if name in ("first", "last") and not args:
            pick = 0 if name == "first" else -1
            items = self._seq(target)
            if items is not None:
                return self.fold(items[pick], d) if items else None
            keys = _literal_keys(target)
            if keys is not None:
                return {keys[pick]} if keys else None
        if name == "join":
            if isinstance(target, nodes.Const) and isinstance(target.value, str) and args:
                # `'sep'.join([...])`: the call form on a literal separator
                target, args = args[0], [target]
            seq = self._seq(target)
            if seq is None:
                base = self.fold(target, d)  # a string joins its characters
                sep = self.fold(args[0], d) if args else {""}
                if base is None or sep is None:
                    return None
                return {_join(s, b) for b in base for s in sep}
            parts = [self.fold(i, d) for i in seq[: _MAX_FOLD_LEN + 1]]
            sep = self.fold(args[0], d) if args else {""}
            if sep is None or any(p is None for p in parts):
                return None
            combos = _product([p for p in parts if p is not None])
            return None if combos is None else {_join(s, c) for c in combos for s in sep}
        base = self.fold(target, d)
        if base is None:
            return None
        folded = [self.fold(a, d) for a in args]
        if any(f is None for f in folded):
            return None
        combos = _product([f for f in folded if f is not None])
        if combos is None:
            return None
        if name == "first" and not args:
            return {b[:1] for b in base}
        if name == "last" and not args:
            return {b[-1:] for b in base}
        if name == "reverse":
            return {b[::-1] for b in base}
        if name in ("lower", "upper", "trim", "strip", "string", "title", "capitalize"):
            op = {"trim": "strip", "string": "__str__"}.get(name, name)
            return {getattr(b, op)() for b in base}
        if name == "replace" and all(len(c) == 2 for c in combos):
            return {_replace(b, c[0], c[1]) for b in base for c in combos}
        if name == "format":
            return {_percent(b, c) if "%" in b else _brace(b, c) for b in base for c in combos}
        return None

    def _join_all(self, parts: list[nodes.Node], d: int) -> set[str] | None:
        folded: list[set[str]] = []
        for part in parts:
            got = self.fold(part, d)
            if got is None:
                return None
            folded.append(got)
        combos = _product(folded)
        return None if combos is None else {_join("", c) for c in combos}

    def _fold_args(self, node: nodes.Node, d: int) -> list[tuple[str, ...]] | None:
        from jinja2 import nodes

        if isinstance(node, nodes.Tuple | nodes.List):
            folded = [self.fold(i, d) for i in node.items]
            if any(f is None for f in folded):
                return None
            return _product([f for f in folded if f is not None])
        one = self.fold(node, d)
        return None if one is None else [(s,) for s in one]


# Folding evaluates string operations of the template on its own literals; each is bounded
# before it runs so that a hostile template cannot make the scanner build huge strings
# (`'%999999999s'`, a join over a million-item list) or look attributes up (`'{0.__class__}'`).
_PERCENT_OK = re.compile(r"%[sr%]")
_BRACE_FIELD = re.compile(r"\{([^{}]*)\}")


def _percent(fmt: str, args: tuple[str, ...]) -> str:
    if "%" in _PERCENT_OK.sub("", fmt):
        raise ValueError("conversion with flags or width")
    if len(fmt) + 4 * sum(len(a) for a in args) > _MAX_FOLD_LEN:
        raise ValueError("too long")
    return fmt % args


def _brace(fmt: str, args: tuple[str, ...]) -> str:
    fields = _BRACE_FIELD.findall(fmt)
    if any(not f.isdigit() and f != "" for f in fields):
        raise ValueError("field with attribute, index or spec")
    if len(fmt) + len(fields) * max((len(a) for a in args), default=0) > _MAX_FOLD_LEN:
        raise ValueError("too long")
    return fmt.format(*args)


def _join(sep: str, parts: tuple[str, ...] | str) -> str:
    if sum(len(p) for p in parts) + len(sep) * max(len(parts) - 1, 0) > _MAX_FOLD_LEN:
        raise ValueError("too long")
    return sep.join(parts)


def _replace(text: str, old: str, new: str) -> str:
    hits = text.count(old) if old else len(text) + 1
    if len(text) + hits * len(new) > _MAX_FOLD_LEN:
        raise ValueError("too long")
    return text.replace(old, new)


def _product(sets: list[set[str]]) -> list[tuple[str, ...]] | None:
    if len(sets) > _MAX_FOLD_LEN:
        return None
    total = 1
    for s in sets:
        total *= len(s)
        if total > _MAX_CANDIDATES:
            return None
    return list(itertools.product(*(sorted(s) for s in sets)))


def _target_name(node: nodes.Node) -> str | None:
    """The variable a binding writes: `x`, or `ns.k` for `{% set ns.k = ... %}`."""
    from jinja2 import nodes

    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.NSRef):
        return f"{node.name}.{node.attr}"
    return None


def _literal_keys(node: nodes.Node) -> list[str] | None:
    """The keys of a dict literal or of `dict(k=...)` (`dict(__globals__=1)|first`)."""
    from jinja2 import nodes

    if isinstance(node, nodes.Dict):
        keys = [p.key.value for p in node.items if isinstance(p.key, nodes.Const)]
        return [k for k in keys if isinstance(k, str)]
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name == "dict"
        and not node.args
    ):
        return [k.key for k in node.kwargs]
    return None


def _const_int(node: nodes.Node | None) -> int | None:
    from jinja2 import nodes

    if isinstance(node, nodes.Neg):
        inner = _const_int(node.node)
        return None if inner is None else -inner
    if (
        isinstance(node, nodes.Const)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        return node.value if abs(node.value) <= _MAX_FOLD_LEN else None
    return None
