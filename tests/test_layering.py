"""The house's layers, kept by test (docs/architecture.md draws them).

- The server never imports the client, the load tester, the torch side or torch itself.
- The client and the load tester never import the server (nor the torch side).
- The shared floor imports nothing of ours but the generated stubs (and itself).
- The torch side (model, export) never imports the three programs.
- Inside the server, the grid: each protocol (`v1/`, `oip/`, `http/`, `tei/`) is a kit and cells, a
  cell never imports another cell nor another protocol, the protocols reach a model only
  through the registry and its tasks, and the tasks and the model's parts never import upwards.
- No module of ours imports itself round a circle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.imports import imported_modules, module_graph, server_drawing

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
    """The floor is one layer: its files may use each other (the heads' scores take the
    manifest's activation type), and nothing above it but the generated stubs."""
    assert FLOOR_FILES
    floor = tuple(f"attnserve.service.{path.stem}" for path in FLOOR_FILES)
    offenders = {
        path.name: sorted(
            m
            for m in imported_modules(path)
            if m.startswith("attnserve.")
            and not m.startswith("attnserve.v1")
            and not breaks(m, floor)
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


# --- inside the server: the grid of tasks x protocols, and no circles anywhere ---------------

SERVER_ROOT = ROOT / "service" / "server"
PROTOCOLS = ("v1", "oip", "http", "tei")  # a folder each
# Each protocol's kit (what its cells share) and the module that gathers its cells.
KITS = {
    "v1": ("messages", "streams"),
    "oip": ("tensors", "statistics"),
    "http": ("fields",),
    "tei": ("messages", "streams"),
}
GATHERERS = {
    "v1": ("service",),
    "oip": ("service",),
    "http": ("routes", "app", "openapi"),
    "tei": ("service",),
}
# What a protocol's cell must not reach past the registry and its tasks for: the model's parts.
MODEL_PARTS = tuple(
    f"{SERVER}.{name}"
    for name in ("engine", "batcher", "pipeline", "batch_policy", "cost_model", "prompts", "app")
)


def server_module(path: Path) -> str:
    parts = path.relative_to(SERVER_ROOT).with_suffix("").parts
    return ".".join((SERVER, *parts))


def protocol_modules(protocol: str) -> list[Path]:
    found = sorted((SERVER_ROOT / protocol).glob("*.py"))
    return [path for path in found if path.name != "__init__.py"]


def cells(protocol: str) -> list[Path]:
    shared = (*KITS[protocol], *GATHERERS[protocol])
    return [
        path
        for path in protocol_modules(protocol)
        if path.stem not in shared and not is_bodies(path)
    ]


# A cell's request bodies (`http/tei_bodies.py`: TEI's pydantic models) are part of that cell:
# only it imports them, and they import nothing of a protocol's but its kit.
def is_bodies(path: Path) -> bool:
    return path.stem.endswith("_bodies")


def test_a_cells_bodies_belong_to_that_cell_alone() -> None:
    offenders = {}
    for protocol in PROTOCOLS:
        modules = protocol_modules(protocol)
        for bodies in filter(is_bodies, modules):
            owner = server_module(bodies.with_name(bodies.stem.removesuffix("_bodies") + ".py"))
            importers = {
                server_module(path)
                for path in modules
                if server_module(bodies) in imported_modules(path)
            }
            protocols = tuple(f"{SERVER}.{name}" for name in PROTOCOLS)
            kit = tuple(f"{SERVER}.{protocol}.{name}" for name in KITS[protocol])
            reached = {m for m in imported_modules(bodies) if breaks(m, protocols)}
            if importers - {owner} or {m for m in reached if not breaks(m, kit)}:
                offenders[bodies.name] = sorted(importers - {owner} | reached)
    assert offenders == {}


def test_every_protocol_has_a_kit_and_cells() -> None:
    for protocol in PROTOCOLS:
        names = {path.stem for path in protocol_modules(protocol)}
        assert set(KITS[protocol]) | set(GATHERERS[protocol]) <= names, protocol
        assert cells(protocol), protocol


def test_no_cell_imports_another_cell_or_another_protocol() -> None:
    """A cell imports its protocol's kit and the tasks, never another cell (of any protocol)
    nor another protocol's kit: each protocol's shared pieces live in its kit, not in its
    first cell."""
    every_cell = {server_module(path) for protocol in PROTOCOLS for path in cells(protocol)}
    offenders = {}
    for protocol in PROTOCOLS:
        others = tuple(f"{SERVER}.{other}" for other in PROTOCOLS if other != protocol)
        for path in cells(protocol):
            imported = imported_modules(path)
            bad = sorted(
                m for m in imported
                if breaks(m, others) or (breaks(m, tuple(every_cell)) and m not in
                                         {server_module(path)})
            )  # fmt: skip
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_gatherers_import_only_their_own_protocol() -> None:
    offenders = {}
    for protocol in PROTOCOLS:
        others = tuple(f"{SERVER}.{other}" for other in PROTOCOLS if other != protocol)
        for path in protocol_modules(protocol):
            bad = sorted(m for m in imported_modules(path) if breaks(m, others))
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_protocols_reach_models_only_through_the_registry_and_its_tasks() -> None:
    offenders = {}
    for protocol in PROTOCOLS:
        for path in protocol_modules(protocol):
            bad = sorted(m for m in imported_modules(path) if breaks(m, MODEL_PARTS))
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_tasks_and_the_model_parts_never_import_what_sits_above_them() -> None:
    """The tasks (`tasks/`) and everything a served model is made of never import a protocol,
    the envelope, the composition root, the supervisor or the command."""
    above = (*(f"{SERVER}.{p}" for p in PROTOCOLS),
             *(f"{SERVER}.{name}" for name in ("calls", "app", "workers", "cli")))  # fmt: skip
    below = [*sorted((SERVER_ROOT / "tasks").glob("*.py"))] + [
        SERVER_ROOT / f"{name}.py"
        for name in (
            "registry",
            "pipeline",
            "pairs",
            "limits",
            "batcher",
            "engine",
            "tokenizer",
            "options",
            "timings",
            "routed",
            "errors",
        )
    ]
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if breaks(m, above))
        for path in below
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_cell_checker_sees_a_cell_importing_another(tmp_path: Path) -> None:
    """The checker itself: a cell that takes a piece from another cell is caught."""
    cell = tmp_path / "rerank.py"
    cell.write_text(f"from {SERVER}.http.openai import encode\n")
    assert breaks(f"{SERVER}.http.openai", (f"{SERVER}.http.openai",))
    assert f"{SERVER}.http.openai" in imported_modules(cell)


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
    assert "attnserve.service.server.registry" in graph
    assert circle(graph) == []
    # The checker itself: a circle is found.
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_drawing_in_the_architecture_notes_is_the_code_s() -> None:
    """docs/architecture.md's import drawing of the server is what the code imports today
    (`python -m tests.support.imports` prints it anew)."""
    notes = (ROOT / "docs" / "architecture.md").read_text()
    assert server_drawing() in notes, "rerun python -m tests.support.imports into the notes"


def test_no_test_module_imports_another() -> None:
    """What tests share lives in tests/support/ (and conftest fixtures): a test module importing
    another runs that module's imports and fixtures into the importer, and ties them together."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[-1].startswith("test_")
        )
        for path in sorted((ROOT / "tests").rglob("*.py"))
    }
    assert {path: found for path, found in offenders.items() if found} == {}
