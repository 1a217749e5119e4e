"""Duplicate-aware JSON parsing for headers and configs read from untrusted files.

Python's `json` keeps the last of two equal keys; other readers keep the first or refuse the
document (safetensors, ToB TOB-SFTN-7). `parse_json` records every repeated key so the caller
can report the ambiguity instead of silently picking one copy.

Bytes are decoded as strict UTF-8 by default (serde_json, safetensors). With
`detect=True` they are decoded exactly as `json.loads(bytes)` does, which is how Keras reads
`config.json` from a `.keras` zip: the encoding is guessed from the first bytes
(`json.detect_encoding`: UTF-8 with or without BOM, UTF-16/32 LE/BE) and UTF-8 is decoded with
'surrogatepass', so a config in UTF-16 or with a lone surrogate still loads.
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
        encoding: the codec the bytes were decoded with ("utf-8" for text input).
    """

    value: object
    duplicates: tuple[str, ...]
    encoding: str = "utf-8"


def parse_json(data: bytes | str, *, detect: bool = False) -> JsonDoc:
    """Parse `data` as one JSON document, recording repeated keys.

    Args:
        data: bytes or text.
        detect: decode bytes as `json.loads(bytes)` does (BOM, UTF-16/32, surrogatepass);
            otherwise bytes must be strict UTF-8 without a BOM, as serde_json requires.

    Raises:
        FormatError: not decodable, not JSON, or nested too deeply for the parser.
    """
    encoding = "utf-8"
    if isinstance(data, bytes):
        if detect:
            encoding = json.detect_encoding(data)
        try:
            text = data.decode(encoding, "surrogatepass" if detect else "strict")
        except UnicodeDecodeError as exc:
            what = "UTF-8" if encoding == "utf-8" else encoding
            raise FormatError(f"not {what}: {exc.reason}", exc.start) from None
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
    return JsonDoc(value, tuple(duplicates), encoding)
