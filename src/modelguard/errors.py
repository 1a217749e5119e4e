"""The one exception tree of modelguard.

::

    ModelGuardError
    ├── ConfigError        (also a ValueError) bad option, policy or allowlist file
    ├── SourceError        (also an OSError) a scan target is missing or unreadable
    ├── FormatError        a container or stream cannot be parsed; the scanner turns it
    │                      into an incomplete result, callers of the format readers see it
    │   └── LimitExceeded  a named limit (depth, size, count, ratio) was reached
    └── UnsafeModelError   raised by ScanReport.raise_for_findings(); carries the report

`scan()` does not raise for problems inside a file: those are recorded in the report and make
its verdict fail closed. It raises only for misuse (bad options, a target that does not exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelguard.results import ScanReport

__all__ = [
    "ConfigError",
    "FormatError",
    "LimitExceeded",
    "ModelGuardError",
    "SourceError",
    "UnsafeModelError",
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
