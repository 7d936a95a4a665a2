"""`attnserve export`: build a verified artifact directory from a checkpoint.

The console shows one line per finished stage (export, fuse, verify, int8 behind its quality
gate, fp16, manifest) on stderr and a summary table on stdout; other libraries' chatter goes to
the log at debug level (`--log-level debug` shows it). Failures are always reported.
Registering the command imports nothing heavy: the exporter (torch, onnx) comes in when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from attnserve.export.console import LEVELS, configure_console

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="build an artifact (ONNX graphs, tokenizer, manifest) from a checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="info: our stages and summary; debug: also torch's, onnxscript's and ONNX "
        "Runtime's own messages",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from attnserve.export.artifact import build_artifact
    from attnserve.export.summary import summary_table
    from attnserve.model.checkpoint import CheckpointError

    configure_console(args.log_level)
    source = args.checkpoint or "the packaged all-MiniLM-L6-v2"
    log.info(
        "attnserve export: %s -> %s (2-4 minutes for a MiniLM-sized model on 2 cores with int8)",
        source,
        args.out,
    )
    started = time.perf_counter()
    try:
        manifest = build_artifact(
            args.out, args.checkpoint, int8=not args.no_int8, fp16=not args.no_fp16
        )
    except CheckpointError as exc:
        print(f"attnserve export: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"attnserve export: cannot write the artifact: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a failed stage: said plainly, the traceback kept for debug
        log.debug("export failed", exc_info=True)
        print(
            f"attnserve export: failed: {type(exc).__name__}: {exc} "
            "(--log-level debug shows the traceback)",
            file=sys.stderr,
        )
        return 1
    elapsed = time.perf_counter() - started
    print(summary_table(manifest, args.out, elapsed, int8_wanted=not args.no_int8))
    return 0
