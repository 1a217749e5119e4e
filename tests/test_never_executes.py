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
import re
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
    # Opening the scanned files for reading is the only file access allowed (a file descriptor
    # re-wrapped by os.fdopen was opened, and checked, by path first).
    opened = [e for e in events if e[0] == "open" and not re.match(r"\(\d+, ", e[1])]
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


def _format_samples(folder: Path, canary: Path) -> None:
    """Hostile non-pickle files: every payload would only touch `canary` if it ever ran."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    template = "{{ cycler.__init__.__globals__.os.popen('touch " + str(canary) + "').read() }}"
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    (folder / "chat_template.jinja").write_text(template)
    gguf = __import__("pytest").importorskip("gguf")
    writer = gguf.GGUFWriter(str(folder / "model.gguf"), "llama")
    writer.add_chat_template(template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    keras = __import__("pytest").importorskip("keras")
    inputs = keras.Input((2,))
    target = str(canary)
    # Keras runs the function once on symbolic inputs while building: the payload branch is
    # never taken there, only a loader that ran the marshalled code on None would reach it.
    payload = lambda x: x if x is not None else open(target, "w")  # noqa: E731, SIM115
    outputs = keras.layers.Lambda(payload)(inputs)
    keras.Model(inputs, outputs).save(folder / "lambda.keras")
    torch = __import__("pytest").importorskip("torch")

    class Reader(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_file(self.path, size=4) + x

    torch.jit.script(Reader(str(canary))).save(str(folder / "reader.pt"))


def test_format_scans_raise_no_execution_audit_events(tmp_path: Path) -> None:
    """Keras Lambdas, chat templates, TorchScript code: parsed, never run or rendered."""
    canary = tmp_path / "canary"
    samples = tmp_path / "formats"
    samples.mkdir()
    _format_samples(samples, canary)
    script = textwrap.dedent(
        f"""
        import json, sys
        import modelguard
        from modelguard.report import OutputFormat, render
        # Warm up on the same files: every analyser module is imported by the first scan.
        for fmt in OutputFormat:
            render(modelguard.scan({str(samples)!r}), fmt)
        events = []
        WATCH = ("exec", "pickle.find_class", "os.system", "os.exec", "os.posix_spawn",
                 "os.spawn", "subprocess.Popen", "ctypes.", "marshal.load", "import", "open")
        def hook(event, args):
            if event.startswith(WATCH):
                events.append([event, repr(args)[:300]])
        sys.addaudithook(hook)
        report = modelguard.scan({str(samples)!r})
        verdicts = {{f.path.rsplit("/", 1)[-1]: f.verdict.value for f in report.files}}
        print(json.dumps({{"events": events, "verdicts": verdicts}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    events = out["events"]
    # Reading the scanned files, and the HDF5 probe subprocess (which only reads metadata and
    # runs with resource limits) for the Keras weights, are the only activity allowed.
    allowed = [
        e
        for e in events
        if (e[0] == "open" and (str(samples) in e[1] or re.match(r"\(\d+, ", e[1])))
        or (e[0] in ("subprocess.Popen", "os.posix_spawn", "open") and "h5probe" in e[1])
        or (e[0] == "open" and "modelguard-h5" in e[1])
    ]
    assert [e for e in events if e not in allowed] == [], events
    assert not canary.exists()
    assert all(v == "dangerous" for v in out["verdicts"].values()), out["verdicts"]


def test_indicator_pass_raises_no_execution_audit_events(tmp_path: Path) -> None:
    """The tensor pass and the diff read torch checkpoints through the symbolic pickle
    machine: a checkpoint whose data.pkl would run code is listed, never unpickled."""
    import zipfile

    canary = tmp_path / "canary"
    model = tmp_path / "model"
    model.mkdir()
    evil = _pickles(canary)["exec.pkl"]
    with zipfile.ZipFile(model / "pytorch_model.bin", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", evil)
        archive.writestr("archive/version", "3\n")
    (model / "config.json").write_text('{"hidden_size": 4, "num_hidden_layers": 1}')
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"hidden_size": 4, "num_hidden_layers": 1}')
    script = textwrap.dedent(
        f"""
        import json, sys
        import modelguard
        modelguard.scan({str(model)!r}, indicators=True, base={str(base)!r})
        events = []
        WATCH = ("exec", "pickle.find_class", "os.system", "os.exec", "os.posix_spawn",
                 "os.spawn", "subprocess.Popen", "ctypes.", "marshal.load", "import")
        def hook(event, args):
            if event.startswith(WATCH):
                events.append([event, repr(args)[:200]])
        sys.addaudithook(hook)
        report = modelguard.scan({str(model)!r}, indicators=True, base={str(base)!r})
        print(json.dumps({{"events": events, "verdict": report.verdict.value}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["events"] == []
    assert out["verdict"] == "dangerous"
    assert not canary.exists()
