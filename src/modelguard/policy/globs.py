"""Path globs of a policy (suppressions, include/exclude), matched against display paths.

A glob is fnmatch-style: `*` matches any characters (`/` included), `?` one character,
`[seq]`/`[!seq]` a set; `**/` also matches no folder at all (`a/**/x.pkl` matches `a/x.pkl`).
It is matched against the whole path and against each trailing part that starts at a folder
boundary, so `model.pkl` and `sub/*.bin` match `repo/model.pkl` and `repo/sub/w.bin`. A glob
starting with `/` matches the whole path only. Matching is case-sensitive, on POSIX-style paths.

Suppression globs match display paths, and also the path inside each folder target (so a
leading `/` anchors at the top of a scanned folder, see `Suppression.matches`); include/exclude
globs match the path of a file relative to its folder target (see `Policy.selects`), never the
target's own path. Every glob is compiled when the policy is parsed (`check_glob`): a glob that
cannot be compiled (`[z-a]`) is a ConfigError up front, never an error in the middle of a scan.
"""

from __future__ import annotations

import re
from functools import lru_cache

from modelguard.errors import ConfigError

__all__ = ["check_glob", "glob_matches", "parse_globs"]


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if char == "*":
            out.append(".*")
            while i < n and pattern[i] == "*":
                i += 1
            continue
        if char == "?":
            out.append(".")
        elif char == "[":
            j = i + 1
            j += pattern.startswith("!", j)
            j += pattern.startswith("]", j)  # a leading ] is literal, as in fnmatch
            end = pattern.find("]", j)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\").replace("^", "\\^")
                out.append(f"[{'^' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def check_glob(pattern: str, where: str) -> str:
    """Return `pattern` after checking that it compiles.

    Raises:
        ConfigError: the glob is invalid (a set with a reversed range such as `[z-a]`).
    """
    try:
        _compile(pattern.lstrip("/"))
    except re.error as exc:
        raise ConfigError(f"{where}: invalid glob {pattern!r} ({exc})") from None
    return pattern


def glob_matches(pattern: str, path: str) -> bool:
    """Return True if `pattern` matches `path` or one of its trailing parts."""
    if pattern.startswith("/"):
        return _compile(pattern.lstrip("/")).match(path.lstrip("/")) is not None
    regex = _compile(pattern)
    if regex.match(path):
        return True
    start = path.find("/")
    while start >= 0:
        if regex.match(path, start + 1):
            return True
        start = path.find("/", start + 1)
    return False


def parse_globs(raw: object, key: str, source: str) -> tuple[str, ...]:
    """Parse a list of globs from a policy file.

    Raises:
        ConfigError: not a list of non-empty strings, or a glob that does not compile.
    """
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(g, str) and g.strip() for g in raw):
        raise ConfigError(f"{source}: {key} must be a list of non-empty glob strings")
    return tuple(check_glob(g.strip(), f"{source}: {key}") for g in raw)
