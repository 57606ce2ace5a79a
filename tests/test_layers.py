"""The runtime's layers, read from its source: every import of every module in ``edge/`` and ``streams/``, at
any depth (inside functions and ``if TYPE_CHECKING:`` blocks too), makes no circle; ``edge/`` and ``streams/``
never import ``compile/`` or ``calibration/`` (the CLI's command handlers aside, inside their functions); and
``streams/`` never imports ``edge/``.

A module importing a package it lives in (``edge.decoders.base`` importing ``edge.decoders``) is not an edge:
Python initialises the package first whatever the submodule does.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("edge", "streams")
COMPILE_SIDE = ("compile", "calibration")
CLI = "edge.cli"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the dotted name imported
    line: int
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(path, root): path for package in RUNTIME for path in sorted((root / package).rglob("*.py"))}


class _ImportVisitor(ast.NodeVisitor):
    """Every import statement of one module with the names it brings in, resolving relative imports."""

    def __init__(self, module: str, is_package: bool):
        self.module, self.found, self._depth = module, [], 0
        self._package = module if is_package else module.rpartition(".")[0]

    def _function(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function  # noqa: N815 (ast's names)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        base = node.module or ""
        if node.level:
            anchor = self._package.split(".")[:len(self._package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        self._add(base, node)
        for alias in node.names:
            self._add(f"{base}.{alias.name}", node)  # ``from pkg import module`` imports pkg.module

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.module, target, node.lineno, self._depth > 0))


def imports_in(module: str, source: str, is_package: bool = False) -> list[Import]:
    visitor = _ImportVisitor(module, is_package)
    visitor.visit(ast.parse(source))
    return visitor.found


def all_imports(modules: dict[str, Path]) -> list[Import]:
    return [found for name, path in modules.items()
            for found in imports_in(name, path.read_text(encoding="utf-8"), path.name == "__init__.py")]


def import_graph(modules: dict[str, Path], imports: list[Import]) -> dict[str, set[str]]:
    """Module → the runtime modules it imports (a name inside a module counts as that module)."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for found in imports:
        target = found.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != found.module and not found.module.startswith(target + "."):
            edges[found.module].add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import one another, directly or not."""
    reach: dict[str, set[str]] = {}
    for start in edges:
        seen, todo = set(), list(edges[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(edges[name])
        reach[start] = seen
    groups = {frozenset(other for other in reach[name] if name in reach[other])
              for name in edges if name in reach[name]}
    return sorted(sorted(group) for group in groups)


def forbidden(imports: list[Import]) -> list[str]:
    """Imports that break a layer, as ``module:line imports target``."""
    broken = []
    for found in imports:
        top = found.target.split(".")[0]
        handler = (found.module == CLI or found.module.startswith(CLI + ".")) and found.in_function
        if (top in COMPILE_SIDE and not handler) or (top == "edge" and found.module.split(".")[0] == "streams"):
            broken.append(f"{found.module}:{found.line} imports {found.target}")
    return broken


def test_the_walk_sees_every_kind_of_import():
    source = """
import streams.feed
from . import sibling
from ..bundle import load_bundle
if TYPE_CHECKING:
    from compile.engine import build_engine
def handler():
    from calibration.quantize_bundle import quantize_bundle
class Owner:
    def method(self):
        import edge.graph
"""
    found = {(i.target, i.in_function) for i in imports_in("edge.cli.tool", source)}
    assert {("streams.feed", False), ("edge.cli.sibling", False), ("edge.bundle.load_bundle", False),
            ("compile.engine", False), ("calibration.quantize_bundle", True), ("edge.graph", True)} <= found
    broken = forbidden(imports_in("edge.cli.tool", source) + imports_in("streams.feed", "import edge.graph"))
    assert broken == ["edge.cli.tool:6 imports compile.engine", "edge.cli.tool:6 imports compile.engine.build_engine",
                      "streams.feed:1 imports edge.graph"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}) == [["a", "b", "c"]]


def test_no_import_circle():
    modules = runtime_modules()
    found = circles(import_graph(modules, all_imports(modules)))
    assert found == [], "import circles: " + "; ".join(" ↔ ".join(group) for group in found)


def test_the_runtime_never_imports_the_compile_side_and_streams_never_imports_edge():
    broken = forbidden(all_imports(runtime_modules()))
    assert broken == [], "layering: " + "; ".join(broken)
