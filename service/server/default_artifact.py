"""The artifact served when none is given: the packaged all-MiniLM-L6-v2, built once and cached.

Building needs the export extra (torch); it runs `attnserve export` in a child process so this
package never imports torch, `model/` or `export/`. The child's console (one line per stage, then
its summary; other libraries' chatter is already kept off it) is passed line by line into the
server's log, so the first start reads like the rest of the log, JSON lines included.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import deque
from pathlib import Path

from attnserve.service.artifact import ArtifactError, verify

log = logging.getLogger(__name__)
DEFAULT_ARTIFACT_NAME = "all-MiniLM-L6-v2"
# The export command's console prefixes (export/console.py) mapped back to log levels.
CHILD_LEVELS = {"error:": logging.ERROR, "critical:": logging.ERROR, "warning:": logging.WARNING}
KEPT_LINES = 20  # the child's last lines, quoted when it fails


def child_level(line: str) -> int:
    return next(
        (level for prefix, level in CHILD_LEVELS.items() if line.startswith(prefix)), logging.INFO
    )


def run_export(directory: Path) -> tuple[int, list[str]]:
    """`attnserve export --out directory` in a child; its lines go to our log as they come."""
    command = [sys.executable, "-m", "attnserve.service.cli", "export", "--out", str(directory)]
    last: deque[str] = deque(maxlen=KEPT_LINES)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as child:
        assert child.stdout is not None
        for raw in child.stdout:
            line = raw.rstrip()
            if line:
                log.log(child_level(line), "export: %s", line)
                last.append(line)
    return child.returncode, list(last)


def ensure_default_artifact(cache_dir: Path) -> Path:
    directory = cache_dir / DEFAULT_ARTIFACT_NAME
    if not directory.exists():  # the first start: nothing is wrong, there is just nothing yet
        log.info(
            "first start: building the packaged %s into %s, once (2-4 minutes on 2 cores, "
            "most of it the int8 gate; later starts reuse it)",
            DEFAULT_ARTIFACT_NAME,
            directory,
        )
    else:
        try:
            verify(directory)
            return directory
        except ArtifactError as reason:
            log.warning(
                "the cached default artifact failed its check (%s): building it again", reason
            )
    directory.parent.mkdir(parents=True, exist_ok=True)
    returncode, last = run_export(directory)
    if returncode != 0:
        said = next((line for line in reversed(last) if line.startswith("attnserve ")), "")
        raise ArtifactError(
            f"could not build the default artifact (exit {returncode}{': ' + said if said else ''})"
            "; install the export extra (pip install 'attnserve[export]') or pass --artifact DIR"
        )
    verify(directory)
    return directory
