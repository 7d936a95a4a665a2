"""What `attnserve embed` prints: a short table for people, one JSON document for programs, and
the cosine similarities people embed two sentences to see.

Pure functions over the texts sent and the `Embeddings` the client returned, so the formats are
tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from attnserve.service.client.client import Embeddings

TEXT_WIDTH = 40
JSON_DECIMALS = 7  # float32 carries ~7 significant digits; more would be noise


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of rows (rows of zeros give 0)."""
    rows = vectors.astype(np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms == 0, 1.0, norms)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def cut(text: str, width: int = TEXT_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; `right` holds the indices of numeric columns."""
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def vectors_of(served: Embeddings) -> np.ndarray:
    """The pooled vectors as served, (n, H) float32."""
    assert served.pooled is not None, "embed asks for pooled vectors"
    return np.asarray(served.pooled, dtype=np.float32)


def people_table(texts: Sequence[str], served: Embeddings, dims: int = 4) -> str:
    vectors = vectors_of(served)
    n, size = vectors.shape
    shown = min(dims, size)
    headers = ["#", "text", "tokens", "truncated", "norm", f"first {shown} of {size} dimensions"]
    rows = [
        [
            str(i + 1),
            cut(text),
            str(count),
            "yes" if truncated else "no",
            f"{np.linalg.norm(vector):.4f}",
            " ".join(f"{value:+.4f}" for value in vector[:shown]) + (" …" if size > shown else ""),
        ]
        for i, (text, vector, count, truncated) in enumerate(
            zip(texts, vectors, served.token_counts, served.truncated, strict=True)
        )
    ]
    title = f"{served.model}: {n} text{'s' if n > 1 else ''}, {size} dimensions"
    return title + "\n" + render_table(headers, rows, right={0, 2, 4})


def similarity_table(texts: list[str], similarity: np.ndarray) -> str:
    if len(texts) == 2:
        return (
            f"cosine similarity of 1 and 2: {similarity[0, 1]:.4f}\n"
            f"  1: {cut(texts[0], 70)}\n  2: {cut(texts[1], 70)}"
        )
    numbers = [str(i + 1) for i in range(len(texts))]
    rows = [
        [numbers[i], *(f"{value:.4f}" for value in similarity[i]), cut(texts[i], 30)]
        for i in range(len(texts))
    ]
    table = render_table(["", *numbers, "text"], rows, right=set(range(len(texts) + 1)))
    return "cosine similarity\n" + table


def json_document(texts: Sequence[str], served: Embeddings, similarity: np.ndarray | None) -> str:
    vectors = vectors_of(served)
    timings = served.timings
    document: dict[str, object] = {
        "model": served.model,
        "dimensions": int(vectors.shape[1]),
        "texts": [
            {
                "text": text,
                "tokens": count,
                "truncated": truncated,
                "norm": float(np.linalg.norm(vector)),
                "embedding": [round(float(value), JSON_DECIMALS) for value in vector],
            }
            for text, vector, count, truncated in zip(
                texts, vectors, served.token_counts, served.truncated, strict=True
            )
        ],
        "timings_ms": {
            "queue": timings.queue_ms,
            "tokenize": timings.tokenize_ms,
            "inference": timings.inference_ms,
            "total": timings.total_ms,
        },
    }
    if similarity is not None:
        document["similarity"] = [
            [round(float(v), JSON_DECIMALS) for v in row] for row in similarity
        ]
    return json.dumps(document, ensure_ascii=False)
