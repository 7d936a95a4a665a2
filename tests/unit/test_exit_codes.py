"""docs/api.md's exit-code table lists every code `attnserve serve` can return, and no other."""

from __future__ import annotations

import re

from attnserve.service.server.startup_errors import ExitCode
from tests.support import ROOT


def test_the_readme_lists_every_exit_code() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    table = page.split("| exit code | cause |", 1)[1].split("\n\n", 1)[0]
    listed = {int(code) for code in re.findall(r"^\s*\| (\d+) \|", table, re.MULTILINE)}
    assert listed == {0, *(int(code) for code in ExitCode)}
