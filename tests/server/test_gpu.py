"""CUDA execution provider: the fast, maps and fp16 graphs and I/O binding.

Marked `gpu`; skipped cleanly where onnxruntime offers no CUDAExecutionProvider (CI never has a
GPU). Run on a GPU machine with `pip install onnxruntime-gpu` and `pytest -m gpu`; where that
machine cannot export (no torch), `ATTNSERVE_TEST_ARTIFACT=DIR` names a prebuilt artifact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from attnserve.service.artifact import verify
from attnserve.service.padding import PaddedBatch
from attnserve.service.server.engine import Engine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(),
        reason="no CUDAExecutionProvider (needs a GPU and onnxruntime-gpu)",
    ),
]


def sample_batch() -> PaddedBatch:
    ids = np.array([[101, 7592, 2088, 2003, 2307, 102], [101, 7592, 102, 0, 0, 0]], np.int64)
    mask = (ids != 0).astype(np.int64)
    return PaddedBatch(ids, mask, np.zeros_like(ids))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_fast_graph_matches_cpu(artifact_dir: Path, precision: str) -> None:
    manifest = verify(artifact_dir)
    cpu = Engine(artifact_dir, manifest, "fp32", "cpu", 0)
    cuda = Engine(artifact_dir, manifest, precision, "cuda", 0)  # type: ignore[arg-type]
    assert cuda.provider == "CUDAExecutionProvider"
    want = cpu.run("fast", sample_batch(), ["pooled"])["pooled"]
    got = cuda.run("fast", sample_batch(), ["pooled"])["pooled"]  # through I/O binding
    cosine = (want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() >= (0.99999 if precision == "fp32" else 0.999)


@pytest.mark.parametrize("allow_tf32", [False, True])
def test_cuda_maps_graph_gives_exact_probabilities(artifact_dir: Path, allow_tf32: bool) -> None:
    """TF32 off on the maps graph whatever the setting (it may speed up the fast graph only)."""
    manifest = verify(artifact_dir)
    cpu = Engine(artifact_dir, manifest, "fp32", "cpu", 0)
    cuda = Engine(artifact_dir, manifest, "fp32", "cuda", 0, allow_tf32=allow_tf32)
    want = cpu.run("maps", sample_batch(), ["attentions"])["attentions"]
    got = cuda.run("maps", sample_batch(), ["attentions"])["attentions"]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
