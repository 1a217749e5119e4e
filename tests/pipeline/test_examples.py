"""The CI examples in `examples/ci/`: the GitHub Actions workflow, the gate and the audit.

The workflow's `modelguard` commands are taken from the YAML and run against a fixture
repository, so the example cannot drift from the CLI.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from .conftest import (
    key_policy,
    keygen,
    sign,
    subprocess_env,
    write_clean_model,
    write_malicious,
)

Run = Callable[..., tuple[int, str, str]]
CI = Path(__file__).resolve().parents[2] / "examples" / "ci"


# --------------------------------------------------------------------------------------------
# the GitHub Actions workflow


def _workflow() -> dict[Any, Any]:
    doc = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _steps(job: str) -> list[dict[str, Any]]:
    steps = _workflow()["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def _modelguard_commands(job: str) -> list[list[str]]:
    """The `run:` lines of `job` that call modelguard, with the workflow's env expanded."""
    env = {str(k): str(v) for k, v in _workflow().get("env", {}).items()}
    commands = []
    for step in _steps(job):
        for line in str(step.get("run", "")).splitlines():
            line = re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], line.strip())
            if line.startswith("modelguard "):
                commands.append(shlex.split(line))
    return commands


def test_workflow_uploads_sarif_even_when_the_scan_fails() -> None:
    doc = _workflow()
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "pull_request" in triggers and "push" in triggers
    job = doc["jobs"]["scan"]
    assert job["permissions"]["security-events"] == "write"
    steps = _steps("scan")
    [scan_cmd] = _modelguard_commands("scan")
    assert scan_cmd[:2] == ["modelguard", "scan"]
    assert scan_cmd[scan_cmd.index("--format") + 1] == "sarif"
    sarif = scan_cmd[scan_cmd.index("-o") + 1]
    [upload] = [s for s in steps if str(s.get("uses", "")).startswith("github/codeql-action/")]
    assert upload["uses"].split("@")[0] == "github/codeql-action/upload-sarif"
    assert upload["if"] == "always()"
    assert upload["with"]["sarif_file"] == sarif
    assert steps.index(upload) > next(
        i for i, s in enumerate(steps) if "modelguard scan" in s.get("run", "")
    )
    assert any("pip install modelguard" in s.get("run", "") for s in steps)


def _check_github_sarif(log: dict[str, Any]) -> None:
    """The fields GitHub code scanning requires (and the SARIF schema when one is at hand)."""
    schema_file = os.environ.get("SARIF_SCHEMA")
    if schema_file:
        import jsonschema

        jsonschema.validate(log, json.loads(Path(schema_file).read_text()))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "modelguard"
    rules = {rule["id"]: rule for rule in driver.get("rules", [])}
    for rule in rules.values():
        for key in ("shortDescription", "fullDescription", "help"):
            assert rule[key]["text"]
    for result in run["results"]:
        assert result["ruleId"] in rules
        assert result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"]
        assert not location["artifactLocation"]["uri"].startswith("/")
        assert location["region"]["startLine"] >= 1
        assert result["partialFingerprints"]


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, Path]:
    """A repository as the workflow sees it: a signed model folder and the policy file."""
    root = tmp_path / "repo"
    private, public = keygen(tmp_path, "release")
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "release.pub").write_bytes(public.read_bytes())
    key_policy(root / "modelguard.toml", (Path("keys/release.pub"), "release key"))
    models = _workflow()["env"]["MODEL_DIR"]
    model = write_clean_model(root / models)
    sign(model, private)
    return {"root": root, "model": model, "private": private}


def test_workflow_commands_pass_on_a_clean_signed_model(repo: dict[str, Path], cli: Run) -> None:
    for argv in _modelguard_commands("scan") + _modelguard_commands("gate"):
        code, _, err = cli(argv[1:], cwd=repo["root"])
        assert code == 0, (argv, err)
    _check_github_sarif(json.loads((repo["root"] / "modelguard.sarif").read_text()))
    gate = json.loads((repo["root"] / "gate.json").read_text())
    assert gate["verdict"] == "safe"
    assert any("verified by trusted signer" in note for note in gate["notes"])


def test_workflow_commands_fail_on_a_malicious_model(
    repo: dict[str, Path], canary: Path, cli: Run
) -> None:
    write_malicious(repo["model"], canary, "extra.pkl")
    sign(repo["model"], repo["private"])  # even signed by the trusted key
    [scan_cmd] = _modelguard_commands("scan")
    assert cli(scan_cmd[1:], cwd=repo["root"])[0] == 1
    log = json.loads((repo["root"] / "modelguard.sarif").read_text())
    _check_github_sarif(log)
    results = log["runs"][0]["results"]
    assert any(
        r["ruleId"] == "MG101"
        and r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("extra.pkl")
        for r in results
    )
    [gate_cmd] = _modelguard_commands("gate")
    assert cli(gate_cmd[1:], cwd=repo["root"])[0] == 1


# --------------------------------------------------------------------------------------------
# the pre-deploy gate script


def _gate(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CI / "pre_deploy_gate.sh"), *args],
        cwd=repo,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_pre_deploy_gate(repo: dict[str, Path]) -> None:
    root = repo["root"]
    done = _gate(root, "models")
    assert done.returncode == 0, done.stderr
    assert "gate: PASS" in done.stdout
    assert json.loads((root / "modelguard-gate.json").read_text())["verdict"] == "safe"
    # a verify option passed through: the signature binds no revision, so this fails
    assert _gate(root, "models", "modelguard.toml", "--revision", "abc123").returncode == 1
    assert _gate(root, "models", "missing.toml").returncode == 2
    assert _gate(root).returncode == 2  # no model given
    (repo["model"] / "config.json").write_text('{"model_type": "swapped"}\n')
    done = _gate(root, "models")
    assert done.returncode == 1
    assert "gate: BLOCKED" in done.stderr
    rules = {
        f["rule_id"]
        for r in json.loads((root / "modelguard-gate.json").read_text())["files"]
        for f in r["findings"]
    }
    assert "MG311" in rules


# --------------------------------------------------------------------------------------------
# the registry audit


def _audit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("registry_audit", CI / "registry_audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registry_audit_of_a_folder(
    tmp_path: Path, canary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = _audit_module()
    registry = tmp_path / "registry"
    write_clean_model(registry / "bert")
    write_malicious(registry / "evil", canary)
    write_clean_model(tmp_path / "single")
    (tmp_path / "single" / "model.pkl").rename(registry / "tiny.pkl")
    (registry / ".git").mkdir()
    (registry / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    out = tmp_path / "audit.json"
    assert audit.main([str(registry), "-o", str(out)]) == 1
    summary = json.loads(out.read_text())
    models = {m["model"]: m for m in summary["models"]}
    assert sorted(models) == ["bert", "evil", "tiny.pkl"]
    assert models["evil"]["blocking"] == 1 and "MG101" in models["evil"]["rules"]
    assert models["evil"]["verdict"] == "dangerous"
    assert models["bert"]["blocking"] == 0 and models["bert"]["files"] == 2
    assert models["tiny.pkl"]["verdict"] == "safe"
    assert summary["totals"] == {
        "blocking_models": 1,
        "files": 4,
        "incomplete_models": 0,
        "models": 3,
        "suppressed": 0,
    }
    # a Git LFS pointer instead of weights is incomplete (2), never clean
    (registry / "evil" / "model.pkl").unlink()
    (registry / "evil" / "model.pkl").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 9\n"
    )
    assert audit.main([str(registry), "-o", str(out)]) == 2
    assert json.loads(out.read_text())["models"][1]["incomplete"] == ["MG005"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert audit.main([str(empty), "-o", str(out)]) == 2
    capsys.readouterr()


def _hf_snapshot(cache: Path, repo_id: str, commit: str, files: dict[str, bytes]) -> None:
    """Write one repo snapshot into a Hugging Face cache layout (blobs, refs, symlinks)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        blob = repo / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def test_registry_audit_of_a_hugging_face_cache(
    tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("modelguard.hub")
    audit = _audit_module()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clean = write_clean_model(tmp_path / "clean")
    evil = write_malicious(tmp_path / "evil", canary)
    cache = tmp_path / "hub"
    good_commit, bad_commit = "1" * 40, "2" * 40
    _hf_snapshot(
        cache,
        "acme/bert",
        good_commit,
        {"model.pkl": (clean / "model.pkl").read_bytes(), "config.json": b"{}\n"},
    )
    _hf_snapshot(cache, "mallory/evil", bad_commit, {"pytorch_model.pkl": evil.read_bytes()})
    out = tmp_path / "audit.json"
    assert audit.main(["--hf-cache", str(cache), "-o", str(out)]) == 1
    models = {m["model"]: m for m in json.loads(out.read_text())["models"]}
    assert models[f"mallory/evil@{bad_commit}"]["blocking"] == 1
    assert models[f"acme/bert@{good_commit}"]["blocking"] == 0
    assert models[f"acme/bert@{good_commit}"]["files"] == 2
