"""Serving benchmark: the gRPC server against the raw ONNX Runtime session it wraps, same texts.

    python bench/serve.py [--artifact DIR] [--corpus mixed|short|varied|FILE]
                          [--precision fp32 int8] [--duration 6] [--server-arg=--flag=value ...]

For each precision, in one run on one machine:
(a) the ceiling: raw in-process ONNX Runtime on the same texts with the server's own session
    settings, tokenised per batch as the server does, in length-sorted batches of 4, 8, 16 and
    32 (the best is the ceiling; measured before and after the served rows, and averaged, so a
    drifting machine shows); arrival order at batch 32 for reference; the batch-1 call's median
    latency on the corpus' texts;
(b) the server in its own process (default settings unless `--server-arg` says otherwise),
    loaded by a lean asyncio client in this process (`bench/load.py`): one caller with one text
    (a lone request), 64 callers with one text each, 16 callers with 32 texts each.
Ratios are printed against (a); the served rows' ratios to the fp32 rows when int8 is measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
from tokenizers import Tokenizer

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.artifact import Manifest, verify
from attnserve.service.corpus import load_texts
from attnserve.service.padding import pad
from attnserve.service.sessions import open_session
from bench.common import machine_line
from bench.load import LoadResult, encode_requests, run_closed_loop

SORTED_BATCHES = (4, 8, 16, 32)
LOADS = (("lone request: 1 caller x 1 text", 1, 1), ("64 callers x 1 text", 64, 1),
         ("16 callers x 32 texts", 16, 32))  # fmt: skip


@dataclass(frozen=True)
class Ceiling:
    sorted_rates: dict[int, float]  # batch size -> texts/s, length-sorted
    arrival_32: float  # texts/s, arrival order, batch 32
    batch1_ms: float  # median latency of one batch-1 call (tokenisation included)

    @property
    def best(self) -> float:
        return max(self.sorted_rates.values())


def tokenizer_for(artifact: Path, manifest: Manifest) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(artifact / manifest.tokenizer.file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(manifest.tokenizer.default_max_tokens)
    return tokenizer


def run_batch(
    session: ort.InferenceSession, tokenizer: Tokenizer, texts: Sequence[str], pad_id: int
) -> None:
    encodings = tokenizer.encode_batch(list(texts))
    feeds = pad([e.ids for e in encodings], [e.type_ids for e in encodings], pad_id).feeds()
    session.run(["pooled"], feeds)


def one_pass(
    session: ort.InferenceSession,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    batch: int,
    pad_id: int,
) -> tuple[float, float]:
    """Texts/s over one pass of `texts` in consecutive batches, and the median call in ms."""
    calls = []
    for start in range(0, len(texts), batch):
        began = time.perf_counter()
        run_batch(session, tokenizer, texts[start : start + batch], pad_id)
        calls.append(time.perf_counter() - began)
    return len(texts) / sum(calls), statistics.median(calls) * 1000


def measure_ceiling(
    session: ort.InferenceSession, tokenizer: Tokenizer, sample: list[str], pad_id: int
) -> Ceiling:
    """One whole pass over the sample per configuration: every length is counted."""
    run_batch(session, tokenizer, sample[:8], pad_id)  # warm-up
    lengths = [len(e.ids) for e in tokenizer.encode_batch(sample)]
    by_length = [text for _, text in sorted(zip(lengths, sample, strict=True))]
    sorted_rates = {
        batch: one_pass(session, tokenizer, by_length, batch, pad_id)[0] for batch in SORTED_BATCHES
    }
    arrival, _ = one_pass(session, tokenizer, sample, 32, pad_id)
    _, batch1_ms = one_pass(session, tokenizer, sample[:64], 1, pad_id)
    return Ceiling(sorted_rates, arrival, batch1_ms)


def build_default_artifact(workdir: Path) -> Path:
    """The packaged model exported into WORKDIR (needs the export extra)."""
    from attnserve.export.artifact import build_artifact

    artifact = workdir / "artifact"
    build_artifact(artifact)
    return artifact


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


def served(
    artifact: Path, workdir: Path, texts: list[str], seconds: float, extra: Sequence[str]
) -> dict[str, LoadResult]:
    process, target = start_server(artifact, workdir, *extra)
    results = {}
    try:
        warm = encode_requests(texts, 1, 256)
        run_closed_loop(target, warm, 1, 16, 2.0)  # warm-up, not counted
        for name, callers, per_request in LOADS:
            requests = encode_requests(texts, per_request)
            results[name] = run_closed_loop(target, requests, per_request, callers, seconds)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--corpus", default="mixed", help="a named mix or a file")
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per served load")
    parser.add_argument("--sample", type=int, default=320, help="texts in the raw ceiling's pass")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra `attnserve serve` argument"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-serve-bench-"))
    artifact = args.artifact or build_default_artifact(workdir)
    manifest = verify(artifact)
    texts = load_texts(args.corpus)
    tokenizer = tokenizer_for(artifact, manifest)
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    pad_id = manifest.tokenizer.pad_token_id
    # The ceiling runs whole passes over a fixed sample (every length counted once); the served
    # loads draw from the whole corpus in its own (random) order.
    sample = texts[:: max(1, len(texts) // args.sample)][: args.sample]
    spinning = "--spin-wait=false" not in args.server_arg

    print(f"machine: {machine_line()}")
    print(
        f"texts: {args.corpus}, {len(texts)} texts, {statistics.mean(lengths):.1f} tokens on "
        f"average, max {max(lengths)}; server args: {' '.join(args.server_arg) or '(defaults)'}\n"
    )
    served_rates: dict[str, dict[str, LoadResult]] = {}
    for precision in args.precision:
        graph = manifest.graph("fast", precision)
        assert graph is not None, f"no fast {precision} graph in the artifact"
        session = open_session(
            artifact / graph.file, threads=os.cpu_count() or 1, spinning=spinning
        )
        before = measure_ceiling(session, tokenizer, sample, pad_id)
        del session  # its threads must not compete with the server's
        extra = ["--precision", precision, *args.server_arg]
        rows = served(artifact, workdir, texts, args.duration, extra)
        session = open_session(
            artifact / graph.file, threads=os.cpu_count() or 1, spinning=spinning
        )
        after = measure_ceiling(session, tokenizer, sample, pad_id)
        del session
        served_rates[precision] = rows
        report(precision, before, after, rows)
    if "fp32" in served_rates and "int8" in served_rates:
        print("int8 served / fp32 served:")
        for name, _, _ in LOADS:
            fp32, int8 = served_rates["fp32"][name], served_rates["int8"][name]
            print(f"- {name}: {int8.texts_per_s / fp32.texts_per_s:.2f}x")
    return 0


def report(precision: str, before: Ceiling, after: Ceiling, rows: dict[str, LoadResult]) -> None:
    ceiling = (before.best + after.best) / 2
    batch1_ms = (before.batch1_ms + after.batch1_ms) / 2
    print(f"### {precision}\n")
    sorted_cells = ", ".join(
        f"{b}: {(before.sorted_rates[b] + after.sorted_rates[b]) / 2:.0f}" for b in SORTED_BATCHES
    )
    print(
        f"raw ONNX Runtime, length-sorted (texts/s by batch size) {sorted_cells}; ceiling "
        f"{ceiling:.0f} (before {before.best:.0f}, after {after.best:.0f}); arrival order "
        f"batch 32: {(before.arrival_32 + after.arrival_32) / 2:.0f}; batch-1 call "
        f"{batch1_ms:.2f} ms\n"
    )
    print("| load | texts/s | x ceiling | p50 | p99 | errors |")
    print("|---|---|---|---|---|---|")
    for name, result in rows.items():
        print(
            f"| {name} | {result.texts_per_s:.0f} | {result.texts_per_s / ceiling:.2f} | "
            f"{result.p50_ms:.2f} ms | {result.p99_ms:.2f} ms | {result.errors} |"
        )
    lone = rows[LOADS[0][0]]
    print(
        f"\nlone request p50 {lone.p50_ms:.2f} ms vs the raw batch-1 call {batch1_ms:.2f} ms: "
        f"{lone.p50_ms - batch1_ms:+.2f} ms\n",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
