"""What Prometheus metrics cost: two servers, with and without them, loaded in turn.

    python bench/metrics_cost.py [--artifact DIR] [--rounds 6] [--seconds 3]

Both servers run the same artifact in their own processes; rounds alternate between them (the
idle one sleeps), 64 closed-loop clients with single texts, the load shape where per-request
overhead matters most. Prints texts/s per round and the ratio of the totals.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.corpus import short_sentences
from bench.common import machine_line
from bench.load import encode_requests, run_closed_loop
from bench.serve import start_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-metrics-bench-"))
    requests = encode_requests(short_sentences(2048), 1)
    with_metrics, target_on = start_server(args.artifact, workdir)
    without, target_off = start_server(args.artifact, workdir, "--metrics", "false")
    totals = {"on": 0.0, "off": 0.0}
    print(f"machine: {machine_line()}\n\n| round | metrics on (texts/s) | metrics off (texts/s) |")
    print("|---|---|---|")
    try:
        for target in (target_on, target_off):  # warm both, not counted
            run_closed_loop(target, requests, 1, 64, 1.0)
        for round_number in range(args.rounds):
            order = [("on", target_on), ("off", target_off)]
            if round_number % 2:
                order.reverse()
            rates = {}
            for name, target in order:
                result = run_closed_loop(target, requests, 1, 64, args.seconds)
                rates[name] = result.texts_per_s
                totals[name] += result.texts_per_s
            print(f"| {round_number + 1} | {rates['on']:.0f} | {rates['off']:.0f} |", flush=True)
    finally:
        for process in (with_metrics, without):
            process.terminate()
            process.wait(timeout=60)
    cost = 1 - totals["on"] / totals["off"]
    print(f"\nmetrics on / off: {totals['on'] / totals['off']:.3f} (cost {cost * 100:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
