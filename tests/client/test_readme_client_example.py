"""The README's Python client example runs as written against a real server."""

from __future__ import annotations

import contextlib
import io
import re

from tests.support import ROOT
from tests.support.servers import ServerThread


def client_example() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    (example,) = [b for b in blocks if "import EmbedderClient" in b and "tokenize(" in b]
    lines = example.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def test_the_readme_client_example_runs(server: ServerThread) -> None:
    code = client_example().replace("localhost:50051", server.target)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})  # the README is ours
    shape, tokens = printed.getvalue().splitlines()
    assert shape.startswith("(2, 384) [")
    assert "('bank', 4, 8)" in tokens
