"""`--artifact` read into the set of models a server serves: `PATH` or `NAME=PATH`, repeated
flags or a comma-separated environment value, a directory of artifacts expanded, bad values
refused at start with the value named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from attnserve.service.cli import build_parser
from attnserve.service.server.artifact_entries import ArtifactEntry, duplicate_names, parse_entries
from attnserve.service.server.cli import settings_from_args
from attnserve.service.server.settings import Settings


def make_settings(**values: Any) -> Settings:
    """Settings from code, as tests and benchmarks build them (a Path or strings for
    `artifact`: the field's validator reads them)."""
    return Settings(**values)


def artifact(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text("{}")  # only its presence is read here
    return directory


def test_entries_are_paths_or_named_paths() -> None:
    entries = parse_entries(["mini=/a/b", "/c/d,rerank=/e", Path("/f")])
    assert entries == (
        ArtifactEntry(Path("/a/b"), "mini"),
        ArtifactEntry(Path("/c/d")),
        ArtifactEntry(Path("/e"), "rerank"),
        ArtifactEntry(Path("/f")),
    )
    assert parse_entries(None) == ()
    assert str(entries[0]) == "mini=/a/b"
    # A path that holds '=' past a '/' is a path, not a name.
    assert parse_entries("./x=y") == (ArtifactEntry(Path("./x=y")),)


def test_repeated_flags_and_the_environment_give_the_models_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = artifact(tmp_path / "a"), artifact(tmp_path / "b")
    args = build_parser().parse_args(["serve", "--artifact", f"first={a}", "--artifact", str(b)])
    settings = settings_from_args(args)
    assert settings.artifact == (ArtifactEntry(a, "first"), ArtifactEntry(b))
    monkeypatch.setenv("ATTNSERVE_ARTIFACT", f"{b},second={a}")
    assert Settings().artifact == (ArtifactEntry(b), ArtifactEntry(a, "second"))
    assert make_settings(artifact=a).artifact == (ArtifactEntry(a),)  # code passes a Path


def test_a_directory_of_artifacts_serves_each_in_name_order(tmp_path: Path) -> None:
    root = tmp_path / "models"
    second, first = artifact(root / "zeta"), artifact(root / "alpha")
    (root / "notes").mkdir()  # a folder without a manifest is not an artifact
    extra = artifact(tmp_path / "extra")
    chosen = make_settings(artifact=[str(extra), str(root)])
    assert chosen.artifact == (ArtifactEntry(extra), ArtifactEntry(first), ArtifactEntry(second))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/no/such/dir", "is not a directory"),
        ("bad name=/tmp", "must be letters, digits"),
        ("name=", "no path after name="),
        ("set={root}", "is a directory of artifacts; name each one"),
    ],
)
def test_bad_artifact_values_are_refused_naming_them(
    tmp_path: Path, value: str, message: str
) -> None:
    root = tmp_path / "models"
    artifact(root / "one")
    with pytest.raises(ValidationError, match=message):
        make_settings(artifact=value.format(root=root))


def test_model_name_names_a_lone_model_only(tmp_path: Path) -> None:
    a, b = artifact(tmp_path / "a"), artifact(tmp_path / "b")
    assert make_settings(artifact=a, model_name="mini").model_name == "mini"
    with pytest.raises(ValidationError, match="name each as --artifact NAME=PATH"):
        make_settings(artifact=[str(a), str(b)], model_name="mini")


def test_names_given_twice_are_found() -> None:
    assert duplicate_names(["a", "b", "a", "c", "b"]) == ["a", "b"]
    assert duplicate_names(["a", "b"]) == []
