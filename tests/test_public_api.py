"""The public surface is written down once, in `modelguard.__all__`, and stays importable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import modelguard
from modelguard.rules import RULES

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_and_importable() -> None:
    assert modelguard.__all__ == sorted(modelguard.__all__)
    for name in modelguard.__all__:
        assert getattr(modelguard, name) is not None, name


def test_public_names_have_docstrings() -> None:
    for name in modelguard.__all__:
        obj = getattr(modelguard, name)
        if callable(obj):
            assert obj.__doc__, name


def test_import_is_light() -> None:
    """`import modelguard` must not pull in heavy or optional dependencies."""
    code = (
        "import sys, modelguard; "
        "heavy = [m for m in ('torch', 'numpy', 'sigstore', 'huggingface_hub', 'rich', "
        "'cryptography', 'safetensors', 'pydantic') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_readme_documents_every_rule_and_the_quick_start() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for rule_id in RULES:
        assert f"`{rule_id}`" in readme, rule_id
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)
    assert blocks[:2] == [
        "python -m pip install . && modelguard scan examples/",
        "python -m pip install '.[test]' && python -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "python -m pip install '.[test]' && python -m pytest" in ci


def test_bundled_examples_show_a_flagged_and_a_clean_result() -> None:
    report = modelguard.scan(ROOT / "examples")
    verdicts = {Path(f.path).name: f.verdict.value for f in report.files}
    assert verdicts["malicious_exec.pkl"] == "dangerous"
    assert verdicts["disguised.safetensors"] == "dangerous"
    assert verdicts["clean_state_dict.pt"] == "safe"
    assert verdicts["clean_array.npy"] == "safe"
    assert report.complete


def test_guard_and_hub_are_reachable_from_the_package_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, modelguard\n"
        "assert 'modelguard.guard' not in sys.modules and 'modelguard.hub' not in sys.modules\n"
        "assert callable(modelguard.guard.torch_load) and callable(modelguard.hub.scan_hf_cache)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
