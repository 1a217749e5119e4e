"""GGUF files: structural validity of the header and tensor table, and the chat templates.

A GGUF file runs no code by itself; the two risks are native readers trusting hostile sizes
(heap overflows, llama.cpp #19856, CVE-2026-33298) and the Jinja chat template rendered by
Python front ends (CVE-2024-34359). The file is read with modelguard's own bounded reader
(`modelguard.formats.gguf`); tensor data is never read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelguard.analysers import report_duplicates
from modelguard.errors import LimitExceeded
from modelguard.formats.gguf import GGUFKV, GGUFError, GGUFUnsupported, read_gguf

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = ["analyse_gguf"]

_TEMPLATE_KEY = "tokenizer.chat_template"
# One MG420 per kind is enough to judge a file; the rest are counted in the evidence.
_MAX_PER_KIND = 5
# Models carry one to three templates (default, tool_use, rag); each may be up to the
# template size cap, so the number checked per file is bounded too.
MAX_TEMPLATES = 16


def analyse_gguf(scan: FileScan, blob: Blob, loc: Location, depth: int) -> str:
    """Check a GGUF file's structure and its chat templates; return "gguf".

    Reports MG420 for broken format rules (evidence `problem=<kind>`), MG403 for repeated
    metadata keys or tensor names, MG421/MG422 through the template check, MG002 when the
    metadata could not be read to its end, MG003 past `max_header_bytes`, MG004 for v1.
    """
    try:
        gf = read_gguf(blob, max_header_bytes=scan.limits.max_header_bytes)
    except GGUFUnsupported as exc:
        scan.incomplete("MG004", f"GGUF: {exc} (current loaders refuse it too)", loc.at(4))
        return "gguf"
    except LimitExceeded as exc:
        scan.incomplete("MG003", str(exc), loc.at(exc.offset))
        return "gguf"
    except GGUFError as exc:
        _templates(scan, exc.kvs, loc)
        scan.finding(
            "MG420",
            f"GGUF structure is invalid: {exc}",
            loc.at(exc.offset),
            problem=exc.kind,
        )
        if exc.in_metadata:
            scan.incomplete(
                "MG002",
                f"GGUF metadata could not be read to its end ({exc.kind}); chat templates "
                "after that point were not checked",
                loc.at(exc.offset),
            )
        return "gguf"
    _templates(scan, gf.kvs, loc)
    if gf.duplicate_keys:
        report_duplicates(scan, "GGUF metadata", list(gf.duplicate_keys), loc)
    if gf.duplicate_tensors:
        report_duplicates(
            scan, "GGUF tensor table", list(gf.duplicate_tensors), loc, evidence="tensors"
        )
    counts: dict[str, int] = {}
    for problem in gf.problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
        if counts[problem.kind] > _MAX_PER_KIND:
            continue
        scan.finding(
            "MG420",
            f"GGUF breaks the format's rules: {problem.detail}",
            loc.at(problem.offset),
            problem=problem.kind,
        )
    return "gguf"


def _templates(scan: FileScan, kvs: tuple[GGUFKV, ...], loc: Location) -> None:
    """Hand `tokenizer.chat_template` and `tokenizer.chat_template.<name>` to the template check.

    Every copy of a repeated key is checked: which one a loader keeps depends on the loader.
    """
    from modelguard.analysers.templates import check_template

    checked = 0
    for kv in kvs:
        if kv.key != _TEMPLATE_KEY and not kv.key.startswith(_TEMPLATE_KEY + "."):
            continue
        if isinstance(kv.value, str):
            checked += 1
            if checked > MAX_TEMPLATES:
                scan.incomplete(
                    "MG003",
                    f"GGUF has more than {MAX_TEMPLATES} chat templates; the rest were not checked",
                    loc.at(kv.offset),
                )
                return
            check_template(scan, kv.value, loc.at(kv.offset), origin=f"gguf:{kv.key}")
        else:
            scan.finding(
                "MG420",
                f"GGUF metadata {kv.key!r} is not a string",
                loc.at(kv.offset),
                problem="template-type",
            )
