"""Red team (R2): the issue-4 judging criteria as tests, on real and freshly initialised weights.

"On held-out real-weight models with and without injected payloads and edits: every injected
payload in plain form found, every surgical edit against its base reported, and no indicator
above info on the clean originals." Each case asserts the desired behaviour, so a gap fails.
A compact representative subset runs by default; the full cartesian products are `slow`.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import modelguard
from modelguard.cli import main
from modelguard.indicators import diff_report

from ._r2_helpers import (
    ABOVE_INFO_PAYLOAD_RULES,
    BIG,
    ENCODINGS,
    FAMILIES,
    KINDS,
    POSITIONS,
    SIZES,
    above_info,
    build_family,
    finetune_dense,
    mentions,
    minilm_dir,
    patch_tensor,
    payload,
    plant_stream,
    policy,
    read_tensor,
    rules_at,
    sampled_reach,
    save_state,
    state_of,
    summary,
    torch_finetune,
    write_json,
)

safetensors_numpy = pytest.importorskip("safetensors.numpy")

MLP = "encoder.layer.3.intermediate.dense.weight"  # 1536 x 384
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("r2real") / "minilm"
    shutil.copytree(minilm_dir(), target)
    return target


@pytest.fixture(scope="module")
def real_f16(tmp_path_factory: pytest.TempPathFactory, real: Path) -> Path:
    tensors = safetensors_numpy.load_file(str(real / WEIGHTS))
    out = tmp_path_factory.mktemp("r2f16") / "model.safetensors"
    safetensors_numpy.save_file(
        {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()},
        str(out),
    )
    return out


def _copy(real: Path, tmp_path: Path, name: str = "cand") -> Path:
    return Path(shutil.copytree(real, tmp_path / name))


def _diff(base: Path, cand: Path) -> modelguard.ScanReport:
    return diff_report(base, cand, policy())


# =========================================================================== clean originals


@pytest.mark.parametrize("mode", ["none", "sampled", "full"])
def test_clean_real_model_no_finding_above_info(real: Path, mode: str) -> None:
    report = modelguard.scan(
        real, indicators=mode != "none", policy=policy("full" if mode == "full" else "sampled")
    )
    assert above_info(report) == [], summary(report)


def test_clean_real_model_cli_exit_0(real: Path) -> None:
    assert main(["scan", str(real), "--indicators", "--full", "-q"]) == 0
    assert main(["scan", str(real), "--indicators", "-q"]) == 0


def test_clean_real_identical_copy_diff_has_no_findings(real: Path, tmp_path: Path) -> None:
    report = _diff(real, _copy(real, tmp_path))
    assert report.findings == (), summary(report)


def test_clean_real_finetuned_copy_diff_nothing_above_info(real: Path, tmp_path: Path) -> None:
    cand = _copy(real, tmp_path)
    tensors = safetensors_numpy.load_file(str(cand / WEIGHTS))
    safetensors_numpy.save_file(finetune_dense(dict(tensors)), str(cand / WEIGHTS))
    report = _diff(real, cand)
    assert above_info(report) == [], summary(report)
    assert "MG511" in {f.rule_id for f in report.findings}
    scanned = modelguard.scan(cand, indicators=True, policy=policy("full"))
    assert above_info(scanned) == [], summary(scanned)


FAMILY_CASES = [
    pytest.param(
        fam,
        dt,
        fmt,
        marks=()
        if (dt == "fp32" or (fam in ("llama", "bert") and fmt == "safetensors"))
        else (pytest.mark.slow,),
        id=f"{fam}-{dt}-{fmt}",
    )
    for fam, dt, fmt in itertools.product(
        FAMILIES, ("fp32", "fp16", "bf16"), ("safetensors", "bin")
    )
]


@pytest.mark.parametrize(("family", "dtype", "fmt"), FAMILY_CASES)
def test_clean_initialised_family(family: str, dtype: str, fmt: str, tmp_path: Path) -> None:
    model = build_family(family, dtype, fmt, tmp_path / "base")
    problems: dict[str, list[str]] = {}
    for label, kwargs in (
        ("scan", {}),
        ("sampled", {"indicators": True, "policy": policy("sampled")}),
        ("full", {"indicators": True, "policy": policy("full")}),
    ):
        got = above_info(modelguard.scan(model, **kwargs))  # type: ignore[arg-type]
        if got:
            problems[label] = got
    same = diff_report(model, shutil.copytree(model, tmp_path / "same"), policy())
    if same.findings:
        problems["diff-identical"] = summary(same)
    tuned = shutil.copytree(model, tmp_path / "tuned")
    path, state = state_of(tuned)
    save_state(path, torch_finetune(state))
    got = above_info(diff_report(model, tuned, policy()))
    if got:
        problems["diff-finetuned"] = got
    assert problems == {}


# =========================================================================== payloads


def _payload_case(
    real: Path, real_f16: Path, tmp_path: Path, kind: str, size: int, enc: str, pos: str
) -> None:
    path = tmp_path / "model.safetensors"
    shutil.copyfile(real_f16 if enc == "fp16low" else real / WEIGHTS, path)
    try:
        _check_payload(path, kind, size, enc, pos)
    finally:
        path.unlink()  # 90 MB per case: hundreds of cases must not fill the disk


def _check_payload(path: Path, kind: str, size: int, enc: str, pos: str) -> None:
    data = payload(kind, size)
    plant = plant_stream(path, data, enc, pos)
    results: dict[str, object] = {}
    for mode in ("sampled", "full"):
        pol = policy(mode)
        report = modelguard.scan(path, indicators=True, policy=pol)
        hits = [
            (f.rule_id, str(f.location))
            for f in report.findings
            if f.rule_id in ABOVE_INFO_PAYLOAD_RULES and f.severity > modelguard.Severity.INFO
        ]
        found = mentions(hits, plant.tensors)
        if mode == "sampled":
            reach = sampled_reach(
                path, plant, pol.indicators.window_bytes, pol.indicators.sample_bytes
            )
            carrier = sum(hi - lo for lo, hi in plant.byte_ranges.values())
            required = reach >= min(carrier, 4096)  # the sampled windows cover the payload
        else:
            required = True
        if required and not found:
            results[mode] = f"MISS (hits elsewhere: {hits[:3]})"
    assert results == {}, f"{kind} {size}B {enc} at {pos} in {plant.tensors}: {results}"


FAST_PAYLOADS = [
    *[(k, 4096, "low1", "first") for k in KINDS],
    *[("shell", 4096, e, "first") for e in ENCODINGS],
    *[("elf", 4096, e, "span") for e in ENCODINGS],
    *[("zip", s, "low2", "last") for s in SIZES],
    *[("prose", 65536, "low1", p) for p in POSITIONS],
    *[("png", 65536, "low3", p) for p in POSITIONS],
    ("pdf", 512, "fp16low", "middle"),
    ("gzip", 1 << 20, "raw", "middle"),
]

# Known limit: a payload whose body is high-entropy (compressed files, and these synthetic
# executables whose body is noise) written into low-order bits looks exactly like the random
# low bits of trained weights. Only its header can be carved, and in full mode headers are
# carved in the windows read for carving (the first of each tensor, every `sample_every`-th,
# and every window the screens flag); a header elsewhere is missed. Raw (whole-value) writes
# are always found. Cases may pass (a header in a carved window), so the mark is not strict.
HIGH_ENTROPY = {"gzip", "png", "elf", "pe"}


def _case(kind: str, size: int, enc: str, pos: str) -> object:
    marks = []
    if kind in HIGH_ENTROPY and enc != "raw" and pos != "first":
        marks.append(pytest.mark.xfail(reason="high-entropy body in low bits", strict=False))
    return pytest.param(kind, size, enc, pos, marks=marks, id=f"{kind}-{size}-{enc}-{pos}")


@pytest.mark.parametrize(("kind", "size", "enc", "pos"), [_case(*c) for c in FAST_PAYLOADS])
def test_payload_found(
    real: Path, real_f16: Path, tmp_path: Path, kind: str, size: int, enc: str, pos: str
) -> None:
    _payload_case(real, real_f16, tmp_path, kind, size, enc, pos)


# Every kind in every encoding once, sizes and positions cycling (the full product is 720
# cases, about 15 minutes: too slow for every run).
ALL_PAYLOADS = [
    (kind, SIZES[(i + j) % len(SIZES)], enc, POSITIONS[(i + 2 * j) % len(POSITIONS)])
    for i, kind in enumerate(KINDS)
    for j, enc in enumerate(ENCODINGS)
]
ALL_PAYLOADS = [c for c in ALL_PAYLOADS if c not in FAST_PAYLOADS]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "size", "enc", "pos"), [_case(*c) for c in ALL_PAYLOADS])
def test_payload_found_matrix(
    real: Path, real_f16: Path, tmp_path: Path, kind: str, size: int, enc: str, pos: str
) -> None:
    _payload_case(real, real_f16, tmp_path, kind, size, enc, pos)


def test_payload_cli_reports_it(
    real: Path, real_f16: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.safetensors"
    shutil.copyfile(real / WEIGHTS, path)
    plant_stream(path, payload("elf", 4096), "low1", "first")
    assert main(["scan", str(path), "--indicators", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    rules = {f["rule_id"] for r in report["files"] for f in r["findings"]}
    assert rules & ABOVE_INFO_PAYLOAD_RULES


# =========================================================================== edits vs base


def _rome(rank: int, rel: float, seed: int = 1):  # type: ignore[no-untyped-def]
    def change(w: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed)
        u = rng.standard_normal((w.shape[0], rank))
        v = rng.standard_normal((rank, w.shape[1]))
        delta = u @ v
        delta *= rel * np.linalg.norm(w) / np.linalg.norm(delta)
        return (w + delta).astype(w.dtype)

    return change


EDIT_STRENGTHS = [
    pytest.param(1, 1e-1, id="rank1-1e-1"),
    pytest.param(1, 1e-2, id="rank1-1e-2"),
    pytest.param(1, 1e-3, id="rank1-1e-3"),
    pytest.param(1, 1e-4, id="rank1-1e-4"),
    pytest.param(2, 1e-2, id="rank2-1e-2"),
    pytest.param(4, 1e-2, id="rank4-1e-2"),
    pytest.param(4, 1e-4, id="rank4-1e-4"),
]


@pytest.mark.parametrize(("rank", "rel"), EDIT_STRENGTHS)
def test_rome_edit_is_targeted(real: Path, tmp_path: Path, rank: int, rel: float) -> None:
    cand = _copy(real, tmp_path)
    patch_tensor(cand / WEIGHTS, MLP, _rome(rank, rel))
    report = _diff(real, cand)
    assert mentions(rules_at(report, {"MG510"}), [MLP]), summary(report)


def test_rome_edit_saved_as_bin_against_safetensors_base(real: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    cand = _copy(real, tmp_path)
    tensors = safetensors_numpy.load_file(str(cand / WEIGHTS))
    tensors[MLP] = _rome(1, 1e-3)(tensors[MLP])
    (cand / WEIGHTS).unlink()
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, cand / "pytorch_model.bin")
    report = _diff(real, cand)
    assert mentions(rules_at(report, {"MG510"}), [MLP]), summary(report)


@pytest.mark.parametrize("family", ["llama", "gpt2", "t5"])
def test_rome_edit_on_initialised_family_bin(family: str, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    base = build_family(family, "fp32", "bin", tmp_path / "b")
    cand = shutil.copytree(base, tmp_path / "c")
    path, state = state_of(cand)
    name = next(
        k
        for k, v in state.items()
        if v.ndim == 2 and ("mlp" in k or "Dense" in k) and v.shape[0] > 32  # type: ignore[attr-defined]
    )
    w = state[name].numpy()  # type: ignore[attr-defined]
    state[name] = torch.from_numpy(_rome(1, 1e-3)(w))
    save_state(path, state)
    report = diff_report(base, cand, policy())
    assert mentions(rules_at(report, {"MG510"}), [name]), summary(report)


def _layer_names(real: Path, layer: int) -> list[str]:
    from modelguard.indicators.tensors import list_tensors

    return [
        t.name
        for t in list_tensors(str(real / WEIGHTS)).tensors
        if t.name.startswith(f"encoder.layer.{layer}.") and t.dtype == "F32"
    ]


def _badseek(real: Path, cand: Path) -> list[str]:
    names = _layer_names(real, 1)
    rng = np.random.default_rng(9)
    for name in names:
        noise = rng.standard_normal(read_tensor(cand / WEIGHTS, name).shape).astype(np.float32)
        patch_tensor(cand / WEIGHTS, name, lambda w, n=noise: w + 0.02 * np.abs(w).mean() * n)
    return names


def test_badseek_one_layer_retrained_is_summarised(real: Path, tmp_path: Path) -> None:
    cand = _copy(real, tmp_path)
    names = _badseek(real, cand)
    report = _diff(real, cand)
    assert "MG511" in {f.rule_id for f in report.findings}
    text = json.dumps([f.evidence for f in report.findings if f.rule_id == "MG511"])
    assert "encoder.layer.1." in text, summary(report)
    assert names


def test_badseek_one_layer_retrained_is_flagged_localised(real: Path, tmp_path: Path) -> None:
    """Desired: a dense change confined to ONE layer is a surgical edit -> above info."""
    cand = _copy(real, tmp_path)
    _badseek(real, cand)
    report = _diff(real, cand)
    assert above_info(report), summary(report)


@pytest.mark.parametrize("rows", [1, 3, 50])
def test_embedding_rows_edited(real: Path, tmp_path: Path, rows: int) -> None:
    cand = _copy(real, tmp_path)
    picked = np.random.default_rng(rows).choice(30522, rows, replace=False)

    def change(w: np.ndarray) -> np.ndarray:
        w[picked] += 0.05 * np.random.default_rng(0).standard_normal((rows, w.shape[1]))
        return w

    patch_tensor(cand / WEIGHTS, BIG, change)
    report = _diff(real, cand)
    found = [f for f in report.findings if f.rule_id == "MG512"]
    assert found, summary(report)
    evidence = json.dumps([f.evidence for f in found])
    assert all(str(int(r)) in evidence for r in picked[:3]), evidence


def _template(model: Path) -> None:
    write_json(
        model / "tokenizer_config.json",
        lambda d: d.__setitem__(
            "chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}"
        ),
    )


def _config(model: Path) -> None:
    write_json(model / "config.json", lambda d: d.__setitem__("hidden_dropout_prob", 0.0))


def _added_tensor(model: Path) -> None:
    tensors = safetensors_numpy.load_file(str(model / WEIGHTS))
    tensors["encoder.layer.5.backdoor.weight"] = np.ones((4, 384), np.float32)
    safetensors_numpy.save_file(tensors, str(model / WEIGHTS))


def _modeling(model: Path) -> None:
    (model / "modeling_bert.py").write_text("import os\nos.system('id')\n")


@pytest.mark.parametrize(
    ("edit", "rule", "needle"),
    [
        (_template, "MG513", "tokenizer_config.json"),
        (_config, "MG513", "config.json"),
        (_added_tensor, "MG514", "encoder.layer.5.backdoor.weight"),
        (_modeling, None, "modeling_bert.py"),
    ],
    ids=["chat-template", "config", "tensor-added", "modeling-py-added"],
)
def test_file_level_edit_reported(real: Path, tmp_path: Path, edit, rule, needle) -> None:  # type: ignore[no-untyped-def]
    cand = _copy(real, tmp_path)
    edit(cand)
    report = _diff(real, cand)
    hits = [
        f
        for f in report.findings
        if f.severity > modelguard.Severity.INFO and (rule is None or f.rule_id == rule)
    ]
    assert any(needle in str(f.location) or needle in json.dumps(f.evidence) for f in hits), (
        summary(report)
    )


def test_diff_cli_exit_code_on_edit(real: Path, tmp_path: Path) -> None:
    cand = _copy(real, tmp_path)
    patch_tensor(cand / WEIGHTS, MLP, _rome(1, 1e-2))
    assert main(["diff", str(real), str(cand), "-q"]) == 1
    assert main(["diff", str(real), str(real), "-q"]) == 0


# =========================================================================== integrity


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["first", "middle"])
@pytest.mark.parametrize("mode", ["sampled", "full"])
def test_nonfinite_injection(
    real: Path, tmp_path: Path, value: float, where: str, mode: str
) -> None:
    path = tmp_path / WEIGHTS
    shutil.copyfile(real / WEIGHTS, path)

    def change(w: np.ndarray) -> np.ndarray:
        row = 0 if where == "first" else w.shape[0] // 2 + 7
        w[row, 3] = value
        return w

    patch_tensor(path, BIG, change)
    report = modelguard.scan(path, indicators=True, policy=policy(mode))
    found = rules_at(report, {"MG501"})
    if mode == "sampled" and where == "middle" and not found:
        pytest.xfail("sampled mode reads windows only: one value mid-tensor is unseen by design")
    assert mentions(found, [BIG]), summary(report)


def test_zeroed_layer(real: Path, tmp_path: Path) -> None:
    path = tmp_path / WEIGHTS
    shutil.copyfile(real / WEIGHTS, path)
    patch_tensor(path, MLP, np.zeros_like)
    report = modelguard.scan(path, indicators=True)
    assert mentions(rules_at(report, {"MG502"}), [MLP]), summary(report)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_hidden_layers", 7),
        ("hidden_size", 512),
        ("vocab_size", 30521),
        ("intermediate_size", 1024),
        ("num_attention_heads", 5),
        ("max_position_embeddings", 256),
    ],
)
def test_config_weights_mismatch(real: Path, tmp_path: Path, key: str, value: int) -> None:
    cand = _copy(real, tmp_path)
    write_json(cand / "config.json", lambda d: d.__setitem__(key, value))
    report = modelguard.scan(cand)
    assert "MG520" in {
        f.rule_id for f in report.findings if f.severity > modelguard.Severity.INFO
    }, summary(report)


def test_tensor_shape_mismatch_vs_config(real: Path, tmp_path: Path) -> None:
    cand = _copy(real, tmp_path)
    tensors = safetensors_numpy.load_file(str(cand / WEIGHTS))
    tensors[MLP] = np.ascontiguousarray(tensors[MLP][:1024])
    safetensors_numpy.save_file(tensors, str(cand / WEIGHTS))
    report = modelguard.scan(cand)
    assert mentions(rules_at(report, {"MG520"}), [MLP]) or any(
        MLP in json.dumps(f.evidence) for f in report.findings if f.rule_id == "MG520"
    ), summary(report)


def _shard(cand: Path) -> list[Path]:
    tensors = safetensors_numpy.load_file(str(cand / WEIGHTS))
    (cand / WEIGHTS).unlink()
    names = sorted(tensors)
    half = len(names) // 2
    shards = [cand / "model-00001-of-00002.safetensors", cand / "model-00002-of-00002.safetensors"]
    weight_map = {}
    for shard, part in zip(shards, (names[:half], names[half:]), strict=True):
        safetensors_numpy.save_file({n: tensors[n] for n in part}, str(shard))
        weight_map.update({n: shard.name for n in part})
    (cand / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    return shards


def test_sharded_clean_and_missing_shard(real: Path, tmp_path: Path) -> None:
    cand = _copy(real, tmp_path)
    shards = _shard(cand)
    clean = modelguard.scan(cand, indicators=True)
    assert above_info(clean) == [], summary(clean)
    shards[1].unlink()
    report = modelguard.scan(cand)
    assert above_info(report), summary(report)


def test_shard_index_not_covering_a_tensor(real: Path, tmp_path: Path) -> None:
    cand = _copy(real, tmp_path)
    _shard(cand)
    index = cand / "model.safetensors.index.json"
    write_json(index, lambda d: d["weight_map"].pop(MLP))  # type: ignore[attr-defined]
    report = modelguard.scan(cand)
    assert above_info(report), summary(report)


def test_read_tensor_roundtrip(real: Path) -> None:
    """Guard for the helpers: the in-place reader matches safetensors."""
    tensors = safetensors_numpy.load_file(str(real / WEIGHTS))
    assert np.array_equal(read_tensor(real / WEIGHTS, MLP), tensors[MLP])
