"""No import cycles in edgert and firmware_tools (issue 11, "Tangles to remove").

The graph is built from the source with :mod:`ast`, so it holds every
``import``/``from`` of an ``edgert.*``/``firmware_tools.*`` module, including
those inside functions (lazy imports) that an import-time check would never
execute. Imports under ``if TYPE_CHECKING:`` are left out: they never run.
``from pkg import name`` points at ``pkg.name`` when that is a module, else at
``pkg``. A package's ``__init__`` is not counted as imported by its own
submodules (Python runs it first, but only a named import of it can close a
cycle). ``importlib.import_module`` with a computed name is not seen.

Two checks:

* module level: a cycle here is a load-order bug waiting to happen;
* all imports: a function-level import that closes a cycle hides a tangle
  (``firmware_tools.cli`` <-> ``firmware_tools.sim`` was one: a library module
  importing the CLI at module level, the CLI importing it back lazily).

A cycle that cannot be removed yet goes into an allow-list below, named with
the issue that removes it. The lists only shrink: an entry whose cycle is gone
fails the test until it is deleted, so a fixed cycle cannot quietly come back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgert", "firmware_tools")

#: Module-level cycles still allowed: frozenset of module names -> the issue that removes it.
ALLOWED_MODULE_LEVEL_CYCLES: dict[frozenset[str], str] = {}
#: Cycles closed by a function-level import, still allowed: frozenset of module names -> the issue that removes it.
ALLOWED_LAZY_CYCLES: dict[frozenset[str], str] = {}


def _modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of :data:`PACKAGES`."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its closest enclosing module of ours (``edgert.x.Class`` -> ``edgert.x``); None when not ours."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """``(imported module, lazy)`` for each import of ours in ``name``; lazy = inside a function."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
                continue
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit(stmt, lazy)
                continue
            if isinstance(child, ast.Import):
                found.extend((target, lazy) for alias in child.names if (target := _known(alias.name, modules)))
            elif isinstance(child, ast.ImportFrom):
                base = package[: len(package) - child.level + 1] if child.level else []
                source = ".".join(base + ([child.module] if child.module else []))
                for alias in child.names:
                    target = f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else _known(source, modules)
                    if target:
                        found.append((target, lazy))
            visit(child, lazy)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


def _graph(lazy_too: bool) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, lazy in _imports(name, path, modules):
            if target != name and (lazy_too or not lazy):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: set[frozenset[str]] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.add(frozenset(component))
    return cycles


def _check(cycles: set[frozenset[str]], allowed: dict[frozenset[str], str], what: str) -> None:
    new = [sorted(c) for c in cycles if c not in allowed]
    gone = [f"{sorted(c)} ({issue})" for c, issue in allowed.items() if c not in cycles]
    assert not new, f"new {what} import cycle(s): {new}; break them (a leaf module, or move the shared code down a layer)"
    assert not gone, f"allowed {what} cycle(s) no longer exist, delete their allow-list entries: {gone}"


def test_cycle_finder_sees_a_cycle_closed_by_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == {frozenset("abc")}


def test_import_statements_are_resolved_to_our_modules(tmp_path):
    modules = {"pkg": tmp_path / "__init__.py", "pkg.a": tmp_path / "a.py", "pkg.b": tmp_path / "b.py"}
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from pkg.b import name\n"
        "import pkg.b.name\n"
        "if TYPE_CHECKING:\n    import pkg\n"
        "def f():\n    from pkg import thing\n")
    assert _imports("pkg.a", tmp_path / "a.py", modules) == [("pkg.b", False)] * 3 + [("pkg", True)]


def test_no_module_level_import_cycles():
    _check(_cycles(_graph(lazy_too=False)), ALLOWED_MODULE_LEVEL_CYCLES, "module-level")


def test_no_import_cycles_even_through_function_level_imports():
    _check(_cycles(_graph(lazy_too=True)), ALLOWED_LAZY_CYCLES, "function-level")


def test_library_modules_never_import_a_command_line_module():
    """The CLI imports the library, never the other way round (a simulator module once imported the CLI)."""
    cli = {"edgert.cli", "firmware_tools.cli", "firmware_tools.cli_firmware"}
    modules = _modules()
    wrong = sorted(
        f"{name} -> {target}"
        for name, path in modules.items()
        if name not in cli and not name.startswith("edgert.commands") and not name.endswith("__main__")
        for target, _ in _imports(name, path, modules)
        if target in cli or target.startswith("edgert.commands")
    )
    assert not wrong, f"library modules import command-line modules: {wrong}"


def test_every_package_imported_here_is_one_the_wheel_installs():
    """``[tool.setuptools] packages`` is an explicit list: a new package left out of it imports from a checkout only."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert packages <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(packages - listed)}"
