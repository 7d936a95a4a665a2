"""The artifact served when none is given: the packaged all-MiniLM-L6-v2, built once and cached.

Building needs the export extra (torch); it runs `attnserve export` in a child process so this
package never imports torch, `model/` or `export/`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from attnserve.service.artifact import ArtifactError, verify

log = logging.getLogger(__name__)
DEFAULT_ARTIFACT_NAME = "all-MiniLM-L6-v2"


def ensure_default_artifact(cache_dir: Path) -> Path:
    directory = cache_dir / DEFAULT_ARTIFACT_NAME
    try:
        verify(directory)
        return directory
    except ArtifactError as reason:
        log.info("building the default artifact into %s (%s)", directory, reason)
    directory.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "attnserve.service.cli", "export", "--out", str(directory)]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise ArtifactError(
            f"could not build the default artifact (exit {result.returncode}); install the "
            "export extra (pip install 'attnserve[export]') or pass --artifact DIR"
        )
    verify(directory)
    return directory
