"""Several models in one server: does a flood on model A starve model B? And what does each
model cost in memory?

    python bench/models.py --artifact DIR [--seconds 8] [--flood-callers 16]

One server serves the artifact twice, as `a` and `b` (two engines, two batchers, each with
its own share of the cores: docs/architecture.md, "Several models"). A lone caller sends
one-text requests back to back, and its p50 is measured three ways, side by side in one run:
idle (nothing else running), while `--flood-callers` callers saturate model `a` with 32-text
requests (the lone caller asks `b`: the isolation measured), and, as the control, while the
same flood runs and the lone caller asks `a` itself (what sharing one queue would cost). The
target: the lone caller of `b` within 2x of its idle p50.

Memory: the server's RSS once SERVING with one model, and with two (the same artifact under
two names), read from /proc; the difference is one model's engine, tokenizer and arenas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.corpus import mixed_lengths
from attnserve.v1 import embedder_pb2 as pb
from bench.common import machine_line
from bench.load import LoadResult, closed_loop

SHORT = "a lone caller's short question about the weather"


def start(artifacts: list[str], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir / f"port-{len(list(workdir.glob('port-*')))}"
    flags = [flag for artifact in artifacts for flag in ("--artifact", artifact)]
    process = subprocess.Popen(
        [
            sys.executable, "-m", "attnserve.service.cli", "serve", *flags,
            "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--port-file", str(port_file), "--log-level", "warning",
        ]
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.2)
    return process, f"127.0.0.1:{port_file.read_text().strip()}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def requests_for(model: str, texts: list[str], per_request: int, count: int) -> list[bytes]:
    out = []
    for index in range(count):
        chunk = [texts[(index * per_request + i) % len(texts)] for i in range(per_request)]
        out.append(pb.EmbedRequest(texts=chunk, model=model).SerializeToString())
    return out


async def lone_with_flood(
    target: str, lone_model: str, flood_callers: int, seconds: float
) -> tuple[LoadResult, LoadResult | None]:
    lone = [pb.EmbedRequest(texts=[SHORT], model=lone_model).SerializeToString()]
    if flood_callers == 0:
        return await closed_loop(target, lone, 1, 1, seconds, channels=1), None
    flood = requests_for("a", mixed_lengths(4096), 32, 256)
    lone_result, flood_result = await asyncio.gather(
        closed_loop(target, lone, 1, 1, seconds, channels=1),
        closed_loop(target, flood, 32, flood_callers, seconds),
    )
    return lone_result, flood_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--flood-callers", type=int, default=16)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-models-"))
    report: dict[str, object] = {"machine": machine_line()}

    one, _ = start([f"a={args.artifact}"], workdir)
    try:
        rss_one = rss_mib(one.pid)
    finally:
        one.terminate()
        one.wait(timeout=60)

    process, target = start([f"a={args.artifact}", f"b={args.artifact}"], workdir)
    try:
        rss_two = rss_mib(process.pid)
        asyncio.run(lone_with_flood(target, "b", 0, 2.0))  # warm the path, not counted
        runs = {
            "b idle": ("b", 0),
            "b while a is flooded": ("b", args.flood_callers),
            "a while a is flooded (control: one queue)": ("a", args.flood_callers),
        }
        results = {}
        for name, (model, callers) in runs.items():
            lone, flood = asyncio.run(lone_with_flood(target, model, callers, args.seconds))
            results[name] = {
                "lone_p50_ms": round(lone.p50_ms, 2),
                "lone_p99_ms": round(lone.p99_ms, 2),
                "lone_calls": round(lone.requests_per_s * args.seconds),
                "flood_texts_per_s": round(flood.texts_per_s, 1) if flood else 0.0,
                "errors": lone.errors + (flood.errors if flood else 0),
            }
        report["runs"] = results
    finally:
        process.terminate()
        process.wait(timeout=60)
    idle = results["b idle"]["lone_p50_ms"]
    flooded = results["b while a is flooded"]["lone_p50_ms"]
    control = results["a while a is flooded (control: one queue)"]["lone_p50_ms"]
    report["b_flooded_over_idle_p50"] = round(flooded / idle, 2)
    report["control_a_flooded_over_idle_p50"] = round(control / idle, 2)
    report["rss_mib"] = {
        "one model": round(rss_one, 1),
        "two models": round(rss_two, 1),
        "the second model": round(rss_two - rss_one, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
