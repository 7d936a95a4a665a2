"""The BERT-like families side by side: exactness against the references and speed, per family.

    python bench/families.py [--quick] [--only FAMILY]
    python bench/families.py --checkpoint DIR [--checkpoint DIR ...] [--random-modernbert]

For each family (RoBERTa, XLM-RoBERTa, DistilBERT) it builds a random checkpoint with the layer
shape of a popular embedder (all-distilroberta-v1: 6 x 768; multilingual-e5-small: 12 x 384;
msmarco-distilbert-base-v4: 6 x 768; a small trained vocabulary, weights at unit gain), saved
as a sentence-transformers folder by tests/support/encoder_families.py, exports it with
`attnserve export`'s code (int8 behind the gate) and reports:

- exactness: the served graphs against transformers' eager implementation on varied, padded
  texts (fast graph's token vectors, maps graph's probabilities) and the fast graph's pooled
  vectors against sentence-transformers' `encode`;
- the fused op count, and the int8 gate's figures from the manifest;
- speed: paired medians (bench/common.py) of the fast graph, the plain export (explicit
  attention), the int8 graph and sentence-transformers' model forward (no tokenising: the same
  ids for every path), 2 threads, on batch x tokens cells.

`--checkpoint` measures sentence-transformers folders instead (all-mpnet-base-v2's real weights,
say), and `--random-modernbert` a ModernBERT at ModernBERT-base's layer shape, random weights.

Timing depends on shapes, not on trained weights; exactness is measured on these random weights,
which make attention far from uniform (a stricter test than trained weights).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.export.artifact import build_artifact
from attnserve.export.graphs import FAST_OUTPUTS, FastGraph, export_graph
from attnserve.model.checkpoint import load_checkpoint
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import Manifest, verify
from attnserve.service.sessions import open_session
from bench.common import machine_line, paired_medians
from tests.support.encoder_families import (
    EncoderShape,
    build_encoder_checkpoint,
    build_tokenizer,
)
from tests.support.mpnet_modernbert_checkpoints import modernbert_base_shape
from tests.support.texts import VARIED_TEXTS

THREADS = 2
FAMILIES = {
    "roberta (all-distilroberta-v1 shape)": EncoderShape(
        "roberta", "bpe", 768, 6, 12, 514, 128, "mean", True, intermediate_size=3072
    ),
    "xlm-roberta (multilingual-e5-small shape)": EncoderShape(
        "xlm-roberta", "unigram", 384, 12, 12, 514, 128, "mean", True, intermediate_size=1536
    ),
    "distilbert (msmarco-distilbert-base-v4 shape)": EncoderShape(
        "distilbert", "wordpiece", 768, 6, 12, 512, 128, "mean", False, intermediate_size=3072
    ),
}
CELLS = ((1, 16), (1, 128), (8, 128), (32, 128))


def exactness(checkpoint: Path, artifact: Path, manifest: Manifest) -> dict[str, float]:
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    model, loaded = load_checkpoint(checkpoint)
    tokenizer = ReferenceTokenizer(
        loaded.tokenizer_path, loaded.max_seq_length, model.config.pad_token_id
    )
    theirs = AutoModel.from_pretrained(str(checkpoint), attn_implementation="eager")
    batch = tokenizer(VARIED_TEXTS)
    fast, maps = manifest.graph("fast", "fp32"), manifest.graph("maps", "fp32")
    assert fast is not None
    assert maps is not None
    feeds = {name: batch[name].numpy() for name in fast.inputs}
    tokens, pooled = open_session(artifact / fast.file).run(["token_embeddings", "pooled"], feeds)
    attentions = open_session(artifact / maps.file).run(["attentions"], feeds)[0]
    with torch.no_grad():
        expected = theirs(**{k: batch[k] for k in fast.inputs}, output_attentions=True)
    real = batch["attention_mask"].numpy().astype(bool)
    want = torch.stack(expected.attentions).numpy()
    rows = np.broadcast_to(real[None, :, None, :, None], want.shape)
    st = SentenceTransformer(str(checkpoint), device="cpu").encode(VARIED_TEXTS)
    ours = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    theirs_n = st / np.linalg.norm(st, axis=1, keepdims=True)
    return {
        "hidden": float(np.abs(tokens - expected.last_hidden_state.numpy())[real].max()),
        "maps": float(np.abs(attentions - want)[rows].max()),
        "cosine": float((ours * theirs_n).sum(1).min()),
    }


def speeds(checkpoint: Path, artifact: Path, manifest: Manifest, workdir: Path) -> list[str]:
    from sentence_transformers import SentenceTransformer

    model, _ = load_checkpoint(checkpoint)
    plain = workdir / f"{checkpoint.name}.plain.onnx"
    inputs = model.config.inputs
    export_graph(FastGraph(model, attention_impl="explicit"), FAST_OUTPUTS, plain, inputs)
    fast, int8 = manifest.graph("fast", "fp32"), manifest.graph("fast", "int8")
    assert fast is not None
    sessions = {"plain": open_session(plain, threads=THREADS, spinning=False)}
    sessions["fast"] = open_session(artifact / fast.file, threads=THREADS, spinning=False)
    if int8 is not None:
        sessions["int8"] = open_session(artifact / int8.file, threads=THREADS, spinning=False)
    st_model = SentenceTransformer(str(checkpoint), device="cpu")
    rows = []
    for batch, tokens in CELLS:
        rng = np.random.default_rng(batch * 1000 + tokens)
        ids = rng.integers(10, 500, size=(batch, tokens), dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        torch_feeds = {name: torch.from_numpy(value) for name, value in feeds.items()}
        paths: dict[str, Any] = {
            name: partial(session.run, ["pooled"], feeds) for name, session in sessions.items()
        }
        paths["ST"] = partial(st_forward, st_model, torch_feeds)
        medians = paired_medians(paths)
        said = f"{batch} x {tokens}: fast {medians['fast'] * 1e3:.1f} ms"
        said += f", fast/plain {medians['plain'] / medians['fast']:.2f}x"
        said += f", fast/ST {medians['ST'] / medians['fast']:.2f}x"
        if "int8" in medians:
            said += f", int8/fast {medians['fast'] / medians['int8']:.2f}x"
        rows.append(said)
    return rows


def st_forward(st_model: Any, feeds: dict[str, torch.Tensor]) -> object:
    with torch.inference_mode():
        return st_model(dict(feeds))["sentence_embedding"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="exactness only, no timing")
    parser.add_argument("--only", default=None, help="one family (roberta, xlm-roberta, ...)")
    parser.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="a folder to measure"
    )
    parser.add_argument("--random-modernbert", action="store_true", help="see above")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    workdir = Path(tempfile.mkdtemp(prefix="attnserve-families-"))
    print(f"machine: {machine_line()}; {THREADS} threads\n")
    checkpoints: dict[str, Path] = {folder.name: folder for folder in args.checkpoint}
    if args.random_modernbert:
        checkpoints["modernbert (ModernBERT-base layer shape, 6 layers)"] = modernbert_base_shape(
            workdir
        )
    if not checkpoints:
        for label, shape in FAMILIES.items():
            if args.only is None or shape.family == args.only:
                tokenizer = build_tokenizer(shape.tokenizer, workdir / f"{shape.tokenizer}.json")
                checkpoints[label] = build_encoder_checkpoint(
                    workdir / shape.family, shape, tokenizer
                )
    for index, (label, checkpoint) in enumerate(checkpoints.items()):
        artifact = workdir / f"artifact-{index}"
        build_artifact(artifact, checkpoint, fp16=False)
        manifest = verify(artifact)
        figures = exactness(checkpoint, artifact, manifest)
        fast = manifest.graph("fast", "fp32")
        int8 = manifest.graph("fast", "int8")
        assert fast is not None
        fused = ", ".join(
            f"{count} x {op}" for op, count in fast.op_counts.items() if op.endswith("Attention")
        )
        gate = (
            f"mean {int8.parity['mean_cosine_to_fp32']:.4f}, "
            f"min {int8.parity['min_cosine_to_fp32']:.4f}"
            if int8 is not None
            else "no candidate passed"
        )
        print(
            f"{label}: hidden |diff| {figures['hidden']:.1e}, maps |diff| {figures['maps']:.1e}, "
            f"pooled cosine to ST {figures['cosine']:.7f}, {fused}, int8 gate {gate}",
            flush=True,
        )
        if not args.quick:
            for row in speeds(checkpoint, artifact, manifest, workdir):
                print(f"    {row}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
