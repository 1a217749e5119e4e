"""`modelguard verify` with the policy's `[[trusted_signers]]` when no trust is given."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from integrity._pki import write_pki

from .conftest import key_policy, keygen, sign, write_clean_model, write_malicious

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def signed(tmp_path: Path) -> dict[str, Path]:
    """A clean model signed by key `b`; keys `a` and `b` exist."""
    keys = tmp_path / "keys"
    keys.mkdir()
    a, a_pub = keygen(keys, "a")
    b, b_pub = keygen(keys, "b")
    model = write_clean_model(tmp_path / "model")
    sign(model, b)
    return {"model": model, "a": a, "a_pub": a_pub, "b": b, "b_pub": b_pub}


def _json(out: str) -> dict[str, object]:
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


def test_any_trusted_signer_verifies_and_is_named(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    policy = key_policy(
        tmp_path / "policy.toml", (signed["a_pub"], "team A"), (signed["b_pub"], "release key")
    )
    code, out, err = cli(
        ["verify", str(signed["model"]), "--policy", str(policy), "--format", "json"]
    )
    assert code == 0, err
    notes = _json(out)["notes"]
    assert isinstance(notes, list)
    assert any("verified by trusted signer 2" in n and "release key" in n for n in notes)
    assert "modelguard: verified" in err


def test_no_trusted_signer_matches_fails_with_exit_1(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    policy = key_policy(tmp_path / "policy.toml", (signed["a_pub"], "team A"))
    code, out, _ = cli(
        ["verify", str(signed["model"]), "--policy", str(policy), "--format", "json"]
    )
    assert code == 1
    doc = _json(out)
    rules = {f["rule_id"] for f in doc["files"][0]["findings"]}  # type: ignore[index]
    assert rules & {"MG301", "MG302"}
    assert any("no trusted signer" in n for n in doc["notes"])  # type: ignore[attr-defined]


def test_a_changed_file_fails_even_when_the_signer_is_trusted(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    policy = key_policy(
        tmp_path / "policy.toml", (signed["b_pub"], "release"), (signed["a_pub"], "other")
    )
    (signed["model"] / "config.json").write_text('{"model_type": "changed"}\n')
    code, out, _ = cli(
        ["verify", str(signed["model"]), "--policy", str(policy), "--format", "json"]
    )
    assert code == 1
    doc = _json(out)
    rules = {f["rule_id"] for r in doc["files"] for f in r["findings"]}  # type: ignore[attr-defined]
    assert "MG311" in rules
    assert any("signature by trusted signer 1" in n for n in doc["notes"])  # type: ignore[attr-defined]


def test_discovered_policy_is_used_but_not_one_inside_the_model(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    key_policy(work / "modelguard.toml", (signed["b_pub"], "release"))
    assert cli(["verify", str(signed["model"])], cwd=work)[0] == 0
    # A policy shipped inside the model folder must not vouch for the model itself.
    inside = signed["model"]
    key_policy(inside / "modelguard.toml", (signed["b_pub"], "self-trust"))
    code, _, err = cli(["verify", ".", "--ignore", "modelguard.toml"], cwd=inside)
    assert code == 2
    assert "not using" in err and "trusted_signers" in err


def test_no_trust_anywhere_is_a_usage_error(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text('fail_on = "medium"\n')
    code, out, err = cli(["verify", str(signed["model"]), "--policy", str(empty)])
    assert code == 2 and out == ""
    assert "--public-key" in err and "[[trusted_signers]]" in err


def test_command_line_trust_overrides_the_policy(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    policy = key_policy(tmp_path / "policy.toml", (signed["b_pub"], "release"))
    argv = ["verify", str(signed["model"]), "--policy", str(policy)]
    assert cli([*argv, "--public-key", str(signed["a_pub"])])[0] == 1
    assert cli([*argv, "--public-key", str(signed["b_pub"])])[0] == 0


def test_a_missing_signer_key_is_a_usage_error(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    policy = key_policy(tmp_path / "policy.toml", (tmp_path / "gone.pub", "lost"))
    assert cli(["verify", str(signed["model"]), "--policy", str(policy)])[0] == 2


def test_certificate_signer_with_identity_pin(tmp_path: Path, cli: Run) -> None:
    pki = write_pki(tmp_path, email="models@example.org")
    model = write_clean_model(tmp_path / "model")
    argv = ["sign", str(model), "--key", str(pki["key"]), "--certificate", str(pki["leaf"])]
    assert cli([*argv, "-q", "--no-progress"])[0] == 0
    good = tmp_path / "good.toml"
    good.write_text(
        '[[trusted_signers]]\nkind = "certificate"\ncertificate_chain = ["ca.pem"]\n'
        'identity = "models@example.org"\n'
    )
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(
        '[[trusted_signers]]\nkind = "certificate"\ncertificate_chain = ["ca.pem"]\n'
        'identity = "someone@example.org"\n'
    )
    assert cli(["verify", str(model), "--policy", str(good)])[0] == 0
    assert cli(["verify", str(model), "--policy", str(wrong)])[0] == 1


def test_verify_scan_with_policy_signers_blocks_a_signed_malicious_model(
    tmp_path: Path, canary: Path, cli: Run
) -> None:
    private, public = keygen(tmp_path, "release")
    model = write_clean_model(tmp_path / "model")
    write_malicious(model, canary, "extra.pkl")
    sign(model, private)  # a trusted signer signed it: the scan still blocks
    policy = key_policy(tmp_path / "policy.toml", (public, "release"))
    code, out, _ = cli(["verify", str(model), "--scan", "--policy", str(policy), "-q"])
    assert code == 1
    assert "MG101" in out
    assert cli(["verify", str(model), "--policy", str(policy), "-q"])[0] == 0


def test_trust_material_inside_the_model_is_refused(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    """A key shipped with the model is refused, from the command line or the policy, also
    when only its resolved path (a symlink into the model) lies inside."""
    model = signed["model"]
    shipped = model / "release.pub"
    shipped.write_bytes(signed["b_pub"].read_bytes())
    argv = ["verify", str(model), "--ignore", "release.pub", "--ignore", "ca.pem"]
    code, out, err = cli([*argv, "--public-key", str(shipped)])
    assert code == 2 and out == ""
    assert "--public-key" in err and "release.pub" in err and "inside the model" in err
    (model / "ca.pem").write_text("not a certificate\n")
    code, _, err = cli([*argv, "--root-ca", str(model / "ca.pem")])
    assert code == 2 and "--root-ca" in err and "ca.pem" in err
    link = tmp_path / "outside.pub"
    link.symlink_to(shipped)
    policy = key_policy(tmp_path / "policy.toml", (signed["a_pub"], "a"), (link, "link"))
    code, _, err = cli([*argv, "--policy", str(policy)])
    assert code == 2 and "trusted signer 2" in err and "outside.pub" in err
    # the same key kept outside the model verifies
    assert cli([*argv, "--public-key", str(signed["b_pub"])])[0] == 0


def test_an_unusable_signer_does_not_hide_the_verdict(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    gone = tmp_path / "gone.pub"
    policy = key_policy(tmp_path / "policy.toml", (gone, "lost"), (signed["b_pub"], "release"))
    argv = ["verify", str(signed["model"]), "--policy", str(policy), "--format", "json"]
    code, out, err = cli(argv)
    assert code == 0, err
    notes = _json(out)["notes"]
    assert isinstance(notes, list)
    assert any("verified by trusted signer 2" in n for n in notes)
    assert any("trusted signer 1" in n and "gone.pub" in n for n in notes)
    (signed["model"] / "config.json").write_text('{"model_type": "changed"}\n')
    code, out, _ = cli(argv)
    assert code == 1
    rules = {f["rule_id"] for r in _json(out)["files"] for f in r["findings"]}  # type: ignore[attr-defined]
    assert "MG311" in rules


def test_an_unusable_signer_and_no_verifying_one_is_a_usage_error(
    signed: dict[str, Path], tmp_path: Path, cli: Run
) -> None:
    """The signer that could not be used may be the one that signed: no verdict (exit 2)."""
    gone = tmp_path / "gone.pub"
    policy = key_policy(tmp_path / "policy.toml", (signed["a_pub"], "a"), (gone, "lost"))
    code, out, err = cli(["verify", str(signed["model"]), "--policy", str(policy)])
    assert code == 2 and out == ""
    assert "trusted signer 2" in err and "gone.pub" in err and "MG30" in err
