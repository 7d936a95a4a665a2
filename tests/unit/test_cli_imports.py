"""Every `attnserve` subcommand imports only what it uses (service/cli.py says why).

Registering a command builds its parser and imports nothing heavy, the torch side's commands
(`embed-local`, `export`) included; `attnserve --help` and each command's `--help` never import
torch. Each probe runs in a child process, so what the test process imported never counts.
(The client commands' and `serve`'s real runs, against a server, are checked beside their other
tests: tests/client/test_client_cli.py and tests/server/test_service_lifecycle.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from attnserve.service.cli import GROUP
from tests.support.cli import (
    TORCH_SIDE_PACKAGES,
    run_cli_probing_imports,
    torch_side_imported,
)

COMMANDS = sorted(entry.name for entry in entry_points(group=GROUP))
CLIENT_COMMANDS = ("embed", "attend", "rerank", "chunk", "loadtest")


def test_every_command_the_issue_names_is_registered() -> None:
    assert {*CLIENT_COMMANDS, "serve", "export", "embed-local"} <= set(COMMANDS)


def test_attnserve_help_imports_no_torch(tmp_path: Path) -> None:
    imports = tmp_path / "imports.json"
    result = run_cli_probing_imports(imports, "--help")
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in COMMANDS)  # every command is listed
    assert torch_side_imported(imports) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_commands_help_imports_no_torch(command: str, tmp_path: Path) -> None:
    imports = tmp_path / "imports.json"
    result = run_cli_probing_imports(imports, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"attnserve {command}" in result.stdout
    assert torch_side_imported(imports) == []


REGISTER_ONE = """
import argparse, json, sys
from importlib.metadata import entry_points
(entry,) = [e for e in entry_points(group={group!r}) if e.name == sys.argv[1]]
entry.load()(argparse.ArgumentParser().add_subparsers())
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("command", COMMANDS)
def test_registering_a_command_imports_no_torch(command: str) -> None:
    """The entry point alone, as `attnserve` loads it: its module and its registrar."""
    result = subprocess.run(
        [sys.executable, "-c", REGISTER_ONE.format(group=GROUP), command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout)
    assert [m for m in modules if m in TORCH_SIDE_PACKAGES] == []


def test_a_command_loads_only_its_own_entry_point(tmp_path: Path) -> None:
    """`attnserve verify` never imports the client, the load tester or the torch side's
    command modules: the other entry points stay unloaded."""
    imports = tmp_path / "imports.json"
    result = run_cli_probing_imports(imports, "verify", str(tmp_path / "none"))
    assert result.returncode == 1  # ran, and refused the missing artifact
    modules = set(json.loads(imports.read_text()))
    others = {"attnserve.service.client.cli", "attnserve.service.loadtest.cli",
              "attnserve.model.cli", "attnserve.export.cli"}  # fmt: skip
    assert modules & others == set()
    assert "attnserve.service.server.cli" in modules


def test_the_probe_records_what_a_command_imported(tmp_path: Path) -> None:
    """The checker itself: the probe's file holds the child's modules, and torch among them is
    caught."""
    imports = tmp_path / "imports.json"
    run_cli_probing_imports(imports, "--help")
    assert "attnserve.service.cli" in json.loads(imports.read_text())
    imports.write_text(json.dumps(["numpy", "torch", "torch.nn", "attnserve.model"]))
    assert torch_side_imported(imports) == ["torch"]


def test_a_command_whose_extra_is_not_installed_says_which_to_install(tmp_path: Path) -> None:
    """A distribution whose command needs an extra it lacks (read from its metadata, nothing
    imported): `--help` lists it as unavailable, and running it names the extra."""
    info = tmp_path / "needs_extra_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: needs-extra-demo\nVersion: 0.1\n"
        "Provides-Extra: export\n"
        'Requires-Dist: no-such-package-attnserve-test; extra == "export"\n'
    )
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\nneeds-extra = attnserve.export.cli:register [export]\n"
    )
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "from attnserve.service.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )

    def attnserve(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", code, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    listed = attnserve("--help")
    assert listed.returncode == 0, listed.stderr
    assert "(unavailable: needs `pip install attnserve[export]`;" in " ".join(listed.stdout.split())
    ran = attnserve("needs-extra", "--anything")
    assert ran.returncode == 2
    assert "no-such-package-attnserve-test is not installed" in ran.stderr
    assert "pip install 'attnserve[export]'" in ran.stderr
