"""NumPy `.npy` streams (alone or as `.npz` members): object arrays, declared vs stored size.

The header is parsed as a literal only, with numpy's own 10,000-byte bound
(`modelguard.formats.numpy`); `numpy.load` is never called. Object arrays carry a pickle
(`numpy.load(allow_pickle=True)` unpickles it, CVE-2019-6446 made that the default before
numpy 1.16.3), which is analysed like any other pickle. Every other array is a flat run of
`prod(shape) * itemsize` bytes: a header that declares more makes loaders allocate what is not
there (keras#23016), and bytes after the array are a place to park a second format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelguard.errors import FormatError
from modelguard.formats.blob import SliceBlob
from modelguard.formats.numpy import declared_nbytes, read_npy_header

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = ["analyse_numpy"]

# Readings of trailing bytes that are not a second format: the same list as for the bytes in
# front of an archive (modelguard.containers.walk_prefix).
_NOT_A_FORMAT = ("text", "unknown", "raw", "limit")


def analyse_numpy(scan: FileScan, blob: Blob, loc: Location, depth: int) -> str:
    """Analyse a `.npy` stream; return "numpy".

    Reports MG206 and analyses the pickle of an object array; MG470 when the bytes after the
    header differ from what shape and dtype declare (trailing bytes are analysed as content
    of their own, MG202 if they are another format); MG002 for a header numpy would refuse.
    Never raises on hostile input.
    """
    try:
        header = read_npy_header(blob)
    except FormatError as exc:
        scan.incomplete("MG002", f"npy: {exc}", loc.at(exc.offset))
        return "numpy"
    stored = max(blob.size - header.data_offset, 0)
    if header.has_object:
        scan.finding(
            "MG206",
            f"object-dtype array {header.descr!r}: its data is a pickle",
            loc,
            descr=_short(repr(header.descr)),
        )
        body = SliceBlob(blob, header.data_offset, stored)
        scan.pickles(body, loc.inner("<object-array>"), strong=True)
        return "numpy"
    declared = declared_nbytes(header)
    if declared is None:
        # A descr this sizer does not know (a platform-dependent character code such as 'd',
        # or something numpy itself would refuse): no size is guessed, so no MG470 either way.
        return "numpy"
    if declared == stored:
        return "numpy"
    scan.finding(
        "MG470",
        f"the header declares {declared} bytes of array data but {stored} follow it",
        loc,
        declared=str(declared),
        stored=str(stored),
        shape=_short(repr(header.shape)),
        descr=_short(repr(header.descr)),
    )
    if stored > declared:
        _trailing(scan, blob, header.data_offset + declared, loc, depth)
    return "numpy"


def _trailing(scan: FileScan, blob: Blob, start: int, loc: Location, depth: int) -> None:
    """Analyse the bytes after the declared array; report another format there as MG202."""
    tloc = loc.inner("<after-array>")
    before = len(scan.formats)
    fmt = scan.analyse(SliceBlob(blob, start, blob.size - start), tloc, depth + 1)
    # The trailing reading is not a format of this file as such: the polyglot finding
    # carries it (as for bytes in front of an archive).
    del scan.formats[before:]
    if fmt not in _NOT_A_FORMAT:
        scan.finding(
            "MG202",
            f"the file is both a .npy array and a {fmt} (from byte {start})",
            loc,
            formats=f"numpy+{fmt}",
        )


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
