"""Late interaction without torch: a text's token ids before a multi-vector graph, the rows of
its answer a text keeps, and MaxSim, for export's checks, the server and the tests alike.

ColBERT (PyLate's `ColBERT.tokenize` and `encode`): the tokenizer truncates a text to one token
less than its side's length, the side's marker id goes in after the first token ([CLS] [Q] ...),
and a query is padded to `query_length` with the expansion id ([MASK]), those positions attended
to only where the model was trained so, yet all kept: the expansion rows are the query's learned
extra terms. A document keeps its real tokens whose ids are not in the skiplist (punctuation).
bge-m3 keeps every real token but the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from attnserve.service.artifact import MultiVectorSpec


class PreparedText(NamedTuple):
    ids: list[int]
    attention: list[int]  # 1: attended to; a query's expansion ids may be 0


def token_cap(spec: MultiVectorSpec, is_query: bool, default: int) -> int:
    """How many tokens the tokenizer may give a text (its marker is added after)."""
    length = spec.query_length if is_query else spec.document_length
    marker = spec.query_marker_id if is_query else spec.document_marker_id
    cap = length or default
    return cap - 1 if marker is not None else cap


def prepare(ids: Sequence[int], spec: MultiVectorSpec, is_query: bool) -> PreparedText:
    """The tokenizer's ids (already capped by `token_cap`) -> the graph's ids and attention."""
    marker = spec.query_marker_id if is_query else spec.document_marker_id
    out = [int(i) for i in ids]
    if marker is not None and out:
        out = [out[0], marker, *out[1:]]
    attention = [1] * len(out)
    if is_query and spec.query_length is not None and spec.expansion_id is not None:
        missing = max(spec.query_length - len(out), 0)
        out += [spec.expansion_id] * missing
        attention += [1 if spec.attend_to_expansion else 0] * missing
    return PreparedText(out, attention)


def batch(texts: Sequence[PreparedText], pad_id: int) -> dict[str, np.ndarray]:
    """Prepared texts -> right-padded (B, T) input_ids, attention_mask, token_type_ids."""
    width = max((len(t.ids) for t in texts), default=0)
    ids = np.full((len(texts), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, text in enumerate(texts):
        ids[row, : len(text.ids)] = text.ids
        mask[row, : len(text.ids)] = text.attention
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def kept_rows(text: PreparedText, spec: MultiVectorSpec, is_query: bool) -> np.ndarray:
    """The positions of a prepared text whose vectors it answers, in order."""
    n = len(text.ids)
    keep = np.ones(n, dtype=bool)
    if is_query and spec.query_length is not None:
        pass  # every position, expansion included
    else:
        keep &= np.asarray(text.attention, dtype=bool)
        if not is_query and spec.skiplist_ids:
            keep &= ~np.isin(np.asarray(text.ids), np.asarray(spec.skiplist_ids))
    if spec.skip_first and n:
        keep[0] = False
    return np.flatnonzero(keep)


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """Sum over the query's vectors (Q, D) of the best dot product with the document's (N, D)."""
    if len(query) == 0 or len(document) == 0:
        return 0.0
    return float((query @ document.T).max(axis=1).sum())
