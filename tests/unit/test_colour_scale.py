"""The PNG grid and the HTML view colour a text's maps by one rule: one scale over every layer
and head, 0 to the text's largest weight, so the same cell looks the same in both."""

from __future__ import annotations

import numpy as np
import pytest

from attnserve.service.client.attention import TextAttention, colour_top
from attnserve.service.client.html_view import page_data, view_html

pytest.importorskip("matplotlib")


def sample() -> TextAttention:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    logits[1, 2] *= 6  # one sharp head: its largest weight sets the scale
    maps = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    tokens = ["[CLS]", "the", "bank", "[SEP]"]
    return TextAttention(
        "the bank", "m", tokens, [True, False, False, True], maps, [0, 1], [0, 1, 2], False
    )


def test_png_and_html_share_one_scale() -> None:
    from attnserve.service.client.heatmap import attention_figure

    attention = sample()
    top = float(attention.maps.max())
    assert colour_top(attention.maps) == pytest.approx(top)
    figure = attention_figure(attention)
    vmaxes = [image.norm.vmax for axis in figure.axes for image in axis.images]
    assert len(vmaxes) == 6  # a panel per layer and head
    assert vmaxes == pytest.approx([top] * len(vmaxes))  # every panel, every layer: one scale
    assert page_data(attention)["colour_top"] == pytest.approx(top)
    page = view_html(attention)
    assert "drawMap(a, data.colour_top)" in page  # the view draws every map on that scale
