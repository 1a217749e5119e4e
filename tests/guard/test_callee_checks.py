"""Issue 5 fixes: the scanner flags (and the guard refuses) callables laundered through getattr
defaults, helpers that call an argument, builtin-type methods and allowlist patterns."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from factories.pickleasm import Build, Call, G, Node, program
from modelguard import scan
from modelguard.guard import UnsafeLoadError, safe_loads
from modelguard.policy import Policy
from modelguard.policy.names import module_glob_match


def _write_text(canary: Path) -> Call:
    path = Call(G("pathlib", "PosixPath"), (str(canary),))
    return Call(G("builtins", "getattr"), (path, "write_text"))


def _rules(tmp_path: Path, data: bytes) -> set[str]:
    target = tmp_path / "payload.pkl"
    target.write_bytes(data)
    return {f.rule_id for f in scan(target).findings}


def _payloads(canary: Path) -> dict[str, Node]:
    wt = _write_text(canary)
    return {
        "getattr-default": Call(
            Call(G("builtins", "getattr"), (G("builtins", "dict"), "nope", wt)), ("x",)
        ),
        "randomstate-ctor": Call(G("numpy.random._pickle", "__randomstate_ctor"), ("x", wt)),
        "rebuild-from-type": Call(
            G("torch._tensor", "_rebuild_from_type_v2"), (wt, G("torch", "Tensor"), ("x",), {})
        ),
        "dill-create-array": Call(G("dill._dill", "_create_array"), (wt, ("x",), None, None)),
        "defaultdict-factory": Call(G("collections", "defaultdict"), (wt,)),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "getattr-default",
        "randomstate-ctor",
        "rebuild-from-type",
        "dill-create-array",
        "defaultdict-factory",
    ],
)
def test_scanner_flags_laundered_callables(tmp_path: Path, kind: str) -> None:
    canary = tmp_path / "canary"
    data = program(_payloads(canary)[kind], 4)
    assert "MG103" in _rules(tmp_path, data)
    with pytest.raises(UnsafeLoadError):
        safe_loads(data)
    assert not canary.exists()


def test_scanner_flags_impure_builtin_methods_and_private_attributes(tmp_path: Path) -> None:
    members = Call(G("builtins", "getattr"), (Call(G("re", "RegexFlag"), (2,)), "_member_map_"))
    setdefault = Call(G("builtins", "getattr"), (G("builtins", "dict"), "setdefault"))
    assert "MG102" in _rules(tmp_path, program(Call(setdefault, (members, "k", 1)), 4))
    fmt = Call(G("builtins", "getattr"), (G("builtins", "str"), "format"))
    assert "MG102" in _rules(tmp_path, program(Call(fmt, ("{0}", 1)), 4))


def test_pure_builtin_methods_still_load_and_scan_clean(tmp_path: Path) -> None:
    fromhex = Call(G("builtins", "getattr"), (G("builtins", "bytes"), "fromhex"))
    data = program(Call(fromhex, ("00ff",)), 4)
    assert _rules(tmp_path, data) == set()
    assert safe_loads(data) == b"\x00\xff"


def test_vetted_helper_callees_and_factories_still_load() -> None:
    data = program(Call(G("collections", "defaultdict"), (G("builtins", "list"),)), 2)
    loaded = safe_loads(data)
    assert isinstance(loaded, collections.defaultdict) and loaded.default_factory is list


def test_getattr_default_literal_is_fine_but_not_a_value_from_the_stream() -> None:
    fromhex = Call(G("builtins", "getattr"), (G("builtins", "bytes"), "fromhex", None))
    assert safe_loads(program(Call(fromhex, ("01",)), 4)) == b"\x01"
    built = Call(G("builtins", "list"), ())
    laundered = Call(G("builtins", "getattr"), (G("builtins", "bytes"), "fromhex", built))
    with pytest.raises(UnsafeLoadError, match="default"):
        safe_loads(program(laundered, 4))


def test_module_globs_do_not_cross_dots_unless_doubled() -> None:
    assert module_glob_match("sklearn.tree", "sklearn.*")
    assert not module_glob_match("sklearn.tree._tree", "sklearn.*")
    assert module_glob_match("sklearn.tree._tree", "sklearn.**")
    assert module_glob_match("pandas._libs.tslibs.base", "pandas._libs.**")
    assert not module_glob_match("pandas._libs", "pandas._libs.**")


def test_pattern_entry_imports_only_extension_modules() -> None:
    # json.decoder is a Python module: a user pattern matching it does not import it.
    policy = Policy(allow={"json.*:__pyx_unpickle_*": "test pattern"})
    with pytest.raises(UnsafeLoadError, match="compiled extension"):
        safe_loads(program(G("json.decoder", "__pyx_unpickle_X"), 4), policy=policy)


def test_unresolvable_allowlisted_name_is_a_refusal() -> None:
    policy = Policy(allow={"modelguard_no_such_module:thing": "test"})
    with pytest.raises(UnsafeLoadError, match="cannot be resolved"):
        safe_loads(program(G("modelguard_no_such_module", "thing"), 4), policy=policy)


def test_scanner_needs_the_class_attribute_allowlisted_for_instance_getattr(
    tmp_path: Path,
) -> None:
    # getattr(<instance>, name) is inert only when module:Class.name is allowlisted.
    bound = Call(G("builtins", "getattr"), (Call(G("collections", "OrderedDict")), "copy"))
    target = tmp_path / "bound.pkl"
    target.write_bytes(program(bound, 4))
    found = [f for f in scan(target).findings if f.rule_id == "MG102"]
    assert [f.evidence_map.get("mechanism") for f in found] == ["getattr-on-instance"]
    assert found[0].evidence_map["global"] == "collections:OrderedDict.copy"
    allowed = Policy(allow={"collections:OrderedDict.copy": "test: returns a copy"})
    assert scan(target, policy=allowed).findings == ()


def test_scanner_judges_callables_stored_in_a_state(tmp_path: Path) -> None:
    def transformer(func: Node) -> Node:
        cls = G("sklearn.preprocessing._function_transformer", "FunctionTransformer")
        return Build(Call(cls, ()), {"func": func, "inverse_func": None, "validate": False})

    assert _rules(tmp_path, program(transformer(G("numpy", "log")), 4)) == set()
    made = Call(G("functools", "partial"), (G("numpy", "log"),))
    assert "MG103" in _rules(tmp_path, program(transformer(made), 4))
    factory = Build(Call(G("collections", "defaultdict"), ()), (None, {"default_factory": made}))
    assert "MG103" in _rules(tmp_path, program(factory, 4))
    with pytest.raises(UnsafeLoadError, match="default_factory"):
        safe_loads(program(factory, 4))
