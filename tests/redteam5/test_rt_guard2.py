"""Red team (issue 5), round 2: the loading guards after the round-1 fixes.

Every attack here uses only allowlisted names. The common primitive: the getattr stand-in
(vetting.py `Vetting._getattr`, last branch) and the scanner (evaluate.py `inert_attribute`)
both treat "a public attribute of an allowlisted instance" as inert, so a pickle can hold
unvetted bound methods such as `PosixPath(p).touch`, `.unlink`, `.read_text` or
`ZoneInfo(k).clear_cache`. The guard only checks calls made by pickle opcodes; allowlisted
*code* calls methods by name on the objects it is given (dict() calls `x.keys()`, numpy
ufuncs call `x.log()`, `__setstate__` implementations call `self._something()`), so a bound
method planted in an attribute bag (SimpleNamespace, a BUILD state) is called during the load.

Each test asserts the CORRECT behaviour (refused, nothing touched; the scanner does not call
the file safe), so a failing test is a gap. Payloads only touch files in tmp_path.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import factories.pickleasm as asm
from factories.pickleasm import Build, Call, G, Node, Raw, Seq, emit, program
from modelguard import FileChangedError, UnsafeModelError
from modelguard.guard import UnsafeLoadError, checked_path, guarded, safe_joblib_load, safe_loads


def _path(target: Path | str) -> Call:
    return Call(G("pathlib", "PosixPath"), (str(target),))


def _bound(obj: Node, name: str) -> Call:
    """getattr(obj, name) through the guarded stand-in: a bound method of an allowed instance."""
    return Call(G("builtins", "getattr"), (obj, name))


def _namespace(attrs: dict[str, Node]) -> Build:
    """types.SimpleNamespace() + BUILD of its attributes (no dunders: passes check_build)."""
    return Build(Call(G("types", "SimpleNamespace"), ()), attrs)


def _newobj(module: str, name: str) -> Raw:
    """cls.__new__(cls) by NEWOBJ, as picklers write class instances."""
    return Raw(emit(G(module, name), 4) + asm.EMPTY_TUPLE + asm.NEWOBJ)


def _load(data: bytes) -> tuple[Any, BaseException | None]:
    try:
        return safe_loads(data), None
    except Exception as exc:  # judged by the caller, after the canary
        return None, exc


def _scanner_blocks(tmp_path: Path, data: bytes, name: str = "model.pkl") -> None:
    path = tmp_path / "scan" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    with pytest.raises(UnsafeModelError):
        checked_path(path)


# -- 1. allowlisted code calls a planted bound method by name, during the load -------------------

DELEGATIONS: dict[str, Callable[[Path], Node]] = {
    # dict(x) on a non-dict calls x.keys() (an instance attribute): Path.touch() runs.
    "dict-calls-keys": lambda c: Call(
        G("builtins", "dict"), (_namespace({"keys": _bound(_path(c), "touch")}),)
    ),
    # OrderedDict(x) does the same (MutableMapping.update -> x.keys()).
    "ordereddict-calls-keys": lambda c: Call(
        G("collections", "OrderedDict"), (_namespace({"keys": _bound(_path(c), "touch")}),)
    ),
    # numpy ufuncs on an object operand call the method of the same name: np.log(x) -> x.log().
    "numpy-log-calls-log": lambda c: Call(
        G("numpy", "log"), (_namespace({"log": _bound(_path(c), "touch")}),)
    ),
    "numpy-sqrt-calls-sqrt": lambda c: Call(
        G("numpy", "sqrt"), (_namespace({"sqrt": _bound(_path(c), "touch")}),)
    ),
    # Optimizer.__setstate__: __dict__.update(state) then self._patch_step_function().
    "torch-optimizer-setstate": lambda c: Build(
        _newobj("torch.optim.adam", "Adam"),
        {"_patch_step_function": _bound(_path(c), "touch"), "defaults": {}, "state": {}},
    ),
    # rv_generic.__setstate__: __dict__.update(state) then self._attach_methods() (the
    # scipy check only looks at _parse_arg_template).
    "scipy-rv-generic-setstate": lambda c: Build(
        _newobj("scipy.stats._continuous_distns", "norm_gen"),
        {"_attach_methods": _bound(_path(c), "touch")},
    ),
}

_NEEDS = {"torch-optimizer-setstate": "torch", "scipy-rv-generic-setstate": "scipy"}


@pytest.mark.parametrize("make", list(DELEGATIONS.values()), ids=list(DELEGATIONS))
def test_guard_refuses_a_planted_bound_method(tmp_path: Path, make: Any) -> None:
    pytest.importorskip("numpy")
    ident = next(k for k, v in DELEGATIONS.items() if v is make)
    if ident in _NEEDS:
        pytest.importorskip(_NEEDS[ident])
    canary = tmp_path / "canary"
    _, outcome = _load(program(make(canary), 4))
    assert not canary.exists(), f"payload ran ({outcome!r})"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


@pytest.mark.parametrize("make", list(DELEGATIONS.values()), ids=list(DELEGATIONS))
def test_scanner_does_not_call_a_planted_bound_method_safe(tmp_path: Path, make: Any) -> None:
    # evaluate.py `_Judge.inert_attribute`: getattr(<allowlisted instance>, "touch") is inert,
    # "calling it later is judged as a call of a load-time value" -- but the call is made by
    # allowlisted code, not by an opcode, so nothing is ever judged: verdict SAFE, no findings.
    _scanner_blocks(tmp_path, program(make(tmp_path / "canary"), 4))


def test_guard_does_not_delete_files(tmp_path: Path) -> None:
    # The same gadget with Path.unlink: loading the pickle deletes a file of the victim's.
    victim = tmp_path / "important.txt"
    victim.write_text("keep me")
    node = Call(G("numpy", "sqrt"), (_namespace({"sqrt": _bound(_path(victim), "unlink")}),))
    _, outcome = _load(program(node, 4))
    assert victim.exists(), f"file deleted by the load ({outcome!r})"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


def test_guard_does_not_read_files_into_the_result(tmp_path: Path) -> None:
    # np.log(ns) returns ns.log(): with Path.read_text the loaded object carries the content
    # of any file the process can read (a served model echoing it back leaks it).
    pytest.importorskip("numpy")
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-token")
    node = Call(G("numpy", "log"), (_namespace({"log": _bound(_path(secret), "read_text")}),))
    loaded, outcome = _load(program(node, 4))
    assert "s3cr3t-token" not in repr(loaded)
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


def test_guard_does_not_clear_a_process_cache() -> None:
    # A classmethod reached from an instance is bound to the (global) class:
    # getattr(ZoneInfo("UTC"), "clear_cache") -> ZoneInfo.clear_cache(), called by dict().
    import zoneinfo

    before = zoneinfo.ZoneInfo("UTC")
    clear = _bound(Call(G("zoneinfo", "ZoneInfo"), ("UTC",)), "clear_cache")
    _, outcome = _load(program(Call(G("builtins", "dict"), (_namespace({"keys": clear}),)), 4))
    assert zoneinfo.ZoneInfo("UTC") is before, "the load cleared zoneinfo's process-wide cache"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


# -- 2. joblib: the wrapper's own method shadowed by its BUILD state -----------------------------


def test_safe_joblib_load_wrapper_method_shadowed(tmp_path: Path) -> None:
    # formats.py JoblibEngine.load_build: plain BUILD writes the state into the wrapper's
    # __dict__ (no dunder, so check_build passes), then `wrapper.read(...)` runs
    # read_array -> self.safe_get_numpy_array_alignment_bytes(): the planted Path.touch.
    np = pytest.importorskip("numpy")
    pytest.importorskip("joblib")
    canary = tmp_path / "canary"
    dtype_state = (3, "<", None, None, None, -1, -1, 0)
    dtype = Build(Call(G("numpy", "dtype"), ("f8", False, True)), dtype_state)
    state = {
        "subclass": G("numpy", "ndarray"), "shape": (1,), "order": "C", "dtype": dtype,
        "allow_mmap": False, "numpy_array_alignment_bytes": None,
        "safe_get_numpy_array_alignment_bytes": _bound(_path(canary), "touch"),
    }  # fmt: skip
    body = emit(Build(_newobj("joblib.numpy_pickle", "NumpyArrayWrapper"), state), 4)
    data = asm.proto(4) + body + np.zeros(1).tobytes() + asm.STOP
    path = tmp_path / "model.joblib"
    path.write_bytes(data)
    try:
        safe_joblib_load(path)
        outcome: BaseException | None = None
    except Exception as exc:
        outcome = exc
    assert not canary.exists(), f"payload ran ({outcome!r})"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"
    _scanner_blocks(tmp_path, data, "model.joblib")


# -- 3. callables stored in the loaded object, run by ordinary use after the load ---------------


def test_defaultdict_factory_set_by_build(tmp_path: Path) -> None:
    # CALLEE_ARGS checks defaultdict's factory at REDUCE only; BUILD's slot state sets
    # `default_factory` with setattr (not a dunder), so any missing-key lookup runs it.
    canary = tmp_path / "canary"
    node = Build(
        Call(G("collections", "defaultdict"), ()),
        (None, {"default_factory": _bound(_path(canary), "touch")}),
    )
    loaded, outcome = _load(program(node, 4))
    if loaded is not None:
        loaded["missing"]  # ordinary use: counts[key] += 1
    assert not canary.exists(), "the loaded defaultdict ran an unvetted factory"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


def test_function_transformer_func_is_vetted(tmp_path: Path) -> None:
    # FunctionTransformer's func "must itself be allowlisted" (numpy:log ...): a bound
    # Path.write_text passes, and the victim's pipeline writes its input to the attacker's path.
    pytest.importorskip("sklearn")
    canary = tmp_path / "canary"
    state = {
        "func": _bound(_path(canary), "write_text"), "inverse_func": None, "validate": False,
        "accept_sparse": False, "check_inverse": True, "feature_names_out": None,
        "kw_args": None, "inv_kw_args": None,
    }  # fmt: skip
    cls = _newobj("sklearn.preprocessing._function_transformer", "FunctionTransformer")
    node = Build(cls, state)
    loaded, outcome = _load(program(node, 4))
    if loaded is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(Exception):
                loaded.transform("user data")  # the victim's pipeline, after the load
    assert not canary.exists(), "FunctionTransformer.transform called an unvetted callable"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


# -- 4. guarded(): loaders that fall back to, or captured, an unrestricted unpickler ------------


def _system_touch(canary: Path) -> Call:
    return Call(G("os", "system"), (f"touch -- {shlex.quote(str(canary))}",))


def test_guarded_pandas_read_pickle_fallback(tmp_path: Path) -> None:
    # pandas.read_pickle: `try: pickle.load(h) except (AttributeError, ImportError, TypeError,
    # ValueError): pickle_compat.Unpickler(h).load()` -- a pickle._Unpickler subclass captured
    # at import, with no restriction. An allowlisted call that raises TypeError before the
    # payload (complex(<offset class>, 1); pandas' compat REDUCE then rebuilds the offset)
    # makes the guarded pickle.load fail and pandas re-read the stream unguarded.
    pd = pytest.importorskip("pandas")
    canary = tmp_path / "canary"
    trip = Call(G("builtins", "complex"), (G("pandas._libs.tslibs.offsets", "BQuarterEnd"), 1))
    path = tmp_path / "frame.pkl"
    path.write_bytes(program(Seq((trip,), _system_touch(canary)), 4))
    try:
        with guarded():
            pd.read_pickle(path)
        outcome: BaseException | None = None
    except Exception as exc:
        outcome = exc
    assert not canary.exists(), f"payload ran under guarded() ({outcome!r})"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


def test_guarded_joblib_load(tmp_path: Path) -> None:
    # joblib's NumpyUnpickler subclasses pickle._Unpickler (captured at import), which guarded()
    # does not replace: `with guarded(): joblib.load(path)` is unprotected (the most common way
    # scikit-learn models are loaded). guarded() could route joblib.load to safe_joblib_load.
    joblib = pytest.importorskip("joblib")
    canary = tmp_path / "canary"
    path = tmp_path / "model.joblib"
    path.write_bytes(program(_system_touch(canary), 4))
    try:
        with guarded():
            joblib.load(path)
        outcome: BaseException | None = None
    except Exception as exc:
        outcome = exc
    assert not canary.exists(), f"payload ran under guarded() ({outcome!r})"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


def test_guarded_restores_pickle_private_names() -> None:
    # Sanity (expected to hold): guarded() restores what it patched.
    import pickle

    saved = (pickle.load, pickle.loads, pickle.Unpickler, pickle._Unpickler)  # type: ignore[attr-defined]
    with guarded():
        pass
    assert (pickle.load, pickle.loads, pickle.Unpickler, pickle._Unpickler) == saved  # type: ignore[attr-defined]
    assert "modelguard" not in getattr(sys.modules.get("pickle"), "__file__", "")


# -- 5. scanner judgement of the post-load gadgets ---------------------------------------------

POST_LOAD: dict[str, Callable[[Path], Node]] = {
    "defaultdict-factory-by-build": lambda c: Build(
        Call(G("collections", "defaultdict"), ()),
        (None, {"default_factory": _bound(_path(c), "touch")}),
    ),
    "function-transformer-func": lambda c: Build(
        _newobj("sklearn.preprocessing._function_transformer", "FunctionTransformer"),
        {"func": _bound(_path(c), "write_text"), "validate": False, "kw_args": None},
    ),
}


@pytest.mark.parametrize("make", list(POST_LOAD.values()), ids=list(POST_LOAD))
def test_scanner_flags_unvetted_stored_callables(tmp_path: Path, make: Any) -> None:
    # Both files scan SAFE with no findings: the bound method is "inert" (never called by an
    # opcode) although the object it is stored in calls it on ordinary use.
    _scanner_blocks(tmp_path, program(make(tmp_path / "canary"), 4))


# -- 6. torch_load(verified=..., mmap=True): torch reopens the path, nothing re-checks it -------


def test_torch_load_verified_mmap_notices_a_swap(tmp_path: Path) -> None:
    # loaders.py torch_load: with `verified`, `source = real if kwargs.get("mmap") else handle`
    # and there is no identity check after the load (the unverified branch has one), so a file
    # replaced after VerifiedModel.open() is mmapped and returned.
    torch = pytest.importorskip("torch")
    from modelguard.guard import torch_load
    from modelguard.hashing import FileIdentity
    from modelguard.verified import VerifiedModel

    model = tmp_path / "model"
    model.mkdir()
    path = model / "sd.pt"
    torch.save({"w": torch.zeros(4)}, path)
    other = tmp_path / "other.pt"
    torch.save({"w": torch.full((4,), 7.0)}, other)
    verified = VerifiedModel(
        root=model,
        manifest=None,  # type: ignore[arg-type]  # only root/files are used to open
        signer=None,  # type: ignore[arg-type]
        files={"sd.pt": FileIdentity.from_stat(path.stat())},
        report=None,  # type: ignore[arg-type]
    )

    def swap_then_load(f: Any, **kwargs: Any) -> Any:
        other.replace(path)  # after the scan and after VerifiedModel.open's identity check
        return torch.load(f, **kwargs)

    try:
        loaded = torch_load("sd.pt", verified=verified, mmap=True, _torch_load=swap_then_load)
    except FileChangedError:
        return
    assert torch.equal(loaded["w"], torch.zeros(4)), "mmapped bytes that were never verified"
