"""`modelguard manifest / sign / verify / keygen` on the command line: output and exit codes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from integrity._pki import make_model, write_ec_key
from modelguard.cli import main


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path)


def test_manifest_prints_the_oms_statement(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", str(model)]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == sorted(names)
    assert "sub/extra.bin" in names


def test_sign_and_verify_exit_codes(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = write_ec_key(tmp_path)
    assert main(["sign", str(model), "--key", str(private)]) == 0
    assert (model / "model.sig").is_file()
    assert main(["verify", str(model), "--public-key", str(public)]) == 0
    capsys.readouterr()
    (model / "config.json").write_text("{}")
    assert main(["verify", str(model), "--public-key", str(public), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    rule_ids = {f["rule_id"] for f in report["findings"]} if "findings" in report else set()
    if not rule_ids:
        rule_ids = {f["rule_id"] for res in report["files"] for f in res["findings"]}
    assert "MG311" in rule_ids


def test_verify_sarif_carries_the_rule(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = write_ec_key(tmp_path)
    assert main(["sign", str(model), "--key", str(private), "-q"]) == 0
    (model / "extra.py").write_text("x = 1\n")
    assert main(["verify", str(model), "--public-key", str(public), "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    results = sarif["runs"][0]["results"]
    assert any(r["ruleId"] == "MG313" for r in results)


def test_unusable_input_exits_2(model: Path, tmp_path: Path) -> None:
    private, public = write_ec_key(tmp_path)
    # no signature yet
    assert main(["verify", str(model), "--public-key", str(public)]) == 2
    # no trust given
    assert main(["sign", str(model), "--key", str(private)]) == 0
    assert main(["verify", str(model)]) == 2
    # a key file that is not a key
    (tmp_path / "junk.pem").write_text("junk")
    assert main(["verify", str(model), "--public-key", str(tmp_path / "junk.pem")]) == 2
    assert main(["sign", str(model), "--key", str(tmp_path / "junk.pem")]) == 2
    # a model that does not exist
    assert main(["verify", str(tmp_path / "nope"), "--public-key", str(public)]) == 2


def test_verify_scan_reports_both_in_one_report(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            import os

            return (os.system, ("true",))

    (model / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
    private, public = write_ec_key(tmp_path)
    assert main(["sign", str(model), "--key", str(private), "-q"]) == 0
    # signed and intact, but the signed pickle would run code: --scan blocks it
    assert main(["verify", str(model), "--public-key", str(public)]) == 0
    capsys.readouterr()
    code = main(["verify", str(model), "--public-key", str(public), "--scan", "--format", "json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    paths = {res["path"] for res in report["files"]}
    assert any(p.endswith("pytorch_model.bin") for p in paths)
    assert any(n.startswith("signature valid:") for n in report["notes"])


def test_keygen_writes_usable_keys(tmp_path: Path, model: Path) -> None:
    key = tmp_path / "k.pem"
    assert main(["keygen", "--type", "p384", "-o", str(key)]) == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    assert main(["sign", str(model), "--key", str(key), "-q"]) == 0
    assert main(["verify", str(model), "--public-key", f"{key}.pub", "-q"]) == 0
    # never overwrites an existing key
    assert main(["keygen", "-o", str(key)]) == 2
    pq = tmp_path / "pq.pem"
    assert main(["keygen", "--type", "ml-dsa-65", "-o", str(pq)]) == 0
    assert main(["sign", str(model), "--key", str(key), "--pq-key", str(pq), "-q"]) == 0
    args = ["verify", str(model), "--public-key", f"{key}.pub", "--pq-public-key", f"{pq}.pub"]
    assert main([*args, "--require-pq", "-q"]) == 0


def test_sign_refuses_unsafe_models_with_exit_1(model: Path, tmp_path: Path) -> None:
    private, _ = write_ec_key(tmp_path)
    (model / "escape").symlink_to("/etc/passwd")
    assert main(["sign", str(model), "--key", str(private), "-q"]) == 1
