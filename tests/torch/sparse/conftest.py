"""Retrieval-head checkpoints (tests/support/retrieval_checkpoints.py), each built once per
session, and their artifacts exported once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.retrieval_checkpoints import build_bge_m3, build_colbert, build_splade

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "splade-max": lambda path: build_splade(path, "max"),
    "splade-sum": lambda path: build_splade(path, "sum"),
    "splade-xlm-roberta": lambda path: build_splade(path, "max", "xlm-roberta"),
    "bge-m3": build_bge_m3,
    "colbert": build_colbert,
    "colbert-attended": lambda path: build_colbert(path, attend_to_expansion=True),
}


@pytest.fixture(scope="session")
def retrieval_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    root = tmp_path_factory.mktemp("retrieval-checkpoints")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = BUILDERS[name](root / name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def retrieval_artifacts(
    retrieval_checkpoints: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    from attnserve.export.artifact import build_artifact

    root = tmp_path_factory.mktemp("retrieval-artifacts")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            build_artifact(root / name, retrieval_checkpoints(name), int8=False, fp16=False)
            built[name] = root / name
        return built[name]

    return get
