"""Attention maps as heatmaps labelled with the tokens (needs matplotlib: the `plot` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def render_attention(
    maps: np.ndarray,
    tokens: list[str],
    layers: list[int],
    heads: list[int] | None,
    out: Path,
) -> None:
    """maps: (layers, heads or 1, n, n); heads None means the maps are head averages."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit(
            "attnserve attend needs matplotlib: pip install 'attnserve[plot]'"
        ) from exc
    rows, cols = maps.shape[0], maps.shape[1]
    size = max(2.5, 0.28 * len(tokens))
    figure, axes = plt.subplots(
        rows, cols, figsize=(size * cols, size * rows), squeeze=False, constrained_layout=True
    )
    for r in range(rows):
        for c in range(cols):
            axis = axes[r][c]
            image = axis.imshow(maps[r, c].astype(np.float32), cmap="viridis", vmin=0.0, vmax=1.0)
            head = "mean of heads" if heads is None else f"head {heads[c]}"
            axis.set_title(f"layer {layers[r]}, {head}", fontsize=9)
            axis.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            axis.set_yticks(range(len(tokens)), tokens, fontsize=7)
            axis.set_xlabel("key (attended to)", fontsize=8)
            axis.set_ylabel("query", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    figure.savefig(out, dpi=110)
    plt.close(figure)
