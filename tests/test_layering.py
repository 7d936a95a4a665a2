"""The house's layers, kept by test (docs/architecture.md draws them).

- The server never imports the client, the load tester, the torch side or torch itself.
- The client and the load tester never import the server (nor the torch side).
- The shared floor imports nothing of ours but the generated stubs.
- The torch side (model, export) never imports the three programs.
- Inside the server, the protocol adapters reach a model only through the registry and its
  tasks, and the rooms below them never import upwards.
- No module of ours imports itself round a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

EXPORT_TIME = ("torch", "safetensors", "onnx", "onnxscript", "transformers")
TORCH_SIDE = ("attnserve.model", "attnserve.export")
SERVER = "attnserve.service.server"
CLIENT = "attnserve.service.client"
LOADTEST = "attnserve.service.loadtest"
FLOOR_FILES = sorted(p for p in (ROOT / "service").glob("*.py") if p.name != "__init__.py")

# (files, what they must never import)
RULES = {
    "server": (
        sorted((ROOT / "service" / "server").rglob("*.py")),
        (CLIENT, LOADTEST, *TORCH_SIDE, *EXPORT_TIME),
    ),
    "client": (sorted((ROOT / "service" / "client").rglob("*.py")), (SERVER, *TORCH_SIDE)),
    "loadtest": (sorted((ROOT / "service" / "loadtest").rglob("*.py")), (SERVER, *TORCH_SIDE)),
    "model": (
        sorted((ROOT / "model").rglob("*.py")),
        (SERVER, CLIENT, LOADTEST, "attnserve.export"),
    ),
    "export": (sorted((ROOT / "export").rglob("*.py")), (SERVER, CLIENT, LOADTEST)),
}


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


def breaks(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in forbidden)


@pytest.mark.parametrize("room", sorted(RULES))
def test_room_never_imports_what_it_must_not(room: str) -> None:
    files, forbidden = RULES[room]
    assert files, f"no files found for {room}"
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if breaks(m, forbidden)
        )
        for path in files
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_shared_floor_imports_nothing_of_ours_but_the_stubs() -> None:
    assert FLOOR_FILES
    offenders = {
        path.name: sorted(
            m
            for m in imported_modules(path)
            if m.startswith("attnserve.") and not m.startswith("attnserve.v1")
        )
        for path in FLOOR_FILES
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_rule_checker_sees_a_violation() -> None:
    """The checker itself: a file that imports the server from the client is caught."""
    assert breaks("attnserve.service.server.app", (SERVER,))
    assert not breaks("attnserve.service.serverless", (SERVER,))


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in (*EXPORT_TIME, *TORCH_SIDE))
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {blocked}\n{code}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_serving_install_imports_and_its_cli_runs_with_the_torch_side_blocked() -> None:
    result = run_blocked(
        "import attnserve.service.server.app, attnserve.service.client.client\n"
        "import attnserve.service.loadtest.generator\n"
        "from attnserve.service.cli import main\n"
        "sys.exit(main(['verify', '/nonexistent']))\n"
    )
    assert result.returncode == 1, result.stderr  # verify ran and refused the missing artifact
    assert "manifest.json: not found" in result.stderr


def test_export_commands_say_what_to_install_when_torch_is_missing() -> None:
    result = run_blocked(
        "from attnserve.service.cli import main\nsys.exit(main(['export', '--out', '/tmp/x']))\n"
    )
    assert result.returncode == 2
    assert "pip install 'attnserve[export]'" in result.stderr


# --- inside the server: adapters over the registry, and no circles anywhere ----------------------

ADAPTERS = ("servicer", "oip", "openai_http", "score_servicer", "rerank_http",
            "late_chunking_servicer", "late_chunking_http")  # fmt: skip
# What a protocol adapter must not reach past the registry and its tasks for: the model's parts.
MODEL_PARTS = tuple(
    f"{SERVER}.{name}"
    for name in ("engine", "batcher", "pipeline", "batch_policy", "cost_model", "prompts", "app")
)
# The rooms below the adapters never import an adapter, the envelope or the composition root.
BELOW_ADAPTERS = ("models", "embed", "score", "late_chunking", "late_chunk_spans", "pipeline",
                  "pairs", "limits", "batcher", "engine", "tokenizer")  # fmt: skip
ABOVE = tuple(f"{SERVER}.{name}" for name in (*ADAPTERS, "calls", "app", "workers", "cli"))
PACKAGES = {"proto/attnserve": "attnserve", "model": "attnserve.model",
            "export": "attnserve.export", "service": "attnserve.service"}  # fmt: skip


def test_adapters_reach_models_only_through_the_registry_and_its_tasks() -> None:
    offenders = {
        name: sorted(
            m
            for m in imported_modules(ROOT / "service" / "server" / f"{name}.py")
            if breaks(m, MODEL_PARTS)
        )
        for name in ADAPTERS
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_models_tasks_and_their_parts_never_import_what_sits_above_them() -> None:
    offenders = {
        name: sorted(
            m
            for m in imported_modules(ROOT / "service" / "server" / f"{name}.py")
            if breaks(m, ABOVE)
        )
        for name in BELOW_ADAPTERS
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def module_graph() -> dict[str, set[str]]:
    """Every module of ours (by import name) -> the modules of ours it imports."""
    files = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "_pb2" in path.name:
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join((package, *parts))] = path
    return {
        module: {m for m in imported_modules(path) if m in files and m != module}
        for module, path in files.items()
    }


def circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle, as the modules around it; [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (found := visit(imported)):
                return found
        path.pop()
        state[module] = 2
        return []

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return []


def test_no_module_of_ours_imports_itself_round_a_circle() -> None:
    graph = module_graph()
    assert "attnserve.service.server.models" in graph
    assert circle(graph) == []
    # The checker itself: a circle is found.
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
