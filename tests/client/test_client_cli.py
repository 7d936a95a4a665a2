"""`attnserve embed` and `attnserve attend` against a real server, run as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.client.client import EmbedderClient
from tests.support.cli import png_size, run_cli, run_cli_probing_imports, torch_side_imported
from tests.support.servers import ServerThread

TEXTS = ["Attention is all you need.", "Is it?"]


def test_embed_prints_a_short_table_for_people(server: ServerThread) -> None:
    result = run_cli("embed", "--target", server.target, *TEXTS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sentence-transformers/all-MiniLM-L6-v2: 2 texts, 384 dimensions"
    assert lines[1].split()[:5] == ["#", "text", "tokens", "truncated", "norm"]
    assert lines[2].startswith("1  Attention is all you need.")
    assert lines[3].startswith("2  Is it?")
    assert len(lines) == 4  # short: not 384 floats per text
    assert len([v for v in lines[2].split() if re.fullmatch(r"[+-]\d\.\d{4}", v)]) == 4
    assert "1.0000" in lines[2]  # unit norm: the model normalises by default
    assert "inference" in result.stderr  # the server's stage timings


def test_embed_json_is_one_document_with_the_served_vectors(
    server: ServerThread, client: EmbedderClient
) -> None:
    result = run_cli("embed", "--target", server.target, "--json", "--similarity", *TEXTS)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    served = client.embed(TEXTS).pooled
    assert served is not None
    assert [t["text"] for t in document["texts"]] == TEXTS
    np.testing.assert_allclose([t["embedding"] for t in document["texts"]], served, atol=1e-6)
    cosine = float(served[0] @ served[1])  # unit vectors
    assert document["similarity"][0][1] == pytest.approx(cosine, abs=1e-6)
    assert result.stderr == ""  # nothing but the document for programs


def test_embed_npy_saves_the_vectors(
    server: ServerThread, client: EmbedderClient, tmp_path: Path
) -> None:
    out = tmp_path / "vectors.npy"
    result = run_cli("embed", "--target", server.target, "--npy", str(out), *TEXTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"saved 2 x 384 float32 to {out}"
    served = client.embed(TEXTS).pooled
    assert served is not None
    np.testing.assert_allclose(np.load(out), served, atol=1e-7)


def test_embed_similarity_compares_the_texts(server: ServerThread, client: EmbedderClient) -> None:
    texts = ["The bank by the river", "The river bank", "Interest rates at the bank"]
    result = run_cli("embed", "--target", server.target, "--similarity", *texts)
    assert result.returncode == 0, result.stderr
    served = client.embed(texts).pooled
    assert served is not None
    table = result.stdout.split("cosine similarity\n")[1].splitlines()
    assert table[0].split() == ["1", "2", "3", "text"]
    for i, row in enumerate(table[1:4]):
        np.testing.assert_allclose(
            [float(v) for v in row.split()[1:4]], served[i] @ served.T, atol=1e-4
        )
    two = run_cli("embed", "--target", server.target, "--similarity", *texts[:2])
    assert f"cosine similarity of 1 and 2: {float(served[0] @ served[1]):.4f}" in two.stdout


def test_embed_refuses_similarity_of_one_text_and_reports_a_status(server: ServerThread) -> None:
    one = run_cli("embed", "--target", server.target, "--similarity", "alone")
    assert one.returncode == 2
    assert one.stderr.strip() == "attnserve embed: --similarity needs at least two texts"
    empty = run_cli("embed", "--target", server.target, "")
    assert empty.returncode == 1
    assert "INVALID_ARGUMENT: text 0 is empty" in empty.stderr


def test_attend_writes_a_heatmap_and_a_view(server: ServerThread, tmp_path: Path) -> None:
    out, view = tmp_path / "map.png", tmp_path / "view.html"
    result = run_cli(
        "attend", "--target", server.target, "the river bank", "--layers", "0", "5", "--out",
        str(out), "--html", str(view),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    width, height = png_size(out)
    assert width > height  # two averaged layers side by side, the bar beside them
    assert (
        f"wrote {out} ({width} x {height} px): layers 0, 5, mean over heads 0-11" in result.stdout
    )
    page = view.read_text()
    assert page.startswith("<!doctype html>")
    assert '"layers": [0, 5]' in page
    per_head = tmp_path / "heads.png"
    result = run_cli(
        "attend", "--target", server.target, "bank", "--layers", "1", "--heads", "0", "1", "2",
        "--per-head", "--out", str(per_head),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    width, height = png_size(per_head)
    assert width > height  # three heads of one layer in a row


def test_attend_writes_a_named_file_per_text_and_a_difference(
    server: ServerThread, tmp_path: Path
) -> None:
    texts = ["The bank by the river", "The bank for the money"]
    result = run_cli("attend", "--target", server.target, *texts, "--out", str(tmp_path / "m.png"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m-1-the-bank-by-the-river.png",
        "m-2-the-bank-for-the-money.png",
    ]
    diff = tmp_path / "diff.png"
    result = run_cli("attend", "--target", server.target, *texts, "--diff", "--out", str(diff))
    assert result.returncode == 0, result.stderr
    png_size(diff)
    unequal = run_cli(
        "attend", "--target", server.target, "bank", "river bank", "--diff", "--out", str(diff)
    )
    assert unequal.returncode == 2
    assert "equal token counts" in unequal.stderr


def test_attend_says_what_is_wrong(server: ServerThread, tmp_path: Path) -> None:
    nothing = run_cli("attend", "--target", server.target, "text")
    assert nothing.returncode == 2
    assert "--out FILE.png and/or --html FILE.html" in nothing.stderr
    bad_layer = run_cli(
        "attend",
        "--target",
        server.target,
        "text",
        "--layers",
        "9",
        "--out",
        str(tmp_path / "x.png"),
    )
    assert bad_layer.returncode == 1
    assert "INVALID_ARGUMENT: layer 9 is out of range" in bad_layer.stderr
    assert "Traceback" not in nothing.stderr + bad_layer.stderr


def test_attend_views_a_512_token_text(server: ServerThread, tmp_path: Path) -> None:
    """All 6 x 12 maps of 512 tokens: more than the server sends at once (fetched in parts)."""
    text = "The river rose through the night and the bank was under water. " * 50
    view = tmp_path / "long.html"
    result = run_cli(
        "attend", "--target", server.target, text, "--max-tokens", "512", "--html", str(view)
    )
    assert result.returncode == 0, result.stderr
    assert "512 tokens, 6 layers x 12 heads" in result.stdout
    assert '"shape": [6, 12, 512, 512]' in view.read_text()
    default = run_cli("attend", "--target", server.target, text, "--html", str(view))
    assert "256 tokens" in default.stdout  # the model's default cap
    negative = run_cli("attend", "--target", server.target, text, "--max-tokens", "-1",
                       "--html", str(view))  # fmt: skip
    assert negative.returncode == 2
    assert "--max-tokens must be 0" in negative.stderr


# What each client command asks the server in the import test: a real run, answered.
CLIENT_RUNS = {
    "embed": ["Attention is all you need."],
    "attend": ["The bank by the river", "--html", "{tmp}/view.html"],
    "chunk": ["The bank by the river flooded. Rates at the bank rose.", "--every", "4"],
    "explain": ["The bank by the river", "A river bank", "--html", "{tmp}/explain.html"],
    "loadtest": ["--requests", "5", "--duration", "5", "--warmup", "0", "--concurrency", "1"],
}


@pytest.mark.parametrize("command", sorted(CLIENT_RUNS))
def test_a_client_command_runs_without_importing_torch(
    command: str, server: ServerThread, tmp_path: Path
) -> None:
    """The whole run, connect to answer, imports none of the torch side (it took 2 s of a 10 ms
    request's 4.2 s before)."""
    imports = tmp_path / "imports.json"
    args = [a.format(tmp=tmp_path) for a in CLIENT_RUNS[command]]
    result = run_cli_probing_imports(imports, command, "--target", server.target, *args)
    assert result.returncode == 0, result.stderr
    assert torch_side_imported(imports) == []
