"""Chunked embeddings, measured: how close the chunked vector stays to the full-context one, and
what each costs per document as documents grow.

    python bench/long_inputs.py [--quick] [--only packaged|long] [--packaged-artifact DIR]

Two models, each served by a real attnserve server on loopback and asked over gRPC (the
chunking measured is the server's own, EmbedOptions.chunking):

- the packaged all-MiniLM-L6-v2 (512 positions; trained weights);
- a random DistilBERT checkpoint of MiniLM's layer shape (6 x 384, 12 heads) with 2048
  positions, built by tests/support/encoder_families.py with a small trained WordPiece
  vocabulary and exported without int8 (its weights are random: its cosines say how much
  context the windows lose on a model that uses positions, not what retrieval would lose).

Quality: on documents that fit the cap, the cosine between the full-context vector (one window
of the whole document) and the chunked vector, for several window sizes and overlaps.
Cost: the median time to embed one document (one request, paired and interleaved rounds,
bench/common.py) against its length, full context against chunked windows; attention's T^2
term makes the full run grow faster than linearly, the windows linearly.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from functools import partial
from pathlib import Path

import grpc
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.export.artifact import build_artifact
from attnserve.service import wire
from attnserve.service.corpus import sentence
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc as pb_grpc
from bench.common import machine_line, paired_medians
from tests.support.encoder_families import (
    EncoderShape,
    build_encoder_checkpoint,
    build_tokenizer,
)
from tests.support.servers import ServerThread, server_settings

LONG_SHAPE = EncoderShape(
    "distilbert", "wordpiece", 384, 6, 12, 2048, 2048, "mean", True, intermediate_size=1536
)


class Embedder:
    """One served model over gRPC: pooled vectors and exact-length documents."""

    def __init__(self, server: ServerThread) -> None:
        self.channel = grpc.insecure_channel(server.target)
        self.stub = pb_grpc.EmbedderStub(self.channel)  # type: ignore[no-untyped-call]

    def embed(self, text: str, **options: object) -> tuple[np.ndarray, pb.TextResult]:
        request = pb.EmbedRequest(texts=[text], options=pb.EmbedOptions(**options))  # type: ignore[arg-type]
        response = self.stub.Embed(request, timeout=600)
        return np.asarray(wire.decode(response.pooled))[0], response.results[0]

    def document(self, seed: int, tokens: int, cap: int) -> str:
        """A text of about `tokens` tokens (special tokens included; at most the `cap`):
        sentences from the corpus' generator, cut at a token's end."""
        rng = random.Random(seed)
        text = ""
        while len(text) < tokens * 8:  # more tokens than needed, whatever the vocabulary
            text += sentence(rng) + " "
        answer = self.stub.Tokenize(pb.TokenizeRequest(texts=[text], max_tokens=cap))
        return text[: answer.texts[0].tokens[tokens - 2].end]

    def close(self) -> None:
        self.channel.close()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def quality(
    embedder: Embedder, length: int, cap: int, windows: tuple[int, ...], documents: int
) -> list[str]:
    texts = [embedder.document(seed, length, cap) for seed in range(documents)]
    full = [embedder.embed(text, max_tokens=length, chunking=False) for text in texts]
    rows = []
    for window in (window for window in windows if window < length):
        for overlap in (0, window // 4):
            cosines, counts = [], []
            for text, (vector, _) in zip(texts, full, strict=True):
                chunked, result = embedder.embed(
                    text, max_tokens=window, chunking=True, chunk_overlap=overlap
                )
                cosines.append(cosine(vector, chunked))
                counts.append(result.windows)
            tokens = int(np.mean([result.token_count for _, result in full]))
            rows.append(
                f"| {tokens} | {window} | {overlap} | {np.mean(counts):.1f} | "
                f"{np.mean(cosines):.4f} | {np.min(cosines):.4f} |"
            )
    return rows


def cost(
    embedder: Embedder, lengths: tuple[int, ...], window: int, overlap: int, cap: int
) -> list[str]:
    rows = []
    for length in lengths:
        text = embedder.document(100 + length, length, cap)
        tokens = embedder.embed(text, max_tokens=length, chunking=False)[1].token_count
        windows = embedder.embed(text, max_tokens=window, chunking=True, chunk_overlap=overlap)[1]
        full = partial(embedder.embed, text, max_tokens=length, chunking=False)
        chunked = partial(
            embedder.embed, text, max_tokens=window, chunking=True, chunk_overlap=overlap
        )
        medians = paired_medians({"full": full, "chunked": chunked}, budget_s=4.0)
        full_ms, chunked_ms = medians["full"] * 1000, medians["chunked"] * 1000
        rows.append(
            f"| {tokens} | {full_ms:.1f} | {full_ms / tokens * 1000:.0f} | {windows.windows} x "
            f"{window} ({windows.window_tokens} tokens) | {chunked_ms:.1f} | "
            f"{chunked_ms / full_ms:.2f} |"
        )
    return rows


QUALITY_HEAD = [
    "| document tokens | window | overlap | windows (mean) | cosine to full (mean) | min |",
    "|---|---|---|---|---|---|",
]
COST_HEAD = [
    "| document tokens | full ms | full µs/token | chunked windows | chunked ms | chunked / full |",
    "|---|---|---|---|---|---|",
]


def measure(name: str, artifact: Path, cap: int, windows: tuple[int, ...],
            lengths: tuple[int, ...], cost_window: int, documents: int,
            quality_lengths: tuple[int, ...]) -> None:  # fmt: skip
    # Warm-up off: the cost model's fit over a 2048-position model takes minutes on 2 cores, and
    # one document per request needs no batching policy; the paired rounds warm each shape.
    server = ServerThread(server_settings(artifact, warmup=False, max_document_tokens=cap * 4))
    embedder = Embedder(server)
    try:
        print(f"\n### {name}: quality (documents within the {cap}-token cap)\n")
        rows = []
        for length in quality_lengths:
            rows += quality(embedder, length, cap, windows, documents)
        print("\n".join([*QUALITY_HEAD, *rows]), flush=True)
        print(f"\n### {name}: cost per document (chunked: windows of {cost_window})\n")
        overlap = cost_window // 8
        rows = cost(embedder, lengths, cost_window, overlap, cap)
        print(f"(overlap {overlap})\n")
        print("\n".join([*COST_HEAD, *rows]), flush=True)
    finally:
        embedder.close()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer documents and lengths")
    parser.add_argument("--only", choices=("packaged", "long"), default=None, help="one model")
    parser.add_argument(
        "--packaged-artifact", type=Path, default=None, help="an export of the packaged model"
    )
    args = parser.parse_args()
    documents = 3 if args.quick else 8
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-long-inputs-"))
    print(f"machine: {machine_line()}")
    if args.only != "long":
        packaged = args.packaged_artifact or workdir / "all-MiniLM-L6-v2"
        if args.packaged_artifact is None:
            build_artifact(packaged, int8=False, fp16=False)
        measure("all-MiniLM-L6-v2", packaged, 512, (64, 128, 256), (128, 256, 512), 128,
                documents, (256, 512))  # fmt: skip
    if args.only == "packaged":
        return 0
    tokenizer = build_tokenizer("wordpiece", workdir / "wordpiece.json")
    checkpoint = build_encoder_checkpoint(workdir / "distilbert-2048", LONG_SHAPE, tokenizer)
    long_artifact = workdir / "distilbert-2048-artifact"
    build_artifact(long_artifact, checkpoint, int8=False, fp16=False)
    lengths = (256, 512, 1024) if args.quick else (256, 512, 1024, 2048)
    measure("random DistilBERT, 2048 positions", long_artifact, 2048, (128, 256, 512),
            lengths, 256, documents, (2048,))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
