"""Red team 5: policy v2 (suppressions, include/exclude globs, signers, discovery).

Each test asserts the correct behaviour, so it fails while the gap exists. Payloads only touch
a canary file in tmp_path.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories.malicious import sample_by_id
from modelguard import scan
from modelguard.cli import ExitCode, main
from modelguard.errors import ConfigError
from modelguard.policy import Policy, extend_policy, load_policy
from modelguard.results import Verdict

CLEAN = pickle.dumps({"weight": [1.0, 2.0]}, protocol=4)


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a payload ran"


@pytest.fixture
def evil(tmp_path: Path, canary: Path) -> bytes:
    out = tmp_path / "evil-build"
    out.mkdir()
    return sample_by_id("direct-os-system-p4").build(out, canary).read_bytes()


@pytest.fixture
def model(tmp_path: Path, evil: bytes) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "evil.pkl").write_bytes(evil)
    (folder / "ok.pkl").write_bytes(CLEAN)
    return folder


def _policy_file(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- globs: a broken glob is a ConfigError up front, never a crash mid-scan -----------------


@pytest.mark.parametrize("glob", ["[z-a]", "x[9-0]"])
@pytest.mark.parametrize("where", ["include", "exclude", "suppress"])
def test_invalid_glob_is_config_error(tmp_path: Path, model: Path, glob: str, where: str):
    """`parse_globs`/`parse_suppressions` accept any string; globs.py compiles it to a regex
    only when matching, so `[z-a]` raises re.error from inside scan() (the CLI turns it into
    'internal error'). A suppression glob only breaks once a finding exists, so a broken policy
    passes every clean scan unnoticed."""
    if where == "suppress":
        text = f'[[suppress]]\nrule = "MG101"\npath = "{glob}"\nreason = "r"\n'
    else:
        text = f'{where} = ["{glob}"]\n'
    path = _policy_file(tmp_path, text)
    with pytest.raises(ConfigError):
        policy = load_policy(path)
        scan(model, policy=policy)


def test_invalid_glob_on_command_line_is_usage_error(model: Path):
    with pytest.raises(ConfigError):
        extend_policy(Policy(), exclude=["[z-a]"])
    with pytest.raises(ConfigError):
        extend_policy(Policy(), ignore=["MG101:[z-a]"])


# --- discovery: a policy shipped inside the scanned folder must not be used -----------------


@pytest.mark.parametrize("name", ["modelguard.toml", "pyproject.toml"])
def test_symlinked_policy_inside_scanned_folder_is_ignored(
    tmp_path: Path, evil: bytes, monkeypatch: pytest.MonkeyPatch, name: str
):
    """`cd repo && modelguard scan .` where the repo's policy file is a symlink (every file of
    a Hugging Face snapshot is one, pointing into ../../blobs): policy_inside() resolves the
    link and compares the *target*, which lies outside the folder, so the repository's own
    `fail_on = "never"` is used and a malicious pickle exits 0."""
    store = tmp_path / "blobs"
    store.mkdir()
    body = 'fail_on = "never"\n'
    if name == "pyproject.toml":
        body = "[tool.modelguard]\n" + body
    (store / "policy-blob").write_text(body)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pytorch_model.bin").write_bytes(evil)
    os.symlink(store / "policy-blob", repo / name)
    monkeypatch.chdir(repo)
    assert load_policy(None, scan_targets=["."]).fail_on is not None
    assert main(["scan", "-q", "--no-cache", "."]) == ExitCode.FINDINGS


def test_plain_policy_inside_scanned_folder_is_ignored(
    model: Path, monkeypatch: pytest.MonkeyPatch
):
    (model / "modelguard.toml").write_text('fail_on = "never"\n')
    monkeypatch.chdir(model)
    assert main(["scan", "-q", "--no-cache", "."]) == ExitCode.FINDINGS


# --- include/exclude: a skipped file must be visible; an all-skipped target is not a pass ---


def test_every_excluded_file_is_named_in_the_report(
    tmp_path: Path, evil: bytes, capsys: pytest.CaptureFixture[str]
):
    """scanner._finish names only the first five skipped files, then '(+N more)': a malicious
    file that sorts after five benign ones is excluded without its name appearing anywhere in
    the report (JSON), while the run exits 0."""
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    (folder / "model.pkl").write_bytes(CLEAN)
    for index in range(6):
        (folder / "data" / f"a{index}.pkl").write_bytes(CLEAN)
    (folder / "data" / "zz_evil.pkl").write_bytes(evil)
    code = main(
        ["scan", "-q", "--no-cache", "--format", "json", "--exclude", "data/**", str(folder)]
    )
    out = capsys.readouterr().out
    json.loads(out)
    assert code == ExitCode.OK  # the user excluded it: fine, but it must be visible
    assert "zz_evil.pkl" in out, "an excluded file is not named anywhere in the report"


def test_folder_target_entirely_excluded_is_not_a_pass(tmp_path: Path, evil: bytes):
    """Globs also match the components of the target's own path (trailing-part matching), so a
    team's `exclude = ["cache/**"]` (meant for cache folders inside repos) silently drops a
    whole target that happens to live under /srv/cache/...; with another target beside it, the
    run is complete and exits 0 although the named target was never scanned."""
    ok = tmp_path / "work" / "ok_model"
    ok.mkdir(parents=True)
    (ok / "model.pkl").write_bytes(CLEAN)
    bad = tmp_path / "cache" / "upload"
    bad.mkdir(parents=True)
    (bad / "pytorch_model.bin").write_bytes(evil)
    code = main(["scan", "-q", "--no-cache", "--exclude", "cache/**", str(ok), str(bad)])
    assert code != ExitCode.OK


def test_file_target_always_scanned_despite_exclude(tmp_path: Path, evil: bytes):
    target = tmp_path / "evil.pkl"
    target.write_bytes(evil)
    policy = extend_policy(Policy(), exclude=["*"], include=["nothing"])
    assert scan(target, policy=policy).verdict is Verdict.DANGEROUS


# --- suppressions: never touch incompletes / integrity; expiry ------------------------------


@pytest.mark.parametrize("rule", ["MG001", "MG003", "MG311", "MG601", "MG603", "mg3 11", "MG010"])
def test_unsuppressible_rules_refused(rule: str):
    with pytest.raises(ConfigError):
        extend_policy(Policy(), ignore=[rule])


def test_cache_blob_digest_mismatch_not_suppressible():
    """MG604 (a cache blob whose content no longer matches its SHA-256 name: tampering after
    download) is an integrity failure like MG311 file-modified, yet `--ignore MG604` is
    accepted and hides it. Policy question: the lead may decide MG6xx integrity stays
    suppressible; this test records the gap."""
    with pytest.raises(ConfigError):
        extend_policy(Policy(), ignore=["MG604"])


def _suppress(tmp_path: Path, expires: str) -> Policy:
    text = f'[[suppress]]\nrule = "MG101"\nreason = "reviewed"\nexpires = {expires}\n'
    return load_policy(_policy_file(tmp_path, text))


def test_expiry_today_applies_yesterday_does_not(tmp_path: Path, model: Path):
    today = dt.date.today()
    live = scan(model, policy=_suppress(tmp_path, today.isoformat()))
    assert live.suppressed == 1 and not any(f.rule_id == "MG101" for f in live.findings)
    dead = scan(model, policy=_suppress(tmp_path, (today - dt.timedelta(days=1)).isoformat()))
    assert dead.verdict is Verdict.DANGEROUS
    assert {"MG101", "MG010"} <= {f.rule_id for f in dead.findings}
    assert dead.suppressed == 0


@pytest.mark.parametrize(
    "expires",
    ['"2027-02-30"', "07:00:00", "20270101", "true", '""', "[2027-01-01]", '"yesterday"'],
)
def test_invalid_expiry_is_config_error(tmp_path: Path, expires: str):
    with pytest.raises(ConfigError):
        _suppress(tmp_path, expires)


def test_suppression_does_not_make_incomplete_complete(tmp_path: Path, model: Path):
    """A file that cannot be read stays incomplete whatever the suppressions say."""
    (model / "broken.pkl").write_bytes(b"\x80\x04\x95" + b"\xff" * 3)
    policy = extend_policy(Policy(), ignore=["MG101", "MG201"])
    report = scan(model, policy=policy)
    assert report.verdict is not Verdict.SAFE


# --- TOML type confusion: ConfigError, never a crash ----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '[[trusted_signers]]\nkind = "key"\nkey = "~no_such_user_rt5/release.pub"\n',
        '[[trusted_signers]]\nkind = "certificate"\n'
        'certificate_chain = ["~no_such_user_rt5/c.pem"]\n',
        "include = {a = 1}\n",
        '[[suppress]]\nrule = [["MG101"]]\nreason = "r"\n',
        '[[suppress]]\nrule = "MG101"\nreason = "r"\npath = ["a"]\n',
        '[trusted_signers]\nkind = "key"\n',
        '[[trusted_signers]]\nkind = ["key"]\nkey = "k"\n',
        '[limits]\nmax_depth = "5"\n',
    ],
)
def test_type_confusion_is_config_error(tmp_path: Path, text: str):
    """`~user` paths in trusted_signers go through Path.expanduser(), which raises
    RuntimeError for an unknown user (signers._absolute): a crash, not a ConfigError."""
    with pytest.raises(ConfigError):
        load_policy(_policy_file(tmp_path, text))


@pytest.mark.parametrize("value", ["nan", "-nan"])
def test_indicator_threshold_nan_refused(tmp_path: Path, value: str):
    """TOML floats include nan/inf: `lsb_z_max = nan` passes the `value < 0` check
    (IndicatorSettings.from_mapping) and silently disables the detector (every comparison
    with NaN is False)."""
    with pytest.raises(ConfigError):
        load_policy(_policy_file(tmp_path, f"[indicators]\nlsb_z_max = {value}\n"))


def test_severity_keys_differing_in_case_are_refused(tmp_path: Path):
    """`MG101` and `mg101` are both accepted in [severity]; the later one silently wins, so a
    reviewed `MG101 = high` can be undone further down by `mg101 = info`."""
    text = (
        "[severity]\n"
        'MG101 = { severity = "critical", reason = "keep" }\n'
        'mg101 = { severity = "info", reason = "sneaky" }\n'
    )
    with pytest.raises(ConfigError):
        load_policy(_policy_file(tmp_path, text))


def test_severity_override_of_verification_rule_refused(tmp_path: Path):
    """[[suppress]] refuses MG3xx, but [severity] MG311 = info is accepted (and silently has
    no effect on verify): the policy should refuse it the same way."""
    text = '[severity]\nMG311 = { severity = "info", reason = "r" }\n'
    with pytest.raises(ConfigError):
        load_policy(_policy_file(tmp_path, text))


# --- verify --scan: the scan policy never hides a verification failure -----------------------


def test_verify_scan_policy_cannot_hide_tampering(
    tmp_path: Path, evil: bytes, capsys: pytest.CaptureFixture[str]
):
    """Suppressions, include/exclude and fail_on of the scan policy act on the scan only: an
    unsigned malicious file and a modified one still fail `verify --scan` (MG313, MG311)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    import modelguard

    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    model = tmp_path / "signed"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    (model / "model.pkl").write_bytes(CLEAN)
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=key, output=sig)
    (model / "config.json").write_text("{}")
    (model / "evil.pkl").write_bytes(evil)
    policy = _policy_file(
        tmp_path,
        'fail_on = "never"\nexclude = ["*"]\n'
        '[[suppress]]\nrule = ["MG101", "MG201"]\nreason = "r"\n',
    )
    code = main(
        [
            "verify",
            str(model),
            "--signature",
            str(sig),
            "--public-key",
            str(pub),
            "--scan",
            "--policy",
            str(policy),
            "--format",
            "json",
            "-q",
        ]
    )
    out = capsys.readouterr().out
    assert code == ExitCode.FINDINGS
    assert "MG311" in out and "MG313" in out
