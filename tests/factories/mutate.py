"""Byte-level mutations of valid seeds, for the parsers' hypothesis fuzz tests."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

__all__ = ["mutated"]


@st.composite
def mutated(
    draw: st.DrawFn,
    seeds: list[bytes],
    *,
    edits: tuple[int, int] = (1, 4),
    keep: int = 1,
    words: tuple[int, ...] = (),
) -> bytes:
    """A seed with a few edits: byte flips, cuts, insertions, deletions and, when `words`
    are given, 32-bit little-endian values (counts, lengths, types) written over four bytes.

    The first `keep` bytes (a magic number) are never edited, and the result is never
    shorter than them.
    """
    data = bytearray(draw(st.sampled_from(seeds)))
    kinds = ["flip", "cut", "insert", "delete"] + (["word"] if words else [])
    for _ in range(draw(st.integers(*edits))):
        if len(data) <= keep:
            break
        kind = draw(st.sampled_from(kinds))
        pos = draw(st.integers(keep, len(data) - 1))
        if kind == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            data[pos : pos + 4] = struct.pack("<I", draw(st.sampled_from(words)))
    return bytes(data)
