"""Text content: JSON configs (Keras, Hugging Face, shard indexes) and chat templates.

What a text file is comes from its content; what role it plays for a loader can depend on
its name, because loaders find configs and templates by name (`chat_template.jinja`,
`tokenizer_config.json`). JSON is parsed once, duplicate-aware, and each part is handed to
the analyser of what it configures.

JSON is recognised and decoded as `json.loads(bytes)` does, because that is how Keras reads
`config.json` from a `.keras` zip: a UTF-8 BOM, UTF-16 or UTF-32 document, or UTF-8 carrying
an encoded lone surrogate, loads there and must not pass as unknown binary. Findings in such
a document carry `json_encoding` evidence (no rule of its own: the encoding is only a way to
hide from text-based tools, what matters is what the config does).
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import re
from typing import TYPE_CHECKING

from modelguard.analysers import report_duplicates
from modelguard.errors import FormatError
from modelguard.formats.jsonstrict import parse_json

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = ["analyse_text", "check_json", "json_encoding", "looks_like_json", "member_name"]

_TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2")
_DOC_SUFFIXES = (".md", ".markdown", ".rst", ".html", ".ipynb")
_JSON_SPACE = " \t\n\r"
_BIG_HEAD = 4096
_FIRST_NON_SPACE = re.compile(rb"[^ \t\r\n]")


def json_encoding(data: bytes) -> str | None:
    """The codec `json.loads(data)` would decode `data` with, if it starts like JSON.

    "Starts like JSON" means: after the byte-order mark and JSON whitespace, the first
    character is `{` or `[`, and the bytes decode (a character cut at the end is allowed)
    without NUL. Returns None otherwise; never raises.
    """
    if not data:
        return None
    encoding = json.detect_encoding(data[:_BIG_HEAD])
    decoder = codecs.getincrementaldecoder(encoding)("surrogatepass")
    # The first character after the whitespace decides; the parse reads the rest. Decoded
    # a chunk at a time, so leading whitespace of any length cannot hide a document.
    for start in range(0, len(data), _BIG_HEAD):
        try:
            text = decoder.decode(data[start : start + _BIG_HEAD], final=False)
        except UnicodeDecodeError:
            return None
        if "\x00" in text:
            return None
        first = text.lstrip(_JSON_SPACE)[:1]
        if first:
            return encoding if first in ("{", "[") else None
    return None


def _may_be_json(data: bytes) -> bool:
    """A cheap first look: a brace first, or a BOM or NUL (UTF-16/32) at the start."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff", b"\xef\xbb") or b"\x00" in data[:4]:
        return True
    first = _FIRST_NON_SPACE.search(data)
    return first is not None and data[first.start() : first.start() + 1] in (b"{", b"[")


def looks_like_json(head: bytes) -> bool:
    """True if `head` (the first bytes of content) starts a JSON document for `json.loads`.

    Covers what `looks_like_text` refuses but Python's JSON reader accepts from bytes:
    UTF-8 with BOM or lone surrogates, UTF-16 and UTF-32 (either byte order, with or without
    BOM).
    """
    return json_encoding(head) is not None


def member_name(loc: Location) -> str:
    """The base name of what `loc` points at: the innermost member, else the file."""
    full = loc.members[-1] if loc.members else loc.path
    return full.rsplit("/", 1)[-1]


def analyse_text(scan: FileScan, blob: Blob, loc: Location, depth: int) -> str:
    """Analyse text content; return "json" for a JSON document, else "text"."""
    name = member_name(loc)
    if blob.size > scan.limits.max_header_bytes:
        if json_encoding(blob.read(0, _BIG_HEAD)) is not None:
            scan.incomplete(
                "MG003",
                f"max_header_bytes reached (a {blob.size}-byte JSON document is not parsed)",
                loc,
            )
        return "text"
    data = blob.read(0, blob.size)
    encoding = json_encoding(data) if _may_be_json(data) else None
    if encoding is not None:
        try:
            doc = parse_json(data, detect=True)
        except FormatError:
            pass  # text that merely starts with a brace; loaders of JSON would refuse it
        else:
            first = len(scan.coll.findings)
            if doc.duplicates:
                report_duplicates(scan, "JSON", list(doc.duplicates), loc)
            check_json(scan, doc.value, loc, name)
            _note_encoding(scan, data, doc.encoding, first)
            return "json"
    text = data.decode(encoding or "utf-8", errors="replace")
    lowered = name.lower()
    named = lowered.endswith(_TEMPLATE_SUFFIXES) or "chat_template" in lowered
    # Loaders find template files by name; other text that looks like a chat template (Jinja
    # over messages) is checked too, but text Jinja cannot parse is then simply not one.
    documentation = lowered.endswith(_DOC_SUFFIXES)  # a model card shows templates as examples
    if named or (not documentation and ("{%" in text or "{{" in text) and "message" in text):
        from modelguard.analysers.templates import check_template

        check_template(scan, text, loc, origin=name, lenient=not named)
    return "text"


def _note_encoding(scan: FileScan, data: bytes, encoding: str, first: int) -> None:
    """Add `json_encoding` evidence to the findings made from a document not in plain UTF-8."""
    if encoding == "utf-8":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "utf-8 with lone surrogates"
        else:
            return
    findings = scan.coll.findings
    for i in range(first, len(findings)):
        found = findings[i]
        evidence = (*found.evidence, ("json_encoding", encoding))
        findings[i] = dataclasses.replace(found, evidence=evidence)


def check_json(scan: FileScan, value: object, loc: Location, name: str) -> None:
    """Hand a parsed JSON document to the analysers of what it configures."""
    if isinstance(value, dict):
        if isinstance(value.get("class_name"), str) and isinstance(value.get("config"), dict):
            from modelguard.analysers.keras import check_keras_config

            check_keras_config(scan, value, loc)
        if isinstance(value.get("weight_map"), dict):
            from modelguard.analysers.safetensors import check_shard_index

            check_shard_index(scan, value, loc)
        template = value.get("chat_template")
        if template is not None:
            _check_chat_templates(scan, template, loc)
    from modelguard.analysers.hfrepo import check_config

    check_config(scan, value, loc, name)


def _check_chat_templates(scan: FileScan, template: object, loc: Location) -> None:
    """`chat_template` is a string, a list of {"name", "template"} or a {name: template} dict.

    transformers turns the list form into the dict form and looks templates up in it by
    name, so both hold templates that are rendered.
    """
    from modelguard.analysers.templates import check_template

    if isinstance(template, str):
        check_template(scan, template, loc, origin="chat_template")
    elif isinstance(template, list):
        for item in template:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                label = item.get("name")
                origin = f"chat_template[{label}]" if isinstance(label, str) else "chat_template"
                check_template(scan, item["template"], loc, origin=origin)
    elif isinstance(template, dict):
        for label, text in template.items():
            if isinstance(text, str):
                check_template(scan, text, loc, origin=f"chat_template[{label}]")
