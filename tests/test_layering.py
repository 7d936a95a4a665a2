"""The serving side stays slim: `service/` imports neither torch nor `model/` nor `export/`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("torch", "model", "export", "safetensors", "onnx", "transformers")


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_service_module_imports_export_time_packages() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & set(FORBIDDEN))
        for path in (ROOT / "service").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_service_imports_and_its_cli_runs_with_export_packages_blocked() -> None:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in FORBIDDEN)
    code = (
        f"import sys; {blocked}\n"
        "import service.server, service.api, service.client, service.loadtest\n"
        "from service.cli import main\n"
        "sys.exit(main(['verify', '/nonexistent']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr  # verify ran and refused the missing artifact
    assert "manifest.json: not found" in result.stderr


def test_export_commands_say_what_to_install_when_torch_is_missing() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from service.cli import main\n"
        "sys.exit(main(['export', '--out', '/tmp/x']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "pip install 'attnserve[export]'" in result.stderr
