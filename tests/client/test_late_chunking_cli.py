"""`attnserve chunk` against a real server: the table, --json's vectors (the typed client's), and
a refusal as one line with the status."""

from __future__ import annotations

import json

import numpy as np

from attnserve.service.client.client import EmbedderClient
from tests.support.cli import run_cli
from tests.support.servers import ServerThread

DOCUMENT = "The bank by the river flooded. Interest rates at the bank rose."


def test_the_chunk_command_prints_each_chunk_and_its_vector(server: ServerThread) -> None:
    table = run_cli("chunk", "--target", server.target, "--span", "0:30", "--span", "31:63",
                    DOCUMENT)  # fmt: skip
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["chunk", "start", "end", "tokens", "note", "text"]
    assert rows[2].split()[:4] == ["1", "31", "63", "7"]  # interest rates at the bank rose .
    assert rows[2].endswith("Interest rates at the bank rose.")
    answer = run_cli("chunk", "--target", server.target, "--every", "4", "--json", DOCUMENT)
    assert answer.returncode == 0, answer.stderr
    chunks = json.loads(answer.stdout)["chunks"]
    with EmbedderClient(server.target) as client:
        (expected,) = client.embed_chunks([DOCUMENT], tokens_per_chunk=4)
    assert [(c["start"], c["end"]) for c in chunks] == [(c.start, c.end) for c in expected.chunks]
    for chunk, want in zip(chunks, expected.chunks, strict=True):
        assert want.vector is not None
        np.testing.assert_allclose(chunk["vector"], want.vector, atol=1e-6)


def test_a_refused_chunk_is_one_line_with_the_status(server: ServerThread) -> None:
    refused = run_cli("chunk", "--target", server.target, "--span", "9:3", DOCUMENT)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "attnserve chunk: INVALID_ARGUMENT: document 0, chunk 0 (9..3): the span is reversed "
        "(start after end)"
    )
    bad = run_cli("chunk", "--target", server.target, "--span", "a:b", DOCUMENT)
    assert bad.returncode == 2
    assert "--span takes START:END" in bad.stderr
