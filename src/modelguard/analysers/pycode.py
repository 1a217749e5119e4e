"""Python source shipped with a model, read as a syntax tree: never compiled, imported or run.

`dangerous_calls` lists references to functions that run processes, evaluate code, load
native code or pickles, reach the network, delete files or write outside the model folder,
resolved through the file's own imports; `relative_imports` lists the sibling modules a file
imports (transformers fetches those with the module `auto_map` names).

Any *reference* counts, not only a call: ``run = os.system``, ``map(os.system, cmds)``,
``Thread(target=os.system)``, ``atexit.register(os.system, ...)`` and ``@os.system`` all hand
the function to something that calls it later.
"""

from __future__ import annotations

import ast
import re

__all__ = ["dangerous_calls", "relative_imports"]

# These names run processes, evaluate code, load native code or pickles, reach the network
# or delete files. Exact dotted names, and module prefixes any attribute of which counts
# (subprocess.run, socket.socket, ctypes.CDLL, ...). posix.* and nt.* are read as os.*.
_DANGEROUS = frozenset({
    "os.system", "os.popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp",
    "os.remove", "os.unlink", "os.removedirs", "os.kill", "os.killpg", "os.startfile",
    "shutil.rmtree", "pty.spawn", "pty.fork",
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
    "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
    "cPickle.load", "cPickle.loads", "dill.load", "dill.loads", "cloudpickle.load",
    "cloudpickle.loads", "marshal.load", "marshal.loads", "shelve.open", "runpy.run_path",
    "runpy.run_module", "code.interact", "urllib.urlopen", "urllib2.urlopen",
    # timeit compiles and runs its statement strings; pydoc's pagers run a shell command.
    "timeit.timeit", "timeit.repeat", "timeit.Timer", "timeit.main",
    "pydoc.pipepager", "pydoc.pager", "pydoc.tempfilepager",
    # A process pool runs Python callables (a dangerous one is caught where it is named);
    # Process is reported as subprocess-like, as advised for custom model code.
    "multiprocessing.Process", "multiprocessing.context.Process",
    "importlib.util.spec_from_file_location", "importlib.util.module_from_spec",
    "importlib.util.spec_from_loader", "importlib.machinery.SourceFileLoader",
    "importlib.machinery.SourcelessFileLoader", "importlib.machinery.ExtensionFileLoader",
    "zipimport.zipimporter",
    # Resolvers from a string to a callable, and configs that call what they name
    # (logging's '()' factory key): os.system reached without writing it as a name.
    "pkgutil.resolve_name", "logging.config.dictConfig", "logging.config.fileConfig",
    "logging.config.listen", "logging.config.DictConfigurator",
})  # fmt: skip
_DANGEROUS_PREFIXES = ("os.exec", "os.spawn", "subprocess.", "_posixsubprocess.", "socket.",
                       "ctypes.", "requests.", "httpx.", "urllib3.", "aiohttp.",
                       "urllib.request.", "http.client.", "ftplib.", "telnetlib.", "smtplib.",
                       "paramiko.", "webbrowser.", "asyncio.create_subprocess",
                       "asyncio.subprocess.")  # fmt: skip
# Modules whose namespace (getattr with a computed name, __dict__, vars()) reaches the above.
_DANGEROUS_MODULES = frozenset({"os", "posix", "nt", "subprocess", "builtins", "socket",
                                "ctypes", "pickle", "marshal", "importlib", "shutil", "sys",
                                "pty", "runpy", "timeit", "pydoc", "webbrowser",
                                "multiprocessing"})  # fmt: skip
# Importing one of these by a constant name (import_module('os')) is a disguised import.
_RISKY_IMPORTS = _DANGEROUS_MODULES | {"_posixsubprocess", "_pickle", "cPickle", "dill",
                                       "cloudpickle", "shelve", "code", "requests", "httpx",
                                       "urllib3", "aiohttp", "urllib.request", "http.client",
                                       "ftplib", "telnetlib", "smtplib", "paramiko",
                                       "zipimport"}  # fmt: skip
# A module attribute with one of these names is that module (platform.os, os.path.os), as
# are the private aliases the standard library keeps (tempfile._os, random._os).
_HOPS = frozenset({"os", "subprocess", "sys", "builtins", "posix", "nt"})
_HOPS = _HOPS | {f"_{name}" for name in _HOPS}
# Builtins resolved as builtins.<name> unless the file rebinds them in scope.
_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "getattr", "open", "vars",
                       "globals", "locals"})  # fmt: skip
_DYNAMIC_IMPORT = frozenset({"importlib.import_module", "importlib.__import__"})
_GETATTR = frozenset({"builtins.getattr", "operator.attrgetter", "operator.methodcaller"})
_OPEN = frozenset({"builtins.open", "io.open", "codecs.open"})
_COPY = frozenset({"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree",
                   "shutil.move", "os.rename", "os.renames", "os.replace", "os.symlink",
                   "os.link"})  # fmt: skip
_PATH_WRITE = frozenset({"write_text", "write_bytes", "symlink_to", "hardlink_to", "touch"})
_PATH_CTORS = frozenset({"os.path.join", "pathlib.Path", "pathlib.PurePath",
                         "pathlib.PosixPath", "pathlib.WindowsPath", "os.path.abspath",
                         "os.path.realpath", "os.path.normpath"})  # fmt: skip
_HOME_VARS = frozenset({"HOME", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "XDG_CONFIG_HOME"})
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")
# Names of dangerous functions, looked up on a module we cannot name (methodcaller, ...).
_LEAVES = frozenset(
    {n.rpartition(".")[2] for n in _DANGEROUS if n.startswith(("os.", "builtins.", "pty."))}
    | {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
)
# Constants and exception classes of the modules above (subprocess.PIPE, socket.AF_INET,
# subprocess.CalledProcessError) do nothing by being named.
_INERT = re.compile(
    r"PIPE|STDOUT|DEVNULL|(AF|SOCK|SOL|SO|IPPROTO|MSG|SHUT)_[A-Z0-9_]+"
    r"|\w*(Error|Exception|Expired|Warning)"
)
# sys.modules[<computed>]: a module we cannot name; only dangerous attributes of it count.
_ANY_MODULE = "sys.modules[<computed>]"
_SYS_MODULES_GET = frozenset({"sys.modules.get", "sys.modules.pop", "sys.modules.setdefault",
                              "sys.modules.__getitem__"})  # fmt: skip


def _dangerous(name: str) -> bool:
    if _INERT.fullmatch(name.rpartition(".")[2]):
        return False
    if name.startswith(f"{_ANY_MODULE}."):
        return _dangerous_attr(name[len(_ANY_MODULE) + 1 :].split(".", 1)[0])
    return name in _DANGEROUS or name.startswith(_DANGEROUS_PREFIXES)


def _risky_module(name: str) -> bool:
    return any(name == m or name.startswith(f"{m}.") for m in _RISKY_IMPORTS)


def _dangerous_attr(attr: str) -> bool:
    """Whether an attribute looked up on an unknown module may be a dangerous function."""
    return attr in _LEAVES or attr.startswith(("exec", "spawn", "posix_spawn"))


def _const_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _arg(node: ast.Call, index: int, keyword: str) -> ast.expr | None:
    if len(node.args) > index and not any(isinstance(a, ast.Starred) for a in node.args):
        return node.args[index]
    return next((k.value for k in node.keywords if k.arg == keyword), None)


def _bound(body: list[ast.stmt]) -> set[str]:
    """Names a block binds in its own scope (not inside nested functions or classes).

    ``exec = exec`` and ``eval = builtins.eval`` keep the builtin, so they bind nothing here.
    """
    out: set[str] = set()
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):  # fmt: skip
            continue
        if isinstance(node, ast.Assign) and _keeps_builtin(node):
            todo.append(node.value)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
        todo.extend(ast.iter_child_nodes(node))
    return out


def _keeps_builtin(node: ast.Assign) -> bool:
    value = node.value
    if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
        if value.value.id not in ("builtins", "__builtins__"):
            return False
        name = value.attr
    elif isinstance(value, ast.Name):
        name = value.id
    else:
        return False
    return name in _BUILTINS and all(isinstance(t, ast.Name) and t.id == name for t in node.targets)


def _params(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


class _Refs(ast.NodeVisitor):
    """Resolve name references through the file's imports and collect the dangerous ones."""

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.star: list[str] = []
        self.module_bound = _bound(tree.body)
        self.scopes: list[set[str]] = []
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
        # x = importlib.import_module('os') binds x to os, wherever it is.
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                module = self._imported(node.value)
                for t in node.targets:
                    if module and isinstance(t, ast.Name) and t.id not in self.aliases:
                        self.aliases[t.id] = module

    # -- resolving names ---------------------------------------------------------------

    def _shadowed(self, name: str) -> bool:
        return name in self.module_bound or any(name in s for s in self.scopes)

    def _imported(self, node: ast.Call) -> str | None:
        """The module a constant-name dynamic import returns, or None."""
        func = self.resolve(node.func)
        if func in _DYNAMIC_IMPORT or func == "builtins.__import__":
            return _const_str(node.args[0] if node.args else None)
        return None

    def _base(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in _BUILTINS and not self._shadowed(node.id):
                return f"builtins.{node.id}"
            if node.id == "__builtins__" and not self._shadowed(node.id):
                return "builtins"
            return None
        if isinstance(node, ast.Call):
            if self.resolve(node.func) in _SYS_MODULES_GET:
                return _const_str(node.args[0] if node.args else None) or _ANY_MODULE
            return self._imported(node)
        if isinstance(node, ast.Subscript) and self.resolve(node.value) == "sys.modules":
            return _const_str(node.slice) or _ANY_MODULE
        return None

    def resolve(self, node: ast.expr) -> str | None:
        """The dotted name an expression refers to, through imports; None if not a name."""
        attrs: list[str] = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        attrs.reverse()
        base = self._base(node)
        if base is None:
            if isinstance(node, ast.Name) and not attrs:
                for module in self.star:
                    if _dangerous(f"{module}.{node.id}"):
                        return f"{module}.{node.id}"
            # X.os.system is os.system for any X: platform.os, os.path.os, self.os.
            hop = next((i for i, a in enumerate(attrs[:-1]) if a in _HOPS), None)
            return None if hop is None else ".".join([attrs[hop].lstrip("_"), *attrs[hop + 1 :]])
        parts = [*base.split("."), *attrs]
        hop = next((i for i, a in enumerate(parts[1:-1], 1) if a in _HOPS), None)
        if hop is not None:
            parts = parts[hop:]
            parts[0] = parts[0].lstrip("_")
        if parts[0] in ("posix", "nt"):
            parts[0] = "os"
        return ".".join(parts)

    def _hit(self, node: ast.AST, what: str) -> None:
        self.hits.append((getattr(node, "lineno", 0), what))

    # -- scopes ------------------------------------------------------------------------

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            for d in node.decorator_list:
                self.visit(d)
            if node.returns:
                self.visit(node.returns)
        self.visit(node.args)
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        stmts = [s for s in body if isinstance(s, ast.stmt)]
        self.scopes.append(_params(node.args) | _bound(stmts))
        for part in body:
            self.visit(part)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node)

    # -- references --------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        if node.id == "__builtins__" and not self._shadowed(node.id):
            self._hit(node, "__builtins__")
            return
        name = self.resolve(node)
        if name is not None and _dangerous(name):
            self._hit(node, name.removeprefix("builtins."))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            name = self.resolve(node)
            if name is not None and _dangerous(name):
                self._hit(node, name.removeprefix("builtins."))
                inner: ast.expr = node
                while isinstance(inner, ast.Attribute):
                    inner = inner.value
                if not isinstance(inner, ast.Name):
                    self.visit(inner)
                return
            if node.attr == "__dict__":
                target = self.resolve(node.value)
                if target in _DANGEROUS_MODULES:
                    self._hit(node, f"{target}.__dict__")
            elif node.attr == "__builtins__":
                self._hit(node, "__builtins__")
            elif node.attr == "exec_module":
                self._hit(node, "exec_module")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Load):
            if self.resolve(node.value) == "sys.modules":
                self._sys_module(node, _const_str(node.slice))
            elif _const_str(node.slice) == "__builtins__":
                self._hit(node, "['__builtins__']")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.resolve(node.func)
        if name in _GETATTR:
            self._getattr(node, name)
        elif name in _DYNAMIC_IMPORT and node.args:
            module = _const_str(node.args[0])
            if module is None:
                self._hit(node, f"{name} (computed name)")
            elif _risky_module(module):
                self._hit(node, f"{name}({module!r})")
        elif name in _SYS_MODULES_GET:
            self._sys_module(node, _const_str(node.args[0] if node.args else None))
        elif name == "builtins.vars" and node.args:
            target = self.resolve(node.args[0])
            if target in _DANGEROUS_MODULES:
                self._hit(node, f"vars({target})")
        elif name in ("torch.load", "torch.serialization.load"):
            # Before torch 2.6 weights_only defaulted to False: the file is unpickled.
            safe = _arg(node, 99, "weights_only")
            if not (isinstance(safe, ast.Constant) and safe.value is True):
                self._hit(node, f"{name} (weights_only not True)")
        elif name == "numpy.load":
            allow = _arg(node, 2, "allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and not allow.value):
                self._hit(node, "numpy.load (allow_pickle)")
        else:
            self._writes(node, name)
        self.generic_visit(node)

    def _sys_module(self, node: ast.AST, module: str | None) -> None:
        # sys.modules['os'] is os without an import; computed keys (cls.__module__) are
        # ordinary in library code and count only through a dangerous attribute.
        if module is not None and _risky_module(module):
            self._hit(node, f"sys.modules[{module!r}]")

    def _getattr(self, node: ast.Call, name: str) -> None:
        if name != "builtins.getattr":
            # operator.methodcaller('system', cmd)(os), operator.attrgetter('system')(os)
            attr = _const_str(node.args[0] if node.args else None)
            if attr is None:
                if node.args:
                    self._hit(node, f"{name}(<computed>)")
            elif any(_dangerous_attr(a) for a in attr.split(".")):
                self._hit(node, f"{name}({attr!r})")
            return
        if len(node.args) < 2:
            return
        target = self.resolve(node.args[0])
        if target is None or target.split(".", 1)[0] not in _DANGEROUS_MODULES:
            return
        attr = _const_str(node.args[1])
        if attr is None:
            self._hit(node, f"getattr({target}, <computed>)")
        elif _dangerous(f"{target}.{attr}") or (target == "sys" and attr == "modules"):
            self._hit(node, f"getattr({target}, {attr!r})")

    # -- file writes -------------------------------------------------------------------
    # Model code writes where its caller says (save_pretrained, save_vocabulary); a write to
    # an absolute or home-relative path reaches outside the model folder (~/.bashrc, a
    # site-packages .pth file), so only those are reported.

    def _writes(self, node: ast.Call, name: str | None) -> None:
        if name in _OPEN:
            mode = _const_str(_arg(node, 1, "mode")) or ""
            if any(c in mode for c in "wax+") and self._outside(_arg(node, 0, "file")):
                self._hit(node, f"open(<absolute path>, {mode!r})")
        elif name in _COPY:
            if self._outside(_arg(node, 1, "dst")):
                self._hit(node, f"{name} (to an absolute path)")
        elif (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in _PATH_WRITE
            and self._outside(node.func.value)
        ):
            self._hit(node, f"Path.{node.func.attr} (absolute path)")

    def _outside(self, node: ast.expr | None, depth: int = 0) -> bool:
        """Whether a path expression is absolute or under the user's home folder."""
        if node is None or depth > 20:
            return False
        text = _const_str(node)
        if text is not None:
            return text.startswith(("/", "\\", "~")) or bool(_DRIVE.match(text))
        if isinstance(node, ast.JoinedStr):
            return bool(node.values) and self._outside(node.values[0], depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
            return self._outside(node.left, depth + 1)
        if isinstance(node, ast.Subscript):
            return self.resolve(node.value) == "os.environ" and _const_str(node.slice) in _HOME_VARS
        if not isinstance(node, ast.Call):
            return False
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("expanduser", "home"):
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr == "joinpath":
            return self._outside(node.func.value, depth + 1)
        name = self.resolve(node.func)
        if name in ("os.path.expanduser", "os.path.expandvars"):
            return True
        if name in ("os.getenv", "os.environ.get"):
            return _const_str(node.args[0] if node.args else None) in _HOME_VARS
        return name in _PATH_CTORS and bool(node.args) and self._outside(node.args[0], depth + 1)


def _parse(source: str | bytes) -> ast.Module | None:
    # Bytes, so that ast honours a UTF-8 BOM and a coding cookie as Python does.
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def dangerous_calls(source: str | bytes) -> tuple[list[tuple[int, str]], bool]:
    """Return (line, name) for each dangerous reference in Python source, and whether it parsed.

    Names are resolved through ``import x as y``, ``from x import y`` and
    ``y = importlib.import_module('x')``; any load of a dangerous name counts, called or
    passed on. Methods of objects (``model.eval()``, ``torch.compile``) are not the builtins
    they share a name with, and a builtin counts as rebound only where the file binds its
    name in the same scope (module level or the enclosing functions), not as a method.
    The source is parsed, never compiled or run; pass bytes so encodings are honoured.
    """
    tree = _parse(source)
    if tree is None:
        return [], False
    visitor: _Refs | None = None
    try:
        visitor = _Refs(tree)
        visitor.visit(tree)
    except RecursionError:
        return (list(dict.fromkeys(visitor.hits)) if visitor else []), False
    return list(dict.fromkeys(visitor.hits)), True


def relative_imports(source: str | bytes) -> list[str]:
    """Files (relative, POSIX) a module imports relatively from its own folder.

    ``from .utils import f`` and ``from . import utils`` name ``utils.py``; transformers
    fetches those with the module. So does ``importlib.import_module(".utils", __package__)``
    with a constant name (a file beside it that the loader imports). Imports from parent
    packages (``..``) are not followed.
    """
    tree = _parse(source)
    if tree is None:
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append(node.module.replace(".", "/") + ".py")
            else:
                found += [f"{a.name}.py" for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            if isinstance(node.func, ast.Name):
                name = node.func.id
            arg = node.args[0]
            if (
                name == "import_module"
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.startswith(".")
                and not arg.value.startswith("..")
                and len(arg.value) > 1
            ):
                found.append(arg.value[1:].replace(".", "/") + ".py")
    return list(dict.fromkeys(found))
