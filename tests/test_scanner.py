"""The orchestrator: content sniffing, containers, limits, fail-closed results, folders."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import modelguard
from modelguard.config import Limits
from modelguard.errors import SourceError
from modelguard.policy import Policy
from modelguard.results import Verdict

EVIL = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."  # os.system('id'), never loaded
CLEAN = pickle.dumps({"a": [1, 2, 3], "b": "text"}, protocol=4)


def scan_bytes(tmp_path: Path, data: bytes, name: str = "f.bin", **kw: object):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(data)
    report = modelguard.scan(path, **kw)  # type: ignore[arg-type]
    assert len(report.files) == 1
    return report.files[0]


def rules(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.rule_id for f in result.findings}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


WRAPPERS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zlib": zlib.compress,
    "zip": lambda d: _zip({"weights/config.txt": d}),
    "tar": lambda d: _tar({"model/data.pkl": d}),
    "zip-in-zip": lambda d: _zip({"inner.zip": _zip({"x": d})}),
    "gzip-tar": lambda d: gzip.compress(_tar({"a/b": d})),
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_payload_is_found_in_every_container(tmp_path: Path, wrapper: str) -> None:
    result = scan_bytes(tmp_path, WRAPPERS[wrapper](EVIL))
    assert result.verdict is Verdict.DANGEROUS
    assert "MG101" in rules(result)
    assert result.complete


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_clean_pickle_in_every_container_is_safe(tmp_path: Path, wrapper: str) -> None:
    result = scan_bytes(tmp_path, WRAPPERS[wrapper](CLEAN))
    assert result.verdict is Verdict.SAFE, result.findings
    assert result.complete


def test_protocol0_pickle_under_a_neutral_name_in_a_zip(tmp_path: Path) -> None:
    p0 = b"cos\nsystem\n(S'id'\ntR."
    result = scan_bytes(tmp_path, _zip({"weights/config.txt": p0}), "m.zip")
    assert "MG101" in rules(result)


def test_polyglot_pickle_then_zip(tmp_path: Path) -> None:
    data = EVIL + _zip({"archive/data.pkl": CLEAN})
    result = scan_bytes(tmp_path, data, "model.pt")
    assert {"MG202", "MG101"} <= rules(result)
    assert result.verdict is Verdict.DANGEROUS


def test_prepended_junk_before_a_zip(tmp_path: Path) -> None:
    data = b"\x00\x01\x02junk" * 10 + _zip({"a/data.pkl": CLEAN})
    result = scan_bytes(tmp_path, data)
    assert "MG205" in rules(result) and "MG202" not in rules(result)


def test_stacked_pickles_are_all_analysed(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, CLEAN + EVIL)
    assert {"MG101", "MG112"} <= rules(result)


def test_trailing_garbage_is_low(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, CLEAN + b"\x00\xff" * 10)
    assert "MG111" in rules(result)
    assert result.verdict is Verdict.SAFE


def test_execute_then_fail_is_dangerous_and_incomplete(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, EVIL[:-1] + b"\xff\xff")
    assert result.verdict is Verdict.DANGEROUS
    assert not result.complete
    assert result.incomplete[0].rule_id == "MG002"


def test_truncated_clean_pickle_is_an_error_not_safe(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, CLEAN[:-5])
    assert result.verdict is Verdict.ERROR


def test_nested_pickle_in_bytes_is_analysed(tmp_path: Path) -> None:
    outer = b"\x80\x04\x8c\x06pickle\x8c\x05loads\x93C" + bytes([len(EVIL)]) + EVIL + b"\x85R."
    result = scan_bytes(tmp_path, outer)
    nested = [f for f in result.findings if f.rule_id == "MG101"]
    assert nested and nested[0].location.members[0].startswith("<pickle:loads@")


def test_nested_benign_pickle_through_load_from_bytes_is_safe(tmp_path: Path) -> None:
    outer = b"\x80\x02ctorch.storage\n_load_from_bytes\nC" + bytes([len(CLEAN)]) + CLEAN + b"\x85R."
    result = scan_bytes(tmp_path, outer)
    assert result.verdict is Verdict.SAFE, result.findings


def test_loader_of_a_path_is_a_trampoline(tmp_path: Path) -> None:
    data = b"\x80\x02cnumpy\nload\nX\x07\x00\x00\x00x.npy  N\x88\x87R."
    result = scan_bytes(tmp_path, data)
    assert "MG106" in rules(result)


def test_numpy_object_array(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array(["a", None], dtype=object), allow_pickle=True)
    result = scan_bytes(tmp_path, buf.getvalue(), "a.npy")
    assert "MG206" in rules(result)
    assert result.verdict is Verdict.SAFE


def test_numpy_object_array_with_payload(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([1, 2], dtype=object), allow_pickle=True)
    data = buf.getvalue()
    header_end = data.index(b"\n") + 1
    result = scan_bytes(tmp_path, data[:header_end] + EVIL, "a.npy")
    assert result.verdict is Verdict.DANGEROUS


def test_text_and_unknown_files(tmp_path: Path) -> None:
    assert scan_bytes(tmp_path, b"# Title\ncontents\nmore\n", "README.md").findings == ()
    unknown = scan_bytes(tmp_path, bytes(range(200, 256)) * 4, "blob.dat")
    assert rules(unknown) == {"MG210"}
    assert unknown.verdict is Verdict.SAFE and unknown.complete


def test_text_that_reads_as_protocol0_globals_is_not_a_pickle(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, b"contents\nof a file\nsay hi\n", "notes.txt")
    assert result.findings == () and result.formats == ("text",)


def test_lfs_pointer_is_incomplete(tmp_path: Path) -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"
    result = scan_bytes(tmp_path, pointer, "model.safetensors")
    assert result.incomplete[0].rule_id == "MG005"
    assert result.verdict is Verdict.ERROR


@pytest.mark.parametrize(
    ("magic", "fmt"), [(b"GGUF\x03\x00\x00\x00", "gguf"), (b"\x89HDF\r\n\x1a\n", "hdf5")]
)
def test_truncated_model_formats_are_never_safe(tmp_path: Path, magic: bytes, fmt: str) -> None:
    result = scan_bytes(tmp_path, magic + b"\x00" * 64)
    assert result.formats == (fmt,)
    assert result.verdict is not Verdict.SAFE, result


def test_safetensors_header_is_checked(tmp_path: Path) -> None:
    header = b'{"__metadata__":{"a":"b"}}'
    good = len(header).to_bytes(8, "little") + header
    assert scan_bytes(tmp_path, good, "m.safetensors").verdict is Verdict.SAFE
    bad = (12).to_bytes(8, "little") + b"{not json!!}"
    result = scan_bytes(tmp_path, bad, "n.safetensors")
    assert [(f.rule_id, dict(f.evidence)["problem"]) for f in result.findings] == [
        ("MG410", "invalid-json")
    ]
    assert result.verdict is Verdict.DANGEROUS
    spaced = (len(header) + 3).to_bytes(8, "little") + b"   " + header
    assert "safetensors" in scan_bytes(tmp_path, spaced, "s.safetensors").formats


def test_extension_mismatch(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, CLEAN, "weights.safetensors")
    assert rules(result) == {"MG201"}
    assert scan_bytes(tmp_path, CLEAN, "weights.bin").findings == ()


def test_depth_limit_makes_result_incomplete(tmp_path: Path) -> None:
    data = CLEAN
    for _ in range(6):
        data = _zip({"n.zip": data})
    policy = Policy(limits=Limits(max_depth=3))
    result = scan_bytes(tmp_path, data, policy=policy)
    assert any(i.rule_id == "MG003" and "max_depth" in i.reason for i in result.incomplete)
    assert result.verdict is Verdict.ERROR


def test_decompression_bomb_is_bounded(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))
    policy = Policy(limits=Limits(max_member_bytes=4 * 1024 * 1024))
    result = scan_bytes(tmp_path, bomb, policy=policy)
    assert any(i.rule_id == "MG003" for i in result.incomplete)


def test_folder_gets_a_result_for_every_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.weird-ext").write_bytes(EVIL)
    (tmp_path / "b").write_bytes(CLEAN)
    (tmp_path / "c.txt").write_text("hello\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: x\n")
    report = modelguard.scan(tmp_path)
    shown = [f.path for f in report.files]
    base = tmp_path.as_posix()
    assert shown == [f"{base}/b", f"{base}/c.txt", f"{base}/sub/a.weird-ext"]
    assert report.verdict is Verdict.DANGEROUS


def test_missing_target_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        modelguard.scan(tmp_path / "nope")


def test_empty_folder_is_not_complete(tmp_path: Path) -> None:
    report = modelguard.scan(tmp_path)
    assert not report.complete and report.verdict is Verdict.ERROR


def test_unreadable_file_is_incomplete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Permissions do not stop root (CI runs as root), so the open itself is made to fail.
    from modelguard.formats import blob

    def denied(cls: object, path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(blob.FileBlob, "open", classmethod(denied))
    path = tmp_path / "x.pkl"
    path.write_bytes(CLEAN)
    result = modelguard.scan(path).files[0]
    assert [i.rule_id for i in result.incomplete] == ["MG001"]
    assert result.verdict is Verdict.ERROR


def _legacy_tar(storages: bytes) -> bytes:
    members = {
        "sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
        "pickle": pickle.dumps({}, protocol=2),
        "storages": storages,
        "tensors": pickle.dumps(0, protocol=2),
    }
    return _tar(members)


def _storage_record(key: bytes) -> bytes:
    return (
        b"\x80\x02(X\x01\x00\x00\x00" + key + b"X\x03\x00\x00\x00cpuctorch\nFloatStorage\ntq\x00."
    )


def test_legacy_tar_storages_are_walked_record_by_record(tmp_path: Path) -> None:
    three_floats = (3).to_bytes(8, "little") + b"\x80\x02" * 6  # raw data that looks like pickle
    benign = pickle.dumps(1, protocol=2) + _storage_record(b"0") + three_floats
    benign += pickle.dumps([], protocol=2)  # storage views
    result = scan_bytes(tmp_path, _legacy_tar(benign), "old.tar")
    assert "legacy-torch-tar" in result.formats
    assert result.verdict is Verdict.SAFE and result.complete, result
    # The payload hides in the second record's pickle, after the first record's raw data.
    hostile = pickle.dumps(2, protocol=2) + _storage_record(b"0") + three_floats + EVIL
    result = scan_bytes(tmp_path, _legacy_tar(hostile), "old2.tar")
    assert "MG101" in rules(result)


def test_fifo_is_reported_not_opened(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a.pkl").write_bytes(CLEAN)
    report = modelguard.scan(tmp_path)
    pipe = next(f for f in report.files if f.path.endswith("pipe"))
    assert pipe.incomplete[0].rule_id == "MG001" and "regular" in pipe.incomplete[0].reason


def test_symlinked_folder_is_followed_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "evil.pkl").write_bytes(EVIL)
    top = tmp_path / "top"
    top.mkdir()
    (top / "link").symlink_to(real, target_is_directory=True)
    (top / "loop").symlink_to(top, target_is_directory=True)
    report = modelguard.scan(top)
    assert [Path(f.path).name for f in report.files] == ["evil.pkl"]
    assert report.verdict is Verdict.DANGEROUS


def test_internal_errors_fail_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelguard.analysers import numpy as numpy_analyser

    def boom(*args: object, **kwargs: object) -> None:
        raise ValueError("simulated bug")

    monkeypatch.setattr(numpy_analyser, "analyse_numpy", boom)
    buf = io.BytesIO()
    np.save(buf, np.ones(2))
    result = scan_bytes(tmp_path, buf.getvalue(), "a.npy")
    assert result.verdict is Verdict.ERROR
    assert "internal error" in result.incomplete[0].reason


def test_gzip_before_a_zip_is_a_polyglot(tmp_path: Path) -> None:
    data = gzip.compress(EVIL) + _zip({"a": CLEAN})
    result = scan_bytes(tmp_path, data)
    assert {"MG202", "MG101"} <= rules(result)


def test_seven_zip_members_are_analysed(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        archive.writestr(EVIL, "archive/data.pkl")
        archive.writestr(CLEAN, "archive/other.pkl")
    result = scan_bytes(tmp_path, buf.getvalue(), "model.7z")
    assert "7z" in result.formats
    assert "MG101" in rules(result) and result.verdict is Verdict.DANGEROUS


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_optional_wrappers_are_opened(tmp_path: Path, codec: str) -> None:
    if codec == "lz4":
        data = pytest.importorskip("lz4.frame").compress(EVIL)
    else:
        data = pytest.importorskip("zstandard").ZstdCompressor().compress(EVIL)
    result = scan_bytes(tmp_path, data, f"model.{codec}")
    assert "MG101" in rules(result) and result.complete


def test_safetensors_with_a_zip_appended_is_a_polyglot(tmp_path: Path) -> None:
    header = b'{"__metadata__":{"a":"b"}}'
    safetensors = len(header).to_bytes(8, "little") + header
    data = safetensors + _zip({"config.txt": EVIL})
    result = scan_bytes(tmp_path, data, "model.safetensors")
    assert {"MG202", "MG101"} <= rules(result)


def test_frame_overrun_over_a_long_run_of_opcodes_is_bounded(tmp_path: Path) -> None:
    import time

    frame = b"\x95" + (2).to_bytes(8, "little")
    data = b"\x80\x04" + frame + b"B" + (60_000).to_bytes(4, "little") + b"N" * 60_000 + b"."
    started = time.monotonic()
    result = scan_bytes(tmp_path, data)
    assert time.monotonic() - started < 30
    assert "MG110" in rules(result)
    assert not result.complete  # the re-reading hit its budget: never reported safe


def test_opcode_budget_covers_the_whole_file(tmp_path: Path) -> None:
    one = b"\x80\x02" + b"N0" * 2500 + b"N."  # about 5,000 opcodes
    policy = Policy(limits=Limits(max_opcodes=10_000))
    assert scan_bytes(tmp_path, one, policy=policy).complete
    result = scan_bytes(tmp_path, one * 5, "many.pkl", policy=policy)
    assert any("max_opcodes" in i.reason for i in result.incomplete), result.incomplete


@pytest.mark.parametrize(
    ("limits", "name"),
    [(Limits(max_opcodes=3), "max_opcodes"), (Limits(max_memo=1), "max_memo")],
)
def test_small_limits_are_enforced_on_short_pickles(
    tmp_path: Path, limits: Limits, name: str
) -> None:
    # the in-loop checks run every 4096 opcodes: a short pickle is judged at its STOP
    data = pickle.dumps({"a": 1, "b": [1, 2, 3], "c": "x" * 10}, protocol=2)
    result = scan_bytes(tmp_path, data, policy=Policy(limits=limits))
    assert any(name in i.reason for i in result.incomplete), result.incomplete


def test_protocol0_stream_that_hits_a_limit_is_not_taken_for_text(tmp_path: Path) -> None:
    text_like = b"N0" * 6000 + b"N."  # protocol 0, printable: also valid text
    policy = Policy(limits=Limits(max_opcodes=4096))
    result = scan_bytes(tmp_path, text_like, "notes.txt", policy=policy)
    assert result.formats == ("pickle",) and not result.complete


def test_torchscript_archive_of_an_ordinary_module_is_clean(tmp_path: Path) -> None:
    scripted = torch_jit_script()
    path = tmp_path / "scripted.pt"
    scripted.save(str(path))
    report = modelguard.scan(path)
    result = report.files[0]
    assert "torchscript" in result.formats
    assert result.findings == (), result.findings
    assert result.complete, result.incomplete
    assert result.verdict is Verdict.SAFE


def torch_jit_script():  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit.script
        return torch.jit.script(module)


def test_large_compressed_content_is_streamed_not_held(tmp_path: Path) -> None:
    import tracemalloc

    import joblib

    path = tmp_path / "big.joblib"
    joblib.dump({"a": np.zeros(25_000_000, dtype=np.float32), "b": [1, 2]}, path, compress=1)
    tracemalloc.start()
    try:
        report = modelguard.scan(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = report.files[0]
    assert result.complete and result.verdict is Verdict.SAFE, result
    assert peak < 48 * 1024 * 1024, peak  # 100 MB decompressed, never held whole


def test_streamed_content_still_finds_a_payload_at_the_end(tmp_path: Path) -> None:
    data = gzip.compress(pickle.dumps(b"\x00" * (40 << 20), protocol=4)[:-1] + b"0" + EVIL)
    result = scan_bytes(tmp_path, data, "late.pkl.gz")
    assert "MG101" in rules(result)


@pytest.mark.parametrize(
    ("data", "target"),
    [
        (b"\x80\x02]q\x00(K\x01K\x02K\x03K\x04u.", "list"),  # SETITEMS on a list
        (b"\x80\x02]q\x00K\x00K\x01s.", "list"),  # SETITEM on a list
        (b"\x80\x02X\x01\x00\x00\x00aK\x00K\x01s.", "str"),
    ],
)
def test_setitem_on_something_other_than_a_dict_is_reported(
    tmp_path: Path, data: bytes, target: str
) -> None:
    result = scan_bytes(tmp_path, data)
    found = [f for f in result.findings if f.rule_id == "MG114"]
    assert found and found[0].evidence_map["target"] == target
    assert result.verdict is Verdict.DANGEROUS


def test_setitem_on_dicts_and_rebuilt_objects_is_not_reported(tmp_path: Path) -> None:
    import collections

    data = pickle.dumps({"a": collections.OrderedDict(b=1), "c": {"d": [1, 2]}}, protocol=2)
    assert scan_bytes(tmp_path, data).findings == ()


def test_torchscript_names_in_a_plain_pickle_are_unknown(tmp_path: Path) -> None:
    # allowed inside a TorchScript archive, where torch resolves them from the archive's
    # code; a plain pickle naming them makes pickle import a module called __torch__
    data = b"\x80\x02c__torch__.evil\nM\n)\x81."
    result = scan_bytes(tmp_path, data)
    assert "MG102" in rules(result)
    assert result.verdict is Verdict.SUSPICIOUS
