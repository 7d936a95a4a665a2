"""RoBERTa, XLM-RoBERTa and DistilBERT checkpoints exported and served end to end: the same
vectors as sentence-transformers through all three protocols (attnserve.v1 over gRPC, the Open
Inference Protocol, OpenAI-compatible HTTP), token embeddings and attention maps as
transformers', and the family written in the manifest and said by Info."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch

from attnserve.model.tokenization import ReferenceTokenizer
from attnserve.service.artifact import read_manifest
from attnserve.service.client.client import EmbedderClient
from tests.support.callers import cosines, oip_vectors, openai_vectors
from tests.support.encoder_families import ENCODER_SHAPES, poison_token
from tests.support.servers import ServerThread, metric
from tests.support.texts import VARIED_TEXTS


@pytest.fixture(scope="module")
def st_model(served_family_checkpoint: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(served_family_checkpoint), device="cpu")


@pytest.fixture
def family_client(family_server: ServerThread) -> Iterator[EmbedderClient]:
    with EmbedderClient(family_server.target) as connected:
        yield connected


def test_every_protocol_serves_the_vectors_of_sentence_transformers(
    served_family_checkpoint: Path,
    family_server: ServerThread,
    family_client: EmbedderClient,
    st_model: Any,
) -> None:
    shape = ENCODER_SHAPES[served_family_checkpoint.name]
    expected = st_model.encode(VARIED_TEXTS, convert_to_numpy=True)
    served = family_client.embed(VARIED_TEXTS)
    assert served.pooled is not None
    assert cosines(served.pooled, expected).min() >= 0.99999
    features = st_model.preprocess(VARIED_TEXTS)
    assert served.token_counts == features["attention_mask"].sum(1).tolist()
    assert served.truncated == [False] * (len(VARIED_TEXTS) - 1) + [True]  # cut at the cap
    assert max(served.token_counts) == shape.max_seq_length
    name, within_cap = served_family_checkpoint.name, VARIED_TEXTS[:-1]  # OpenAI refuses longer
    for vectors in (
        oip_vectors(family_server, name, within_cap),
        openai_vectors(family_server, name, within_cap),
    ):
        assert vectors.shape == expected[:-1].shape
        assert cosines(vectors, expected[:-1]).min() >= 0.99999


def test_served_token_embeddings_and_maps_equal_transformers(
    served_family_checkpoint: Path, family_client: EmbedderClient
) -> None:
    from transformers import AutoModel

    theirs = AutoModel.from_pretrained(str(served_family_checkpoint), attn_implementation="eager")
    shape = ENCODER_SHAPES[served_family_checkpoint.name]
    pad_id = theirs.config.pad_token_id
    tokenizer = ReferenceTokenizer(
        served_family_checkpoint / "tokenizer.json", shape.max_seq_length, pad_id
    )
    texts = VARIED_TEXTS[:6]
    served = family_client.embed(texts, token_embeddings=True, attention=True, normalize=False)
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
        assert tokens.shape == (n, shape.hidden_size)
        assert np.abs(tokens - expected.last_hidden_state[0].numpy()).max() <= 1e-5
        want = torch.stack(expected.attentions)[:, 0].numpy()  # (layers, heads, n, n)
        assert maps.shape == want.shape
        assert np.abs(maps - want).max() <= 1e-5


def test_the_manifest_and_info_name_the_family(
    served_family_checkpoint: Path, family_artifact: Path, family_client: EmbedderClient
) -> None:
    shape = ENCODER_SHAPES[served_family_checkpoint.name]
    manifest = read_manifest(family_artifact)
    assert manifest.model.family == shape.family
    fast = manifest.graph("fast", "fp32")
    assert fast is not None
    assert fast.inputs == ("input_ids", "attention_mask")  # no token types for these families
    assert fast.op_counts["com.microsoft.Attention"] == shape.num_layers
    pad_id = 0 if shape.family == "distilbert" else 1
    assert manifest.tokenizer.pad_token_id == pad_id
    offset = 0 if shape.family == "distilbert" else 2
    assert manifest.model.max_positions == shape.max_positions - offset
    info = family_client.info()
    assert (info.family, info.causal, info.pooling) == (shape.family, False, shape.pooling)
    assert (manifest.graph("fast", "int8") is not None) == (shape.family == "roberta")


def test_a_nan_output_is_never_served(
    family_artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from attnserve.service.server import finite
    from tests.support.servers import server_settings

    clean, tainted = "hello", "Привет, как дела?"
    tokenizer = ReferenceTokenizer(family_artifact / "tokenizer.json", 64)
    clean_ids = set(tokenizer([clean])["input_ids"][0].tolist())
    token_id = next(i for i in tokenizer([tainted])["input_ids"][0].tolist() if i not in clean_ids)
    poisoned = poison_token(family_artifact, tmp_path / "poisoned", token_id)
    finite.logged = False  # this process may have logged one already
    running = ServerThread(server_settings(poisoned, warmup=False))
    try:
        with EmbedderClient(running.target) as client:
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as raised:
                    client.embed([clean, tainted])
                error: Any = raised.value
                assert error.code() == grpc.StatusCode.INTERNAL
                assert "NaN or Inf for text 1" in error.details()
            for options in ({}, {"token_embeddings": True, "attention": True}):
                served = client.embed([clean], **options)  # type: ignore[arg-type]
                assert served.pooled is not None
                assert np.isfinite(served.pooled).all()
        registry = running.running.assembly.metrics.registry
        assert metric(registry, "attnserve_non_finite_outputs_total") == 2
        logged = [r for r in caplog.records if r.name == finite.__name__]
        assert len(logged) == 1  # once, however often it happens
    finally:
        running.stop()
