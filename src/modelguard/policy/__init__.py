"""The policy: which globals are allowed, how loud each rule is, what blocks, which limits apply.

A policy file is TOML, either `modelguard.toml` or the `[tool.modelguard]` table of
`pyproject.toml`::

    fail_on = "medium"            # critical | high | medium | low | never
    include = ["*.bin", "*.pt"]   # which files of a folder target are scanned (globs on
    exclude = ["docs/**"]         # the path relative to the folder); top-level keys, before
                                  # any [table]. A file named as a target is always scanned.

    [allow]                       # extra allowlist entries; a reason is required
    "mypkg.utils:make_vocab" = "our own pure helper, reviewed in PR 123"

    [allow_new]                   # classes allowed only when rebuilt by NEWOBJ + BUILD
    "__main__:MyNet" = "our model class in whole-model saves"

    [severity]                    # per-rule overrides; a reason is required; never
                                  # MG3xx or MG604 (integrity)
    MG201 = { severity = "info", reason = "our exporter names pickles .bin" }

    [[suppress]]                  # drop matching findings (counted and listed in the report)
    rule = "MG201"                # or a list of rule ids; never MG3xx or MG604 (integrity)
    path = "legacy/**"            # optional glob on the display path
    reason = "legacy exports, re-saved as safetensors in Q3"
    expires = 2027-01-31          # optional; after it the entry stops applying (MG010)

    [[trusted_signers]]           # whose signatures `verify` accepts (policy.signers)
    kind = "key"
    key = "keys/release.pub"

    [limits]                      # any field of modelguard.config.Limits
    max_depth = 10

    [indicators]                  # poisoning-risk indicators: mode and thresholds
    mode = "full"                 # any field of modelguard.indicators.settings.IndicatorSettings

Discovery (`load_policy(None)`) looks only in the current working directory, and ignores a
file found there when it lies inside a folder being scanned, even when it is a link to a file
outside: a model repository must not be able to relax its own scan (pass it with `--policy`
to use it anyway).

Every glob is compiled, and every value checked, when the file is read: a mistake is a
ConfigError (exit 2 on the command line), never a surprise in the middle of a scan.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from modelguard.config import Limits
from modelguard.errors import ConfigError
from modelguard.indicators.settings import IndicatorSettings
from modelguard.policy.globs import glob_matches, parse_globs
from modelguard.policy.names import Class, NameTables, Ruling, classify, default_tables
from modelguard.rules import integrity_rule

if TYPE_CHECKING:
    from modelguard.policy.signers import TrustedSigner
    from modelguard.policy.suppress import Suppression
from modelguard.results import Severity

__all__ = [
    "Class",
    "Policy",
    "Ruling",
    "Suppression",
    "TrustedSigner",
    "discover_policy_file",
    "extend_policy",
    "load_policy",
    "parse_severity",
    "policy_inside",
]

_KEYS = {
    "fail_on",
    "allow",
    "allow_new",
    "severity",
    "limits",
    "indicators",
    "suppress",
    "include",
    "exclude",
    "trusted_signers",
}


def parse_severity(text: str) -> Severity | None:
    """Parse a severity name; "never" (or "none") gives None.

    Raises:
        ConfigError: not a severity name.
    """
    value = text.strip().lower()
    if value in ("never", "none"):
        return None
    try:
        return Severity(value)
    except ValueError:
        names = ", ".join(s.value for s in Severity)
        raise ConfigError(f"unknown severity {text!r} (expected {names} or never)") from None


@dataclass(frozen=True)
class Policy:
    """What the scan allows and what blocks.

    Attributes:
        fail_on: lowest severity that blocks (None: nothing blocks).
        allow: user allowlist entries, `"module:qualname"` (globs allowed) -> reason.
        allow_new: user construct-only entries: allowed when a pickle rebuilds the class by
            NEWOBJ + BUILD, reported when it calls it (REDUCE/INST/OBJ runs __init__).
        severity: per-rule severity overrides.
        limits: scanner limits.
        indicators: mode and thresholds of the poisoning-risk indicators.
        source: the file the policy came from, if any.
        ignored: a discovered policy file that was not used because it lies inside a scanned
            folder (see `load_policy`).
        severity_reasons: why each `severity` override was made (rule id -> reason).
        suppressions: findings to drop from reports (see `modelguard.policy.suppress`).
        include: globs on paths relative to the folder target; when non-empty, only matching
            files of a folder target are scanned.
        exclude: globs on paths relative to the folder target; matching files of a folder
            target are not scanned (they are listed in `ScanReport.skipped`).
        trusted_signers: whose signatures `modelguard verify` accepts (any one suffices).
    """

    fail_on: Severity | None = Severity.MEDIUM
    allow: Mapping[str, str] = field(default_factory=dict)
    allow_new: Mapping[str, str] = field(default_factory=dict)
    severity: Mapping[str, Severity] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    source: str | None = None
    ignored: str | None = None
    indicators: IndicatorSettings = field(default_factory=IndicatorSettings)
    severity_reasons: Mapping[str, str] = field(default_factory=dict)
    suppressions: tuple[Suppression, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    trusted_signers: tuple[TrustedSigner, ...] = ()

    def digest(self) -> str:
        """Return a stable sha256 (hex) of everything that can change one file's result.

        Covers the allowlist additions, severity overrides, limits and indicator settings;
        not what only acts on the whole report (fail_on, suppressions, include/exclude,
        trusted signers) nor where the policy came from. Equal digests mean a cached
        per-file result is still valid (together with the file digest and the version).
        """
        doc = {
            "allow": sorted(self.allow.items()),
            "allow_new": sorted(self.allow_new.items()),
            "severity": sorted((k, v.value) for k, v in self.severity.items()),
            "limits": sorted(asdict(self.limits).items()),
            "indicators": sorted(asdict(self.indicators).items()),
        }
        import hashlib  # only when a digest is asked for (the result cache)
        import json

        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def selects(self, path: str) -> bool:
        """Return True if `include`/`exclude` let a file of a folder target be scanned.

        `path` is the file's path relative to the folder target (`sub/w.bin`), never including
        the target's own path: `exclude = ["cache/**"]` leaves out a `cache` folder inside
        the target, not a target that lives under `/srv/cache/` (globs:
        `modelguard.policy.globs`; a leading `/` anchors at the folder target).
        """
        if self.include and not any(glob_matches(g, path) for g in self.include):
            return False
        return not any(glob_matches(g, path) for g in self.exclude)

    def tables(self) -> NameTables:
        """Return the name tables: the shipped ones plus this policy's allowlist entries."""
        return self._tables

    @cached_property
    def _tables(self) -> NameTables:
        base = default_tables()
        if not self.allow and not self.allow_new:
            return base
        return _merged_tables(
            base, tuple(sorted(self.allow.items())), tuple(sorted(self.allow_new.items()))
        )

    def classify(self, module: str, name: str, proto: int = 4) -> Ruling:
        """Classify a global under this policy (see `modelguard.policy.names.classify`)."""
        return classify(module, name, proto, self._tables)

    def severity_of(self, rule_id: str, default: Severity) -> Severity:
        """Return the effective severity of `rule_id` (integrity rules, MG3xx and MG604, keep
        their default whatever `severity` says)."""
        if integrity_rule(rule_id):
            return default
        return self.severity.get(rule_id, default)


_Entries = tuple[tuple[str, str], ...]
_MERGED: dict[tuple[_Entries, _Entries], NameTables] = {}


def _merged_tables(base: NameTables, entries: _Entries, new_entries: _Entries) -> NameTables:
    key = (entries, new_entries)
    tables = _MERGED.get(key)
    if tables is None:
        tables = base.with_allow(entries).with_allow(new_entries, construct_only=True)
        _MERGED[key] = tables
    return tables


def _entries(doc: Mapping[str, object], table: str, source: str) -> dict[str, str]:
    raw = doc.get(table, {})
    if not isinstance(raw, dict):
        raise ConfigError(f'{source}: [{table}] must be a table of "module:qualname" = reason')
    out: dict[str, str] = {}
    for key, reason in raw.items():
        module, colon, name = key.partition(":")
        if not colon or not module or not name:
            raise ConfigError(f"{source}: {table} entry {key!r} must look like 'module:qualname'")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{source}: {table} entry {key!r} needs a non-empty reason")
        out[key] = reason.strip()
    return out


def _suppressions(doc: Mapping[str, object], source: str) -> tuple[Suppression, ...]:
    if "suppress" not in doc:
        return ()
    from modelguard.policy.suppress import parse_suppressions  # only for policies that have them

    return parse_suppressions(doc["suppress"], source)


def _signers(doc: Mapping[str, object], source: str) -> tuple[TrustedSigner, ...]:
    if "trusted_signers" not in doc:
        return ()
    from modelguard.policy.signers import parse_trusted_signers

    return parse_trusted_signers(doc["trusted_signers"], source)


def __getattr__(name: str) -> object:
    """`Suppression` and `TrustedSigner`, imported on first use (the scan needs neither)."""
    if name == "Suppression":
        from modelguard.policy.suppress import Suppression

        return Suppression
    if name == "TrustedSigner":
        from modelguard.policy.signers import TrustedSigner

        return TrustedSigner
    raise AttributeError(f"module 'modelguard.policy' has no attribute {name!r}")


def _parse(doc: Mapping[str, object], source: str) -> Policy:
    unknown = set(doc) - _KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown policy keys: {', '.join(sorted(unknown))}")
    fail_on: Severity | None = Severity.MEDIUM
    if "fail_on" in doc:
        raw = doc["fail_on"]
        if not isinstance(raw, str):
            raise ConfigError(f"{source}: fail_on must be a string")
        fail_on = parse_severity(raw)
    allow = _entries(doc, "allow", source)
    allow_new = _entries(doc, "allow_new", source)
    severity, severity_reasons = _severities(doc, source)
    raw_limits = doc.get("limits", {})
    if not isinstance(raw_limits, dict):
        raise ConfigError(f"{source}: [limits] must be a table")
    valid = {f.name for f in fields(Limits)}
    values: dict[str, int] = {}
    for key, value in raw_limits.items():
        if key not in valid:
            raise ConfigError(
                f"{source}: unknown limit {key!r} (known: {', '.join(sorted(valid))})"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{source}: limit {key} must be a positive integer")
        values[key] = value
    raw_indicators = doc.get("indicators", {})
    if not isinstance(raw_indicators, dict):
        raise ConfigError(f"{source}: [indicators] must be a table")
    indicators = IndicatorSettings.from_mapping(raw_indicators, source)
    return Policy(
        fail_on,
        allow,
        allow_new,
        severity,
        Limits(**values),
        source,
        indicators=indicators,
        severity_reasons=severity_reasons,
        suppressions=_suppressions(doc, source),
        include=parse_globs(doc.get("include", []), "include", source),
        exclude=parse_globs(doc.get("exclude", []), "exclude", source),
        trusted_signers=_signers(doc, source),
    )


def _severities(
    doc: Mapping[str, object], source: str
) -> tuple[dict[str, Severity], dict[str, str]]:
    """Parse `[severity]`: `RULE = { severity = "...", reason = "..." }` per entry."""
    raw_sev = doc.get("severity", {})
    if not isinstance(raw_sev, dict):
        raise ConfigError(f"{source}: [severity] must be a table of RULE = {{ severity, reason }}")
    from modelguard.rules import RULES

    severity: dict[str, Severity] = {}
    reasons: dict[str, str] = {}
    for rule_id, value in raw_sev.items():
        rule = RULES.get(str(rule_id).upper())
        if rule is None or rule.severity is None:
            raise ConfigError(f"{source}: [severity] names unknown or non-finding rule {rule_id}")
        if rule.id in severity:  # `MG101` and `mg101`: the later one would silently win
            raise ConfigError(f"{source}: [severity] names {rule.id} twice ({rule_id})")
        if integrity_rule(rule.id):
            raise ConfigError(
                f"{source}: [severity] {rule_id} is an integrity failure; its severity cannot "
                "be changed"
            )
        if not isinstance(value, dict):
            raise ConfigError(
                f"{source}: [severity] {rule_id}: a reason is required; write "
                f'{rule_id} = {{ severity = "{value}", reason = "why" }}'
            )
        unknown = set(value) - {"severity", "reason"}
        if unknown:
            raise ConfigError(
                f"{source}: [severity] {rule_id}: unknown fields {', '.join(sorted(unknown))}"
            )
        level_text, reason = value.get("severity"), value.get("reason")
        if not isinstance(level_text, str):
            raise ConfigError(f"{source}: [severity] {rule_id}: severity must be a string")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{source}: [severity] {rule_id}: a non-empty reason is required")
        level = parse_severity(level_text)
        if level is None:
            raise ConfigError(f"{source}: [severity] {rule_id}: use a severity, not 'never'")
        severity[rule.id] = level
        reasons[rule.id] = reason.strip()
    return severity, reasons


def extend_policy(
    policy: Policy,
    *,
    ignore: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Policy:
    """Return `policy` with command-line additions: `--ignore RULE[:GLOB]` suppressions (reason
    "command line"), and extra include/exclude globs.

    Raises:
        ConfigError: an unknown rule, one that may not be suppressed, or an invalid glob.
    """
    from modelguard.policy.suppress import parse_ignore

    extra = tuple(parse_ignore(spec) for spec in ignore)
    return replace(
        policy,
        suppressions=(*policy.suppressions, *extra),
        include=(*policy.include, *parse_globs(list(include), "--include", "command line")),
        exclude=(*policy.exclude, *parse_globs(list(exclude), "--exclude", "command line")),
    )


def discover_policy_file(cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the policy file discovery would use: `modelguard.toml`, else a `pyproject.toml`
    with a `[tool.modelguard]` table, in `cwd` (default: the current directory)."""
    base = Path(cwd) if cwd is not None else Path()
    first = base / "modelguard.toml"
    if first.is_file():
        return first
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        try:
            text = pyproject.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if "[tool.modelguard" in text:
            return pyproject
    return None


def policy_inside(path: str | os.PathLike[str], targets: Sequence[str | os.PathLike[str]]) -> bool:
    """Return True if the file `path` lies inside (or is) one of the scan targets.

    A policy found there came with the artifacts being scanned: a model repository could ship
    one that allowlists its own payload, so discovery must not use it. `modelguard verify`
    refuses trust material (keys, certificates) inside the model by the same test.

    Both where the file lies (its absolute path, links not followed: every file of a Hugging
    Face snapshot is a link into `blobs/`) and what it resolves to are compared, each against
    both the absolute and the resolved path of every target.
    """
    name = os.fspath(path)
    candidates = {
        Path(os.path.abspath(name)),
        Path(os.path.realpath(name)),
        Path(os.path.realpath(os.path.dirname(os.path.abspath(name)))) / os.path.basename(name),
    }
    for target in targets:
        given = os.fspath(target)
        is_dir = os.path.isdir(given)
        for root in {Path(os.path.abspath(given)), Path(os.path.realpath(given))}:
            for candidate in candidates:
                if candidate == root or (is_dir and candidate.is_relative_to(root)):
                    return True
    return False


def load_policy(
    path: str | os.PathLike[str] | None = None,
    *,
    scan_targets: Sequence[str | os.PathLike[str]] = (),
) -> Policy:
    """Load a policy file, or discover one in the current working directory.

    Args:
        path: a TOML file (`modelguard.toml`-style, or a `pyproject.toml` whose
            `[tool.modelguard]` table is used). None: discover one (`discover_policy_file`),
            else use the defaults.
        scan_targets: the paths about to be scanned; a discovered file inside one of them is
            not used (the defaults are, and `Policy.ignored` names the file). An explicit
            `path` is always used.

    Raises:
        ConfigError: the file is missing, is not valid TOML or has invalid entries.
    """
    if path is None:
        found = discover_policy_file()
        if found is None:
            return Policy()
        if policy_inside(found, scan_targets):
            return Policy(ignored=str(found))
        policy = _load_file(found, required=found.name == "modelguard.toml")
        return policy if policy is not None else Policy()
    policy = _load_file(Path(path), required=True)
    assert policy is not None
    return policy


def _load_file(path: Path, required: bool) -> Policy | None:
    import tomllib  # only when a policy file exists

    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"policy file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc}") from None
    tool = doc.get("tool", {})
    if isinstance(tool, dict) and "modelguard" in tool:
        table = tool["modelguard"]
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [tool.modelguard] must be a table")
        return _parse(table, str(path))
    if path.name == "pyproject.toml":
        if required:
            raise ConfigError(f"{path} has no [tool.modelguard] table")
        return None
    return _parse(doc, str(path))
