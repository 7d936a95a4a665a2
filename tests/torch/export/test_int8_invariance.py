"""A text's int8 vector does not depend on its batch: alone or among any neighbours, the same.

Checked twice on the packaged artifact: through the int8 ONNX session directly (against the
dynamic int8 of earlier exports, which fails the same check), and served by a real server
under concurrent traffic, where the batcher picks the neighbours.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from attnserve.export.quantize import quantize_dynamic_graph
from attnserve.export.vector_check import PooledRunner, feeder
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import GraphSpec, verify
from attnserve.service.client.client import EmbedderClient
from attnserve.service.corpus import held_out_corpus
from tests.support.servers import ServerThread

FP32_INVARIANCE = 0.99999  # what fp32 itself gives: 0.9999999 (summation order by shape)
TEXTS = held_out_corpus(300)
PROBES = sorted(TEXTS, key=len)[::30]  # ten texts from the shortest to the longest


def neighbour_batches(probe: str, seed: int) -> list[tuple[list[str], int]]:
    """The probe at a random place among 1, 4, 7 and 15 other texts of other lengths."""
    rng = random.Random(seed)
    batches = []
    for others in (1, 4, 7, 15):
        batch = rng.sample([t for t in TEXTS if t != probe], others)
        at = rng.randrange(others + 1)
        batches.append(([*batch[:at], probe, *batch[at:]], at))
    return batches


def worst_cosine(embed: Callable[[Sequence[str]], np.ndarray]) -> float:
    worst = 1.0
    for seed, probe in enumerate(PROBES):
        alone = embed([probe])[0]
        for batch, at in neighbour_batches(probe, seed):
            vector = embed(batch)[at]
            cosine = alone @ vector / (np.linalg.norm(alone) * np.linalg.norm(vector))
            worst = min(worst, float(cosine))
    return worst


def int8_graph(artifact_dir: Path) -> GraphSpec:
    spec = verify(artifact_dir).graph("fast", "int8")
    assert spec is not None
    return spec


def test_the_int8_graph_gives_a_text_one_vector_in_any_batch(
    artifact_dir: Path, tmp_path: Path
) -> None:
    spec = int8_graph(artifact_dir)
    feed = feeder(ReferenceTokenizer(artifact_dir / "tokenizer.json", 256), spec.inputs)
    assert worst_cosine(PooledRunner(artifact_dir / spec.file, feed)) >= FP32_INVARIANCE
    # The check can fail: the dynamic int8 that exports wrote before (per-batch scales) does.
    dynamic = tmp_path / "dynamic.int8.onnx"
    fp32 = verify(artifact_dir).graph("fast", "fp32")
    assert fp32 is not None
    assert spec.int8 is not None
    quantize_dynamic_graph(artifact_dir / fp32.file, dynamic, spec.int8.fp32_nodes)
    assert worst_cosine(PooledRunner(dynamic, feed)) < 0.9999


def test_served_int8_vectors_do_not_depend_on_the_traffic(
    make_server: Callable[..., ServerThread],
) -> None:
    running = make_server(precision="int8")
    with EmbedderClient(running.target) as client:

        def embed(texts: Sequence[str]) -> np.ndarray:
            pooled = client.embed(list(texts)).pooled
            assert pooled is not None
            return pooled

        # in one request: the batcher merges a request's texts into its batches
        assert worst_cosine(embed) >= FP32_INVARIANCE
        # across requests: single-text probes among concurrent callers' texts of every length
        alone = embed(PROBES)
        rng = random.Random(7)
        jobs: list[list[str]] = [[probe] for probe in PROBES for _ in range(3)]
        jobs += [rng.sample(TEXTS, rng.choice((1, 3, 9))) for _ in range(60)]  # other callers
        rng.shuffle(jobs)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(embed, jobs))
    for job, answer in zip(jobs, answers, strict=True):
        if len(job) == 1 and job[0] in PROBES:
            mine = alone[PROBES.index(job[0])]
            cosine = mine @ answer[0] / (np.linalg.norm(mine) * np.linalg.norm(answer[0]))
            assert cosine >= FP32_INVARIANCE, job[0]
