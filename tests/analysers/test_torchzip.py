"""PyTorch zips: storage sizes (MG452) and TorchScript code (MG450 host access, MG451 custom ops).

Scripted modules are built with torch.jit.script / torch.jit.trace and saved with
torch.jit.save; their forward is never run.
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelguard
from modelguard.formats.torchscript import scan_code
from modelguard.results import FileResult, Severity

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


# -- helpers -----------------------------------------------------------------------------------
def _scan(path: Path) -> FileResult:
    return modelguard.scan(path).files[0]


def _rules(result: FileResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def _of(result: FileResult, rule: str) -> list[dict[str, str]]:
    return [dict(f.evidence) for f in result.findings if f.rule_id == rule]


def _assert_clean(result: FileResult) -> None:
    assert not result.incomplete, result.incomplete
    bad = [
        f
        for f in result.findings
        if f.severity >= Severity.LOW
        # Policy gap outside this analyser: the allowlist's "__torch__.*:*" pattern does not
        # cover a TorchScript class defined at the top level of `__torch__` (e.g. __torch__.M).
        and not (
            f.rule_id == "MG102" and dict(f.evidence).get("global", "").startswith("__torch__:")
        )
    ]
    assert not bad, bad


def _rewrite(
    src: Path,
    dst: Path,
    edit: Callable[[str, bytes], bytes | None],
    add: dict[str, bytes] | None = None,
) -> Path:
    """Copy a zip member by member; `edit` returns new bytes, or None to drop the member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def _edit_member(
    name_suffix: str, change: Callable[[bytes], bytes | None]
) -> Callable[[str, bytes], bytes | None]:
    return lambda name, data: change(data) if name.endswith(name_suffix) else data


class _Rec:
    def __init__(self, pid: tuple[object, ...]) -> None:
        self.pid = pid


class _PidPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return obj.pid if isinstance(obj, _Rec) else None


def _storage_zip(path: Path, pids: Sequence[tuple[object, ...]], members: dict[str, bytes]) -> Path:
    """A torch.save-shaped zip whose data.pkl holds exactly these persistent ids."""
    buf = io.BytesIO()
    _PidPickler(buf, protocol=2).dump([_Rec(p) for p in pids])
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("arch/data.pkl", buf.getvalue())
        zf.writestr("arch/byteorder", b"little")
        for name, data in members.items():
            zf.writestr(f"arch/data/{name}", data)
        zf.writestr("arch/version", b"3\n")
    return path


# -- modules (never run) -----------------------------------------------------------------------
class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.lstm = torch.nn.LSTM(4, 4)
        self.register_buffer("k", torch.tensor([1.5, 2.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten.relu(self.lin(x))
        out, _ = self.lstm(y.unsqueeze(0))
        print("shape", out.shape)
        return out.sum() + torch.tensor([1.0, 2.0]).sum()


class _HostAccess(torch.nn.Module):
    def forward(self, x: torch.Tensor, path: str) -> torch.Tensor:
        y = torch.from_file(path, False, 10)
        torch.save(x, path)
        return x + y


class _Const(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tensor([1.0, 2.0, 3.0, 4.0])


def _jit(module: torch.nn.Module, path: Path, example: torch.Tensor | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = (
            torch.jit.trace(module, example) if example is not None else torch.jit.script(module)
        )
        torch.jit.save(compiled, str(path))
    return path


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torchzip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()), {torch.nn.Linear}
        )
    return {
        "script-net": _jit(_Net(), root / "net.pt"),
        "trace-linear": _jit(torch.nn.Linear(3, 2), root / "lin.pt", torch.ones(1, 3)),
        "trace-conv": _jit(torch.nn.Conv2d(1, 2, 3), root / "conv.pt", torch.ones(1, 1, 5, 5)),
        "trace-const": _jit(_Const(), root / "const.pt", torch.ones(4)),
        "script-quantized": _jit(quant, root / "quant.pt"),
        "host-access": _jit(_HostAccess(), root / "host.pt"),
    }


# -- benign ------------------------------------------------------------------------------------
def _state_dicts() -> dict[str, object]:
    base = torch.arange(10, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qint = torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)
    return {
        "float32": {"w": torch.randn(3, 4)},
        "dtypes": {
            "bf16": torch.ones(3, dtype=torch.bfloat16),
            "f16": torch.ones(2, dtype=torch.float16),
            "f64": torch.ones(2, dtype=torch.float64),
            "i64": torch.arange(4),
            "i32": torch.arange(4, dtype=torch.int32),
            "i16": torch.arange(4, dtype=torch.int16),
            "i8": torch.arange(4, dtype=torch.int8),
            "u8": torch.arange(4, dtype=torch.uint8),
            "bool": torch.ones(3, dtype=torch.bool),
            "c64": torch.ones(2, dtype=torch.complex64),
            "c128": torch.ones(2, dtype=torch.complex128),
            "u16": torch.ones(3, dtype=torch.uint16),
            "f8": torch.ones(3, dtype=torch.float8_e4m3fn),
        },
        "quantized": {"q": qint},
        "empty": {"e": torch.empty(0), "e2": torch.zeros(3, 0)},
        "views": {"full": base, "view": base[2:5], "t": base.view(2, 5).t()},
        "module": torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).state_dict(),
        "nested": {"model": {"a": torch.ones(2)}, "step": 3, "names": ["a"]},
    }


@pytest.mark.parametrize("name", sorted(_state_dicts()))
def test_torch_save_is_clean(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.pt"
    torch.save(_state_dicts()[name], path)
    result = _scan(path)
    _assert_clean(result)
    assert "torch-zip" in result.formats


@pytest.mark.parametrize(
    "name", ["script-net", "trace-linear", "trace-conv", "trace-const", "script-quantized"]
)
def test_torchscript_is_clean(archives: dict[str, Path], name: str) -> None:
    result = _scan(archives[name])
    _assert_clean(result)
    assert "torchscript" in result.formats


def test_untyped_storage_counts_bytes(tmp_path: Path) -> None:
    pids = [
        ("storage", torch.UntypedStorage, "0", "cpu", 6),
        ("storage", torch.FloatStorage, "1", "cpu", 2),
    ]
    path = _storage_zip(tmp_path / "u.pt", pids, {"0": b"\x00" * 6, "1": b"\x00" * 8})
    assert "MG452" not in _rules(_scan(path))


# -- MG450 / MG451 -----------------------------------------------------------------------------
def test_scripted_host_access_is_critical(archives: dict[str, Path]) -> None:
    result = _scan(archives["host-access"])
    hits = _of(result, "MG450")
    assert {h["call"] for h in hits} == {"torch.from_file", "torch.save"}
    assert all("/code/__torch__" in h["member"] and int(h["line"]) > 0 for h in hits)
    assert all(f.severity is Severity.CRITICAL for f in result.findings if f.rule_id == "MG450")


_FORWARD = "    return _2\n"


@pytest.mark.parametrize(
    ("label", "inserted", "rule", "call"),
    [
        ("custom-op", "    _c = ops.evil.run(x)\n", "MG451", "ops.evil.run"),
        (
            "custom-op-overload",
            "    _c = ops.evil.run.default(x)\n",
            "MG451",
            "ops.evil.run.default",
        ),
        (
            "torchaudio-op",
            "    _c = ops.torchaudio.sox_effects(x)\n",
            "MG451",
            "ops.torchaudio.sox_effects",
        ),
        ("debug-namespace", "    _c = ops.debugprims.load_tensor('a', [1], [1])\n", "MG451", None),
        ("custom-class", "    _c : __torch__.torch.classes.evil.Thing = x\n", "MG451", None),
        (
            "ops-aten-from-file",
            "    _c = ops.aten.from_file('/etc/passwd', False, 10)\n",
            "MG450",
            None,
        ),
        ("torch-ops-aten-save", "    torch.ops.aten.save(x, '/tmp/p')\n", "MG450", None),
        ("spaced", "    torch . save(x, '/tmp/p')\n", "MG450", "torch.save"),
        ("torchvision-read", "    _c = ops.image.read_file('/etc/passwd')\n", "MG450", None),
        ("in-string", "    _c = \"torch.from_file('/etc/passwd')\"\n", "MG450", "torch.from_file"),
        ("not-python", "    _c = torch.save(x, '/tmp/p') $$\n", "MG450", "torch.save"),
    ],
)
def test_hand_edited_code(
    archives: dict[str, Path],
    tmp_path: Path,
    label: str,
    inserted: str,
    rule: str,
    call: str | None,
) -> None:
    def change(data: bytes) -> bytes:
        text = data.decode()
        assert _FORWARD in text
        return text.replace(_FORWARD, inserted + _FORWARD).encode()

    path = _rewrite(
        archives["script-net"],
        tmp_path / "edited.pt",
        _edit_member("code/__torch__/analysers/test_torchzip.py", change),
    )
    result = _scan(path)
    hits = _of(result, rule)
    assert hits, (label, result.findings)
    if call is not None:
        assert any(h["call"] == call for h in hits), hits
    if label == "not-python":
        assert hits[0]["reading"].startswith("text scan")
    expected = Severity.CRITICAL if rule == "MG450" else Severity.MEDIUM
    assert all(f.severity is expected for f in result.findings if f.rule_id == rule)


def test_code_in_a_second_archive_folder_and_duplicates(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    evil = b"def f(x: Tensor) -> Tensor:\n  return torch.from_file('/etc/passwd', False, 1)\n"
    path = _rewrite(
        archives["trace-linear"],
        tmp_path / "dup.pt",
        lambda n, d: d,
        {"t/code/__torch__/extra.py": evil},
    )
    assert {h["call"] for h in _of(_scan(path), "MG450")} == {"torch.from_file"}


# -- MG452 -------------------------------------------------------------------------------------
def _saved(tmp_path: Path, numel: int = 10) -> Path:
    path = tmp_path / f"w{numel}.pt"
    torch.save({"w": torch.ones(numel), "v": torch.ones(2, dtype=torch.float64)}, path)
    return path


@pytest.mark.parametrize(
    ("label", "edit"),
    [
        ("truncated", _edit_member("/data/0", lambda d: d[:-4])),
        ("extended", _edit_member("/data/0", lambda d: d + b"\x00" * 8)),
        ("emptied", _edit_member("/data/1", lambda d: b"")),
        ("missing", _edit_member("/data/0", lambda d: None)),
    ],
)
def test_storage_member_size(
    tmp_path: Path, label: str, edit: Callable[[str, bytes], bytes | None]
) -> None:
    path = _rewrite(_saved(tmp_path), tmp_path / "bad.pt", edit)
    result = _scan(path)
    hits = _of(result, "MG452")
    assert len(hits) == 1, (label, result.findings)
    assert hits[0]["declared"] in ("40", "16")
    if label == "missing":
        assert hits[0]["stored"] == "missing"
    assert all(f.severity is Severity.HIGH for f in result.findings if f.rule_id == "MG452")


def test_declared_numel_bigger_than_stored(tmp_path: Path) -> None:
    big = _saved(tmp_path, 1000)
    with zipfile.ZipFile(big) as zf:
        pkl = zf.read(f"{big.stem}/data.pkl")
    small = _saved(tmp_path, 10)
    path = _rewrite(small, tmp_path / "numel.pt", _edit_member("data.pkl", lambda d: pkl))
    hits = _of(_scan(path), "MG452")
    assert [(h["key"], h["declared"], h["stored"]) for h in hits] == [("0", "4000", "40")]


def test_same_key_with_two_sizes(tmp_path: Path) -> None:
    pids = [
        ("storage", torch.FloatStorage, "0", "cpu", 2),
        ("storage", torch.FloatStorage, "0", "cpu", 5),
    ]
    path = _storage_zip(tmp_path / "two.pt", pids, {"0": b"\x00" * 8})
    hits = _of(_scan(path), "MG452")
    assert len(hits) == 2  # the disagreement, and the stored size against the larger claim


def test_negative_numel(tmp_path: Path) -> None:
    path = _storage_zip(
        tmp_path / "neg.pt", [("storage", torch.FloatStorage, "0", "cpu", -1)], {"0": b""}
    )
    assert "MG452" in _rules(_scan(path))


def test_torchscript_constants_are_checked(archives: dict[str, Path], tmp_path: Path) -> None:
    path = _rewrite(
        archives["trace-const"], tmp_path / "c.pt", _edit_member("/constants/0", lambda d: d[:4])
    )
    hits = _of(_scan(path), "MG452")
    assert [(h["key"], h["declared"], h["stored"]) for h in hits] == [("0", "16", "4")]


def test_many_references_to_one_storage_compare_once(tmp_path: Path) -> None:
    pids = [("storage", torch.HalfStorage, "0", "cpu", 4)] * 50
    path = _storage_zip(tmp_path / "many.pt", pids, {"0": b"\x00" * 6})
    assert len(_of(_scan(path), "MG452")) == 1


# -- parser and fuzz ---------------------------------------------------------------------------
def test_scan_code_parses_and_falls_back() -> None:
    code = scan_code(b"def f(x):\n  return ops.a.b(torch.relu(x))\n")
    assert code.parsed and [(r.name, r.line, r.call) for r in code.refs] == [
        ("ops.a.b", 2, True),
        ("torch.relu", 2, True),
    ]
    bad = scan_code(b"def f(x):\n  return ops.a.b(x) ???\n\xff\x00")
    assert not bad.parsed and bad.note and [r.name for r in bad.refs] == ["ops.a.b"]


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=300)
    | st.text(alphabet="torch.ops.()\n save_ \"'#:", max_size=200).map(str.encode)
)
def test_fuzz_scan_code_never_raises(data: bytes) -> None:
    scan_code(data)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzz_archive_scan_has_no_internal_error(
    archives: dict[str, Path], tmp_path: Path, data: st.DataObject
) -> None:
    src = data.draw(st.sampled_from(["host-access", "trace-const", "trace-linear"]))
    raw = bytearray(archives[src].read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(raw) // 2, len(raw)))
    path = tmp_path / "fuzz.pt"
    path.write_bytes(bytes(raw[:cut]))
    result = _scan(path)
    assert not any("internal error" in i.reason for i in result.incomplete), result.incomplete


# -- legacy (non-zip) torch.save: the raw storage records after the pickles ------------------


def _legacy(tmp_path: Path) -> bytes:
    path = tmp_path / "legacy.pt"
    state = {"a": torch.zeros(3), "b": torch.ones(2, 2, dtype=torch.float64)}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path.read_bytes()


def test_legacy_file_is_clean(tmp_path: Path) -> None:
    data = _legacy(tmp_path)
    path = tmp_path / "ok.pt"
    path.write_bytes(data)
    result = modelguard.scan(path).files[0]
    assert result.formats == ("legacy-torch",) and result.complete and result.findings == ()


@pytest.mark.parametrize("cut", [1, 8, 20])
def test_legacy_file_cut_inside_its_storage_data_is_incomplete(tmp_path: Path, cut: int) -> None:
    data = _legacy(tmp_path)
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:-cut])
    result = modelguard.scan(path).files[0]
    assert [i.rule_id for i in result.incomplete] == ["MG002"]


def test_legacy_storage_count_that_disagrees_with_the_pickle_is_mg452(tmp_path: Path) -> None:
    path = tmp_path / "one.pt"
    torch.save(
        {"b": torch.ones(2, 2, dtype=torch.float64)}, path, _use_new_zipfile_serialization=False
    )
    data = bytearray(path.read_bytes())
    # The only record: the float64 storage's 8-byte count (4), then its 32 bytes.
    at = len(data) - 32 - 8
    assert int.from_bytes(data[at : at + 8], "little") == 4
    data[at : at + 8] = (2).to_bytes(8, "little")
    path = tmp_path / "count.pt"
    path.write_bytes(bytes(data))
    result = modelguard.scan(path).files[0]
    assert "MG452" in {f.rule_id for f in result.findings}
