"""Checks on BUILD states for the few allowlisted classes whose `__setstate__` runs code.

torch.ScriptObject (quantized models) passes its state to a TorchScript class named in that
state; only torch's own quantized packed-parameter classes are accepted.

scipy.stats distributions (`rv_generic.__setstate__`) call `exec()` on the
`_parse_arg_template` string of their pickled state to attach argument parsers. Those
classes appear in ordinary scikit-learn artifacts (RandomizedSearchCV with scipy
distributions), so they are allowlisted, but only with the template scipy itself generates:
three small `def`s that pass names and literals around. The template is parsed with `ast`
(parsing only, never compiled or run) and its structure checked.
"""

from __future__ import annotations

import ast
import fnmatch
import re

__all__ = ["VALUE_CTORS", "arguments_problem", "state_problem"]

_SCIPY_CLASSES = (
    "scipy.stats._continuous_distns:*",
    "scipy.stats._discrete_distns:*",
    "scipy.stats._distn_infrastructure:*",
    "scipy.stats.*:*_gen",
)
_PARSERS = frozenset({"_parse_args", "_parse_args_rvs", "_parse_args_stats"})
_MAX_TEMPLATE = 8192
_RETURN_NODES = (ast.Tuple, ast.Name, ast.Load, ast.Constant, ast.Call, ast.keyword, ast.Attribute)


def _defaults_ok(args: ast.arguments) -> bool:
    defaults = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    return all(isinstance(d, ast.Constant) for d in defaults) and not (
        args.vararg or args.kwarg or args.posonlyargs
    )


def _return_ok(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if not isinstance(sub, _RETURN_NODES):
            return False
        if isinstance(sub, ast.Call):
            func = sub.func
            if not (
                isinstance(func, ast.Attribute)
                and func.attr == "_argcheck_rvs"
                and isinstance(func.value, ast.Name)
                and func.value.id == "self"
            ):
                return False
        elif isinstance(sub, ast.Attribute) and sub.attr != "_argcheck_rvs":
            return False
    return True


def scipy_template_ok(text: object) -> bool:
    """Return True if `text` has the shape of scipy's generated argument-parser template."""
    if not isinstance(text, str) or len(text) > _MAX_TEMPLATE:
        return False
    try:
        tree = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for stmt in tree.body:
        if not isinstance(stmt, ast.FunctionDef) or stmt.name not in _PARSERS:
            return False
        if stmt.decorator_list or stmt.returns is not None or not _defaults_ok(stmt.args):
            return False
        if len(stmt.body) != 1 or not isinstance(stmt.body[0], ast.Return):
            return False
        value = stmt.body[0].value
        if value is None or not _return_ok(value):
            return False
    return bool(tree.body)


# Allowlisted number constructors whose cost depends on their arguments: Fraction("1e<n>")
# computes 10**n eagerly (a 19-byte string pins a CPU for minutes), and parsing is linear in the
# string. Decimal is lazy (operations on a huge exponent round to the context), so only its
# length is bounded. Pickles write Fraction(int, int) and Decimal(str).
VALUE_CTORS = frozenset({"fractions:Fraction", "decimal:Decimal"})
_MAX_NUMBER_TEXT = 10_000
_MAX_EXPONENT = 10_000
_MAX_INT_BITS = 100_000
_EXPONENT = re.compile(r"[eE]\s*[-+]?([0-9_]*)")


def _number_text_problem(text: str, *, exponent: bool) -> str | None:
    if len(text) > _MAX_NUMBER_TEXT:
        return f"a {len(text)}-character number string (at most {_MAX_NUMBER_TEXT})"
    if exponent:
        for match in _EXPONENT.finditer(text):
            digits = match.group(1).replace("_", "").lstrip("0")
            if len(digits) > 6 or (digits and int(digits) > _MAX_EXPONENT):
                return f"an exponent beyond +-{_MAX_EXPONENT} (10**exponent is computed eagerly)"
    return None


def _number_problem(value: object, *, exponent: bool) -> str | None:
    if isinstance(value, str):
        return _number_text_problem(value, exponent=exponent)
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            return f"an integer of {value.bit_length()} bits (at most {_MAX_INT_BITS})"
        return None
    if isinstance(value, float):
        return None
    return f"a {type(value).__name__} argument (only int, float or a number string)"


def arguments_problem(name: str, args: object, kwargs: object = None) -> str | None:
    """Return why calling the number constructor `name` with `args` is unsafe, or None.

    `Fraction` accepts one int, float or bounded number string (|exponent| <= 10_000, at most
    10_000 characters), or two ints; `Decimal` one int, float or a string of at most 10_000
    characters. Keyword arguments and any other value (symbolic or not) are a problem. Shared
    by the scanner (literal args, symbols otherwise) and the loading guard (real values).
    """
    if kwargs:
        return "keyword arguments"
    if not isinstance(args, tuple):
        return "arguments computed at load time"
    if name == "fractions:Fraction":
        if len(args) == 2:
            if not all(isinstance(a, int) for a in args):
                return "a numerator and denominator that are not both ints"
            return _number_problem(args[0], exponent=False) or _number_problem(
                args[1], exponent=False
            )
        if len(args) == 1:
            return _number_problem(args[0], exponent=True)
        return None if not args else f"{len(args)} arguments"
    if name == "decimal:Decimal":
        if len(args) > 1:
            return f"{len(args)} arguments (a context)"
        return _number_problem(args[0], exponent=False) if args else None
    return None


# TorchScript custom classes a pickled torch.ScriptObject may name in its state (quantized
# packed parameters); ScriptObject.__setstate__ hands the state to that C++ class.
_SCRIPT_CLASS_PREFIXES = (
    "__torch__.torch.classes.quantized.",
    "__torch__.torch.classes.xnnpack.",
    "__torch__.torch.classes.onednn.",
)


def state_problem(class_name: str, state: object) -> str | None:
    """Return why a BUILD `state` for `class_name` ("module:qualname") is unsafe, or None.

    `state` is the symbolic state: a `DictV` (or a (dict, slotstate) tuple) whose values are
    literals or symbols.
    """
    if class_name == "torch:ScriptObject":
        name = state[1] if isinstance(state, tuple) and len(state) == 2 else None
        if not (isinstance(name, str) and name.startswith(_SCRIPT_CLASS_PREFIXES)):
            return (
                f"the state names the TorchScript class {name!r}, not one of torch's quantized "
                "packed-parameter classes; ScriptObject.__setstate__ runs that class's code"
            )
        return None
    if not any(fnmatch.fnmatchcase(class_name, pattern) for pattern in _SCIPY_CLASSES):
        return None
    from modelguard.picklevm.values import DictV

    if isinstance(state, tuple) and state:
        state = state[0]
    if not isinstance(state, DictV):
        return None
    for key, value in state.pairs:
        if key == "_parse_arg_template" and not scipy_template_ok(value):
            return (
                "the state's _parse_arg_template is not scipy's generated argument parser; "
                "rv_generic.__setstate__ runs it with exec()"
            )
    return None
