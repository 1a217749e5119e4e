"""Duplicate-aware JSON parsing for headers and configs read from untrusted files.

Python's `json` keeps the last of two equal keys; other readers keep the first or refuse the
document (safetensors, ToB TOB-SFTN-7). `parse_json` records every repeated key so the caller
can report the ambiguity instead of silently picking one copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelguard.errors import FormatError

__all__ = ["JsonDoc", "parse_json"]


@dataclass(frozen=True, slots=True)
class JsonDoc:
    """A parsed JSON document.

    Attributes:
        value: the document, with the *last* copy of a repeated key kept (Python's choice).
        duplicates: every key that appeared more than once in one object, in document
            order (a key repeated three times is listed twice).
    """

    value: object
    duplicates: tuple[str, ...]


def parse_json(data: bytes | str) -> JsonDoc:
    """Parse `data` as one JSON document, recording repeated keys.

    Args:
        data: UTF-8 bytes (a BOM is refused, as loaders refuse it) or text.

    Raises:
        FormatError: not UTF-8, not JSON, or nested too deeply for the parser.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not UTF-8: {exc.reason}", exc.start) from None
    else:
        text = data
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc.msg} (line {exc.lineno})", exc.pos) from None
    except RecursionError:
        raise FormatError("JSON nested too deeply", None) from None
    except ValueError as exc:  # e.g. an integer beyond sys.get_int_max_str_digits()
        raise FormatError(f"not valid JSON: {exc}", None) from None
    return JsonDoc(value, tuple(duplicates))
