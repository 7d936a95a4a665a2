"""A model whose position table is smaller than the server's warm-up and calibration shapes (128
tokens) still starts, warms up and serves: those shapes are capped at the model's table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from attnserve.service.artifact import read_manifest
from attnserve.service.client.client import EmbedderClient
from tests.support.artifacts import ArtifactCache
from tests.support.encoder_families import ENCODER_SHAPES
from tests.support.servers import ServerThread, server_settings


def test_a_model_with_fewer_than_128_positions_warms_up_and_serves(
    encoder_checkpoints: Callable[[str], Path], artifacts: ArtifactCache
) -> None:
    name = "camembert"  # 60 rows in its position table
    assert ENCODER_SHAPES[name].max_positions < 128
    out = artifacts.get(encoder_checkpoints(name), int8=False, fp16=False)
    assert read_manifest(out).model.max_positions < 128
    running = ServerThread(server_settings(out, warmup=True))  # warm-up and calibration on
    try:
        with EmbedderClient(running.target) as client:
            served = client.embed(["a short text", "another one, a little longer"])
        assert served.pooled is not None
        assert served.pooled.shape[0] == 2
        assert np.isfinite(served.pooled).all()
    finally:
        running.stop()
