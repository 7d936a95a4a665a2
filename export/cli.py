"""`attnserve export`: build a verified artifact directory from a checkpoint."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from attnserve.export.artifact import build_artifact
from attnserve.model.checkpoint import CheckpointError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="build an artifact (ONNX graphs, tokenizer, manifest) from a checkpoint",
        description=__doc__,
    )
    parser.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint directory (default: the packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 CPU graph")
    parser.add_argument("--no-fp16", action="store_true", help="skip the fp16 CUDA graph")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # torch's exporter narrates its internals; keep the user's terminal for what matters.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\..*|copyreg")
    warnings.filterwarnings(
        "ignore", message=r".*axis name.*will not be used", category=UserWarning
    )
    try:
        manifest = build_artifact(
            args.out, args.checkpoint, int8=not args.no_int8, fp16=not args.no_fp16
        )
    except CheckpointError as exc:
        print(f"attnserve export: {exc}", file=sys.stderr)
        return 2
    for graph in manifest.graphs:
        print(f"  {graph.file}: {graph.purpose} {graph.precision} {dict(graph.parity)}")
    return 0
