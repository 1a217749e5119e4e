"""Errors raised by the guards when a load is refused.

Both are `ModelGuardError`s; `UnsafeLoadError` is also a `pickle.UnpicklingError`, so code that
already handles a failed unpickle keeps working. A refused *scan* raises the report-carrying
`modelguard.UnsafeModelError` instead.
"""

from __future__ import annotations

import pickle

from modelguard.errors import ModelGuardError

__all__ = ["UnsafeLoadError", "WeightsOnlyRefusal"]


class UnsafeLoadError(ModelGuardError, pickle.UnpicklingError):
    """The policy-enforcing unpickler refused what the stream asked for.

    Attributes:
        name: the `module:qualname` that was refused, when the refusal is about a name.
        reason: why it was refused (not on the allowlist, denied family, wrong opcode, ...).
    """

    def __init__(self, message: str, *, name: str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason or message


class WeightsOnlyRefusal(UnsafeLoadError):
    """`torch.load(weights_only=True)` refused globals that torch does not allow by default.

    modelguard never falls back to `weights_only=False`; the message names the globals and how
    to allow them (`torch.serialization.add_safe_globals`) if you trust them.

    Attributes:
        globals: the `module.qualname` strings torch would need allowed.
    """

    def __init__(self, message: str, globals_: tuple[str, ...]) -> None:
        super().__init__(message, name=globals_[0] if globals_ else None)
        self.globals = globals_
