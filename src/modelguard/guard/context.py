"""`guarded()`: route the process's pickle (and torch.load) entry points through the guards.

Inside `with guarded(policy):`, `pickle.load`, `pickle.loads`, `pickle.Unpickler` and
`pickle._Unpickler` are replaced by the policy-enforcing versions, `torch.load` (if torch is
already imported) by a scan-then-load wrapper that keeps `weights_only=True` unless the caller
passes `False`, `joblib.load` (if imported) by `safe_joblib_load` and `pandas.read_pickle` (if
imported) by a `SafeUnpickler` load with pandas' compat rules. The originals are restored on
exit, also when the block raises.

This is process-global monkeypatching: it affects every thread while the block runs, it is not
thread-safe to enter from several threads at once, and code that captured the originals before
the block (`from pickle import loads`, `_pickle.loads`, C extensions) bypasses it. It is a
safety net for third-party code you cannot change, not a sandbox.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from modelguard.guard.errors import UnsafeLoadError
from modelguard.guard.unpickler import SafeUnpickler
from modelguard.policy import Policy

__all__ = ["guarded"]


def _bound_unpickler(policy: Policy) -> type[SafeUnpickler]:
    class GuardedUnpickler(SafeUnpickler):
        """`pickle.Unpickler` inside `guarded()`: a `SafeUnpickler` with the block's policy."""

        def __init__(self, file: IO[bytes], **kwargs: Any) -> None:
            kwargs.setdefault("policy", policy)
            super().__init__(file, **kwargs)

    return GuardedUnpickler


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in ("fix_imports", "encoding", "errors", "buffers") if k in kwargs}


def _torch_wrapper(original: Callable[..., Any], policy: Policy) -> Callable[..., Any]:
    from modelguard.guard.loaders import torch_load

    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        if args:
            kwargs["map_location"] = args[0]
            if len(args) > 1:
                raise TypeError("guarded torch.load: pass options after map_location by name")
        weights_only = kwargs.pop("weights_only", None)
        if isinstance(f, (str, os.PathLike)):
            return torch_load(
                f,
                policy=policy,
                weights_only=weights_only is not False,
                _torch_load=original,  # the guard's own load must not re-enter the wrapper
                **kwargs,
            )
        if weights_only is False:
            raise UnsafeLoadError(
                "guarded torch.load: weights_only=False on a file object cannot be scanned "
                "first; pass a path"
            )
        return original(f, weights_only=True, **kwargs)

    return load


@contextmanager
def guarded(policy: Policy | None = None) -> Iterator[None]:
    """Patch pickle's loaders (and torch/joblib/pandas loaders if imported) for the block.

    Not thread-safe and process-global (see the module docstring).

    Yields:
        None; loads inside the block raise `UnsafeLoadError` (pickle) or `UnsafeModelError`
        (torch.load's scan) instead of running what the policy does not allow.
    """
    pol = policy if policy is not None else Policy()
    unpickler = _bound_unpickler(pol)

    def load(file: IO[bytes], **kwargs: Any) -> Any:
        return unpickler(file, **_options(kwargs)).load()

    def loads(data: bytes | bytearray | memoryview, /, **kwargs: Any) -> Any:
        import io

        return unpickler(io.BytesIO(bytes(data)), **_options(kwargs)).load()

    saved: list[tuple[Any, str, Any]] = []
    patches: list[tuple[Any, str, Any]] = [
        (pickle, "load", load),
        (pickle, "loads", loads),
        (pickle, "Unpickler", unpickler),
        # Code that builds the pure-Python unpickler at run time (`pickle._Unpickler(f)`);
        # subclasses made before the block (joblib, pandas) are covered by the entries below.
        (pickle, "_Unpickler", unpickler),
    ]
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "load"):
        patches.append((torch, "load", _torch_wrapper(torch.load, pol)))
    patches.extend(_library_patches(pol))
    try:
        for owner, name, value in patches:
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def _library_patches(policy: Policy) -> list[tuple[Any, str, Any]]:
    """Replacements for the loaders of already-imported libraries with their own unpicklers.

    joblib's `NumpyUnpickler` and pandas' compat unpickler subclass `pickle._Unpickler` at
    import, so patching `pickle` does not reach them: `joblib.load` is routed to
    `safe_joblib_load` and `pandas.read_pickle` to `SafeUnpickler` (with pandas' compat rules,
    never its unrestricted fallback).
    """
    from modelguard.guard.formats import _joblib_load_in, _pandas_read_pickle_in

    out: list[tuple[Any, str, Any]] = []
    factories = (
        (("joblib", "joblib.numpy_pickle"), "load", _joblib_load_in),
        (("pandas", "pandas.io.pickle"), "read_pickle", _pandas_read_pickle_in),
    )
    for modules, name, factory in factories:
        replacement = None
        for module_name in modules:
            module = sys.modules.get(module_name)
            if module is not None and hasattr(module, name):
                replacement = replacement or factory(policy)
                out.append((module, name, replacement))
    return out
