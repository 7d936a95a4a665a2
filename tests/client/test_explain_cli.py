"""`attnserve explain` against a real server on loopback: the table and --json say the cosine
the cells sum to (the one Embed serves), the PNG is written, one text gives its rollout, and a
wrong command line says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attnserve.service.client.client import EmbedderClient
from tests.support.browser import not_blank
from tests.support.cli import png_size, run_cli
from tests.support.servers import ServerThread

FIRST = "A man is playing a guitar on the stage."
SECOND = "Someone performs music with a guitar."


def served_cosine(client: EmbedderClient) -> float:
    served = client.embed([FIRST, SECOND])
    assert served.pooled is not None
    a, b = served.pooled.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_two_texts_print_the_cosine_the_cells_sum_to(
    server: ServerThread, client: EmbedderClient, tmp_path: Path
) -> None:
    png = tmp_path / "pair.png"
    shown = run_cli("explain", "--target", server.target, FIRST, SECOND, "--out", str(png))
    assert shown.returncode == 0, shown.stderr
    expected = served_cosine(client)
    assert f"cosine {expected:.6f} = the sum of" in shown.stdout
    assert "'guitar' x 'guitar'" in shown.stdout  # the pair that adds most, for these texts
    width, height = png_size(png)
    assert width > 600
    assert height > 600
    not_blank(png)
    as_json = run_cli("explain", "--target", server.target, FIRST, SECOND, "--json")
    said = json.loads(as_json.stdout)
    assert abs(said["cosine"] - expected) <= 1e-5
    explained = client.explain([FIRST, SECOND])
    assert explained.similarity is not None
    cells = explained.similarity.cells
    assert abs(float(cells.sum(dtype=np.float64)) - expected) <= 1e-5
    top = said["top_pairs"][0]
    i, j = np.unravel_index(int(np.argmax(cells)), cells.shape)
    assert (top["first"], top["second"]) == (
        explained.texts[0].tokens[i].text,
        explained.texts[1].tokens[j].text,
    )
    assert abs(top["cell"] - float(cells[i, j])) <= 1e-7


def test_one_text_prints_its_rollout(server: ServerThread, tmp_path: Path) -> None:
    png = tmp_path / "one.png"
    shown = run_cli(
        "explain", "--target", server.target, "The bank by the river", "--json", "--out", str(png)
    )
    assert shown.returncode == 0, shown.stderr
    said = json.loads(shown.stdout.splitlines()[0])
    assert said["pooling"] == "mean"
    tokens = [token for token, _ in said["relevance"]]
    assert tokens == ["[CLS]", "the", "bank", "by", "the", "river", "[SEP]"]
    assert abs(sum(value for _, value in said["relevance"]) - 1.0) <= 1e-5
    not_blank(png)


def test_explain_says_what_is_wrong(server: ServerThread) -> None:
    for args, words in (
        (["a", "b", "c"], "give one text"),
        ([], "give one text"),
        (["--query", "q"], "a ranking takes --query and one or more --document"),
        (["a", "--query", "q", "--document", "d"], "no other texts"),
        (["a", "--dimensions", "-1"], "must be 0"),
    ):
        result = run_cli("explain", "--target", server.target, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr
    refused = run_cli("explain", "--target", server.target, "--query", "q", "--document", "d")
    assert refused.returncode == 1
    assert "INVALID_ARGUMENT" in refused.stderr
    assert "needs a reranker" in refused.stderr
