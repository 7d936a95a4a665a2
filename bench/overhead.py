"""What the server costs per request and per text, beside a bare gRPC server (the floor).

    python bench/overhead.py [--rounds 4] [--seconds 4] [--callers 16] [--thread-floor]
                             [--profile SECONDS]

Servers run side by side in their own processes, loaded in turn (order flipped every round)
by the lean client of `bench/load.py`:
(a) the floor: a bare `grpc.aio` server with the `attnserve.v1.Embedder` service that parses each
    request and answers a response of the same shape (a float32 (n, H) `pooled` tensor and one
    result per text) with no tokenisation and no inference; with `--thread-floor`, beside it the
    same service on gRPC's thread-based `grpc.server` (16 worker threads), to see what the
    front end alone would cost were attnserve's gRPC side not on asyncio;
(b) attnserve with default settings but one intra-op thread, serving a tiny random encoder
    (1 layer, hidden 32, the packaged model's tokenizer), so inference costs next to nothing and
    what remains is the request path (with a model this small ONNX Runtime's thread pool has
    nothing to share out; its idle workers would only add their spinning to the figure).
The figure is the server process's own CPU time (user + system, all threads, from /proc) per
request, for single-text requests and per text for 32-text requests, as a ratio to the floor.
CPU time, not wall time: the client shares these cores, and CPU seconds are what a request
costs the machine. `--profile SECONDS` then samples the attnserve server with py-spy under the
single-text load and prints where its time goes (bench/request_profile.py). Needs the export
extra (torch) to build the tiny artifact.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
import numpy as np
from grpc import aio

from attnserve.service import wire
from attnserve.service.corpus import short_sentences
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from bench import request_profile
from bench.common import machine_line
from bench.load import LoadResult, encode_requests, run_closed_loop
from bench.serve import start_server

HIDDEN = 32
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def floor_response(request: pb.EmbedRequest) -> pb.EmbedResponse:
    """Same message shapes as attnserve, no work: the cost of gRPC and protobuf alone."""
    texts = len(request.texts)
    pooled = wire.encode(np.zeros((texts, HIDDEN), dtype=np.float32))
    response = pb.EmbedResponse(model="floor", pooled=pooled)
    for _ in range(texts):
        response.results.add(token_count=1)
    return response


class FloorService(embedder_pb2_grpc.EmbedderServicer):
    async def Embed(self, request: pb.EmbedRequest, context: object) -> pb.EmbedResponse:  # noqa: N802
        return floor_response(request)


class ThreadFloorService(embedder_pb2_grpc.EmbedderServicer):
    def Embed(self, request: pb.EmbedRequest, context: object) -> pb.EmbedResponse:  # noqa: N802
        return floor_response(request)


async def serve_floor(port_file: Path) -> None:
    server = aio.server()
    embedder_pb2_grpc.add_EmbedderServicer_to_server(FloorService(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(f"{port}\n")
    await server.wait_for_termination()


def serve_thread_floor(port_file: Path) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    embedder_pb2_grpc.add_EmbedderServicer_to_server(ThreadFloorService(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(f"{port}\n")
    server.wait_for_termination()


def start_floor(workdir: Path, kind: str = "aio") -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir / f"floor-port-{kind}"
    flag = "--floor-server" if kind == "aio" else "--thread-floor-server"
    process = subprocess.Popen([sys.executable, __file__, flag, str(port_file)])
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the floor server did not start")
        time.sleep(0.1)
    return process, f"127.0.0.1:{port_file.read_text().strip()}"


def tiny_artifact(workdir: Path) -> Path:
    """A 1-layer random encoder with the packaged model's vocabulary and tokenizer."""
    import json

    import torch
    from safetensors.torch import save_file

    from attnserve.export.artifact import build_artifact
    from attnserve.model import Encoder, EncoderConfig
    from attnserve.model.checkpoint import default_checkpoint_dir
    from attnserve.model.families import weight_map

    config = EncoderConfig(
        hidden_size=HIDDEN, num_layers=1, num_heads=2, intermediate_size=64, normalize=True
    )
    torch.manual_seed(0)
    encoder = Encoder(config)
    params = dict(encoder.named_parameters())
    checkpoint = workdir / "tiny-checkpoint"
    checkpoint.mkdir()
    tensors = {theirs: params[ours].detach().clone() for theirs, ours in weight_map(config).items()}
    save_file(tensors, str(checkpoint / "model.safetensors"))
    (checkpoint / "config.json").write_text(
        json.dumps(
            {
                "model_type": "bert",
                "vocab_size": config.vocab_size,
                "hidden_size": config.hidden_size,
                "num_hidden_layers": config.num_layers,
                "num_attention_heads": config.num_heads,
                "intermediate_size": config.intermediate_size,
                "max_position_embeddings": config.max_positions,
            }
        )
    )
    source = default_checkpoint_dir() / "tokenizer.json"
    (checkpoint / "tokenizer.json").write_bytes(source.read_bytes())
    out = workdir / "tiny-artifact"
    build_artifact(out, checkpoint, int8=False, fp16=False)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def measured(
    pid: int, target: str, requests: list[bytes], per_request: int, callers: int, seconds: float
) -> tuple[float, LoadResult]:
    """Server CPU seconds per request over one closed-loop load, and the load's figures."""
    before = cpu_seconds(pid)
    result = run_closed_loop(target, requests, per_request, callers, seconds)
    used = cpu_seconds(pid) - before
    return used / max(result.requests_per_s * seconds, 1.0), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--thread-floor", action="store_true", help="also a grpc.server floor")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds, after")
    parser.add_argument("--floor-server", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--thread-floor-server", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--server-arg", action="append", default=[])
    args = parser.parse_args()
    if args.floor_server is not None:
        asyncio.run(serve_floor(args.floor_server))
        return 0
    if args.thread_floor_server is not None:
        serve_thread_floor(args.thread_floor_server)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-overhead-"))
    artifact = tiny_artifact(workdir)
    texts = short_sentences(2048)
    shapes = {1: encode_requests(texts, 1), 32: encode_requests(texts, 32, 512)}
    processes = []
    servers: dict[str, tuple[int, str]] = {}
    for kind, name in (("aio", "floor"), ("thread", "thread floor")):
        if kind == "thread" and not args.thread_floor:
            continue
        process, target = start_floor(workdir, kind)
        processes.append(process)
        servers[name] = (process.pid, target)
    server, server_target = start_server(
        artifact, workdir, "--intra-op-threads", "1", *args.server_arg
    )
    processes.append(server)
    servers["attnserve"] = (server.pid, server_target)
    totals = {(name, n): [0.0, 0.0] for name in servers for n in shapes}  # cpu s, requests
    print(f"machine: {machine_line()}")
    print(f"{args.callers} closed-loop callers, {args.seconds:.0f} s per row, short sentences\n")
    print("| round | texts/request | " + " | ".join(f"{n} req/s" for n in servers) + " | "
          + " | ".join(f"{n} CPU/req" for n in servers) + " | attnserve / floor |")  # fmt: skip
    print("|---" * (3 + 2 * len(servers)) + "|")
    try:
        for _pid, target in servers.values():  # warm every server, not counted
            run_closed_loop(target, shapes[1], 1, args.callers, 1.0)
        for round_number in range(args.rounds):
            for per_request, requests in shapes.items():
                order = list(servers) if round_number % 2 == 0 else list(reversed(servers))
                row = {}
                for name in order:
                    pid, target = servers[name]
                    cost, result = measured(
                        pid, target, requests, per_request, args.callers, args.seconds
                    )
                    row[name] = (cost, result)
                    totals[(name, per_request)][0] += cost * result.requests_per_s * args.seconds
                    totals[(name, per_request)][1] += result.requests_per_s * args.seconds
                rates = " | ".join(f"{row[n][1].requests_per_s:.0f}" for n in servers)
                costs = " | ".join(f"{row[n][0] * 1e6:.0f} us" for n in servers)
                ratio = row["attnserve"][0] / row["floor"][0]
                print(f"| {round_number + 1} | {per_request} | {rates} | {costs} | {ratio:.2f}x |",
                      flush=True)  # fmt: skip
        if args.profile > 0:
            profiled = Path(workdir) / "profile.txt"
            load = threading.Thread(
                target=run_closed_loop,
                args=(server_target, shapes[1], 1, args.callers, args.profile + 2.0),
            )
            load.start()
            time.sleep(1.0)  # the load under way before sampling starts
            request_profile.record(server.pid, args.profile, profiled)
            load.join()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
    print()
    for per_request in shapes if args.rounds > 0 else ():
        unit = "request" if per_request == 1 else f"text ({per_request}-text requests)"
        per_server = {n: totals[(n, per_request)][0] / totals[(n, per_request)][1] for n in servers}
        each = ", ".join(f"{n} {c / per_request * 1e6:.1f} us" for n, c in per_server.items())
        ratio = per_server["attnserve"] / per_server["floor"]
        print(f"server CPU per {unit}: {each}: attnserve {ratio:.2f}x the floor")
    if args.profile > 0:
        print(
            f"\nattnserve under {args.callers} single-text callers, py-spy {args.profile:.0f} s:\n"
        )
        print(request_profile.summary(request_profile.read(profiled)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
