"""The README's HTTP rerank snippet runs as written, with the install's packages alone, against a
real reranker server (HTTP on) serving under the model name the snippet asks for.

It imported `requests`, which the install does not bring: a newcomer's first paste failed.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path

from tests.support import ROOT
from tests.support.servers import ServerThread, server_settings

README_ADDRESS = re.compile(r"http://localhost:\d+")
MODEL_NAME = re.compile(r"""["']model["']\s*:\s*["']([^"']+)["']""")


def rerank_snippet() -> str:
    readme = (ROOT / "docs" / "tasks.md").read_text()  # the README's rerank section moved there
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", readme, re.DOTALL | re.MULTILINE)
    (snippet,) = [code for _, code in blocks if "/v1/rerank" in code]
    lines = snippet.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def test_the_readme_rerank_snippet_runs_with_the_installs_packages(
    cross_encoder_artifacts: Callable[[str], Path],
) -> None:
    code = rerank_snippet()
    named = MODEL_NAME.search(code)
    settings = server_settings(
        cross_encoder_artifacts("bert-reranker"),
        http_port=0,
        model_name=named.group(1) if named else None,
    )
    server = ServerThread(settings)
    try:
        code = README_ADDRESS.sub(f"http://127.0.0.1:{server.running.http_port}", code)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), {})  # the README is ours
    finally:
        server.stop()
    assert "relevance_score" in printed.getvalue(), "the snippet prints the ranked results"
