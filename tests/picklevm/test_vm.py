"""The symbolic machine: every opcode, CPython's reading order, and what it records."""

from __future__ import annotations

import collections
import datetime
import decimal
import pickle
import pickletools
from struct import pack

import pytest

from modelguard.config import Limits
from modelguard.formats.blob import BytesBlob
from modelguard.picklevm.opcodes import OPCODES, iter_opcodes
from modelguard.picklevm.values import CallResult, DictV, ExtRef, GlobalRef, ListV, SetV
from modelguard.picklevm.vm import run_pickle

LIMITS = Limits()


def run(data: bytes, registry: dict[int, tuple[str, str]] | None = None):  # type: ignore[no-untyped-def]
    return run_pickle(BytesBlob(data), 0, LIMITS, registry)


def names(data: bytes) -> list[tuple[str, str]]:
    return [(g.module, g.name) for g in run(data).imports]


VALUES = [
    {"a": [1, 2.5, "x", b"y", None, True, False]},
    (1, (2, 3), [4, {5: "6"}]),
    {1, 2, 3},
    frozenset({"a"}),
    bytearray(b"abc"),
    2**200,
    -(2**70),
    -1,
    65535,
    3.25,
    "é" * 300,
    b"\x00" * 300,
    collections.OrderedDict(a=1),
    datetime.date(2020, 1, 2),
    decimal.Decimal("1.5"),
    [[]] * 3,
]


@pytest.mark.parametrize("proto", range(6))
@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_real_pickles_complete(value: object, proto: int) -> None:
    data = pickle.dumps(value, protocol=proto)
    res = run(data)
    assert res.complete, res.error
    assert res.end == len(data)
    assert res.error is None


def test_every_opcode_is_in_the_table() -> None:
    assert {op.code for op in OPCODES.values()} == {ord(op.code) for op in pickletools.opcodes}
    for op in pickletools.opcodes:
        assert OPCODES[ord(op.code)].name == op.name
        assert OPCODES[ord(op.code)].proto == op.proto


@pytest.mark.parametrize("proto", range(6))
def test_iter_opcodes_matches_pickletools(proto: int) -> None:
    data = pickle.dumps(VALUES, protocol=proto)
    ours = [(o.offset, o.opcode.name) for o in iter_opcodes(data)]
    theirs = [(pos, op.name) for op, _, pos in pickletools.genops(data)]
    assert ours == theirs


class _Reduce:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.getcwd, ())


@pytest.mark.parametrize("proto", range(6))
def test_reduce_is_a_call_site(proto: int) -> None:
    res = run(pickle.dumps([_Reduce()], protocol=proto))
    assert ("posix", "getcwd") in [(g.module, g.name) for g in res.imports]
    call = next(c for c in res.calls if isinstance(c.func, GlobalRef))
    assert call.kind == "reduce"
    assert call.args == ()


def test_stack_global_through_memo_and_protocol0_strings() -> None:
    # STRING operands, no PROTO, module and name parked in the memo and fetched back.
    data = b"S'os'\np0\n0S'system'\np1\n0g0\ng1\n\x93(S'id'\ntR."
    assert names(data) == [("os", "system")]


def test_memoize_index_counts_entries_like_cpython() -> None:
    # PUT 5 then MEMOIZE: MEMOIZE stores at len(memo) == 1, not at 6.
    data = (
        b"\x80\x04\x8c\x02osp5\n\x8c\x06system\x94"
        b"0h\x05h\x01\x93)R."  # POP the name, then GET 5 ('os') and GET 1 ('system')
    )
    assert names(data) == [("os", "system")]


def test_missing_memo_key_stops_like_the_loader() -> None:
    res = run(b"\x80\x02h\x07.")
    assert not res.complete
    assert res.error is not None and "memo" in str(res.error)


def test_stack_global_of_runtime_values_is_dynamic() -> None:
    # module name produced by a call: the loader would import whatever it returns.
    data = b"\x80\x04c_codecs\nencode\n\x8c\x02bf\x8c\x05rot13\x86R\x8c\x06system\x93)R."
    res = run(data)
    dyn = [g for g in res.imports if g.dynamic]
    assert len(dyn) == 1 and dyn[0].name == "system" and dyn[0].module == "?"


def test_stack_global_with_non_str_literal_fails() -> None:
    res = run(b"\x80\x04K\x01K\x02\x93.")
    assert res.error is not None and "STACK_GLOBAL" in str(res.error)


def test_ext_resolves_in_stream_registration() -> None:
    data = (
        b"\x80\x02ccopyreg\nadd_extension\n(X\x02\x00\x00\x00osX\x06\x00\x00\x00systemK\x7ftR0"
        b"\x82\x7f(X\x02\x00\x00\x00idtR."
    )
    res = run(data)
    assert ("os", "system") in [(g.module, g.name) for g in res.imports]
    assert next(g for g in res.imports if g.name == "system").opcode == "EXT1"


def test_unregistered_ext_is_recorded() -> None:
    res = run(b"\x80\x02\x83\x39\x30)R.")
    assert isinstance(res.ext_refs[0], ExtRef) and res.ext_refs[0].code == 0x3039
    assert res.complete


def test_ext_registry_is_shared_across_pickles() -> None:
    registry: dict[int, tuple[str, str]] = {}
    first = b"\x80\x02ccopyreg\nadd_extension\n(X\x02\x00\x00\x00ntX\x04\x00\x00\x00pathK\x05tR."
    run(first, registry)
    assert registry == {5: ("nt", "path")}
    assert [(g.module, g.name) for g in run(b"\x80\x02\x82\x05.", registry).imports] == [
        ("nt", "path")
    ]


def test_inst_and_obj_are_calls() -> None:
    res = run(b"(S'ls'\nios\nsystem\n.")
    assert res.calls[0].kind == "inst" and res.calls[0].args == ("ls",)
    res = run(b"(cos\nsystem\nS'ls'\no.")
    assert res.calls[0].kind == "obj" and res.calls[0].args == ("ls",)


def test_newobj_ex_records_kwargs() -> None:
    data = b"\x80\x04\x8c\x03mod\x8c\x03Cls\x93)}\x8c\x01k\x8c\x01v\x86\x92."
    call = run(data).calls[0]
    assert call.kind == "newobj_ex"


def test_build_on_a_global_is_a_mutation() -> None:
    data = b"\x80\x02ccopy\ncopy\n}X\x01\x00\x00\x00aK\x01sb."
    res = run(data)
    assert res.mutations and res.mutations[0].kind == "build"
    assert isinstance(res.mutations[0].target, GlobalRef)


def test_build_on_an_instance_records_state() -> None:
    data = b"\x80\x02cmod\nCls\n)\x81}X\x01\x00\x00\x00aK\x01sb."
    res = run(data)
    assert not res.mutations
    inst = res.value
    assert isinstance(inst, CallResult) and isinstance(inst.states[0], DictV)


def test_setitem_on_a_global_is_a_mutation() -> None:
    res = run(b"\x80\x02csys\nmodules\nX\x01\x00\x00\x00xK\x01s.")
    assert res.mutations[0].kind == "setitem"


def test_pop_of_empty_mark_region_pops_the_mark() -> None:
    # MARK, POP (pops the mark itself, as CPython does), then TUPLE needs a mark: fails.
    res = run(b"\x80\x02K\x01(0t.")
    assert res.error is not None and "MARK" in str(res.error)
    # Without the POP the same TUPLE succeeds.
    assert run(b"\x80\x02K\x01(t0.").complete


def test_underflow_below_mark_fails() -> None:
    res = run(b"\x80\x02cos\nsystem\n(R.")
    assert res.error is not None


def test_truncated_stream_keeps_what_was_seen() -> None:
    full = pickle.dumps(_Reduce(), protocol=2)
    res = run(full[:-3])
    assert not res.complete and res.error is not None
    assert ("posix", "getcwd") in [(g.module, g.name) for g in res.imports]


def test_execute_then_fail_keeps_the_call() -> None:
    data = pickle.dumps(_Reduce(), protocol=2)[:-1] + b"\xff\xfe garbage"
    res = run(data)
    assert res.calls and res.error is not None and "invalid load key" in str(res.error)


def test_frame_overrun_is_recorded_with_its_span() -> None:
    data = b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00C\x05abcde."
    res = run(data)
    kinds = [a.kind for a in res.anomalies]
    assert "frame-overrun" in kinds
    span = next(a.span for a in res.anomalies if a.kind == "frame-overrun")
    assert span == (13, 18)


def test_well_framed_pickle_has_no_anomaly() -> None:
    data = pickle.dumps(list(range(10000)), protocol=5)
    res = run(data)
    assert res.complete and not res.anomalies


def test_nested_frame_is_recorded() -> None:
    frame = b"\x95" + pack("<Q", 20)
    data = b"\x80\x04" + frame + b"K\x01" + frame + b"0K\x02" + b"N" * 20 + b"."
    res = run(data)
    assert "frame-nested" in [a.kind for a in res.anomalies]


def test_misplaced_proto_is_recorded() -> None:
    res = run(b"K\x01\x80\x02.")
    assert [a.kind for a in res.anomalies] == ["proto-misplaced"]


def test_unsupported_protocol_fails() -> None:
    assert run(b"\x80\x09N.").error is not None


def test_containers_are_modelled() -> None:
    res = run(pickle.dumps([{"k": [1]}, {2}, frozenset({3})], protocol=4))
    top = res.value
    assert isinstance(top, ListV)
    assert isinstance(top.items[0], DictV) and isinstance(top.items[1], SetV)


def test_opcode_limit_is_enforced() -> None:
    data = b"\x80\x02" + b"N0" * 5000 + b"N."
    res = run_pickle(BytesBlob(data), 0, Limits(max_opcodes=4096))
    assert res.error is not None and getattr(res.error, "limit", None) == "max_opcodes"


def test_pickle_size_limit_is_enforced() -> None:
    data = b"\x80\x04\x8e" + pack("<Q", 10_000) + b"x" * 10_000 + b"."
    res = run_pickle(BytesBlob(data), 0, Limits(max_pickle_bytes=1000))
    assert getattr(res.error, "limit", None) == "max_pickle_bytes"


def test_persistent_ids_are_recorded() -> None:
    res = run(b"\x80\x02X\x01\x00\x00\x00kQ.")
    assert res.persids and res.persids[0].pid == "k"
    res = run(b"Pkey\n.")
    assert res.persids[0].pid == "key"


@pytest.mark.parametrize(
    "data",
    [b"I0x10\n.", b"I017\n.", b"I-5\n.", b"L0x10L\n.", b"I0b11\n.", b"I007\n.", b"L123L\n."],
)
def test_text_integers_are_read_like_the_c_unpickler(data: bytes) -> None:
    # Literal-only streams (no GLOBAL): loading them is safe and is the reference.
    expected = pickle.loads(data)
    res = run(data)
    assert res.complete and res.value == expected


def test_inst_without_mark_fails_before_importing() -> None:
    res = run(b"ios\nsystem\n.")
    assert res.error is not None and not res.imports


def test_joblib_array_with_an_inconsistent_item_size_stops_the_analysis() -> None:
    # NumpyArrayWrapper whose float64 dtype state claims 1000-byte items: skipping by the
    # claimed size could jump over opcodes joblib would read.
    dtype = (
        b"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R"
        b"(K\x03X\x01\x00\x00\x00<NNNM\xe8\x03J\xff\xff\xff\xffK\x00tb"
    )
    data = (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(X\x05\x00\x00\x00dtype"
        + dtype
        + b"X\x05\x00\x00\x00shapeK\x01\x85ub"
        + b"\x00" * 8
        + b"."
    )
    res = run(data)
    assert res.error is not None and "dtype" in str(res.error)
