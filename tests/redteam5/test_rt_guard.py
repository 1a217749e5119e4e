"""Red team (issue 5): the loading guards must refuse what they promise to refuse.

Each test builds a payload whose only effect is on a canary file in tmp_path or on a global it
then restores; it asserts the CORRECT behaviour (an `UnsafeLoadError`, nothing touched), so a
failing test is a gap in `modelguard.guard`.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from factories.pickleasm import Call, G, Node, program
from modelguard import FileChangedError, UnsafeModelError
from modelguard.guard import UnsafeLoadError, checked_path, guarded, safe_loads, torch_load

ROOT = Path(__file__).resolve().parents[2]


def _path(canary: Path) -> Call:
    return Call(G("pathlib", "PosixPath"), (str(canary),))


def _bound(obj: Node, name: str) -> Call:
    """getattr(obj, name) through the guarded stand-in: a bound method of an allowed instance."""
    return Call(G("builtins", "getattr"), (obj, name))


def _write_text(canary: Path) -> Call:
    """`PosixPath(canary).write_text`: a bound method that is never vetted for calls."""
    return _bound(_path(canary), "write_text")


def _refused(data: bytes, canary: Path | None = None) -> None:
    """Load `data`; the canary must be untouched and the load refused with UnsafeLoadError."""
    try:
        safe_loads(data)
        outcome: BaseException | None = None
    except Exception as exc:  # judged below, after the canary
        outcome = exc
    if canary is not None:
        assert not canary.exists(), f"payload ran ({outcome!r})"
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


# -- 1. getattr(global, missing, default) registers the default as a vetted callable ------------


def test_getattr_default_is_not_laundered_into_a_callable(tmp_path: Path) -> None:
    # vetting.py Vetting._getattr: `self.add(getattr(obj, name, *default), ruling)` registers
    # whatever the default is as an allowlisted callable when the dotted name is allowed
    # (`builtins:dict.<anything>` is "a method of a builtin data type").
    canary = tmp_path / "canary"
    laundered = Call(G("builtins", "getattr"), (G("builtins", "dict"), "nope", _write_text(canary)))
    _refused(program(Call(laundered, ("pwned",)), 4), canary)


def test_guarded_pickle_loads_refuses_the_laundered_call(tmp_path: Path) -> None:
    # The same chain through `with guarded(): pickle.loads(...)`, the third-party-code path.
    canary = tmp_path / "canary"
    laundered = Call(G("builtins", "getattr"), (G("builtins", "dict"), "nope", _write_text(canary)))
    data = program(Call(laundered, ("pwned",)), 4)
    with guarded(), pytest.raises(UnsafeLoadError):
        pickle.loads(data)
    assert not canary.exists()


def test_checked_path_blocks_what_the_guard_would_run(tmp_path: Path) -> None:
    # The scanner calls these chains SAFE too (no findings), so checked_path() followed by any
    # load (torch_load(weights_only=False), safe_load) gives no protection either.
    canary = tmp_path / "canary"
    laundered = Call(G("builtins", "getattr"), (G("builtins", "dict"), "nope", _write_text(canary)))
    path = tmp_path / "model.pkl"
    path.write_bytes(program(Call(laundered, ("pwned",)), 4))
    with pytest.raises(UnsafeModelError):
        checked_path(path)
    assert not canary.exists()


# -- 2. allowlisted helpers call a callable taken from the stream, unchecked -------------------


HELPERS = {
    # __randomstate_ctor(name, ctor) -> RandomState(ctor(name))
    "numpy-randomstate-ctor": lambda c: Call(
        G("numpy.random._pickle", "__randomstate_ctor"), ("pwned", _write_text(c))
    ),
    "numpy-generator-ctor": lambda c: Call(
        G("numpy.random._pickle", "__generator_ctor"), ("pwned", _write_text(c))
    ),
    # _rebuild_from_type_v2(func, new_type, args, state) -> func(*args)
    "torch-rebuild-from-type-v2": lambda c: Call(
        G("torch._tensor", "_rebuild_from_type_v2"),
        (_write_text(c), G("torch", "Tensor"), ("pwned",), {}),
    ),
    # dill._create_array(f, args, state, npdict) -> f(*args)
    "dill-create-array": lambda c: Call(
        G("dill._dill", "_create_array"), (_write_text(c), ("pwned",), None, None)
    ),
}


@pytest.mark.parametrize("make", list(HELPERS.values()), ids=list(HELPERS))
def test_helpers_do_not_call_unvetted_callables(tmp_path: Path, make: Any) -> None:
    # The allowlist says these callees "must pass this list too"; the guard checks only
    # copyreg's class takers (vetting.py _CLASS_TAKERS), so a bound method of an allowed
    # instance (reachable through the getattr stand-in) is called with stream arguments.
    pytest.importorskip("torch")
    pytest.importorskip("dill")
    canary = tmp_path / "canary"
    _refused(program(make(canary), 4), canary)


# -- 3. methods of builtin data types applied to global objects -------------------------------


def test_builtin_method_cannot_mutate_a_global_dict() -> None:
    # `builtins:dict.setdefault` is allowed as "a method of a builtin data type"; its first
    # argument is not checked, so it mutates re.RegexFlag's class-level member map (reached as a
    # single-underscore attribute of an allowed instance).
    flag = Call(G("re", "RegexFlag"), (2,))
    members = _bound(flag, "_member_map_")
    setdefault = _bound(G("builtins", "dict"), "setdefault")
    data = program(Call(setdefault, (members, "RT_PWNED", 7)), 4)
    try:
        _refused(data)
        assert "RT_PWNED" not in re.RegexFlag._member_map_
    finally:
        re.RegexFlag._member_map_.pop("RT_PWNED", None)


def test_str_format_cannot_walk_to_globals() -> None:
    # `builtins:str.format` walks attributes named in the format string, dunders included:
    # argparse.Namespace.__init__.__globals__ -> argparse's `_os` -> os.environ.
    os.environ["RT_GUARD_SECRET"] = "s3cr3t"
    try:
        fmt = _bound(G("builtins", "str"), "format")
        spec = "{0.__init__.__globals__[_os].environ[RT_GUARD_SECRET]}"
        data = program(Call(fmt, (spec, Call(G("argparse", "Namespace"), ()))), 4)
        try:
            loaded = safe_loads(data)
        except UnsafeLoadError:
            return
        assert "s3cr3t" not in str(loaded)
    finally:
        del os.environ["RT_GUARD_SECRET"]


# -- 4. allowlist module patterns import any module they match ---------------------------------


_IMPORT_PROBE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from factories.pickleasm import G, program
    from modelguard.guard import UnsafeLoadError, safe_loads
    module = {module!r}
    try:
        safe_loads(program(G(module, "__pyx_unpickle_Zz"), 4))
        outcome = "loaded"
    except UnsafeLoadError:
        outcome = "refused"
    except Exception as exc:
        outcome = type(exc).__name__
    print(outcome, module in sys.modules)
    """
)


@pytest.mark.parametrize(
    "module",
    [
        # imports and setattr()s sklearn.impute.IterativeImputer (global state change)
        "sklearn.experimental.enable_iterative_imputer",
        # sklearn's test configuration: imports pytest and sets up test fixtures
        "sklearn.conftest",
    ],
)
def test_pattern_entries_do_not_import_arbitrary_submodules(module: str) -> None:
    # allowlist.toml `"sklearn.*:__pyx_unpickle_*"`: '*' spans dots on the module side, and
    # vetting.py `_resolve` imports the module before looking the name up.
    pytest.importorskip("sklearn")
    code = _IMPORT_PROBE.format(tests=str(ROOT / "tests"), module=module)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "False"]


def test_torchscript_names_are_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `"__torch__:*"` / `"__torch__.*:*"` are allowlisted because "pickle.load cannot import
    # them"; the SafeUnpickler imports them, so a `__torch__` package on sys.path (a model
    # folder used as the working directory) runs.
    canary = tmp_path / "canary"
    package = tmp_path / "site" / "__torch__"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(canary)!r}, 'w').close()\nclass M: pass\n")
    if "__torch__" in sys.modules:
        pytest.skip("a __torch__ module is already imported")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    try:
        _refused(program(G("__torch__", "M"), 4), canary)
    finally:
        sys.modules.pop("__torch__", None)


# -- 5. torch.storage._load_from_bytes runs TorchScript -------------------------------------


def _torchscript_bytes(canary: Path) -> bytes:
    torch = pytest.importorskip("torch")

    class Mapper(torch.nn.Module):
        def __init__(self, p: str) -> None:
            super().__init__()
            self.p = p

        def forward(self, x: Any) -> Any:
            return x

        @torch.jit.export
        def __getstate__(self) -> tuple[str, bool]:
            return (self.p, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[str, bool]) -> None:
            # torch.from_file(shared=True) opens the path O_CREAT: it creates the canary.
            t = torch.from_file(state[0], True, 8)
            self.p = state[0] + str(t.numel())
            self.training = state[1]

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Mapper(str(canary))), buf)
    assert not canary.exists()
    return buf.getvalue()


def test_load_from_bytes_does_not_run_torchscript(tmp_path: Path) -> None:
    # vetting.py `_torch_from_bytes` calls torch.load(..., weights_only=False): for a
    # TorchScript zip torch.load hands over to torch.jit.load, which runs the archive's
    # __setstate__ (TorchScript code). Nothing scans those bytes on this path.
    canary = tmp_path / "canary"
    data = _torchscript_bytes(canary)
    _refused(program(Call(G("torch.storage", "_load_from_bytes"), (data,)), 4), canary)


def test_torch_load_opt_out_does_not_run_torchscript(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "scripted.pt"
    path.write_bytes(_torchscript_bytes(canary))
    with pytest.raises((UnsafeModelError, UnsafeLoadError)):
        torch_load(path, weights_only=False)
    assert not canary.exists()


# -- 6. torch_load: a file rewritten in place between scan and load ------------------------


def test_torch_load_notices_an_in_place_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found when torch_load's file identity was (dev, ino, size, mtime): a same-size rewrite
    # with the mtime put back (os.utime) passed, and the open handle then read the new bytes.
    # It is now a hashing.FileIdentity, whose st_ctime_ns the writer cannot set back.
    torch = pytest.importorskip("torch")
    from modelguard.guard import loaders

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = tmp_path / "a" / "sd.pt"
    torch.save({"w": torch.zeros(4)}, path)
    other = tmp_path / "b" / "sd.pt"  # same name: same archive prefix, same size
    torch.save({"w": torch.full((4,), 7.0)}, other)
    swapped = other.read_bytes()
    assert len(swapped) == path.stat().st_size
    real = loaders.checked_path

    def scan_then_swap(target: Any, policy: Any = None) -> Path:
        result = real(target, policy)
        st = os.stat(path)
        with open(path, "r+b") as fh:
            fh.write(swapped)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return result

    monkeypatch.setattr(loaders, "checked_path", scan_then_swap)
    try:
        loaded = torch_load(path)
    except FileChangedError:
        return
    assert torch.equal(loaded["w"], torch.zeros(4)), "loaded bytes that were never scanned"


# -- 7. guarded(): restore on errors and nesting (expected to hold) --------------------------


def test_guarded_restores_after_error_and_nesting() -> None:
    originals = (pickle.load, pickle.loads, pickle.Unpickler)
    with pytest.raises(RuntimeError), guarded():
        with guarded():
            assert pickle.loads is not originals[1]
        assert pickle.loads is not originals[1]
        raise RuntimeError
    assert (pickle.load, pickle.loads, pickle.Unpickler) == originals
