"""What each protocol costs per request: attnserve.v1, OIP and TEI's tei.v1 over gRPC, OpenAI's
and TEI's embedding routes over HTTP.

    python bench/protocols.py [--rounds 4] [--seconds 4] [--callers 16]

One server (a tiny random encoder, one intra-op thread: inference costs next to nothing, see
bench/overhead.py) serves every protocol on its gRPC and HTTP ports; the same single-text
requests, pre-encoded, go through each in turn (order rotated every round) from lean clients:
grpc.aio with undecoded responses for the gRPC protocols (OIP with `raw_input_contents`, as
tritonclient sends; tei.v1's Embed with one text per request, as TEI's API has it), aiohttp
with a pre-encoded JSON body for OpenAI's `/v1/embeddings` and TEI's `/embed`
(`{"inputs": text}`, no model: the default answers). The figures are the server process's CPU
time per request (user + system, all threads, from /proc) under `--callers` closed-loop callers,
and a lone caller's median latency. CPU time is what a request costs the machine whichever
client sends it; the latency includes each client's own cost too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from attnserve.oip import inference_pb2 as oip
from attnserve.service.corpus import short_sentences
from attnserve.tei import tei_pb2 as tei
from bench.common import machine_line
from bench.load import LoadResult, encode_requests, run_closed_loop, summarize
from bench.overhead import cpu_seconds, tiny_artifact
from bench.serve import start_server

MODEL = "tiny"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
TEI_EMBED = "/tei.v1.Embed/Embed"


def oip_requests(texts: Sequence[str], count: int = 4096) -> list[bytes]:
    """ModelInfer requests of one text each, BYTES in the raw form (4-byte length + UTF-8)."""
    requests = []
    for index in range(count):
        data = texts[index % len(texts)].encode()
        request = oip.ModelInferRequest(model_name=MODEL)
        request.inputs.add(name="text", datatype="BYTES", shape=[1])
        request.outputs.add(name="embedding")
        request.raw_input_contents.append(struct.pack("<I", len(data)) + data)
        requests.append(request.SerializeToString())
    return requests


def tei_requests(texts: Sequence[str], count: int = 4096) -> list[bytes]:
    """TEI's Embed requests, one text each (TEI's defaults: normalised, no truncation)."""
    return [
        tei.EmbedRequest(inputs=texts[index % len(texts)]).SerializeToString()
        for index in range(count)
    ]


def openai_bodies(texts: Sequence[str], count: int = 4096) -> list[bytes]:
    return [
        json.dumps({"model": MODEL, "input": texts[index % len(texts)]}).encode()
        for index in range(count)
    ]


async def http_closed_loop(
    url: str, bodies: Sequence[bytes], callers: int, seconds: float
) -> LoadResult:
    latencies: list[float] = []
    failed: list[float] = []
    next_body = 0
    stop_at = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=callers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def caller() -> None:
            nonlocal next_body
            while time.perf_counter() < stop_at:
                body = bodies[next_body % len(bodies)]
                next_body += 1
                began = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                ok = response.status == 200
                (latencies if ok else failed).append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed = time.perf_counter() - started
    codes = {"HTTP error": len(failed)} if failed else {}
    return summarize(latencies, failed, codes, elapsed, 1)


def tei_bodies(texts: Sequence[str], count: int = 4096) -> list[bytes]:
    return [json.dumps({"inputs": texts[index % len(texts)]}).encode() for index in range(count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--callers", type=int, default=16)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-protocols-"))
    artifact = tiny_artifact(workdir)
    texts = short_sentences(2048)
    http_port = free_port()
    server, target = start_server(
        artifact, workdir, "--intra-op-threads", "1", "--model-name", MODEL,
        "--http-port", str(http_port),
    )  # fmt: skip
    url = f"http://127.0.0.1:{http_port}/v1/embeddings"
    tei_url = f"http://127.0.0.1:{http_port}/embed"
    v1, infer, bodies = encode_requests(texts, 1), oip_requests(texts), openai_bodies(texts)
    tei = tei_bodies(texts)
    embed = tei_requests(texts)
    loads: dict[str, Callable[[int, float], LoadResult]] = {
        "attnserve.v1 (gRPC)": lambda n, s: run_closed_loop(target, v1, 1, n, s),
        "OIP (gRPC)": lambda n, s: run_closed_loop(target, infer, 1, n, s, method=MODEL_INFER),
        "tei.v1 (gRPC)": lambda n, s: run_closed_loop(target, embed, 1, n, s, method=TEI_EMBED),
        "OpenAI (HTTP)": lambda n, s: asyncio.run(http_closed_loop(url, bodies, n, s)),
        "TEI /embed (HTTP)": lambda n, s: asyncio.run(http_closed_loop(tei_url, tei, n, s)),
    }
    totals = {name: [0.0, 0.0] for name in loads}  # server CPU s, requests
    lone: dict[str, list[float]] = {name: [] for name in loads}
    print(f"machine: {machine_line()}")
    print(f"single-text requests; {args.callers} closed-loop callers, {args.seconds:.0f} s a row\n")
    print("| round | protocol | req/s | server CPU/req | lone caller p50 |")
    print("|---|---|---|---|---|")
    try:
        for load in loads.values():  # warm every path, not counted
            result = load(args.callers, 1.0)
            assert result.errors == 0, result.codes
        for round_number in range(args.rounds):
            names = list(loads)
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                before = cpu_seconds(server.pid)
                result = loads[name](args.callers, args.seconds)
                used = cpu_seconds(server.pid) - before
                assert result.errors == 0, result.codes
                requests = result.requests_per_s * args.seconds
                totals[name][0] += used
                totals[name][1] += requests
                single = loads[name](1, min(args.seconds, 2.0))
                lone[name].append(single.p50_ms)
                print(
                    f"| {round_number + 1} | {name} | {result.requests_per_s:.0f} | "
                    f"{used / requests * 1e6:.0f} us | {single.p50_ms:.2f} ms |",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=60)
    print()
    baseline = totals["attnserve.v1 (gRPC)"][0] / totals["attnserve.v1 (gRPC)"][1]
    for name, (used, requests) in totals.items():
        cost = used / requests
        print(
            f"{name}: server CPU {cost * 1e6:.0f} us/request "
            f"({cost / baseline:.2f}x attnserve.v1), "
            f"lone caller p50 {statistics.median(lone[name]):.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
