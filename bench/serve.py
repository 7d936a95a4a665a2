"""Serving benchmark: the gRPC server against the raw ONNX Runtime session it wraps.

    python bench/serve.py [--artifact DIR] [--duration 8]

In one run on one machine: (a) raw in-process ONNX Runtime throughput of the artifact's fast
graph at batch 32 and batch 1 (the ceiling); (b) served throughput through gRPC with 1, 8 and 64
concurrent clients sending single-text and 32-text requests (server in its own process, an
asyncio client here); (c) sentence-transformers in-process; (d) this CPU's float32 matmul
FLOP/s as a tokens/s bound for the model. Ratios are printed against (a).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.artifact import Manifest, verify
from attnserve.service.client.channel import Connection
from attnserve.service.corpus import short_sentences
from attnserve.service.padding import pad
from attnserve.service.sessions import open_session
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from bench.common import machine_line


def raw_session(path: Path, spin: bool) -> ort.InferenceSession:
    """The server's own session settings, spinning included (as `--spin-wait` says)."""
    return open_session(path, threads=os.cpu_count() or 1, spinning=spin)


def padded(tokenizer: Tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    encodings = tokenizer.encode_batch(texts)
    return pad([e.ids for e in encodings], None, 0).feeds()


def raw_throughput(
    session: ort.InferenceSession,
    tokenizer: Tokenizer,
    texts: list[str],
    batch: int,
    seconds: float,
) -> tuple[float, float]:
    """Texts/s and median call latency (s), tokenisation included as the server pays it."""
    done, latencies = 0, []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        chunk = [texts[(done + i) % len(texts)] for i in range(batch)]
        began = time.perf_counter()
        session.run(["pooled"], padded(tokenizer, chunk))
        latencies.append(time.perf_counter() - began)
        done += batch
    return done / (time.perf_counter() - started), statistics.median(latencies)


async def served_throughput(
    target: str, texts: list[str], clients: int, per_request: int, seconds: float
) -> tuple[float, float, int]:
    """Closed loop: `clients` callers back to back. Texts/s, median latency (s), errors."""
    channels = [Connection(target).aio_channel() for _ in range(min(clients, 8))]
    stubs = [embedder_pb2_grpc.EmbedderStub(c) for c in channels]  # type: ignore[no-untyped-call]
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def caller(index: int) -> int:
        nonlocal errors
        stub = stubs[index % len(stubs)]
        sent = 0
        while time.perf_counter() < stop_at:
            start = (index * 7919 + sent) % len(texts)
            request = pb.EmbedRequest(texts=(texts * 2)[start : start + per_request])
            began = time.perf_counter()
            try:
                await stub.Embed(request, timeout=60)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)
            sent += per_request
        return sent

    started = time.perf_counter()
    counts = await asyncio.gather(*(caller(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return sum(counts) / elapsed, statistics.median(latencies), errors


def matmul_flops(seconds: float = 3.0) -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ a
        runs += 1
    return runs * 2 * 2048**3 / (time.perf_counter() - started)


def flops_per_token(manifest: Manifest, seq_len: int) -> float:
    hidden, layers = manifest.model.hidden_size, manifest.model.num_layers
    intermediate = 4 * hidden
    dense = 2 * (4 * hidden * hidden + 2 * hidden * intermediate)  # QKV+O, FFN up+down
    attention = 2 * 2 * seq_len * hidden  # QK^T and PV
    return float(layers * (dense + attention))


def start_server(artifact: Path, workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir / f"port-{len(list(workdir.glob('port-*')))}"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "attnserve.service.cli", "serve", "--artifact", str(artifact),
            "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--port-file", str(port_file), "--log-level", "warning", *extra,
        ]
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.2)
    return process, f"127.0.0.1:{port_file.read_text().strip()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--spin-wait", choices=["true", "false"], default="true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-serve-bench-"))
    artifact = args.artifact
    if artifact is None:
        from attnserve.export.artifact import build_artifact

        artifact = workdir / "artifact"
        build_artifact(artifact)
    manifest = verify(artifact)
    fast = manifest.graph("fast", "fp32")
    assert fast is not None
    texts = short_sentences(2048)
    tokenizer = Tokenizer.from_file(str(artifact / manifest.tokenizer.file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    mean_tokens = statistics.mean(len(e.ids) for e in tokenizer.encode_batch(texts))
    seconds = args.duration

    print(f"machine: {machine_line()}")
    print(f"texts: short sentences, {mean_tokens:.1f} tokens on average\n")
    session = raw_session(artifact / fast.file, args.spin_wait == "true")
    raw32, _ = raw_throughput(session, tokenizer, texts, 32, seconds)
    raw1, raw1_latency = raw_throughput(session, tokenizer, texts, 1, seconds)
    del session

    process, target = start_server(artifact, workdir, "--spin-wait", args.spin_wait)
    rows: list[tuple[str, float, float, int]] = []
    try:
        asyncio.run(served_throughput(target, texts, 8, 1, 2.0))  # warm-up, not counted
        for per_request in (1, 32):
            for clients in (1, 8, 64):
                rate, latency, errors = asyncio.run(
                    served_throughput(target, texts, clients, per_request, seconds)
                )
                rows.append(
                    (f"gRPC, {clients} clients x {per_request} text(s)", rate, latency, errors)
                )
    finally:
        process.terminate()
        process.wait(timeout=60)

    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(manifest.model.source, device="cpu")
    st_model.encode(texts[:32], batch_size=32)
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        st_model.encode(texts[done % 2016 : done % 2016 + 32], batch_size=32)
        done += 32
    st_rate = done / (time.perf_counter() - started)

    flops = matmul_flops()
    bound = flops / flops_per_token(manifest, round(mean_tokens))

    print("| path | texts/s | x raw batch-32 | p50 latency | errors |")
    print("|---|---|---|---|---|")
    print(f"| raw ONNX Runtime, batch 32 (ceiling) | {raw32:.0f} | 1.00 | | |")
    raw1_ms = raw1_latency * 1000
    print(f"| raw ONNX Runtime, batch 1 | {raw1:.0f} | {raw1 / raw32:.2f} | {raw1_ms:.2f} ms | |")
    for name, rate, latency, errors in rows:
        print(f"| {name} | {rate:.0f} | {rate / raw32:.2f} | {latency * 1000:.2f} ms | {errors} |")
    st_ratio = st_rate / raw32
    print(f"| sentence-transformers, batch 32, in-process | {st_rate:.0f} | {st_ratio:.2f} | | |")
    lone = rows[0][2]
    print(
        f"\nlone single-text request p50 {lone * 1000:.2f} ms vs raw batch-1 call "
        f"{raw1_latency * 1000:.2f} ms: +{(lone - raw1_latency) * 1000:.2f} ms"
    )
    best = max(rate * mean_tokens for _, rate, _, _ in rows)
    print(f"compute ceiling: float32 matmul {flops / 1e9:.1f} GFLOP/s -> {bound:.0f} tokens/s "
          f"for this model at {mean_tokens:.0f} tokens; best served {best:.0f} tokens/s = "
          f"{best / bound:.2f} of the bound")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
