"""The README's install command and CI install the same pinned tools (constraints.txt), so the
README's test command gives the same result on every fresh machine."""

from __future__ import annotations

import re

from tests.support import ROOT

PINNED = ("grpcio-tools", "ruff", "mypy", "torch")


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            assert version, f"constraints.txt pins exact versions: {line!r}"
            found[name.strip()] = version.strip()
    return found


def test_the_code_generators_and_judges_are_pinned() -> None:
    assert set(PINNED) <= set(pins())


def test_the_readme_and_ci_install_with_the_constraints() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for source, text in (("README.md", readme), (".ci/run", ci)):
        installs = re.findall(r"pip install [^\n]*-e '\.\[dev\]'", text)
        assert installs, f"{source} has no dev install"
        assert all("-c constraints.txt" in line for line in installs), (source, installs)
