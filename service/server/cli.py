"""Serving-side subcommands: `serve` and `verify` (client commands live in `client/cli.py`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from attnserve.service.artifact import ArtifactError, verify
from attnserve.service.server.errors import StartupError
from attnserve.service.server.logs import configure_logging
from attnserve.service.server.settings import Settings, add_settings_flags


def register_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve an artifact over gRPC (default: the packaged all-MiniLM-L6-v2)",
        description="Every flag has an ATTNSERVE_<NAME> environment twin; flags win.",
    )
    add_settings_flags(parser)
    parser.set_defaults(handler=run_serve)


def settings_from_args(args: argparse.Namespace) -> Settings:
    values = {name: getattr(args, name) for name in Settings.model_fields}
    return Settings.from_sources(values)


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        print(f"attnserve serve: invalid settings: {problems}", file=sys.stderr)
        return 2
    from attnserve.service.server.workers import machine_plan, supervise

    plan = machine_plan(settings)
    try:
        if plan.workers > 1:
            configure_logging(settings.log_level, settings.log_format, "supervisor")
            return supervise(settings, plan)
        configure_logging(settings.log_level, settings.log_format)
        # Heavy imports (ONNX Runtime, gRPC) only once the settings are sound.
        from attnserve.service.server.app import serve_forever

        if settings.workers == "auto":
            logging.getLogger(__name__).info("%s", plan.why)
        settings = settings.model_copy(update={"intra_op_threads": plan.threads})
        return asyncio.run(serve_forever(settings))
    except StartupError as exc:  # one plain line and the cause's exit code (docs/api.md)
        print(f"attnserve serve: {exc}", file=sys.stderr)
        return exc.exit_code


def register_verify(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify", help="check an artifact's files against its manifest's hashes"
    )
    parser.add_argument("artifact", type=Path, help="artifact directory")
    parser.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    try:
        manifest = verify(args.artifact)
    except ArtifactError as exc:
        print(f"attnserve verify: FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"attnserve verify: OK: {args.artifact} ({manifest.model.name}, "
        f"{len(manifest.files)} files, sha256 {manifest.artifact_hash[:16]})"
    )
    return 0
