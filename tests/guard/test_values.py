"""Issue 5 round 3: construct-only classes used as values, number constructors judged by their
arguments, callable-holding sklearn attributes and torch rebuilder states (scanner and guard)."""

from __future__ import annotations

import fractions
from pathlib import Path

import pytest

import factories.pickleasm as asm
from factories.pickleasm import Build, Call, G, Node, Raw, emit, program
from modelguard import scan
from modelguard.guard import UnsafeLoadError, safe_loads
from modelguard.policy import Policy

_POLICY = Policy(allow_new={"textwrap:TextWrapper": "test: construct-only"})


def _rules(tmp_path: Path, data: bytes, policy: Policy | None = None) -> set[str]:
    target = tmp_path / "payload.pkl"
    target.write_bytes(data)
    return {f.rule_id for f in scan(target, policy=policy).findings}


def _newobj(module: str, name: str, args: bytes = asm.EMPTY_TUPLE) -> Raw:
    return Raw(emit(G(module, name), 4) + args + asm.NEWOBJ)


# -- construct-only classes ------------------------------------------------------------------

_AS_VALUE: dict[str, Node] = {
    "list": [G("textwrap", "TextWrapper")],
    "dict": {"k": G("textwrap", "TextWrapper")},
    "tuple-second": ("x", G("textwrap", "TextWrapper")),
    "argument": Call(G("builtins", "list"), ((G("textwrap", "TextWrapper"),),)),
    "state": Build(Call(G("types", "SimpleNamespace"), ()), {"keys": G("textwrap", "TextWrapper")}),
    "result": G("textwrap", "TextWrapper"),
}


@pytest.mark.parametrize("kind", list(_AS_VALUE))
def test_construct_only_class_used_as_a_value(tmp_path: Path, kind: str) -> None:
    data = program(_AS_VALUE[kind], 4)
    with pytest.raises(UnsafeLoadError, match="construct-only"):
        safe_loads(data, policy=_POLICY)
    assert "MG102" in _rules(tmp_path, data, _POLICY)


def test_construct_only_class_as_a_class_operand_still_loads(tmp_path: Path) -> None:
    newobj = Build(_newobj("textwrap", "TextWrapper"), {"a": 1})
    assert safe_loads(program(newobj, 4), policy=_POLICY).a == 1
    # protocol 0/1 spelling: copyreg._reconstructor(cls, object, None)
    recon = Call(
        G("copyreg", "_reconstructor"),
        (G("textwrap", "TextWrapper"), G("builtins", "object"), None),
    )
    for node in (newobj, recon):
        data = program(node, 4)
        safe_loads(data, policy=_POLICY)
        assert "MG102" not in _rules(tmp_path, data, _POLICY)


def test_build_value_must_be_vetted_when_callable() -> None:
    # type(x) returns a class nobody vetted: stored under any key, code may call it by name.
    klass = Call(G("builtins", "type"), (1,))
    planted = Build(Call(G("types", "SimpleNamespace"), ()), {"anything": klass})
    with pytest.raises(UnsafeLoadError, match="not vetted"):
        safe_loads(program(planted, 4))
    vetted = Build(Call(G("types", "SimpleNamespace"), ()), {"f": G("builtins", "dict"), "n": 3})
    assert safe_loads(program(vetted, 4)).n == 3


# -- number constructors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [("1e100000000",), ("1E-99999",), ("1" * 20_000,), (1.5, 2), ("1", "2")]
)
def test_fraction_with_unbounded_arguments(tmp_path: Path, args: tuple[object, ...]) -> None:
    data = program(Call(G("fractions", "Fraction"), args), 4)
    with pytest.raises(UnsafeLoadError, match="Fraction"):
        safe_loads(data)
    assert "MG102" in _rules(tmp_path, data)


def test_fraction_bomb_by_newobj_and_copyreg(tmp_path: Path) -> None:
    by_newobj = _newobj("fractions", "Fraction", emit(("1e100000000",), 4))
    by_copyreg = Call(G("copyreg", "__newobj__"), (G("fractions", "Fraction"), "1e100000000"))
    for node in (by_newobj, by_copyreg):
        data = program(node, 4)
        with pytest.raises(UnsafeLoadError, match="exponent"):
            safe_loads(data)
        assert "MG102" in _rules(tmp_path, data)


@pytest.mark.parametrize("args", [(3, 4), ("1.5e-3",), ("3/4",), (7,), (0.25,)])
def test_fraction_with_bounded_arguments(tmp_path: Path, args: tuple[object, ...]) -> None:
    data = program(Call(G("fractions", "Fraction"), args), 4)
    assert safe_loads(data) == fractions.Fraction(*args)  # type: ignore[arg-type]
    assert "MG102" not in _rules(tmp_path, data)


def test_decimal_string_length_is_bounded(tmp_path: Path) -> None:
    assert (
        str(safe_loads(program(Call(G("decimal", "Decimal"), ("1e999999999",)), 4)))
        == "1E+999999999"
    )
    data = program(Call(G("decimal", "Decimal"), ("1" * 20_000,)), 4)
    with pytest.raises(UnsafeLoadError, match="Decimal"):
        safe_loads(data)
    assert "MG102" in _rules(tmp_path, data)


# -- callables held by sklearn attributes, torch rebuilder states ------------------------------


def _partial() -> Call:
    return Call(G("functools", "partial"), (G("builtins", "dict"),))


def test_sklearn_kernel_must_be_vetted(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    svc = Build(_newobj("sklearn.svm._classes", "SVC"), {"kernel": _partial()})
    data = program(svc, 4)
    with pytest.raises(UnsafeLoadError, match="kernel"):
        safe_loads(data)
    assert "MG103" in _rules(tmp_path, data)
    params = Build(
        _newobj("sklearn.neighbors._lof", "LocalOutlierFactor"),
        {"metric": "minkowski", "metric_params": {"w": _partial(), "p": 2}},
    )
    with pytest.raises(UnsafeLoadError, match="metric_params"):
        safe_loads(program(params, 4))
    assert "MG103" in _rules(tmp_path, program(params, 4))


def _tensor() -> Call:
    storage = Call(G("torch", "FloatStorage"), ())
    return Call(G("torch._utils", "_rebuild_tensor_v2"), (storage, 0, (0,), (1,), False, None))


def test_torch_backward_hooks_and_state_are_checked(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    hooks = Call(G("torch._utils", "_rebuild_parameter"), (_tensor(), False, {0: _partial()}))
    state = Call(
        G("torch._utils", "_rebuild_parameter_with_state"),
        (_tensor(), False, {}, {"__class__": G("builtins", "dict")}),
    )
    for node, rule in ((hooks, "MG103"), (state, "MG104")):
        data = program(node, 4)
        with pytest.raises(UnsafeLoadError):
            safe_loads(data)
        assert rule in _rules(tmp_path, data)
    plain = Call(
        G("torch._utils", "_rebuild_parameter_with_state"), (_tensor(), False, {}, {"tag": "w"})
    )
    assert safe_loads(program(plain, 4)).tag == "w"
