"""Red team (issue 5), round 3: the loading guards and the scanner after the round-2 fixes.

Every payload here uses only names the shipped allowlist allows, and no getattr.

1. `[allow_new]` (construct-only) classes are refused as REDUCE/INST/OBJ callees, but nothing
   stops a pickle from handing the *class object itself* to allowlisted code that calls it by
   method name: `dict(ns)` calls `ns.keys()`, `numpy.log(ns)` calls `ns.log()`. A BUILD of a
   SimpleNamespace may store any callable under a key that does not shadow a SimpleNamespace
   method (vetting.py `Vetting._check_state_values`), and the scanner never judges a
   construct-only global used as a value (evaluate.py `_Judge.calls` only looks at calls made
   by opcodes). So `accelerate.state:PartialState()` / `TrainingArguments()` run their
   `__init__` (env-dependent distributed setup, process-wide singleton state) during the load.
2. `fractions:Fraction("1e100000000")` is a 19-byte time/memory bomb (10**exponent is
   computed eagerly); the guard runs it.

Each test asserts the CORRECT behaviour, so a failing test is a gap. Payloads only touch
process state that the tests restore, or a subprocess that is killed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import factories.pickleasm as asm
from factories.pickleasm import Build, Call, G, Node, Raw, emit, program
from modelguard import UnsafeModelError
from modelguard.guard import UnsafeLoadError, checked_path, safe_loads

ROOT = Path(__file__).resolve().parents[2]


def _namespace(attrs: dict[str, Node]) -> Build:
    """types.SimpleNamespace() + BUILD of its attributes (no dunders: passes check_build)."""
    return Build(Call(G("types", "SimpleNamespace"), ()), attrs)


def _newobj(module: str, name: str) -> Raw:
    return Raw(emit(G(module, name), 4) + asm.EMPTY_TUPLE + asm.NEWOBJ)


def _load(data: bytes) -> tuple[Any, BaseException | None]:
    try:
        return safe_loads(data), None
    except Exception as exc:  # judged by the caller
        return None, exc


def _scanner_blocks(tmp_path: Path, data: bytes, name: str = "model.pkl") -> None:
    path = tmp_path / "scan" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    with pytest.raises(UnsafeModelError):
        checked_path(path)


# -- 1. construct-only classes called by allowlisted code, by method name -----------------------

_PARTIAL_STATE = G("accelerate.state", "PartialState")
_TRAINING_ARGS = G("transformers.training_args", "TrainingArguments")

# (needs, node): the construct-only class is never the callee of an opcode, only a value.
DELEGATIONS: dict[str, tuple[str, Node]] = {
    # dict(ns) -> ns.keys() -> PartialState(): accelerate's process-wide _shared_state is
    # initialised (and, under torchrun/SLURM env vars, torch.distributed.init_process_group
    # connects to MASTER_ADDR).
    "dict-keys-partialstate": (
        "accelerate",
        Call(G("builtins", "dict"), (_namespace({"keys": _PARTIAL_STATE}),)),
    ),
    # numpy.log(ns) -> ns.log() -> PartialState(); the load even succeeds and returns it.
    "numpy-log-partialstate": (
        "accelerate",
        Call(G("numpy", "log"), (_namespace({"log": _PARTIAL_STATE}),)),
    ),
    # dict(ns) -> TrainingArguments(): __post_init__ runs the device setup the allowlist's
    # reason says must not run (it initialises accelerate's state too).
    "dict-keys-training-arguments": (
        "transformers",
        Call(G("builtins", "dict"), (_namespace({"keys": _TRAINING_ARGS}),)),
    ),
}


@pytest.fixture
def accelerate_state() -> Iterator[dict[str, Any]]:
    state_mod = pytest.importorskip("accelerate.state")
    shared = state_mod.PartialState._shared_state
    saved = dict(shared)
    acc_shared = state_mod.AcceleratorState._shared_state
    acc_saved = dict(acc_shared)
    shared.clear()
    try:
        yield shared
    finally:
        shared.clear()
        shared.update(saved)
        acc_shared.clear()
        acc_shared.update(acc_saved)


@pytest.mark.parametrize("ident", list(DELEGATIONS))
def test_guard_does_not_run_a_construct_only_init(
    ident: str, accelerate_state: dict[str, Any]
) -> None:
    needs, node = DELEGATIONS[ident]
    pytest.importorskip(needs)
    pytest.importorskip("numpy")
    _, outcome = _load(program(node, 4))
    assert not accelerate_state, (
        f"the load ran an [allow_new] class's __init__: accelerate state is now "
        f"{sorted(accelerate_state)} ({outcome!r})"
    )
    assert isinstance(outcome, UnsafeLoadError), f"not refused: {outcome!r}"


@pytest.mark.parametrize("ident", list(DELEGATIONS))
def test_scanner_flags_a_construct_only_class_used_as_a_value(tmp_path: Path, ident: str) -> None:
    # Verdict SAFE, no findings: the class is an ALLOW (construct_only) import, and the call
    # is made by dict()/numpy, not by an opcode. A plain pickle.load runs the same __init__.
    _scanner_blocks(tmp_path, program(DELEGATIONS[ident][1], 4))


def test_plain_pickle_runs_the_construct_only_init(accelerate_state: dict[str, Any]) -> None:
    # Sanity (expected to hold): what the scanner calls safe does run code under pickle.load.
    import pickle

    pytest.importorskip("numpy")
    with pytest.raises(TypeError):
        pickle.loads(program(DELEGATIONS["dict-keys-partialstate"][1], 4))
    assert accelerate_state, "pickle.load did not run PartialState() (payload is inert)"


# -- 2. Fraction("1e<huge>"): a time/memory bomb the guard executes ------------------------------

_BOMB_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from factories.pickleasm import Call, G, program
    from modelguard.guard import UnsafeLoadError, safe_loads
    data = program(Call(G("fractions", "Fraction"), ("1e100000000",)), 4)
    try:
        safe_loads(data)
    except UnsafeLoadError:
        print("refused")
    else:
        print("loaded")
    """
)


def test_guard_does_not_hang_on_a_fraction_exponent_bomb() -> None:
    # fractions.Fraction("1e100000000") computes 10**100000000 eagerly (1e7 already takes ~6 s
    # and the cost grows super-linearly): a 19-byte string pins a CPU for minutes and takes
    # ~40 MB per result. The allowlist reason says "parsed from a string; pure value".
    script = _BOMB_SCRIPT.format(tests=str(ROOT / "tests"))
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=8, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        pytest.fail("safe_loads still computing Fraction('1e100000000') after 8 s")
    assert done.stdout.strip() == "refused", done.stdout + done.stderr
