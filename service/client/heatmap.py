"""Attention maps as a printable grid of token-labelled heatmaps (needs the `plot` extra).

Layout: layers x heads when heads are shown one by one, a compact grid of layers when they are
averaged (or when one axis has a single entry). Every map shares one colour scale and one bar,
which sits in its own column so it never covers a map. Token labels are thinned for long texts so
that none overlaps another, and only the outer maps carry them (rows are queries, columns the keys
they attend to). The figure fits a 16 x 10 inch page or slide; the title names the model, the
text, the layers and heads, and how the heads were combined. A (query, document) pair's maps
carry its cross block outlined on every map: the query's tokens (rows) looking at the
document's (columns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np

from attnserve.service.client.attention import TextAttention, colour_top

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Scale = Literal["linear", "sqrt"]
MAX_WIDTH_IN, MAX_HEIGHT_IN = 16.0, 10.0  # a landscape page or a 16:10 slide
DPI = 150
LABEL_CHARS = 12  # longer token strings are cut with an ellipsis
FONT_MAX, FONT_MIN = 9.0, 5.5
LINE = 1.25  # a text line's height in units of its font size
TITLE_FONT = 11.0


class PlotUnavailableError(RuntimeError):
    """matplotlib is missing: heatmaps need the plot extra."""


@dataclass(frozen=True)
class Panel:
    layer_index: int
    head_index: int
    row: int
    col: int
    title: str


def index_ranges(values: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    spans: list[str] = []
    start = previous = None
    for value in [*values, None]:
        if value is not None and previous is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            spans.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = value
    return ", ".join(spans)


def describe(attention: TextAttention) -> str:
    layers = f"layer{'s' if len(attention.layers) > 1 else ''} {index_ranges(attention.layers)}"
    heads = index_ranges(attention.heads)
    if attention.averaged:
        return f"{layers}, mean over head{'s' if len(attention.heads) > 1 else ''} {heads}"
    return f"{layers}, head{'s' if len(attention.heads) > 1 else ''} {heads}"


def layout(attention: TextAttention) -> tuple[int, int, list[Panel], bool]:
    """(rows, cols, panels, full_grid): layers x heads, or a compact grid of every map."""
    n_layers, n_maps = attention.maps.shape[:2]
    if n_layers > 1 and n_maps > 1:  # layers down, heads across; labels on the grid's edges
        panels = [
            Panel(li, hi, li, hi, f"head {attention.heads[hi]}" if li == 0 else "")
            for li in range(n_layers)
            for hi in range(n_maps)
        ]
        return n_layers, n_maps, panels, True
    count = n_layers * n_maps
    # Close to 4:3 for square maps; up to three in one row.
    cols = count if count <= 3 else math.ceil(math.sqrt(count * 4 / 3))
    rows = math.ceil(count / cols)
    panels = []
    for index in range(count):
        li, hi = divmod(index, n_maps)
        title = f"layer {attention.layers[li]}"
        if not attention.averaged:
            title += f", head {attention.heads[hi]}"
        panels.append(Panel(li, hi, index // cols, index % cols, title))
    return rows, cols, panels, False


def short(token: str) -> str:
    return token if len(token) <= LABEL_CHARS else token[: LABEL_CHARS - 1] + "…"


def label_plan(n_tokens: int, panel_in: float) -> tuple[float, int]:
    """(font size, label every k-th token) so that neighbouring labels never touch."""
    pitch = panel_in * 72 / n_tokens  # points per token along a map's side
    font = min(FONT_MAX, max(FONT_MIN, pitch / LINE))
    return font, max(1, math.ceil(font * LINE / pitch))


def figure_size(
    rows: int, cols: int, n_tokens: int, label_chars: int, full_grid: bool
) -> tuple[float, float, float]:
    """(width, height, panel side) in inches, within the page: a first guess that
    `square_panels` corrects once the layout is known."""
    wanted = min(6.0, max(2.6, 1.4 + 0.045 * n_tokens))
    label_in = label_chars * FONT_MAX * 0.62 / 72 + 0.3  # tick labels and the axis label
    margin_w = label_in + 1.2 + (0.3 if full_grid else 0.0)  # + colour bar (+ row names)
    margin_h = label_in + 0.9 + 0.25 * rows  # + title + panel titles
    panel = min(wanted, (MAX_WIDTH_IN - margin_w) / cols, (MAX_HEIGHT_IN - margin_h) / rows)
    panel = max(panel, 0.6)
    return cols * panel + margin_w, rows * panel + margin_h, panel


def square_panels(figure: Figure, axis: Axes, rows: int, cols: int) -> None:
    """Resize the figure so the laid-out maps come out square, keeping it within the page.

    Maps fill their grid cells (aspect "auto"), so there are no gaps between them; this makes
    the cells square instead."""
    for _ in range(2):
        figure.draw_without_rendering()
        box = axis.get_window_extent()
        width_in, height_in = box.width / figure.dpi, box.height / figure.dpi
        fig_w, fig_h = figure.get_size_inches()
        new_h = fig_h + rows * (width_in - height_in)
        if new_h <= MAX_HEIGHT_IN:
            figure.set_size_inches(fig_w, new_h)
        else:  # the page is too short: narrower maps instead
            side = height_in + (MAX_HEIGHT_IN - fig_h) / rows
            figure.set_size_inches(fig_w - cols * (width_in - side), MAX_HEIGHT_IN)


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def two_texts(first: str, joiner: str, second: str, limit: int) -> str:
    """Two quoted texts on one line of `limit` characters: the shorter keeps its whole self and
    the longer gets the rest (halves cut a short query's room from a long document)."""
    room = max(20, limit - len(joiner) - 4)  # the quotes
    a, b = " ".join(first.split()), " ".join(second.split())
    keep_a = min(len(a), max(room // 2, room - len(b)))
    return f"“{shorten(a, keep_a)}”{joiner}“{shorten(b, room - keep_a)}”"


def title_lines(attention: TextAttention, width_in: float) -> str:
    """The text (cut to the figure's width), the model, then what the maps are; a pair's outline
    gets a line of its own."""
    limit = max(24, int(width_in * 72 / (TITLE_FONT * 0.62)) - 4)
    what = f"{describe(attention)}; {len(attention.tokens)} tokens"
    lines: list[str]
    if attention.document is not None:
        subject = two_texts(attention.text, " with ", attention.document, limit)
        outline = "outlined: the query's tokens (rows) x the document's (columns)"
        lines = [subject, shorten(attention.model, limit), shorten(what, limit), outline]
    elif attention.difference_from is None:
        subject = f"“{shorten(attention.text, limit - 2)}”"
        lines = [subject, shorten(attention.model, limit), shorten(what, limit)]
    else:
        subject = two_texts(attention.text, " minus ", attention.difference_from, limit)
        what = f"attention of the first text minus the second; {what}"
        lines = [subject, shorten(attention.model, limit), shorten(what, limit)]
    return "\n".join(lines)


def import_pyplot() -> ModuleType:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailableError(
            "heatmaps need matplotlib: pip install 'attnserve[plot]'"
        ) from exc
    return plt


def attention_figure(attention: TextAttention, scale: Scale = "linear") -> Figure:
    """The whole grid as one matplotlib figure (not yet saved)."""
    plt = import_pyplot()
    from matplotlib import colors

    rows, cols, panels, full_grid = layout(attention)
    n = len(attention.tokens)
    labels = [short(token) for token in attention.tokens]
    width, height, panel_in = figure_size(
        rows, cols, n, max(len(label) for label in labels), full_grid
    )
    font, step = label_plan(n, panel_in)
    shown = list(range(0, n, step))

    maps = attention.maps.astype(np.float32)
    norm: colors.Normalize
    if attention.difference_from is not None:  # signed: white is "no change"
        bound = max(float(np.abs(maps).max()), 1e-6)
        norm, cmap = colors.Normalize(-bound, bound), "RdBu_r"
        bar_label = "weight difference (first text minus second)"
    else:
        top = colour_top(maps)
        norm = colors.PowerNorm(0.5, 0.0, top) if scale == "sqrt" else colors.Normalize(0.0, top)
        cmap = "viridis"
        bar_label = "attention weight" + (" (square-root colour scale)" if scale == "sqrt" else "")

    figure: Figure = plt.figure(figsize=(width, height), layout="constrained")
    grid = figure.add_gridspec(rows, cols)
    below = {(p.row, p.col) for p in panels}
    axes = []
    image = None
    for p in panels:
        axis = figure.add_subplot(grid[p.row, p.col])
        axes.append(axis)
        image = axis.imshow(
            maps[p.layer_index, p.head_index],
            cmap=cmap,
            norm=norm,
            interpolation="nearest",
            aspect="auto",
        )
        if attention.block is not None:
            outline_block(axis, attention.block)
        axis.set_title(p.title, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        if p.col == 0:
            axis.set_yticks(shown, [labels[i] for i in shown], fontsize=font)
            if full_grid:
                axis.set_ylabel(f"layer {attention.layers[p.layer_index]}", fontweight="bold")
        if (p.row + 1, p.col) not in below:  # nothing beneath this map: it labels the keys
            axis.set_xticks(shown, [labels[i] for i in shown], fontsize=font, rotation=90)
    assert image is not None
    figure.colorbar(image, ax=axes, location="right", shrink=0.9, aspect=30, label=bar_label)
    figure.suptitle(title_lines(attention, width), fontsize=TITLE_FONT)
    figure.supxlabel("key: the token attended to", fontsize=9)
    rows_say = "" if attention.difference_from else " (each row sums to 1)"
    figure.supylabel(f"query: the token attending{rows_say}", fontsize=9)
    square_panels(figure, axes[0], rows, cols)
    # Cut to the width the figure ended with: squaring the maps may have narrowed it.
    figure.suptitle(title_lines(attention, figure.get_size_inches()[0]), fontsize=TITLE_FONT)
    return figure


def outline_block(axis: Axes, block: tuple[tuple[int, int], tuple[int, int]]) -> None:
    """A pair's cross block, outlined on one map (cells are centred on whole numbers)."""
    from matplotlib.patches import Rectangle

    (row_start, row_end), (col_start, col_end) = block
    axis.add_patch(
        Rectangle(
            (col_start - 0.5, row_start - 0.5), col_end - col_start, row_end - row_start,
            fill=False, edgecolor="#ff3b30", linewidth=1.5, label="query x document",
        )
    )  # fmt: skip


def save_heatmap(attention: TextAttention, out: Path, scale: Scale = "linear") -> tuple[int, int]:
    """Render and write a PNG; returns its size in pixels."""
    plt = import_pyplot()
    figure = attention_figure(attention, scale)
    try:
        figure.savefig(out, dpi=DPI)
        width, height = figure.get_size_inches() * DPI
    finally:
        plt.close(figure)
    return int(width), int(height)  # as Agg sizes the canvas
