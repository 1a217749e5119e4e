"""The result of a successful verification, and where signatures live by default."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from modelguard.errors import FileChangedError

if TYPE_CHECKING:
    from modelguard.hashing import FileIdentity
    from modelguard.manifest import Manifest
    from modelguard.results import ScanReport
    from modelguard.signing.types import SignerInfo

__all__ = ["VerifiedModel", "default_signature_path"]


def default_signature_path(model: str | os.PathLike[str]) -> Path:
    """Return where `sign` writes and `verify` looks for a signature by default.

    A folder's signature is `model.sig` inside it (it ships with the model and is left out of
    the manifest); a single file's is the file name plus `.sig`, beside it.
    """
    path = Path(model)
    if path.is_dir():
        return path / "model.sig"
    return path.with_name(path.name + ".sig")


@dataclass(frozen=True)
class VerifiedModel:
    """A model that verified, with what is needed to use it safely.

    Attributes:
        root: the model path as given (a folder, or a single file).
        manifest: the signed manifest.
        signer: who signed (as established by the signature check).
        files: model-relative name -> the identity (device, inode, size, times) the file had
            when it was hashed.
        report: the verification report (findings at info level only).
        links_allowed: links inside the model were allowed (and are followed on open).
    """

    root: Path
    manifest: Manifest
    signer: SignerInfo
    files: Mapping[str, FileIdentity]
    report: ScanReport
    links_allowed: bool = False

    @property
    def single_file(self) -> bool:
        """Return True when the model is one file rather than a folder."""
        return not self.root.is_dir()

    def path(self, name: str | None = None) -> Path:
        """Return the path of verified file `name` (None: the single file of a file model).

        Raises:
            KeyError: `name` is not a verified file.
        """
        name = self._name(name)
        return self.root if self.single_file else self.root / name

    def _name(self, name: str | None) -> str:
        if name is None:
            if len(self.files) != 1:
                raise KeyError("name a file: this model has several")
            return next(iter(self.files))
        if name not in self.files:
            raise KeyError(f"{name!r} is not a verified file of this model")
        return name

    def check(self, name: str | None = None) -> None:
        """Re-check that file `name` (every file when None and the model is a folder) is
        unchanged since verification: same device, inode, size and modification times.

        Raises:
            FileChangedError: a file changed, vanished or became a link.
        """
        names = list(self.files) if name is None else [self._name(name)]
        for one in names:
            try:
                path = self.path(one)
                st = os.stat(path) if self.links_allowed else os.lstat(path)
            except OSError as exc:
                raise FileChangedError(
                    f"{one}: cannot be read since verification ({exc.strerror or exc})"
                ) from exc
            self._compare(one, st)

    def _compare(self, name: str, st: os.stat_result) -> None:
        expected = self.files[name]
        if stat.S_ISLNK(st.st_mode) and not self.links_allowed:
            raise FileChangedError(f"{name}: became a symbolic link after verification")
        if not expected.matches(st):
            raise FileChangedError(
                f"{name}: changed after verification (size, inode or modification time "
                "differ); verify again"
            )

    def open(self, name: str | None = None) -> IO[bytes]:
        """Open verified file `name` for reading, failing if it changed since verification.

        The identity is compared on the opened descriptor (`fstat`), so a swap between the
        check and the open cannot slip through; links are not followed unless the signature
        allowed them.

        Raises:
            FileChangedError: the file changed, vanished or became a link.
        """
        name = self._name(name)
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        if not self.links_allowed:
            flags |= getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path(name), flags)
        except OSError as exc:
            raise FileChangedError(
                f"{name}: cannot be opened since verification ({exc.strerror or exc})"
            ) from exc
        try:
            self._compare(name, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")
