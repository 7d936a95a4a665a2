"""Which artifacts one server serves, and under which names: the `--artifact` setting read.

`--artifact` may be given many times (`ATTNSERVE_ARTIFACT`: comma-separated), each value a
`PATH` or `NAME=PATH`. A `PATH` that is a directory of artifacts (no manifest of its own, its
subdirectories each holding one) stands for every artifact in it, in name order. Without a
`NAME`, a model is served under its manifest's short name (chosen when the manifest is read,
in `app.py`). The first artifact is the default model: requests that name no model go to
it (`Registry.route`). Read once, when the settings are validated, so a bad value stops the server
before anything loads.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from attnserve.service.artifact import MANIFEST_FILE

# A served name: what a request, a metric label and a log line carry. No '/', ',' or '=' (they
# would be read as a path or separate entries), nothing a URL or label would need to escape.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class ArtifactEntry:
    """One artifact to serve: its directory, and the name to serve it under (None: the
    manifest's short name)."""

    path: Path
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.name}={self.path}" if self.name else str(self.path)


def parse_entry(value: str | Path | ArtifactEntry) -> ArtifactEntry:
    """`PATH` or `NAME=PATH` (a Path or an entry passes through)."""
    if isinstance(value, ArtifactEntry):
        return value
    if isinstance(value, Path):
        return ArtifactEntry(value)
    text = value.strip()
    name, sep, path = text.partition("=")
    if sep and "/" not in name:
        if not NAME.fullmatch(name):
            raise ValueError(
                f"artifact {text!r}: the name {name!r} must be letters, digits, '.', '_' or '-'"
            )
        if not path:
            raise ValueError(f"artifact {text!r}: no path after {name}=")
        return ArtifactEntry(Path(path), name)
    return ArtifactEntry(Path(text))


def parse_entries(value: object) -> tuple[ArtifactEntry, ...]:
    """Whatever the setting came as: a comma-separated string (the environment), a list of them
    (repeated flags), a Path or entries (code), None (not set)."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    entries: list[ArtifactEntry] = []
    for item in items:
        if isinstance(item, str):
            entries += [parse_entry(part) for part in item.split(",") if part.strip()]
        elif isinstance(item, Path | ArtifactEntry):
            entries.append(parse_entry(item))
        else:
            raise ValueError(f"artifact: expected a path or NAME=PATH, got {item!r}")
    return tuple(entries)


def is_collection(path: Path) -> bool:
    """A directory of artifacts: no manifest of its own, at least one subdirectory with one."""
    return not (path / MANIFEST_FILE).exists() and any(
        (child / MANIFEST_FILE).is_file() for child in path.iterdir() if child.is_dir()
    )


def expand(entries: tuple[ArtifactEntry, ...]) -> tuple[ArtifactEntry, ...]:
    """Each entry checked to be a directory; a directory of artifacts replaced by its artifacts
    (sorted by folder name, each under its manifest's name)."""
    expanded: list[ArtifactEntry] = []
    for entry in entries:
        if not entry.path.is_dir():
            raise ValueError(f"artifact: {entry.path} is not a directory")
        if not is_collection(entry.path):
            expanded.append(entry)
            continue
        if entry.name is not None:
            raise ValueError(
                f"artifact {entry}: {entry.path} is a directory of artifacts; name each one "
                "(NAME=PATH to its own folder) or leave the directory unnamed"
            )
        children = sorted(c for c in entry.path.iterdir() if (c / MANIFEST_FILE).is_file())
        expanded += [ArtifactEntry(child) for child in children]
    return tuple(expanded)


def duplicate_names(names: list[str]) -> list[str]:
    """The names given to more than one model (the server refuses to start with any)."""
    return sorted(name for name, count in Counter(names).items() if count > 1)
