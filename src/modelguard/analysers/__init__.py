"""Format analysers: what each non-pickle format and config file would make a loader do.

`modelguard.filescan.FileScan` recognises content and hands it here; each analyser parses
with its own bounded reader from `modelguard.formats` (never the framework's loader) and
reports through the scan:

- `scan.finding(rule_id, message, loc, **evidence)`: a finding (MG4xx rules in
  `modelguard.rules`), evidence values are short strings;
- `scan.incomplete(rule_id, reason, loc)`: the analysis could not finish (MG002 malformed,
  MG003 a named limit, MG004 needs an optional reader), so the file is never reported safe;
- `scan.analyse(blob, loc, depth + 1)`: content embedded in the format, analysed recursively.

`scan.path` is the file on disk when the scan started from one (loaders look beside it:
ONNX external data, shard indexes, `auto_map` modules); it is None for archive members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.results import Location

__all__ = ["report_duplicates"]


def report_duplicates(
    scan: FileScan, what: str, names: list[str], loc: Location, *, evidence: str = "keys"
) -> None:
    """MG403 for names `what` defines more than once (a JSON document, a GGUF table)."""
    shown = sorted(set(names))
    scan.finding(
        "MG403",
        f"{what} repeats {', '.join(repr(n) for n in shown[:5])}"
        + (" ..." if len(shown) > 5 else "")
        + ": readers keep different copies",
        loc,
        **{evidence: ",".join(shown[:20])},
    )
