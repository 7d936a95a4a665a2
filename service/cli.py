"""The `attnserve` command: every subcommand plugs in through one entry-point group.

Each room registers its own subcommands in pyproject.toml (`[project.entry-points.
"attnserve.commands"]`): the server (`serve`, `verify`), the client (`embed`, `attend`), the load
tester (`loadtest`) and the torch side (`embed-local`, `export`). This module imports none of
them itself, so the serving install works without the export extra: a command whose imports fail
is listed as unavailable, with the extra to install.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
GROUP = "attnserve.commands"


def register_all(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for entry in entry_points(group=GROUP):
        try:
            register: Registrar = entry.load()
        except ImportError as exc:
            register_unavailable(subparsers, entry, exc.name or str(exc))
            continue
        register(subparsers)


def register_unavailable(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], entry: EntryPoint, missing: str
) -> None:
    extra = entry.extras[0] if entry.extras else "export"
    parser = subparsers.add_parser(
        entry.name, help=f"(unavailable: needs `pip install attnserve[{extra}]`; {missing})"
    )

    def handler(_: argparse.Namespace) -> int:
        print(
            f"attnserve {entry.name} needs the {extra} extra ({missing} is not installed): "
            f"pip install 'attnserve[{extra}]'",
            file=sys.stderr,
        )
        return 2

    parser.set_defaults(handler=handler, takes_any_arguments=True)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnserve", description="Serve Transformer encoder embeddings over gRPC."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_all(subparsers)
    for command in subparsers.choices.values():
        command.formatter_class = DefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
