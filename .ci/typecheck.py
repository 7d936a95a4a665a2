"""mypy --strict over the code as it is imported: `attnserve.*` mapped onto the card's folders.

The wheel installs the top-level folders under one import root (`model/` is `attnserve.model`,
`service/` is `attnserve.service`, ...; see `[tool.setuptools.package-dir]`). mypy names a file's
module after its folders and cannot follow setuptools' editable-install finder, so run from the
command line it would check `model/encoder.py` as `model.encoder` and never resolve
`attnserve.model.encoder`. This script hands mypy every file under the name it is imported by,
with the options of `[tool.mypy]` in pyproject.toml, and prints mypy's own report.

    python .ci/typecheck.py        # exit 0 when clean, 1 with errors
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from mypy import build
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent
# Checked beside the installed packages under their own (top-level) names.
EXTRA_PACKAGES = ("tests", "bench")
EXTRA_FILES = ("proto/generate.py", "deploy/docker/healthcheck.py")
GENERATED = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


def package_dirs() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in mapping.items()}


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def sources() -> list[BuildSource]:
    roots = package_dirs() | {name: ROOT / name for name in EXTRA_PACKAGES}
    # A folder mapped on its own (attnserve.model) is skipped inside its parent's (attnserve).
    nested = set(roots.values())
    found: list[BuildSource] = []
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            inner = [p for p in nested if p != folder and folder in p.parents and p in path.parents]
            if inner or path.name.endswith(GENERATED):
                continue
            found.append(
                BuildSource(str(path.relative_to(ROOT)), module_name(package, folder, path))
            )
    for extra in EXTRA_FILES:
        found.append(BuildSource(extra, Path(extra).stem))
    return found


def main() -> int:
    _, options = process_options(["--config-file", str(ROOT / "pyproject.toml"), "-c", "pass"])
    files = sources()
    try:
        result = build.build(files, options)
        messages = result.errors
    except build.CompileError as error:
        messages = error.messages
    for message in messages:
        print(message)
    checked = len(files)
    print(
        f"mypy: {len(messages)} problem(s) in {checked} files"
        if messages
        else f"mypy: {checked} files clean"
    )
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main())
