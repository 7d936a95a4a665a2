"""Refuse, at export, a graph whose outputs hold NaN or Inf.

A NaN vector looks like any other to a caller that does not check, and cosine against it is NaN:
it would poison an index silently. fp16 overflow (known in Qwen-family and large models), a
broken checkpoint or a bad graph rewrite all show this way. So every graph is run on texts before
it is written into an artifact: every graph on the parity texts, the fp32 fast graph also on the
int8 quality gate's 1000 texts where int8 is derived from it (that pass is the gate's fp32
reference too), the fp16 graph on its own texts; and the export stops with a message
that names the graph, the output and a text, instead of shipping numbers that cannot be used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.sessions import open_session


class NonFiniteOutputError(RuntimeError):
    """A graph answered NaN or Inf; the message names the graph, the output and a text."""


def first_non_finite(
    outputs: Sequence[np.ndarray], names: Sequence[str], mask: np.ndarray
) -> tuple[str, int] | None:
    """(output name, batch row) of the first NaN/Inf on a real token, or None.

    `mask` (B, T) marks real tokens: padded rows of token outputs are never served, so they may
    hold anything. Outputs are batch-first (B, ...) or, for stacked maps, (layers, B, ...)."""
    for name, value in zip(names, outputs, strict=True):
        batch_axis = 1 if name == "attentions" else 0
        rows = np.moveaxis(value, batch_axis, 0)  # (B, ...)
        for row in range(rows.shape[0]):
            data = rows[row]
            if name in ("token_embeddings", "attentions"):
                real = int(mask[row].sum())  # right padding: real tokens first
                data = data[:real] if name == "token_embeddings" else data[..., :real, :real]
            if not np.isfinite(data).all():
                return name, row
    return None


def check_finite(
    path: Path, tokenizer: ReferenceTokenizer, texts: list[str], batch_size: int = 32
) -> np.ndarray | None:
    """Run the graph at `path` over `texts` (all its outputs); raise on any NaN/Inf. Returns the
    texts' `pooled` vectors in their order (None for a graph without that output): the int8
    gate's fp32 reference on the same texts, so the graph need not run over them twice."""
    session = open_session(path)
    inputs = [graph_input.name for graph_input in session.get_inputs()]
    names = [output.name for output in session.get_outputs()]
    ordered = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of like lengths
    pooled: list[np.ndarray] = []
    for start in range(0, len(ordered), batch_size):
        indices = ordered[start : start + batch_size]
        batch = tokenizer([texts[i] for i in indices])
        outputs = session.run(None, {name: batch[name].numpy() for name in inputs})
        found = first_non_finite(outputs, names, batch["attention_mask"].numpy())
        if found is not None:
            output, row = found
            index = indices[row]
            raise NonFiniteOutputError(
                f"{path.name}: output {output!r} holds NaN or Inf for text {index} "
                f"({texts[index][:60]!r}); an artifact that answers NaN is refused (an fp32 "
                "overflow or a broken checkpoint: check the weights)"
            )
        if "pooled" in names:
            pooled.append(outputs[names.index("pooled")])
    if not pooled:
        return None
    stacked = np.concatenate(pooled)
    vectors = np.empty_like(stacked)
    vectors[ordered] = stacked  # back in the texts' order
    return vectors
