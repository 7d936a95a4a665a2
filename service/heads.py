"""A cross-encoder head's scores from its logits: the one function the export's gate and the
server share, so the gate measures exactly what is served.

sigmoid for one logit (as CrossEncoder and text-embeddings-inference), softmax over the labels,
or the logits themselves (`identity`, or a request for raw scores). numpy only: the floor.
"""

from __future__ import annotations

import numpy as np

from attnserve.service.artifact import ScoreActivation


def activate(logits: np.ndarray, activation: ScoreActivation, raw: bool = False) -> np.ndarray:
    """(n, L) logits -> the (n, L) float32 scores a client sees. The sigmoid runs in float64, so
    a logit far from 0 neither overflows nor loses the digits that still order the documents."""
    if raw or activation == "identity":
        return np.asarray(logits, dtype=np.float32)
    if activation == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-logits.astype(np.float64))), dtype=np.float32)
    wide = logits.astype(np.float64)
    shifted = np.exp(wide - wide.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)
