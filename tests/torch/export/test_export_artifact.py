"""The artifact: fused graphs, exact maps, gated int8, and a manifest that catches tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from attnserve.export.graphs import FAST_OUTPUTS, FastGraph, export_graph, fuse_in_place, op_counts
from attnserve.export.int8_gate import (
    GATE_TEXTS,
    GOAL_MEAN_COSINE,
    GOAL_NN_AGREEMENT,
    MIN_INVARIANCE,
)
from attnserve.export.quantize import build_int8
from attnserve.model import Encoder
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import ArtifactError, Manifest, verify
from attnserve.service.sessions import open_session
from tests.support.reference import Reference
from tests.support.texts import VARIED_TEXTS


def cpu_session(path: Path) -> ort.InferenceSession:
    return open_session(path)


def test_tiny_encoder_exports_one_fused_attention_per_layer(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    path = tmp_path / "tiny.onnx"
    export_graph(FastGraph(tiny_encoder), FAST_OUTPUTS, path)
    assert op_counts(path)["Attention"] == tiny_encoder.config.num_layers  # opset-23 standard
    fuse_in_place(path, tiny_encoder.config.num_heads)
    counts = op_counts(path)
    assert counts["com.microsoft.Attention"] == tiny_encoder.config.num_layers
    assert "Attention" not in counts
    assert "Softmax" not in counts
    ids = np.array([[5, 6, 7, 8, 9], [5, 6, 0, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    _tokens, pooled = cpu_session(path).run(None, {
        "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)
    })  # fmt: skip
    with torch.no_grad():
        expected = tiny_encoder(torch.from_numpy(ids), torch.from_numpy(mask), normalize=False)
    np.testing.assert_allclose(pooled, expected.pooled.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def manifest(artifact_dir: Path) -> Manifest:
    return verify(artifact_dir)


class TestPackagedArtifact:
    def test_fast_graph_has_one_attention_per_layer_and_no_loose_softmax(
        self, artifact_dir: Path, manifest: Manifest
    ) -> None:
        fast = manifest.graph("fast", "fp32")
        assert fast is not None
        counts = op_counts(artifact_dir / fast.file)
        assert counts == fast.op_counts  # the manifest tells the truth
        assert counts["com.microsoft.Attention"] == manifest.model.num_layers == 6
        assert "Attention" not in counts  # every standard Attention was fused
        assert "Softmax" not in counts
        assert counts["LayerNormalization"] == 13  # embeddings + 2 per layer
        assert counts["Gelu"] == 6
        graph = onnx.load(str(artifact_dir / fast.file), load_external_data=False).graph
        for node in graph.node:  # never materialises probabilities
            if node.op_type == "Attention":
                assert len([o for o in node.output if o]) == 1  # no probabilities, no KV cache

    def test_fast_graph_matches_the_model_on_a_padded_batch(
        self, artifact_dir: Path, manifest: Manifest, reference: Reference
    ) -> None:
        fast = manifest.graph("fast", "fp32")
        assert fast is not None
        batch = reference.tokenizer(VARIED_TEXTS)
        feeds = {name: tensor.numpy() for name, tensor in batch.items()}
        tokens, pooled = cpu_session(artifact_dir / fast.file).run(list(FAST_OUTPUTS), feeds)
        with torch.no_grad():
            expected = reference.encoder(**batch, normalize=False)
        real = batch["attention_mask"].numpy().astype(bool)
        assert np.abs(tokens - expected.last_hidden_state.numpy())[real].max() <= 1e-4
        theirs = expected.pooled.numpy()
        cosines = (
            (pooled * theirs).sum(1)
            / np.linalg.norm(pooled, axis=1)
            / np.linalg.norm(theirs, axis=1)
        )
        assert cosines.min() >= 0.99999
        assert fast.parity["min_cosine_pooled"] >= 0.99999

    def test_maps_graph_gives_the_models_attention(
        self, artifact_dir: Path, manifest: Manifest, reference: Reference
    ) -> None:
        maps = manifest.graph("maps", "fp32")
        assert maps is not None
        batch = reference.tokenizer(VARIED_TEXTS[:6])
        feeds = {name: tensor.numpy() for name, tensor in batch.items()}
        (attentions,) = cpu_session(artifact_dir / maps.file).run(["attentions"], feeds)
        with torch.no_grad():
            expected = torch.stack(reference.encoder(**batch, output_attentions=True).attentions)
        mask = batch["attention_mask"].numpy().astype(bool)
        assert attentions.shape == tuple(expected.shape)  # (L, B, nh, T, T)
        real_rows = np.broadcast_to(mask[None, :, None, :, None], attentions.shape)
        assert np.abs(attentions - expected.numpy())[real_rows].max() <= 1e-5
        np.testing.assert_allclose(attentions.sum(-1)[real_rows[..., 0]], 1.0, atol=1e-5)
        padded_keys = np.broadcast_to(~mask[None, :, None, None, :], attentions.shape)
        assert np.all(attentions[padded_keys] == 0.0)

    def test_int8_passed_the_gate_and_says_so(self, manifest: Manifest) -> None:
        int8 = manifest.graph("fast", "int8")
        assert int8 is not None
        assert int8.parity["n_texts"] >= GATE_TEXTS
        assert int8.parity["mean_cosine_to_fp32"] >= 0.99
        assert int8.parity["min_cosine_to_fp32"] >= 0.98
        assert "CUDAExecutionProvider" not in int8.providers
        assert int8.int8 is not None  # how it was made, and what it costs for retrieval
        assert int8.int8.batch_invariance >= MIN_INVARIANCE
        assert int8.int8.held_out_texts >= GATE_TEXTS
        assert 0.5 < int8.int8.top10_overlap <= 1.0

    def test_int8_of_the_packaged_model_meets_the_goal_and_says_how(
        self, manifest: Manifest
    ) -> None:
        """Smoothed, with the few products the gate measured most sensitive kept in fp32."""
        int8 = manifest.graph("fast", "int8")
        assert int8 is not None
        assert int8.int8 is not None
        assert int8.parity["mean_cosine_to_fp32"] >= GOAL_MEAN_COSINE
        assert int8.int8.nn_agreement >= GOAL_NN_AGREEMENT
        assert "smoothed" in int8.int8.method
        assert "meets the goal" in int8.int8.method
        assert 0 < len(int8.int8.fp32_nodes) <= 8  # a few products, not whole layers

    def test_manifest_records_the_contract(self, manifest: Manifest) -> None:
        assert (manifest.model.family, manifest.model.causal) == ("bert", False)
        assert (manifest.model.prompts, manifest.model.default_prompt_name) == ({}, None)
        assert manifest.model.max_positions == 512
        assert manifest.tokenizer.default_max_tokens == 256
        assert {g.file for g in manifest.graphs} | {"tokenizer.json"} == set(manifest.files)
        assert {"torch", "onnx", "onnxruntime"} <= set(manifest.tools)
        for graph in manifest.graphs:
            assert graph.opset == 23
            assert graph.inputs == ("input_ids", "attention_mask", "token_type_ids")


@pytest.mark.slow  # its own int8 stage of the packaged export: the gate bites
def test_damaged_int8_graph_is_never_written(
    artifact_dir: Path, reference: Reference, tmp_path: Path
) -> None:
    manifest = verify(artifact_dir)
    fast = manifest.graph("fast", "fp32")
    assert fast is not None

    def add_noise(path: Path) -> None:
        model = onnx.load(str(path))
        rng = np.random.default_rng(1)
        for init in model.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 2:
                weights = onnx.numpy_helper.to_array(init)
                noisy = weights + rng.normal(scale=weights.std(), size=weights.shape)
                init.CopyFrom(onnx.numpy_helper.from_array(noisy.astype(np.float32), init.name))
        onnx.save(model, str(path))

    out = tmp_path / "int8.onnx"
    tokenizer = ReferenceTokenizer(artifact_dir / "tokenizer.json", 256)
    result = build_int8(artifact_dir / fast.file, out, tokenizer, fast.inputs, damage=add_noise)
    assert result.name is None
    assert not result.quality.passed
    assert not out.exists()


# --- verify --------------------------------------------------------------------------------------


@pytest.fixture
def artifact_copy(artifact_dir: Path, tmp_path: Path) -> Path:
    """A small artifact-shaped copy (tokenizer + manifest) so tampering tests stay fast."""
    copy = tmp_path / "artifact"
    copy.mkdir()
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    shutil.copy(artifact_dir / "tokenizer.json", copy / "tokenizer.json")
    manifest["graphs"] = []
    manifest["files"] = {"tokenizer.json": manifest["files"]["tokenizer.json"]}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    verify(copy)
    return copy


def test_verify_catches_a_flipped_byte(artifact_copy: Path) -> None:
    path = artifact_copy / "tokenizer.json"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"tokenizer\.json: sha256 does not match"):
        verify(artifact_copy)


def test_verify_catches_a_truncated_file(artifact_copy: Path) -> None:
    path = artifact_copy / "tokenizer.json"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match=r"tokenizer\.json: \d+ bytes, the manifest says"):
        verify(artifact_copy)


def test_verify_catches_a_missing_file(artifact_copy: Path) -> None:
    (artifact_copy / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match=r"tokenizer\.json: missing"):
        verify(artifact_copy)


def test_verify_catches_a_manifest_naming_an_absent_file(artifact_copy: Path) -> None:
    manifest = json.loads((artifact_copy / "manifest.json").read_text())
    manifest["graphs"] = [
        {
            "file": "ghost.onnx", "purpose": "fast", "precision": "fp32", "providers": [],
            "opset": 23, "op_counts": {}, "inputs": [], "outputs": [],
            "graph_optimization_level": "ORT_ENABLE_ALL", "parity": {},
        }
    ]  # fmt: skip
    (artifact_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"ghost\.onnx: used by the manifest but has no hash"):
        verify(artifact_copy)
    manifest["files"]["ghost.onnx"] = {"sha256": "0" * 64, "bytes": 10}
    (artifact_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"ghost\.onnx: missing"):
        verify(artifact_copy)


def test_verify_refuses_a_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"manifest\.json: not found"):
        verify(tmp_path)
