"""Classify a global named by a pickle: allowed, conditional, dangerous (with its family), unknown.

The tables are data (`data/allowlist.toml`, `data/denylist.toml`); this module holds the
mechanism: Python 2 name mapping as the unpickler applies it, attribute paths, module aliases
and dunder access, so that a family is recognised however the name is spelled.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "CALLABLE_ATTRS",
    "CALLEE_ARGS",
    "TORCH_STATE_ARGS",
    "Class",
    "Conditional",
    "NameTables",
    "Ruling",
    "builtin_method",
    "classify",
    "default_tables",
    "inert_literal",
    "module_glob_match",
    "normalize",
    "torchscript_name",
]


class Class(Enum):
    """What a name is, for the policy."""

    ALLOW = "allow"
    CONDITIONAL = "conditional"
    DENY = "deny"
    UNKNOWN = "unknown"


class Conditional(Enum):
    """Callables that are harmless or dangerous depending on their arguments."""

    GETATTR = "getattr"  # result is an attribute chosen by the data
    LOADER = "loader"  # deserialises its argument: analyse the embedded bytes
    PARTIAL = "partial"  # wraps a callable taken from the data
    TYPE = "type"  # type(x) is inert, type(name, bases, ns) synthesises a class
    BUFFER = "buffer"  # io.BytesIO(bytes): an in-memory file for a loader


_CONDITIONALS: dict[str, Conditional] = {
    "builtins:getattr": Conditional.GETATTR,
    "builtins:type": Conditional.TYPE,
    "functools:partial": Conditional.PARTIAL,
    "io:BytesIO": Conditional.BUFFER,
    "_io:BytesIO": Conditional.BUFFER,
    "pickle:loads": Conditional.LOADER,
    "pickle:load": Conditional.LOADER,
    "_pickle:loads": Conditional.LOADER,
    "_pickle:load": Conditional.LOADER,
    "torch.storage:_load_from_bytes": Conditional.LOADER,
    "torch:load": Conditional.LOADER,
    "torch.serialization:load": Conditional.LOADER,
    "numpy:load": Conditional.LOADER,
    "numpy.lib.npyio:load": Conditional.LOADER,
    "joblib:load": Conditional.LOADER,
    "joblib.numpy_pickle:load": Conditional.LOADER,
    "pandas:read_pickle": Conditional.LOADER,
    "pandas.io.pickle:read_pickle": Conditional.LOADER,
    "dill:loads": Conditional.LOADER,
    "dill._dill:loads": Conditional.LOADER,
    "cloudpickle:loads": Conditional.LOADER,
}

# Module spellings the unpickler maps before importing (Python 2 names kept by protocol 2).
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg", "cPickle": "pickle"}

# Methods of builtin data types a pickle may reach with getattr (`getattr(bytes, "fromhex")`):
# pure constructors and non-mutating operations on the arguments, which call no user code
# (no str.format: it walks attributes; no encode/decode: codec lookup imports by name; no
# mutating methods: their first argument may be a global object).
_BUILTIN_PURE_METHODS = frozenset(
    {
        "bytes.fromhex", "bytearray.fromhex", "float.fromhex", "int.from_bytes",
        "dict.fromkeys", "str.join", "bytes.join", "str.maketrans", "bytes.maketrans",
    }
)  # fmt: skip

# Allowlisted helpers that call (or instantiate) one of their arguments: argument position ->
# "call" (the argument is called: it must be a vetted callable), "class" (only its __new__ or
# a classmethod runs: it must be an allowlisted class) or "type" (called only when it is a
# class; numpy's ctors take a bit generator instance, a class or a name there). Literals
# (None, names) pass.
CALLEE_ARGS: dict[str, tuple[tuple[int, str], ...]] = {
    "numpy.random._pickle:__randomstate_ctor": ((0, "type"), (1, "call")),
    "numpy.random._pickle:__generator_ctor": ((0, "type"), (1, "call")),
    "numpy.random._pickle:__bit_generator_ctor": ((0, "type"),),
    "torch._tensor:_rebuild_from_type_v2": ((0, "call"), (1, "class")),
    "torch._tensor:_rebuild_from_type": ((0, "call"), (1, "class")),
    "torch._utils:_rebuild_wrapper_subclass": ((0, "class"),),
    "dill._dill:_create_array": ((0, "call"),),
    "pandas.core.indexes.base:_new_Index": ((0, "class"),),
    "pandas.core.indexes.interval:_new_IntervalIndex": ((0, "class"),),
    "numpy._core.multiarray:_reconstruct": ((0, "class"),),
    "numpy.core.multiarray:_reconstruct": ((0, "class"),),
    "numpy.ma.core:_mareconstruct": ((0, "class"), (1, "class")),
    "collections:defaultdict": ((0, "call"),),
}
"""Helpers whose callee arguments must pass the allowlist too (scanner and guard)."""

# torch tensor rebuilders that store `backward_hooks` (a dict of callables torch calls during
# backward) on the tensor, or `setattr` every key of a state (dict, or (dict, slots)) on it, as a
# BUILD would: name -> (position of backward_hooks, position of the state). Hook values must be
# vetted callables; the state passes the BUILD-state checks (no dunder keys, no unvetted
# callables, `CALLABLE_ATTRS` of the class).
TORCH_STATE_ARGS: dict[str, tuple[int | None, int | None]] = {
    "torch._utils:_rebuild_parameter": (2, None),
    "torch._utils:_rebuild_parameter_with_state": (2, 3),
    "torch._utils:_rebuild_qtensor": (6, None),
    "torch._utils:_rebuild_tensor_v2": (5, None),
    "torch._utils:_rebuild_tensor_v3": (5, None),
    "torch._tensor:_rebuild_from_type_v2": (None, 3),
}

_SELECTORS = ("SelectKBest", "SelectPercentile", "GenericUnivariateSelect", "SelectFpr",
              "SelectFdr", "SelectFwe")  # fmt: skip
_NEIGHBOURS = ("_classification:KNeighborsClassifier", "_classification:RadiusNeighborsClassifier",
               "_regression:KNeighborsRegressor", "_regression:RadiusNeighborsRegressor",
               "_unsupervised:NearestNeighbors")  # fmt: skip
_METRIC_PARAMS = frozenset({"metric", "metric_params", "effective_metric_params_"})
_KERNEL_USERS = ("sklearn.svm._classes:SVC", "sklearn.svm._classes:SVR",
                 "sklearn.svm._classes:NuSVC", "sklearn.svm._classes:NuSVR",
                 "sklearn.svm._classes:OneClassSVM",
                 "sklearn.kernel_ridge:KernelRidge", "sklearn.decomposition._kernel_pca:KernelPCA",
                 "sklearn.kernel_approximation:Nystroem")  # fmt: skip
_METRIC_USERS = ("sklearn.neighbors._lof:LocalOutlierFactor", "sklearn.impute._knn:KNNImputer",
                 "sklearn.neighbors._nearest_centroid:NearestCentroid",
                 "sklearn.manifold._isomap:Isomap")  # fmt: skip
_TEXT = ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")

# Allowlisted classes that keep a callable in an attribute and call it on ordinary use after
# the load (a missing-key lookup, `transform`, `score`): a value a BUILD state sets there must
# pass the same check as a "call" argument in `CALLEE_ARGS` (literals and None pass). A dict
# there (`metric_params`) holds keyword arguments of the metric: its callable values are
# checked the same way.
CALLABLE_ATTRS: dict[str, frozenset[str]] = {
    "collections:defaultdict": frozenset({"default_factory"}),
    "sklearn.preprocessing._function_transformer:FunctionTransformer": frozenset(
        {"func", "inverse_func"}
    ),
    "sklearn.compose._target:TransformedTargetRegressor": frozenset({"func", "inverse_func"}),
    **{
        f"sklearn.metrics._scorer:{name}": frozenset({"_score_func"})
        for name in (
            "_Scorer",
            "_CurveScorer",
            "_PredictScorer",
            "_ProbaScorer",
            "_ThresholdScorer",
        )
    },
    **{
        f"sklearn.feature_selection._univariate_selection:{name}": frozenset({"score_func"})
        for name in _SELECTORS
    },
    **{
        f"sklearn.neighbors.{name}": frozenset({"weights", "effective_metric_", *_METRIC_PARAMS})
        for name in _NEIGHBOURS
    },
    **{name: frozenset({"kernel"}) for name in _KERNEL_USERS},
    "sklearn.gaussian_process.kernels:PairwiseKernel": frozenset(
        {"metric", "pairwise_kernels_kwargs"}
    ),
    **{name: _METRIC_PARAMS for name in _METRIC_USERS},
    **{
        f"sklearn.feature_extraction.text:{name}": frozenset(
            {"analyzer", "preprocessor", "tokenizer"}
        )
        for name in _TEXT
    },
}
"""Attributes holding a callable that the class calls after the load (scanner and guard)."""

# Module-level functions with dunder names that picklers reference legitimately.
_DUNDER_OK = frozenset({"__newobj__", "__newobj_ex__", "__reduce_ex__"})


@dataclass(frozen=True, slots=True)
class Ruling:
    """How a name is classified, and why.

    Attributes:
        klass: the class of the name.
        name: the normalised `module:qualname` that was judged.
        family: for DENY, the family (code-execution, process, ...).
        reason: for ALLOW, the allowlist reason; for DENY, what matched.
        conditional: for CONDITIONAL, how the call is judged.
        construct_only: for ALLOW, the class is allowed only when rebuilt by NEWOBJ + BUILD
            (an `[allow_new]` entry); calling it with REDUCE/INST/OBJ runs its __init__.
    """

    klass: Class
    name: str
    family: str = ""
    reason: str = ""
    conditional: Conditional | None = None
    construct_only: bool = False
    pattern: bool = False


# Values a call can return, or a helper be handed, harmlessly where a callable could be (a
# getattr default, a defaultdict factory): calling one cannot run anything.
_LITERALS = (str, bytes, int, float, complex, bool)


def inert_literal(value: object) -> bool:
    """Return True for a plain literal (None, str, bytes, a number): it cannot run anything
    (scanner and guard)."""
    return value is None or isinstance(value, _LITERALS)


def torchscript_name(module: str) -> bool:
    """Return True for a TorchScript module name (`__torch__` or below): only the TorchScript
    unpickler resolves these, from the archive's own code (scanner and guard)."""
    return module == "__torch__" or module.startswith("__torch__.")


def builtin_method(dotted: str) -> Ruling | None:
    """Return an ALLOW ruling for a pure method of a builtin data type (`builtins:bytes.fromhex`).

    None for anything else (the name is then classified by the tables).
    """
    module, _, name = dotted.partition(":")
    if module == "builtins" and name in _BUILTIN_PURE_METHODS:
        return Ruling(Class.ALLOW, dotted, reason="pure method of a builtin data type")
    return None


@cache
def _module_regex(glob: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^.]*")
        elif ch == "?":
            out.append("[^.]")
        elif ch == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def module_glob_match(module: str, glob: str) -> bool:
    """Match a module name against an allowlist module glob.

    `*` and `?` do not cross a dot (`sklearn.*` is `sklearn.tree`, not `sklearn.a.b`); `**`
    spans dots, for entries that mean a whole package tree.
    """
    return _module_regex(glob).match(module) is not None


@dataclass(frozen=True)
class NameTables:
    """The allow and deny tables, split into exact entries and patterns for fast lookup."""

    allow_exact: Mapping[str, str]
    allow_patterns: tuple[tuple[str, str, str], ...]  # (module glob, name glob, reason)
    deny_modules: Mapping[str, str]  # module -> family
    deny_names: Mapping[str, str]  # "module:qualname" -> family
    deny_attrs: Mapping[str, str]  # "module:qualname" whose attributes (only) are denied
    module_aliases: Mapping[str, str]  # bare module-name component -> family
    new_exact: Mapping[str, str] = field(default_factory=dict)  # construct-only entries
    new_patterns: tuple[tuple[str, str, str], ...] = ()

    def with_allow(
        self, entries: Iterable[tuple[str, str]], *, construct_only: bool = False
    ) -> NameTables:
        """Return tables with extra allowlist entries ("module:qualname" -> reason) added.

        With `construct_only`, the entries go to the NEWOBJ-only table (`[allow_new]`).
        """
        exact = dict(self.new_exact if construct_only else self.allow_exact)
        patterns = list(self.new_patterns if construct_only else self.allow_patterns)
        for key, reason in entries:
            module, _, name = key.partition(":")
            if _is_pattern(key):
                patterns.append((module, name, reason))
            else:
                exact[f"{_map_module(module)}:{name}"] = reason
        if construct_only:
            return replace(self, new_exact=exact, new_patterns=tuple(patterns))
        return replace(self, allow_exact=exact, allow_patterns=tuple(patterns))


def _is_pattern(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def _map_module(module: str) -> str:
    head, dot, rest = module.partition(".")
    mapped = _MODULE_ALIASES.get(head)
    return mapped + dot + rest if mapped else module


_DATA = Path(__file__).resolve().parent / "data"
_COMPILED = _DATA / "tables.json"


def compile_tables() -> dict[str, object]:
    """Parse the TOML sources (`allowlist.toml`, `denylist.toml`) into the compiled form.

    The TOML files are what people edit; `tables.json` is what is loaded at run time (JSON
    parses about 40x faster than TOML). `python -m modelguard.policy.names` rewrites it, and
    a test fails when the two disagree.
    """
    import tomllib

    allow_doc = tomllib.loads((_DATA / "allowlist.toml").read_text("utf-8"))
    deny_doc = tomllib.loads((_DATA / "denylist.toml").read_text("utf-8"))
    allow = allow_doc.get("allow", {})
    allow_new = allow_doc.get("allow_new", {})
    families = deny_doc.get("families", {})
    if not all(isinstance(t, dict) for t in (allow, allow_new, families)):
        raise ValueError("malformed policy tables")
    deny: dict[str, dict[str, list[str]]] = {
        family: {"modules": list(spec.get("modules", ())), "names": list(spec.get("names", ()))}
        for family, spec in families.items()
    }
    return {
        "allow": {str(k): str(v) for k, v in allow.items()},
        "allow_new": {str(k): str(v) for k, v in allow_new.items()},
        "deny": deny,
    }


def _build(doc: Mapping[str, Any]) -> NameTables:
    deny_modules: dict[str, str] = {}
    deny_names: dict[str, str] = {}
    deny_attrs: dict[str, str] = {}
    for family, spec in doc["deny"].items():
        for module in spec["modules"]:
            deny_modules.setdefault(module, family)
        for key in spec["names"]:
            if key.endswith(".*"):
                deny_attrs.setdefault(key[:-2], family)
            else:
                deny_names.setdefault(key, family)
    aliases = {m: fam for m, fam in deny_modules.items() if "." not in m}
    aliases.update({"builtins": "code-execution", "__builtins__": "code-execution"})
    aliases.update({"__builtin__": "code-execution"})
    base = NameTables({}, (), deny_modules, deny_names, deny_attrs, aliases)
    tables = base.with_allow(doc["allow"].items())
    return tables.with_allow(doc["allow_new"].items(), construct_only=True)


@cache
def default_tables() -> NameTables:
    """Return the shipped tables (loaded once per process from the compiled JSON)."""
    return _build(json.loads(_COMPILED.read_text("utf-8")))


@cache
def _compat() -> tuple[Mapping[tuple[str, str], tuple[str, str]], Mapping[str, str]]:
    import _compat_pickle  # stdlib data tables of Python 2 -> 3 names

    return _compat_pickle.NAME_MAPPING, _compat_pickle.IMPORT_MAPPING


def normalize(module: str, name: str, proto: int) -> tuple[str, str]:
    """Map a global the way CPython's unpickler does before importing it.

    Protocols < 3 go through `_compat_pickle` (fix_imports), and `__builtin__`/`copy_reg`
    spellings are folded so that tables need one spelling.
    """
    if proto < 3:
        name_map, import_map = _compat()
        if (module, name) in name_map:
            module, name = name_map[(module, name)]
        elif module in import_map:
            module = import_map[module]
    return _map_module(module), name


def _deny_lookup(tables: NameTables, module: str, name: str) -> tuple[str, str] | None:
    # The loader resolves `module:a.b.c` by importing `module` and walking attributes, so a
    # denied module reached as an attribute path (`numpy:testing._private...`) is denied too.
    parts = f"{module}.{name}".split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        family = tables.deny_modules.get(prefix)
        if family:
            return family, f"module {prefix}"
    comps = name.split(".")
    for i in range(len(comps), 0, -1):
        key = f"{module}:{'.'.join(comps[:i])}"
        family = tables.deny_names.get(key)
        if family:
            return family, key
        if i < len(comps):
            family = tables.deny_attrs.get(key)
            if family:
                return family, f"{key}.*"
    return None


def _alias_family(tables: NameTables, comp: str) -> str | None:
    """Return the family of an attribute that names a dangerous module (`os`, `_os`)."""
    bare = comp[1:] if comp.startswith("_") and not comp.startswith("__") else comp
    return tables.module_aliases.get(comp) or tables.module_aliases.get(bare)


def classify(module: str, name: str, proto: int = 4, tables: NameTables | None = None) -> Ruling:
    """Classify the global `module:name` as the loader would resolve it.

    Order: exact allowlist, conditional callables, denylist families (module prefixes,
    names), attribute paths through dangerous modules or dunders, allowlist patterns, and
    finally unknown.
    """
    if tables is None:
        tables = default_tables()
    module, name = normalize(module, name, proto)
    key = f"{module}:{name}"
    reason = tables.allow_exact.get(key)
    if reason is not None:
        return Ruling(Class.ALLOW, key, reason=reason)
    cond = _CONDITIONALS.get(key)
    if cond is not None:
        return Ruling(Class.CONDITIONAL, key, conditional=cond)
    hit = _deny_lookup(tables, module, name)
    if hit is not None:
        return Ruling(Class.DENY, key, family=hit[0], reason=hit[1])
    comps = name.split(".")
    mod_parts = module.split(".")
    # `__main__` as the module is the saving script (unknown, not dangerous).
    for comp in (*mod_parts[1:], *comps):
        if len(comp) > 4 and comp.startswith("__") and comp.endswith("__"):
            if comp in _DUNDER_OK and len(comps) == 1 and comp == name:
                continue
            return Ruling(Class.DENY, key, family="interpreter-state", reason=f"dunder {comp}")
    # Aliases matter in the attribute path only (`random:_os.system`): the module part is
    # imported as a module, and `import pkg._os` finds a real submodule of pkg, not `os`
    # re-exported under that name (denied module paths are matched by prefix above).
    for comp in comps:
        family = _alias_family(tables, comp)
        if family:
            return Ruling(
                Class.DENY, key, family=family, reason=f"attribute path through module {comp}"
            )
    if len(comps) == 1:
        for mod_glob, name_glob, why in tables.allow_patterns:
            if module_glob_match(module, mod_glob) and fnmatch.fnmatchcase(name, name_glob):
                return Ruling(Class.ALLOW, key, reason=why, pattern=True)
        why_new = tables.new_exact.get(key)
        matched = False
        if why_new is None:
            for mod_glob, name_glob, why in tables.new_patterns:
                if module_glob_match(module, mod_glob) and fnmatch.fnmatchcase(name, name_glob):
                    why_new, matched = why, True
                    break
        if why_new is not None:
            return Ruling(Class.ALLOW, key, reason=why_new, construct_only=True, pattern=matched)
    return Ruling(Class.UNKNOWN, key)


if __name__ == "__main__":
    _COMPILED.write_text(json.dumps(compile_tables(), indent=1, sort_keys=True) + "\n", "utf-8")
