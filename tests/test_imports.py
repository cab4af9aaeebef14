"""The import graph of ``src/amber``: no import loops, and no module reaches up into a face.

The faces are what people and programs use amber through: the command line
(``amber.cli``), the HTTP API (``amber.api``), the reviewers' console (``amber.web``) and
``amber demo`` (``amber.demo``). They import the library; the library never imports them,
and ``amber.demo`` is imported by the command line alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
#: ``amber.__main__`` is ``python -m amber``: the command line too.
FACES = ("amber.cli", "amber.__main__", "amber.api", "amber.web", "amber.demo")


def _name(file: Path) -> str:
    parts = list(file.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(f): f for f in sorted((SRC / "amber").rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(body: list[ast.stmt], *, at_import: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements in ``body``: with ``at_import`` only those run when the module is
    imported (not in functions or classes' methods, not under ``if TYPE_CHECKING``)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            if not at_import:
                found += _import_nodes(node.body, at_import=at_import)
            found += _import_nodes(node.orelse, at_import=at_import)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and at_import:
            continue
        else:
            children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
            found += _import_nodes(children, at_import=at_import)
    return found


def imports(module: str, *, at_import: bool) -> set[str]:
    """The amber modules ``module`` imports (``from amber.x import y`` names ``amber.x.y``
    when that is a module, else ``amber.x``)."""
    file = MODULES[module]
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(file.read_text()).body, at_import=at_import):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        for alias in node.names:
            full = f"{base}.{alias.name}"
            found.add(full if full in MODULES else base)
    return {m for m in found if m in MODULES and m != module}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def is_face(module: str) -> bool:
    return any(module == face or module.startswith(face + ".") for face in FACES)


def test_the_walk_sees_the_faces_and_the_library() -> None:
    assert {"amber.cli", "amber.cli.scan", "amber.api.app", "amber.demo", "amber.engine"} <= set(
        MODULES
    )
    assert "amber.render" in imports("amber.demo", at_import=True)
    assert "amber.engine" in imports("amber.cli.options", at_import=False)
    assert "amber.engine" not in imports("amber.cli.options", at_import=True)  # lazily


def test_no_import_loops() -> None:
    graph = {m: imports(m, at_import=True) for m in MODULES}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_outside_the_faces_imports_a_face() -> None:
    wrong = {
        (module, target)
        for module in MODULES
        for target in imports(module, at_import=False)
        if is_face(target) and not is_face(module)
    }
    assert wrong == set()


def test_only_the_command_line_imports_the_demo() -> None:
    users = {m for m in MODULES if "amber.demo" in imports(m, at_import=False)}
    assert users == {"amber.cli"}
