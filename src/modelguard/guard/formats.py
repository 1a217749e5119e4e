"""Policy-enforcing loaders for the pickle-based formats of joblib and NumPy.

`safe_joblib_load` runs joblib's own unpickler machinery (its array wrappers, compression
detection) with the checks of `SafeUnpickler`; `safe_numpy_load` reads `.npy`/`.npz` files and
loads object arrays (which NumPy stores as pickles) through `SafeUnpickler`.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable
from functools import cache
from typing import IO, Any

from modelguard.guard.errors import UnsafeLoadError
from modelguard.guard.unpickler import SafeUnpickler, _make_engine
from modelguard.policy import Policy

__all__ = ["safe_joblib_load", "safe_numpy_load"]

# Captured at import: `guarded()` replaces `pickle._Unpickler` while a block runs.
_PY_UNPICKLER: Any = pickle._Unpickler


@cache
def _joblib_engine() -> type[Any]:
    # joblib ships no type information
    from joblib.numpy_pickle import (  # type: ignore[import-untyped]
        NumpyArrayWrapper,
        NumpyUnpickler,
    )

    base = _make_engine(NumpyUnpickler)

    class JoblibEngine(base):  # type: ignore[misc, valid-type]
        def load_build(self) -> None:
            self._vet.check_build(self.stack[-2], self.stack[-1])
            wrapper = self.stack[-2]
            if isinstance(wrapper, NumpyArrayWrapper):
                # Set the wrapper's state with the plain BUILD, then read the array ourselves
                # when it holds objects: joblib would unpickle that nested stream with a
                # checker on names only.
                _PY_UNPICKLER.load_build(self)
                if getattr(wrapper, "dtype", None) is not None and wrapper.dtype.hasobject:
                    self.stack.pop()
                    inner = SafeUnpickler(self.file_handle, policy=self._vet.policy).load()
                    if not isinstance(inner, self.np.ndarray):
                        raise UnsafeLoadError("refused joblib array: not an ndarray")
                    self.stack.append(inner)
                    return
                self.stack.pop()
                self.stack.append(wrapper.read(self, self.ensure_native_byte_order))
                return
            NumpyUnpickler.load_build(self)

    JoblibEngine.dispatch[pickle.BUILD[0]] = JoblibEngine.load_build
    return JoblibEngine


class _JoblibOuter(SafeUnpickler):
    def __init__(self, path: str, fobj: IO[bytes], policy: Policy) -> None:
        self._path = path
        super().__init__(fobj, policy=policy)

    def _make_engine(
        self, file: IO[bytes], encoding: str, errors: str, buffers: Iterable[Any] | None = None
    ) -> Any:
        engine = _joblib_engine()(self._path, file, True, mmap_mode=None)
        engine._vet = self._vet
        engine._outer = self
        return engine


def safe_joblib_load(
    path: str | os.PathLike[str] | IO[bytes], *, policy: Policy | None = None
) -> Any:
    """Load a `joblib.dump` file (any compression joblib detects) enforcing the policy.

    `path` may also be a binary file object (as for `joblib.load`). Memory mapping and the
    pre-0.10 multi-file format are not supported (the latter needs NumPy's unrestricted loader
    on its companion files).

    Raises:
        UnsafeLoadError: the file asks for something the policy does not allow, or is in the
            pre-0.10 format.
        ImportError: joblib is not installed.
    """
    try:
        from joblib.numpy_pickle import (
            _validate_fileobject_and_memmap,
        )
    except ImportError as exc:
        raise ImportError("safe_joblib_load needs joblib (pip install joblib)") from exc
    pol = policy if policy is not None else Policy()
    if not isinstance(path, (str, os.PathLike)):
        name = str(getattr(path, "name", ""))
        with _validate_fileobject_and_memmap(path, name, None) as (fobj, _):
            return _JoblibOuter(name, fobj, pol).load()
    name = os.fspath(path)
    with (
        open(name, "rb") as raw,
        _validate_fileobject_and_memmap(raw, name, None) as (fobj, _),
    ):
        if isinstance(fobj, str):
            raise UnsafeLoadError("refused: pre-0.10 joblib multi-file format")
        return _JoblibOuter(name, fobj, pol).load()


def _joblib_load_in(policy: Policy) -> Any:
    """A `joblib.load` replacement for `guarded()`: `safe_joblib_load` with the block's policy."""

    def load(filename: Any, mmap_mode: str | None = None, **_: Any) -> Any:
        if mmap_mode not in (None, "r", "c"):
            raise UnsafeLoadError(
                f"guarded joblib.load: mmap_mode={mmap_mode!r} is not supported by the "
                "policy-enforcing loader (read-only modes load into memory)"
            )
        return safe_joblib_load(filename, policy=policy)

    return load


@cache
def _pandas_engine() -> type[Any]:
    # pandas ships no type information here
    from pandas._libs.arrays import NDArrayBacked  # type: ignore[import-untyped]
    from pandas._libs.tslibs import BaseOffset  # type: ignore[import-untyped]
    from pandas.compat import pickle_compat  # type: ignore[import-untyped]

    base = _make_engine(pickle_compat.Unpickler)

    class PandasEngine(base):  # type: ignore[misc, valid-type]
        def load_reduce(self) -> None:
            # pandas' compat REDUCE retries a failed call as args[0].__new__(*args) for offsets
            # and period arrays: that class must be allowlisted for NEWOBJ as well.
            args = self.stack[-1]
            first = args[0] if isinstance(args, tuple) and args else None
            if isinstance(first, type) and issubclass(first, (BaseOffset, NDArrayBacked)):
                self._vet.check_class(first, "REDUCE (pandas compat __new__)")
            base.load_reduce(self)

    PandasEngine.dispatch[pickle.REDUCE[0]] = PandasEngine.load_reduce
    return PandasEngine


class _PandasCompatOuter(SafeUnpickler):
    """pandas' compat unpickler (old pickles: moved classes, offsets) with the policy enforced."""

    def find_class(self, module: str, name: str) -> Any:
        from pandas.compat.pickle_compat import (  # type: ignore[import-untyped]
            _class_locations_map,
        )

        module, name = _class_locations_map.get((module, name), (module, name))
        return super().find_class(module, name)

    def _make_engine(
        self, file: IO[bytes], encoding: str, errors: str, buffers: Iterable[Any] | None = None
    ) -> Any:
        engine = _pandas_engine()(file, encoding=encoding, errors=errors)
        engine._vet = self._vet
        engine._outer = self
        return engine


def _pandas_read_pickle_in(policy: Policy) -> Any:
    """A `pandas.read_pickle` replacement for `guarded()`.

    pandas retries a failed `pickle.load` with its own compat unpickler (captured at import, no
    restriction); this replacement retries with the same compat rules but the policy enforced,
    and a refusal is never retried.
    """

    def read_pickle(
        filepath_or_buffer: Any, compression: Any = "infer", storage_options: Any = None
    ) -> Any:
        import warnings

        from pandas.io.common import get_handle  # type: ignore[import-untyped]

        retry = (AttributeError, ImportError, TypeError, ValueError)
        with (
            get_handle(
                filepath_or_buffer,
                "rb",
                compression=compression,
                is_text=False,
                storage_options=storage_options,
            ) as handles,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", Warning)
            try:
                return SafeUnpickler(handles.handle, policy=policy).load()
            except retry:
                handles.handle.seek(0)
                return _PandasCompatOuter(handles.handle, policy=policy).load()

    return read_pickle


def _read_npy(handle: IO[bytes], policy: Policy) -> Any:
    import numpy as np
    from numpy.lib import format as npformat

    major, _ = npformat.read_magic(handle)
    if major == 1:
        shape, _, dtype = npformat.read_array_header_1_0(handle)
    else:
        shape, _, dtype = npformat.read_array_header_2_0(handle)
    if not dtype.hasobject:
        handle.seek(0)
        return npformat.read_array(handle, allow_pickle=False)
    array = SafeUnpickler(handle, policy=policy, encoding="latin1").load()
    if not isinstance(array, np.ndarray):
        raise UnsafeLoadError("refused .npy object array: the pickle is not an ndarray")
    if tuple(array.shape) != tuple(shape):
        raise UnsafeLoadError("refused .npy object array: shape differs from its header")
    return array


def safe_numpy_load(path: str | os.PathLike[str], *, policy: Policy | None = None) -> Any:
    """Load a `.npy` array or every array of a `.npz` file; object arrays go through
    `SafeUnpickler` (NumPy's `allow_pickle=True` would run any pickle).

    Returns:
        An ndarray for `.npy`, a dict name -> ndarray for `.npz`.

    Raises:
        UnsafeLoadError: an object array asks for something the policy does not allow.
        ImportError: NumPy is not installed.
    """
    try:
        import numpy  # noqa: F401  (fail early with a clear message)
    except ImportError as exc:
        raise ImportError("safe_numpy_load needs numpy") from exc
    pol = policy if policy is not None else Policy()
    name = os.fspath(path)
    if zipfile.is_zipfile(name):
        out: dict[str, Any] = {}
        with zipfile.ZipFile(name) as archive:
            for member in archive.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                with archive.open(member) as raw:
                    import io

                    out[key] = _read_npy(io.BytesIO(raw.read()), pol)
        return out
    with open(name, "rb") as handle:
        return _read_npy(handle, pol)
