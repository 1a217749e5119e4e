"""Policy files v2: severity reasons, trusted signers, the policy digest, include/exclude."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelguard.cli import main
from modelguard.config import Limits
from modelguard.errors import ConfigError
from modelguard.indicators.settings import IndicatorSettings
from modelguard.policy import Policy, TrustedSigner, load_policy
from modelguard.policy.globs import glob_matches
from modelguard.results import Severity
from modelguard.scanner import scan

UNKNOWN_CLASS = b"\x80\x02c__main__\nNet\n)\x81}b."  # MG102 (medium) when scanned


def _policy(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "modelguard.toml"
    path.write_text(text)
    return load_policy(path)


# -- [severity] with a required reason ------------------------------------------------------


def test_severity_override_carries_its_reason(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, '[severity]\nmg201 = { severity = "info", reason = "exporter names .bin" }\n'
    )
    assert policy.severity == {"MG201": Severity.INFO}
    assert policy.severity_reasons == {"MG201": "exporter names .bin"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[severity]\nMG201 = "info"\n', "reason is required"),
        ('[severity]\nMG201 = { severity = "info" }\n', "reason is required"),
        ('[severity]\nMG201 = { severity = "info", reason = "  " }\n', "reason is required"),
        ('[severity]\nMG201 = { severity = "never", reason = "r" }\n', "not 'never'"),
        ('[severity]\nMG201 = { severity = "info", reason = "r", x = 1 }\n', "unknown fields"),
        ('[severity]\nMG201 = { reason = "r" }\n', "severity must be a string"),
    ],
)
def test_severity_override_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _policy(tmp_path, text)


def test_severity_override_changes_the_exit_code(tmp_path: Path) -> None:
    model = tmp_path / "m.pkl"
    model.write_bytes(UNKNOWN_CLASS)
    policy = tmp_path / "p.toml"
    policy.write_text('[severity]\nMG102 = { severity = "low", reason = "reviewed" }\n')
    assert main(["scan", "-q", str(model)]) == 1
    assert main(["scan", "-q", "--policy", str(policy), str(model)]) == 0


# -- [[trusted_signers]] --------------------------------------------------------------------


def test_trusted_signers_parse_and_resolve_paths(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "modelguard.toml"
    path.write_text(
        "[[trusted_signers]]\n"
        'kind = "key"\nkey = "keys/release.pub"\nreason = "release key"\n'
        "[[trusted_signers]]\n"
        'kind = "certificate"\ncertificate_chain = ["../ca/root.pem", "/abs/int.pem"]\n'
        'identity = "models@example.com"\n'
        "[[trusted_signers]]\n"
        'kind = "sigstore"\nidentity = "ci@example.com"\n'
        'issuer = "https://token.actions.githubusercontent.com"\n'
    )
    signers = load_policy(path).trusted_signers
    base = (tmp_path / "conf").resolve()
    assert signers == (
        TrustedSigner("key", key=str(base / "keys" / "release.pub"), reason="release key"),
        TrustedSigner(
            "certificate",
            certificate_chain=(str(tmp_path.resolve() / "ca" / "root.pem"), "/abs/int.pem"),
            identity="models@example.com",
        ),
        TrustedSigner(
            "sigstore",
            identity="ci@example.com",
            issuer="https://token.actions.githubusercontent.com",
        ),
    )
    assert all(Path(p).is_absolute() for p in signers[1].certificate_chain)
    assert "sigstore ci@example.com" in signers[2].describe()


def test_no_trusted_signers_by_default(tmp_path: Path) -> None:
    assert Policy().trusted_signers == ()
    assert _policy(tmp_path, 'fail_on = "high"\n').trusted_signers == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('kind = "gpg"\nkey = "k"', "kind must be one of"),
        ('kind = "key"', "key needs key"),
        ('kind = "sigstore"\nidentity = "a@b"', "sigstore needs issuer"),
        ('kind = "certificate"', "certificate needs certificate_chain"),
        ('kind = "certificate"\ncertificate_chain = []', "list of file paths"),
        ('kind = "key"\nkey = "k"\nissuer = "https://x"', "issuer not valid for key"),
        ('kind = "sigstore"\nidentity = "a"\nissuer = "b"\nkey = "k"', "key not valid"),
        ('kind = "key"\nkey = "k"\nfingerprint = "x"', "unknown fields fingerprint"),
        ('kind = "key"\nkey = ""', "non-empty string"),
    ],
)
def test_invalid_trusted_signers(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _policy(tmp_path, f"[[trusted_signers]]\n{entry}\n")


def test_trusted_signers_must_be_an_array_of_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="array of tables"):
        _policy(tmp_path, 'trusted_signers = "key.pub"\n')


# -- Policy.digest() ------------------------------------------------------------------------


def test_digest_is_stable_and_hex() -> None:
    digest = Policy().digest()
    assert digest == Policy().digest()
    assert len(digest) == 64 and int(digest, 16) >= 0
    # A cache key shared across processes and runs: insertion order must not matter.
    assert (
        Policy(allow={"b:x": "r", "a:y": "s"}).digest()
        == Policy(allow={"a:y": "s", "b:x": "r"}).digest()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"allow": {"mypkg:f": "ours"}},
        {"allow_new": {"__main__:Net": "ours"}},
        {"severity": {"MG102": Severity.LOW}},
        {"limits": Limits(max_depth=3)},
        {"indicators": IndicatorSettings(mode="full")},
        {"indicators": IndicatorSettings(chi2_window=999.5)},
    ],
)
def test_digest_changes_with_what_changes_a_file_result(change: dict[str, object]) -> None:
    assert dataclasses.replace(Policy(), **change).digest() != Policy().digest()


def test_digest_ignores_what_acts_on_the_whole_report(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        'fail_on = "never"\ninclude = ["*.bin"]\nexclude = ["x/**"]\n'
        '[[suppress]]\nrule = "MG201"\nreason = "r"\n'
        '[[trusted_signers]]\nkind = "key"\nkey = "k.pub"\n',
    )
    assert policy.source is not None
    assert policy.digest() == Policy().digest()


def test_digest_of_loaded_file_equals_equivalent_object(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        '[allow]\n"mypkg:f" = "ours"\n[limits]\nmax_depth = 4\n'
        '[severity]\nMG102 = { severity = "low", reason = "reviewed" }\n',
    )
    same = Policy(
        allow={"mypkg:f": "ours"},
        severity={"MG102": Severity.LOW},
        limits=Limits(max_depth=4),
    )
    assert policy.digest() == same.digest()


# -- globs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.pkl", "model.pkl", True),
        ("*.pkl", "repo/sub/model.pkl", True),
        ("model.pkl", "repo/model.pkl", True),
        ("model.pkl", "repo/my-model.pkl", False),
        ("sub/*.bin", "repo/sub/w.bin", True),
        ("sub/*.bin", "repo/other/w.bin", False),
        ("repo/**/x.pkl", "repo/x.pkl", True),
        ("repo/**/x.pkl", "repo/a/b/x.pkl", True),
        ("legacy/**", "repo/legacy/a/b.bin", True),
        ("/model.pkl", "repo/model.pkl", False),
        ("/repo/model.pkl", "repo/model.pkl", True),
        ("w?.bin", "w1.bin", True),
        ("w[0-9].bin", "w7.bin", True),
        ("w[!0-9].bin", "w7.bin", False),
        ("*.PKL", "m.pkl", False),
        ("a.b", "axb", False),
    ],
)
def test_glob_matches(pattern: str, path: str, expected: bool) -> None:
    assert glob_matches(pattern, path) is expected


# -- include / exclude ------------------------------------------------------------------------


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "model.pkl").write_bytes(UNKNOWN_CLASS)
    (repo / "docs" / "old.pkl").write_bytes(UNKNOWN_CLASS)
    (repo / "notes.txt").write_text("hello\n")
    return repo


def test_exclude_skips_files_of_folders_and_notes_them(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    report = scan(repo, policy=Policy(exclude=("docs/**", "*.txt")))
    assert [r.path for r in report.files] == [f"{repo.as_posix()}/model.pkl"]
    assert any("2 file(s) not scanned" in n and "docs/old.pkl" in n for n in report.notes)


def test_include_keeps_only_matching_files(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    report = scan(repo, policy=Policy(include=("*.pkl",), exclude=("docs/**",)))
    assert [Path(r.path).name for r in report.files] == ["model.pkl"]


def test_a_file_named_as_target_is_always_scanned(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    report = scan(repo / "docs" / "old.pkl", policy=Policy(exclude=("*.pkl",)))
    assert len(report.files) == 1 and report.files[0].findings[0].rule_id == "MG102"
    assert not report.notes


def test_include_exclude_from_policy_file_and_cli(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    policy = tmp_path / "p.toml"
    policy.write_text('exclude = ["docs/**"]\n')
    out = tmp_path / "r.json"
    first = ["scan", "-q", "--format", "json", "--policy", str(policy), str(repo), "-o", str(out)]
    assert main(first) == 1
    doc = json.loads(out.read_text())
    assert sorted(Path(f["path"]).name for f in doc["files"]) == ["model.pkl", "notes.txt"]
    args = ["scan", "-q", "--format", "json", "-o", str(out), str(repo)]
    assert main([*args, "--exclude", "*.pkl"]) == 0
    assert [Path(f["path"]).name for f in json.loads(out.read_text())["files"]] == ["notes.txt"]
    assert main([*args, "--include", "docs/*"]) == 1
    assert [Path(f["path"]).name for f in json.loads(out.read_text())["files"]] == ["old.pkl"]


def test_excluding_everything_scans_nothing_and_is_incomplete(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert main(["scan", "-q", "--exclude", "*", str(repo)]) == 2


@pytest.mark.parametrize("text", ['include = "*.bin"\n', "exclude = [1]\n", 'include = [""]\n'])
def test_invalid_globs(tmp_path: Path, text: str) -> None:
    if text.startswith('include = "'):  # a single string is accepted as a one-item list
        assert _policy(tmp_path, text).include == ("*.bin",)
        return
    with pytest.raises(ConfigError, match="glob"):
        _policy(tmp_path, text)


def test_the_documented_example_policy_is_valid(tmp_path: Path) -> None:
    import textwrap

    import modelguard.policy

    doc = modelguard.policy.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n\n", 1)[1].split("\nDiscovery", 1)[0])
    policy = _policy(tmp_path, example)
    assert policy.include == ("*.bin", "*.pt") and policy.exclude == ("docs/**",)
    assert policy.suppressions[0].rules == ("MG201",)
    assert policy.trusted_signers[0].key == str(tmp_path.resolve() / "keys" / "release.pub")
    assert policy.severity_reasons["MG201"]


_SEGMENT = st.text(alphabet="ab.*?_", min_size=1, max_size=4)


@given(
    pattern=st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join),
    path=st.lists(st.text(alphabet="ab._", min_size=1, max_size=4), min_size=1, max_size=4).map(
        "/".join
    ),
)
def test_globs_match_at_least_what_fnmatch_matches(pattern: str, path: str) -> None:
    # fnmatch on the whole path is the documented baseline; trailing parts only add matches.
    if fnmatch.fnmatchcase(path, pattern):
        assert glob_matches(pattern, path)
    if "/" not in path and "**" not in pattern:
        assert glob_matches(pattern, path) is fnmatch.fnmatchcase(path, pattern)
