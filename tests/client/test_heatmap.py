"""Heatmaps of real attention maps from a real server: sane sizes, one scale, no overlaps.

Every figure is checked the way a reader would notice a fault: its PNG fits a page and has a
sane aspect, no two pieces of text overlap, every text lies inside the figure, and the colour bar
covers no map. `ATTNSERVE_UPDATE_DOCS=1` also writes the docs' pictures into docs/images/.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.client.attention import TextAttention, difference, fetch_attention
from attnserve.service.client.client import EmbedderClient
from attnserve.service.client.heatmap import (
    DPI,
    MAX_HEIGHT_IN,
    MAX_WIDTH_IN,
    attention_figure,
    save_heatmap,
)
from tests.support import ROOT
from tests.support.cli import png_size

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

DOCS_IMAGES = ROOT / "docs" / "images"
SIX_TOKENS = "by the river bank"  # [CLS] by the river bank [SEP]
LONG = " ".join(["Attention weighs every token against every other token of the text."] * 11)


def texts_of(figure: Figure) -> list[Text]:
    return [
        t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip() and t.figure
    ]


def check_figure(figure: Figure) -> None:
    """No text overlaps another or leaves the figure; the colour bar covers no map."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    figure.draw(renderer)
    whole = figure.bbox
    boxes = [
        (t.get_text(), t.get_window_extent(renderer).shrunk(0.98, 0.98)) for t in texts_of(figure)
    ]
    assert boxes
    outside = [
        text
        for text, box in boxes
        if not (whole.contains(box.x0, box.y0) and whole.contains(box.x1, box.y1))
    ]
    assert outside == []
    overlapping = [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]
    assert overlapping == []
    maps = [axis for axis in figure.axes if axis.images and axis.get_label() != "<colorbar>"]
    bars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    assert len(bars) == 1  # one shared scale
    bar = bars[0].get_window_extent(renderer)
    assert not [axis for axis in maps if axis.get_window_extent(renderer).overlaps(bar)]
    norms = {id(image.norm) for axis in maps for image in axis.images}
    assert len(norms) == 1  # every map drawn on the same colour scale


def save_and_check(attention: TextAttention, out: Path) -> tuple[int, int]:
    size = save_heatmap(attention, out)
    width, height = png_size(out)
    assert (width, height) == size
    assert width <= MAX_WIDTH_IN * DPI + 1
    assert height <= MAX_HEIGHT_IN * DPI + 1
    assert 0.4 <= width / height <= 2.5  # fits a page or a slide, not a strip
    return width, height


@pytest.fixture(scope="module")
def river(server_client: EmbedderClient) -> TextAttention:
    return fetch_attention(server_client, "The bank by the river", average=True)


@pytest.fixture(scope="module")
def server_client(server: object) -> EmbedderClient:
    from tests.support.servers import ServerThread

    assert isinstance(server, ServerThread)
    return EmbedderClient(server.target)


@pytest.mark.parametrize(
    ("text", "tokens"), [("a", 3), (SIX_TOKENS, 6), (LONG, 128)], ids=["3", "6", "128+"]
)
@pytest.mark.parametrize("selection", ["all layers averaged", "selected heads"])
def test_heatmaps_are_sane_and_readable(
    server_client: EmbedderClient, tmp_path: Path, text: str, tokens: int, selection: str
) -> None:
    if selection == "selected heads":
        attention = fetch_attention(server_client, text, layers=[0, 3, 5], heads=[1, 7])
        assert attention.maps.shape[:2] == (3, 2)  # layers down, heads across
    else:
        attention = fetch_attention(server_client, text, average=True)
        assert attention.maps.shape[:2] == (6, 1)
    assert len(attention.tokens) >= tokens if tokens == 128 else len(attention.tokens) == tokens
    save_and_check(attention, tmp_path / "map.png")
    check_figure(attention_figure(attention))


def test_every_layer_and_head_at_once(server_client: EmbedderClient, tmp_path: Path) -> None:
    attention = fetch_attention(server_client, "The bank by the river")
    width, height = save_and_check(attention, tmp_path / "all.png")
    assert width > height  # 12 heads across, 6 layers down
    check_figure(attention_figure(attention))


def test_a_single_token(tmp_path: Path) -> None:
    """A one-token sequence: its softmax over one key is exactly 1 in every layer and head."""
    one = TextAttention(
        text="hi",
        model="sentence-transformers/all-MiniLM-L6-v2",
        tokens=["hi"],
        special=[False],
        maps=np.ones((6, 1, 1, 1), dtype=np.float32),
        layers=list(range(6)),
        heads=list(range(12)),
        averaged=True,
    )
    save_and_check(one, tmp_path / "one.png")
    check_figure(attention_figure(one))


def test_title_and_bar_say_what_is_shown(river: TextAttention) -> None:
    figure = attention_figure(river)
    title = figure.get_suptitle()
    assert "“The bank by the river”" in title
    assert "sentence-transformers/all-MiniLM-L6-v2" in title
    assert "layers 0-5, mean over heads 0-11; 7 tokens" in title
    bar = next(a for a in figure.axes if a.get_label() == "<colorbar>")
    assert bar.get_ylabel() == "attention weight"
    low, high = bar.get_ylim()
    assert low == 0.0
    assert high == pytest.approx(float(river.maps.max()))  # the scale is the data's own


def test_the_difference_of_two_texts_is_signed_and_labelled(
    server_client: EmbedderClient, river: TextAttention, tmp_path: Path
) -> None:
    money = fetch_attention(server_client, "The bank for the money", average=True)
    changed = difference(river, money)
    save_and_check(changed, tmp_path / "diff.png")
    figure = attention_figure(changed)
    check_figure(figure)
    bar = next(a for a in figure.axes if a.get_label() == "<colorbar>")
    low, high = bar.get_ylim()
    assert low == pytest.approx(-high)  # white means "no change"
    assert "by|for" in [t.get_text() for t in texts_of(figure)]


def test_pictures_for_the_readme(
    server_client: EmbedderClient, river: TextAttention, tmp_path: Path
) -> None:
    """docs/attention.md's heatmaps, written into docs/images/ when ATTNSERVE_UPDATE_DOCS=1."""
    heads = fetch_attention(
        server_client, "The bank by the river", layers=[0, 2, 5], heads=[0, 3, 7, 11]
    )
    pictures = {"heatmap-layers.png": river, "heatmap-heads.png": heads}
    for name, attention in pictures.items():
        save_and_check(attention, tmp_path / name)
        if os.environ.get("ATTNSERVE_UPDATE_DOCS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / name, DOCS_IMAGES / name)


def test_the_checker_sees_overlapping_text() -> None:
    """The checks above can fail: two labels on one spot are caught."""
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(4, 3))
    axis = figure.add_subplot()
    axis.imshow(np.eye(3))
    figure.colorbar(axis.images[0], ax=axis)
    figure.text(0.5, 0.5, "bank")
    figure.text(0.5, 0.5, "river")
    with pytest.raises(AssertionError):
        check_figure(figure)
    plt.close(figure)


def test_a_pairs_title_shows_the_document_and_the_outline_whole(tmp_path: Path) -> None:
    """A reranker's pair: a short query leaves its room to the document, and what the outline
    means has a line of its own (both were cut to "every o…" and "the document's (c…")."""
    query, document = "what is attention", "Attention weighs every token against every other token."
    tokens = ["[CLS]", *query.split(), "[SEP]", *document.rstrip(".").split(), ".", "[SEP]"]
    n = len(tokens)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 1, n, n)).astype(np.float32)
    maps = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    pair = TextAttention(
        text=query,
        model="cross-encoder/ms-marco-MiniLM-L6-v2",
        tokens=tokens,
        special=[t.startswith("[") for t in tokens],
        maps=maps.astype(np.float32),
        layers=list(range(6)),
        heads=list(range(12)),
        averaged=True,
        document=document,
        block=((1, 4), (5, n - 1)),
    )
    figure = attention_figure(pair)
    title = figure.get_suptitle()
    assert f"“{query}” with “{document}”" in title
    assert "outlined: the query's tokens (rows) x the document's (columns)" in title.splitlines()
    assert "…" not in title
    check_figure(figure)
    save_and_check(pair, tmp_path / "pair.png")
