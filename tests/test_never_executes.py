"""The scanner never imports, instantiates, unpickles or executes what it scans.

Proved in a fresh interpreter with an audit hook (PEP 578): after modelguard's own modules are
warmed up, scanning hostile files must raise no audit event that means code ran (exec,
pickle.find_class, os.system, subprocess, ctypes, marshal) and must not import the module a
payload names, even though that module is importable and would create a canary when imported.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

CANARY_MODULE = "mg_canary_payload_mod"


def _pickles(canary: Path) -> dict[str, bytes]:
    """Hostile pickles in several containers; every payload only touches `canary`."""
    cmd = f"touch {canary}".encode()
    reduce_system = (
        b"\x80\x02cos\nsystem\nq\x00X" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R."
    )
    import_canary = f"c{CANARY_MODULE}\nboom\n)R.".encode()
    exec_p0 = f"cbuiltins\nexec\n(Vopen({str(canary)!r}, 'w').close()\ntR.".encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", reduce_system)
        zf.writestr("archive/notes.txt", import_canary)
    nested = (
        b"\x80\x04\x8c\x06pickle\x8c\x05loads\x93C"
        + bytes([len(reduce_system)])
        + reduce_system
        + b"\x85R."
    )
    return {
        "system.pkl": reduce_system,
        "import.pkl": import_canary,
        "exec.pkl": exec_p0,
        "torch_like.pt": buf.getvalue(),
        "nested.pkl": nested,
        "polyglot.bin": exec_p0 + buf.getvalue(),
    }


def test_scan_raises_no_execution_audit_events(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    samples = tmp_path / "samples"
    samples.mkdir()
    for name, data in _pickles(canary).items():
        (samples / name).write_bytes(data)
    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / f"{CANARY_MODULE}.py").write_text(
        f"open({str(canary)!r}, 'w').close()\ndef boom():\n    pass\n"
    )
    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "w.pkl").write_bytes(pickle.dumps({"a": 1}))
    (warm / "w.txt").write_text("hello\n")
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(modules)!r})
        import modelguard
        from modelguard.report import OutputFormat, render
        # Warm up: import every module the scan and the renderers use.
        for fmt in OutputFormat:
            render(modelguard.scan({str(warm)!r}), fmt)
        modelguard.scan({str(samples)!r})
        events = []
        WATCH = ("exec", "pickle.find_class", "os.system", "os.exec", "os.posix_spawn",
                 "os.spawn", "subprocess.Popen", "ctypes.", "marshal.load", "import", "open")
        def hook(event, args):
            if event.startswith(WATCH):
                events.append([event, repr(args)[:200]])
        sys.addaudithook(hook)
        report = modelguard.scan({str(samples)!r})
        for fmt in OutputFormat:
            render(report, fmt)
        verdicts = {{f.path.rsplit("/", 1)[-1]: f.verdict.value for f in report.files}}
        print(json.dumps({{"events": events, "verdicts": verdicts}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    events = out["events"]
    # Opening the scanned files for reading is the only file access allowed.
    opened = [e for e in events if e[0] == "open"]
    assert all(str(samples) in args for _, args in opened), opened
    assert not [e for e in events if e[0] != "open"], events
    assert not canary.exists()
    # The unknown module is "suspicious" (not on the allowlist), the rest "dangerous"; all block.
    assert out["verdicts"].pop("import.pkl") == "suspicious"
    assert all(v == "dangerous" for v in out["verdicts"].values()), out["verdicts"]
    assert set(out["verdicts"]) | {"import.pkl"} == set(_pickles(canary))


def test_payload_module_really_creates_the_canary_when_imported(tmp_path: Path) -> None:
    """Control: the canary module used above does create the canary when imported."""
    canary = tmp_path / "canary"
    (tmp_path / f"{CANARY_MODULE}.py").write_text(f"open({str(canary)!r}, 'w').close()\n")
    subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
         f"import {CANARY_MODULE}"],
        check=True,
        timeout=60,
    )  # fmt: skip
    assert canary.exists()
