"""Sparse lexical vectors without torch: a graph's weights -> sorted (indices, values) pairs.

Two sources, one answer (`SparseSpec.kind`): SPLADE's graph reduces its (B, T, V) weights to one
(B, V) row per text inside the graph, and a row here becomes its non-zero terms; bge-m3's graph
answers a weight per token (B, T), and here each token id keeps the largest weight of its
occurrences (FlagEmbedding's `_process_token_weights`), its special tokens dropped. Either way
the pairs come sorted by index; `top_k` keeps the largest weights (ties: the lower index), and
`min_weight` drops the smaller ones, before sorting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class SparseVector(NamedTuple):
    indices: np.ndarray  # (n,) int64, ascending
    values: np.ndarray  # (n,) float32, > 0


def select(
    indices: np.ndarray, values: np.ndarray, top_k: int | None, min_weight: float
) -> SparseVector:
    keep = values > max(min_weight, 0.0)
    indices, values = indices[keep], values[keep]
    if top_k is not None and len(values) > top_k:
        best = np.lexsort((indices, -values))[:top_k]  # largest first; ties: lower index
        indices, values = indices[best], values[best]
    order = np.argsort(indices, kind="stable")
    return SparseVector(indices[order].astype(np.int64), values[order].astype(np.float32))


def from_vocabulary(
    row: np.ndarray, top_k: int | None = None, min_weight: float = 0.0
) -> SparseVector:
    """One (V,) row of vocabulary weights (SPLADE)."""
    nonzero = np.flatnonzero(row > 0)
    return select(nonzero, row[nonzero], top_k, min_weight)


def from_tokens(
    ids: Sequence[int] | np.ndarray,
    weights: np.ndarray,
    dropped_ids: Sequence[int],
    top_k: int | None = None,
    min_weight: float = 0.0,
) -> SparseVector:
    """A text's real token ids (n,) and their weights (n,) (bge-m3): each id's largest weight."""
    ids = np.asarray(ids, dtype=np.int64)
    keep = ~np.isin(ids, np.asarray(dropped_ids, dtype=np.int64)) & (weights > 0)
    ids, weights = ids[keep], weights[keep]
    unique, inverse = np.unique(ids, return_inverse=True)
    best = np.zeros(len(unique), dtype=np.float32)
    np.maximum.at(best, inverse, weights.astype(np.float32))
    return select(unique, best, top_k, min_weight)
