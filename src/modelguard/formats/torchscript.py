"""References in TorchScript source (`code/**.py` of a `torch.jit.save` archive), read statically.

TorchScript serialises a scripted or traced module as Python-syntax source that
`torch.jit.load` compiles and runs: aten operators are written `torch.<op>(...)`, other
operator namespaces `ops.<namespace>.<op>(...)`, custom classes
`__torch__.torch.classes.<namespace>.<Class>`. This module lists every dotted reference in
such source with its line. It parses with Python's `ast` (the serialised source is valid
Python in practice) and never compiles or runs it; when `ast` refuses the text (TorchScript's
own lexer is not Python's) or the text is too large for a syntax tree, a linear regular
expression scan of dotted names is used instead, which over-approximates (strings and
comments included). A text scan is always returned alongside, so a caller can notice names
that only appear where the Python parser saw a string or a comment.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = ["AST_MAX_BYTES", "CodeRef", "CodeScan", "scan_code", "text_refs"]

# Above this, source is scanned as text only: a syntax tree costs tens of bytes per source
# byte, and real TorchScript members are kilobytes to a few megabytes.
AST_MAX_BYTES = 8 * 1024 * 1024

# A dotted name: identifiers joined by dots, whitespace allowed around the dots as in Python.
# Not preceded by an identifier character or a dot, so only whole chains match.
_DOTTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+)(\s*\()?")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class CodeRef:
    """One dotted name in the source.

    Attributes:
        name: the name with whitespace removed, e.g. ``"torch.from_file"``,
            ``"ops.evil.run"``; a plain call of a bare name is listed as that name.
        line: 1-based line where the name starts.
        call: the name is called.
    """

    name: str
    line: int
    call: bool


@dataclass(frozen=True, slots=True)
class CodeScan:
    """What `scan_code` found.

    Attributes:
        refs: the references, from the syntax tree when ``parsed``, else from the text scan.
        loose: the text scan of the whole source (strings and comments included).
        parsed: the Python parser accepted the source.
        note: why the text scan had to stand in for the parser ("" when parsed).
    """

    refs: tuple[CodeRef, ...]
    loose: tuple[CodeRef, ...]
    parsed: bool
    note: str


def scan_code(data: bytes) -> CodeScan:
    """List the dotted names referenced by TorchScript source `data`.

    Never raises for any input: undecodable bytes are replaced, and source the Python parser
    rejects (or that exceeds `AST_MAX_BYTES`) is scanned as text.
    """
    text = data.decode("utf-8", "replace")
    loose = text_refs(text)
    if len(data) > AST_MAX_BYTES:
        return CodeScan(loose, loose, False, f"source above {AST_MAX_BYTES} bytes")
    try:
        tree = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return CodeScan(loose, loose, False, f"not Python syntax: {type(exc).__name__}")
    return CodeScan(tuple(_tree_refs(tree)), loose, True, "")


def text_refs(text: str) -> tuple[CodeRef, ...]:
    """Every dotted name in `text` by a linear regular-expression scan, with its line."""
    refs: list[CodeRef] = []
    line, last = 1, 0
    for match in _DOTTED.finditer(text):
        line += text.count("\n", last, match.start())
        last = match.start()
        name = _SPACE.sub("", match.group(1))
        refs.append(CodeRef(name, line, match.group(2) is not None))
    return tuple(refs)


def _tree_refs(tree: ast.AST) -> list[CodeRef]:
    """Maximal attribute chains rooted at a name, and calls of bare names, in source order."""
    nodes = list(ast.walk(tree))  # iterative: no recursion on deep trees
    inner: set[int] = set()
    called: set[int] = set()
    for node in nodes:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
        elif isinstance(node, ast.Call):
            called.add(id(node.func))
    refs: list[CodeRef] = []
    for node in nodes:
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            name = _chain(node)
            if name is not None:
                refs.append(CodeRef(name, node.lineno, id(node) in called))
        elif isinstance(node, ast.Name) and id(node) in called:
            refs.append(CodeRef(node.id, node.lineno, True))
    refs.sort(key=lambda r: r.line)
    return refs


def _chain(node: ast.Attribute) -> str | None:
    """``a.b.c`` for an attribute chain rooted at a name; None if rooted at an expression."""
    parts: list[str] = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        parts.append(cur.attr)
        cur = cur.value
    if not isinstance(cur, ast.Name):
        return None
    parts.append(cur.id)
    return ".".join(reversed(parts))
