"""Text content: JSON configs parsed once and duplicate-aware, templates found by role."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelguard
from modelguard.analysers.textfiles import analyse_text, looks_like_json
from modelguard.errors import FormatError
from modelguard.filescan import FileScan
from modelguard.formats.blob import BytesBlob
from modelguard.formats.jsonstrict import parse_json
from modelguard.policy import Policy
from modelguard.results import FileResult, Location, Verdict

SSTI = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


def scan_text(tmp_path: Path, name: str, text: str) -> FileResult:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return modelguard.scan(path).files[0]


def rules(result: FileResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def test_json_duplicate_keys_are_reported_with_the_keys(tmp_path: Path) -> None:
    text = '{"model_type": "bert", "auto_map": {"AutoModel": "a.B"}, "model_type": "gpt2"}'
    result = scan_text(tmp_path, "config.json", text)
    dup = [f for f in result.findings if f.rule_id == "MG403"]
    assert len(dup) == 1 and dup[0].evidence_map["keys"] == "model_type"
    assert result.formats == ("json",)


def test_parse_json_keeps_the_last_copy_and_lists_repeats() -> None:
    doc = parse_json(b'{"a": 1, "b": {"c": 1, "c": 2, "c": 3}, "a": 2}')
    assert doc.value == {"a": 2, "b": {"c": 3}}
    assert doc.duplicates == ("c", "c", "a")


@pytest.mark.parametrize(
    "data",
    [b"\xef\xbb\xbf{}", b"{", b"[" * 100_000 + b"]" * 100_000, b'{"a": ' + b"9" * 5000 + b"}"],
    ids=["bom", "truncated", "deep", "huge-int"],
)
def test_parse_json_refuses_bad_documents_with_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_json(data)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tokenizer_config.json", json.dumps({"chat_template": SSTI})),
        ("chat_template.json", json.dumps({"chat_template": SSTI})),
        (
            "tokenizer_config.json",
            json.dumps({"chat_template": [{"name": "default", "template": "hi"},
                                          {"name": "rag", "template": SSTI}]}),
        ),
        ("chat_template.jinja", SSTI),
        ("template.txt", "{% for message in messages %}" + SSTI + "{% endfor %}"),
        ("tokenizer_config.json", json.dumps({"chat_template": {"a": "hi", "tool_use": SSTI}})),
    ],
    ids=[
        "tokenizer-config",
        "chat-template-json",
        "named-templates",
        "jinja-file",
        "by-content",
        "dict-form",
    ],
)  # fmt: skip
def test_chat_templates_are_found_where_loaders_find_them(
    tmp_path: Path, name: str, text: str
) -> None:
    result = scan_text(tmp_path, name, text)
    assert "MG421" in rules(result)
    assert result.verdict is Verdict.DANGEROUS


def test_text_that_only_looks_like_a_template_is_not_incomplete(tmp_path: Path) -> None:
    code = 'TEMPLATE = "{% for message in messages %}{{ message[\'content\'] "x" }}"\n'
    result = scan_text(tmp_path, "make.py", code)
    assert result.complete and result.findings == ()


def test_a_template_file_jinja_cannot_parse_is_incomplete(tmp_path: Path) -> None:
    result = scan_text(tmp_path, "chat_template.jinja", "{% for m in messages %}{{ m }")
    assert [i.rule_id for i in result.incomplete] == ["MG002"]


def test_text_that_starts_with_a_brace_but_is_not_json_is_text(tmp_path: Path) -> None:
    result = scan_text(tmp_path, "notes.txt", "{ not json, just notes }\n")
    assert result.formats == ("text",) and result.complete and result.findings == ()


def test_benign_configs_are_clean(tmp_path: Path) -> None:
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32}
    result = scan_text(tmp_path, "config.json", json.dumps(config))
    assert result.verdict is Verdict.SAFE and result.findings == ()


# -- JSON as json.loads(bytes) reads it (Keras config.json) ------------------------------------

_ENCODED = ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", _ENCODED)
def test_parse_json_detect_decodes_like_json_loads(encoding: str) -> None:
    text = ' \n{"class_name": "Lambda", "config": {"x": ["\u00fc", 1]}}'
    data = text.encode(encoding)
    doc = parse_json(data, detect=True)
    assert doc.value == json.loads(data)
    assert doc.encoding == json.detect_encoding(data)


def test_parse_json_detect_takes_lone_surrogates_like_json_loads() -> None:
    data = b'{"name": "\xed\xa0\x80x"}'
    with pytest.raises(FormatError):
        parse_json(data)  # strict UTF-8 (serde_json, safetensors)
    assert parse_json(data, detect=True).value == json.loads(data)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        *[('  {"a": 1}'.encode(e), True) for e in _ENCODED],
        *[("[1, 2]".encode(e), True) for e in _ENCODED],
        (b'{"name": "\xed\xa0\x80x"}', True),
        (b'{"cut": "\xc3', True),  # a character cut at the end of the sample
        (b"plain text", False),
        (b"\x00\x01\x02\x03binary", False),
        (b"{\x00\x00\x00\x00\x00\x11\x00", False),  # UTF-32 beyond U+10FFFF
        (b"\xff\xfe\x00\x00", False),
        (b"", False),
        ("hello".encode("utf-16"), False),
    ],
)
def test_looks_like_json(head: bytes, expected: bool) -> None:
    assert looks_like_json(head) is expected


@pytest.mark.parametrize("encoding", _ENCODED)
def test_encoded_json_is_analysed_with_encoding_evidence(tmp_path: Path, encoding: str) -> None:
    text = json.dumps({"chat_template": SSTI})
    scan = FileScan("tokenizer_config.json", Policy())
    fmt = analyse_text(scan, BytesBlob(text.encode(encoding)), Location("tokenizer_config.json"), 0)
    assert fmt == "json"
    hits = [f for f in scan.coll.findings if f.rule_id == "MG421"]
    assert hits and all(
        f.evidence_map["json_encoding"] == json.detect_encoding(text.encode(encoding)) for f in hits
    )


def test_utf8_json_has_no_encoding_evidence(tmp_path: Path) -> None:
    result = scan_text(tmp_path, "tokenizer_config.json", json.dumps({"chat_template": SSTI}))
    assert all("json_encoding" not in f.evidence_map for f in result.findings)


def _filescan_routes_json() -> bool:
    import inspect

    from modelguard import filescan

    return "looks_like_json" in inspect.getsource(filescan)


@pytest.mark.skipif(
    not _filescan_routes_json(), reason="filescan.py does not route non-UTF-8 JSON yet"
)
@pytest.mark.parametrize("encoding", _ENCODED)
def test_encoded_json_file_is_json_not_unknown(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_bytes(json.dumps({"chat_template": SSTI}).encode(encoding))
    result = modelguard.scan(path).files[0]
    assert result.formats == ("json",)
    assert "MG421" in rules(result) and "MG210" not in rules(result)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_json_encoding_never_raises(data: bytes) -> None:
    looks_like_json(data)
    with contextlib.suppress(FormatError):
        parse_json(data, detect=True)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32", "utf-8-sig"])
def test_long_leading_whitespace_does_not_hide_a_config(tmp_path: Path, encoding: str) -> None:
    text = " " * 10_000 + json.dumps({"chat_template": SSTI})
    path = tmp_path / "tokenizer_config.json"
    path.write_bytes(text.encode(encoding))
    result = modelguard.scan(path).files[0]
    assert result.formats == ("json",) and "MG421" in rules(result)


def test_a_model_card_showing_a_template_is_not_checked_as_one(tmp_path: Path) -> None:
    card = (
        "---\nlicense: mit\n---\n# Model\nSee https://example.org/docs.\n```jinja\n"
        "{% for message in messages %}{{ message['content'] }}{% endfor %}\n```\n"
    )
    result = scan_text(tmp_path, "README.md", card)
    assert result.findings == () and result.complete
