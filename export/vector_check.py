"""Pooled vectors of a graph, and how close they are to a reference's: the precision checks.

The fp16 check and the int8 gate (`export.int8_gate`) both run a graph on texts and compare its
pooled vectors, text by text, with the fp32 graph's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from attnserve.service.sessions import open_session

if TYPE_CHECKING:  # torch only for the type: the gate's arithmetic runs without it
    from attnserve.model.tokenization import ReferenceTokenizer

# texts -> the graph's feeds: int64 (B, T) arrays by input name, padded on the right
Feeder = Callable[[Sequence[str]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class QualityReport:
    mean_cosine: float
    min_cosine: float
    n_texts: int


def row_cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine of each row of `candidate` to the same row of `reference`."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {candidate.shape}")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosines: np.ndarray = np.nan_to_num(
        (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-12), nan=-1.0
    )
    return cosines


def check_quality(reference: np.ndarray, candidate: np.ndarray) -> QualityReport:
    cosines = row_cosines(reference, candidate)
    return QualityReport(float(cosines.mean()), float(cosines.min()), int(reference.shape[0]))


def feeder(tokenizer: ReferenceTokenizer, inputs: Sequence[str]) -> Feeder:
    """texts -> a graph's numpy feeds: its `inputs`, and the mask (calibration reads it)."""

    def feed(texts: Sequence[str]) -> Mapping[str, np.ndarray]:
        batch = tokenizer(list(texts))
        return {name: batch[name].numpy() for name in (*inputs, "attention_mask")}

    return feed


class PooledRunner:
    """One session of the graph at `path`, fed through `feed`, returning pooled vectors."""

    def __init__(self, path: Path, feed: Feeder) -> None:
        self.session: ort.InferenceSession = open_session(path)
        self.inputs = [graph_input.name for graph_input in self.session.get_inputs()]
        self.feed = feed

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        feeds = self.feed(texts)
        pooled: np.ndarray = self.session.run(["pooled"], {n: feeds[n] for n in self.inputs})[0]
        return pooled

    def embed(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """Length-sorted batches (little padding), returned in the texts' order."""
        ordered = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = [
            self([texts[i] for i in ordered[start : start + batch_size]])
            for start in range(0, len(ordered), batch_size)
        ]
        stacked = np.concatenate(rows)
        out = np.empty_like(stacked)
        out[ordered] = stacked
        return out


def pooled_embeddings(
    path: Path, tokenizer: ReferenceTokenizer, texts: list[str], batch_size: int = 32
) -> np.ndarray:
    def feed(batch: Sequence[str]) -> Mapping[str, np.ndarray]:
        return {name: tensor.numpy() for name, tensor in tokenizer(list(batch)).items()}

    return PooledRunner(path, feed).embed(texts, batch_size)  # the runner takes the graph's inputs
