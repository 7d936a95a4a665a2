"""Explanations as PNG pictures (matplotlib, the `plot` extra, as the heatmaps).

- Two texts: the token-pair matrix (the first text's tokens down the side, the second's along
  the top), each cell its share of the cosine on a diverging scale (red adds, blue takes away),
  with each token's share as a bar beside its row or above its column; the title says the sum.
- One text, or a reranker's documents: each token's rollout relevance as a bar.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attnserve.service.client.client import ExplainedText, Explanation
from attnserve.service.client.heatmap import DPI, import_pyplot, short, shorten

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INCH_PER_TOKEN = 0.2
RED, BLUE = "#c0392b", "#2e6fba"


def token_font(count: int) -> float:
    return 8.0 if count <= 40 else max(4.0, 8.0 * 40 / count)


def labels(text: ExplainedText) -> list[str]:
    return [short(token.text) for token in text.tokens]


def signed_colours(values: np.ndarray) -> list[str]:
    return [RED if value >= 0 else BLUE for value in values]


def similarity_figure(explained: Explanation, first: str, second: str) -> Figure:
    """The pair matrix with the shares as bars (Explain of two texts)."""
    plt = import_pyplot()
    from matplotlib import colors

    assert explained.similarity is not None
    similarity = explained.similarity
    rows, cols = labels(explained.texts[0]), labels(explained.texts[1])
    n, m = len(rows), len(cols)
    width = 2.6 + max(m * INCH_PER_TOKEN, 3.0) + 1.8
    height = 2.4 + max(n * INCH_PER_TOKEN, 3.0) + 1.6
    figure: Figure = plt.figure(figsize=(width, height), layout="constrained")
    grid = figure.add_gridspec(2, 3, width_ratios=[max(m, 8), 3, 0.3], height_ratios=[3, max(n, 8)])
    matrix: Axes = figure.add_subplot(grid[1, 0])
    top: Axes = figure.add_subplot(grid[0, 0], sharex=matrix)
    side: Axes = figure.add_subplot(grid[1, 1], sharey=matrix)
    bar: Axes = figure.add_subplot(grid[1, 2])
    cells = similarity.cells.astype(np.float64)
    bound = max(float(np.abs(cells).max()), 1e-9)
    image = matrix.imshow(
        cells, cmap="RdBu_r", norm=colors.Normalize(-bound, bound), aspect="auto",
        interpolation="nearest",
    )  # fmt: skip
    matrix.set_xticks(range(m), cols, rotation=90, fontsize=token_font(m))
    matrix.set_yticks(range(n), rows, fontsize=token_font(n))
    matrix.set_xlabel("second text's tokens")
    matrix.set_ylabel("first text's tokens")
    first_shares = similarity.first_shares.astype(np.float64)
    second_shares = similarity.second_shares.astype(np.float64)
    top.bar(range(m), second_shares, color=signed_colours(second_shares), width=0.8)
    top.axhline(0.0, color="black", linewidth=0.5)
    top.set_ylabel("share\n(column sum)", fontsize=8)
    top.tick_params(axis="x", labelbottom=False)
    side.barh(range(n), first_shares, color=signed_colours(first_shares), height=0.8)
    side.axvline(0.0, color="black", linewidth=0.5)
    side.set_xlabel("share (row sum)", fontsize=8)
    side.tick_params(axis="y", labelleft=False)
    figure.colorbar(image, cax=bar, label="cell: t_i . u_j / (n m |a| |b|)")
    figure.suptitle(
        f"Why “{shorten(first, 36)}” and “{shorten(second, 36)}” are similar\n"
        f"{shorten(explained.model, 70)}\n"
        f"cosine {similarity.cosine:.4f} = the sum of the {n} x {m} cells "
        f"({similarity.cells_sum:.4f}), {similarity.dimensions} dimensions; exact for mean pooling",
        fontsize=10,
    )
    return figure


def relevance_panel(axis: Axes, tokens: list[str], relevance: np.ndarray, title: str) -> None:
    positions = range(len(tokens))
    axis.barh(positions, relevance, color="#4c72b0", height=0.8)
    axis.set_yticks(positions, [short(token) for token in tokens], fontsize=token_font(len(tokens)))
    axis.invert_yaxis()  # the first token at the top, as it is read
    axis.set_xlabel("rollout relevance", fontsize=8)
    axis.set_title(title, fontsize=9)


def relevance_figure(explained: Explanation, texts: list[str]) -> Figure:
    """Each text's (or document's) rollout relevance, one panel each."""
    plt = import_pyplot()
    panels: list[tuple[list[str], np.ndarray, str]] = []
    if explained.documents:
        for document in explained.documents:
            title = f"document {document.index}: “{shorten(texts[document.index], 50)}”"
            title += f"\nscore {document.score:.4f}; rollout from CLS to its tokens"
            panels.append((document.tokens, document.relevance, title))
    else:
        for text, said in zip(explained.texts, texts, strict=True):
            assert text.relevance is not None  # a text's explanation is its relevance
            title = f"“{shorten(said, 50)}”\nrollout from the pooled position ({explained.pooling})"
            panels.append(([t.text for t in text.tokens], text.relevance, title))
    tallest = max(len(tokens) for tokens, _, _ in panels)
    height = 1.6 + max(tallest * INCH_PER_TOKEN, 2.0)
    figure: Figure = plt.figure(figsize=(4.6 * len(panels), height + 0.5), layout="constrained")
    for index, (tokens, relevance, title) in enumerate(panels):
        relevance_panel(figure.add_subplot(1, len(panels), index + 1), tokens, relevance, title)
    figure.suptitle(
        f"{shorten(explained.model, 45)}\nattention rollout (Abnar & Zuidema 2020):\n"
        "an approximation of information flow",
        fontsize=10,
    )
    return figure


def save_explanation(explained: Explanation, texts: list[str], out: Path) -> tuple[int, int]:
    """Render and write a PNG (the pair matrix for two texts, else relevance bars); returns
    its size in pixels."""
    plt = import_pyplot()
    if explained.similarity is not None:
        figure = similarity_figure(explained, texts[0], texts[1])
    else:
        figure = relevance_figure(explained, texts)
    try:
        figure.savefig(out, dpi=DPI)
        width, height = figure.get_size_inches() * DPI
    finally:
        plt.close(figure)
    return int(width), int(height)
