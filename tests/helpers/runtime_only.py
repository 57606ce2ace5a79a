"""Which test modules need the compile tools, so that a runtime-only environment (a Jetson's Python, CI's
Python 3.10 leg: no torch) runs every other test and only those are left out.

A test module needs the compile tools when, as it is imported, it imports one of the compile extra's packages
(read from ``pyproject.toml``, so a new compile dependency is covered without listing it here) or the
``compile``/``calibration`` packages (an ``import`` or a ``pytest.importorskip``), directly or through a local
module it imports (``tests.helpers.*``, ``benchmarks.*``, …), at any depth. Only imports run at import time
count: an import inside a function is the test's own business (``pytest.importorskip`` first). No list of test
files is kept, so tests added later are sorted the same way; a runtime test that fails to import for any other
reason still fails.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
COMPILE_PACKAGES = ("compile", "calibration")  # the project's own compile-time packages


@cache
def compile_only_modules() -> frozenset[str]:
    """Top-level import names that only the compile side has: the compile extra's distributions (their import
    names are their distribution names with ``_`` for ``-``: torch, torchvision, onnx, torch_pruning, …) and
    the project's compile packages."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("-", "_")
             for requirement in project["optional-dependencies"]["compile"]}
    return frozenset(names | set(COMPILE_PACKAGES))


def _import_time_nodes(tree: ast.AST):
    """The nodes run when the module is imported: everything but the bodies of functions."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        yield from _import_time_nodes(node)


@cache
def _imported_names(path: Path) -> tuple[str, ...]:
    """Dotted names a module imports at import time (for ``from a import b``: ``a`` and ``a.b``), sorted."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = set()
    for node in _import_time_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = package[:len(package) - node.level + 1] if node.level else ()
            base = ".".join((*parent, node.module) if node.module else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif _is_importorskip(node):
            names.add(node.args[0].value)
    return tuple(sorted(names))


def _is_importorskip(node: ast.AST) -> bool:
    """``pytest.importorskip("name")``: an import that skips the module instead of failing."""
    return (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "importorskip"
            and bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def _local_file(name: str) -> Path | None:
    """The file of a module of this checkout (``tests.helpers.servers``, ``benchmarks.x``), if it is one."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def compile_import(path: Path) -> str | None:
    """How the module at ``path`` reaches a compile-only package at import time, e.g.
    ``"tests.helpers.x → torch"``, or None when it does not."""
    heavy = compile_only_modules()
    seen = {path}
    pending = [(path, ())]
    while pending:
        module, chain = pending.pop()
        for name in _imported_names(module):
            if name.split(".")[0] in heavy:
                return " → ".join((*chain, name))
            local = _local_file(name)
            if local is not None and local not in seen:
                seen.add(local)
                pending.append((local, (*chain, name)))
    return None
