"""List a model's files safely: names, links and file types checked, nothing followed blindly.

A model is a single file or a folder walked with `os.scandir` and `lstat`, never following a
link into a folder. Unsafe or ambiguous names, symbolic links (unless allowed and resolving
inside the model or its Hugging Face ``blobs/`` folder) and non-regular files are returned as
problems with their MG3xx rule ids, so a verifier can report all of them at once.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from modelguard.errors import ConfigError, SourceError
from modelguard.fileid import FileIdentity
from modelguard.signing.types import Problem

__all__ = [
    "DEFAULT_IGNORED",
    "Listing",
    "ModelFile",
    "check_name",
    "collisions",
    "list_model",
    "normalize_pattern",
]

DEFAULT_IGNORED: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
_DRIVE = re.compile(r"[A-Za-z]:")


def check_name(name: str) -> str | None:
    """Return why a model-relative POSIX name is unsafe, or None when it is safe.

    Unsafe: empty, NUL or other control characters, undecodable bytes, backslashes, absolute
    paths, drive letters, empty, ``.`` or ``..`` components.
    """
    if not isinstance(name, str) or not name:
        return "empty name"
    if "\x00" in name:
        return "contains a NUL byte"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "contains bytes that are not valid UTF-8"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "contains a control character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    parts = name.split("/")
    if "" in parts:
        return "has an empty path component"
    if "." in parts or ".." in parts:
        return "has a '.' or '..' component"
    return None


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def collisions(names: Sequence[str]) -> list[tuple[str, str]]:
    """Return (name, other) pairs whose names, or folders, match after NFC and case folding."""
    seen: dict[str, str] = {}
    found: list[tuple[str, str]] = []
    for name in sorted(names):
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            node = "/".join(parts[:i])
            key = _fold(node)
            other = seen.setdefault(key, node)
            if other != node:
                found.append((name, other))
                break
    return found


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a model on disk.

    Attributes:
        name: model-relative POSIX name.
        path: the file system path (of the link itself, for an allowed link).
        size: size in bytes.
        identity: the file's identity when listed (the link target's, for a link).
        link_target: the fully resolved target of an allowed symbolic link.
    """

    name: str
    path: str
    size: int
    identity: FileIdentity
    link_target: str | None = None


@dataclass(frozen=True)
class Listing:
    """The files of a model folder or file, with what was ignored or refused.

    Attributes:
        root: the absolute model path.
        single_file: True when the model is one file.
        files: regular files (and allowed links), sorted by name.
        ignored: names matched by the ignore rules (folders are not descended), sorted.
        problems: refused names (MG306), links (MG314) and non-regular files (MG315).
    """

    root: str
    single_file: bool
    files: tuple[ModelFile, ...]
    ignored: tuple[str, ...]
    problems: tuple[Problem, ...]


def normalize_pattern(pattern: str) -> str:
    cleaned = pattern.strip().replace(os.sep, "/")
    while cleaned.startswith("./"):
        cleaned = cleaned[2:]
    cleaned = cleaned.rstrip("/")
    if not cleaned or cleaned.startswith("/") or ".." in cleaned.split("/"):
        raise ConfigError(f"ignore path {pattern!r} must be a name relative to the model")
    return cleaned


class _Walker:
    """Collects files, ignored names and problems while walking one model folder."""

    def __init__(self, root: str, patterns: Sequence[str], git: bool, allow_links: bool) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.patterns = patterns
        self.git = git
        self.allow_links = allow_links
        self.files: list[ModelFile] = []
        self.ignored: list[str] = []
        self.problems: list[Problem] = []

    def problem(self, rule_id: str, name: str, message: str, **evidence: str) -> None:
        self.problems.append(Problem(rule_id, message, name, tuple(evidence.items())))

    def is_ignored(self, name: str) -> bool:
        if self.git and name in DEFAULT_IGNORED:  # top level only: names with no "/"
            return True
        return any(
            name == p or name.startswith(p + "/") or fnmatchcase(name, p) for p in self.patterns
        )

    def walk(self, folder: str, prefix: str) -> None:
        """Walk `folder` depth-first with an explicit stack (no recursion limit to hit)."""
        stack = [(folder, prefix)]
        while stack:
            here, at = stack.pop()
            try:
                with os.scandir(here) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                if not at:
                    raise SourceError(f"cannot list {here}: {exc.strerror or exc}") from exc
                self.problem("MG315", at.rstrip("/"), f"folder cannot be read: {exc.strerror}")
                continue
            folders: list[tuple[str, str]] = []
            for entry in entries:
                name = at + entry.name
                if self.is_ignored(name):
                    self.ignored.append(name)
                    continue
                reason = check_name(name)
                if reason is not None:
                    shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
                    self.problem("MG306", shown, f"unsafe file name: {reason}")
                    continue
                if entry.is_symlink():
                    self.link(name, entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, name + "/"))
                else:
                    self.regular(name, entry.path, os.lstat(entry.path))
            stack.extend(reversed(folders))

    def regular(self, name: str, path: str, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode):
            self.files.append(ModelFile(name, path, st.st_size, FileIdentity.from_stat(st)))
        else:
            kind = _kind(st.st_mode)
            self.problem("MG315", name, f"{kind} is not a regular file", kind=kind)

    def link(self, name: str, path: str) -> None:
        target = os.readlink(path)
        if not self.allow_links:
            self.problem("MG314", name, "symbolic links are not allowed", target=target)
            return
        try:
            resolved = os.path.realpath(path, strict=True)
            st = os.stat(resolved)
        except OSError:
            self.problem("MG314", name, "the link is dangling or cyclic", target=target)
            return
        if stat.S_ISDIR(st.st_mode):
            self.problem("MG314", name, "the link points to a folder", target=target)
        elif not _link_allowed(resolved, self.real_root):
            self.problem("MG314", name, "the link resolves outside the model", target=resolved)
        elif not stat.S_ISREG(st.st_mode):
            self.problem("MG315", name, "the link target is not a regular file", target=resolved)
        else:
            identity = FileIdentity.from_stat(st)
            self.files.append(ModelFile(name, path, st.st_size, identity, resolved))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _link_allowed(resolved: str, real_root: str) -> bool:
    """A link may resolve inside the model, or into the Hugging Face cache ``blobs/`` folder of
    the repository whose ``snapshots/<revision>`` holds the model."""
    if _inside(resolved, real_root):
        return True
    folder = real_root
    while os.path.dirname(folder) != folder:
        parent = os.path.dirname(folder)
        if os.path.basename(parent) == "snapshots":
            blobs = os.path.join(os.path.dirname(parent), "blobs")
            return os.path.dirname(resolved) == blobs
        folder = parent
    return False


def list_model(
    path: str | os.PathLike[str],
    *,
    ignore_paths: Sequence[str] = (),
    ignore_git_paths: bool = True,
    allow_links: bool = False,
) -> Listing:
    """List the files of a model without following links into folders.

    Args:
        path: a model folder or a single model file.
        ignore_paths: model-relative names or glob patterns (matched on the whole name) to
            leave out; a folder name leaves out everything under it.
        ignore_git_paths: leave out the top-level `DEFAULT_IGNORED` names.
        allow_links: accept symbolic links to regular files inside the model (or in the
            Hugging Face cache ``blobs/`` folder of the snapshot); otherwise every link is a
            problem.

    Returns:
        The listing; unsafe names, refused links and non-regular files are problems, not
        exceptions.

    Raises:
        SourceError: the path does not exist or the folder cannot be listed.
        ConfigError: an ignore path is absolute or climbs out with ``..``.
    """
    root = os.path.abspath(os.fspath(path))
    patterns = tuple(normalize_pattern(p) for p in ignore_paths)
    try:
        st = os.lstat(root)
    except OSError as exc:
        raise SourceError(f"cannot read {root}: {exc.strerror or exc}") from exc
    if os.path.isdir(root):  # a link to a folder given as the model itself is followed
        walker = _Walker(root, patterns, ignore_git_paths, allow_links)
        walker.walk(root, "")
        names = [f.name for f in walker.files]
        for name, other in collisions(names):
            walker.problem("MG306", name, f"the name is ambiguous with {other!r}", other=other)
        single = False
    else:
        # One file: it is the model, named by its basename; ignore rules do not apply.
        walker = _Walker(os.path.dirname(root), (), False, allow_links)
        name = os.path.basename(root)
        reason = check_name(name)
        if reason is not None:
            walker.problem("MG306", name, f"unsafe file name: {reason}")
        elif stat.S_ISLNK(st.st_mode):
            walker.link(name, root)
        else:
            walker.regular(name, root, st)
        single = True
    return Listing(
        root,
        single,
        tuple(sorted(walker.files, key=lambda f: f.name)),
        tuple(sorted(walker.ignored)),
        tuple(sorted(walker.problems, key=lambda p: (p.name or "", p.rule_id, p.message))),
    )
