"""Regenerate the sample files in `examples/samples/` used by the README's quick start.

The malicious samples only ever touch a canary file (`<tmp>/modelguard-canary`); they are
built from raw pickle opcodes, never by pickling live objects. Needs torch and numpy (the test
extra) only to rebuild the clean samples.

    python examples/make_samples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "samples"
PAYLOAD = (
    "import pathlib, tempfile; pathlib.Path(tempfile.gettempdir(), 'modelguard-canary').touch()"
)


def _exec_pickle() -> bytes:
    """Protocol 2: builtins.exec(PAYLOAD) via GLOBAL + REDUCE."""
    code = PAYLOAD.encode()
    return b"\x80\x02cbuiltins\nexec\nq\x00X" + len(code).to_bytes(4, "little") + code + b"\x85R."


def _dotted_path_pickle() -> bytes:
    """Protocol 4: STACK_GLOBAL pathlib + "os.system", a dotted path through a harmless module."""
    cmd = b'touch "${TMPDIR:-/tmp}/modelguard-canary"'
    return b"\x80\x04\x8c\x07pathlib\x8c\tos.system\x93\x8c" + bytes([len(cmd)]) + cmd + b"\x85R."


def main() -> None:
    """Write every sample."""
    OUT.mkdir(exist_ok=True)
    (OUT / "malicious_exec.pkl").write_bytes(_exec_pickle())
    # The same kind of payload under a name that claims a safe format.
    (OUT / "disguised.safetensors").write_bytes(_dotted_path_pickle())
    torch.manual_seed(0)
    state = {"linear.weight": torch.randn(4, 3), "linear.bias": torch.zeros(4)}
    torch.save(state, OUT / "clean_state_dict.pt")
    np.save(OUT / "clean_array.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    (OUT / "config.json").write_text(json.dumps({"hidden_size": 4, "model_type": "demo"}) + "\n")
    # A chat template that escapes an unsandboxed Jinja environment (CVE-2024-34359 style).
    # modelguard parses it and never renders it.
    template = (
        "{% for message in messages %}{{ message['content'] }}{% endfor %}"
        "{{ cycler.__init__.__globals__.os.popen('touch \"${TMPDIR:-/tmp}/modelguard-canary\"')"
        ".read() }}"
    )
    (OUT / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": 512, "chat_template": template}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
