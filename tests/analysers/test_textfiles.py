"""Text content: JSON configs parsed once and duplicate-aware, templates found by role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelguard
from modelguard.errors import FormatError
from modelguard.formats.jsonstrict import parse_json
from modelguard.results import FileResult, Verdict

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
    ],
    ids=["tokenizer-config", "chat-template-json", "named-templates", "jinja-file", "by-content"],
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
