"""Decoder artifacts: a fast graph with one causal, grouped-query `Attention` per layer and no
mask, a maps graph whose probabilities are the model's and exactly 0 above the diagonal, the
int8 gate and fp16 as for BERT, and a manifest that records family, causality and prompts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from attnserve.export import onnx_files
from attnserve.export.artifact import build_artifact
from attnserve.export.causal_attention import make_attention_causal
from attnserve.export.graphs import DECODER_INPUTS, op_counts
from attnserve.export.int8_gate import GATE_TEXTS, MIN_INVARIANCE
from attnserve.model.checkpoint import load_checkpoint
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import (
    ArtifactError,
    GraphPurpose,
    Manifest,
    Precision,
    read_manifest,
    verify,
)
from attnserve.service.padding import pad
from attnserve.service.server.engine import Engine
from attnserve.service.sessions import open_session
from tests.support.decoders import DECODER_SHAPES, FULL_EXPORT_SHAPE, PROMPTS, QUERY_PROMPT
from tests.support.texts import VARIED_TEXTS


def graph_file(artifact: Path, manifest: Manifest, purpose: str, precision: str) -> Path:
    spec = manifest.graph(purpose, precision)  # type: ignore[arg-type]
    assert spec is not None, f"no {purpose}/{precision} graph"
    return artifact / spec.file


def reference_batch(checkpoint: Path) -> dict[str, torch.Tensor]:
    tokenizer = ReferenceTokenizer(checkpoint / "tokenizer.json", 96)
    return tokenizer([QUERY_PROMPT + text for text in VARIED_TEXTS])  # right-padded


def test_the_manifest_records_family_causality_and_prompts(
    decoder_checkpoint: Path, decoder_artifact: Path
) -> None:
    shape = DECODER_SHAPES[decoder_checkpoint.name]
    manifest = verify(decoder_artifact)
    model = manifest.model
    assert manifest.format_version == 3
    assert (model.family, model.causal, model.padding_side) == (shape.family, True, "right")
    assert (model.pooling, model.normalize) == ("last", True)
    assert (model.num_heads, model.num_kv_heads) == (shape.num_heads, shape.num_kv_heads)
    assert model.prompts == PROMPTS
    assert model.default_prompt_name == shape.default_prompt_name
    assert manifest.tokenizer.default_max_tokens == shape.max_seq_length
    for graph in manifest.graphs:
        assert graph.inputs == DECODER_INPUTS  # no token_type_ids
        assert graph.file.startswith("decoder.")


def test_the_fast_graph_has_one_causal_grouped_attention_per_layer_and_no_mask(
    decoder_checkpoint: Path, decoder_artifact: Path
) -> None:
    shape = DECODER_SHAPES[decoder_checkpoint.name]
    manifest = verify(decoder_artifact)
    path = graph_file(decoder_artifact, manifest, "fast", "fp32")
    spec = manifest.graph("fast", "fp32")
    assert spec is not None
    counts = op_counts(path)
    assert counts == spec.op_counts  # the manifest tells the truth
    assert counts["Attention"] == shape.num_layers
    assert "Softmax" not in counts  # never materialises probabilities
    assert "Trilu" not in counts  # nor a causal mask: the op masks by itself
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    assert [i.name for i in model.graph.input] == list(DECODER_INPUTS)
    shapes = {
        value.name: [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]
        for value in model.graph.value_info
    }
    for node in model.graph.node:
        if node.op_type != "Attention":
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attributes["is_causal"] == 1
        assert len(node.input) == 3  # Q, K, V: no mask
        assert [o for o in node.output if o] == [node.output[0]]  # no probabilities
        q, k, v = (shapes[name] for name in node.input)
        assert q[1] == shape.num_heads  # (B, heads, T, head_dim) ...
        assert k[1] == v[1] == shape.num_kv_heads  # ... K/V heads shared, never copied
        assert q[3] == k[3] == shape.head_dim


def test_the_fast_graph_equals_the_model_on_a_right_padded_batch(
    decoder_checkpoint: Path, decoder_artifact: Path
) -> None:
    manifest = verify(decoder_artifact)
    path = graph_file(decoder_artifact, manifest, "fast", "fp32")
    model, _ = load_checkpoint(decoder_checkpoint)
    batch = reference_batch(decoder_checkpoint)
    feeds = {name: batch[name].numpy() for name in DECODER_INPUTS}
    tokens, pooled = open_session(path).run(["token_embeddings", "pooled"], feeds)
    with torch.no_grad():
        expected = model(**batch, normalize=False)
    real = batch["attention_mask"].numpy().astype(bool)
    assert np.abs(tokens - expected.last_hidden_state.numpy())[real].max() <= 1e-5
    np.testing.assert_allclose(pooled, expected.pooled.numpy(), atol=1e-5, rtol=0)
    spec = manifest.graph("fast", "fp32")
    assert spec is not None
    assert spec.parity["max_abs_token_embeddings"] <= 1e-5
    assert spec.parity["min_cosine_pooled"] >= 0.99999


def test_the_maps_graph_gives_exact_causal_probabilities(
    decoder_checkpoint: Path, decoder_artifact: Path
) -> None:
    manifest = verify(decoder_artifact)
    path = graph_file(decoder_artifact, manifest, "maps", "fp32")
    model, _ = load_checkpoint(decoder_checkpoint)
    batch = reference_batch(decoder_checkpoint)
    feeds = {name: batch[name].numpy() for name in DECODER_INPUTS}
    (attentions,) = open_session(path).run(["attentions"], feeds)
    with torch.no_grad():
        expected = torch.stack(model(**batch, output_attentions=True).attentions).numpy()
    assert attentions.shape == expected.shape  # (L, B, heads, T, T)
    mask = batch["attention_mask"].numpy().astype(bool)
    real_rows = np.broadcast_to(mask[None, :, None, :, None], attentions.shape)
    assert np.abs(attentions - expected)[real_rows].max() <= 1e-5
    seq_len = attentions.shape[-1]
    future = np.triu(np.ones((seq_len, seq_len), dtype=bool), k=1)
    assert np.all(attentions[..., future] == 0.0)  # every row, padded or not
    padded_keys = np.broadcast_to(~mask[None, :, None, None, :], attentions.shape)
    assert np.all(attentions[padded_keys & real_rows] == 0.0)
    spec = manifest.graph("maps", "fp32")
    assert spec is not None
    assert spec.parity["max_attention_above_diagonal"] == 0.0


@pytest.mark.parametrize("decoder_checkpoint", [FULL_EXPORT_SHAPE], indirect=True)
def test_int8_passed_the_gate_and_fp16_keeps_norms_and_rotary_angles_in_fp32(
    decoder_artifact: Path,
) -> None:
    manifest = verify(decoder_artifact)
    int8 = manifest.graph("fast", "int8")
    assert int8 is not None
    assert int8.parity["n_texts"] >= GATE_TEXTS
    assert int8.parity["mean_cosine_to_fp32"] >= 0.99
    assert int8.parity["min_cosine_to_fp32"] >= 0.98
    assert int8.providers == ("CPUExecutionProvider",)
    assert int8.int8 is not None
    assert int8.int8.batch_invariance >= MIN_INVARIANCE
    assert op_counts(decoder_artifact / int8.file)["Attention"] == manifest.model.num_layers
    fp16 = manifest.graph("fast", "fp16")
    assert fp16 is not None
    assert fp16.parity["cpu_min_cosine_to_fp32"] >= 0.999
    half = onnx.load(str(decoder_artifact / fp16.file))
    del half.graph.value_info[:]  # the converter leaves some fp32 entries; infer them afresh
    graph = onnx.shape_inference.infer_shapes(half).graph
    assert [o.type.tensor_type.elem_type for o in graph.output] == [TensorProto.FLOAT] * 2
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input]}
    types |= {init.name: init.data_type for init in graph.initializer}
    matmul_weights = [types[n.input[1]] for n in graph.node if n.op_type == "MatMul"]
    assert TensorProto.FLOAT16 in matmul_weights  # the graph really is half precision ...
    kept = [n for n in graph.node if n.op_type in ("RMSNormalization", "Cos", "Sin")]
    assert len(kept) >= 2 * manifest.model.num_layers
    for node in kept:  # ... but norms and rotary angles are computed in fp32
        assert types[node.input[0]] == TensorProto.FLOAT, node.name


@pytest.mark.parametrize("decoder_checkpoint", [FULL_EXPORT_SHAPE], indirect=True)
def test_known_manifest_versions_read_and_a_later_one_is_refused(
    decoder_artifact: Path, tmp_path: Path
) -> None:
    raw = json.loads((decoder_artifact / "manifest.json").read_text())
    version_one = json.loads(json.dumps(raw))
    version_one["format_version"] = 1
    for field in ("family", "causal", "num_kv_heads", "padding_side", "prompts"):
        del version_one["model"][field]
    del version_one["model"]["default_prompt_name"]
    (tmp_path / "manifest.json").write_text(json.dumps(version_one))
    old = read_manifest(tmp_path)
    assert (old.model.family, old.model.causal, old.model.prompts) == ("bert", False, {})
    version_two = json.loads(json.dumps(raw))
    version_two["format_version"] = 2
    for graph in version_two["graphs"]:
        del graph["int8"]  # version 2 had no int8 figures: it still reads
    (tmp_path / "manifest.json").write_text(json.dumps(version_two))
    assert read_manifest(tmp_path).graph("fast", "int8") is not None
    version_two["format_version"] = 3  # but from version 3 an int8 graph must carry them
    (tmp_path / "manifest.json").write_text(json.dumps(version_two))
    with pytest.raises(ArtifactError, match="an int8 graph without its int8 figures"):
        read_manifest(tmp_path)
    raw["format_version"] = 6
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="format_version 6, this server reads 1, 2, 3, 4 and 5"):
        read_manifest(tmp_path)


def test_the_causal_rewrite_refuses_an_attention_it_does_not_expect() -> None:
    node = helper.make_node("Attention", ["q", "k", "v"], ["out"], is_causal=1)
    graph = helper.make_graph([node], "g", [], [])
    with pytest.raises(ValueError, match="expected a masked, non-causal Attention"):
        make_attention_causal(helper.make_model(graph))


@pytest.mark.parametrize("decoder_checkpoint", [FULL_EXPORT_SHAPE], indirect=True)
def test_a_graph_too_big_for_one_file_keeps_its_weights_beside_it(
    decoder_checkpoint: Path,
    decoder_artifact: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Qwen3-Embedding-0.6B's fp32 weights alone pass protobuf's 2 GiB: such graphs keep them in
    ONNX external data. The limit is lowered here so a tiny checkpoint takes that path."""
    monkeypatch.setattr(onnx_files, "INLINE_LIMIT_BYTES", 0)
    out = tmp_path / "external"
    manifest = build_artifact(out, decoder_checkpoint)
    assert verify(out) == manifest  # the data files are hashed and checked like the graphs
    assert {g.precision for g in manifest.graphs} == {"fp32", "int8", "fp16"}
    for graph in manifest.graphs:
        assert onnx_files.data_file(out / graph.file).name in manifest.files
        proto = onnx.load(str(out / graph.file), load_external_data=False)
        assert any(i.data_location == TensorProto.EXTERNAL for i in proto.graph.initializer)
    inline = verify(decoder_artifact)
    assert not any(name.endswith(".data") for name in inline.files)  # small graphs: one file
    batch = reference_batch(decoder_checkpoint)
    rows = zip(batch["input_ids"], batch["attention_mask"], strict=True)
    padded = pad([ids[mask.bool()].tolist() for ids, mask in rows], None, 0)
    checks: list[tuple[Precision, GraphPurpose, str]] = [
        ("fp32", "fast", "pooled"),
        ("fp32", "maps", "attentions"),
        ("int8", "fast", "pooled"),
    ]
    for precision, purpose, output in checks:
        split = Engine(out, manifest, precision, "cpu", 0).run(purpose, padded, [output])
        whole = Engine(decoder_artifact, inline, precision, "cpu", 0).run(purpose, padded, [output])
        np.testing.assert_allclose(split[output], whole[output], atol=1e-6, rtol=0)
