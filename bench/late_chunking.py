"""Late chunking against embedding each chunk alone: how far context moves the vectors, and what
one whole-document run costs against many short ones, per document length.

    python bench/late_chunking.py [--artifact PACKAGED_ARTIFACT] [--quick]

Two models, each served alone by `attnserve serve` (a child process, default settings):

- the packaged all-MiniLM-L6-v2 (512 positions; documents up to 500 tokens, `max_tokens` 512);
- a random ModernBERT built here with transformers' own class and a `tokenizers` byte-level BPE
  (tests/support/mpnet_modernbert_checkpoints.py; 4 layers x 256, 4 heads, a 128-token window
  on 3 layers of 4, mean pooling, normalised), its `max_position_embeddings` raised to 2048 in
  config.json (rotary positions: no table to grow), exported with `attnserve export`'s code.

Documents are sentences of the corpus' generator (service/corpus.py) joined with spaces.

Quality: per chunking (each sentence a span; every N tokens), the cosine between each chunk's
late vector (EmbedChunks) and the same characters embedded alone (Embed), and each one's cosine
to the whole document's pooled vector. Random weights say how much context moves a vector in
that architecture, not whether retrieval improves.

Cost: per document length, paired medians (bench/common.py) of one request each: EmbedChunks
every 32 tokens (one run of the document + pooling), Embed of the document alone (the same run,
one vector: what pooling adds), and Embed of the 32-token chunks as separate texts in one
request (many short runs: attention's n^2 paid per chunk).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from attnserve.service.client.client import EmbedderClient
from attnserve.service.corpus import sentence
from bench.common import machine_line, paired_medians
from bench.serve import start_server

CHUNK_TOKENS = 32


def count_tokens(client: EmbedderClient, text: str) -> int:
    """The text's tokens (special ones included), up to the server's cap."""
    cap = client.info().limits.max_tokens_per_text
    return len(client.tokenize([text], max_tokens=cap)[0])


def make_document(
    rng: random.Random, tokens: int, client: EmbedderClient
) -> tuple[str, list[tuple[int, int]]]:
    """Sentences joined until about `tokens` tokens; and each sentence's span."""
    text, spans = "", list[tuple[int, int]]()
    while True:
        piece = sentence(rng)
        start = len(text) + (1 if text else 0)
        candidate = f"{text} {piece}" if text else piece
        if spans and count_tokens(client, candidate) > tokens:
            return text, spans
        text = candidate
        spans.append((start, start + len(piece)))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.asarray((a * b).sum(-1))


def quality(client: EmbedderClient, label: str, lengths: list[int], max_tokens: int) -> list[str]:
    rng = random.Random(11)
    rows: list[str] = []
    documents = [make_document(rng, length, client) for length in lengths]
    for name, every in (("sentences", 0), *((f"every {n} tokens", n) for n in (16, 64, 128))):
        late_all: list[np.ndarray] = []
        late_doc: list[np.ndarray] = []
        alone_doc: list[np.ndarray] = []
        for text, sentence_spans in documents:
            (chunked,) = client.embed_chunks(
                [text],
                spans=[] if every else [sentence_spans],
                tokens_per_chunk=every,
                max_tokens=max_tokens,
            )
            late = np.stack([c.vector for c in chunked.chunks if c.vector is not None])
            pieces = [text[c.start : c.end] for c in chunked.chunks]
            alone = client.embed(pieces, max_tokens=max_tokens).pooled
            whole = client.embed([text], max_tokens=max_tokens).pooled
            assert alone is not None
            assert whole is not None
            late_all.append(cosines(late, alone))
            late_doc.append(cosines(late, whole))
            alone_doc.append(cosines(alone, whole))
        between = np.concatenate(late_all)
        rows.append(
            f"| {label} | {name} | {between.size} | {between.mean():.3f} | {between.min():.3f} | "
            f"{np.concatenate(late_doc).mean():.3f} | {np.concatenate(alone_doc).mean():.3f} |"
        )
    return rows


def cost(client: EmbedderClient, label: str, lengths: list[int], max_tokens: int) -> list[str]:
    rng = random.Random(5)
    rows = []
    for length in lengths:
        text, _ = make_document(rng, length, client)
        medians = paired_medians(timed_paths(client, text, max_tokens), min_rounds=5, budget_s=4.0)
        late, whole, alone = (medians[k] * 1000 for k in ("late", "whole", "alone"))
        tokens = count_tokens(client, text)
        chunks = -(-(tokens - 2) // CHUNK_TOKENS)
        rows.append(
            f"| {label} | {tokens} | {chunks} | {late:.1f} | {whole:.1f} | "
            f"{alone:.1f} | {alone / late:.2f}x |"
        )
    return rows


def timed_paths(
    client: EmbedderClient, text: str, max_tokens: int
) -> dict[str, Callable[[], object]]:
    (chunked,) = client.embed_chunks([text], tokens_per_chunk=CHUNK_TOKENS, max_tokens=max_tokens)
    pieces = [text[c.start : c.end] for c in chunked.chunks]
    return {
        "late": lambda: client.embed_chunks(
            [text], tokens_per_chunk=CHUNK_TOKENS, max_tokens=max_tokens
        ),
        "whole": lambda: client.embed([text], max_tokens=max_tokens),
        "alone": lambda: client.embed(pieces, max_tokens=max_tokens),
    }


def modernbert_artifact(workdir: Path) -> Path:
    from attnserve.export.artifact import build_artifact
    from tests.support.mpnet_modernbert_checkpoints import (
        ModernBertShape,
        build_bpe_tokenizer,
        build_modernbert_checkpoint,
    )

    shape = ModernBertShape(
        256, 4, 4, 4, 128, masked_lm=False, biases=False, published_config=False,
        pooling="mean", normalize=True, max_seq_length=2048,
    )  # fmt: skip
    tokenizer = build_bpe_tokenizer(workdir / "bpe.json")
    checkpoint = build_modernbert_checkpoint(workdir / "modernbert", shape, tokenizer)
    config = json.loads((checkpoint / "config.json").read_text())
    config["max_position_embeddings"] = 2048
    (checkpoint / "config.json").write_text(json.dumps(config, indent=2))
    out = workdir / "modernbert-artifact"
    build_artifact(out, checkpoint, int8=False, fp16=False)
    return out


def packaged_artifact(workdir: Path) -> Path:
    from attnserve.export.artifact import build_artifact

    out = workdir / "all-MiniLM-L6-v2"
    build_artifact(out, int8=False, fp16=False)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, default=None, help="the packaged model's")
    parser.add_argument("--quick", action="store_true", help="fewer lengths")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-late-chunking-"))
    print(f"machine: {machine_line()}\n", flush=True)
    models = [
        ("all-MiniLM-L6-v2", args.artifact or packaged_artifact(workdir), 512,
         [120, 250, 500], [64, 128, 256, 512]),
        ("ModernBERT (random, 2048)", modernbert_artifact(workdir), 2048,
         [500, 1000, 2000], [128, 256, 512, 1024, 2048]),
    ]  # fmt: skip
    quality_rows, cost_rows = [], []
    for label, artifact, max_tokens, quality_lengths, cost_lengths in models:
        if args.quick:
            quality_lengths, cost_lengths = quality_lengths[-1:], cost_lengths[::2]
        process, target = start_server(artifact, workdir)
        try:
            with EmbedderClient(target, timeout_s=300) as client:
                quality_rows += quality(client, label, quality_lengths, max_tokens)
                print("\n".join(quality_rows[-4:]), flush=True)
                cost_rows += cost(client, label, cost_lengths, max_tokens)
                print("\n".join(cost_rows[-len(cost_lengths) :]), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
    print("\n| model | chunks | chunks measured | cosine late vs alone: mean | min | "
          "late to whole doc | alone to whole doc |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(quality_rows))
    print(f"\n| model | document tokens | chunks of {CHUNK_TOKENS} | late chunking ms | "
          "whole document, one vector ms | chunks embedded alone ms | alone / late |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(cost_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
