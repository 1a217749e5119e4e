"""Guards for library users: scan before loading, and load with the policy enforced.

* `checked_path(target, policy)`: scan, raise `UnsafeModelError` (with the report) if anything
  blocks or the scan is incomplete, else return the local path that was scanned.
* `torch_load(path, ...)`: scan, then `torch.load(..., weights_only=True)`; a weights-only
  refusal raises `WeightsOnlyRefusal` naming the globals to allow, never a silent fallback.
* `from_pretrained(cls, target, ...)`: scan a folder or cached `hf://` snapshot and load it with
  transformers from that same path (local files only, safetensors preferred, no remote code).
* `SafeUnpickler`, `safe_load`, `safe_loads`, `safe_joblib_load`, `safe_numpy_load`: load
  pickles with the allowlist enforced at load time; anything else raises `UnsafeLoadError`.
* `guarded(policy)`: a context manager that routes `pickle.load(s)`/`pickle.Unpickler` (and
  `pickle._Unpickler`), `torch.load`, `joblib.load` and `pandas.read_pickle` through the above
  for the duration of a block (process-global).

Pass `verified=` (a `VerifiedModel` from `modelguard.verify`) to `safe_load`/`torch_load` to
open the file through the verification result: a file changed since verification fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelguard.guard.errors import UnsafeLoadError, WeightsOnlyRefusal

if TYPE_CHECKING:
    from modelguard.guard.context import guarded
    from modelguard.guard.formats import safe_joblib_load, safe_numpy_load
    from modelguard.guard.loaders import checked_path, from_pretrained, torch_load
    from modelguard.guard.unpickler import SafeUnpickler, safe_load, safe_loads

__all__ = [
    "SafeUnpickler",
    "UnsafeLoadError",
    "WeightsOnlyRefusal",
    "checked_path",
    "from_pretrained",
    "guarded",
    "safe_joblib_load",
    "safe_load",
    "safe_loads",
    "safe_numpy_load",
    "torch_load",
]

_LAZY = {
    "SafeUnpickler": "modelguard.guard.unpickler",
    "safe_load": "modelguard.guard.unpickler",
    "safe_loads": "modelguard.guard.unpickler",
    "safe_joblib_load": "modelguard.guard.formats",
    "safe_numpy_load": "modelguard.guard.formats",
    "checked_path": "modelguard.guard.loaders",
    "from_pretrained": "modelguard.guard.loaders",
    "torch_load": "modelguard.guard.loaders",
    "guarded": "modelguard.guard.context",
}


def __getattr__(name: str) -> Any:
    """Import the guard functions on first use (they pull in the policy tables)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelguard.guard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
