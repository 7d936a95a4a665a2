"""Tokenize with tokens against counts only (`TokenizeRequest.counts_only`), for many texts.

    python bench/tokenize_counts.py --artifact DIR [--texts 256] [--words 200] [--calls 10]

One server on the artifact; the same request (`--texts` texts of `--words` words each, cut at
the model's default cap) through the typed client's `tokenize` (every token with its offsets)
and `count_tokens` (counts and truncated flags), in turn; the median time per call from the
client (server work, transfer and the client's parsing: what a caller waits for) and the
response's size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.client.client import EmbedderClient
from attnserve.v1 import embedder_pb2 as pb
from bench.common import machine_line
from bench.serve import start_server

WORDS = "the river bank was flooded after a storm and engineers said levee would not hold".split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    chooser = random.Random(0)
    texts = [" ".join(chooser.choices(WORDS, k=args.words)) for _ in range(args.texts)]
    process, target = start_server(args.artifact, Path(tempfile.mkdtemp()), "--warmup", "false")
    try:
        with EmbedderClient(target) as client:
            calls: dict[str, Callable[[], object]] = {
                "tokens": lambda: client.tokenize(texts),
                "counts only": lambda: client.count_tokens(texts),
            }
            times: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.calls):
                for name, call in calls.items():
                    started = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - started)
            sizes = {
                name: client.stub.Tokenize(
                    pb.TokenizeRequest(texts=texts, counts_only=counts_only), timeout=60
                ).ByteSize()
                for name, counts_only in (("tokens", False), ("counts only", True))
            }
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(machine_line())
    print(f"{args.texts} texts of {args.words} words, median of {args.calls} calls")
    print("| Tokenize | per call | response |")
    print("|---|---:|---:|")
    for name, measured in times.items():
        print(f"| {name} | {statistics.median(measured) * 1000:.1f} ms | {sizes[name]:,} B |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
