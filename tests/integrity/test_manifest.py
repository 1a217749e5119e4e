"""Tests for modelguard.manifest and modelguard.listing.

Compatibility with the reference: a manifest built here must have the same names, digests and
root digest as `model_signing.hashing` (test-only dependency), for file and shard
serializations, and the statements model-signing writes (quirks included) must read back.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from integrity.shared_dir import OMS_DIR, needs_oms
from modelguard.errors import BundleError, ConfigError, LegacyFormatError, ManifestError
from modelguard.manifest import (
    BINDING_ANNOTATION,
    LEGACY_PREDICATE_TYPE,
    PREDICATE_TYPE,
    SIZES_ANNOTATION,
    Manifest,
    Resource,
    Serialization,
    build_manifest,
    check_name,
    list_model,
)

blake3 = pytest.importorskip("blake3")
ms_hashing = pytest.importorskip("model_signing.hashing")


# -- fixtures -----------------------------------------------------------------------------------


def make_model(root: Path) -> Path:
    """A model whose names exercise model-signing's ordering (path parts, numeric offsets)."""
    rng = random.Random(66)
    files = {
        "config.json": b'{"a": 1}',
        "a.txt": rng.randbytes(12_345),  # 13 shards of 1000: "a.txt:10000:11000" < ":2000:"
        "a/b": b"q\n",  # sorts before "a.txt" by path parts, after it as a string
        "sub/deeper/w:1.bin": rng.randbytes(2500),  # ':' in the file name
        "sub/empty": b"",
        "caf\u00e9.json": b"{}",
        ".gitattributes": b"*.bin lfs\n",
        ".git/config": b"[core]\n",
        "sub/.gitignore": b"x\n",  # not top level: hashed
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def ms_config(algorithm: str, shard_size: int | None, allow_symlinks: bool = False) -> Any:
    config = ms_hashing.Config()
    if shard_size is None:
        config.use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=allow_symlinks)
    else:
        config.use_shard_serialization(
            hashing_algorithm=algorithm, shard_size=shard_size, allow_symlinks=allow_symlinks
        )
    return config.set_allow_symlinks(allow_symlinks)


def ms_statement(model: Path, algorithm: str, shard_size: int | None) -> dict[str, Any]:
    """The statement model-signing would sign, as JSON (through its protobuf Struct)."""
    from google.protobuf import json_format
    from model_signing._signing import signing

    manifest = ms_config(algorithm, shard_size).hash(model)
    result: dict[str, Any] = json_format.MessageToDict(signing.Payload(manifest).statement.pb)
    return result


def reference(algorithm: str, data: bytes) -> str:
    if algorithm == "blake3":
        return str(blake3.blake3(data).hexdigest())
    return hashlib.new(algorithm, data).hexdigest()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model")


# -- byte-for-byte compatibility with model_signing.hashing -------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "shard_size"),
    [
        ("sha256", None),
        ("blake2", None),
        ("blake3", None),
        ("sha256", 1000),
        ("blake2", 1000),
        ("sha256", 4096),
        ("sha256", 1_000_000_000),
    ],
)
def test_same_digests_and_root_as_model_signing(
    model: Path, algorithm: str, shard_size: int | None
) -> None:
    ours = build_manifest(model, algorithm=algorithm, shard_size=shard_size, workers=3)
    theirs = ms_config(algorithm, shard_size).hash(model)
    expected = [(r.identifier, r.digest.digest_hex) for r in theirs.resource_descriptors()]
    assert [(r.name, r.digest) for r in ours.resources] == expected
    statement = ms_statement(model, algorithm, shard_size)
    assert ours.root_digest() == statement["subject"][0]["digest"]["sha256"]
    assert ours.to_statement()["subject"][0]["digest"] == statement["subject"][0]["digest"]
    assert ours.model_name == "model"


def test_blake3_shards_hash_the_byte_ranges(model: Path) -> None:
    # model-signing silently falls back to whole files for blake3 shards; ours are real shards.
    manifest = build_manifest(model, algorithm="blake3", shard_size=1000)
    data = (model / "a.txt").read_bytes()
    shards = manifest.by_file()["a.txt"]
    assert len(shards) == 13
    for resource in shards:
        start, end = resource.shard or (0, 0)
        assert resource.digest == reference("blake3", data[start:end])


def test_model_signing_reads_our_statement(model: Path) -> None:
    from model_signing._signing import signing

    ours = build_manifest(model)
    theirs = signing.dsse_payload_to_manifest(ours.to_statement())
    assert theirs == ms_config("sha256", None).hash(model)


@pytest.mark.parametrize(
    ("algorithm", "shard_size"), [("sha256", None), ("blake2", None), ("sha256", 1000)]
)
def test_we_read_model_signing_statements(
    model: Path, algorithm: str, shard_size: int | None
) -> None:
    statement = ms_statement(model, algorithm, shard_size)
    if shard_size is not None:  # the quirks are really there
        assert isinstance(statement["predicate"]["serialization"]["shard_size"], float)
        assert statement["predicate"]["resources"][0]["algorithm"].endswith("-sharded-1000")
    manifest = Manifest.from_statement(statement)
    ours = build_manifest(model, algorithm=algorithm, shard_size=shard_size)
    assert manifest.resources == tuple(
        Resource(r.name, r.digest, r.algorithm, None, r.sharded) for r in ours.resources
    )
    assert manifest.serialization == ours.serialization
    if shard_size is not None:
        colon = manifest.by_file()["sub/deeper/w:1.bin"]
        assert [r.shard for r in colon] == [(0, 1000), (1000, 2000), (2000, 2500)]
        assert colon[0].file_name == "sub/deeper/w:1.bin"


def test_allowed_link_digest_matches_model_signing(tmp_path: Path) -> None:
    model = tmp_path / "m"
    (model / "real").mkdir(parents=True)
    (model / "real" / "w.bin").write_bytes(b"weights" * 100)
    (model / "w.bin").symlink_to("real/w.bin")
    ours = build_manifest(model, allow_links=True)
    theirs = ms_config("sha256", None, allow_symlinks=True).hash(model)
    expected = [(r.identifier, r.digest.digest_hex) for r in theirs.resource_descriptors()]
    assert [(r.name, r.digest) for r in ours.resources] == expected
    assert ours.serialization.allow_symlinks


# -- statements: round trip, quirks, failures ---------------------------------------------------


@pytest.mark.parametrize("shard_size", [None, 1000])
def test_round_trip(model: Path, shard_size: int | None) -> None:
    manifest = build_manifest(
        model, shard_size=shard_size, annotations={"modelguard.revision": "abc"}
    )
    statement = manifest.to_statement()
    again = Manifest.from_statement(json.loads(json.dumps(statement)))
    assert again == manifest
    assert again.to_statement() == statement
    annotations = statement["subject"][0]["annotations"]
    assert annotations[BINDING_ANNOTATION] == manifest.binding_digest()
    assert json.loads(annotations[SIZES_ANNOTATION])["sub/empty"] == 0
    assert statement["predicateType"] == PREDICATE_TYPE
    assert all(
        set(r) == {"name", "algorithm", "digest"} for r in statement["predicate"]["resources"]
    )
    assert all(r["algorithm"] == "sha256" for r in statement["predicate"]["resources"])
    serialization = statement["predicate"]["serialization"]
    assert serialization["ignore_paths"] == sorted(serialization["ignore_paths"])
    assert type(serialization.get("shard_size", 0)) is int


def test_shard_mode_empty_file_has_no_shard(model: Path) -> None:
    manifest = build_manifest(model, shard_size=1000)
    assert not any(r.file_name == "sub/empty" for r in manifest.resources)
    assert manifest.by_file()["sub/empty"] == []
    assert manifest.sizes()["sub/empty"] == 0
    files_mode = build_manifest(model)
    assert files_mode.by_file()["sub/empty"][0].digest == reference("sha256", b"")


def test_resource_sizes_and_by_file(model: Path) -> None:
    manifest = build_manifest(model, shard_size=1000)
    shards = manifest.by_file()["a.txt"]
    assert [r.shard for r in shards][:3] == [(0, 1000), (1000, 2000), (2000, 3000)]
    assert {r.size for r in shards} == {12_345}
    assert manifest.by_file()["a/b"][0].file_name == "a/b"


def statement_for(resources: list[dict[str, Any]], **serialization: Any) -> dict[str, Any]:
    hasher = hashlib.sha256()
    for r in resources:
        with contextlib.suppress(ValueError):  # a malformed digest is the point of some tests
            hasher.update(bytes.fromhex(r.get("digest", "")))
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": hasher.hexdigest()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": resources,
            "serialization": {"method": "files", "hash_type": "sha256", **serialization},
        },
    }


D1, D2 = "11" * 32, "22" * 32


def res(name: str, digest: str = D1, algorithm: str = "sha256") -> dict[str, str]:
    return {"name": name, "algorithm": algorithm, "digest": digest}


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        (statement_for([res("a"), res("a", D2)]), "MG305"),  # duplicate
        (statement_for([res("a", "zz" * 32)]), "MG305"),  # not hex
        (statement_for([res("a", "11" * 31)]), "MG305"),  # wrong length
        (statement_for([res("a")], method="tree"), "MG305"),
        (statement_for([res("a")], hash_type="md5"), "MG305"),
        (statement_for([res("a", algorithm="blake3")]), "MG305"),  # algorithm != hash_type
        (statement_for([{"name": "a", "algorithm": "sha256"}]), "MG305"),  # no digest
        (statement_for([res("a:0:10")], method="shards"), "MG305"),  # no shard_size
        (
            statement_for([res("a:0:10"), res("a:20:30", D2)], method="shards", shard_size=10),
            "MG305",
        ),
        (statement_for([res("a:0:5"), res("a:5:10", D2)], method="shards", shard_size=10), "MG305"),
        (statement_for([res("a")], method="shards", shard_size=10), "MG305"),  # not a shard name
        (statement_for([]), "MG316"),
        (statement_for([res("a")], ignore_paths=["../outside"]), "MG305"),
        (statement_for([res("a")], ignore_paths="model.sig"), "MG305"),
        (statement_for([res("../a")]), "MG306"),
        (statement_for([res("/etc/passwd")]), "MG306"),
        (statement_for([res("a\\b")]), "MG306"),
        (statement_for([res("a\x00b")]), "MG306"),
        (statement_for([res("a//b")]), "MG306"),
        (statement_for([res("./a")]), "MG306"),
        (statement_for([res("../a:0:10")], method="shards", shard_size=10), "MG306"),
        (statement_for([res("A.bin"), res("a.bin", D2)]), "MG306"),
        (statement_for([res("caf\u00e9"), res("cafe\u0301", D2)]), "MG306"),
        (statement_for([res("Dir/x"), res("dir/y", D2)]), "MG306"),
    ],
)
def test_bad_statements(statement: dict[str, Any], rule: str) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.from_statement(statement)
    assert info.value.rule_id == rule


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update({"_type": "https://in-toto.io/Statement/v0.1"}),
        lambda s: s.update({"predicateType": "https://example.com/other"}),
    ],
)
def test_wrong_statement_or_predicate_type(change: Any) -> None:
    statement = statement_for([res("a")])
    change(statement)
    with pytest.raises(BundleError) as info:
        Manifest.from_statement(statement)
    assert info.value.rule_id == "MG303"


def test_root_digest_must_recompute(model: Path) -> None:
    statement = build_manifest(model).to_statement()
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    with pytest.raises(ManifestError, match="root digest") as info:
        Manifest.from_statement(statement)
    assert info.value.rule_id == "MG305"


def test_listed_order_root_is_accepted() -> None:
    # model-signing's verifier hashes the resources in the order listed: so do we, as a fallback.
    statement = statement_for([res("b", D2), res("a")])
    manifest = Manifest.from_statement(statement)
    assert [r.name for r in manifest.resources] == ["a", "b"]


def test_binding_covers_names(model: Path) -> None:
    manifest = build_manifest(model)
    statement = manifest.to_statement()
    # Renaming keeps the OMS root digest (names are not in it) but breaks our binding.
    first = statement["predicate"]["resources"][0]
    assert first["name"] == "a/b"
    first["name"] = "a/a"
    annotations = statement["subject"][0]["annotations"]
    annotations[SIZES_ANNOTATION] = annotations[SIZES_ANNOTATION].replace('"a/b"', '"a/a"')
    with pytest.raises(ManifestError, match=BINDING_ANNOTATION) as info:
        Manifest.from_statement(statement)
    assert info.value.rule_id == "MG305"
    sizes = json.loads(manifest.to_statement()["subject"][0]["annotations"][SIZES_ANNOTATION])
    statement = manifest.to_statement()
    sizes["config.json"] += 1
    statement["subject"][0]["annotations"][SIZES_ANNOTATION] = json.dumps(sizes)
    with pytest.raises(ManifestError, match="does not match"):
        Manifest.from_statement(statement)


def test_sizes_must_list_the_signed_files(model: Path) -> None:
    statement = build_manifest(model).to_statement()
    annotations = statement["subject"][0]["annotations"]
    del annotations[BINDING_ANNOTATION]
    sizes = json.loads(annotations[SIZES_ANNOTATION])
    del sizes["config.json"]
    annotations[SIZES_ANNOTATION] = json.dumps(sizes)
    with pytest.raises(ManifestError, match="does not list"):
        Manifest.from_statement(statement)


def test_tolerates_model_signing_quirks() -> None:
    digests = {"xy:z.bin:0:10": D1, "xy:z.bin:10:15": D2}
    statement = statement_for(
        [res(n, d, "sha256-sharded-10") for n, d in reversed(digests.items())],
        method="shards",
        shard_size=10.0,
        allow_symlinks=False,
    )
    statement["predicate"]["serialization"] = dict(
        reversed(list(statement["predicate"]["serialization"].items()))
    )
    hasher = hashlib.sha256(bytes.fromhex(D1) + bytes.fromhex(D2))
    statement["subject"][0]["digest"]["sha256"] = hasher.hexdigest()
    manifest = Manifest.from_statement(statement)
    assert manifest.serialization == Serialization("shards", "sha256", 10)
    assert [r.shard for r in manifest.resources] == [(0, 10), (10, 15)]
    assert {r.file_name for r in manifest.resources} == {"xy:z.bin"}
    clean = manifest.to_statement()["predicate"]
    assert clean["serialization"]["shard_size"] == 10
    assert {r["algorithm"] for r in clean["resources"]} == {"sha256"}


def test_sharded_algorithm_must_match_shard_size() -> None:
    statement = statement_for(
        [res("a:0:10", algorithm="sha256-sharded-99")], method="shards", shard_size=10
    )
    with pytest.raises(ManifestError, match="algorithm"):
        Manifest.from_statement(statement)


def legacy_statement() -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {
                "name": name,
                "digest": {"sha256": digest},
                "annotations": {"actual_hash_algorithm": "file-sha256"},
            }
            for name, digest in (("signme-1", D1), ("signme-2", D2))
        ],
        "predicateType": LEGACY_PREDICATE_TYPE,
        "predicate": {"unused": "Unused, just passed due to API requirements"},
    }


def test_legacy_predicate_needs_the_switch() -> None:
    with pytest.raises(LegacyFormatError) as info:
        Manifest.from_statement(legacy_statement())
    assert info.value.rule_id == "MG304"
    manifest = Manifest.from_statement(legacy_statement(), allow_legacy=True)
    assert manifest.legacy
    assert [(r.name, r.digest) for r in manifest.resources] == [("signme-1", D1), ("signme-2", D2)]
    bad = legacy_statement()
    bad["subject"][0]["name"] = "../escape"
    with pytest.raises(ManifestError) as err:
        Manifest.from_statement(bad, allow_legacy=True)
    assert err.value.rule_id == "MG306"
    other = legacy_statement()
    other["subject"][1]["annotations"]["actual_hash_algorithm"] = "sha256-sharded"
    with pytest.raises(ManifestError):
        Manifest.from_statement(other, allow_legacy=True)


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("model.safetensors", False),
        ("sub/dir/w:1.bin", False),
        ("caf\u00e9", False),
        ("", True),
        ("/abs", True),
        ("../up", True),
        ("a/../b", True),
        ("a/./b", True),
        ("a//b", True),
        ("a/", True),
        ("a\\b", True),
        ("a\x00b", True),
        ("a\nb", True),
        ("C:evil", True),
        ("bad\udcff", True),  # undecodable byte (surrogateescape)
    ],
)
def test_check_name(name: str, unsafe: bool) -> None:
    assert (check_name(name) is not None) == unsafe


# -- listing: links, special files, names, ignore rules -----------------------------------------


def rules(listing: Any) -> dict[str, str]:
    return {p.name: p.rule_id for p in listing.problems}


def test_links_refused_by_default(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"w")
    (tmp_path / "link.bin").symlink_to("w.bin")
    listing = list_model(tmp_path)
    assert rules(listing) == {"link.bin": "MG314"}
    assert dict(listing.problems[0].evidence)["target"] == "w.bin"
    assert [f.name for f in listing.files] == ["w.bin"]
    with pytest.raises(ManifestError) as info:
        build_manifest(tmp_path)
    assert info.value.rule_id == "MG314"


def test_links_inside_root_allowed_with_switch(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "w.bin").write_bytes(b"w")
    (tmp_path / "link.bin").symlink_to("real/w.bin")
    listing = list_model(tmp_path, allow_links=True)
    assert listing.problems == ()
    link = next(f for f in listing.files if f.name == "link.bin")
    assert link.link_target == str((tmp_path / "real" / "w.bin").resolve())
    assert link.identity.ino == (tmp_path / "real" / "w.bin").stat().st_ino


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda root, out: (root / "x").symlink_to(out / "secret"), "MG314"),  # escapes
        (lambda root, out: (root / "x").symlink_to("../outside/secret"), "MG314"),
        (lambda root, out: (root / "x").symlink_to(root / "d"), "MG314"),  # folder link
        (lambda root, out: (root / "x").symlink_to(out), "MG314"),  # folder outside
        (lambda root, out: (root / "x").symlink_to("missing"), "MG314"),  # dangling
        (lambda root, out: (root / "x").symlink_to("x"), "MG314"),  # cycle
        (lambda root, out: os.mkfifo(root / "x"), "MG315"),
        (lambda root, out: (root / "x").symlink_to("fifo"), "MG315"),  # link to a FIFO
    ],
)
def test_refused_entries(tmp_path: Path, make: Any, rule: str) -> None:
    root, out = tmp_path / "model", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"f")
    out.mkdir()
    (out / "secret").write_bytes(b"s")
    os.mkfifo(root / "fifo")
    make(root, out)
    for allow in (False, True):
        listing = list_model(root, allow_links=allow, ignore_paths=["fifo"])
        expected = "MG314" if not allow and (root / "x").is_symlink() else rule
        assert rules(listing) == {"x": expected}
        assert "x" not in {f.name for f in listing.files}


def test_socket_is_not_regular(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert rules(list_model(tmp_path)) == {"s.sock": "MG315"}


def test_name_collisions_on_disk(tmp_path: Path) -> None:
    (tmp_path / "A.bin").write_bytes(b"1")
    (tmp_path / "a.bin").write_bytes(b"2")
    (tmp_path / "caf\u00e9").write_bytes(b"3")
    (tmp_path / "cafe\u0301").write_bytes(b"4")
    listing = list_model(tmp_path)
    assert set(rules(listing).values()) == {"MG306"}
    assert len(listing.problems) == 2


def test_undecodable_and_control_names(tmp_path: Path) -> None:
    os.close(os.open(os.fsencode(tmp_path) + b"/bad\xff", os.O_CREAT | os.O_WRONLY, 0o600))
    (tmp_path / "new\nline").write_bytes(b"x")
    (tmp_path / "ok").write_bytes(b"x")
    listing = list_model(tmp_path)
    assert sorted(p.rule_id for p in listing.problems) == ["MG306", "MG306"]
    assert [f.name for f in listing.files] == ["ok"]


def test_ignore_rules(model: Path) -> None:
    (model / "cache").mkdir()
    (model / "cache" / "x").write_bytes(b"x")
    (model / "cache" / "link").symlink_to("/etc/passwd")  # not descended: no problem
    (model / ".git" / "hooks").symlink_to("/tmp")
    (model / "run.tmp").write_bytes(b"t")
    (model / "sub" / "log.txt").write_bytes(b"t")
    listing = list_model(model, ignore_paths=["cache/", "*.tmp", "./sub/*.txt"])
    assert listing.problems == ()
    assert listing.ignored == (".git", ".gitattributes", "cache", "run.tmp", "sub/log.txt")
    names = [f.name for f in listing.files]
    assert "sub/.gitignore" in names  # default ignores are top level only
    assert names == sorted(names)
    everything = list_model(model, ignore_git_paths=False, ignore_paths=["cache", "*.tmp"])
    assert {".gitattributes", ".git/config"} <= {f.name for f in everything.files}
    assert rules(everything) == {".git/hooks": "MG314"}


@pytest.mark.parametrize("pattern", ["../x", "/abs", "", "a/../../b"])
def test_bad_ignore_pattern(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ConfigError):
        list_model(tmp_path, ignore_paths=[pattern])


def test_manifest_records_ignore_paths(model: Path) -> None:
    manifest = build_manifest(model, ignore_paths=["model.sig"])
    assert manifest.serialization.ignore_paths == (
        ".git",
        ".gitattributes",
        ".github",
        ".gitignore",
        "model.sig",
    )


def hf_cache(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "hub" / "models--org--name"
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / "0123abcd"
    (snapshot / "sub").mkdir(parents=True)
    blobs.mkdir()
    for name, data in (("b1", b"weights"), ("b2", b"{}")):
        (blobs / name).write_bytes(data)
    (snapshot / "model.safetensors").symlink_to("../../blobs/b1")
    (snapshot / "sub" / "config.json").symlink_to("../../../blobs/b2")
    return repo, snapshot


def test_hugging_face_snapshot_links(tmp_path: Path) -> None:
    _repo, snapshot = hf_cache(tmp_path)
    assert set(rules(list_model(snapshot)).values()) == {"MG314"}
    listing = list_model(snapshot, allow_links=True)
    assert listing.problems == ()
    assert [f.name for f in listing.files] == ["model.safetensors", "sub/config.json"]
    manifest = build_manifest(snapshot, allow_links=True)
    assert manifest.by_file()["model.safetensors"][0].digest == reference("sha256", b"weights")
    single = list_model(snapshot / "model.safetensors", allow_links=True)
    assert single.single_file and [f.name for f in single.files] == ["model.safetensors"]
    # A link into another repository's blobs, or a nested folder called blobs, is refused.
    other = tmp_path / "hub" / "models--evil--x" / "blobs"
    other.mkdir(parents=True)
    (other / "b").write_bytes(b"evil")
    (snapshot / "evil.bin").symlink_to(other / "b")
    assert rules(list_model(snapshot, allow_links=True)) == {"evil.bin": "MG314"}


def test_single_file_model(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    listing = list_model(path)
    assert listing.single_file and [f.name for f in listing.files] == ["w.bin"]
    manifest = build_manifest(path)
    assert manifest.model_name == "w.bin"
    assert [r.name for r in manifest.resources] == ["w.bin"]
    theirs = ms_config("sha256", None).hash(path)
    assert [r.digest.digest_hex for r in theirs.resource_descriptors()] == [
        r.digest for r in manifest.resources
    ]


def test_empty_model_refused(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert list_model(tmp_path / "empty").files == ()
    with pytest.raises(ManifestError) as info:
        build_manifest(tmp_path / "empty")
    assert info.value.rule_id == "MG316"


def test_build_manifest_progress_and_options(model: Path) -> None:
    calls: list[tuple[int, int]] = []
    build_manifest(model, shard_size=1000, progress=lambda d, t: calls.append((d, t)))
    assert max(calls)[0] == calls[0][1] == sum(f.size for f in list_model(model).files)
    with pytest.raises(ConfigError):
        build_manifest(model, shard_size=0)
    with pytest.raises(ConfigError):
        build_manifest(model, algorithm="md5")


# -- real signatures made by released model-signing versions ------------------------------------


def vector_statement(name: str) -> dict[str, Any]:
    bundle = json.loads((OMS_DIR / "vectors" / name / "model.sig").read_bytes())
    envelope = bundle.get("dsseEnvelope", bundle)
    result: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return result


def vector_names() -> list[str]:
    folder = OMS_DIR / "vectors"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@needs_oms
@pytest.mark.parametrize("name", vector_names())
def test_vectors(name: str) -> None:
    statement = vector_statement(name)
    folder = OMS_DIR / "vectors" / name
    if name.startswith("v0.2.0"):
        with pytest.raises(LegacyFormatError):
            Manifest.from_statement(statement)
        manifest = Manifest.from_statement(statement, allow_legacy=True)
        assert manifest.legacy
    else:
        manifest = Manifest.from_statement(statement)
        assert manifest.root_digest() == statement["subject"][0]["digest"]["sha256"]
    single = [r.name for r in manifest.resources] == ["."]
    target = folder / "signme-1" if single else folder
    ours = build_manifest(target, ignore_paths=[] if single else ["model.sig", "ignore-me"])
    assert [r.digest for r in ours.resources] == [r.digest for r in manifest.resources]
    if not manifest.legacy:
        assert ours.root_digest() == manifest.root_digest()


@needs_oms
def test_spec_wrong_predicate_vector() -> None:
    path = OMS_DIR / "spec" / "test-vectors" / "v1.0" / "invalid-payload"
    bundle = json.loads((path / "wrong-predicate.bundle.json").read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    with pytest.raises(BundleError):
        Manifest.from_statement(statement)


def test_manifest_is_a_value() -> None:
    resources = (Resource("b", D2, "sha256"), Resource("a", D1, "sha256"))
    manifest = Manifest("m", resources, Serialization("files", "sha256"))
    assert [r.name for r in manifest.resources] == ["a", "b"]
    assert manifest.root_digest() == hashlib.sha256(bytes.fromhex(D1 + D2)).hexdigest()
    assert copy.deepcopy(manifest) == manifest
