"""Text content: JSON configs (Keras, Hugging Face, shard indexes) and chat templates.

What a text file is comes from its content; what role it plays for a loader can depend on
its name, because loaders find configs and templates by name (`chat_template.jinja`,
`tokenizer_config.json`). JSON is parsed once, duplicate-aware, and each part is handed to
the analyser of what it configures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelguard.errors import FormatError
from modelguard.formats.jsonstrict import parse_json

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = ["analyse_text", "check_json", "member_name"]

_TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2")


def member_name(loc: Location) -> str:
    """The base name of what `loc` points at: the innermost member, else the file."""
    full = loc.members[-1] if loc.members else loc.path
    return full.rsplit("/", 1)[-1]


def analyse_text(scan: FileScan, blob: Blob, loc: Location, depth: int) -> str:
    """Analyse text content; return "json" for a JSON document, else "text"."""
    name = member_name(loc)
    head = blob.read(0, 64).lstrip()
    if blob.size > scan.limits.max_header_bytes:
        if head[:1] in (b"{", b"["):
            scan.incomplete(
                "MG003",
                f"max_header_bytes reached (a {blob.size}-byte JSON document is not parsed)",
                loc,
            )
        return "text"
    data = blob.read(0, blob.size)
    if head[:1] in (b"{", b"["):
        try:
            doc = parse_json(data)
        except FormatError:
            pass  # text that merely starts with a brace; loaders of JSON would refuse it
        else:
            if doc.duplicates:
                keys = sorted(set(doc.duplicates))
                scan.finding(
                    "MG403",
                    f"JSON repeats keys {', '.join(repr(k) for k in keys[:5])}"
                    + (" ..." if len(keys) > 5 else "")
                    + ": readers keep different copies",
                    loc,
                    keys=",".join(keys[:20]),
                )
            check_json(scan, doc.value, loc, name)
            return "json"
    text = data.decode("utf-8", errors="replace")
    lowered = name.lower()
    named = lowered.endswith(_TEMPLATE_SUFFIXES) or "chat_template" in lowered
    # Loaders find template files by name; other text that looks like a chat template (Jinja
    # over messages) is checked too, but text Jinja cannot parse is then simply not one.
    if named or (("{%" in text or "{{" in text) and "message" in text):
        from modelguard.analysers.templates import check_template

        check_template(scan, text, loc, origin=name, lenient=not named)
    return "text"


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
    """`chat_template` is a string, or a list of {"name", "template"} (named templates)."""
    from modelguard.analysers.templates import check_template

    if isinstance(template, str):
        check_template(scan, template, loc, origin="chat_template")
    elif isinstance(template, list):
        for item in template:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                label = item.get("name")
                origin = f"chat_template[{label}]" if isinstance(label, str) else "chat_template"
                check_template(scan, item["template"], loc, origin=origin)
