"""Rerank throughput side by side: attnserve (fp32, int8) against infinity-emb's `/rerank` on the
same checkpoint, and sentence-transformers' CrossEncoder.predict in-process.

    python bench/rerank.py --checkpoint CROSS_ENCODER_DIR \\
        --artifact ARTIFACT_DIR [--infinity PATH/TO/infinity_emb] [--seconds 10]

Loads: 1 query x 100 documents per request, from one caller and from 16 concurrent callers
(closed loop, aiohttp, the Cohere/Jina `/rerank` JSON both servers speak: attnserve's
`/v1/rerank`, infinity's `/rerank`), each for `--seconds` after a warm-up. Texts are drawn from a
small seeded vocabulary (queries of 4-10 words, documents of 8-40), distinct per request. Each
server runs alone (they would share the cores), stopped before the next starts. CrossEncoder is
timed on the same requests, one `predict` of 100 pairs at a time. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from attnserve.service.artifact import read_manifest
from bench.common import machine_line
from bench.serve import start_server

WORDS = (
    "river bank storm harbour pilot fog freighter crane night shift market price rate loan city "
    "bridge road train station ticket music piano concert garden flower tree"
).split()
DOCUMENTS = 100
LOADS = (("1 x (1 query x 100 docs)", 1), ("16 x (1 query x 100 docs)", 16))


@dataclass(frozen=True)
class Measured:
    pairs_per_s: float
    p50_ms: float
    errors: int


def text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def request_bodies(model: str, count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "model": model,
            "query": text(rng, 4, 10),
            "documents": [text(rng, 8, 40) for _ in range(DOCUMENTS)],
            "top_n": 5,
            "return_documents": False,
        }
        for _ in range(count)
    ]


async def closed_loop(
    url: str, bodies: list[dict[str, Any]], callers: int, seconds: float
) -> Measured:
    latencies: list[float] = []
    errors = 0
    next_body = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=callers)) as http:

        async def caller(stop: float, counted: bool) -> None:
            nonlocal errors, next_body
            while time.perf_counter() < stop:
                body = bodies[next_body % len(bodies)]
                next_body += 1
                started = time.perf_counter()
                async with http.post(url, json=body) as answer:
                    await answer.read()
                    ok = answer.status == 200
                if counted:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        warm = time.perf_counter() + 2.0
        await asyncio.gather(*(caller(warm, False) for _ in range(callers)))
        started = time.perf_counter()
        await asyncio.gather(*(caller(started + seconds, True) for _ in range(callers)))
        elapsed = time.perf_counter() - started
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    return Measured(len(latencies) * DOCUMENTS / elapsed, p50, errors)


def measure(url: str, model: str, seconds: float) -> dict[str, Measured]:
    bodies = request_bodies(model, 400)
    return {name: asyncio.run(closed_loop(url, bodies, c, seconds)) for name, c in LOADS}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url}: not ready after {limit_s} s")


def attnserve(artifact: Path, precision: str, seconds: float) -> dict[str, Measured]:
    http_port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        process, _ = start_server(
            artifact, Path(workdir), "--http-port", str(http_port), "--precision", precision
        )
        try:
            name = read_manifest(artifact).model.name.rsplit("/", 1)[-1]  # its served name
            return measure(f"http://127.0.0.1:{http_port}/v1/rerank", name, seconds)
        finally:
            process.terminate()
            process.wait(timeout=60)


def infinity(executable: Path, checkpoint: Path, seconds: float) -> dict[str, Measured]:
    port = free_port()
    process = subprocess.Popen(
        [
            str(executable), "v2", "--model-id", str(checkpoint), "--served-model-name", "rr",
            "--engine", "torch", "--device", "cpu", "--no-model-warmup", "--port", str(port),
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process)
        return measure(f"http://127.0.0.1:{port}/rerank", "rr", seconds)
    finally:
        process.terminate()
        process.wait(timeout=60)


def cross_encoder(checkpoint: Path, seconds: float) -> dict[str, Measured]:
    """CrossEncoder.predict in this process, one request's 100 pairs per call (one caller)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(checkpoint), device="cpu")
    bodies = request_bodies("rr", 400)
    pairs = [[(b["query"], d) for d in b["documents"]] for b in bodies]
    model.predict(pairs[0], batch_size=DOCUMENTS)  # warm-up
    latencies, started, index = [], time.perf_counter(), 0
    while time.perf_counter() < started + seconds:
        begun = time.perf_counter()
        model.predict(pairs[index % len(pairs)], batch_size=DOCUMENTS)
        latencies.append(time.perf_counter() - begun)
        index += 1
    elapsed = time.perf_counter() - started
    measured = Measured(
        len(latencies) * DOCUMENTS / elapsed, statistics.median(latencies) * 1000, 0
    )
    return {LOADS[0][0]: measured}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a CrossEncoder folder")
    parser.add_argument("--artifact", type=Path, required=True, help="its attnserve artifact")
    parser.add_argument("--infinity", type=Path, default=None, help="infinity_emb executable")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    runs: dict[str, dict[str, Measured]] = {}
    if args.infinity is not None:
        runs["infinity-emb (torch, fp32)"] = infinity(args.infinity, args.checkpoint, args.seconds)
    runs["attnserve fp32"] = attnserve(args.artifact, "fp32", args.seconds)
    if read_manifest(args.artifact).graph("fast", "int8") is not None:
        runs["attnserve int8"] = attnserve(args.artifact, "int8", args.seconds)
    else:  # the export's score gate refused int8 for this checkpoint
        print("no int8 graph in the artifact (its score gate refused it): int8 not measured")
    runs["CrossEncoder.predict (in-process)"] = cross_encoder(args.checkpoint, args.seconds)
    print(machine_line())
    print("| system | " + " | ".join(f"{name}: pairs/s (p50 ms)" for name, _ in LOADS) + " |")
    print("| --- | " + " | ".join("---" for _ in LOADS) + " |")
    for system, results in runs.items():
        cells = [
            f"{results[name].pairs_per_s:.0f} ({results[name].p50_ms:.0f})"
            + (f", {results[name].errors} errors" if results[name].errors else "")
            if name in results
            else "-"
            for name, _ in LOADS
        ]
        print(f"| {system} | " + " | ".join(cells) + " |")
    print(json.dumps({s: {n: vars(m) for n, m in r.items()} for s, r in runs.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
