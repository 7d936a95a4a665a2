"""The house's imports, read from the code: every module of ours (by its `attnserve.*` import
name, however the folders sit on disk) and the modules of ours it imports.

`tests/test_layering.py` keeps the rules with it, and it draws the server's floors for
docs/architecture.md (`python -m tests.support.imports`), where a test holds the drawing to the
code: a module's floor is one above the highest module of ours it imports, so every arrow
points down and a circle could not be drawn at all.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.support import ROOT

PACKAGES = {"proto/attnserve": "attnserve", "model": "attnserve.model",
            "export": "attnserve.export", "service": "attnserve.service"}  # fmt: skip
SERVER = "attnserve.service.server"


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, anywhere in it (functions included)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def module_files() -> dict[str, Path]:
    """Every module of ours (generated stubs aside) by import name."""
    files = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "_pb2" in path.name:
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join((package, *parts))] = path
    return files


def module_graph() -> dict[str, set[str]]:
    """Every module of ours -> the modules of ours it imports."""
    files = module_files()
    return {
        module: {m for m in imported_modules(path) if m in files and m != module}
        for module, path in files.items()
    }


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's floor: 0 for one that imports none of `graph`'s modules, else one above
    the highest it imports (assumes no circle: `test_layering` proves there is none)."""
    found: dict[str, int] = {}

    def floor(module: str) -> int:
        if module not in found:
            below = [floor(m) for m in graph[module] if m in graph]
            found[module] = 1 + max(below) if below else 0
        return found[module]

    for module in graph:
        floor(module)
    return found


def server_drawing() -> str:
    """The server's modules by floor, top down, each with what of the server it imports
    (names relative to attnserve.service.server; the packages' empty `__init__` left out)."""
    files = module_files()
    modules = {m for m, path in files.items()
               if m.startswith(SERVER + ".") and path.name != "__init__.py"}  # fmt: skip
    graph = {
        m.removeprefix(SERVER + "."): {i.removeprefix(SERVER + ".") for i in imports & modules}
        for m, imports in module_graph().items()
        if m in modules
    }
    levels = floors(graph)
    arrows = sum(len(imports) for imports in graph.values())
    lines = [
        f"attnserve.service.server: {len(graph)} modules, {arrows} imports between them, "
        f"{max(levels.values()) + 1} floors (each module one above the highest it imports)",
        "",
    ]
    for level in range(max(levels.values()), -1, -1):
        for module in sorted(m for m, at in levels.items() if at == level):
            imports = ", ".join(sorted(graph[module], key=lambda m: (-levels[m], m)))
            lines.append(f"{level:>2}  {module:<24} -> {imports}" if imports else
                         f"{level:>2}  {module}")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(server_drawing())
