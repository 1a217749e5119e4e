"""modelguard: decide whether an ML model artifact is safe to let into a workflow.

The public surface is what `__all__` lists; every other module may change between releases.
Heavy modules are imported on first use so that `import modelguard` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelguard._version import __version__
from modelguard.errors import (
    ConfigError,
    FormatError,
    LimitExceeded,
    ModelGuardError,
    SourceError,
    UnsafeModelError,
)
from modelguard.results import (
    FileResult,
    Finding,
    Incomplete,
    Location,
    ScanReport,
    Severity,
    Verdict,
)

if TYPE_CHECKING:
    from modelguard.config import Limits
    from modelguard.policy import Policy, load_policy
    from modelguard.scanner import scan

__all__ = [
    "ConfigError",
    "FileResult",
    "Finding",
    "FormatError",
    "Incomplete",
    "LimitExceeded",
    "Limits",
    "Location",
    "ModelGuardError",
    "Policy",
    "ScanReport",
    "Severity",
    "SourceError",
    "UnsafeModelError",
    "Verdict",
    "__version__",
    "load_policy",
    "scan",
]

_LAZY = {
    "scan": ("modelguard.scanner", "scan"),
    "Policy": ("modelguard.policy", "Policy"),
    "load_policy": ("modelguard.policy", "load_policy"),
    "Limits": ("modelguard.config", "Limits"),
}


def __getattr__(name: str) -> Any:
    """Import the heavier public names on first use."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'modelguard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value
