"""The `attnserve` command: every subcommand plugs in through one entry-point group.

Each room registers its own subcommands in pyproject.toml (`[project.entry-points.
"attnserve.commands"]`): the server (`serve`, `verify`), the client (`embed`, `attend`, `rerank`,
`chunk`), the load tester (`loadtest`) and the torch side (`embed-local`, `export`). This module
imports none of them itself, so the serving install works without the export extra.

Registering is cheap, by rule: an entry point builds its command's parser and nothing more; the
command's heavy modules (torch above all: 2 s of a 2.1 s `--help`) are imported by its handler
when it runs. `attnserve COMMAND ...` loads COMMAND's entry point alone; `attnserve --help` loads
them all, and still imports no torch (tests/unit/test_cli_imports.py keeps both). A command
whose extra is not installed (read from the package metadata, nothing imported) is listed as
unavailable with the extra to install, and one whose extra fails to import when it runs says
the same.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
Handler = Callable[[argparse.Namespace], int]
GROUP = "attnserve.commands"


def register_all(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], command: str | None = None
) -> None:
    """Register every subcommand, or only `command` when one of that name exists."""
    entries = list(entry_points(group=GROUP))
    if any(entry.name == command for entry in entries):
        entries = [entry for entry in entries if entry.name == command]
    for entry in entries:
        missing = missing_distribution(entry)
        if missing is None:
            try:
                register: Registrar = entry.load()
            except ImportError as exc:
                missing = exc.name or str(exc)
        if missing is not None:
            register_unavailable(subparsers, entry, missing)
            continue
        register(subparsers)
        if entry.extras:
            guard_extra(subparsers.choices[entry.name], entry)


# `torch==2.13.0; extra == "export"` -> ("torch", "export")
EXTRA_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;.*\bextra\s*==\s*['\"]([^'\"]+)['\"]"
)


def missing_distribution(entry: EntryPoint) -> str | None:
    """The first distribution an entry's extras bring that is not installed, None when all are:
    read from attnserve's own metadata, so finding out imports nothing."""
    if not entry.extras or entry.dist is None:
        return None
    for requirement in entry.dist.requires or ():
        found = EXTRA_REQUIREMENT.match(requirement)
        if found is None or found.group(2) not in entry.extras:
            continue
        try:
            distribution(found.group(1))
        except PackageNotFoundError:
            return found.group(1)
    return None


def needs_extra(entry: EntryPoint, missing: str) -> int:
    extra = entry.extras[0] if entry.extras else "export"
    print(
        f"attnserve {entry.name} needs the {extra} extra ({missing} is not installed): "
        f"pip install 'attnserve[{extra}]'",
        file=sys.stderr,
    )
    return 2


def register_unavailable(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], entry: EntryPoint, missing: str
) -> None:
    extra = entry.extras[0] if entry.extras else "export"
    parser = subparsers.add_parser(
        entry.name, help=f"(unavailable: needs `pip install attnserve[{extra}]`; {missing})"
    )
    parser.set_defaults(handler=lambda _: needs_extra(entry, missing), takes_any_arguments=True)


def guard_extra(parser: argparse.ArgumentParser, entry: EntryPoint) -> None:
    """The command's handler, saying which extra to install when one of the modules it imports
    as it runs is missing (installed distributions, but a module that will not import)."""
    run: Handler = parser.get_default("handler")

    def handler(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] == "attnserve":
                raise  # ours: a broken install, not a missing extra
            return needs_extra(entry, exc.name or str(exc))

    parser.set_defaults(handler=handler)


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless it says it already, or there is none
    to say), so no default hides from `--help`; descriptions keep their own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; `command` (a subcommand's name) registers that subcommand alone."""
    parser = argparse.ArgumentParser(
        prog="attnserve", description="Serve Transformer encoder embeddings over gRPC."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_all(subparsers, command)
    for registered in subparsers.choices.values():
        registered.formatter_class = DefaultsHelpFormatter
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The subcommand the arguments name, when they start with one (`--help` names none)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_named(argv))
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
