"""Fuzz the whole scanner with mutated real artifacts: it always returns a result."""

from __future__ import annotations

import io
import pickle
import tempfile
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelguard.config import Limits
from modelguard.policy import Policy
from modelguard.scanner import scan_file

POLICY = Policy(limits=Limits(max_member_bytes=1 << 20, max_total_bytes=4 << 20))


def _seeds() -> list[bytes]:
    seeds = []
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3, 2), "b": torch.ones(2)}, buf)
    seeds.append(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf, _use_new_zipfile_serialization=False)
    seeds.append(buf.getvalue())
    with tempfile.TemporaryDirectory() as tmp:
        for compress in (0, 3):
            path = Path(tmp) / f"j{compress}.joblib"
            joblib.dump({"a": np.arange(6), "o": np.array(["x", None], dtype=object)}, path,
                        compress=compress)  # fmt: skip
            seeds.append(path.read_bytes())
    buf = io.BytesIO()
    np.save(buf, np.array([1, "a"], dtype=object), allow_pickle=True)
    seeds.append(buf.getvalue())
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/data.pkl", pickle.dumps([1, 2], protocol=2))
    seeds.append(zbuf.getvalue())
    return seeds


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "zero":
            data[pos : pos + 8] = b"\x00" * len(data[pos : pos + 8])
    return bytes(data)


def _scan(tmp: Path, data: bytes) -> None:
    path = tmp / "f.bin"
    path.write_bytes(data)
    result = scan_file(path, "f.bin", POLICY)
    assert result.path == "f.bin"
    # scan_file turns unexpected exceptions into an incomplete result; in fuzzing that is a bug.
    assert not [i for i in result.incomplete if "internal error" in i.reason], result.incomplete
    # A result that is not complete is never "safe".
    if not result.complete:
        assert result.verdict.value != "safe"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_artifacts_always_give_a_result(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _scan(Path(tmp), data)


@pytest.mark.slow
@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_artifacts_always_give_a_result_long(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _scan(Path(tmp), data)
