"""The two explanations the `explain` task serves, as pure numpy over what a run produced.

- `similarity_terms`: with mean pooling a text's vector is the mean of its token vectors, so
  the cosine of two texts splits exactly into token pairs:
  cos(a, b) = sum_ij (t_i . u_j) / (n m |a| |b|), a = mean_i t_i, b = mean_j u_j. The cells sum
  to the cosine; each token's share is its row (or column) sum. Exact for mean pooling only.
- `rollout` (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers"): per layer
  the head-averaged attention with the residual added, 0.5 A + 0.5 I, rows renormalised, and
  the layers multiplied in order, R = A'_L ... A'_1: row i says how much each input token
  reaches output position i. An approximation of information flow, not an exact account.

Sums and products run in float64 (so a 512 x 512 matrix still sums to the cosine to 1e-7) and
the answers are float32, as every vector the server sends; the same input gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnserve.service.artifact import Pooling


@dataclass(frozen=True)
class SimilarityTerms:
    """The token-pair decomposition of two mean-pooled texts' cosine."""

    cells: np.ndarray  # (n, m) float32: cells[i, j] = t_i . u_j / (n m |a| |b|)
    first_shares: np.ndarray  # (n,) float32: row sums, the first text's tokens' shares
    second_shares: np.ndarray  # (m,) float32: column sums, the second text's tokens' shares
    cosine: float  # the cells' sum (float64 before rounding): cos(a, b)


def similarity_terms(first: np.ndarray, second: np.ndarray) -> SimilarityTerms:
    """(n, D) and (m, D) token vectors, exactly those that were mean-pooled (Matryoshka: their
    first D dimensions) -> the cells of their cosine. A zero mean vector has no direction: its
    cells are all zero, as the cosine a zero vector gets from `normalize_rows`."""
    t, u = first.astype(np.float64), second.astype(np.float64)  # (n, D), (m, D)
    n, m = t.shape[0], u.shape[0]
    norms = float(np.linalg.norm(t.mean(axis=0)) * np.linalg.norm(u.mean(axis=0)))
    scale = 0.0 if norms < 1e-24 else 1.0 / (n * m * norms)
    cells = (t @ u.T) * scale  # (n, m)
    return SimilarityTerms(
        cells.astype(np.float32),
        cells.sum(axis=1).astype(np.float32),
        cells.sum(axis=0).astype(np.float32),
        float(cells.sum()),
    )


def rollout(maps: np.ndarray) -> np.ndarray:
    """(layers, heads, n, n) attention, every layer in order -> (n, n) float32 rollout."""
    n = maps.shape[-1]
    identity = np.eye(n)
    joint = identity
    for layer in maps.astype(np.float64):  # (heads, n, n), first layer first
        mixed = 0.5 * layer.mean(axis=0) + 0.5 * identity  # the residual stream's share
        mixed /= mixed.sum(axis=-1, keepdims=True)
        joint = mixed @ joint
    result: np.ndarray = joint.astype(np.float32)
    return result


def pooled_relevance(joint: np.ndarray, pooling: Pooling) -> np.ndarray:
    """(n, n) rollout -> (n,) each input token's reach into what is pooled: the first position
    (CLS), the last (last-token pooling) or the mean over every real token (mean pooling)."""
    if pooling is Pooling.CLS:
        row = joint[0]
    elif pooling is Pooling.LAST:
        row = joint[-1]
    else:
        row = joint.mean(axis=0, dtype=np.float64)
    relevance: np.ndarray = row.astype(np.float32)
    return relevance
