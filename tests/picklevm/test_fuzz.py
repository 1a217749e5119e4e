"""Fuzz the decoder, the symbolic machine and the evaluator with mutated real pickles.

Whatever the bytes, `run_pickle` returns a result (an error inside it, never an exception),
within the opcode budget, and evaluation turns it into findings without raising.
"""

from __future__ import annotations

import collections
import pickle
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard.config import Limits
from modelguard.errors import FormatError
from modelguard.formats.blob import BytesBlob, FileBlob
from modelguard.picklevm.opcodes import iter_opcodes
from modelguard.picklevm.vm import run_pickle
from modelguard.policy import Policy
from modelguard.policy.evaluate import evaluate_pickle
from modelguard.results import Location

SMALL = Limits(max_opcodes=50_000, max_pickle_bytes=1 << 20, max_stack=10_000, max_memo=10_000)
SEEDS = [
    pickle.dumps(v, protocol=p)
    for p in range(6)
    for v in (
        {"a": [1, 2.5, "x", b"y", None, True]},
        collections.OrderedDict(k=(1, 2)),
        {frozenset({1}), 3},
        [bytearray(b"z"), 2**90],
    )
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            data[pos:pos] = draw(st.sampled_from(SEEDS))
    return bytes(data)


def _check(data: bytes) -> None:
    res = run_pickle(BytesBlob(data), 0, SMALL)
    assert res.complete or res.error is not None
    assert res.opcodes <= SMALL.max_opcodes
    out = evaluate_pickle(res, Location("fuzz"), Policy())
    assert isinstance(out.findings, list)
    try:
        for _ in iter_opcodes(data, max_ops=SMALL.max_opcodes):
            pass
    except FormatError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_pickles_never_raise(data: bytes) -> None:
    _check(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    _check(data)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_pickles_never_raise_long(data: bytes) -> None:
    _check(data)


@pytest.mark.parametrize(
    "bomb",
    [
        # memo "billion laughs": each level references the previous one twice
        b"\x80\x04]\x94" + b"h\x00h\x00\x86\x94" * 60 + b".",
        # deeply nested lists
        b"\x80\x04" + b"]" * 5000 + b"a" * 4999 + b".",
        # a self-referencing list
        b"\x80\x04]\x94h\x00a.",
        # marks without end
        b"\x80\x04" + b"(" * 20000 + b".",
    ],
)
def test_expansion_and_recursion_bombs_are_bounded(bomb: bytes) -> None:
    tracemalloc.start()
    try:
        res = run_pickle(BytesBlob(bomb), 0, SMALL)
        evaluate_pickle(res, Location("bomb"), Policy())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024


def test_large_literals_and_long_pickles_keep_memory_bounded(tmp_path: Path) -> None:
    """A pickle holding 64 MB of bytes literals is analysed in a few MB of memory."""
    big = pickle.dumps(
        {"a": b"\x00" * (32 << 20), "b": "x" * (32 << 20), "c": list(range(200_000))}, protocol=4
    )
    path = tmp_path / "big.pkl"
    path.write_bytes(big)
    del big
    with FileBlob.open(path) as blob:
        tracemalloc.start()
        try:
            res = run_pickle(blob, 0, Limits())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert res.complete, res.error
    assert peak < 24 * 1024 * 1024, peak


def test_nested_payload_in_a_large_literal_is_read_back(tmp_path: Path) -> None:
    inner = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."
    padding = b"\x80\x02N." + b"\x00" * (2 << 20)  # a stacked-pickle payload over 1 MiB
    payload = inner + padding
    outer = (
        b"\x80\x04\x8c\x06pickle\x8c\x05loads\x93B"
        + len(payload).to_bytes(4, "little")
        + payload
        + b"\x85R."
    )
    path = tmp_path / "outer.pkl"
    path.write_bytes(outer)
    import modelguard

    result = modelguard.scan(path).files[0]
    assert "MG101" in {f.rule_id for f in result.findings}
