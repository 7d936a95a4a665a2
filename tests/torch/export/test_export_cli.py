"""`attnserve export` as a user runs it: stages as they finish, a summary, and no library noise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from attnserve.service.artifact import verify
from tests.support.artifacts import ArtifactCache
from tests.support.cli import run_cli

# Every line the export may print on stderr at the default level: its opening line and one line
# per finished stage (export/progress.py). Anything else (torch's exporter, onnxscript's
# optimiser, ONNX Runtime's quantiser, Python warnings) is noise that belongs at debug.
OPENING = re.compile(r"^attnserve export: .+ -> .+")
STAGE = re.compile(r"^(load|export|fuse|verify|finite|int8|fp16|write)\s+\S.*\s\d+\.\d s\b")
STAGES = ("load", "export", "fuse", "verify", "finite", "int8", "fp16", "write")


@pytest.mark.slow  # the full packaged export (the suite's own, or its own given a prebuilt one)
def test_export_shows_its_stages_and_a_summary_and_nothing_else(
    artifacts: ArtifactCache, tmp_path: Path
) -> None:
    # The suite's packaged artifact is this very export (tests/support/artifacts.py).
    out, result = artifacts.packaged_export(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    noise = [line for line in lines if not (OPENING.match(line) or STAGE.match(line))]
    assert noise == []
    assert OPENING.match(lines[0])
    assert {line.split()[0] for line in lines[1:]} == set(STAGES)
    # One int8 line per candidate measured; the packaged model's written one meets the goal.
    assert any("meets the goal" in line for line in lines if line.startswith("int8"))

    manifest = verify(out)
    summary = result.stdout
    assert f"artifact {out}: {manifest.model.name}" in summary
    assert manifest.artifact_hash[:16] in summary
    table = summary.splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("file "))
    assert set(table[header + 1]) == {"-", " "}
    rows = {line.split()[0]: line for line in table[header + 2 :]}
    assert set(rows) == set(manifest.files)
    assert "quality gate passed" in rows["encoder.fast.int8.onnx"]


def test_a_bad_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("export", "--out", str(tmp_path / "a"), "--checkpoint", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("attnserve export: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "a").exists()
