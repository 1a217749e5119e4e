"""Proof that every malicious corpus sample really runs its payload when loaded.

Each sample is built in a temp dir and loaded by its `loader` in a separate interpreter
(`sys.executable`, cwd = the temp dir); the test passes when the canary file appears. Exceptions
after the payload are expected for some samples (execute-then-fail, truncated streams, bogus
magic numbers) and are ignored. This keeps the detection tests honest: no sample in the corpus
is a fake positive.
"""

from __future__ import annotations

import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from factories.malicious import LOADERS, SAMPLES, MaliciousSample, sample_by_id

TIMEOUT_S = 60

# The victim side of every loader: a script that gets the artifact path (and, for
# pickle-member, the member chain) in argv and loads it the way real code would.
_VICTIMS: dict[str, str] = {
    "pickle": """
import pickle, sys
with open(sys.argv[1], "rb") as f:
    pickle.load(f)
""",
    "pickle-multi": """
import pickle, sys
with open(sys.argv[1], "rb") as f:
    while True:
        try:
            pickle.load(f)
        except EOFError:
            break
""",
    "pickle-bytesio": """
import io, pickle, sys
with open(sys.argv[1], "rb") as f:
    pickle.load(io.BytesIO(f.read()))
""",
    "pickle-member": """
import io, pickle, sys, tarfile, zipfile
with open(sys.argv[1], "rb") as f:
    data = f.read()
for name in sys.argv[2].split("!"):
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            data = zf.read(name)
    else:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            data = tf.extractfile(name).read()
pickle.loads(data)
""",
    "torch": """
import sys, torch
torch.load(sys.argv[1], weights_only=False)
""",
    "joblib": """
import sys, joblib
joblib.load(sys.argv[1])
""",
    "numpy": """
import sys, numpy
numpy.load(sys.argv[1], allow_pickle=True)
""",
    "numpy-npz": """
import sys, numpy
with numpy.load(sys.argv[1], allow_pickle=True) as npz:
    for key in npz.files:
        npz[key]
""",
    "dill": """
import sys, dill
with open(sys.argv[1], "rb") as f:
    dill.load(f)
""",
    "pandas": """
import sys, pandas
pandas.read_pickle(sys.argv[1])
""",
}


def victim_argv(loader: str, artifact: Path) -> list[str]:
    """Return the command line that loads `artifact` the way `loader` says."""
    kind, _, member = loader.partition(":")
    argv = [sys.executable, "-c", _VICTIMS[kind], str(artifact)]
    return [*argv, member] if member else argv


def test_every_loader_has_a_victim() -> None:
    assert set(_VICTIMS) == set(LOADERS)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_sample_executes_its_payload(sample: MaliciousSample, tmp_path: Path) -> None:
    out_dir = tmp_path / "artifact"
    out_dir.mkdir()
    canary = tmp_path / "canary"
    artifact = sample.build(out_dir, canary)
    assert artifact.is_file() and artifact.is_relative_to(out_dir)
    assert not canary.exists(), "building the sample must not run its payload"

    proc = subprocess.run(
        victim_argv(sample.loader, artifact),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )

    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    assert canary.exists(), f"{sample.id}: loader {sample.loader!r} did not run it:\n{tail}"


# The container and parser tricks only matter if the naive reader really disagrees with the
# loader; these check that premise without executing anything.

_ZIPFILE_RAISES = (zipfile.BadZipFile, RuntimeError, NotImplementedError)


@pytest.mark.parametrize(
    "sample_id",
    [
        "container-torch-zip-name-mismatch",
        "container-torch-zip-flag-0x01",
        "container-torch-zip-flag-0x20",
        "container-torch-zip-flag-0x40",
        "container-torch-zip-bad-crc",
    ],
)
def test_zip_trick_makes_zipfile_raise(sample_id: str, tmp_path: Path) -> None:
    artifact = sample_by_id(sample_id).build(tmp_path, tmp_path / "canary")
    with zipfile.ZipFile(artifact) as zf, pytest.raises(_ZIPFILE_RAISES):
        for info in zf.infolist():
            zf.read(info)


def test_duplicate_member_zipfile_reads_the_benign_copy(tmp_path: Path) -> None:
    sample = sample_by_id("container-torch-zip-duplicate-data-pkl")
    artifact = sample.build(tmp_path, tmp_path / "canary")
    with zipfile.ZipFile(artifact) as zf:
        names = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        assert len(names) == 2
        seen_by_zipfile = zf.read(names[0])
    assert b"system" not in seen_by_zipfile, "zipfile should resolve the name to the last copy"


def test_polyglot_is_also_a_zip(tmp_path: Path) -> None:
    artifact = sample_by_id("container-pickle-zip-polyglot").build(tmp_path, tmp_path / "canary")
    assert zipfile.is_zipfile(artifact)


def test_frame_overreach_hides_the_payload_from_pickletools(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    artifact = sample_by_id("stream-frame-overreach").build(tmp_path, canary)
    ops = [op.name for op, _, _ in pickletools.genops(artifact.read_bytes())]
    assert not {"GLOBAL", "STACK_GLOBAL", "REDUCE"} & set(ops), ops
    # A buffered file object has peek(), so CPython reads like pickletools and nothing runs;
    # the payload runs only through readers without peek() (BytesIO, unbuffered files).
    subprocess.run(
        victim_argv("pickle", artifact), cwd=tmp_path, capture_output=True, timeout=TIMEOUT_S
    )
    assert not canary.exists()
