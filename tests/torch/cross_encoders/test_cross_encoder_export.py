"""A cross-encoder's artifact: the manifest's head (format 3), the scoring graph with the
family's fused attention, exact parity with PyTorch on pairs, int8 written only past the score
gate (which a damaged quantisation fails), and the fp16 CUDA graph behind the same gate; on a GPU
host (`pytest -m gpu`, onnxruntime-gpu) the fp16 graph is also run on CUDA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from attnserve.export.score_graphs import ScoreGate, gate_pairs, measure_gate, scores_of
from attnserve.export.summary import summary_table
from attnserve.service.artifact import HeadSpec, verify
from attnserve.service.heads import activate
from tests.support.cross_encoders import CROSS_ENCODER_SHAPES


@pytest.mark.parametrize("name", ["bert-reranker", "xlm-roberta-tagger"])
def test_the_manifest_carries_the_head_and_the_graphs_answer_scores(
    name: str, cross_encoder_artifacts: Callable[[str], Path]
) -> None:
    shape = CROSS_ENCODER_SHAPES[name]
    manifest = verify(cross_encoder_artifacts(name))
    assert manifest.format_version == 4  # the head came with version 4
    assert manifest.head is not None
    assert manifest.head.labels == shape.labels
    assert manifest.head.multi_label == shape.multi_label
    assert manifest.row_output == "scores"
    assert (manifest.model.pooling, manifest.model.normalize) == ("cls", False)
    fast, maps = manifest.graph("fast", "fp32"), manifest.graph("maps", "fp32")
    assert fast is not None
    assert maps is not None
    assert fast.outputs == ("scores",)
    assert maps.outputs == ("scores", "attentions")
    assert fast.op_counts.get("com.microsoft.Attention") == 2  # one per layer: fused
    assert fast.parity["max_abs_scores"] <= 1e-5
    assert maps.parity["max_abs_attentions"] <= 1e-5
    expected_inputs = 3 if shape.family == "bert" else 2  # token types for BERT only
    assert len(fast.inputs) == expected_inputs
    if name == "bert-reranker":
        int8 = manifest.graph("fast", "int8")
        assert int8 is not None
        assert int8.parity["mean_spearman_to_fp32"] >= 0.97
        assert int8.parity["n_pairs"] == 1000
        fp16 = manifest.graph("fast", "fp16")
        assert fp16 is not None
        assert fp16.providers == ("CUDAExecutionProvider",)
        assert fp16.parity["cpu_mean_spearman_to_fp32"] >= 0.97
        assert fp16.parity["cpu_max_score_error_to_fp32"] <= 0.05
        assert "Cast" in fp16.op_counts  # half inside, fp32 at its inputs and outputs


def scores_on(path: Path, provider: str, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The first label's logit of each pair: the graph at `path` on `provider`, one padded
    batch through tokenizer.json's own pair template."""
    tokenizer = Tokenizer.from_file(str(path.parent / "tokenizer.json"))
    encodings = tokenizer.encode_batch(pairs)
    width = max(len(e.ids) for e in encodings)
    every = {
        "input_ids": np.zeros((len(pairs), width), np.int64),
        "attention_mask": np.zeros((len(pairs), width), np.int64),
        "token_type_ids": np.zeros((len(pairs), width), np.int64),
    }
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        every["input_ids"][row, :n] = encoding.ids
        every["attention_mask"][row, :n] = 1
        every["token_type_ids"][row, :n] = encoding.type_ids
    session = ort.InferenceSession(str(path), providers=[provider])
    feeds = {i.name: every[i.name] for i in session.get_inputs()}
    return np.asarray(session.run(["scores"], feeds)[0][:, 0])


PAIRS = [
    ("how does a reranker weigh a document", document)
    for document in (
        "A reranker reads the query and the document together.",
        "Bananas are yellow.",
        "Cross-encoders score pairs with full attention between both texts.",
        "The weather was mild for December, with rain in the afternoon and a cold night.",
        "Weighing a document against a query is what rerankers do, token by token.",
    )
]


@pytest.mark.parametrize(
    "provider",
    [
        "CPUExecutionProvider",
        pytest.param(
            "CUDAExecutionProvider",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(
                    "CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="no CUDAExecutionProvider (needs a GPU and onnxruntime-gpu)",
                ),
            ],
        ),
    ],
)
def test_the_fp16_scorer_keeps_the_fp32_scores_and_ranking(
    provider: str, cross_encoder_artifacts: Callable[[str], Path]
) -> None:
    artifact = cross_encoder_artifacts("bert-reranker")
    fp32 = scores_on(artifact / "scorer.fast.fp32.onnx", "CPUExecutionProvider", PAIRS)
    fp16 = scores_on(artifact / "scorer.fast.fp16.onnx", provider, PAIRS)
    assert np.isfinite(fp16).all()
    served = activate(fp32, "sigmoid"), activate(fp16, "sigmoid")  # what clients see
    assert np.abs(served[0] - served[1]).max() <= 0.01  # fp16's ~3 significant digits
    # The same order wherever fp32 tells two documents apart by more than fp16's rounding (this
    # random head puts some within 1e-4 of each other: their order is a coin toss in fp16).
    apart = np.abs(fp32[:, None] - fp32[None, :]) > 0.01
    same_order = np.sign(fp32[:, None] - fp32[None, :]) == np.sign(fp16[:, None] - fp16[None, :])
    assert same_order[apart].all()
    assert apart.any()


def test_the_score_gate_fails_scores_that_reorder_or_drift() -> None:
    head = HeadSpec(labels=("LABEL_0",), activation="sigmoid")
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(1000, 1)).astype(np.float32)
    assert measure_gate(reference, reference + 1e-4, head).passed
    shuffled = reference.copy()
    rng.shuffle(shuffled)  # a broken graph: the ranking is lost
    gate: ScoreGate = measure_gate(reference, shuffled, head)
    assert not gate.passed
    assert gate.mean_spearman < 0.5
    drifted = measure_gate(reference, reference + 0.5, head)  # same order, scores moved
    assert drifted.mean_spearman == pytest.approx(1.0)
    assert not drifted.passed


@pytest.mark.parametrize(
    ("name", "answers"),
    [("bert-reranker", "rerank scores"), ("xlm-roberta-tagger", "classify scores (3 labels)")],
)
def test_the_export_summary_names_the_task_and_the_measured_figures(
    name: str, answers: str, cross_encoder_artifacts: Callable[[str], Path]
) -> None:
    """Each scoring graph's row says what it answers and the figures its export measured: it
    said "embeddings" and "nan" for every one (the scores' measured difference was 6e-08)."""
    out = cross_encoder_artifacts(name)
    manifest = verify(out)
    lines = summary_table(manifest, out, 1.0).splitlines()
    rows = {line.split()[0]: line for line in lines if line.startswith("scorer.")}
    assert set(rows) == {graph.file for graph in manifest.graphs}
    assert "nan" not in "\n".join(lines).lower()
    for graph in manifest.graphs:
        row = rows[graph.file]
        assert answers in row
        assert "embeddings" not in row
        if graph.precision == "fp32":  # the parity against PyTorch, as the manifest holds it
            assert f"scores max |diff| {graph.parity['max_abs_scores']:.1e}" in row
        else:
            key = (
                "mean_spearman_to_fp32"
                if graph.precision == "int8"
                else "cpu_mean_spearman_to_fp32"
            )
            assert f"mean {graph.parity[key]:.4f}" in row
        if graph.purpose == "maps":
            assert "+ maps" in row
            assert f"attention max |diff| {graph.parity['max_abs_attentions']:.1e}" in row


def test_the_gate_scores_come_back_in_the_pairs_order(
    cross_encoder_artifacts: Callable[[str], Path],
) -> None:
    """`scores_of` runs the gate's pairs in batches of like lengths; each score is still its own
    pair's, as the pair run alone scores it."""
    from attnserve.model.tokenization import ReferenceTokenizer

    artifact = cross_encoder_artifacts("bert-reranker")
    graph = artifact / "scorer.fast.fp32.onnx"
    tokenizer = ReferenceTokenizer(artifact / "tokenizer.json", 128, 0)
    pairs = gate_pairs()[:96]  # documents of every length, in no length order
    ours = scores_of(graph, tokenizer, pairs, batch_size=8)[:, 0]
    lengths = [len(e.ids) for e in tokenizer.tokenizer.encode_batch(pairs)]
    assert lengths != sorted(lengths)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    alone = []
    for pair in pairs:
        batch = tokenizer.pairs([pair])
        alone.append(session.run(["scores"], {n: batch[n].numpy() for n in names})[0][0, 0])
    np.testing.assert_allclose(ours, alone, atol=1e-5)
