"""StreamBlob: large decoded content served on demand, with bounded memory and restarts."""

from __future__ import annotations

import gzip
import os

import pytest

from modelguard.config import Limits
from modelguard.errors import LimitExceeded
from modelguard.formats.blob import BytesBlob
from modelguard.formats.compress import TruncatedStream
from modelguard.formats.streamblob import MAX_RESTARTS, StreamBlob

PAYLOAD = os.urandom(1 << 20) * 40  # 40 MiB, compresses well enough to stay quick


@pytest.fixture(scope="module")
def stream() -> StreamBlob:
    return StreamBlob(BytesBlob(gzip.compress(PAYLOAD, 1)), 0, 10**12, "gzip", Limits())


def test_reads_match_the_content(stream: StreamBlob) -> None:
    assert stream.size == len(PAYLOAD)
    for offset, n in [(0, 100), (len(PAYLOAD) - 50, 100), (20 << 20, 4096), (30 << 20, 1 << 20)]:
        assert stream.read(offset, n) == PAYLOAD[offset : offset + n]
    assert stream.read(len(PAYLOAD), 10) == b""


def test_backward_reads_are_limited() -> None:
    blob = StreamBlob(BytesBlob(gzip.compress(PAYLOAD, 1)), 0, 10**12, "gzip", Limits())
    with pytest.raises(LimitExceeded):
        for _ in range(MAX_RESTARTS + 2):
            blob.read(39 << 20, 10)
            blob.read(9 << 20, 10)


def test_truncated_stream_keeps_its_head() -> None:
    data = gzip.compress(PAYLOAD, 1)
    with pytest.raises(TruncatedStream) as info:
        StreamBlob(BytesBlob(data[: len(data) // 2]), 0, 10**12, "gzip", Limits())
    assert info.value.partial == PAYLOAD[: len(info.value.partial)]
    assert info.value.partial


def test_total_output_is_bounded() -> None:
    with pytest.raises(LimitExceeded) as info:
        StreamBlob(BytesBlob(gzip.compress(PAYLOAD, 1)), 0, 10**12, "gzip",
                   Limits(max_total_bytes=16 << 20))  # fmt: skip
    assert info.value.limit == "max_total_bytes"
