"""Keras model configs (`.keras` config.json, legacy `.h5` model_config, Keras JSON).

Keras deserialisation turns a config into objects: it imports the `module` a config names,
resolves `registered_name` and `class_name`, calls functions named by
`{"class_name": "function"}` objects and rebuilds Lambda code from marshalled bytecode.
Every nested dict and list is walked (not only the top-level layers), because
`deserialize_keras_object` recurses into any value that carries a `class_name`:

- MG440 keras-lambda: a `__lambda__` object (Keras 3: `{"code": base64 marshal}` or
  `{"value": [...]}`), or a legacy tf-keras `X` field whose `X_type` is "lambda" (Lambda's
  `function`, `output_shape`, `mask` stored as `[base64, defaults, closure]`). The evidence
  is the printable strings of the decoded bytes; the code is never unmarshalled.
- MG441 keras-foreign-module: a `module`/`fn_module`/`output_shape_module` whose top-level
  package is not one of `KERAS_PACKAGES` (compared exactly: "kerasx" or "keras_evil" is
  foreign), or a `registered_name`/`class_name` of the form "package>Name" with such a
  package. Keras 3.15 writes modules such as "keras", "keras.layers", "keras.src.models.
  functional" and "builtins" (functions like activations); registered custom objects are
  written as `{"module": null, "registered_name": "Package>Name"}` and are reported, since
  that is how CVE-2025-1550 called arbitrary functions; allow them by policy once reviewed.
  Also MG441: a `{"module": "builtins"}` reference naming a Python builtin that is not a
  harmless value type or pure function (`print`, `exit`, `delattr`...), and a
  `{"class_name": "function"}` reference into a Keras module outside the modelling
  namespaces (Keras 3.15 writes every function as module "builtins", so such a reference
  is never written by Keras; Keras < 3.9 imported the module and took the name from it).
- MG442 keras-unsafe-reference: a name from Keras' own denylist of non-modelling APIs
  (`NON_MODELING_APIS` in keras/src/saving/serialization_lib.py, 3.15.1), the layers that load
  other artifacts (TFSMLayer, TorchModuleWrapper), a vocabulary-like field given as a string
  (a file path or URL: StringLookup/IntegerLookup/TextVectorization, keras_hub tokenizers,
  CVE-2025-12058), or a `name` that is a path (CVE-2026-12479: names used as paths by
  DiskIOStore); a `{"module": "builtins"}` reference to a code-running or attribute-reaching
  builtin (exec, eval, open, __import__, compile, getattr...), and a function reference into
  Keras' file, saving, export or utility modules (`keras.src.utils.file_utils.rmtree`,
  `keras.src.legacy.saving.legacy_h5_format.load_model_from_hdf5`) that Keras' own
  denylist does not name.

A Lambda whose `function` is a plain named function (`{"module": "builtins", "class_name":
"function", "config": "my_fn"}`, what Keras writes for `Lambda(my_fn)`) carries no code:
Keras resolves the name from its own built-ins or the caller's `custom_objects` only, so it
is not reported unless the name is one of the builtins above.

Findings are deduplicated per (rule, subject): the first JSON path is the evidence and the
count says how often it occurs.
"""

from __future__ import annotations

import binascii
import builtins
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.results import Location

__all__ = [
    "HOST_LAYERS",
    "KERAS_ARCHIVE_MEMBERS",
    "KERAS_PACKAGES",
    "NON_MODELING_NAMES",
    "advisory_note",
    "check_keras_archive",
    "check_keras_config",
    "lambda_strings",
]

# Top-level packages whose modules Keras itself resolves (serialization_lib: keras,
# keras_hub, keras_cv, keras_nlp; "builtins" only selects Keras' own built-in functions);
# tf_keras is the Keras 2 package, whose configs say "keras" anyway.
KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras", "builtins"})

# The last component of every entry of Keras 3.15.1 NON_MODELING_APIS, plus save_weights'
# sibling load_weights and the *_dataset_from_directory family by suffix.
NON_MODELING_NAMES = frozenset(
    {
        "clear_session",
        "enable_unsafe_deserialization",
        "load_model",
        "model_from_json",
        "save_model",
        "load_img",
        "save_img",
        "deserialize_keras_object",
        "serialize_keras_object",
        "load_weights",
        "save_weights",
        "register_keras_serializable",
        "get_file",
    }
)
_DATASET_SUFFIX = "_dataset_from_directory"

# Python builtins that run code, open files, read input or reach attributes and namespaces:
# as a Keras function reference they turn a config value into an action (CVE-2025-1550 class).
DANGEROUS_BUILTINS = frozenset(
    {
        "exec", "eval", "compile", "open", "__import__", "getattr", "setattr", "delattr",
        "input", "breakpoint", "globals", "locals", "vars", "__build_class__", "exit", "quit",
    }
)  # fmt: skip
# Builtins with no side effect: value types and pure functions. Keras writes
# `builtin_function_or_method` references for them when a config holds e.g. `abs`.
_HARMLESS_BUILTINS = frozenset(
    {
        "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
        "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset",
        "hash", "hex", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max",
        "min", "next", "object", "oct", "ord", "pow", "range", "repr", "reversed", "round",
        "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    }
)  # fmt: skip
_PY_BUILTINS = frozenset(dir(builtins))

# Keras modules whose functions are modelling functions (what Keras < 3.9 could write as
# `{"module": "keras.<family>", "class_name": "function"}`); `keras.src.<family>...` too.
_MODELLING_FAMILIES = frozenset(
    {
        "activations", "losses", "metrics", "initializers", "regularizers", "constraints",
        "optimizers", "ops", "random", "layers", "applications",
    }
)  # fmt: skip
# Keras module path components that do I/O, saving, export or host access.
_IO_COMPONENTS = frozenset(
    {
        "utils", "saving", "legacy", "export", "callbacks", "datasets", "config", "file_utils",
        "io_utils",
    }
)  # fmt: skip
_KERAS_FUNCTION_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras"})

# Layers that load other artifacts from the host: an external SavedModel (CVE-2026-1462) and
# a pickled torch module (torch.load(weights_only=False), CVE-2025-49655).
HOST_LAYERS = frozenset({"TFSMLayer", "TorchModuleWrapper"})

# Fields that hold a vocabulary or tokenizer model: a list or null in a saved model (assets
# carry the data), a path or URL when crafted (CVE-2025-12058; keras-hub#2517).
_VOCAB_KEYS = frozenset(
    {"vocabulary", "merges", "proto", "spm_proto", "vocabulary_file", "merges_file"}
)
_MODULE_KEYS = ("module", "fn_module", "output_shape_module")

KERAS_ARCHIVE_MEMBERS = frozenset(
    {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}
)
_RISKY_SUFFIXES = (
    ".py", ".pyc", ".pkl", ".pickle", ".pt", ".pth", ".joblib", ".so", ".dll", ".dylib",
    ".exe", ".sh", ".bat", ".cmd", ".ps1", ".jar",
)  # fmt: skip

# Nesting is followed to any depth (Keras recurses with Python's stack, so payloads can sit
# under hundreds of nested models; the JSON parser bounds the depth). The walk is iterative;
# the node budget bounds the work, and JSON paths are cut to bound their memory.
_MAX_NODES = 2_000_000
_MAX_PATH = 1000
_MAX_CODE_CHARS = 1024 * 1024
_MAX_STRINGS = 40
_MAX_EVIDENCE = 400
_PRINTABLE = re.compile(rb"[\x20-\x7e]{4,}")


# Advisories by what a finding is about: (subject prefix, first affected, first fixed, CVE).
# The version a file was saved with hints at the environment that loads it; it only labels
# a message and never suppresses a finding.
_ADVISORIES: tuple[tuple[str, tuple[int, ...], tuple[int, ...], str], ...] = (
    ("lambda:", (0,), (2, 13), "CVE-2024-3660: no safe_mode"),
    ("lambda:", (3, 0), (3, 11, 3), "CVE-2025-9905: .h5 loading ignored safe_mode"),
    ("module:", (3, 0), (3, 9), "CVE-2025-1550: arbitrary module in config"),
    ("registered:", (3, 0), (3, 9), "CVE-2025-1550: arbitrary module in config"),
    ("ref:get_file", (3, 0), (3, 11), "CVE-2025-8747: get_file gadget"),
    ("ref:enable_unsafe_deserialization", (3, 0), (3, 11), "CVE-2025-9906"),
    ("ref:TorchModuleWrapper", (3, 11), (3, 11, 3), "CVE-2025-49655"),
    ("ref:TFSMLayer", (3, 0), (3, 12, 1), "CVE-2026-1462"),
    ("vocab:", (3, 0), (3, 12), "CVE-2025-12058: vocabulary path read"),
    ("name:", (3, 14), (3, 15), "CVE-2026-12479: names as paths"),
)


def _version(text: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", text.split("+", 1)[0])[:3]
    return tuple(int(p) for p in parts) if parts else None


def advisory_note(subject: str, keras_version: str | None) -> str:
    """A message suffix naming the saving Keras version and the advisories whose range has it."""
    if not keras_version:
        return ""
    version = _version(keras_version)
    cves = [
        cve
        for prefix, low, high, cve in _ADVISORIES
        if version is not None and subject.startswith(prefix) and low <= version < high
    ]
    note = f" (saved by Keras {_short(keras_version)}"
    return note + (f", in the range of {'; '.join(cves)})" if cves else ")")


@dataclass
class _Hit:
    rule: str
    message: str
    path: str
    evidence: dict[str, str]
    count: int = 1


@dataclass
class _Walk:
    hits: dict[tuple[str, str], _Hit] = field(default_factory=dict)

    def add(self, rule: str, subject: str, message: str, path: str, **evidence: str) -> None:
        key = (rule, subject)
        hit = self.hits.get(key)
        if hit is None:
            self.hits[key] = _Hit(rule, message, path, evidence)
        else:
            hit.count += 1


def lambda_strings(code: str) -> list[str]:
    """Printable runs (>= 4 chars) of base64-decoded marshalled code; never unmarshalled."""
    raw = code[:_MAX_CODE_CHARS].encode("ascii", errors="ignore")
    try:
        data = binascii.a2b_base64(raw)
    except (binascii.Error, ValueError):
        data = raw
    out: list[str] = []
    for match in _PRINTABLE.finditer(data):
        text = match.group().decode("ascii")
        if text not in out:
            out.append(text)
        if len(out) >= _MAX_STRINGS:
            break
    return out


def _join(path: str, step: str) -> str:
    """`path + step`, cut so that deep or long-keyed configs keep paths bounded."""
    if len(path) >= _MAX_PATH:
        return path
    joined = path + step
    return joined if len(joined) < _MAX_PATH else joined[: _MAX_PATH - 3] + "..."


def _fmt(path: str) -> str:
    return path or "(root)"


def _short(value: str) -> str:
    return value if len(value) <= 200 else value[:197] + "..."


def _package(module: str) -> str:
    return module.strip().split(".", 1)[0]


def _denied(name: str) -> str | None:
    """Return the denied API or layer `name` refers to (last dotted/`>` component), if any."""
    last = re.split(r"[.>]", name.strip())[-1]
    if last in NON_MODELING_NAMES or last.endswith(_DATASET_SUFFIX) or last in HOST_LAYERS:
        return last
    return None


def _path_like(name: str) -> bool:
    return "/" in name or "\\" in name or "\x00" in name or name.strip() in (".", "..")


def _check_ref(walk: _Walk, name: str, field_: str, path: str) -> None:
    """MG442 for a name (class, function, module component) that is denied."""
    denied = _denied(name)
    if denied is None:
        for part in name.split("."):
            if part in NON_MODELING_NAMES:
                denied = part
                break
    if denied is None:
        return
    what = "a layer that loads host artifacts" if denied in HOST_LAYERS else "a non-modelling API"
    walk.add(
        "MG442",
        f"ref:{denied}",
        f"Keras config references {name!r}, {what} that Keras denies in configs",
        path,
        name=_short(name),
        field=field_,
    )


def _check_module(walk: _Walk, module: str, field_: str, path: str) -> None:
    package = _package(module)
    if package not in KERAS_PACKAGES:
        walk.add(
            "MG441",
            f"module:{module}",
            f"Keras config imports from module {module!r}, outside Keras' packages",
            path,
            module=_short(module),
            field=field_,
        )
    _check_ref(walk, module, field_, path)


# A registered name's package ("my_pkg>Scale") is a namespace in the loading process's
# registry of custom objects, not something Keras imports: custom layers registered by the
# user's own code are ordinary. A namespace named like a module that runs processes or code
# is only there to look like one and is reported.
_HOST_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib",
        "pickle", "marshal", "ctypes", "runpy", "code", "pty", "webbrowser", "urllib",
        "requests", "http", "io", "pathlib", "tempfile", "multiprocessing", "threading",
    }
)  # fmt: skip


def _check_registered(walk: _Walk, name: str, field_: str, path: str) -> None:
    if ">" in name:
        package = name.split(">", 1)[0].strip()
        if package.split(".", 1)[0] in _HOST_MODULES:
            walk.add(
                "MG441",
                f"registered:{name}",
                f"Keras config uses the custom registered object {name!r} "
                f"(package {package!r}), resolved from code outside Keras",
                path,
                registered_name=_short(name),
                field=field_,
            )
    _check_ref(walk, name, field_, path)


def _check_builtin(walk: _Walk, name: str, field_: str, path: str) -> None:
    """MG442/MG441 for a `builtins` reference naming a Python builtin that does something."""
    name = name.strip()
    if name in DANGEROUS_BUILTINS:
        walk.add(
            "MG442",
            f"builtin:{name}",
            f"Keras config references the Python builtin {name!r}, which runs code, opens "
            "files or reaches attributes when called",
            path,
            name=_short(name),
            field=field_,
        )
    elif name in _PY_BUILTINS and name not in _HARMLESS_BUILTINS:
        walk.add(
            "MG441",
            f"builtin:{name}",
            f"Keras config references the Python builtin {name!r}, not a Keras function",
            path,
            name=_short(name),
            field=field_,
        )


def _check_keras_function(walk: _Walk, module: str, name: str, path: str) -> None:
    """A `{"class_name": "function"}` reference into a Keras module.

    Keras 3.15 writes every function as module "builtins"; Keras < 3.9 imported the named
    module and took the function from it, so a reference into a non-modelling Keras module
    (file, saving, export utilities) calls that helper with config values.
    """
    parts = [p.strip() for p in module.split(".")]
    package = parts[0]
    if package not in _KERAS_FUNCTION_PACKAGES:
        return
    rest = parts[1:]
    if rest[:1] == ["src"]:
        rest = rest[1:]
    if package in ("keras", "tf_keras") and rest[:1] and rest[0] in _MODELLING_FAMILIES:
        return
    target = f"{module.strip()}.{name.strip()}"
    if any(p in _IO_COMPONENTS for p in rest):
        walk.add(
            "MG442",
            f"kfunc:{target}",
            f"Keras config calls {target!r}, a Keras file/saving/utility helper that is not a "
            "modelling function",
            path,
            name=_short(target),
            field="function",
        )
    elif package in ("keras", "tf_keras"):
        walk.add(
            "MG441",
            f"kfunc:{target}",
            f"Keras config references the function {target!r} outside Keras' modelling "
            "modules (Keras writes functions as module 'builtins')",
            path,
            name=_short(target),
            field="function",
        )


def _lambda(walk: _Walk, code: object, path: str, how: str) -> None:
    if isinstance(code, list) and code:
        code = code[0]
    text = code if isinstance(code, str) else ""
    strings = lambda_strings(text)
    shown = ", ".join(strings)
    if len(shown) > _MAX_EVIDENCE:
        shown = shown[: _MAX_EVIDENCE - 3] + "..."
    walk.add(
        "MG440",
        f"lambda:{path}",
        f"Keras config holds a Lambda with marshalled Python code ({how})",
        path,
        strings=shown or "(none)",
        code_chars=str(len(text)),
    )


def _visit_dict(walk: _Walk, d: dict[object, object], path: str) -> None:
    """The checks on one JSON object (its children are walked by the caller)."""
    class_name = d.get("class_name")
    config = d.get("config")
    for mkey in _MODULE_KEYS:
        module = d.get(mkey)
        if isinstance(module, str) and module:
            _check_module(walk, module, mkey, f"{path}.{mkey}" if path else mkey)
    registered = d.get("registered_name")
    if isinstance(registered, str) and registered:
        _check_registered(walk, registered, "registered_name", path)
        if registered.split(">", 1)[0].strip() == "builtins" and ">" in registered:
            _check_builtin(walk, registered.split(">", 1)[1], "registered_name", path)
    module = d.get("module")
    if isinstance(class_name, str):
        _check_registered(walk, class_name, "class_name", path)
        by_name = class_name in ("function", "builtin_function_or_method")
        if isinstance(module, str) and module.strip() == "builtins":
            if by_name and isinstance(config, str):
                _check_builtin(walk, config, "function", path)
            elif not by_name:
                _check_builtin(walk, class_name, "class_name", path)
        if class_name == "__lambda__":
            code = None
            if isinstance(config, dict):
                code = config.get("code", config.get("value"))
            _lambda(walk, code, _fmt(path), "__lambda__")
        elif class_name == "function" and isinstance(config, str):
            _check_ref(walk, config, "function", path)
            if isinstance(module, str):
                _check_keras_function(walk, module, config, path)
    for key, value in d.items():
        if not isinstance(key, str):
            continue
        where = f"{path}.{key}" if path else key
        if d.get(f"{key}_type") == "lambda" and isinstance(value, (str, list)):
            _lambda(walk, value, where, f"legacy {key}_type 'lambda'")
        elif key == "function" and isinstance(value, str):
            _check_ref(walk, value, "function", where)
        elif key in _VOCAB_KEYS and isinstance(value, str) and value:
            walk.add(
                "MG442",
                f"vocab:{value}",
                f"Keras config gives {key} as a string {_short(value)!r}: a file path or URL "
                "read when the layer is built",
                where,
                name=_short(value),
                field=key,
            )
        elif key == "name" and isinstance(value, str) and _path_like(value):
            walk.add(
                "MG442",
                f"name:{value}",
                f"Keras object name {_short(value)!r} is a path; Keras uses names as paths "
                "when saving and loading assets",
                where,
                name=_short(value),
                field="name",
            )


def check_keras_config(
    scan: FileScan,
    config: dict[str, object],
    loc: Location,
    *,
    keras_version: str | None = None,
) -> None:
    """Walk a Keras config (any nesting) and report code, foreign modules and unsafe refs.

    `keras_version` (from metadata.json or the HDF5 attribute) only labels messages.
    Never raises on any JSON-like value.
    """
    walk = _Walk()
    stack: list[tuple[object, str]] = [(config, "")]
    nodes = 0
    while stack:
        value, path = stack.pop()
        nodes += 1
        if nodes > _MAX_NODES:
            scan.incomplete("MG003", f"Keras config has more than {_MAX_NODES} values", loc)
            break
        if isinstance(value, dict):
            children: list[tuple[object, str]] = []
            _visit_dict(walk, value, path)
            for key, child in value.items():
                if isinstance(child, (dict, list)):
                    children.append((child, _join(path, f".{key}" if path else str(key))))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(
                (child, _join(path, f"[{i}]"))
                for i, child in reversed(list(enumerate(value)))
                if isinstance(child, (dict, list))
            )
    for (_, subject), hit in walk.hits.items():
        evidence = dict(hit.evidence)
        evidence["path"] = _short(_fmt(hit.path))
        if hit.count > 1:
            evidence["occurrences"] = str(hit.count)
        if keras_version:
            evidence["keras_version"] = _short(keras_version)
        scan.finding(hit.rule, hit.message + advisory_note(subject, keras_version), loc, **evidence)


def check_keras_archive(scan: FileScan, names: list[str], loc: Location) -> None:
    """Report members of a `.keras` zip that Keras does not write (MG445).

    The members themselves are analysed by the zip walk; this only says they are unexpected.
    """
    unexpected: list[str] = []
    risky: list[str] = []
    for name in names:
        if name.endswith("/") or name in KERAS_ARCHIVE_MEMBERS:
            continue
        is_risky = name.lower().endswith(_RISKY_SUFFIXES)
        if name.startswith("assets/") and not is_risky:
            continue
        unexpected.append(name)
        if is_risky:
            risky.append(name)
    if not unexpected:
        return
    evidence = {"members": _short(", ".join(unexpected[:10])), "count": str(len(unexpected))}
    if risky:
        evidence["code_or_pickle"] = _short(", ".join(risky[:10]))
    scan.finding(
        "MG445",
        f".keras archive holds {len(unexpected)} member(s) Keras does not write"
        + (f", including {', '.join(risky[:3])}" if risky else ""),
        loc,
        **evidence,
    )
