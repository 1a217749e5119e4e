"""GGUF: the bounded reader (MG420 kinds, MG403 duplicates, limits) and its chat templates."""

from __future__ import annotations

import contextlib
import struct
from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelguard
from factories import mutate
from modelguard.config import Limits
from modelguard.errors import FormatError
from modelguard.formats.blob import BytesBlob
from modelguard.formats.gguf import GGML_TYPES, GGUFError, read_gguf
from modelguard.policy import Policy
from modelguard.results import FileResult, Severity

BENIGN_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] | trim + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
EVIL_TEMPLATE = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"


def _write_gguf(
    path: Path,
    template: str | None = BENIGN_TEMPLATE,
    *,
    endian: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
    named: dict[str, str] | None = None,
) -> Path:
    """A small model the ordinary way: metadata, a chat template, F32/F16/Q8_0 tensors."""
    writer = gguf.GGUFWriter(path, "llama", endianess=endian)
    writer.add_name("tiny")
    writer.add_context_length(128)
    writer.add_token_list(["<s>", "</s>", "hello", "world"])
    writer.add_token_scores([0.0, 0.0, -1.0, -2.0])
    if template is not None:
        writer.add_chat_template(template)
    for name, text in (named or {}).items():
        writer.add_string(f"tokenizer.chat_template.{name}", text)
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((4, 32)).astype(np.float32))
    writer.add_tensor("output_norm.weight", rng.standard_normal(64).astype(np.float16))
    q8 = gguf.quants.quantize(
        rng.standard_normal((2, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0
    )
    writer.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _scan(path: Path, policy: Policy | None = None) -> FileResult:
    report = modelguard.scan(path, policy=policy)
    (result,) = report.files
    return result


def _no_internal_error(res: FileResult) -> None:
    assert not [i for i in res.incomplete if "internal error" in i.reason], res.incomplete


# -- byte-level builder for what the gguf package refuses to write ---------------------------


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def _kv_str(key: str, value: str) -> bytes:
    return _kv(key, 8, _s(value))


def _kv_u32(key: str, value: int) -> bytes:
    return _kv(key, 4, struct.pack("<I", value))


def _tensor(name: str, dims: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    return (
        _s(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", d) for d in dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def _build(
    kvs: list[bytes],
    tensors: list[bytes],
    *,
    data: bytes = b"\0" * 64,
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    alignment: int = 32,
) -> bytes:
    head = b"GGUF" + struct.pack(
        "<IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    body = head + b"".join(kvs) + b"".join(tensors)
    body += b"\0" * (-len(body) % alignment)
    return body + data


_ARCH = _kv_str("general.architecture", "llama")
_F32 = _tensor("a", (4, 4), 0, 0)  # 64 bytes


def _nested_array(depth: int) -> bytes:
    payload = struct.pack("<IQ", 4, 1) + struct.pack("<I", 7)
    for _ in range(depth - 1):
        payload = struct.pack("<IQ", 9, 1) + payload
    return payload


MALFORMED: dict[str, tuple[bytes, str]] = {
    "version": (_build([_ARCH], [_F32], version=7), "version"),
    "kv-count": (_build([_ARCH], [_F32], n_kv=2**62), "kv-count"),
    "tensor-count": (_build([_ARCH], [_F32], n_tensors=2**40), "tensor-count"),
    "key-length": (
        _build([struct.pack("<Q", 2**60) + b"general.architecture"], []),
        "string-length",
    ),
    "value-length": (_build([_kv("k", 8, struct.pack("<Q", 2**50) + b"abc")], []), "string-length"),
    "value-type": (_build([_kv("k", 99, b"\0" * 8)], []), "value-type"),
    "array-type": (_build([_kv("k", 9, struct.pack("<IQ", 42, 1))], []), "array-type"),
    "array-length": (_build([_kv("k", 9, struct.pack("<IQ", 4, 2**61))], []), "array-length"),
    "string-array-element": (
        _build([_kv("k", 9, struct.pack("<IQ", 8, 2) + _s("ok") + struct.pack("<Q", 2**40))], []),
        "string-length",
    ),
    "array-depth": (_build([_kv("k", 9, _nested_array(6))], []), "array-depth"),
    "truncated": (_build([_ARCH, _kv_str("x", "y" * 100)], [])[:60], "truncated"),
    "n-dims": (_build([_ARCH], [_tensor("a", (1, 1, 1, 1, 1), 0, 0)]), "n-dims"),
    "alignment-zero": (_build([_ARCH, _kv_u32("general.alignment", 0)], [_F32]), "alignment"),
    "alignment-odd": (_build([_ARCH, _kv_u32("general.alignment", 48)], [_F32]), "alignment"),
    "alignment-type": (
        _build([_ARCH, _kv("general.alignment", 10, struct.pack("<Q", 32))], [_F32]),
        "alignment",
    ),
    "tensor-type-removed": (_build([_ARCH], [_tensor("a", (32,), 4, 0)]), "tensor-type"),
    "tensor-type-unknown": (_build([_ARCH], [_tensor("a", (32,), 1000, 0)]), "tensor-type"),
    "tensor-dims": (_build([_ARCH], [_tensor("a", (2**63, 1), 0, 0)]), "tensor-dims"),
    "tensor-size": (_build([_ARCH], [_tensor("a", (2**40, 2**40), 0, 0)]), "tensor-size"),
    "tensor-block": (_build([_ARCH], [_tensor("a", (33,), 8, 0)]), "tensor-block"),
    "tensor-alignment": (
        _build([_ARCH], [_tensor("a", (4,), 0, 0), _tensor("b", (4,), 0, 4)]),
        "tensor-alignment",
    ),
    "tensor-range": (_build([_ARCH], [_tensor("a", (1024,), 0, 0)]), "tensor-range"),
    "tensor-overflow-range": (
        _build([_ARCH], [_tensor("a", (2**40,), 0, 0)], data=b"\0" * 32),
        "tensor-range",
    ),
    "tensor-bytes-overflow": (_build([_ARCH], [_tensor("a", (2**62,), 0, 0)]), "tensor-size"),
    "tensor-overlap": (
        _build([_ARCH], [_tensor("a", (8,), 0, 0), _tensor("b", (8,), 0, 0)]),
        "tensor-overlap",
    ),
    "architecture": (_build([_kv_str("general.name", "x")], [_F32]), "architecture"),
    "trailing-data": (_build([_ARCH], [_F32], data=b"\0" * 64 + b"cos\nsystem\n"), "trailing-data"),
    "data-gap": (
        _build([_ARCH], [_tensor("a", (4,), 0, 0), _tensor("b", (8,), 0, 64)], data=b"\0" * 96),
        "data-gap",
    ),
    "template-type": (_build([_ARCH, _kv_u32("tokenizer.chat_template", 1)], []), "template-type"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_is_mg420(tmp_path: Path, name: str) -> None:
    data, problem = MALFORMED[name]
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    res = _scan(path)
    _no_internal_error(res)
    problems = {f.evidence_map.get("problem") for f in res.findings if f.rule_id == "MG420"}
    assert problem in problems, (res.findings, res.incomplete)
    assert all(f.severity is Severity.HIGH for f in res.findings if f.rule_id == "MG420")
    assert "gguf" in res.formats


@pytest.mark.parametrize("name", ["kv-count", "truncated", "value-type", "array-depth"])
def test_metadata_errors_are_also_incomplete(tmp_path: Path, name: str) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(MALFORMED[name][0])
    assert "MG002" in {i.rule_id for i in _scan(path).incomplete}


def test_huge_kv_count_fails_fast() -> None:
    with pytest.raises(GGUFError) as info:
        read_gguf(BytesBlob(MALFORMED["kv-count"][0]), max_header_bytes=1 << 20)
    assert info.value.kind == "kv-count"


def test_tensor_table_error_keeps_templates(tmp_path: Path) -> None:
    kvs = [_ARCH, _kv_str("tokenizer.chat_template", EVIL_TEMPLATE)]
    data = _build(kvs, [], n_tensors=1, data=b"", alignment=1)
    path = tmp_path / "m.gguf"
    path.write_bytes(data + struct.pack("<Q", 2**60) + b"\0" * 64)
    rules = {f.rule_id for f in _scan(path).findings}
    assert {"MG420", "MG421"} <= rules


@pytest.mark.parametrize(
    ("kvs", "tensors", "evidence"),
    [
        ([_ARCH, _kv_str("general.name", "a"), _kv_str("general.name", "b")], [_F32], "keys"),
        ([_ARCH], [_tensor("a", (4,), 0, 0), _tensor("a", (4,), 0, 32)], "tensors"),
    ],
)
def test_duplicates_are_mg403(
    tmp_path: Path, kvs: list[bytes], tensors: list[bytes], evidence: str
) -> None:
    path = tmp_path / "d.gguf"
    path.write_bytes(_build(kvs, tensors))
    found = [f for f in _scan(path).findings if f.rule_id == "MG403"]
    assert found and evidence in found[0].evidence_map


def test_duplicate_templates_are_both_checked(tmp_path: Path) -> None:
    kvs = [
        _ARCH,
        _kv_str("tokenizer.chat_template", BENIGN_TEMPLATE),
        _kv_str("tokenizer.chat_template", EVIL_TEMPLATE),
    ]
    path = tmp_path / "d.gguf"
    path.write_bytes(_build(kvs, [_F32]))
    assert {"MG403", "MG421"} <= {f.rule_id for f in _scan(path).findings}


def test_template_count_is_bounded(tmp_path: Path) -> None:
    kvs = [_kv_str(f"tokenizer.chat_template.t{i}", BENIGN_TEMPLATE) for i in range(40)]
    path = tmp_path / "many.gguf"
    path.write_bytes(_build([_ARCH, *kvs], [_F32]))
    res = _scan(path)
    assert [i.rule_id for i in res.incomplete] == ["MG003"]
    assert not res.findings


def test_version_1_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<III", 1, 0, 0))
    res = _scan(path)
    assert [i.rule_id for i in res.incomplete] == ["MG004"]


def test_header_limit_is_mg003(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "m.gguf")
    policy = Policy(limits=replace(Limits(), max_header_bytes=64))
    res = _scan(path, policy)
    assert "MG003" in {i.rule_id for i in res.incomplete}


# -- benign and malicious files made with the gguf package -----------------------------------


@pytest.mark.parametrize("endian", [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG])
def test_benign_gguf_is_clean(tmp_path: Path, endian: gguf.GGUFEndian) -> None:
    path = _write_gguf(tmp_path / "tiny.gguf", endian=endian, named={"tool_use": BENIGN_TEMPLATE})
    res = _scan(path)
    assert not [f for f in res.findings if f.severity >= Severity.LOW], res.findings
    assert res.complete, res.incomplete
    assert "gguf" in res.formats
    parsed = read_gguf(BytesBlob(path.read_bytes()), max_header_bytes=1 << 20)
    assert parsed.big_endian is (endian is gguf.GGUFEndian.BIG)
    assert [t.ggml_type for t in parsed.tensors] == [0, 1, 8]
    assert parsed.problems == ()


@pytest.mark.parametrize("key", ["tokenizer.chat_template", "tokenizer.chat_template.rag"])
def test_malicious_template_in_gguf_is_mg421(tmp_path: Path, key: str) -> None:
    named = {"rag": EVIL_TEMPLATE} if key.endswith(".rag") else None
    template = EVIL_TEMPLATE if named is None else BENIGN_TEMPLATE
    path = _write_gguf(tmp_path / "evil.gguf", template, named=named)
    found = [f for f in _scan(path).findings if f.rule_id == "MG421"]
    assert found
    assert found[0].severity is Severity.CRITICAL
    assert found[0].evidence_map["origin"] == f"gguf:{key}"


@pytest.mark.parametrize(
    ("kvs", "tensors", "expect"),
    [
        # llama.cpp matches keys with strcmp: the NUL-suffixed key is its chat template.
        (
            [_ARCH, _kv_str("tokenizer.chat_template\0x", EVIL_TEMPLATE)],
            [_F32],
            {"MG420", "MG421"},
        ),
        # ... and the copy that dodged the duplicate check is a duplicate after all.
        (
            [
                _ARCH,
                _kv_str("tokenizer.chat_template", BENIGN_TEMPLATE),
                _kv_str("tokenizer.chat_template\0", EVIL_TEMPLATE),
            ],
            [_F32],
            {"MG403", "MG420", "MG421"},
        ),
        ([_ARCH], [_tensor("a", (4, 4), 0, 0), _tensor("a\0b", (4,), 0, 64)], {"MG403", "MG420"}),
    ],
)
def test_nul_in_names_is_cut_and_reported(
    tmp_path: Path, kvs: list[bytes], tensors: list[bytes], expect: set[str]
) -> None:
    path = tmp_path / "nul.gguf"
    path.write_bytes(_build(kvs, tensors, data=b"\0" * 128))
    res = _scan(path)
    assert expect <= {f.rule_id for f in res.findings}, res.findings
    nul = [f for f in res.findings if f.rule_id == "MG420"]
    assert any(f.evidence_map.get("problem") == "nul-in-name" for f in nul), nul
    _no_internal_error(res)


def _write_split(directory: Path) -> list[Path]:
    """A model split the way gguf-split does (one tensor per shard)."""
    writer = gguf.GGUFWriter(directory / "m.gguf", "llama", split_max_tensors=1)
    writer.add_name("tiny")
    writer.add_chat_template(BENIGN_TEMPLATE)
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((4, 32)).astype(np.float32))
    writer.add_tensor("output_norm.weight", rng.standard_normal(64).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(directory.glob("*.gguf"))


def _write_imatrix(path: Path) -> Path:
    """What llama-imatrix writes: general.type=imatrix and no architecture."""
    writer = gguf.GGUFWriter(path, arch=None)  # type: ignore[arg-type]
    writer.add_type(gguf.GGUFType.IMATRIX)
    writer.add_uint32("imatrix.chunk_count", 4)
    writer.add_tensor("blk.0.ffn_up.weight.in_sum2", np.ones((1, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_split_shards_are_clean(tmp_path: Path) -> None:
    shards = _write_split(tmp_path)
    assert len(shards) == 2 and shards[1].name.endswith("-00002-of-00002.gguf"), shards
    for shard in shards:
        res = _scan(shard)
        assert not [f for f in res.findings if f.severity >= Severity.LOW], (shard, res.findings)
        assert res.complete, res.incomplete


@pytest.mark.parametrize(
    ("kvs", "missing"),
    [
        ([], True),
        ([_kv_u32("split.no", 0)], True),  # a first shard must name its architecture
        ([_kv("split.no", 2, struct.pack("<H", 1))], False),
        ([_kv_str("general.type", "model")], True),
        ([_kv_str("general.type", "imatrix")], False),
    ],
)
def test_architecture_required_for_models_and_first_shards(kvs: list[bytes], missing: bool) -> None:
    parsed = read_gguf(BytesBlob(_build(kvs, [_F32])), max_header_bytes=1 << 20)
    assert ("architecture" in {p.kind for p in parsed.problems}) is missing


def test_imatrix_is_clean(tmp_path: Path) -> None:
    res = _scan(_write_imatrix(tmp_path / "imatrix.gguf"))
    assert not [f for f in res.findings if f.severity >= Severity.LOW], res.findings
    assert res.complete, res.incomplete


def test_invalid_template_in_gguf_is_incomplete(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "bad.gguf", "{% for m in messages %}")
    res = _scan(path)
    assert [i.rule_id for i in res.incomplete] == ["MG002"]
    assert "gguf:tokenizer.chat_template" in res.incomplete[0].reason


def test_type_table_matches_gguf_py() -> None:
    sizes = gguf.constants.GGML_QUANT_SIZES
    known = {int(t): (b, s) for t, (b, s) in sizes.items()}
    mine = {k: (b, s) for k, (_, b, s) in GGML_TYPES.items()}
    assert {k: v for k, v in mine.items() if k in known} == known
    assert {GGML_TYPES[int(t)][0] for t in sizes} == {t.name for t in sizes}


# -- fuzz: mutations and truncations of a valid file ----------------------------------------

_SEED = _build(
    [_ARCH, _kv_u32("general.alignment", 32), _kv_str("tokenizer.chat_template", BENIGN_TEMPLATE),
     _kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + _s("a") + _s("b"))],
    [_tensor("a", (4, 4), 0, 0), _tensor("b", (32,), 8, 64)],
    data=b"\0" * 128,
)  # fmt: skip


def _mutated() -> st.SearchStrategy[bytes]:
    return mutate.mutated([_SEED], edits=(1, 6), keep=4, words=(0, 1, 5, 9, 13, 2**31, 2**32 - 1))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_fuzz_reader_raises_only_format_errors(data: bytes) -> None:
    with contextlib.suppress(FormatError):  # anything else escaping fails the test
        read_gguf(BytesBlob(data), max_header_bytes=1 << 20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_fuzz_scan_has_no_internal_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.gguf"
    path.write_bytes(data)
    _no_internal_error(_scan(path))
