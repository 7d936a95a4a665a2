"""Soak: mixed load for a long time, watching the server for growth and errors.

    python bench/soak.py --artifact DIR [--minutes 10] [--interval 30]

The server runs with default settings in its own process. Load: 12 callers with single texts
and 4 with 8-text requests (the mixed-length corpus), back to back, plus every interval one
request of each kind that fails on purpose (an empty text; a 0.1 ms deadline), so the error
paths soak too. Every interval prints the server's resident memory, open file descriptors and
threads (from /proc), throughput and latency; at the end, the growth after the first interval
(warm-up) and the unexpected errors.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from attnserve.service.client.client import EmbedderClient
from attnserve.service.corpus import mixed_lengths
from bench.common import machine_line
from bench.load import LoadResult, closed_loop, encode_requests
from bench.serve import start_server


def process_stats(pid: int) -> tuple[float, int, int]:
    """Resident memory (MiB), open file descriptors, threads."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss_mib = int(status["VmRSS"].split()[0]) / 1024
    return rss_mib, len(list(Path(f"/proc/{pid}/fd").iterdir())), int(status["Threads"])


async def interval(
    target: str, singles: list[bytes], batches: list[bytes], seconds: float
) -> tuple[LoadResult, LoadResult]:
    return await asyncio.gather(
        closed_loop(target, singles, 1, 12, seconds), closed_loop(target, batches, 8, 4, seconds)
    )


def expected_failures(target: str) -> bool:
    """One bad request and one hopeless deadline: both must fail as documented."""
    outcomes = []
    with EmbedderClient(target, attempts=1) as client:
        for texts, timeout in (([""], 30.0), (["x"], 0.0001)):
            try:
                client.embed(texts, timeout_s=timeout)
                outcomes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                outcomes.append(error.code())
    return outcomes == [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per row")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-soak-"))
    server, target = start_server(args.artifact, workdir)
    texts = mixed_lengths(4000)
    singles, batches = encode_requests(texts, 1), encode_requests(texts, 8, 1024)
    rows: list[tuple[float, float, int, int]] = []
    unexpected = 0
    print(f"machine: {machine_line()}\n")
    print("| minute | RSS MiB | fds | threads | texts/s | p50 1-text | p99 1-text | "
          "p50 8-text | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.minutes * 60:
            single, batch = asyncio.run(interval(target, singles, batches, args.interval))
            if not expected_failures(target):
                unexpected += 1
            errors = single.errors + batch.errors
            unexpected += errors
            rss, fds, threads = process_stats(server.pid)
            minute = (time.monotonic() - started) / 60
            rows.append((minute, rss, fds, threads))
            print(
                f"| {minute:.1f} | {rss:.0f} | {fds} | {threads} | "
                f"{single.texts_per_s + batch.texts_per_s:.0f} | {single.p50_ms:.1f} ms | "
                f"{single.p99_ms:.1f} ms | {batch.p50_ms:.1f} ms | {errors} |",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=60)
    first, last = rows[0], rows[-1]
    print(
        f"\nafter warm-up (first row) to the end: RSS {last[1] - first[1]:+.1f} MiB, "
        f"fds {last[2] - first[2]:+d}, threads {last[3] - first[3]:+d}; unexpected errors: "
        f"{unexpected}"
    )
    return 0 if unexpected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
