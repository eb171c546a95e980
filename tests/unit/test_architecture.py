"""Architecture limits (issue 15): small modules, short functions, imports at the top.

Read from the source with ast and tokenize (nothing is imported), over otel_tdd/
and compose/grafana/: no module over 500 lines, no function over 80, and no
import of an otel_tdd module inside a function unless its line says why in a
comment (e.g. `# deferred: heavy optional dependency`). Each failure lists every
offender with its size, largest first, so the fix is obvious.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "otel_tdd"
SCANNED = (ROOT / PACKAGE, ROOT / "compose" / "grafana")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Generated code is exempt; a file says it is in its first lines.
GENERATED_MARKER = "DO NOT EDIT"
# Tool directives are not reasons: noqa, type: ignore[...], pragma: ...
_DIRECTIVE = re.compile(r"\b(noqa|type:\s*ignore|pragma)\b[^#]*", re.IGNORECASE)
MIN_REASON_CHARS = 10

Function = ast.FunctionDef | ast.AsyncFunctionDef
Import = ast.Import | ast.ImportFrom


class _Scan(ast.NodeVisitor):
    """One pass over a module: its functions (qualified names) and the imports inside them."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.depth = 0  # functions we are in (classes do not count)
        self.functions: list[tuple[str, Function]] = []
        self.imports: list[tuple[str, Import]] = []

    def _function(self, node: Function) -> None:
        self.functions.append((".".join([*self.scope, node.name]), node))
        self.scope.append(node.name)
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        self.scope.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def _import(self, node: Import) -> None:
        if self.depth:
            self.imports.append((".".join(self.scope), node))

    visit_FunctionDef = visit_AsyncFunctionDef = _function
    visit_Import = visit_ImportFrom = _import


@dataclass(frozen=True)
class Source:
    path: Path
    text: str
    scan: _Scan

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def _scan(text: str, filename: str = "<sample>") -> _Scan:
    scan = _Scan()
    scan.visit(ast.parse(text, filename=filename))
    return scan


@cache
def sources() -> tuple[Source, ...]:
    """Every hand-written .py file scanned, in path order."""
    found = []
    for directory in SCANNED:
        assert directory.is_dir(), f"{directory} is missing: the limits would check nothing"
        for path in sorted(directory.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if GENERATED_MARKER in "\n".join(text.splitlines()[:5]):
                continue
            found.append(Source(path, text, _scan(text, str(path))))
    assert any(s.path.is_relative_to(ROOT / PACKAGE) for s in found), "no module of otel_tdd"
    return tuple(found)


#: An offender: (size, file, line, what to print); sizes sort largest first.
Offender = tuple[int, str, int, str]


def _report(what: str, limit: str, offenders: list[Offender]) -> str:
    lines = [f"{len(offenders)} {what} ({limit}):"]
    lines += [f"  {text}" for *_, text in sorted(offenders, key=lambda o: (-o[0], o[1], o[2]))]
    return "\n".join(lines)


def module_offenders() -> list[Offender]:
    return [
        (lines, source.name, 0, f"{source.name}: {lines} lines")
        for source in sources()
        if (lines := len(source.text.splitlines())) > MAX_MODULE_LINES
    ]


def _length(function: Function) -> int:
    """Lines from `def` to the function's last line (decorators not counted)."""
    assert function.end_lineno is not None
    return function.end_lineno - function.lineno + 1


def function_offenders() -> list[Offender]:
    return [
        (size, source.name, node.lineno, f"{source.name}:{node.lineno} {name}: {size} lines")
        for source in sources()
        for name, node in source.scan.functions
        if (size := _length(node)) > MAX_FUNCTION_LINES
    ]


def _comments(text: str) -> dict[int, str]:
    """Line number -> the comment on that line (tokenize: a `#` in a string is no comment)."""
    return {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(text).readline)
        if token.type == tokenize.COMMENT
    }


def _imports_package(node: Import, in_package: bool) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name == PACKAGE or a.name.startswith(f"{PACKAGE}.") for a in node.names)
    if node.level:  # `from . import x`: relative, so inside the package
        return in_package
    module = node.module or ""
    return module == PACKAGE or module.startswith(f"{PACKAGE}.")


def _lines_above(lines: list[str], node: Import) -> range:
    """The comment block just above the statement: comment lines and the imports of the
    same block (a reason written once above `from a import x` / `from b import y`)."""
    first = node.lineno - 1
    while first > 0 and (
        lines[first - 1].lstrip().startswith(("#", "from ", "import "))
        or not lines[first - 1].strip()
    ):
        first -= 1
    return range(first + 1, node.lineno)


def _has_reason(comments: dict[int, str], node: Import, lines: list[str] | None = None) -> bool:
    """A comment on one of the statement's lines, or in the comment block just above it,
    that says more than a tool directive."""
    assert node.end_lineno is not None
    numbers = list(range(node.lineno, node.end_lineno + 1))
    if lines is not None:
        numbers += _lines_above(lines, node)
    texts = (comments.get(line, "") for line in numbers)
    return any(len(_DIRECTIVE.sub("", text).strip(" :,;")) >= MIN_REASON_CHARS for text in texts)


def import_offenders() -> list[Offender]:
    offenders = []
    for source in sources():
        in_package = source.path.is_relative_to(ROOT / PACKAGE)
        inside = [(f, n) for f, n in source.scan.imports if _imports_package(n, in_package)]
        comments = _comments(source.text) if inside else {}
        lines = source.text.splitlines()
        for function, node in inside:
            if not _has_reason(comments, node, lines):
                statement = " ".join(" ".join(lines[node.lineno - 1 : node.end_lineno]).split())
                text = f"{source.name}:{node.lineno} in {function}(): {statement}"
                offenders.append((1, source.name, node.lineno, text))
    return offenders


def test_the_limits_see_the_code() -> None:
    """The scan covers the package and the dashboards, and finds what it should."""
    names = {source.name for source in sources()}
    assert f"{PACKAGE}/__init__.py" in names
    assert "compose/grafana/build_dashboards.py" in names
    sample = (
        "import otel_tdd.config\n"
        "class Outer:\n"
        "    def method(self):\n"
        "        from otel_tdd import config\n"
        "        import otel_tdd.sdk  # deferred: heavy optional dependency\n"
        "        from . import redaction  # noqa: PLC0415\n"
        "        import json\n"
        "        def inner():\n"
        "            from otel_tdd.sdk import (\n"
        "                configure,  # deferred: configure imports this module\n"
        "            )\n"
        "        return inner\n"
    )
    scan = _scan(sample)
    assert [(n, _length(f)) for n, f in scan.functions] == [
        ("Outer.method", 10),
        ("Outer.method.inner", 4),
    ]
    # The module-level import is not inside a function; each inner one is found once.
    assert [(f, n.lineno) for f, n in scan.imports] == [
        ("Outer.method", 4),
        ("Outer.method", 5),
        ("Outer.method", 6),
        ("Outer.method", 7),
        ("Outer.method.inner", 9),
    ]
    comments = _comments(sample)
    assert [_imports_package(n, in_package=True) for _, n in scan.imports] == [
        True,
        True,
        True,
        False,
        True,
    ]
    assert [_imports_package(n, in_package=False) for _, n in scan.imports][2] is False
    assert [_has_reason(comments, n) for _, n in scan.imports] == [False, True, False, False, True]
    above = (
        "def f():\n"
        "    x = 1\n"
        "    # Deferred: the command line must not pay for it.\n"
        "    from otel_tdd import a\n"
        "\n"
        "    from otel_tdd import b\n"
        "    y = 2\n"
        "    from otel_tdd import c\n"
    )
    lines = above.splitlines()
    found = [_has_reason(_comments(above), n, lines) for _, n in _scan(above).imports]
    assert found == [True, True, False]


def _fail_with(offenders: list[Offender], what: str, limit: str) -> None:
    """Fail with the list alone (no assertion repr): each offender, its size, the fix."""
    if offenders:
        pytest.fail(_report(what, limit, offenders), pytrace=False)


def test_no_module_is_over_500_lines() -> None:
    _fail_with(
        module_offenders(),
        "modules over the limit",
        f"{MAX_MODULE_LINES} lines, largest first; split each by concern",
    )


def test_no_function_is_over_80_lines() -> None:
    _fail_with(
        function_offenders(),
        "functions over the limit",
        f"{MAX_FUNCTION_LINES} lines from def to last line, largest first",
    )


def test_no_package_import_inside_a_function_without_a_reason() -> None:
    _fail_with(
        import_offenders(),
        "imports of otel_tdd inside a function",
        "move each to the top of its module, or say why on its line or just above it: "
        "`# deferred: <reason>`",
    )
