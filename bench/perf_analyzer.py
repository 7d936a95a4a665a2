"""perf_analyzer (Triton's C++ load generator, over OIP) beside `attnserve loadtest` (Python,
over attnserve.v1): the same server, the same texts, the same closed-loop concurrency.

    python bench/perf_analyzer.py [--artifact DIR] [--concurrency 1 16] [--seconds 10] [--rounds 2]

One server with default settings; for each concurrency the two tools run in turn (A B A B),
single-text requests drawn from the same mixed-length corpus (`--corpus`). perf_analyzer comes
from `.venv-triton` (`bash .ci/run` makes it; tritonclient 2.51.0, see
../shared/peers/perf_analyzer.md). The two differ in protocol and in client cost: a C++ client
leaves the shared cores to the server, a Python one takes its share, which is the point of
showing both.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.corpus import load_texts
from bench.common import machine_line
from bench.serve import build_default_artifact, start_server

ROOT = Path(__file__).resolve().parent.parent
TRITON = ROOT / ".venv-triton"
MODEL = "bench-model"


def perf_analyzer(
    target: str, data: Path, concurrency: int, seconds: float, out: Path
) -> dict[str, float]:
    cuda_runtime = next((TRITON / "lib").glob("python3*/site-packages/nvidia/cuda_runtime/lib"))
    result = subprocess.run(
        [str(TRITON / "bin" / "perf_analyzer"), "-m", MODEL, "-i", "grpc", "-u", target,
         "--input-data", str(data), "--concurrency-range", str(concurrency),
         "--measurement-interval", str(int(seconds * 1000)), "--stability-percentage", "20",
         "--max-trials", "5", "-f", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "LD_LIBRARY_PATH": str(cuda_runtime)},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    with out.open() as table:
        row = next(csv.DictReader(table))
    return {
        "requests_per_s": float(row["Inferences/Second"]),
        "p50_ms": float(row["p50 latency"]) / 1000,
        "p99_ms": float(row["p99 latency"]) / 1000,
    }


def loadtest(
    target: str, corpus: Path, concurrency: int, seconds: float, out: Path
) -> dict[str, float]:
    subprocess.run(
        [sys.executable, "-m", "attnserve.service.cli", "loadtest", "--target", target,
         "--concurrency", str(concurrency), "--duration", str(seconds), "--warmup", "2",
         "--requests", "100000000", "--corpus", str(corpus), "--json", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    document = json.loads(out.read_text())
    assert not document["errors_by_code"], document["errors_by_code"]
    return {
        "requests_per_s": document["requests_per_s"],
        "p50_ms": document["latency_ms"]["p50"],
        "p99_ms": document["latency_ms"]["p99"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--corpus", default="mixed")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (TRITON / "bin" / "perf_analyzer").exists():
        sys.exit("no .venv-triton/bin/perf_analyzer: run `bash .ci/run` (or its triton step) first")
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-perf-analyzer-"))
    artifact = args.artifact or build_default_artifact(workdir)
    texts = [t.replace("\n", " ") for t in load_texts(args.corpus)][:2000]
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    data = workdir / "input.json"
    data.write_text(json.dumps({"data": [{"text": [t]} for t in texts]}))
    server, target = start_server(artifact, workdir, "--model-name", MODEL)
    print(f"machine: {machine_line()}")
    print(f"corpus {args.corpus} ({len(texts)} texts), single-text requests, closed loop\n")
    print("| round | concurrency | tool (protocol) | req/s | p50 | p99 |")
    print("|---|---|---|---|---|---|")
    try:
        for concurrency in args.concurrency:
            for round_number in range(args.rounds):
                tools = [
                    ("perf_analyzer (OIP)", perf_analyzer, data),
                    ("attnserve loadtest (attnserve.v1)", loadtest, corpus),
                ]
                if round_number % 2:
                    tools.reverse()
                for name, tool, source in tools:
                    figures = tool(target, source, concurrency, args.seconds, workdir / "out")
                    print(
                        f"| {round_number + 1} | {concurrency} | {name} | "
                        f"{figures['requests_per_s']:.1f} | {figures['p50_ms']:.2f} ms | "
                        f"{figures['p99_ms']:.2f} ms |",
                        flush=True,
                    )
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
