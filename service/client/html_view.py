"""The interactive attention view: one self-contained HTML file, safe to mail and open offline.

The page (`attention_view.html`, beside this file) is plain HTML, CSS and JavaScript on canvases:
pick a layer and a head (or the mean of all heads), hover or click a token to see where it
attends and what attends to it (as bertviz's head view does), and read the full map with each
cell's value. It makes no network request: the data is inline JSON. To keep the file small the
maps are stored as one byte each, q = round(255 * p) (within 0.002 of the exact probability, below
what a colour shows), and deflated; the page inflates them with the browser's own
`DecompressionStream`. Measured: ~0.36 MB for a 128-token text with 6 layers x 12 heads (a
square-root scale kept small values better but came to 0.96 MB), 2.5 MiB for 512 tokens (the
page draws each map once, scrolls and zooms it, and caps the links it paints: see
docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import html
import json
import zlib
from importlib import resources

import numpy as np

from attnserve.service.client.attention import TextAttention, colour_top

TEMPLATE = "attention_view.html"
QUANTISATION = "8 bits"
LEVELS = 255


def encode_maps(maps: np.ndarray) -> str:
    """(layers, heads, n, n) probabilities -> base64 of deflated bytes round(255 * p)."""
    levels = np.rint(np.clip(maps, 0.0, 1.0) * LEVELS).astype(np.uint8)
    return base64.b64encode(zlib.compress(levels.tobytes(), 9)).decode("ascii")


def decode_maps(encoded: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `encode_maps`, as the page computes it (for tests and tools)."""
    levels = np.frombuffer(zlib.decompress(base64.b64decode(encoded)), dtype=np.uint8)
    return levels.astype(np.float32).reshape(shape) / LEVELS


def page_data(attention: TextAttention) -> dict[str, object]:
    if attention.averaged or attention.difference_from is not None:
        raise ValueError("the HTML view needs per-head probabilities, not averages or differences")
    n = len(attention.tokens)
    title = f"Attention: “{attention.text}”"
    subtitle = (
        f"{attention.model}; {n} tokens; layers {', '.join(map(str, attention.layers))}; "
        f"{len(attention.heads)} heads"
    )
    block = None
    if attention.block is not None:  # a pair: its cross block is outlined on the map
        (row_start, row_end), (col_start, col_end) = attention.block
        block = {"rows": [row_start, row_end], "cols": [col_start, col_end]}
        title = f"Attention: “{attention.text}” with “{attention.document}”"
        subtitle += (
            f"; outlined: the query's tokens {row_start}-{row_end - 1} (rows) looking at the "
            f"document's {col_start}-{col_end - 1} (columns)"
        )
    return {
        "title": title,
        "subtitle": subtitle,
        "footer": (
            "Exact post-softmax attention probabilities from attnserve's maps graph, stored here "
            f"at {QUANTISATION} (within 0.002 of the exact value). The map's colours share one "
            "scale over every layer and head (0 to the text's largest weight, as in the PNG "
            "grid); links and token shading are relative to the strongest weight in view. "
            "Left and right arrow keys change the layer. This page makes no network requests."
        ),
        "tokens": attention.tokens,
        "special": attention.special,
        "layers": attention.layers,
        "heads": attention.heads,
        "shape": list(attention.maps.shape),
        "maps": encode_maps(attention.maps),
        "colour_top": colour_top(attention.maps),
        "block": block,
    }


def view_html(attention: TextAttention) -> str:
    template = (
        resources.files("attnserve.service.client").joinpath(TEMPLATE).read_text(encoding="utf-8")
    )
    # Inside <script>, only "</" can end the element early: escape it (JSON allows "<\/").
    payload = json.dumps(page_data(attention), ensure_ascii=False).replace("</", "<\\/")
    title = html.escape(f"attention: {attention.text}"[:120])
    return template.replace("__ATTNSERVE_TITLE__", title).replace("__ATTNSERVE_DATA__", payload)
