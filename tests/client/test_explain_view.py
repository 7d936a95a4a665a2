"""The explanation view in a real headless Chromium, offline, every network request refused:
the pair matrix shows every cell and reads each one's exact share on hover, the rollout bars
and the attention views (the existing view, inline) load beside it. `ATTNSERVE_UPDATE_DOCS=1`
keeps the screenshot for docs/explain.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attnserve.service.client.attention import fetch_attention
from attnserve.service.client.client import EmbedderClient, Explanation
from attnserve.service.client.explain_view import explain_html
from tests.support.browser import keep, not_blank
from tests.support.servers import ServerThread

TEXTS = ["A man is playing a guitar on the stage.", "Someone performs music with a guitar."]


@pytest.fixture(scope="module")
def explained(server: ServerThread) -> tuple[Explanation, str]:
    with EmbedderClient(server.target) as client:
        explanation = client.explain(TEXTS, rollout=True)
        views = [fetch_attention(client, text) for text in TEXTS]
    return explanation, explain_html(explanation, TEXTS, views)


@pytest.fixture
def page(browser: Any, explained: tuple[Explanation, str], tmp_path: Path) -> Iterator[Any]:
    path = tmp_path / "explain-view.html"
    path.write_text(explained[1], encoding="utf-8")
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, device_scale_factor=1, offline=True
    )
    requested: list[str] = []

    def refuse(route: Any) -> None:
        if route.request.url in (path.as_uri(), "about:srcdoc"):
            route.continue_()
            return
        requested.append(route.request.url)
        route.abort()

    context.route("**/*", refuse)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.goto(path.as_uri())
    opened.wait_for_selector("body[data-ready]")
    yield opened
    assert problems == []
    assert requested == []
    context.close()


def test_the_matrix_rollout_and_attention_views_load_offline(
    page: Any, explained: tuple[Explanation, str], tmp_path: Path
) -> None:
    explanation = explained[0]
    assert explanation.similarity is not None
    n, m = explanation.similarity.cells.shape
    assert page.locator("#matrix td.c").count() == n * m
    headers = page.locator("#matrix th.col").all_text_contents()
    assert headers == [token.text for token in explanation.texts[1].tokens]
    assert f"{explanation.similarity.cosine:.4f}" in page.locator("#similarity-title").inner_text()
    assert page.locator("#rollouts table").count() == 2
    frames = page.locator("iframe")
    assert frames.count() == 2
    for index in range(2):  # the existing attention view runs inside each frame
        inner = page.frame_locator("iframe").nth(index)
        inner.locator("body[data-ready]").wait_for()
        assert inner.locator("#queries .tok").count() == len(explanation.texts[index].tokens)
    shot = tmp_path / "explain-view.png"
    page.screenshot(path=str(shot))
    not_blank(shot)
    keep(shot)


def test_a_cell_reads_its_share_of_the_cosine(
    page: Any, explained: tuple[Explanation, str]
) -> None:
    explanation = explained[0]
    assert explanation.similarity is not None
    cells = explanation.similarity.cells
    i = [t.text for t in explanation.texts[0].tokens].index("guitar")
    j = [t.text for t in explanation.texts[1].tokens].index("performs")
    page.hover(f"#matrix td.c[data-i='{i}'][data-j='{j}']")
    status = page.locator("#status").inner_text()
    match = re.search(r"“guitar” x “performs”: (-?[0-9.]+)", status)
    assert match, status
    assert abs(float(match[1]) - float(cells[i, j])) <= 5e-6
