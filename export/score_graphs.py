"""torch -> ONNX for cross-encoders: the scoring graph (fused attention) and the maps graph.

The same steps as an embedder's graphs (`export/graphs.py`: export through sdpa, the family's
attention fusion, parity against PyTorch, the NaN/Inf check), with the head's `scores` (B, L)
logits as the output in place of `pooled`, and pairs as the parity inputs: each row is a
(query, document) pair through tokenizer.json's own pair template, truncated longest-first as
CrossEncoder does. int8 is quantised by `export/quantize.py`'s quantiser behind a gate measured
on scores: per query, the documents' ranking (Spearman) and the largest score change. fp16 (for
CUDA) is the embedders' conversion behind the same gate, measured on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from attnserve.export.calibration import Range
from attnserve.export.finite import NonFiniteOutputError, first_non_finite
from attnserve.export.graphs import (
    CPU_AND_CUDA,
    OPSET,
    convert_to_fp16,
    export_graph,
    op_counts,
    specialise_attention,
    variant_of,
)
from attnserve.export.onnx_files import remove_graph
from attnserve.export.progress import stage
from attnserve.export.quantize import CALIBRATION_TEXTS, candidates, quantize
from attnserve.export.vector_check import Feeder
from attnserve.model.cross_encoder import CrossEncoderModel
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import GraphPurpose, GraphSpec, HeadSpec
from attnserve.service.corpus import calibration_corpus, varied_corpus
from attnserve.service.heads import activate
from attnserve.service.sessions import open_session

log = logging.getLogger(__name__)
SCORE_OUTPUTS = ("scores",)
SCORE_MAPS_OUTPUTS = ("scores", "attentions")
PARITY_QUERY = "how does attention weigh the tokens of a sentence"
PARITY_DOCUMENTS = [
    "hello",
    "The encoder reads every token of the sentence at once.",
    "Prices rose 3.5% in Q3, to $1,234.56 per unit -- or did they?!",
    "Café naïve façade, déjà vu in Zürich; 東京; Привет; 🚀",
    " ".join(["Attention weighs every token against every other token."] * 40),  # truncated
]
# The int8 gate: GATE_QUERIES queries x GATE_DOCUMENTS documents each.
GATE_QUERIES, GATE_DOCUMENTS = 40, 25
MIN_MEAN_SPEARMAN, MIN_SPEARMAN, MAX_SCORE_ERROR = 0.97, 0.85, 0.05


class ScoreGraph(nn.Module):
    """(B, T) pair tokens -> (B, L) logits; `maps` also returns every layer's attention
    probabilities, stacked (layers, B, nh, T, T), through the explicit path."""

    def __init__(self, model: CrossEncoderModel, maps: bool) -> None:
        super().__init__()
        self.model = model
        self.maps = maps

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        impl = "explicit" if self.maps else "sdpa"
        out = self.model(
            input_ids, attention_mask, token_type_ids, output_attentions=self.maps,
            attention_impl=impl,
        )  # fmt: skip
        logits: Tensor = out.logits  # (B, L)
        if self.maps:
            return logits, torch.stack(out.attentions)  # and (layers, B, nh, T, T)
        return logits


def measure_parity(
    model: CrossEncoderModel, tokenizer: ReferenceTokenizer, path: Path, maps: bool
) -> dict[str, float]:
    """The graph against PyTorch on a padded batch of pairs of mixed lengths."""
    batch = tokenizer.pairs([(PARITY_QUERY, doc) for doc in PARITY_DOCUMENTS])
    session = open_session(path)
    feeds = {i.name: batch[i.name].numpy() for i in session.get_inputs()}
    outputs = session.run(None, feeds)
    names = [output.name for output in session.get_outputs()]
    found = first_non_finite(outputs, names, batch["attention_mask"].numpy())
    if found is not None:
        raise NonFiniteOutputError(
            f"{path.name}: output {found[0]!r} holds NaN or Inf for parity pair {found[1]}"
        )
    with torch.no_grad():
        reference = model(**batch, output_attentions=maps)
    parity = {"max_abs_scores": float(np.abs(outputs[0] - reference.logits.numpy()).max())}
    if maps:
        real = batch["attention_mask"].numpy().astype(bool)
        expected = torch.stack(reference.attentions).numpy()  # (L, B, nh, T, T)
        query_is_real = np.broadcast_to(real[None, :, None, :, None], expected.shape)
        parity["max_abs_attentions"] = float(np.abs(outputs[1] - expected)[query_is_real].max())
    return parity


def build_score_graphs(
    model: CrossEncoderModel,
    tokenizer_path: Path,
    max_tokens: int,
    out_dir: Path,
    *,
    int8: bool,
    fp16: bool,
) -> list[GraphSpec]:
    tokenizer = ReferenceTokenizer(tokenizer_path, max_tokens, model.config.pad_token_id)
    inputs = model.config.inputs
    built: list[GraphSpec] = []
    plan: tuple[tuple[GraphPurpose, tuple[str, ...]], ...] = (
        ("fast", SCORE_OUTPUTS),
        ("maps", SCORE_MAPS_OUTPUTS),
    )
    for purpose, outputs in plan:
        file = f"scorer.{purpose}.fp32.onnx"
        path = out_dir / file
        with stage("export", file) as step:
            export_graph(ScoreGraph(model, purpose == "maps"), outputs, path, inputs)
            step.outcome = f"torch -> ONNX, opset {OPSET}"
        if purpose == "fast":
            with stage("fuse", file) as step:
                step.outcome = specialise_attention(model.encoder, path)
        with stage("verify", file) as step:
            parity = measure_parity(model, tokenizer, path, purpose == "maps")
            step.outcome = ", ".join(f"{key} {value:.1e}" for key, value in parity.items())
        built.append(
            GraphSpec(
                file=file, purpose=purpose, precision="fp32", providers=CPU_AND_CUDA, opset=OPSET,
                op_counts=op_counts(path), inputs=inputs, outputs=outputs,
                graph_optimization_level="ORT_ENABLE_ALL", parity=parity,
            )
        )  # fmt: skip
    if not (int8 or fp16):
        return built
    gate_set = reference_scores(out_dir / built[0].file, tokenizer)
    if int8:
        built += build_int8_scorer(built[0], out_dir, tokenizer, model.head_spec, gate_set)
    if fp16:
        built += build_fp16_scorer(built[0], out_dir, tokenizer, model.head_spec, gate_set)
    return built


@dataclass(frozen=True)
class GateSet:
    """The gate's pairs and the fp32 scoring graph's scores of them, measured once per export."""

    pairs: list[tuple[str, str]]
    reference: np.ndarray  # (pairs, L)


def reference_scores(fp32_path: Path, tokenizer: ReferenceTokenizer) -> GateSet:
    """The fp32 scores both gates (int8, fp16) measure against: run once, not once per gate."""
    pairs = gate_pairs()
    with stage("gate", "fp32 reference scores") as step:
        reference = scores_of(fp32_path, tokenizer, pairs)
        step.outcome = f"{len(pairs)} pairs for the int8 and fp16 gates"
    return GateSet(pairs, reference)


@dataclass(frozen=True)
class ScoreGate:
    mean_spearman: float
    min_spearman: float
    max_score_error: float
    pairs: int

    @property
    def passed(self) -> bool:
        return (
            self.mean_spearman >= MIN_MEAN_SPEARMAN
            and self.min_spearman >= MIN_SPEARMAN
            and self.max_score_error <= MAX_SCORE_ERROR
        )


def gate_pairs() -> list[tuple[str, str]]:
    """Generated pairs: each query (a short text) against documents of every length."""
    texts = varied_corpus(GATE_QUERIES * (GATE_DOCUMENTS + 1))
    queries, documents = texts[:GATE_QUERIES], texts[GATE_QUERIES:]
    return [
        (query, documents[(q * GATE_DOCUMENTS + d) % len(documents)])
        for q, query in enumerate(queries)
        for d in range(GATE_DOCUMENTS)
    ]


def scores_of(
    path: Path, tokenizer: ReferenceTokenizer, pairs: list[tuple[str, str]], batch_size: int = 32
) -> np.ndarray:
    """(pairs, L) scores in the pairs' order, run in batches of like lengths: the gate's pairs
    mix every document length, and batches in their own order padded half of what they ran
    (32 s against 14 s for 1000 pairs, the scores equal to the bit)."""
    session = open_session(path)
    names = [i.name for i in session.get_inputs()]
    lengths = [len(e.ids) for e in tokenizer.tokenizer.encode_batch(pairs)]
    ordered = sorted(range(len(pairs)), key=lambda i: lengths[i])
    rows = []
    for start in range(0, len(ordered), batch_size):
        batch = tokenizer.pairs([pairs[i] for i in ordered[start : start + batch_size]])
        rows.append(session.run(["scores"], {name: batch[name].numpy() for name in names})[0])
    stacked = np.concatenate(rows)
    scores = np.empty_like(stacked)
    scores[ordered] = stacked
    return scores  # (pairs, L)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a, ranks_b = a.argsort().argsort(), b.argsort().argsort()
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def measure_gate(reference: np.ndarray, candidate: np.ndarray, head: HeadSpec) -> ScoreGate:
    """Per query, the documents' ranking by the first label's logit, and every score's change."""
    per_query = [
        spearman(reference[q : q + GATE_DOCUMENTS, 0], candidate[q : q + GATE_DOCUMENTS, 0])
        for q in range(0, len(reference), GATE_DOCUMENTS)
    ]
    error = float(
        np.abs(activate(reference, head.activation) - activate(candidate, head.activation)).max()
    )
    return ScoreGate(float(np.mean(per_query)), float(min(per_query)), error, len(reference))


# A calibration pair travels through the quantiser's text feed as one string: query, this
# separator (a control character no corpus text holds), document.
PAIR_SEPARATOR = "\x1f"


def calibration_pairs() -> list[str]:
    """Pairs that fix the int8 activation scales: the quantiser's calibration texts paired off
    (a short varied text with a serving-traffic one), none of them a gate pair."""
    texts = calibration_corpus(CALIBRATION_TEXTS)
    half = len(texts) // 2
    return [f"{q}{PAIR_SEPARATOR}{d}" for q, d in zip(texts[:half], texts[half:], strict=False)]


def pair_feeder(tokenizer: ReferenceTokenizer, inputs: tuple[str, ...]) -> Feeder:
    """Calibration strings -> the scoring graph's feeds, each through the pair template."""

    def feed(items: Sequence[str]) -> Mapping[str, np.ndarray]:
        pairs = [(q, d) for q, _, d in (item.partition(PAIR_SEPARATOR) for item in items)]
        batch = tokenizer.pairs(pairs)
        return {name: batch[name].numpy() for name in (*inputs, "attention_mask")}

    return feed


def build_int8_scorer(
    fast_fp32: GraphSpec,
    out_dir: Path,
    tokenizer: ReferenceTokenizer,
    head: HeadSpec,
    gate_set: GateSet,
) -> list[GraphSpec]:
    """The first of the quantiser's candidates whose scores pass the gate; none: no int8."""
    fp32_path = out_dir / fast_fp32.file
    path = out_dir / fast_fp32.file.replace(".fp32.", ".int8.")
    pairs, reference = gate_set.pairs, gate_set.reference
    feed, calibration = pair_feeder(tokenizer, fast_fp32.inputs), calibration_pairs()
    ranges: dict[str, Range] = {}  # one calibration pass serves every candidate
    for name, keep_fp32 in candidates(fp32_path):
        with stage("int8", name) as step:
            # the one int8 call for scoring graphs: static activation scales, as for embedders
            quantize(fp32_path, path, keep_fp32, feed, calibration, ranges)
            gate = measure_gate(reference, scores_of(path, tokenizer, pairs), head)
            step.outcome = (
                f"gate over {gate.pairs} pairs (mean Spearman >= {MIN_MEAN_SPEARMAN}, min >= "
                f"{MIN_SPEARMAN}, score error <= {MAX_SCORE_ERROR}): {gate.mean_spearman:.4f}, "
                f"{gate.min_spearman:.4f}, {gate.max_score_error:.4f}: "
                + ("PASS" if gate.passed else "fail")
            )
        if gate.passed:
            parity = {
                "mean_spearman_to_fp32": gate.mean_spearman,
                "min_spearman_to_fp32": gate.min_spearman,
                "max_score_error_to_fp32": gate.max_score_error,
                "n_pairs": float(gate.pairs),
                "calibration_pairs": float(len(calibration)),
            }
            spec = variant_of(fast_fp32, path, "int8", ("CPUExecutionProvider",), parity)
            return [spec]
    remove_graph(path)
    log.warning("int8: no candidate passed the score gate; no int8 scoring graph written")
    return []


def build_fp16_scorer(
    fast_fp32: GraphSpec,
    out_dir: Path,
    tokenizer: ReferenceTokenizer,
    head: HeadSpec,
    gate_set: GateSet,
) -> list[GraphSpec]:
    """The fp16 CUDA scoring graph, behind the int8 gate's measure (run on CPU here: CUDA's
    fp16 kernels round alike, and the test on a GPU host compares them to fp32 again)."""
    fp32_path = out_dir / fast_fp32.file
    path = out_dir / fast_fp32.file.replace(".fp32.", ".fp16.")
    with stage("fp16", path.name) as step:
        convert_to_fp16(fp32_path, path)
        scores = scores_of(path, tokenizer, gate_set.pairs)
        if not np.isfinite(scores).all():  # fp16 overflows where fp32 does not
            gate = None
            step.outcome = "NaN or Inf in its scores: not written"
        else:
            gate = measure_gate(gate_set.reference, scores, head)
            step.outcome = (
                f"CPU gate over {gate.pairs} pairs: Spearman mean {gate.mean_spearman:.4f}, min "
                f"{gate.min_spearman:.4f}, score error {gate.max_score_error:.4f}: "
                + ("PASS" if gate.passed else "fail")
            )
    if gate is None or not gate.passed:
        remove_graph(path)
        log.warning("fp16: the scores failed the gate on CPU; no fp16 scoring graph written")
        return []
    parity = {
        "cpu_mean_spearman_to_fp32": gate.mean_spearman,
        "cpu_min_spearman_to_fp32": gate.min_spearman,
        "cpu_max_score_error_to_fp32": gate.max_score_error,
        "n_pairs": float(gate.pairs),
    }
    return [variant_of(fast_fp32, path, "fp16", ("CUDAExecutionProvider",), parity)]
