"""Chat templates (Jinja): sandbox-escape constructs and signs of a poisoned template.

Chat templates are rendered by the loader on every conversation. Rendered by a Python
`jinja2.Environment` without the sandbox, attribute access reaches Python internals and runs
code (CVE-2024-34359 in llama-cpp-python, CVE-2026-5760 in SGLang). The template is parsed
with Jinja's own parser into a syntax tree (so the scanner sees what the loader's Jinja
sees) and never compiled or rendered.

MG421 (template-injection) is reported for:
- attribute or item access, `|attr`, `NSRef` targets and the `attribute=` argument of
  `map`/`selectattr`/`sort`/... naming something that starts with `_` (every dunder; for item
  keys only dunders and mangled names, as `tool['_meta']` is an ordinary dict key) or one of
  the frame/function internals and process names in `_DANGEROUS_ATTRS`;
- such names built at parse-visible level (`modelguard.analysers.jinjafold`): `~`, `+`,
  `*`, `%`, `|join`, `|reverse`, `|format`, `|replace`, `|first`, slicing, `.join()` /
  `.format()` on literals, list/tuple/dict literals and their items, and variables holding
  those (`{% set %}` with tuple targets, `{% set ns.k %}`, namespace members, `{% for %}`
  targets, macro parameters); string escapes such as `\\x5f` are already decoded by Jinja;
- any string literal (or keyword argument) that is a dunder name (`'__globals__'`), or any
  string expression or list literal that folds into one;
- `|attr` / `map('attr', ...)` with a name that cannot be computed statically, and item
  access with a key built from strings that contain `__` but cannot be computed;
- globals a sandbox escape starts from: `self`, `config`, `request`, `url_for`,
  `get_flashed_messages`, `os`, `__builtins__`, ... used without being assigned in the
  template; and any use of the `lipsum`, `cycler`, `joiner`, `namespace`, `range`, `dict`
  functions other than calling or testing them (`lipsum[k]` whatever `k`, `set g = lipsum`,
  passing it to a macro or filter); calling them, e.g. `namespace(found=false)`, is ordinary.

MG422 (template-suspicious) is deliberately narrow to stay quiet on real templates:
- a URL (`http://`, `https://`, `ftp://`) in template text or a string literal;
- a condition (`{% if %}` or inline `if`) comparing message content with a string literal
  (`'x' in message['content']`, `content == '...'`, `.startswith('...')`), unless the literal
  is markup or a special token (`<think>`, `<|im_start|>`, `[INST]`), as real templates
  split reasoning and tool calls that way;
- covert-instruction phrases in literal text ("ignore previous instructions", "do not tell
  the user", "secretly", "hidden instruction", ...);
- `{% include %}`, `{% import %}`, `{% extends %}` (a chat template has no other templates).

Templates over `MAX_TEMPLATE_CHARS` are not parsed (MG003); syntax errors are MG002.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from modelguard.analysers.jinjafold import MAX_FOLD_DEPTH, Folder

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment

    from modelguard.filescan import FileScan
    from modelguard.results import Location

__all__ = ["MAX_TEMPLATE_CHARS", "check_template"]

# Real chat templates are a few KiB (the largest, with tool-calling prose, ~20 KiB); 1 Mi
# characters bounds parse time and memory with a wide margin.
MAX_TEMPLATE_CHARS = 1024 * 1024
_MAX_FINDINGS = 20  # per rule and template: enough to judge, bounded for hostile input

# Python internals reached from any object on the way to code execution (frame, function,
# generator and traceback attributes; process and import entry points).
_DANGEROUS_ATTRS = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "func_closure",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "tb_frame",
        "tb_next",
        "co_code",
        "im_func",
        "im_self",
        "os",
        "popen",
        "subprocess",
        "eval",
        "exec",
        "import",
        "import_module",
        "builtins",
        "globals",
        "getattr",
        "load_module",
        "check_output",
    }
)
# Names that only mean something in a web framework or in Python, never in a chat template;
# SSTI payloads start from them (`config.__class__`, `request.application`, `self._TemplateRef`).
_DANGEROUS_GLOBALS = frozenset(
    {
        "self",
        "config",
        "request",
        "url_for",
        "get_flashed_messages",
        "os",
        "subprocess",
        "eval",
        "exec",
        "getattr",
        "globals",
        "builtins",
    }
)
# Jinja's default globals are Python functions: their `__globals__` is jinja2's module
# namespace (with `os`), the classic escape (`cycler.__init__.__globals__.os.popen`).
_ESCAPE_GLOBALS = frozenset({"lipsum", "cycler", "joiner", "namespace", "range", "dict"})
# Filters that look attributes up by a name given as an argument.
_ATTRIBUTE_FILTERS = frozenset(
    {"map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
)
_POSITIONAL_ATTRIBUTE = frozenset({"selectattr", "rejectattr", "groupby"})
_NORMALISERS = frozenset(
    {"strip", "lstrip", "rstrip", "lower", "upper", "casefold", "split", "rsplit", "replace"}
)
_CONTENT_METHODS = frozenset({"startswith", "endswith", "find", "rfind", "count", "index"})

_DUNDER = re.compile(r"^__\w+__$")
# Item keys that only make sense on a module or object reached through internals (`obj[k]`
# falls back to getattr): `sys.modules`, `os.popen`. Ordinary dict keys such as 'import' or
# 'system' (a role) are not among them.
_DANGEROUS_ITEM_KEYS = frozenset(
    {"popen", "modules", "subprocess", "check_output", "getoutput", "spawnv", "execv"}
)
# String methods and operators that reshape text: a key computed with them is a name being
# assembled (`'globals'.center(11, '_')`, `'%c%cx' % (95, 95)`), not data being looked up.
# `join` is not among them: joined literals are folded, and joining data is ordinary.
_SHAPERS = frozenset(
    {"center", "ljust", "rjust", "format", "format_map", "zfill", "translate", "replace",
     "swapcase", "expandtabs", "strip", "lstrip", "rstrip"}
)  # fmt: skip
# A str.format field that reaches attributes or items: `'{0.__init__.__globals__}'.format(x)`.
_FORMAT_FIELD_ACCESS = re.compile(r"\{[^{}]*[.\[][^{}]*\}")
_MANGLED = re.compile(r"^_[A-Za-z0-9]\w*?__\w")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s'\"<>]+", re.IGNORECASE)
_INSTRUCTION = re.compile(
    r"\bignore\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|preceding)\s+"
    r"(?:instructions|messages|rules|prompts?)"
    r"|\bdisregard\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|system|user)"
    r"|\b(?:do\s+not|don't|never)\s+(?:tell|reveal|disclose|mention|inform|let)\s+"
    r"(?:the\s+user|anyone|this|them)"
    r"|\bwithout\s+(?:telling|informing|alerting)\s+the\s+user"
    r"|\bsecretly\b|\bhidden\s+instructions?\b",
    re.IGNORECASE,
)
# Markup and special tokens that real templates look for in content (reasoning and tool
# call delimiters): `<think>`, `</tool_call>`, `<|python_tag|>`, `[TOOL_CALLS]`.
_MARKUP = re.compile(r"^(?:</?[\w|:.\-]{1,40}>|<\|[^|<>]{1,40}\|>|\[/?[A-Z_]{1,24}\]|\W*)$")


def check_template(
    scan: FileScan, source: str, loc: Location, *, origin: str, lenient: bool = False
) -> None:
    """Check one chat template without rendering it; report MG421/MG422 findings.

    `origin` names where the template came from (a JSON field, a file, a GGUF key) and is
    put in the evidence. Never raises: templates Jinja cannot parse are reported incomplete
    (MG002), oversized ones MG003. With `lenient`, for text that only looks like a template
    (no loader renders it by name), what Jinja cannot parse or is oversized is not a
    template and is passed over.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        if lenient:
            return
        scan.incomplete(
            "MG003",
            f"chat template ({origin}) has {len(source)} characters, over the "
            f"{MAX_TEMPLATE_CHARS} that are parsed",
            loc,
        )
        return
    try:
        tree = _environment().parse(source)
    except Exception as exc:
        if lenient:
            return
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        scan.incomplete("MG002", f"chat template ({origin}) is not valid Jinja: {first}", loc)
        return
    checker = _Checker(origin)
    checker.run(tree)
    for rule, message, evidence in checker.results:
        scan.finding(rule, message, loc, **evidence)


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    """The parsing environment: the extensions transformers enables for chat templates."""
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import SandboxedEnvironment

    class _Generation(Extension):
        """`{% generation %}...{% endgeneration %}` (transformers' assistant-mask tag)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return SandboxedEnvironment(
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _Generation]
    )


def _walk(tree: nodes.Node) -> Iterator[nodes.Node]:
    """Every node, iteratively (deep trees must not exhaust the stack)."""
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.iter_child_nodes())


def _is_dangerous(name: str, *, item: bool = False) -> bool:
    """Attribute names reaching internals: any `_` name (the sandbox refuses them all, so
    real templates never use them) and the internals in `_DANGEROUS_ATTRS`. As item keys,
    only dunders and mangled names (`_TemplateReference__context`) count: `tool['_meta']`
    and `props['import']` are ordinary dict keys."""
    if item:
        return (
            name.startswith("__")
            or _MANGLED.match(name) is not None
            or name in _DANGEROUS_ITEM_KEYS
        )
    return name.startswith("_") or name in _DANGEROUS_ATTRS


class _Checker:
    """One pass over a template's syntax tree, collecting findings."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.results: list[tuple[str, str, dict[str, str]]] = []
        self._seen: set[tuple[str, str, str, int]] = set()
        self._counts: dict[str, int] = {}
        self.assigned: set[str] = set()
        self.shaped_names: set[str] = set()
        self.content_names: set[str] = set()
        self.part_names: set[str] = set()
        self._folder = Folder()
        self.fold = self._folder.fold
        self._used_as_function: set[int] = set()  # ids of Name nodes that are called/tested

    # -- reporting -------------------------------------------------------------------------
    def report(self, rule: str, construct: str, name: str, node: nodes.Node, why: str) -> None:
        line = getattr(node, "lineno", 0) or 0
        key = (rule, construct, name, line)
        if key in self._seen or self._counts.get(rule, 0) >= _MAX_FINDINGS:
            return
        self._seen.add(key)
        self._counts[rule] = self._counts.get(rule, 0) + 1
        shown = name if len(name) <= 120 else name[:117] + "..."
        self.results.append(
            (
                rule,
                f"chat template ({self.origin}) line {line}: {why}",
                {"construct": construct, "name": shown, "line": str(line), "origin": self.origin},
            )
        )

    # -- passes ----------------------------------------------------------------------------
    def run(self, tree: nodes.Template) -> None:
        from jinja2 import nodes

        all_nodes = list(_walk(tree))
        for node in all_nodes:
            if (isinstance(node, nodes.Name) and node.ctx in ("store", "param")) or isinstance(
                node, nodes.Macro
            ):
                self.assigned.add(node.name)
            if isinstance(node, nodes.Call | nodes.Test):
                self._used_as_function.add(id(node.node))
        self._folder.bind_all(tree)
        self._content_names(all_nodes)
        for node in all_nodes:  # `{% set g = 'globals'.center(11, '_') %}`, in order
            if (
                isinstance(node, nodes.Assign)
                and isinstance(node.target, nodes.Name)
                and self.shaped(node.node)
            ):
                self.shaped_names.add(node.target.name)
        for node in all_nodes:
            self.visit(node)

    def _content_names(self, all_nodes: list[nodes.Node]) -> None:
        """Variables holding message text (`{% set content = message.content %}`) and loop
        variables over content parts (`{% for part in message.content %}`: dicts whose
        `text` is message text and whose other keys, such as `type`, are structure)."""
        from jinja2 import nodes

        pairs: list[tuple[str, nodes.Node, bool]] = []
        for node in all_nodes:
            if isinstance(node, nodes.Assign | nodes.For):
                value = node.node if isinstance(node, nodes.Assign) else node.iter
                targets = itertools.chain([node.target], node.target.find_all(nodes.Name))
                part = isinstance(node, nodes.For)
                pairs.extend((n.name, value, part) for n in targets if isinstance(n, nodes.Name))
        for _ in range(3):  # a few rounds follow chains of assignments
            for name, value, part in pairs:
                if self.is_content(value):
                    (self.part_names if part else self.content_names).add(name)

    def visit(self, node: nodes.Node) -> None:
        from jinja2 import nodes

        if isinstance(node, nodes.Getattr):
            self.access(node, node.node, {node.attr}, "getattr", built=False)
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                self.access(node, node.node, {node.arg.value}, "getitem", built=False)
            else:
                names = self.fold(node.arg)  # any key: variables, members, `|first`, slices
                if names is not None:
                    self.access(node, node.node, names, "obfuscated-getitem", built=True)
                elif self.shaped(node.arg):
                    self.report(
                        "MG421",
                        "shaped-getitem",
                        "<computed>",
                        node,
                        "item access with a key assembled by string methods or formatting "
                        "(how escape names are built without writing them)",
                    )
                elif _builds_string(node.arg) and any("__" in s for s in _literals(node.arg)):
                    # `__` only: `p[m.role ~ '_prefix']` is an ordinary computed key
                    self.report(
                        "MG421",
                        "dynamic-getitem",
                        "<computed>",
                        node,
                        "item access with a computed key built from double underscores",
                    )
        elif isinstance(node, nodes.Keyword) and _DUNDER.match(node.key):
            # `dict(__globals__=1)|first`: a keyword argument is a string in disguise
            self.report("MG421", "dunder-literal", node.key, node, f"keyword `{node.key}=`")
        elif isinstance(node, nodes.NSRef) and _is_dangerous(node.attr):
            self.report("MG421", "nsref", node.attr, node, f"assignment to `.{node.attr}`")
        elif isinstance(node, nodes.Filter):
            self.filter(node)
        elif (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and node.node.attr in ("format", "format_map")
            and isinstance(node.node.node, nodes.Const)
            and isinstance(node.node.node.value, str)
            and _FORMAT_FIELD_ACCESS.search(node.node.node.value)
        ):
            self.report(
                "MG421",
                "format-field",
                node.node.node.value[:80],
                node,
                "str.format with a field that reads attributes or items of its argument",
            )
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name not in self.assigned and (
                node.name in _DANGEROUS_GLOBALS or node.name.startswith("__")
            ):
                self.report(
                    "MG421",
                    "global",
                    node.name,
                    node,
                    f"uses `{node.name}`, a starting point of sandbox escapes",
                )
            elif node.name in _ESCAPE_GLOBALS and id(node) not in self._used_as_function:
                # Real templates only call these (`namespace(found=false)`, `range(n)`);
                # anything else - `lipsum[k]`, `lipsum.x`, `lipsum|attr(k)`, `set g = lipsum`,
                # passing it to a macro or a filter - starts the classic escape whatever the
                # key (`lipsum.__globals__.os`), so the key need not be computable. Shadowing
                # the name (`set lipsum = lipsum`) does not exempt it.
                self.report(
                    "MG421",
                    "escape-global",
                    node.name,
                    node,
                    f"uses the `{node.name}` function as a value, not a call "
                    "(its `__globals__` reach the os module)",
                )
        elif isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
            self.report(
                "MG422",
                "include",
                type(node).__name__.lower(),
                node,
                "loads another template, which a chat template never needs",
            )
        elif isinstance(node, nodes.TemplateData):
            self.literal(node, node.data)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            self.literal(node, node.value)
            if _DUNDER.match(node.value):
                # Python's own names never appear as data in a chat template; as a string they
                # are only a key or attribute name on the way to an escape.
                self.report(
                    "MG421", "dunder-literal", node.value, node, f"string literal {node.value!r}"
                )
        if _builds_string(node) or isinstance(node, nodes.List | nodes.Tuple | nodes.Dict):
            self.built_dunder(node)
        if isinstance(node, nodes.If | nodes.CondExpr):
            self.condition(node.test)

    # -- constructs ------------------------------------------------------------------------
    def access(
        self, node: nodes.Node, target: nodes.Node, names: set[str], construct: str, *, built: bool
    ) -> None:

        item = construct != "getattr"
        bad = sorted(n for n in names if _is_dangerous(n, item=item))
        if bad:
            how = "computed " if built else ""
            self.report(
                "MG421",
                construct,
                bad[0],
                node,
                f"{how}access to `{bad[0]}`, which reaches Python internals",
            )

    def shaped(self, node: nodes.Node, depth: int = 0) -> bool:
        """Is `node` (a key) text assembled by string methods or `%`/`|format` formatting,
        directly or through a `{% set %}` variable holding such text?"""
        from jinja2 import nodes

        if depth > MAX_FOLD_DEPTH:
            return True
        if isinstance(node, nodes.Name):
            return node.name in self.shaped_names
        if isinstance(node, nodes.Mod) or (
            isinstance(node, nodes.Filter) and node.name in ("format", "replace")
        ):
            return True
        if (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and node.node.attr in _SHAPERS
        ):
            return True
        return any(self.shaped(child, depth + 1) for child in node.iter_child_nodes())

    def built_dunder(self, node: nodes.Node) -> None:
        """A string expression (or a list/tuple/dict literal's items) that folds to a dunder."""
        from jinja2 import nodes

        if isinstance(node, nodes.List | nodes.Tuple):
            parts: list[nodes.Node] = [nodes.Filter(node, "join", [], [], None, None)]
        elif isinstance(node, nodes.Dict):
            parts = [p.value for p in node.items]
        else:
            parts = [node]
        for part in parts:
            names = self.fold(part) or set()
            found = sorted(n for n in names if _DUNDER.match(n))
            if found:
                self.report(
                    "MG421",
                    "built-dunder",
                    found[0],
                    node,
                    f"builds the Python internal name `{found[0]}` from pieces",
                )
                return

    def filter(self, node: nodes.Filter) -> None:
        args = list(node.args)
        if node.name == "map" and args and self.fold(args[0]) == {"attr"}:
            # `map('attr', name)`: the attr filter applied to each item
            args = args[1:]
        elif node.name != "attr":
            args = []
        if node.name == "attr" or args:
            arg = args[0] if args else None
            names = self.fold(arg) if arg is not None else None
            if names is None:
                self.report(
                    "MG421",
                    "attr-filter-dynamic",
                    "<computed>",
                    node,
                    "`|attr` with a name that is not a constant",
                )
            else:
                bad = sorted(n for n in names if _is_dangerous(n))
                if bad:
                    self.report(
                        "MG421",
                        "attr-filter",
                        bad[0],
                        node,
                        f"`attr('{bad[0]}')` reaches Python internals",
                    )
        elif node.name in _ATTRIBUTE_FILTERS:
            candidates: list[nodes.Expr] = [k.value for k in node.kwargs if k.key == "attribute"]
            if node.name in _POSITIONAL_ATTRIBUTE and node.args:
                candidates.append(node.args[0])
            for arg in candidates:
                names = self.fold(arg) or set()
                parts = sorted(p for n in names for p in n.split(".") if _is_dangerous(p))
                if parts:
                    self.report(
                        "MG421",
                        "attribute-filter",
                        parts[0],
                        node,
                        f"`|{node.name}` looks up `{parts[0]}`, which reaches Python internals",
                    )

    def literal(self, node: nodes.Node, text: str) -> None:
        url = _URL.search(text)
        if url:
            self.report("MG422", "url", url.group(0)[:200], node, "contains a URL")
        phrase = _INSTRUCTION.search(text)
        if phrase:
            self.report(
                "MG422",
                "instruction",
                phrase.group(0),
                node,
                f"contains covert-instruction text {phrase.group(0)!r}",
            )

    def condition(self, test: nodes.Node) -> None:
        from jinja2 import nodes

        for node in itertools.chain([test], test.find_all((nodes.Compare, nodes.Call))):
            if isinstance(node, nodes.Compare):
                operands = [node.expr, *(op.expr for op in node.ops)]
                if any(self.is_content(o) for o in operands):
                    for o in operands:
                        lit = _trigger_literal(o)
                        if lit is not None:
                            self.report_trigger(node, lit)
            elif (
                isinstance(node, nodes.Call)
                and isinstance(node.node, nodes.Getattr)
                and node.node.attr in _CONTENT_METHODS
                and self.is_content(node.node.node)
            ):
                for arg in node.args:
                    lit = _trigger_literal(arg)
                    if lit is not None:
                        self.report_trigger(node, lit)

    def report_trigger(self, node: nodes.Node, literal: str) -> None:
        self.report(
            "MG422",
            "content-trigger",
            literal[:120],
            node,
            f"branches on message content matching {literal[:60]!r}",
        )

    # -- helpers ---------------------------------------------------------------------------
    def is_content(self, expr: nodes.Node, depth: int = 0) -> bool:
        """The expression's value is message text (not, e.g., a content part's `type`)."""
        from jinja2 import nodes

        if depth > MAX_FOLD_DEPTH:
            return False
        if isinstance(expr, nodes.Name):
            return expr.name in self.content_names
        if isinstance(expr, nodes.Getattr):
            key: object = expr.attr
        elif isinstance(expr, nodes.Getitem) and isinstance(expr.arg, nodes.Const):
            key = expr.arg.value
        else:
            key = None
        if isinstance(expr, nodes.Getattr | nodes.Getitem) and isinstance(key, str):
            if key == "content":
                return True
            base = expr.node
            part = isinstance(base, nodes.Name) and base.name in self.part_names
            return key == "text" and (part or self.is_content(base, depth + 1))
        if isinstance(expr, nodes.Getitem):
            return self.is_content(expr.node, depth + 1)  # content[0], content[:10]
        if isinstance(expr, nodes.Filter) and expr.node is not None:
            return self.is_content(expr.node, depth + 1)  # content|lower, content|trim
        if isinstance(expr, nodes.Call) and isinstance(expr.node, nodes.Getattr):
            return expr.node.attr in _NORMALISERS and self.is_content(expr.node.node, depth + 1)
        return False


def _builds_string(node: nodes.Node) -> bool:
    """The expression computes a string from parts (the shape of obfuscated names)."""
    from jinja2 import nodes

    if isinstance(node, nodes.Concat | nodes.Add | nodes.Mul | nodes.Mod):
        return True
    if isinstance(node, nodes.Filter):
        return node.name in ("join", "reverse", "format", "replace", "lower", "upper", "string")
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        return node.node.attr in ("join", "format", "replace", "lower", "upper")
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Slice) and isinstance(node.node, nodes.Const)
    return False


def _literals(node: nodes.Node) -> Iterator[str]:
    from jinja2 import nodes

    for const in itertools.chain([node], node.find_all(nodes.Const)):
        if isinstance(const, nodes.Const) and isinstance(const.value, str):
            yield const.value


def _trigger_literal(node: nodes.Node) -> str | None:
    """A string literal that is not markup or a special token (those are ordinary)."""
    from jinja2 import nodes

    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        text = node.value.strip()
        if text and not _MARKUP.match(text):
            return text
    return None
