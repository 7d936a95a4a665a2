"""Every artifact the tests use, built once per test run and keyed by what is built.

Exports are the suite's largest cost (the packaged all-MiniLM-L6-v2 with its int8 gate takes
1-1.5 minutes on 2 cores; a tiny RoBERTa a few seconds), and fixtures of different scopes and
modules asked for the same ones: the packaged model was exported three times, RoBERTa's
checkpoint three times. Every fixture that needs an artifact asks this cache (the session
fixture `artifacts` in tests/conftest.py) instead, and gets the one directory built for its key:
the checkpoint (which names the family and shape), int8 and fp16.

The packaged model is exported as a user exports it, `attnserve export --out DIR` in a child
process; its console is kept, so test_export_cli.py reads the very export the suite serves
instead of running a second one. Exports import torch: only `get` does, when it builds.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import run_cli

# What the packaged export may take on 2 busy cores (about 50 s idle, most of it the int8 gate;
# 4-5x that under other sessions' load).
PACKAGED_EXPORT_TIMEOUT_S = 900


@dataclass(frozen=True)
class ArtifactKey:
    """What an artifact is built from and with: its key in the cache."""

    checkpoint: Path | None  # None: the packaged all-MiniLM-L6-v2
    int8: bool
    fp16: bool

    def name(self) -> str:
        """The artifact's folder name: its checkpoint's, as the fixtures named them before."""
        return "all-MiniLM-L6-v2" if self.checkpoint is None else self.checkpoint.name

    def graphs(self) -> str:
        """fp32, then int8 and fp16 where built: `fp32+int8+fp16`."""
        wanted = {"int8": self.int8, "fp16": self.fp16}
        return "+".join(["fp32", *(name for name, built in wanted.items() if built)])


class ArtifactCache:
    """key -> its artifact directory under `root`, exported on first use."""

    def __init__(self, root: Path, prebuilt_packaged: Path | None = None) -> None:
        self.root = root
        self.built: dict[ArtifactKey, Path] = {}
        # An export that failed fails every test that asks for it, without exporting again.
        self.failed: dict[ArtifactKey, BaseException] = {}
        # The packaged export's console (`attnserve export` as run here); None when it was not
        # run here (ATTNSERVE_TEST_ARTIFACT names a prebuilt artifact).
        self.packaged_console: subprocess.CompletedProcess[str] | None = None
        if prebuilt_packaged is not None:
            self.built[ArtifactKey(None, int8=True, fp16=True)] = prebuilt_packaged

    def get(self, checkpoint: Path | None = None, *, int8: bool = True, fp16: bool = True) -> Path:
        """The artifact of `checkpoint` (default: the packaged model) with these graphs."""
        key = ArtifactKey(None if checkpoint is None else checkpoint.resolve(), int8, fp16)
        if key in self.failed:
            raise self.failed[key]
        if key not in self.built:
            try:
                self.built[key] = self.build(key)
            except BaseException as failure:
                self.failed[key] = failure
                raise
        return self.built[key]

    def packaged(self) -> Path:
        """The packaged all-MiniLM-L6-v2 with every graph (fp32, maps, int8, fp16)."""
        return self.get()

    def packaged_export(self, scratch: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
        """The packaged artifact and the console of the `attnserve export` that wrote it: the
        suite's own, or (a prebuilt artifact given) one run here into `scratch`."""
        directory = self.packaged()
        if self.packaged_console is not None:
            return directory, self.packaged_console
        directory = scratch / "artifact"
        return directory, export_packaged(directory)

    def build(self, key: ArtifactKey) -> Path:
        # A folder of its own, holding only it (a folder of artifacts serves all of them), and
        # distinct for two checkpoints of one name in different places.
        out = self.root / f"{len(self.built)}-{key.graphs()}" / key.name()
        if key == ArtifactKey(None, int8=True, fp16=True):
            self.packaged_console = export_packaged(out)
            return out
        from attnserve.export.artifact import build_artifact

        build_artifact(out, key.checkpoint, int8=key.int8, fp16=key.fp16)
        return out


def export_packaged(out: Path) -> subprocess.CompletedProcess[str]:
    """`attnserve export --out out`: the packaged model, as a user builds it."""
    result = run_cli("export", "--out", str(out), timeout=PACKAGED_EXPORT_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    return result
