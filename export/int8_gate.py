"""What int8 costs, in the terms a user of the vectors feels, and the gate that bounds it.

Measured on held-out texts (never the calibration ones) against the fp32 graph:
- cosine of each text's pooled vector to its fp32 vector (mean and min);
- retrieval agreement: every held-out text queries all the others by cosine similarity, and
  the int8 ranking is compared with fp32's: how often the nearest neighbour is the same, and how
  much of the top 10 is shared;
- batch invariance: the same text embedded alone and inside varied batches (other texts, other
  lengths, other positions): the lowest cosine between its vectors. A serving batcher decides
  the neighbours; a text's vector must not depend on them.

The gate bounds the cosines and the invariance; the goal (`meets_goal`) adds what users rely on:
mean cosine >= 0.998 and the same nearest neighbour for >= 95% of texts. The export writes the
fastest candidate that meets the goal, or else the most accurate that passes the gate, and says
which.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from attnserve.export.vector_check import PooledRunner, row_cosines

MIN_MEAN_COSINE = 0.99
MIN_MIN_COSINE = 0.98
MIN_INVARIANCE = 0.99999  # fp32's own: 0.9999999 on this machine (summation order by shape)
GOAL_MEAN_COSINE = 0.998  # what a careful user can rely on (issue 33): retrieval unchanged
GOAL_NN_AGREEMENT = 0.95
GATE_TEXTS = 1000
TOP_K = 10
PROBES = 12  # texts embedded alone and in varied batches
BATCHES_PER_PROBE = 6
BATCH_SIZES = (2, 3, 5, 8, 16)


@dataclass(frozen=True)
class Int8Quality:
    mean_cosine: float
    min_cosine: float
    nn_agreement: float  # share of queries whose nearest neighbour is fp32's
    top10_overlap: float  # mean share of fp32's top 10 that int8's top 10 holds
    invariance: float  # min cosine: a text alone vs in varied batches
    n_texts: int

    @property
    def passed(self) -> bool:
        return (
            self.n_texts >= GATE_TEXTS
            and self.mean_cosine >= MIN_MEAN_COSINE
            and self.min_cosine >= MIN_MIN_COSINE
            and self.invariance >= MIN_INVARIANCE
        )

    @property
    def meets_goal(self) -> bool:
        """The gate, with the goal's mean cosine and nearest-neighbour agreement on top."""
        return (
            self.passed
            and self.mean_cosine >= GOAL_MEAN_COSINE
            and self.nn_agreement >= GOAL_NN_AGREEMENT
        )

    def said(self) -> str:
        return (
            f"cosine to fp32 mean {self.mean_cosine:.4f}, min {self.min_cosine:.4f}; "
            f"nearest neighbour {self.nn_agreement:.3f}, top-{TOP_K} {self.top10_overlap:.3f}; "
            f"alone vs in batches min cosine {self.invariance:.7f}"
        )


def ranked_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """(N, k): each text's k most similar other texts, most similar first."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T  # (N, N)
    np.fill_diagonal(similarity, -np.inf)  # a text is not its own neighbour
    top = np.argpartition(-similarity, k, axis=1)[:, :k]
    order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def retrieval_agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(nearest-neighbour agreement, mean top-k overlap) of candidate's ranking vs reference's."""
    k = min(TOP_K, len(reference) - 1)
    ours, theirs = ranked_neighbours(candidate, k), ranked_neighbours(reference, k)
    nearest = float((ours[:, 0] == theirs[:, 0]).mean())
    overlap = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, theirs, strict=True)]))
    return nearest, overlap


def batch_invariance(
    run: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str], seed: int = 0
) -> float:
    """Min cosine between a text's vector alone and inside varied batches of other texts."""
    rng = random.Random(seed)
    by_length = sorted(texts, key=len)
    step = max(1, len(by_length) // PROBES)
    probes = by_length[::step][:PROBES]  # from the shortest to the longest
    worst = 1.0
    for probe in probes:
        alone = run([probe])
        for _ in range(BATCHES_PER_PROBE):
            others = rng.sample(list(texts), rng.choice(BATCH_SIZES) - 1)
            at = rng.randrange(len(others) + 1)
            batch = [*others[:at], probe, *others[at:]]
            worst = min(worst, float(row_cosines(alone, run(batch)[at : at + 1])[0]))
    return worst


def measure(reference: np.ndarray, run: PooledRunner, texts: Sequence[str]) -> Int8Quality:
    """The int8 graph behind `run` against fp32's `reference` vectors of the same `texts`."""
    candidate = run.embed(texts)
    cosines = row_cosines(reference, candidate)
    nearest, overlap = retrieval_agreement(reference, candidate)
    return Int8Quality(
        mean_cosine=float(cosines.mean()),
        min_cosine=float(cosines.min()),
        nn_agreement=nearest,
        top10_overlap=overlap,
        invariance=batch_invariance(run, texts),
        n_texts=len(texts),
    )
