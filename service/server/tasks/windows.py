"""Chunked embeddings: a text longer than its token window, split into overlapping windows whose
pooled vectors are averaged into one (the arithmetic only: no batcher, no engine).

A document's tokens are [leading fixed] content [trailing fixed], where the fixed tokens are
the tokenizer's special tokens and the instruction prompt ([CLS] prompt ... [SEP] for BERT).
Every window repeats the fixed tokens around a slice of the content, so each window is a text
the model was trained on; consecutive slices share `overlap` content tokens. The windows are
pooled as vLLM's chunked processing pools its chunks: the mean of the window vectors weighted
by each window's tokens. For a mean-pooling model that is the mean over every token the model
ran, as if the document had been one text (docs/architecture.md says why this choice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnserve.service.server.errors import invalid
from attnserve.service.server.tokenizer import EncodedText, prompt_mask


def window_starts(content: int, room: int, overlap: int) -> list[int]:
    """Where each window's content slice starts: windows of `room` content tokens, each
    `room - overlap` after the last, until one reaches the end (the last may be shorter).

    One window when the content fits; the overlap must leave each window new tokens."""
    if room < 1 or not 0 <= overlap < room:
        raise ValueError(f"need room >= 1 and 0 <= overlap < room, got {room}, {overlap}")
    stride = room - overlap
    starts = [0]
    while starts[-1] + room < content:
        starts.append(starts[-1] + stride)
    return starts


def max_overlap(room: int) -> int:
    """The largest overlap a window of `room` content tokens allows: under half of it, so a
    document never runs as more than about twice its own tokens."""
    return max(0, (room - 1) // 2)


@dataclass(frozen=True)
class Windows:
    """One document as the windows the model runs."""

    document: EncodedText  # the whole text (cut at max_document_tokens, if asked)
    windows: list[EncodedText]  # one: the document itself, untouched

    @property
    def weights(self) -> np.ndarray:
        """(w,) each window's tokens, special tokens and prompt included (as vLLM weighs)."""
        return np.array([window.length for window in self.windows], dtype=np.float64)

    @property
    def tokens_run(self) -> int:
        return sum(window.length for window in self.windows)


def fixed_run(fixed: np.ndarray) -> tuple[int, int]:
    """(leading, trailing): how many fixed tokens frame the content at each end."""
    n = len(fixed)
    lead = 0
    while lead < n and fixed[lead]:
        lead += 1
    trail = 0
    while trail < n - lead and fixed[n - 1 - trail]:
        trail += 1
    return lead, trail


def split(document: EncodedText, max_tokens: int, overlap: int, asked: bool) -> Windows:
    """`document` as windows of at most `max_tokens` tokens, `overlap` content tokens shared by
    neighbours: refused when the request `asked` for more than a window allows, capped when it
    is the server's default. A document that fits one window comes back as itself."""
    if document.length <= max_tokens:
        return Windows(document, [document])
    positions = np.asarray(document.kept_positions())  # into document.encoding
    encoding = document.encoding
    fixed = np.asarray(encoding.special_tokens_mask, dtype=bool)[positions]
    if document.prompt_chars:
        fixed |= prompt_mask(encoding, document.prompt_chars)[positions]
    lead, trail = fixed_run(fixed)
    room = max_tokens - lead - trail
    if room < 1:
        raise invalid(
            f"the special tokens and the prompt take {lead + trail} of the {max_tokens} tokens "
            "of a window, leaving none for the text"
        )
    if not asked:
        overlap = min(overlap, max_overlap(room))
    elif overlap > max_overlap(room):
        raise invalid(
            f"chunk_overlap {overlap} is too large for windows of {max_tokens} tokens "
            f"({room} of them text): at most {max_overlap(room)}, under half a window"
        )
    n = document.length
    content = np.arange(lead, n - trail)
    head, tail = np.arange(lead), np.arange(n - trail, n)
    windows = []
    for start in window_starts(len(content), room, overlap):
        rows = np.concatenate([head, content[start : start + room], tail])
        windows.append(
            EncodedText(
                ids=document.ids[rows],
                type_ids=document.type_ids[rows],
                # The document's cut is reported once: pipeline.run counts cuts per text run.
                truncated=document.truncated and start == 0,
                encoding=encoding,
                kept=positions[rows],
                prompt_chars=document.prompt_chars,
                prompt_tokens=document.prompt_tokens,
            )
        )
    return Windows(document, windows)


def pool(windows: Windows, vectors: np.ndarray) -> np.ndarray:
    """(H,) the windows' pooled vectors (w, H), not normalised, averaged with the windows'
    token counts as weights."""
    weights = windows.weights
    total: np.ndarray = (vectors.astype(np.float64) * weights[:, None]).sum(axis=0)
    mean: np.ndarray = (total / weights.sum()).astype(np.float32)
    return mean
