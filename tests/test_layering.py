"""The house's layers, kept by test (docs/architecture.md draws them).

- The server never imports the client, the load tester, the torch side or torch itself.
- The client and the load tester never import the server (nor the torch side).
- The shared floor imports nothing of ours but the generated stubs.
- The torch side (model, export) never imports the three programs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
