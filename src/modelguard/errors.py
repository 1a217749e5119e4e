"""The one exception tree of modelguard.

::

    ModelGuardError
    ├── ConfigError        (also a ValueError) bad option, policy or allowlist file
    ├── SourceError        (also an OSError) a scan target is missing or unreadable
    ├── FormatError        a container or stream cannot be parsed; the scanner turns it
    │                      into an incomplete result, callers of the format readers see it
    │   └── LimitExceeded  a named limit (depth, size, count, ratio) was reached
    ├── UnsafeModelError   raised by ScanReport.raise_for_findings(); carries the report
    └── VerificationError  a model does not match its signature (carries rule id and report)
        ├── BundleError        the signature file is malformed or of an unsupported kind
        ├── LegacyFormatError  a legacy signature form, refused without the legacy switch
        ├── SignatureError     a cryptographic signature does not verify
        ├── SignerError        the signature is valid but the signer is not the trusted one
        ├── ManifestError      the signed manifest is inconsistent or names unsafe paths
        └── IntegrityError     the files on disk differ from the signed manifest
            └── FileChangedError  a verified file changed after verification (TOCTOU)

`scan()` does not raise for problems inside a file: those are recorded in the report and make
its verdict fail closed. It raises only for misuse (bad options, a target that does not exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelguard.results import ScanReport

__all__ = [
    "BundleError",
    "ConfigError",
    "FileChangedError",
    "FormatError",
    "IntegrityError",
    "LegacyFormatError",
    "LimitExceeded",
    "ManifestError",
    "ModelGuardError",
    "SignatureError",
    "SignerError",
    "SourceError",
    "UnsafeModelError",
    "VerificationError",
]


class ModelGuardError(Exception):
    """Base class of every exception modelguard raises on purpose."""


class ConfigError(ModelGuardError, ValueError):
    """An option, policy file or allowlist entry is invalid."""


class SourceError(ModelGuardError, OSError):
    """A scan target does not exist or cannot be read."""


class FormatError(ModelGuardError):
    """A container or stream cannot be parsed.

    Attributes:
        offset: byte offset in the stream or file where parsing failed, when known.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class LimitExceeded(FormatError):
    """A named limit was reached while reading a container or stream.

    Attributes:
        limit: the name of the limit (a field of `modelguard.config.Limits`).
    """

    def __init__(self, limit: str, message: str, offset: int | None = None) -> None:
        super().__init__(message, offset)
        self.limit = limit


class UnsafeModelError(ModelGuardError):
    """The scanned artifact has blocking findings or could not be scanned completely.

    Attributes:
        report: the full `ScanReport` that led to the refusal.
    """

    def __init__(self, message: str, report: ScanReport) -> None:
        super().__init__(message)
        self.report = report


class VerificationError(ModelGuardError):
    """A model does not match its signature, or the signature cannot be trusted.

    Never a `ValueError`: callers catch this tree, not parsing errors.

    Attributes:
        rule_id: the MG3xx rule of the failure (`modelguard explain RULE`).
        report: the verification report with every finding, when one was built.
    """

    default_rule = "MG301"

    def __init__(
        self, message: str, *, rule_id: str | None = None, report: ScanReport | None = None
    ) -> None:
        super().__init__(message)
        self.rule_id = rule_id or self.default_rule
        self.report = report


class BundleError(VerificationError):
    """The signature file is not a well-formed OMS Sigstore bundle of a supported kind."""

    default_rule = "MG303"


class LegacyFormatError(VerificationError):
    """A legacy signature form (v0.1 predicate, legacy DSSE encoding) without the switch."""

    default_rule = "MG304"


class SignatureError(VerificationError):
    """A cryptographic signature does not verify over the signed payload."""

    default_rule = "MG301"


class SignerError(VerificationError):
    """The signature verifies but its signer is not the one the policy trusts."""

    default_rule = "MG302"


class ManifestError(VerificationError):
    """The signed manifest is inconsistent or names unsafe paths."""

    default_rule = "MG305"


class IntegrityError(VerificationError):
    """The files on disk differ from the signed manifest (changed, missing, extra, links)."""

    default_rule = "MG311"


class FileChangedError(IntegrityError):
    """A file changed after it was verified (device, inode, size or times differ)."""

    default_rule = "MG317"
