"""SafeUnpickler: what it resolves, how resolved objects may be used, and what it refuses."""

from __future__ import annotations

import collections
import copyreg
import datetime
import decimal
import io
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from factories import pickleasm as asm
from factories.pickleasm import Build, Call, Ext, G, program
from modelguard import ModelGuardError
from modelguard.guard import SafeUnpickler, UnsafeLoadError, safe_load, safe_loads
from modelguard.policy import Policy

VALUES: list[Any] = [
    None,
    True,
    12345678901234567890,
    -1.5,
    "text é",
    b"\x00\xff",
    bytearray(b"ab"),
    (1, (2, 3)),
    [1, [2, {"k": {3, 4}}]],
    frozenset({1, 2}),
    collections.OrderedDict(a=1),
    collections.Counter("aab"),
    datetime.datetime(2026, 1, 2, 3, 4, 5),
    decimal.Decimal("1.25"),
    complex(1, 2),
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_values_round_trip(protocol: int) -> None:
    data = pickle.dumps(VALUES, protocol=protocol)
    assert safe_loads(data) == VALUES


def test_stacked_pickles_load_one_by_one() -> None:
    stream = io.BytesIO(pickle.dumps([1]) + pickle.dumps({"b": 2}))
    unpickler = SafeUnpickler(stream)
    assert unpickler.load() == [1]
    assert unpickler.load() == {"b": 2}
    with pytest.raises(EOFError):
        unpickler.load()


def test_is_a_pickle_unpickler_and_the_error_is_both_kinds() -> None:
    assert isinstance(SafeUnpickler(io.BytesIO(b"")), pickle.Unpickler)
    with pytest.raises(UnsafeLoadError) as info:
        safe_loads(program(Call(G("os", "system"), ("true",)), 2))
    assert isinstance(info.value, pickle.UnpicklingError)
    assert isinstance(info.value, ModelGuardError)
    assert info.value.name == "os:system"
    assert "os:system" in str(info.value)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("__builtin__", "exec"),
        ("subprocess", "Popen"),
        ("numpy", "testing._private.utils.runstring"),
        ("collections", "OrderedDict.__init_subclass__"),
        ("mypkg", "helper"),  # unknown: not on the allowlist
    ],
)
def test_find_class_refuses_what_is_not_allowlisted(module: str, name: str) -> None:
    with pytest.raises(UnsafeLoadError):
        safe_loads(program(G(module, name), 4))


def test_user_allowlist_entry_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "guardpkg_a.py").write_text("def make(x):\n    return ('made', x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = program(Call(G("guardpkg_a", "make"), (1,)), 4)
    with pytest.raises(UnsafeLoadError):
        safe_loads(data)
    policy = Policy(allow={"guardpkg_a:make": "our own pure helper"})
    assert safe_loads(data, policy=policy) == ("made", 1)


_WIDGET = """
import os
CANARY = os.environ["GUARD_CANARY"]

class Widget:
    def __init__(self, *args):
        open(CANARY, "w").close()


class Holder:
    def __setstate__(self, state):
        self.__dict__.update(state)
"""


@pytest.fixture
def widget_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Policy, Path]:
    (tmp_path / "guardpkg_w.py").write_text(_WIDGET)
    canary = tmp_path / "canary"
    monkeypatch.setenv("GUARD_CANARY", str(canary))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "guardpkg_w", raising=False)
    policy = Policy(
        allow={"guardpkg_w:Holder": "plain state holder"},
        allow_new={"guardpkg_w:Widget": "rebuilt by NEWOBJ only"},
    )
    return policy, canary


def test_construct_only_class_rebuilt_by_newobj(widget_policy: tuple[Policy, Path]) -> None:
    policy, canary = widget_policy
    body = asm.global_("guardpkg_w", "Widget") + asm.EMPTY_TUPLE + asm.NEWOBJ
    obj = safe_loads(asm.wrap(body + asm.EMPTY_DICT + asm.BUILD, 2), policy=policy)
    assert type(obj).__name__ == "Widget"
    assert not canary.exists()


@pytest.mark.parametrize(
    "body",
    [
        asm.global_("guardpkg_w", "Widget") + asm.EMPTY_TUPLE + asm.REDUCE,
        asm.MARK + asm.global_("guardpkg_w", "Widget") + asm.int_(1) + asm.OBJ,
        asm.MARK + asm.int_(1) + asm.inst("guardpkg_w", "Widget"),
    ],
    ids=["reduce", "obj", "inst"],
)
def test_construct_only_class_is_never_called(
    widget_policy: tuple[Policy, Path], body: bytes
) -> None:
    policy, canary = widget_policy
    with pytest.raises(UnsafeLoadError, match="NEWOBJ"):
        safe_loads(asm.wrap(body, 2), policy=policy)
    assert not canary.exists()


def test_getattr_is_judged_by_what_it_reaches() -> None:
    joined = Call(Call(G("builtins", "getattr"), (G("builtins", "str"), "join")), ("-", ["a", "b"]))
    assert safe_loads(program(joined, 2)) == "a-b"
    for attr in ("__subclasses__", "mro"):
        reach = Call(G("builtins", "getattr"), (G("builtins", "object"), attr))
        with pytest.raises(UnsafeLoadError):
            safe_loads(program(reach, 2))


def test_attribute_of_an_instance_needs_its_class_attribute_allowlisted() -> None:
    # getattr(OrderedDict(), "clear"): a bound method that allowlisted code could call later by
    # name; refused unless collections:OrderedDict.clear is itself allowlisted.
    bound = Call(G("builtins", "getattr"), (Call(G("collections", "OrderedDict")), "clear"))
    with pytest.raises(UnsafeLoadError, match=r"collections:OrderedDict\.clear"):
        safe_loads(program(bound, 2))
    allowed = Policy(allow={"collections:OrderedDict.clear": "test: a harmless method"})
    assert callable(safe_loads(program(bound, 2), policy=allowed))
    with pytest.raises(UnsafeLoadError, match="not a vetted callable"):
        safe_loads(program(Call(bound), 2), policy=allowed)  # still never a vetted callable
    # Plain data kept in the instance's own __dict__ may be read.
    namespace = Build(Call(G("types", "SimpleNamespace"), ()), {"size": 3, "label": "x"})
    assert safe_loads(program(Call(G("builtins", "getattr"), (namespace, "size")), 2)) == 3
    private = Build(Call(G("types", "SimpleNamespace"), ()), {"_size": 3})
    with pytest.raises(UnsafeLoadError):
        safe_loads(program(Call(G("builtins", "getattr"), (private, "_size")), 2))


def test_build_cannot_shadow_a_method_with_an_unvetted_callable() -> None:
    # A callable built by the load written over a method name of the instance's class.
    made = Call(G("functools", "partial"), (G("builtins", "dict"),))
    shadow = Build(Call(G("collections", "OrderedDict")), (None, {"keys": made}))
    with pytest.raises(UnsafeLoadError, match="shadow"):
        safe_loads(program(shadow, 2))
    namespace = Build(Call(G("types", "SimpleNamespace"), ()), {"keys": [1]})
    assert safe_loads(program(namespace, 2)).keys == [1]  # data may shadow: nothing is called


def test_callable_attributes_must_be_vetted() -> None:
    made = Call(G("functools", "partial"), (G("builtins", "list"),))
    factory = Build(Call(G("collections", "defaultdict"), ()), (None, {"default_factory": made}))
    with pytest.raises(UnsafeLoadError, match="default_factory"):
        safe_loads(program(factory, 2))
    vetted = Build(
        Call(G("collections", "defaultdict"), ()), (None, {"default_factory": G("builtins", "int")})
    )
    assert safe_loads(program(vetted, 2))["k"] == 0


def test_type_with_three_arguments_is_refused() -> None:
    assert safe_loads(program(Call(G("builtins", "type"), (1,)), 2)) is int
    synth = Call(G("builtins", "type"), ("X", (), {}))
    with pytest.raises(UnsafeLoadError, match="class synthesis"):
        safe_loads(program(synth, 2))


def test_build_cannot_mutate_a_global() -> None:
    data = program(Build(G("collections", "OrderedDict"), {"fromkeys": 1}), 2)
    with pytest.raises(UnsafeLoadError, match="BUILD"):
        safe_loads(data)
    assert not hasattr(collections.OrderedDict, "__setstate__")


def test_nested_pickle_loads_is_enforced_too() -> None:
    inner_ok = pickle.dumps({"a": 1})
    assert safe_loads(program(Call(G("pickle", "loads"), (inner_ok,)), 3)) == {"a": 1}
    inner_bad = program(Call(G("os", "system"), ("true",)), 2)
    with pytest.raises(UnsafeLoadError, match="os:system"):
        safe_loads(program(Call(G("pickle", "loads"), (inner_bad,)), 3))


def test_other_loaders_are_refused() -> None:
    with pytest.raises(UnsafeLoadError, match="loader"):
        safe_loads(program(Call(G("numpy", "load"), ("x.npy",)), 2))


def test_extension_codes_go_through_the_policy() -> None:
    copyreg.add_extension("os", "system", 0x7FFE)
    copyreg.add_extension("collections", "OrderedDict", 0x7FFD)
    try:
        # A plain load first fills the process-wide extension cache; the guard must not use it.
        pickle.loads(program(Ext(0x7FFD), 2))  # benign: an allowlisted class
        assert safe_loads(program(Call(Ext(0x7FFD)), 2)) == collections.OrderedDict()
        with pytest.raises(UnsafeLoadError, match="os:system"):
            safe_loads(program(Call(Ext(0x7FFE), ("true",)), 2))
    finally:
        copyreg.remove_extension("os", "system", 0x7FFE)
        copyreg.remove_extension("collections", "OrderedDict", 0x7FFD)


def test_persistent_ids_are_refused_unless_a_subclass_handles_them() -> None:
    data = asm.wrap(asm.binunicode("pid") + b"Q", 2)  # BINPERSID
    with pytest.raises(UnsafeLoadError, match="persistent id"):
        safe_loads(data)

    class Known(SafeUnpickler):
        def persistent_load(self, pid: Any) -> Any:
            return ("resolved", pid)

    assert Known(io.BytesIO(data)).load() == ("resolved", "pid")


def test_safe_load_accepts_paths_and_files(tmp_path: Path) -> None:
    path = tmp_path / "v.pkl"
    path.write_bytes(pickle.dumps({"x": [1, 2]}))
    assert safe_load(path) == {"x": [1, 2]}
    with open(path, "rb") as handle:
        assert safe_load(handle) == {"x": [1, 2]}


# The construct-only Widget is now refused as soon as it is stored as a value; a vetted callable
# (dict) reaches the __setstate__ checks themselves.
_PLANTED = [G("guardpkg_w", "Widget"), G("builtins", "dict")]
_PLANT_REFUSAL = "__setstate__|construct-only"


@pytest.mark.parametrize("value", _PLANTED, ids=["construct-only", "vetted"])
def test_build_cannot_plant_a_setstate(widget_policy: tuple[Policy, Path], value: G) -> None:
    # BUILD {"__setstate__": Widget} then BUILD {}: the second BUILD would call Widget(state).
    policy, canary = widget_policy
    planted = Build(Call(G("argparse", "Namespace")), {"__setstate__": value})
    with pytest.raises(UnsafeLoadError, match=_PLANT_REFUSAL):
        safe_loads(program(Build(planted, {}), 2), policy=policy)
    assert not canary.exists()


@pytest.mark.parametrize("value", _PLANTED, ids=["construct-only", "vetted"])
def test_build_refuses_a_setstate_planted_by_a_class_setstate(
    widget_policy: tuple[Policy, Path], value: G
) -> None:
    policy, canary = widget_policy
    planted = Build(Call(G("guardpkg_w", "Holder")), {"__setstate__": value})
    # Refused at the first BUILD (it would shadow the class's __setstate__), or at the second.
    with pytest.raises(UnsafeLoadError, match=_PLANT_REFUSAL):
        safe_loads(program(Build(planted, {}), 2), policy=policy)
    assert not canary.exists()


def test_out_of_band_buffers() -> None:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(pickle.PickleBuffer(b"abc"), protocol=5, buffer_callback=buffers.append)
    loaded = SafeUnpickler(io.BytesIO(data), buffers=buffers).load()
    assert bytes(loaded) == b"abc"
