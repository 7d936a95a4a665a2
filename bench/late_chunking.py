"""Late chunking against embedding each chunk alone: how far context moves the vectors, and what
one whole-document run costs against many short ones, per document length.

    python bench/late_chunking.py [--artifact PACKAGED_ARTIFACT] [--modernbert-artifact DIR]
                                  [--only minilm|modernbert] [--quick]

Two models, each served alone by `attnserve serve` (a child process, default settings):

- the packaged all-MiniLM-L6-v2 (512 positions; documents up to 500 tokens, `max_tokens` 512);
- a random ModernBERT built here with transformers' own class and a `tokenizers` byte-level BPE
  (tests/support/mpnet_modernbert_checkpoints.py; 4 layers x 256, 4 heads, a 128-token window
  on 3 layers of 4, mean pooling, normalised), its `max_position_embeddings` raised to 2048 in
  config.json (rotary positions: no table to grow), exported with `attnserve export`'s code.

Documents are sentences of the corpus' generator (service/corpus.py) joined with spaces, 4 per
length, counted with the artifact's own tokenizer.json.

Quality: per document length and chunking (each sentence a span; every N tokens), the cosine
between each chunk's late vector (EmbedChunks) and the same characters embedded alone (Embed),
and each one's cosine to the whole document's pooled vector. Random weights say how much
context moves a vector in that architecture, not whether retrieval improves.

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
from tokenizers import Tokenizer

from attnserve.service.client.client import EmbedderClient
from attnserve.service.corpus import sentence
from bench.common import machine_line, paired_medians
from bench.serve import start_server

CHUNK_TOKENS = 32
Spans = list[tuple[int, int]]
DOCUMENTS = 4  # per length, for the quality figures
CHUNKINGS = (("each sentence", 0), ("every 32 tokens", 32), ("every 128 tokens", 128))


def make_document(rng: random.Random, tokens: int, tokenizer: Tokenizer) -> tuple[str, Spans]:
    """Sentences joined until about `tokens` tokens (special ones included; counted with the
    artifact's own tokenizer.json, as the server counts); and each sentence's span."""
    text, spans = "", Spans()
    while True:
        piece = sentence(rng)
        start = len(text) + (1 if text else 0)
        candidate = f"{text} {piece}" if text else piece
        if spans and len(tokenizer.encode(candidate).ids) > tokens:
            return text, spans
        text = candidate
        spans.append((start, start + len(piece)))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.asarray((a * b).sum(-1))


def quality(
    client: EmbedderClient, tokenizer: Tokenizer, label: str, lengths: list[int], max_tokens: int
) -> list[str]:
    """Per document length and chunking: cosines over the chunks of DOCUMENTS documents."""
    rng = random.Random(11)
    rows: list[str] = []
    for length in lengths:
        documents = [make_document(rng, length, tokenizer) for _ in range(DOCUMENTS)]
        tokens = np.mean([len(tokenizer.encode(text).ids) for text, _ in documents])
        for name, every in CHUNKINGS:
            late_alone: list[np.ndarray] = []
            late_whole: list[np.ndarray] = []
            alone_whole: list[np.ndarray] = []
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
                late_alone.append(cosines(late, alone))
                late_whole.append(cosines(late, whole))
                alone_whole.append(cosines(alone, whole))
            between = np.concatenate(late_alone)
            rows.append(
                f"| {label} | {tokens:.0f} | {name} | {between.size} | {between.mean():.3f} | "
                f"{between.min():.3f} | {np.concatenate(late_whole).mean():.3f} | "
                f"{np.concatenate(alone_whole).mean():.3f} |"
            )
    return rows


def cost(
    client: EmbedderClient, tokenizer: Tokenizer, label: str, lengths: list[int], max_tokens: int
) -> list[str]:
    rng = random.Random(5)
    rows = []
    for length in lengths:
        text, _ = make_document(rng, length, tokenizer)
        medians = paired_medians(timed_paths(client, text, max_tokens), min_rounds=5, budget_s=4.0)
        late, whole, alone = (medians[k] * 1000 for k in ("late", "whole", "alone"))
        tokens = len(tokenizer.encode(text).ids)
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
    parser.add_argument(
        "--modernbert-artifact", type=Path, default=None, help="reuse one this script built"
    )
    parser.add_argument("--quick", action="store_true", help="fewer lengths")
    parser.add_argument("--only", choices=("minilm", "modernbert"), default=None, help="one model")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-late-chunking-"))
    print(f"machine: {machine_line()}\n", flush=True)
    models = []
    if args.only != "modernbert":
        packaged = args.artifact or packaged_artifact(workdir)
        models.append(("all-MiniLM-L6-v2", packaged, 512, [120, 250, 500], [64, 128, 256, 512]))
    if args.only != "minilm":
        modernbert = args.modernbert_artifact or modernbert_artifact(workdir)
        models.append(("ModernBERT (random, 2048)", modernbert, 2048, [500, 1000, 2000],
                       [128, 256, 512, 1024, 2048]))  # fmt: skip
    quality_rows, cost_rows = [], []
    for label, artifact, max_tokens, quality_lengths, cost_lengths in models:
        if args.quick:
            quality_lengths, cost_lengths = quality_lengths[-1:], cost_lengths[::2]
        tokenizer = Tokenizer.from_file(str(artifact / "tokenizer.json"))
        tokenizer.no_truncation()  # the file may carry sentence-transformers' own settings
        tokenizer.no_padding()
        process, target = start_server(artifact, workdir)
        try:
            with EmbedderClient(target, timeout_s=300) as client:
                quality_rows += quality(client, tokenizer, label, quality_lengths, max_tokens)
                print("\n".join(quality_rows[-len(quality_lengths) * len(CHUNKINGS) :]), flush=True)
                cost_rows += cost(client, tokenizer, label, cost_lengths, max_tokens)
                print("\n".join(cost_rows[-len(cost_lengths) :]), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
    print("\n| model | document tokens (mean) | chunks | chunks measured | cosine late vs alone: "
          "mean | min | late to whole document | alone to whole document |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(quality_rows))
    print(f"\n| model | document tokens | chunks of {CHUNK_TOKENS} | late chunking ms | "
          "whole document, one vector ms | chunks embedded alone ms | alone / late |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(cost_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
