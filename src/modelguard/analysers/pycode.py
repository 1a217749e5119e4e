"""Python source shipped with a model, read as a syntax tree: never compiled, imported or run.

`dangerous_calls` lists calls that run processes, evaluate code, load native code or pickles,
reach the network or delete files, resolved through the file's own imports;
`relative_imports` lists the sibling modules a file imports (transformers fetches those with
the module `auto_map` names).
"""

from __future__ import annotations

import ast

__all__ = ["dangerous_calls", "relative_imports"]

# Calls to these names run processes, evaluate code, load native code or pickles, reach the
# network or delete files. Exact dotted names, and module prefixes any attribute of which
# counts (subprocess.run, socket.socket, ctypes.CDLL, ...).
_DANGEROUS = frozenset({
    "os.system", "os.popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp",
    "os.remove", "os.unlink", "os.removedirs", "os.kill", "os.killpg", "shutil.rmtree",
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
    "pickle.load", "pickle.loads", "_pickle.load", "_pickle.loads", "cPickle.load",
    "cPickle.loads", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads",
    "marshal.load", "marshal.loads", "shelve.open", "runpy.run_path", "runpy.run_module",
    "code.interact", "pty.spawn", "urllib.request.urlopen", "urllib.request.urlretrieve",
    "urllib.request.Request", "urllib.urlopen", "urllib2.urlopen", "webbrowser.open",
})  # fmt: skip
_DANGEROUS_PREFIXES = ("os.exec", "os.spawn", "subprocess.", "socket.", "ctypes.",
                       "requests.", "httpx.", "http.client.", "ftplib.", "telnetlib.",
                       "smtplib.", "paramiko.", "asyncio.create_subprocess")  # fmt: skip
# Looked up with a computed name these reach the functions above: getattr(os, name).
_DANGEROUS_MODULES = frozenset({"os", "subprocess", "builtins", "socket", "ctypes", "pickle",
                                "marshal", "importlib", "shutil", "sys"})  # fmt: skip
_BUILTINS = frozenset({"eval", "exec", "compile", "__import__"})
_DYNAMIC_IMPORT = frozenset({"importlib.import_module", "importlib.__import__"})


def _dangerous(name: str) -> bool:
    return name in _DANGEROUS or name.startswith(_DANGEROUS_PREFIXES)


class _Calls(ast.NodeVisitor):
    """Resolve call targets through the file's imports and collect the dangerous ones."""

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.star: list[str] = []
        self.defined: set[str] = set()
        self.hits: list[tuple[int, str]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    # "import os.path" binds "os"; "import os.path as p" binds p to os.path
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        head = a.name.split(".", 1)[0]
                        self.aliases[head] = head
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    if a.name == "*":
                        self.star.append(node.module)
                    else:
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.defined.add(node.id)

    def resolve(self, node: ast.expr) -> str | None:
        """The dotted name an expression refers to, through imports; None if not a name."""
        attrs: list[str] = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = node.id
        if base in self.aliases:
            base = self.aliases[base]
        elif base in _BUILTINS and base not in self.defined:
            base = f"builtins.{base}"
        elif not attrs:
            for module in self.star:
                if _dangerous(f"{module}.{base}"):
                    return f"{module}.{base}"
            return None
        else:
            return None
        return ".".join([base, *reversed(attrs)])

    def visit_Call(self, node: ast.Call) -> None:
        name = self.resolve(node.func)
        if isinstance(node.func, ast.Name) and node.func.id == "getattr":
            if "getattr" not in self.defined:
                self._getattr(node)
        elif name is not None and _dangerous(name):
            self.hits.append((node.lineno, name.removeprefix("builtins.")))
        elif name in _DYNAMIC_IMPORT and not (node.args and isinstance(node.args[0], ast.Constant)):
            self.hits.append((node.lineno, f"{name} (computed name)"))
        self.generic_visit(node)

    def _getattr(self, node: ast.Call) -> None:
        if len(node.args) < 2:
            return
        target = self.resolve(node.args[0])
        if target is None or target.split(".", 1)[0] not in _DANGEROUS_MODULES:
            return
        attr = node.args[1]
        if not isinstance(attr, ast.Constant) or not isinstance(attr.value, str):
            self.hits.append((node.lineno, f"getattr({target}, <computed>)"))
        elif _dangerous(f"{target}.{attr.value}"):
            self.hits.append((node.lineno, f"getattr({target}, {attr.value!r})"))


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def dangerous_calls(text: str) -> tuple[list[tuple[int, str]], bool]:
    """Return (line, call) for each dangerous call in Python source, and whether it parsed.

    Calls are resolved through ``import x as y`` and ``from x import y`` aliases; methods of
    objects (``model.eval()``, ``torch.compile``) are not calls of the builtins they share a
    name with. The source is parsed, never compiled or run.
    """
    tree = _parse(text)
    if tree is None:
        return [], False
    visitor = _Calls(tree)
    try:
        visitor.visit(tree)
    except RecursionError:
        return visitor.hits, False
    return visitor.hits, True


def relative_imports(text: str) -> list[str]:
    """Files (relative, POSIX) a module imports relatively from its own folder.

    ``from .utils import f`` and ``from . import utils`` name ``utils.py``; transformers
    fetches those with the module. Imports from parent packages (``..``) are not followed.
    """
    tree = _parse(text)
    if tree is None:
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append(node.module.replace(".", "/") + ".py")
            else:
                found += [f"{a.name}.py" for a in node.names if a.name != "*"]
    return list(dict.fromkeys(found))
