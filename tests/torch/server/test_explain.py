"""Explain on embedders, end to end on loopback: for every mean-pooled family the token-pair
cells sum to the cosine Embed serves (within 1e-5, with Matryoshka `dimensions` and a prompt
too), rollout equals a numpy implementation written from the paper over transformers' eager
attention maps (encoders with mean and CLS pooling, a decoder), and what cannot be explained
exactly (the decomposition under CLS or last-token pooling) is refused with a clear status."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support.decoders import DECODER_SHAPES
from tests.support.mpnet_modernbert_checkpoints import (
    MODERNBERT_SHAPES,
    MPNET_SHAPES,
    build_bpe_tokenizer,
    build_modernbert_checkpoint,
    build_mpnet_checkpoint,
    build_wordpiece_tokenizer,
)
from tests.support.rollout import paper_rollout
from tests.support.servers import ServerThread, server_settings

FIRST = "The bank by the river flooded after the storm."
SECOND = "Heavy rain made the river burst its banks."
# Every mean-pooled family: BERT (the packaged all-MiniLM-L6-v2), the BERT-likes, MPNet and
# ModernBERT; CamemBERT carries a prompt, which is pooled, so it has cells too.
MEAN_FAMILIES = (
    "minilm", "roberta", "xlm-roberta", "camembert-prompt", "distilbert", "mpnet-mean",
    "modernbert-mlm-mean",
)  # fmt: skip
PROMPT = "query: "


def stub(server: ServerThread) -> embedder_pb2_grpc.EmbedderStub:
    return embedder_pb2_grpc.EmbedderStub(grpc.insecure_channel(server.target))  # type: ignore[no-untyped-call]


def served_cosine(server: ServerThread, dimensions: int = 0, prompt: str | None = None) -> float:
    """The cosine of the two texts' vectors as Embed serves them."""
    options = pb.EmbedOptions(dimensions=dimensions, normalize=False)
    if prompt is not None:
        options.prompt_name = prompt
    answer = stub(server).Embed(pb.EmbedRequest(texts=[FIRST, SECOND], options=options))
    a, b = wire.decode(answer.pooled).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def eager_attentions(folder: Path, ids: list[int], token_types: bool) -> list[np.ndarray]:
    """transformers' eager attention probabilities for one unpadded text, per layer."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    feeds = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids))}
    if token_types:
        feeds["token_type_ids"] = torch.zeros(1, len(ids), dtype=torch.long)
    with torch.no_grad():
        out = model(**feeds, output_attentions=True)
    return [layer[0].numpy() for layer in out.attentions]


@pytest.fixture(scope="module", params=MEAN_FAMILIES)
def mean_server(
    request: pytest.FixtureRequest,
    artifact_dir: Path,
    encoder_checkpoints: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerThread]:
    from attnserve.export.artifact import build_artifact

    name: str = request.param
    root = tmp_path_factory.mktemp("explain-" + name)
    if name == "minilm":
        artifact = artifact_dir
    else:
        if name == "mpnet-mean":
            tokenizer = build_wordpiece_tokenizer(root / "wordpiece.json")
            checkpoint = build_mpnet_checkpoint(root / name, MPNET_SHAPES[name], tokenizer)
        elif name == "modernbert-mlm-mean":
            tokenizer = build_bpe_tokenizer(root / "bpe.json")
            shape = MODERNBERT_SHAPES[name]
            checkpoint = build_modernbert_checkpoint(root / name, shape, tokenizer)
        elif name == "camembert-prompt":  # a copy, so the shared checkpoint stays prompt-free
            checkpoint = shutil.copytree(encoder_checkpoints("camembert"), root / name)
            config = checkpoint / "config_sentence_transformers.json"
            settings = json.loads(config.read_text()) if config.exists() else {}
            settings["prompts"] = {"query": PROMPT}
            config.write_text(json.dumps(settings))
        else:
            checkpoint = encoder_checkpoints(name)
        artifact = root / "artifact"
        build_artifact(artifact, checkpoint, int8=False, fp16=False)
    running = ServerThread(server_settings(artifact, http_port=0, warmup=False))
    if name == "camembert-prompt":  # the prompt case below must run somewhere
        assert running.running.assembly.models.route("").manifest.model.prompts["query"] == PROMPT
    yield running
    running.stop()


def explain_pair(server: ServerThread, **fields: object) -> pb.ExplainResponse:
    answer: pb.ExplainResponse = stub(server).Explain(
        pb.ExplainRequest(texts=[FIRST, SECOND], **fields)  # type: ignore[arg-type]
    )
    return answer


def test_the_cells_sum_to_the_served_cosine(mean_server: ServerThread) -> None:
    hidden = mean_server.running.assembly.models.route("").manifest.model.hidden_size
    cases: list[dict[str, object]] = [{}, {"dimensions": hidden // 2}, {"rollout": True}]
    prompts = mean_server.running.assembly.models.route("").manifest.model.prompts
    if prompts.get("query"):  # sentence-transformers saves empty ones by default: not those
        cases.append({"prompt_name": "query"})
    for fields in cases:
        answer = explain_pair(mean_server, **fields)
        cells = wire.decode(answer.similarity.cells).astype(np.float64)
        n, m = (len(text.tokens) for text in answer.texts)
        assert cells.shape == (n, m)
        prompt = fields.get("prompt_name")
        dims = fields.get("dimensions", 0)
        assert isinstance(dims, int)
        expected = served_cosine(mean_server, dims, prompt if isinstance(prompt, str) else None)
        assert abs(cells.sum() - expected) <= 1e-5, fields
        assert abs(answer.similarity.cosine - expected) <= 1e-5
        assert abs(answer.similarity.cells_sum - cells.sum()) <= 1e-6
        assert answer.similarity.dimensions == (dims or hidden)
        shares = (
            wire.decode(answer.similarity.first_shares),
            wire.decode(answer.similarity.second_shares),
        )
        np.testing.assert_allclose(shares[0], cells.sum(axis=1), atol=1e-6)
        np.testing.assert_allclose(shares[1], cells.sum(axis=0), atol=1e-6)
        assert answer.pooling == "mean"
        if prompt:  # the prompt's tokens were pooled: they are rows of the matrix
            assert answer.prompt_name == "query"
            assert answer.texts[0].prompt_tokens > 0
            assert answer.texts[0].tokens[1].prompt
        relevance = [text.HasField("relevance") for text in answer.texts]
        assert relevance == [bool(fields.get("rollout"))] * 2


def test_the_same_request_gives_the_same_bits(mean_server: ServerThread) -> None:
    one, two = explain_pair(mean_server), explain_pair(mean_server)
    assert one.similarity.cells.data == two.similarity.cells.data


def test_rollout_equals_the_paper_over_transformers_eager_maps(
    server: ServerThread, checkpoint_dir: Path
) -> None:
    """The encoder: all-MiniLM-L6-v2 (mean pooling: the mean of the rollout's rows)."""
    answer = stub(server).Explain(pb.ExplainRequest(texts=[FIRST]))
    (text,) = answer.texts
    ids = [token.id for token in text.tokens]
    joint = paper_rollout(eager_attentions(checkpoint_dir, ids, token_types=True))
    relevance = wire.decode(text.relevance)
    assert answer.pooling == "mean"
    np.testing.assert_allclose(relevance, joint.mean(axis=0), atol=1e-5)
    assert abs(float(relevance.sum()) - 1.0) <= 1e-5  # each rollout row is a distribution


@pytest.fixture(scope="module")
def decoder(
    tmp_path_factory: pytest.TempPathFactory, decoder_tokenizer_file: Path
) -> Iterator[tuple[Path, ServerThread]]:
    """A Qwen2 decoder (last-token pooling), fp32 only."""
    from attnserve.export.artifact import build_artifact
    from tests.support.reference import build_decoder_checkpoint

    root = tmp_path_factory.mktemp("explain-decoder")
    checkpoint = build_decoder_checkpoint(
        root / "qwen2", DECODER_SHAPES["qwen2"], decoder_tokenizer_file
    )
    build_artifact(root / "artifact", checkpoint, int8=False, fp16=False)
    running = ServerThread(server_settings(root / "artifact", http_port=0, warmup=False))
    yield checkpoint, running
    running.stop()


def test_a_decoder_s_rollout_is_read_from_its_last_token(
    decoder: tuple[Path, ServerThread],
) -> None:
    checkpoint, running = decoder
    answer = stub(running).Explain(pb.ExplainRequest(texts=[FIRST]))
    (text,) = answer.texts
    ids = [token.id for token in text.tokens]
    joint = paper_rollout(eager_attentions(checkpoint, ids, token_types=False))
    assert answer.pooling == "last"
    np.testing.assert_allclose(wire.decode(text.relevance), joint[-1], atol=1e-5)


def test_no_decomposition_where_pooling_is_not_the_mean(
    decoder: tuple[Path, ServerThread],
) -> None:
    _, running = decoder
    with pytest.raises(grpc.RpcError) as refused:
        stub(running).Explain(pb.ExplainRequest(texts=[FIRST, SECOND]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "mean pooling only" in str(refused.value.details())
    assert "pools last" in str(refused.value.details())


def refusal(server: ServerThread, request: pb.ExplainRequest) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        stub(server).Explain(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    return str(refused.value.details())


def test_what_cannot_be_explained_is_refused_clearly(
    server: ServerThread, make_server: Callable[..., ServerThread]
) -> None:
    assert "got 3" in refusal(server, pb.ExplainRequest(texts=["a", "b", "c"]))
    assert "got 0" in refusal(server, pb.ExplainRequest())
    both = pb.ExplainRequest(texts=["a"], query="q", documents=["d"])
    assert "not both" in refusal(server, both)
    assert "needs a reranker" in refusal(server, pb.ExplainRequest(query="q", documents=["d"]))
    assert "dimensions must be in" in refusal(
        server, pb.ExplainRequest(texts=["a", "b"], dimensions=10_000)
    )
    assert "is unknown" in refusal(server, pb.ExplainRequest(texts=["a"], prompt_name="nope"))
    small = make_server(max_attention_elements=1000)
    details = refusal(small, pb.ExplainRequest(texts=[FIRST]))
    assert "max_attention_elements" in details
    assert "rollout" in details


def test_http_answers_as_attnserve_v1(
    server: ServerThread, make_server: Callable[..., ServerThread]
) -> None:
    running = make_server(http_port=0)
    url = f"http://127.0.0.1:{running.running.http_port}/v1/explain"

    def post(body: object) -> tuple[int, dict[str, object]]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, answer = post({"texts": [FIRST, SECOND], "rollout": True})
    assert status == 200
    expected = stub(running).Explain(pb.ExplainRequest(texts=[FIRST, SECOND], rollout=True))
    similarity = answer["similarity"]
    assert isinstance(similarity, dict)
    np.testing.assert_array_equal(
        np.array(similarity["cells"], dtype=np.float32), wire.decode(expected.similarity.cells)
    )
    texts = answer["texts"]
    assert isinstance(texts, list)
    assert texts[0]["tokens"] == [token.text for token in expected.texts[0].tokens]
    np.testing.assert_array_equal(
        np.array(texts[1]["relevance"], dtype=np.float32), wire.decode(expected.texts[1].relevance)
    )
    bad: object
    for bad in ({"texts": "one"}, {"texts": ["a"], "dimensions": "x"}, {"query": 3}, []):
        status, error = post(bad)
        assert status == 400, (bad, error)


@pytest.fixture(scope="module")
def cls_encoder(
    encoder_checkpoints: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ServerThread]]:
    """A RoBERTa with CLS pooling, fp32 only."""
    from attnserve.export.artifact import build_artifact

    checkpoint = encoder_checkpoints("roberta-cls")
    artifact = tmp_path_factory.mktemp("explain-cls") / "artifact"
    build_artifact(artifact, checkpoint, int8=False, fp16=False)
    running = ServerThread(server_settings(artifact, warmup=False))
    yield checkpoint, running
    running.stop()


def test_cls_pooling_is_refused_the_decomposition_and_reads_rollout_from_cls(
    cls_encoder: tuple[Path, ServerThread],
) -> None:
    checkpoint, running = cls_encoder
    details = refusal(running, pb.ExplainRequest(texts=[FIRST, SECOND]))
    assert "mean pooling only" in details
    assert "pools cls" in details
    answer = stub(running).Explain(pb.ExplainRequest(texts=[FIRST]))
    (text,) = answer.texts
    ids = [token.id for token in text.tokens]
    joint = paper_rollout(eager_attentions(checkpoint, ids, token_types=False))
    assert answer.pooling == "cls"
    np.testing.assert_allclose(wire.decode(text.relevance), joint[0], atol=1e-5)
