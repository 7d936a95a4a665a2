"""`attnserve loadtest`: closed- and open-loop load against any attnserve endpoint.

Closed loop: N callers back to back. Open loop: Poisson arrivals at a fixed rate, each request
timed from its *scheduled* send time, so a server that falls behind shows the queueing delay
it causes instead of hiding it (no coordinated omission). Every loop is bounded by a request
count and a duration, after a warm-up that is not counted; it stops by itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from attnserve.service.loadtest.generator import LoadConfig, run_load
from attnserve.service.loadtest.report import render_plot


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "loadtest", help="load-test an attnserve endpoint", description=__doc__
    )
    parser.add_argument("--target", required=True, help="server HOST:PORT")
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--concurrency", type=int, default=8, help="closed loop: callers")
    parser.add_argument("--rate", type=float, default=50.0, help="open loop: requests/s")
    parser.add_argument("--requests", type=int, default=1000, help="stop after this many")
    parser.add_argument("--duration", type=float, default=30.0, help="stop after seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds first")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--token-embeddings", action="store_true")
    parser.add_argument("--attention", action="store_true", help="ask for attention maps")
    parser.add_argument("--corpus", default=None, help="file with one text per line")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request deadline (s)")
    parser.add_argument("--token", default=None, help="bearer token")
    parser.add_argument("--tls-ca", default=None, help="CA bundle: connect with TLS")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="write a latency plot (PNG)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or args.rate <= 0 or args.requests < 1 or args.duration <= 0:
        print(
            "loadtest: concurrency, rate, requests and duration must be positive", file=sys.stderr
        )
        return 2
    config = LoadConfig(
        target=args.target, mode=args.mode, concurrency=args.concurrency, rate=args.rate,
        requests=args.requests, duration_s=args.duration, warmup_s=args.warmup,
        texts_per_request=args.texts_per_request, token_embeddings=args.token_embeddings,
        attention=args.attention, timeout_s=args.timeout, token=args.token,
        tls_ca=args.tls_ca, corpus=args.corpus,
    )  # fmt: skip
    run, summary = run_load(config, progress=not args.no_progress)
    print(summary.table())
    if args.json is not None:
        document = {"config": {**asdict(config), "token": bool(config.token)}, **summary.as_dict()}
        args.json.write_text(json.dumps(document, indent=2))
    if args.plot is not None:
        render_plot(run.outcomes, args.plot, f"{config.mode} loop against {config.target}")
    return 0
