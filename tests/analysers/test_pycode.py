"""The custom-code reader: evasions of the dangerous-reference check, and what stays clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelguard
from modelguard.analysers.pycode import dangerous_calls, relative_imports

# (evasion class, source, a name that must be among the hits)
EVASIONS = [
    # 1. references, not only calls
    ("assign", "import os\nrun = os.system\nrun('x')\n", "os.system"),
    ("map", "import os\nlist(map(os.system, ['x']))\n", "os.system"),
    ("thread", "import os, threading\nthreading.Thread(target=os.system).start()\n", "os.system"),
    ("atexit", "import atexit, os\natexit.register(os.system, 'x')\n", "os.system"),
    ("decorator", "import os\n@os.system\ndef f(): pass\n", "os.system"),
    ("lambda default", "import os\nf = lambda s=os.system: s('x')\n", "os.system"),
    ("class attribute", "import os\nclass A:\n    run = os.system\nA.run('x')\n", "os.system"),
    ("from import ref", "from subprocess import Popen as P\nq = [P]\n", "subprocess.Popen"),
    ("type()", "import os\nA = type('A', (), {'r': os.system})\n", "os.system"),
    # 2. dynamic imports with constant names
    ("import_module", "import importlib\nimportlib.import_module('os').system('x')\n",
     "importlib.import_module('os')"),
    ("import_module chain", "import importlib\nimportlib.import_module('os').system('x')\n",
     "os.system"),
    ("import_module alias", "from importlib import import_module as im\nm = im('subprocess')\n"
     "m.run(['x'])\n", "subprocess.run"),
    ("__import__ bound", "m = __import__('os')\nm.popen('x')\n", "os.popen"),
    ("spec_from_file", "import importlib.util\n"
     "s = importlib.util.spec_from_file_location('x', 'p')\n",
     "importlib.util.spec_from_file_location"),
    ("exec_module", "spec.loader.exec_module(mod)\n", "exec_module"),
    # 3. shadowing is per scope
    ("method eval", "class C:\n    def eval(self):\n        return 1\neval('1')\n", "eval"),
    ("method compile", "class C:\n    def compile(self): pass\ncompile('1', 'f', 'exec')\n",
     "compile"),
    ("self rebind", "exec = exec\nexec('x')\n", "exec"),
    ("builtins rebind", "import builtins\neval = builtins.eval\neval('x')\n", "eval"),
    ("other function", "def f(eval):\n    return eval\ndef g():\n    eval('x')\n", "eval"),
    # 4. deny-list gaps
    ("posix", "import posix\nposix.system('x')\n", "os.system"),
    ("nt", "import nt\nnt.spawnv(0, 'x', [])\n", "os.spawnv"),
    ("_posixsubprocess", "import _posixsubprocess\n_posixsubprocess.fork_exec()\n",
     "_posixsubprocess.fork_exec"),
    ("pty.fork", "import pty\npty.fork()\n", "pty.fork"),
    ("multiprocessing", "import multiprocessing as mp\nmp.Process(target=f).start()\n",
     "multiprocessing.Process"),
    ("timeit", "import timeit\ntimeit.timeit('import os', number=1)\n", "timeit.timeit"),
    ("timeit.Timer", "from timeit import Timer\nTimer('x').timeit()\n", "timeit.Timer"),
    ("pydoc", "import pydoc\npydoc.pipepager('x', 'sh')\n", "pydoc.pipepager"),
    ("webbrowser", "import webbrowser as wb\nwb.open_new('u')\n", "webbrowser.open_new"),
    ("urllib3", "import urllib3\nurllib3.PoolManager()\n", "urllib3.PoolManager"),
    ("aiohttp", "import aiohttp\naiohttp.ClientSession()\n", "aiohttp.ClientSession"),
    ("sys.modules", "import sys\nsys.modules['os'].system('x')\n", "os.system"),
    ("sys.modules key", "import sys\nm = sys.modules['subprocess']\n", "sys.modules['subprocess']"),
    ("sys.modules computed", "import sys\nsys.modules[n].system('x')\n",
     "sys.modules[<computed>].system"),
    ("__builtins__ subscript", "f = __builtins__['ex' + 'ec']\n", "__builtins__"),
    ("globals builtins", "g = globals()['__builtins__']\n", "['__builtins__']"),
    ("vars builtins", "import builtins\nvars(builtins)['eval']('x')\n", "vars(builtins)"),
    ("os.__dict__", "import os\nos.__dict__['sys' + 'tem']('x')\n", "os.__dict__"),
    ("builtins.__dict__", "import builtins\nbuiltins.__dict__['exec']('x')\n",
     "builtins.__dict__"),
    ("builtins.getattr", "import builtins, os\nbuiltins.getattr(os, 'sys' + 'tem')('x')\n",
     "getattr(os, <computed>)"),
    ("getattr sys.modules", "import sys\ngetattr(sys, 'modules')\n", "getattr(sys, 'modules')"),
    ("methodcaller", "import operator, os\noperator.methodcaller('system', 'x')(os)\n",
     "operator.methodcaller('system')"),
    ("attrgetter", "from operator import attrgetter\nattrgetter('popen')(os)('x')\n",
     "operator.attrgetter('popen')"),
    ("platform.os", "import platform\nplatform.os.system('x')\n", "os.system"),
    ("osp.os", "import os.path as osp\nosp.os.system('x')\n", "os.system"),
    ("any X.subprocess", "self.subprocess.run(['x'])\n", "subprocess.run"),
    ("torch.load", "import torch\ntorch.load('x.bin')\n", "torch.load (weights_only not True)"),
    ("torch.load False", "import torch\ntorch.load('x', weights_only=False)\n",
     "torch.load (weights_only not True)"),
    ("numpy.load", "import numpy as np\nnp.load('x.npy', allow_pickle=True)\n",
     "numpy.load (allow_pickle)"),
    # file writes outside the model folder
    ("open ~", "import os\nopen(os.path.expanduser('~/.bashrc'), 'a').write('x')\n",
     "open(<absolute path>, 'a')"),
    ("open abs", "open('/etc/cron.d/x', mode='w')\n", "open(<absolute path>, 'w')"),
    ("open f-string", "open(f'/home/{u}/.profile', 'a')\n", "open(<absolute path>, 'a')"),
    ("open join home", "import os\nopen(os.path.join(os.environ['HOME'], '.x'), 'w')\n",
     "open(<absolute path>, 'w')"),
    ("pathlib", "import pathlib\npathlib.Path('/tmp/x').write_text('y')\n",
     "Path.write_text (absolute path)"),
    ("pathlib home", "from pathlib import Path\n(Path.home() / '.bashrc').write_text('y')\n",
     "Path.write_text (absolute path)"),
    ("shutil.copy", "import shutil\nshutil.copy('a', '/usr/lib/python3/x.pth')\n",
     "shutil.copy (to an absolute path)"),
    ("shutil.move ~", "import shutil, os\nshutil.move('a', os.path.expanduser('~/x'))\n",
     "shutil.move (to an absolute path)"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), [e[1:] for e in EVASIONS],
                         ids=[e[0] for e in EVASIONS])  # fmt: skip
def test_evasions_are_flagged(source: str, expected: str) -> None:
    calls, ok = dangerous_calls(source.encode())
    assert ok
    assert expected in [c for _, c in calls]


BENIGN = [
    ("os.path", "import os\np = os.path.join(os.path.dirname(__file__), 'x')\n"),
    ("environ", "import os\nv = os.environ.get('X', '1')\nos.makedirs(d, exist_ok=True)\n"),
    ("logging", "import logging\nlogger = logging.getLogger(__name__)\nlogger.info('x')\n"),
    ("method eval", "class M(nn.Module):\n    def eval(self):\n        return super().eval()\n"),
    ("model methods", "model.eval()\nm = torch.compile(model)\nre.compile('x')\n"),
    ("module def", "def compile(x):\n    return x\ny = compile(1)\n"),
    ("param", "def f(compile=False):\n    if compile:\n        return compile\n"),
    ("torch.load safe", "import torch\ntorch.load('x', weights_only=True)\n"),
    ("numpy.load default", "import numpy as np\nnp.load('x.npy')\n"),
    ("numpy.load False", "import numpy as np\nnp.load('x.npy', allow_pickle=False)\n"),
    ("import_module benign", "import importlib\nm = importlib.import_module('math')\n"),
    ("sys.modules benign", "import sys\nm = sys.modules.get(cls.__module__)\n"
     "x = sys.modules['json']\n"),
    ("save_vocabulary", "import os, json\nwith open(os.path.join(d, 'v.json'), 'w') as f:\n"
     "    json.dump(v, f)\n"),
    ("relative write", "open('vocab.txt', 'w')\nPath(save_dir).write_text('x')\n"),
    ("read abs", "open('/etc/hostname').read()\nopen(os.path.expanduser('~/x'), 'r')\n"),
    ("subprocess constants", "import subprocess\nx = subprocess.PIPE\n"
     "e = subprocess.CalledProcessError\n"),
    ("multiprocessing pool", "from multiprocessing import Pool, cpu_count\nn = cpu_count()\n"
     "with Pool(2) as p:\n    p.map(f, xs)\n"),
    ("typing", "from typing import Optional\nimport math, torch\nx: Optional[int] = None\n"),
]  # fmt: skip


@pytest.mark.parametrize("source", [b[1] for b in BENIGN], ids=[b[0] for b in BENIGN])
def test_ordinary_code_is_clean(source: str) -> None:
    assert dangerous_calls(source.encode()) == ([], True)


def test_hits_are_deduplicated_and_lined() -> None:
    calls, ok = dangerous_calls("import os\nos.system('a'); os.system('b')\nos.system\n")
    assert ok
    assert calls == [(2, "os.system"), (3, "os.system")]


@pytest.mark.parametrize(
    ("prefix", "line"),
    [(b"\xef\xbb\xbf", 3), (b"# -*- coding: latin-1 -*-\n# \xe9\n", 5), (b"", 3)],
    ids=["bom", "cookie", "plain"],
)
def test_bytes_honour_bom_and_cookie(prefix: bytes, line: int) -> None:
    source = prefix + b"from .utils import go\nimport os\nos.system('x')\n"
    assert dangerous_calls(source) == ([(line, "os.system")], True)
    assert relative_imports(source) == ["utils.py"]


# One folder per evasion class, scanned end to end: MG485 at the default policy.
@pytest.mark.parametrize(
    "name", ["assign", "atexit", "import_module", "method eval", "posix", "platform.os", "open ~"]
)
def test_evasion_folders_fail(tmp_path: Path, name: str) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    source = next(e[1] for e in EVASIONS if e[0] == name)
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(tmp_path / "model.safetensors"))
    config = {"model_type": "tiny", "auto_map": {"AutoModel": "modeling_tiny.TinyModel"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "modeling_tiny.py").write_text(source + "class TinyModel:\n    pass\n")
    report = modelguard.scan(tmp_path)
    res = next(r for r in report.files if r.path.endswith("config.json"))
    assert "MG485" in [f.rule_id for f in res.findings]


_SNIPPETS = st.sampled_from(
    [e[1] for e in EVASIONS]
    + [b[1] for b in BENIGN]
    + ["def eval(self):", "    return eval", "class A:", "lambda x=os.system: x", "(", "\x00"]
)


@given(st.lists(_SNIPPETS | st.text(max_size=10), max_size=8).map("\n".join), st.booleans())
@settings(max_examples=200, deadline=None)
def test_reader_fuzz(source: str, bom: bool) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + source.encode("utf-8", "surrogatepass")
    calls, _ = dangerous_calls(data)
    assert all(isinstance(line, int) and isinstance(call, str) for line, call in calls)
    assert all(rel.endswith(".py") for rel in relative_imports(data))


@pytest.mark.parametrize("source", ["x = f" + "()" * 3000, "m = __import__" + "('os')" * 3000])
def test_deep_call_chains_do_not_raise(source: str) -> None:
    calls, ok = dangerous_calls(source + "\n")
    assert isinstance(calls, list)
    assert not ok


@pytest.mark.parametrize(
    ("source", "files"),
    [
        ("import importlib\nm = importlib.import_module('.helper', __package__)\n", ["helper.py"]),
        ("from importlib import import_module\nimport_module('.a.b', __package__)\n", ["a/b.py"]),
        ("import importlib\nimportlib.import_module('..up', __package__)\n", []),
        ("import importlib\nimportlib.import_module('json')\n", []),
    ],
)
def test_constant_relative_import_module_names_a_sibling(source: str, files: list[str]) -> None:
    assert relative_imports(source) == files


@pytest.mark.parametrize(
    ("source", "call"),
    [
        ("import tempfile\ntempfile._os.system('id')\n", "os.system"),
        ("import random\nrandom._os.popen('id')\n", "os.popen"),
        ("import pkgutil\npkgutil.resolve_name('os:system')('id')\n", "pkgutil.resolve_name"),
        (
            "import logging.config\nlogging.config.dictConfig({'version': 1, 'handlers': "
            "{'h': {'()': 'os.system', 'command': 'id'}}})\n",
            "logging.config.dictConfig",
        ),
    ],
)
def test_private_aliases_and_name_resolvers_are_reported(source: str, call: str) -> None:
    calls, ok = dangerous_calls(source.encode())
    assert ok and call in {c for _, c in calls}
