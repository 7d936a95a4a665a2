"""Every command the README's bash blocks run (and its docs pages') exists where they say it does.

A newcomer copies these lines first. Each simple command's program is found and asked for
`--help`: a program of the install from the venv (`.venv/bin/attnserve`, `attnserve`, `hf`,
`pip`: the directory of the Python running the tests), `attnserve SUB` as `attnserve SUB --help`
(so a subcommand that does not exist fails too); a program the venv does not hold must be a
system tool on PATH that is not a Python script (a Python tool the README names is the
install's to bring: `huggingface-cli` on some other PATH would hide that the install has `hf`).
Only the container engines (docker, podman) may be missing here: the Deploy section's commands
need one, which no install brings, and a missing one skips its lines.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

VENV_BIN = Path(sys.executable).parent
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"}
# Words that lead into a command without being its program, and clauses that run none.
LEADING_KEYWORDS = {"do", "then", "else", "elif", "if", "while", "until", "!", "time", "{", "}"}
NO_PROGRAM = {"for", "case", "done", "fi", "esac", "in"}
BUILTINS = {"cd", "export", "source", ".", "set", "unset", "echo", "exit", "true", "false",
            "wait", "kill", "trap", "read", "pushd", "popd", "mkdir"}  # fmt: skip
ENGINES = {"docker", "podman"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
BASH_BLOCK = re.compile(r"^( *)```(?:bash|sh|shell|console)\n(.*?)^\1```", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Command:
    line: str  # the logical line, as the README has it
    program: str  # as written: `.venv/bin/attnserve`, `attnserve`, `hf`
    subcommand: str | None  # attnserve's, asked for its own --help


def logical_lines(block: str) -> list[str]:
    """The block's lines with backslash continuations joined."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def commands_of(line: str) -> list[Command]:
    """The simple commands of one logical line, each by its program."""
    found: list[Command] = []
    tokens = words(line)
    start = 0
    while start < len(tokens):
        end = next((i for i in range(start, len(tokens)) if tokens[i] in SEPARATORS), len(tokens))
        simple = tokens[start:end]
        while simple and (simple[0] in LEADING_KEYWORDS or ASSIGNMENT.match(simple[0])):
            simple = simple[1:]
        if simple and simple[0] not in NO_PROGRAM | BUILTINS and not simple[0].startswith(">"):
            program = simple[0]
            subcommand = None
            if Path(program).name == "attnserve":
                subcommand = next((w for w in simple[1:] if not w.startswith("-")), None)
            found.append(Command(line, program, subcommand))
        start = end + 1
    return found


def readme_commands(text: str) -> list[Command]:
    return [
        command
        for match in BASH_BLOCK.finditer(text)
        for line in logical_lines(match.group(2))
        for command in commands_of(line)
    ]


def is_python_script(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.readline(200)
    return first.startswith(b"#!") and b"python" in first


def executable(command: Command) -> Path | None:
    """Where the program is: the venv's for a program of the install, else PATH's."""
    program = command.program
    if "/" in program:
        name = Path(program).name
        if Path(program).parent.as_posix().endswith(".venv/bin"):
            return VENV_BIN / name if (VENV_BIN / name).exists() else None
        return ROOT / program if (ROOT / program).exists() else None
    if (VENV_BIN / program).exists():
        return VENV_BIN / program
    found = shutil.which(program)
    return Path(found) if found else None


def problem(command: Command) -> str | None:
    """None when the command's program exists and answers --help; else what is wrong."""
    path = executable(command)
    if path is None:
        if command.program in ENGINES:
            return None  # checked by test_the_container_engines_the_readme_names_exist
        return f"{command.program!r} is neither in the venv ({VENV_BIN}) nor on PATH"
    if path.parent != VENV_BIN and "/" not in command.program and is_python_script(path):
        return f"{command.program!r} is a Python tool from {path}, not from the install's venv"
    if path.parent != VENV_BIN and "/" not in command.program:
        return None  # a system tool: existing is all the README asks of it
    args = [str(path), *([command.subcommand] if command.subcommand else []), "--help"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        return f"`{' '.join(args[1:])}` exited {result.returncode}: {result.stderr[-300:]}"
    return None


# The README and the docs pages it links, where the reference sections (and their commands) live.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_COMMANDS = [command for page in PAGES for command in readme_commands(page.read_text())]


def test_the_readme_has_commands_to_check() -> None:
    assert any(Path(c.program).name == "attnserve" for c in README_COMMANDS)


@pytest.mark.parametrize(
    "command",
    sorted({(c.program, c.subcommand): c for c in README_COMMANDS}.values(), key=str),
    ids=lambda c: " ".join(filter(None, [c.program, c.subcommand])),
)
def test_every_readme_command_exists_and_answers_help(command: Command) -> None:
    assert problem(command) is None, f"README: {command.line}"


def test_the_container_engines_the_readme_names_exist() -> None:
    engines = {c.program for c in README_COMMANDS if c.program in ENGINES}
    missing = sorted(e for e in engines if shutil.which(e) is None)
    if missing:
        pytest.skip(f"no {', '.join(missing)} here: the Deploy section's engine, not the install's")


# --- the checker itself -------------------------------------------------------------------------

EXAMPLE = """
```bash
huggingface-cli download intfloat/multilingual-e5-small --local-dir e5-small   # or any
hf download intfloat/multilingual-e5-small --local-dir e5-small
(cd parts && for w in *.whl; do unzip -q -o "$w"; done && cat a.zip.00? > m.zip)
HF_HUB_OFFLINE=1 .venv/bin/attnserve export --checkpoint e5 \\
    --out e5-artifact
.venv/bin/attnserve nosuch --target x
```
"""


def test_the_checker_reads_programs_and_subcommands() -> None:
    found = [(c.program, c.subcommand) for c in readme_commands(EXAMPLE)]
    assert found == [
        ("huggingface-cli", None),
        ("hf", None),
        ("unzip", None),
        ("cat", None),
        (".venv/bin/attnserve", "export"),
        (".venv/bin/attnserve", "nosuch"),
    ]


def test_the_checker_fails_a_program_the_install_does_not_bring() -> None:
    """The README's `huggingface-cli` (huggingface_hub ships `hf` now) and an unknown
    subcommand fail; `hf`, `unzip`, `cat` and `attnserve export` pass."""
    verdicts = {(c.program, c.subcommand): problem(c) for c in readme_commands(EXAMPLE)}
    assert verdicts.pop(("huggingface-cli", None)) is not None
    assert verdicts.pop((".venv/bin/attnserve", "nosuch")) is not None
    assert verdicts == dict.fromkeys(verdicts)  # every other one: None
