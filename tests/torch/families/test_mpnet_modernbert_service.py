"""MPNet and ModernBERT exported and served end to end: the fast graph's attention fused (its
additive mask carrying MPNet's relative bias or ModernBERT's window), both graphs exact against
our model, and the served vectors equal to sentence-transformers' through all three protocols
(attnserve.v1 over gRPC, the Open Inference Protocol, OpenAI-compatible HTTP), token embeddings
and attention maps equal to transformers', on texts longer than ModernBERT's window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from attnserve.model.checkpoint import load_checkpoint
from attnserve.model.families import ARCHITECTURES
from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import Family, read_manifest
from attnserve.service.client.client import EmbedderClient
from attnserve.service.sessions import open_session
from tests.support.artifacts import ArtifactCache
from tests.support.callers import cosines, oip_vectors, openai_vectors
from tests.support.mpnet_modernbert_checkpoints import (
    MODERNBERT_SHAPES,
    MPNET_SHAPES,
    build_bpe_tokenizer,
    build_modernbert_checkpoint,
    build_mpnet_checkpoint,
    build_wordpiece_tokenizer,
)
from tests.support.servers import ServerThread, server_settings
from tests.support.texts import VARIED_TEXTS

SERVED = {"mpnet-mean": Family.MPNET, "modernbert-cls": Family.MODERNBERT}
CAP = 96  # both served shapes' max_seq_length


@pytest.fixture(scope="module", params=sorted(SERVED))
def served_checkpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    name: str = request.param
    root = tmp_path_factory.mktemp("served-" + name)
    if SERVED[name] is Family.MPNET:
        tokenizer = build_wordpiece_tokenizer(root / "wordpiece.json")
        return build_mpnet_checkpoint(root / name, MPNET_SHAPES[name], tokenizer)
    tokenizer = build_bpe_tokenizer(root / "bpe.json")
    return build_modernbert_checkpoint(root / name, MODERNBERT_SHAPES[name], tokenizer)


@pytest.fixture(scope="module")
def artifact(served_checkpoint: Path, artifacts: ArtifactCache) -> Path:
    return artifacts.get(served_checkpoint, int8=False, fp16=False)


@pytest.fixture(scope="module")
def server(artifact: Path) -> Iterator[ServerThread]:
    running = ServerThread(server_settings(artifact, http_port=0))
    yield running
    running.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[EmbedderClient]:
    with EmbedderClient(server.target) as connected:
        yield connected


def test_both_graphs_are_exact_and_the_fast_one_is_fused(
    served_checkpoint: Path, artifact: Path
) -> None:
    manifest = read_manifest(artifact)
    family = SERVED[served_checkpoint.name]
    assert manifest.model.family == family
    fast, maps = manifest.graph("fast", "fp32"), manifest.graph("maps", "fp32")
    assert fast is not None
    assert maps is not None
    assert fast.inputs == maps.inputs == ("input_ids", "attention_mask")  # no token types
    fused = {"standard": "Attention", "packed_qkv_bias": "com.microsoft.Attention"}
    op = fused[ARCHITECTURES[family].fused_attention]
    model, checkpoint = load_checkpoint(served_checkpoint)
    assert fast.op_counts.get(op) == model.config.num_layers
    assert "Softmax" not in fast.op_counts  # nothing materialises the probabilities
    assert maps.op_counts["Softmax"] == model.config.num_layers
    assert maps.parity["max_abs_attentions"] <= 1e-5
    # Independently of the figures export recorded: the graphs against the model, texts padded,
    # the longest far past ModernBERT's window.
    tokenizer = ReferenceTokenizer(
        checkpoint.tokenizer_path, checkpoint.max_seq_length, model.config.pad_token_id
    )
    batch = tokenizer(VARIED_TEXTS)
    assert int(batch["attention_mask"].sum(1).max()) == CAP
    feeds = {name: batch[name].numpy() for name in fast.inputs}
    tokens, pooled, attentions = open_session(artifact / maps.file).run(None, feeds)
    with torch.no_grad():
        expected = model(**batch, output_attentions=True, normalize=False)
    real = batch["attention_mask"].numpy().astype(bool)
    assert np.abs(tokens - expected.last_hidden_state.numpy())[real].max() <= 1e-4
    rows = np.broadcast_to(real[None, :, None, :, None], attentions.shape)
    assert np.abs(attentions - torch.stack(expected.attentions).numpy())[rows].max() <= 1e-5
    fast_tokens, fast_pooled = open_session(artifact / fast.file).run(None, feeds)
    assert np.abs(fast_tokens - expected.last_hidden_state.numpy())[real].max() <= 1e-4
    np.testing.assert_allclose(fast_pooled, expected.pooled.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(pooled, expected.pooled.numpy(), atol=1e-4, rtol=0)


def test_every_protocol_serves_the_vectors_of_sentence_transformers(
    served_checkpoint: Path, server: ServerThread, client: EmbedderClient
) -> None:
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(str(served_checkpoint), device="cpu")
    expected = st_model.encode(VARIED_TEXTS, convert_to_numpy=True)
    served = client.embed(VARIED_TEXTS)
    assert served.pooled is not None
    found = cosines(served.pooled, expected)
    assert found.min() >= 0.99999, dict(zip(VARIED_TEXTS, found.tolist(), strict=True))
    features = st_model.preprocess(VARIED_TEXTS)
    assert served.token_counts == features["attention_mask"].sum(1).tolist()
    assert served.truncated == [False] * (len(VARIED_TEXTS) - 1) + [True]  # cut at the cap
    name, within_cap = served_checkpoint.name, VARIED_TEXTS[:-1]  # OpenAI refuses longer
    for vectors in (
        oip_vectors(server, name, within_cap),
        openai_vectors(server, name, within_cap),
    ):
        assert vectors.shape == expected[:-1].shape
        assert cosines(vectors, expected[:-1]).min() >= 0.99999


def test_served_token_embeddings_and_maps_equal_transformers(
    served_checkpoint: Path, client: EmbedderClient
) -> None:
    from transformers import AutoModel

    theirs: Any = AutoModel.from_pretrained(str(served_checkpoint), attn_implementation="eager")
    tokenizer = ReferenceTokenizer(
        served_checkpoint / "tokenizer.json", CAP, theirs.config.pad_token_id
    )
    texts = [VARIED_TEXTS[1], VARIED_TEXTS[4], VARIED_TEXTS[-1]]  # the last: longer than a window
    served = client.embed(texts, token_embeddings=True, attention=True, normalize=False)
    for row, text in enumerate(texts):  # each text alone, unpadded, in transformers
        batch = tokenizer([text])
        with torch.no_grad():
            expected = theirs(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_attentions=True,
            )
        n = batch["input_ids"].shape[1]
        tokens, maps = served.token_embeddings[row], served.attentions[row]
        assert tokens is not None
        assert maps is not None
        assert tokens.shape == (n, theirs.config.hidden_size)
        assert np.abs(tokens - expected.last_hidden_state[0].numpy()).max() <= 1e-5
        want = torch.stack(expected.attentions)[:, 0].numpy()  # (layers, heads, n, n)
        assert maps.shape == want.shape
        assert np.abs(maps - want).max() <= 1e-5


def test_info_names_the_family(served_checkpoint: Path, client: EmbedderClient) -> None:
    info = client.info()
    assert (info.family, info.causal) == (SERVED[served_checkpoint.name].value, False)
    assert info.default_max_tokens == CAP
