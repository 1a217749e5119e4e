"""modelguard: decide whether an ML model artifact is safe to let into a workflow.

The public surface is what `__all__` lists; every other module may change between releases.
Heavy modules are imported on first use so that `import modelguard` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelguard._version import __version__
from modelguard.errors import (
    BundleError,
    ConfigError,
    FileChangedError,
    FormatError,
    IntegrityError,
    LegacyFormatError,
    LimitExceeded,
    ManifestError,
    ModelGuardError,
    SignatureError,
    SignerError,
    SourceError,
    UnsafeModelError,
    VerificationError,
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
    from modelguard.manifest import Manifest, build_manifest
    from modelguard.policy import Policy, load_policy
    from modelguard.scanner import scan
    from modelguard.signer import SignedModel, sign
    from modelguard.verification import VerifiedModel, verify

__all__ = [
    "BundleError",
    "ConfigError",
    "FileChangedError",
    "FileResult",
    "Finding",
    "FormatError",
    "Incomplete",
    "IntegrityError",
    "LegacyFormatError",
    "LimitExceeded",
    "Limits",
    "Location",
    "Manifest",
    "ManifestError",
    "ModelGuardError",
    "Policy",
    "ScanReport",
    "Severity",
    "SignatureError",
    "SignedModel",
    "SignerError",
    "SourceError",
    "UnsafeModelError",
    "Verdict",
    "VerificationError",
    "VerifiedModel",
    "__version__",
    "build_manifest",
    "load_policy",
    "scan",
    "sign",
    "verify",
]

_LAZY = {
    "scan": ("modelguard.scanner", "scan"),
    "Policy": ("modelguard.policy", "Policy"),
    "load_policy": ("modelguard.policy", "load_policy"),
    "Limits": ("modelguard.config", "Limits"),
    "Manifest": ("modelguard.manifest", "Manifest"),
    "build_manifest": ("modelguard.manifest", "build_manifest"),
    "SignedModel": ("modelguard.signer", "SignedModel"),
    "sign": ("modelguard.signer", "sign"),
    "VerifiedModel": ("modelguard.verification", "VerifiedModel"),
    "verify": ("modelguard.verification", "verify"),
}


_SUBMODULES = frozenset({"guard", "hub"})
"""Subpackages reachable as attributes (`modelguard.guard.torch_load`) without importing them."""


def __getattr__(name: str) -> Any:
    """Import the heavier public names, and the guard and hub subpackages, on first use."""
    import importlib

    if name in _SUBMODULES:
        module = importlib.import_module(f"modelguard.{name}")
        globals()[name] = module
        return module
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'modelguard' has no attribute {name!r}")

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value
