"""What one request of many inputs costs over OpenAI's route: 1,000 texts (LangChain's chunk)
and 2,048 (OpenAI's limit, attnserve's default `--max-texts-per-request`).

    python bench/large_requests.py [--rounds 3]

One server of the packaged all-MiniLM-L6-v2 (fp32, default settings, HTTP on), the corpus's
short sentences; each request is timed from the first byte sent to the last byte read, alone
(no other caller), float and base64 answers. It reports the wall time, the texts per second, the
request's and the answer's size and how many model batches carried it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.corpus import short_sentences
from bench.common import machine_line
from bench.protocols import free_port
from bench.serve import start_server


def post(url: str, body: bytes) -> tuple[float, int]:
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        size = len(answer.read())
    return time.perf_counter() - began, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    default = Path.home() / ".cache" / "attnserve" / "all-MiniLM-L6-v2"
    parser.add_argument("--artifact", type=Path, default=default)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-large-"))
    http_port = free_port()
    server, _ = start_server(args.artifact, workdir, "--http-port", str(http_port))
    url = f"http://127.0.0.1:{http_port}/v1/embeddings"
    print(f"machine: {machine_line()}")
    print("| texts | encoding | request | answer | wall (median) | texts/s |")
    print("|---|---|---|---|---|---|")
    try:
        post(url, json.dumps({"input": short_sentences(64)}).encode())  # warm, not counted
        for count in (1000, 2048):
            texts = short_sentences(count)
            for encoding in ("float", "base64"):
                body = json.dumps({"input": texts, "encoding_format": encoding}).encode()
                walls, size = [], 0
                for _ in range(args.rounds):
                    wall, size = post(url, body)
                    walls.append(wall)
                wall = statistics.median(walls)
                print(
                    f"| {count} | {encoding} | {len(body) / 1e3:.0f} kB | {size / 1e6:.1f} MB | "
                    f"{wall:.2f} s | {count / wall:.0f} |",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
