"""Commands and outside tools run by the tests: `attnserve ARGS` in a child process (and what
it imported), the skip-here-but-fail-in-CI rule for tools that CI installs, verdicts printed
past capture, and a check of the PNG files commands write."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest


def run_cli(
    *args: str, timeout: float = 120, console: bool = False, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`attnserve ARGS` in a child process; `console` runs the installed console script itself
    (proving it is installed) instead of `python -m`."""
    command = [sys.executable, "-m", "attnserve.service.cli"]
    if console:
        beside_python = Path(sys.executable).parent / "attnserve"
        executable = str(beside_python) if beside_python.exists() else shutil.which("attnserve")
        assert executable, "the attnserve console command is not installed"
        command = [executable]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


# What only the torch side needs: a command that imports any of these pays seconds for nothing.
TORCH_SIDE_PACKAGES = ("torch", "transformers", "sentence_transformers", "onnx", "onnxscript",
                       "safetensors")  # fmt: skip
IMPORTS_FILE = "ATTNSERVE_TEST_IMPORTS_FILE"
# `attnserve ARGS` that writes, as it exits (`--help`'s SystemExit and a drained server's return
# included), every module it imported into the file IMPORTS_FILE names.
IMPORTS_PROBE = (
    "import atexit, json, os, sys\n"
    "def record():\n"
    f"    with open(os.environ[{IMPORTS_FILE!r}], 'w') as out:\n"
    "        json.dump(sorted(sys.modules), out)\n"
    "atexit.register(record)\n"
    "from attnserve.service.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def probing_imports(*args: str) -> list[str]:
    """The child command line of `attnserve ARGS` under IMPORTS_PROBE."""
    return [sys.executable, "-c", IMPORTS_PROBE, *args]


def torch_side_imported(imports_file: Path) -> list[str]:
    """The torch side's packages among the modules a probed command imported."""
    modules = json.loads(imports_file.read_text())
    return sorted(m for m in modules if m.split(".")[0] in TORCH_SIDE_PACKAGES and "." not in m)


def run_cli_probing_imports(
    imports_file: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`attnserve ARGS` in a child process that records what it imported into `imports_file`."""
    return subprocess.run(
        probing_imports(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, IMPORTS_FILE: str(imports_file)},
    )


def unavailable(reason: str) -> NoReturn:
    """A tool that CI installs is missing: a skip on a developer's machine, a failure in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"cannot run in CI: {reason}")
    pytest.skip(reason)


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """A measurement or a linter's verdict, printed to the terminal (and CI's log) even while
    output is captured."""
    with capsys.disabled():
        print(f"\n{line}")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file; fails when the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height
