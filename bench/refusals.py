"""What a refusal costs under overload: server CPU per RESOURCE_EXHAUSTED, and how fast it comes.

    python bench/refusals.py --artifact DIR [--seconds 10] [--callers 32]

The server's queue (64 texts) is held full by a filler that resubmits 64 long texts as soon as
they are answered (one text per batch, so they stay queued), while `--callers` callers send
32-text requests back to back: every one of those is refused. Printed: refusals per second, the
refusals' latency at the client, and the CPU the server's event-loop and gRPC threads spent per
refusal (from /proc, per thread: the inference thread, busy with the filler, is left out; one
intra-op thread, so ONNX Runtime's thread pool has none to add).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.client.client import EmbedderClient
from attnserve.service.corpus import mixed_lengths
from bench.common import machine_line
from bench.load import encode_requests, run_closed_loop
from bench.serve import start_server

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of a process, by thread name."""
    usage: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        key = "main" if task.name == str(pid) else name
        usage[key] = usage.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return usage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--callers", type=int, default=32)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-refusals-"))
    server, target = start_server(
        args.artifact, workdir, "--max-queue-texts", "64", "--max-texts-per-request", "64",
        "--max-batch-texts", "1", "--intra-op-threads", "1",
    )  # fmt: skip
    stop = threading.Event()

    def fill() -> None:
        with EmbedderClient(target, attempts=1) as client:
            while not stop.is_set():
                try:
                    client.embed(["a long text that keeps the queue full " * 25] * 64)
                except Exception:
                    time.sleep(0.01)

    filler = threading.Thread(target=fill)
    filler.start()
    try:
        time.sleep(2.0)  # the filler's texts are queued
        requests = encode_requests(mixed_lengths(2000), 32, 512)
        before = thread_cpu(server.pid)
        result = run_closed_loop(target, requests, 32, args.callers, args.seconds)
        after = thread_cpu(server.pid)
    finally:
        stop.set()
        filler.join(timeout=300)
        server.terminate()
        server.wait(timeout=60)
    refused = result.codes.get("RESOURCE_EXHAUSTED", 0)
    spent = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    # One intra-op thread: ONNX Runtime has no worker threads; all but inference is the request
    # path (the event loop, gRPC's poller and event engine).
    loop_and_grpc = sum(v for name, v in spent.items() if name != "attnserve-infer")
    print(f"machine: {machine_line()}\n")
    print(
        f"{args.callers} callers x 32-text requests for {args.seconds:.0f} s against a full queue"
    )
    print(f"- refused: {refused} ({refused / args.seconds:.0f}/s); other outcomes: "
          f"{result.texts_per_s * args.seconds / 32:.0f} answered, "
          f"{ {k: v for k, v in result.codes.items() if k != 'RESOURCE_EXHAUSTED'} }")  # fmt: skip
    print(f"- a refusal comes back in {result.failed_p50_ms:.2f} ms (p50, at the client)")
    print(
        f"- server CPU per refusal: event loop {spent.get('main', 0.0) / max(refused, 1) * 1e3:.3f}"
        f" ms, all threads but inference {loop_and_grpc / max(refused, 1) * 1e3:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
