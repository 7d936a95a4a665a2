"""The `attnserve` command: serving subcommands here, export-time ones as plugins.

Subcommands that need torch (embed-local, export) live in `model/` and `export/` and register
through the `attnserve.commands` entry-point group, so this module never imports them and the
serving install works without the export extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def serving_commands() -> list[Registrar]:
    """Subcommands that ship with the serving install."""
    from service.client_cli import register_attend, register_embed
    from service.commands import register_serve, register_verify
    from service.loadtest import register as register_loadtest

    return [register_serve, register_verify, register_embed, register_attend, register_loadtest]


def plugin_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    for entry in entry_points(group="attnserve.commands"):
        try:
            register: Registrar = entry.load()
        except ImportError as exc:
            missing = exc.name or str(exc)
            parser = subparsers.add_parser(
                entry.name, help=f"(unavailable: needs `pip install attnserve[export]`; {missing})"
            )
            parser.set_defaults(handler=unavailable(entry.name, missing), takes_any_arguments=True)
            continue
        register(subparsers)


def unavailable(command: str, missing: str) -> Callable[[argparse.Namespace], int]:
    def handler(_: argparse.Namespace) -> int:
        print(
            f"attnserve {command} needs the export extra ({missing} is not installed): "
            "pip install 'attnserve[export]'",
            file=sys.stderr,
        )
        return 2

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnserve", description="Serve Transformer encoder embeddings over gRPC."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in serving_commands():
        register(subparsers)
    plugin_commands(subparsers)
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
