"""`attnserve loadtest`: closed- and open-loop load against any attnserve endpoint.

Closed loop: N callers back to back. Open loop: Poisson arrivals at a fixed rate, each request
timed from its *scheduled* send time, so a server that falls behind shows the queueing delay
it causes instead of hiding it (no coordinated omission). Every loop runs for its duration
(and stops early at --requests, when given), after a warm-up that is not counted; it stops by
itself, and fails (exit 1) when more requests failed than --max-error-rate allows.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from attnserve.service.client.channel import add_connection_flags, connection_from_args
from attnserve.service.corpus import MIXES, load_texts
from attnserve.service.loadtest.generator import LoadConfig, run_load
from attnserve.service.loadtest.report import render_plot

DEFAULTS = {field.name: field.default for field in fields(LoadConfig)}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "loadtest", help="load-test an attnserve endpoint", description=__doc__
    )
    add_connection_flags(parser)
    parser.add_argument(
        "--mode",
        choices=["closed", "open"],
        default=DEFAULTS["mode"],
        help="closed: callers back to back; open: Poisson arrivals at --rate",
    )
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULTS["concurrency"], help="closed loop: callers"
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULTS["rate"], help="open loop: requests/s"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULTS["requests"],
        help="stop after this many requests; 0 = no bound, --duration decides",
    )
    parser.add_argument(
        "--duration", type=float, default=DEFAULTS["duration_s"], help="stop after seconds"
    )
    parser.add_argument(
        "--warmup", type=float, default=DEFAULTS["warmup_s"], help="uncounted seconds first"
    )
    parser.add_argument(
        "--texts-per-request",
        type=int,
        default=DEFAULTS["texts_per_request"],
        help="texts in each request",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=DEFAULTS["processes"],
        help="load processes (callers, rate and requests shared out; percentiles merged from "
        "their histograms): one Python process cannot drive a fast server",
    )
    parser.add_argument(
        "--token-embeddings", action="store_true", help="ask for per-token vectors too"
    )
    parser.add_argument("--attention", action="store_true", help="ask for attention maps")
    parser.add_argument(
        "--corpus",
        default=DEFAULTS["corpus"],
        help=f"a named mix ({', '.join(MIXES)}) or a file with one text per line",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULTS["timeout_s"], help="per-request deadline (s)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="write a latency plot (PNG)")
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=0.01,
        help="fail the run (exit 1) when more than this share of requests failed",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    if (
        min(args.concurrency, args.processes) < 1
        or min(args.rate, args.duration) <= 0
        or args.requests < 0
        or not 0 <= args.max_error_rate <= 1
    ):
        print(
            "loadtest: concurrency, rate, processes and duration must be positive, requests 0 "
            "or more, and max-error-rate between 0 and 1",
            file=sys.stderr,
        )
        return 2
    if args.mode == "closed" and args.concurrency < args.processes:
        print("loadtest: a closed loop needs at least one caller per process", file=sys.stderr)
        return 2
    try:
        load_texts(args.corpus, 1)
    except ValueError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    config = LoadConfig(
        connection=connection_from_args(args),
        mode=args.mode,
        concurrency=args.concurrency,
        rate=args.rate,
        requests=args.requests,
        duration_s=args.duration,
        warmup_s=args.warmup,
        texts_per_request=args.texts_per_request,
        token_embeddings=args.token_embeddings,
        attention=args.attention,
        timeout_s=args.timeout,
        corpus=args.corpus,
        processes=args.processes,
    )
    run, summary = run_load(config, progress=not args.no_progress)
    print(summary.table())
    if args.json is not None:
        document = {"config": config.describe(), **summary.as_dict()}
        args.json.write_text(json.dumps(document, indent=2, default=str))
    if args.plot is not None:
        title = f"{config.mode} loop against {config.connection.target}"
        render_plot(run.outcomes, args.plot, title)
    if summary.error_rate > args.max_error_rate:
        print(
            f"loadtest: FAILED: {summary.error_rate:.1%} of requests failed, over the error "
            f"budget of {args.max_error_rate:.1%} (--max-error-rate)",
            file=sys.stderr,
        )
        return 1
    return 0
