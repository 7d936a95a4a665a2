"""The attend command's pieces that need no server: file names, labels, the view's encoding."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.client.attention import TextAttention, difference
from attnserve.service.client.cli import output_paths
from attnserve.service.client.heatmap import LINE, index_ranges, label_plan
from attnserve.service.client.html_view import decode_maps, encode_maps, view_html


def softmax_maps(shape: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    scores = np.random.default_rng(seed).normal(scale=3.0, size=shape)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    maps: np.ndarray = (weights / weights.sum(-1, keepdims=True)).astype(np.float32)
    return maps


def attention(text: str = "the bank", seed: int = 0) -> TextAttention:
    tokens = ["[CLS]", *text.split(), "[SEP]"]
    n = len(tokens)
    return TextAttention(
        text=text,
        model="test/model",
        tokens=tokens,
        special=[True] + [False] * (n - 2) + [True],
        maps=softmax_maps((2, 3, n, n), seed),
        layers=[0, 1],
        heads=[0, 1, 2],
        averaged=False,
    )


def test_one_text_keeps_its_name_and_several_get_one_named_file_each() -> None:
    assert output_paths(Path("out/map.png"), ["x"]) == [Path("out/map.png")]
    assert output_paths(Path("out/map.png"), ["The bank, by the river!", "東京"]) == [
        Path("out/map-1-the-bank-by-the-river.png"),
        Path("out/map-2.png"),  # nothing to spell in ASCII: the number alone
    ]


def test_index_ranges_read_like_a_person_writes_them() -> None:
    assert index_ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert index_ranges([3]) == "3"
    assert index_ranges([5, 0]) == "5, 0"


@pytest.mark.parametrize("n_tokens", [1, 6, 40, 128, 512])
@pytest.mark.parametrize("panel_in", [0.8, 2.6, 6.0])
def test_token_labels_are_thinned_until_none_touches_its_neighbour(
    n_tokens: int, panel_in: float
) -> None:
    font, step = label_plan(n_tokens, panel_in)
    pitch = panel_in * 72 / n_tokens
    assert font * LINE <= step * pitch + 1e-9  # one line of text fits between two labels
    assert step == 1 or font * LINE > (step - 1) * pitch  # and no more are dropped than needed


def test_maps_must_match_their_tokens_layers_and_heads() -> None:
    good = attention()
    with pytest.raises(ValueError, match="tokens"):
        TextAttention(**{**good.__dict__, "tokens": good.tokens[:-1]})
    with pytest.raises(ValueError, match="layers"):
        TextAttention(**{**good.__dict__, "layers": [0]})


def test_difference_needs_equal_token_counts_and_labels_what_changed() -> None:
    river, money = attention("bank river", 1), attention("bank money", 2)
    changed = difference(river, money)
    np.testing.assert_allclose(changed.maps, river.maps - money.maps)
    assert changed.tokens == ["[CLS]", "bank", "river|money", "[SEP]"]
    assert changed.difference_from == "bank money"
    with pytest.raises(ValueError, match="equal token counts"):
        difference(river, attention("bank by the river"))


def test_the_view_stores_every_probability_within_its_quantisation_step() -> None:
    maps = softmax_maps((6, 12, 20, 20))
    decoded = decode_maps(encode_maps(maps), maps.shape)
    assert np.abs(decoded - maps).max() <= 0.5 / 255 + 1e-7


def test_the_view_is_one_file_that_asks_the_network_for_nothing() -> None:
    page = view_html(attention("</script><script>alert(1)</script> https://example.org"))
    assert page.count("</script>") == 2  # the data block and the code: the text cannot end one
    assert not re.search(
        r"""\b(src|href|action)\s*=|@import|url\(|<link|fetch\(|XMLHttpRequest""", page
    )
    assert "__ATTNSERVE_" not in page
