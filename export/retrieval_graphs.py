"""torch -> ONNX for the retrieval heads: one graph per artifact, with the outputs its model has.

- SPLADE (`sparse_weights`, (B, V)): the masked-LM logits (B, T, V), log(1 + relu) and the
  max/sum over real tokens all run inside the graph, so ONNX Runtime hands back one V-wide row
  per text and a V-wide row per token never reaches Python;
- bge-m3 (`token_embeddings` (B, T, H) and `pooled` (B, H), as any embedder's graph, so it
  embeds and chunks late as one; `token_weights` (B, T), `multi_vectors` (B, T, D));
- ColBERT (`multi_vectors` (B, T, D), unit rows).

Each is exported through sdpa and its attention fused as the family's embedder graph is
(`export/graphs.py`), then checked against the PyTorch model on a padded batch of mixed
lengths (ColBERT: expanded queries, whose trailing [MASK] rows are kept although unattended,
and documents), and for NaN/Inf. No maps graph, int8 or fp16 variant is written for these
heads yet (docs/sparse.md says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import Tensor, nn

from attnserve.export.finite import NonFiniteOutputError, first_non_finite
from attnserve.export.graphs import (
    CPU_AND_CUDA,
    OPSET,
    PARITY_TEXTS,
    export_graph,
    op_counts,
    specialise_attention,
)
from attnserve.export.progress import stage
from attnserve.model.bge_m3 import BgeM3Model, read_dropped_ids
from attnserve.model.colbert import MULTI_VECTOR_OUTPUT, ColbertModel
from attnserve.model.encoder import Encoder
from attnserve.model.splade import SpladeModel
from attnserve.service import multi_vector
from attnserve.service.artifact import GraphSpec, MultiVectorSpec, SparseSpec
from attnserve.service.sessions import open_session

SPLADE_OUTPUT = "sparse_weights"
TOKEN_WEIGHTS_OUTPUT = "token_weights"
PARITY_QUERIES = ["how does attention weigh the tokens of a sentence", "bank"]
RetrievalModel = SpladeModel | BgeM3Model | ColbertModel


@dataclass(frozen=True)
class RetrievalHeads:
    """What an artifact's manifest says of its model's outputs (service/artifact.py)."""

    stem: str  # the graph file's first word
    outputs: tuple[str, ...]
    sparse: SparseSpec | None
    multi_vector: MultiVectorSpec | None
    dense: bool


def splade_heads(model: SpladeModel) -> RetrievalHeads:
    sparse = SparseSpec(kind="vocabulary", output=SPLADE_OUTPUT, reduction=model.spec.reduction)
    return RetrievalHeads("splade", (SPLADE_OUTPUT,), sparse, None, dense=False)


def bge_m3_heads(model: BgeM3Model, directory: Path) -> RetrievalHeads:
    sparse = SparseSpec(
        kind="per_token", output=TOKEN_WEIGHTS_OUTPUT, reduction="max",
        dropped_ids=read_dropped_ids(directory),
    )  # fmt: skip
    vectors = MultiVectorSpec(
        output=MULTI_VECTOR_OUTPUT, dim=model.colbert.out_features, skip_first=True
    )
    outputs = ("token_embeddings", "pooled", TOKEN_WEIGHTS_OUTPUT, MULTI_VECTOR_OUTPUT)
    return RetrievalHeads("bge-m3", outputs, sparse, vectors, dense=True)


def colbert_heads(spec: MultiVectorSpec) -> RetrievalHeads:
    return RetrievalHeads("colbert", (MULTI_VECTOR_OUTPUT,), None, spec, dense=False)


class RetrievalGraph(nn.Module):
    """The model's outputs as a tuple, in the order `RetrievalHeads.outputs` names them."""

    def __init__(self, model: RetrievalModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        out = self.model(input_ids, attention_mask, token_type_ids, attention_impl="sdpa")
        if isinstance(out, Tensor):
            return (out,)
        return (out.last_hidden_state, out.pooled, out.token_weights, out.multi_vectors)


def parity_batch(
    tokenizer_path: Path, max_tokens: int, pad_id: int, heads: RetrievalHeads
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The parity feeds and which (B, T) positions each row holds (ColBERT: a query's
    expansion rows too, which its attention mask leaves out)."""
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    spec = heads.multi_vector
    if spec is None or (spec.query_marker_id is None and spec.query_length is None):
        tokenizer.enable_truncation(max_length=max_tokens)
        plain = [
            multi_vector.PreparedText(list(e.ids), [1] * len(e.ids))
            for e in tokenizer.encode_batch(PARITY_TEXTS)
        ]
        prepared = plain
    else:
        prepared = []
        for texts, is_query in ((PARITY_QUERIES, True), (PARITY_TEXTS, False)):
            tokenizer.enable_truncation(
                max_length=multi_vector.token_cap(spec, is_query, max_tokens)
            )
            prepared += [
                multi_vector.prepare(e.ids, spec, is_query) for e in tokenizer.encode_batch(texts)
            ]
    feeds = multi_vector.batch(prepared, pad_id)
    present = np.zeros(feeds["input_ids"].shape, dtype=bool)
    for row, text in enumerate(prepared):
        present[row, : len(text.ids)] = True
    return feeds, present


def compare(
    name: str, ours: np.ndarray, reference: np.ndarray, present: np.ndarray
) -> dict[str, float]:
    """One output's figures: vocabulary rows by their terms, vectors by cosine."""
    if name == SPLADE_OUTPUT:
        scale = np.maximum(np.abs(reference), 1.0)
        return {
            "max_rel_sparse_weights": float((np.abs(ours - reference) / scale).max()),
            "sparse_terms_differing": float(((ours > 0) != (reference > 0)).sum()),
        }
    if name in (TOKEN_WEIGHTS_OUTPUT, "token_embeddings"):
        return {f"max_abs_{name}": float(np.abs(ours - reference)[present].max())}
    if name == "pooled":
        cos = (ours * reference).sum(-1) / (
            np.linalg.norm(ours, axis=-1) * np.linalg.norm(reference, axis=-1)
        )
        return {"min_cosine_pooled": float(cos.min())}
    cos = (ours * reference).sum(-1)  # unit rows
    return {"min_cosine_multi_vectors": float(cos[present].min())}


def measure_parity(
    model: RetrievalModel, heads: RetrievalHeads, path: Path, feeds: dict[str, np.ndarray],
    present: np.ndarray, inputs: tuple[str, ...],
) -> dict[str, float]:  # fmt: skip
    session = open_session(path)
    outputs = session.run(list(heads.outputs), {name: feeds[name] for name in inputs})
    found = first_non_finite(outputs, list(heads.outputs), present.astype(np.int64))
    if found is not None:
        raise NonFiniteOutputError(
            f"{path.name}: output {found[0]!r} holds NaN or Inf for parity text {found[1]}"
        )
    with torch.no_grad():
        reference = RetrievalGraph(model)(
            *(torch.from_numpy(feeds[name]) for name in inputs)
        )  # the explicit path is the model's default: the unfused reference
    parity: dict[str, float] = {}
    for name, ours, theirs in zip(heads.outputs, outputs, reference, strict=True):
        parity.update(compare(name, ours, theirs.numpy(), present))
    return parity


def encoder_of(model: RetrievalModel) -> Encoder:
    return model.encoder


def build_retrieval_graph(
    model: RetrievalModel, heads: RetrievalHeads, tokenizer_path: Path, max_tokens: int,
    out_dir: Path,
) -> list[GraphSpec]:  # fmt: skip
    file = f"{heads.stem}.fast.fp32.onnx"
    path = out_dir / file
    inputs = model.config.inputs
    with stage("export", file) as step:
        export_graph(RetrievalGraph(model), heads.outputs, path, inputs)
        step.outcome = f"torch -> ONNX, opset {OPSET}, outputs {', '.join(heads.outputs)}"
    with stage("fuse", file) as step:
        step.outcome = specialise_attention(encoder_of(model), path)
    with stage("verify", file) as step:
        feeds, present = parity_batch(tokenizer_path, max_tokens, model.config.pad_token_id, heads)
        parity = measure_parity(model, heads, path, feeds, present, inputs)
        step.outcome = "vs PyTorch: " + ", ".join(f"{k} {v:.3g}" for k, v in parity.items())
    spec = GraphSpec(
        file=file, purpose="fast", precision="fp32", providers=CPU_AND_CUDA, opset=OPSET,
        op_counts=op_counts(path), inputs=inputs, outputs=heads.outputs,
        graph_optimization_level="ORT_ENABLE_ALL", parity=parity,
    )  # fmt: skip
    return [spec]
