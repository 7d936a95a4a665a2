"""Attention rollout as the paper writes it, the tests' judge of the server's (which is
`service/server/tasks/attributions.py`, written separately)."""

from __future__ import annotations

import numpy as np


def paper_rollout(attentions: list[np.ndarray]) -> np.ndarray:
    """Abnar & Zuidema (2020), attention rollout over (heads, n, n) maps per layer, first layer
    first: the heads averaged, the residual connection added as the identity (0.5 A + 0.5 I),
    each row re-normalised; then A~(l_i) = A(l_i) A~(l_{i-1}), A~(l_0) = A(l_0)."""
    n = attentions[0].shape[-1]
    joint: np.ndarray | None = None
    for layer in attentions:
        raw = 0.5 * layer.astype(np.float64).mean(axis=0) + 0.5 * np.eye(n)
        raw = raw / raw.sum(axis=-1, keepdims=True)
        joint = raw if joint is None else raw @ joint
    assert joint is not None
    return joint
