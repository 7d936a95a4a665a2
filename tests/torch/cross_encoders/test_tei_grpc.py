"""TEI's gRPC API (`tei.v1`) as a TEI user calls it: TEI's `tei.proto` compiled by
`grpc_tools.protoc` into a folder, its stubs imported from there (never attnserve's) in a client
process of their own (tests/support/tei_user.py says why), against a real server on loopback
serving the packaged all-MiniLM-L6-v2 (the default) beside a reranker, on the one port that also
serves attnserve.v1 and OIP.

The judge is attnserve.v1 on the same server: TEI's vectors equal its Embed's (cos >= 0.99999),
its rerank scores are within 1e-5 of its Rerank's, its token ids are its Tokenize's; a refusal
is the status TEI gives it; Decode is the tokenizer library's own decode.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from tokenizers import Tokenizer

from attnserve.service import wire
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc
from tests.support import ROOT
from tests.support.cross_encoders import DOCUMENTS, QUERY
from tests.support.servers import ServerThread, server_settings
from tests.support.texts import VARIED_TEXTS

EMBEDDER, RERANKER = "mini", "rr"
TEXTS = VARIED_TEXTS[:4]
LONG = " ".join(["attention"] * 400)  # over the embedder's 256 tokens
Answer = dict[str, Any]


@pytest.fixture(scope="module")
def tei_stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TEI's proto compiled as its README tells a Python user to: grpc_tools.protoc."""
    from grpc_tools import protoc

    folder = tmp_path_factory.mktemp("tei-user")
    shutil.copy(ROOT / "proto" / "attnserve" / "tei" / "tei.proto", folder / "tei.proto")
    args = ["protoc", f"-I{folder}", f"--python_out={folder}", f"--grpc_python_out={folder}"]
    assert protoc.main([*args, str(folder / "tei.proto")]) == 0
    return folder


@pytest.fixture(scope="module")
def pod(
    artifact_dir: Path, cross_encoder_artifacts: Callable[[str], Path]
) -> Iterator[ServerThread]:
    reranker = cross_encoder_artifacts("bert-reranker")
    entries = [f"{EMBEDDER}={artifact_dir}", f"{RERANKER}={reranker}"]
    running = ServerThread(server_settings(entries, warmup=False))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def classifier(cross_encoder_artifacts: Callable[[str], Path]) -> Iterator[ServerThread]:
    """A server of one three-label classifier: no embedder, no re-ranker."""
    running = ServerThread(
        server_settings(cross_encoder_artifacts("bert-classifier"), warmup=False)
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tei(tei_stubs: Path, pod: ServerThread) -> Callable[..., list[Answer]]:
    """Run a plan of TEI calls (tei_user.py) against the pod; one answer per call."""

    def run(*plan: dict[str, Any], target: str | None = None) -> list[Answer]:
        script = ROOT / "tests" / "support" / "tei_user.py"
        done = subprocess.run(
            [sys.executable, str(script), str(tei_stubs), target or pod.target],
            input=json.dumps(list(plan)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answers: list[Answer] = json.loads(done.stdout)
        return answers

    return run


def unary(service: str, method: str, request: dict[str, Any]) -> dict[str, Any]:
    return {"service": service, "method": method, "kind": "unary", "requests": [request]}


def v1(server: ServerThread) -> embedder_pb2_grpc.EmbedderStub:
    channel = grpc.insecure_channel(server.target)
    return embedder_pb2_grpc.EmbedderStub(channel)  # type: ignore[no-untyped-call]


def v1_pooled(server: ServerThread, texts: list[str], **options: Any) -> np.ndarray:
    answer = v1(server).Embed(pb.EmbedRequest(texts=texts, options=pb.EmbedOptions(**options)))
    return wire.decode(answer.pooled)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dots = (a * b).sum(axis=1)
    result: np.ndarray = dots / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return result


def ok(answer: Answer) -> dict[str, Any]:
    assert answer["code"] == "OK", answer
    response: dict[str, Any] = answer["responses"][0]
    return response


def test_embed_answers_attnserve_v1_s_vectors(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    answers = tei(
        *(unary("Embed", "Embed", {"inputs": text}) for text in TEXTS),
        *(unary("Embed", "Embed", {"inputs": text, "normalize": False}) for text in TEXTS),
        *(unary("Embed", "Embed", {"inputs": text, "dimensions": 16}) for text in TEXTS),
    )
    unit, raw, short = (
        np.array([ok(answer)["embeddings"] for answer in answers[at : at + 4]], np.float32)
        for at in (0, 4, 8)
    )
    # TEI's default is normalize=true: unit vectors, attnserve.v1's normalised ones.
    assert cosines(unit, v1_pooled(pod, TEXTS, normalize=True)).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    reference = v1_pooled(pod, TEXTS, normalize=False)
    assert cosines(raw, reference).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), np.linalg.norm(reference, axis=1),
                               rtol=1e-5)  # fmt: skip
    assert short.shape == (4, 16)
    assert cosines(short, v1_pooled(pod, TEXTS, dimensions=16, normalize=True)).min() >= 0.99999
    metadata = ok(answers[0])["metadata"]
    assert int(metadata["compute_chars"]) == len(TEXTS[0])
    assert int(metadata["compute_tokens"]) > 2
    assert int(metadata["total_time_ns"]) >= int(metadata["inference_time_ns"]) > 0


def test_embed_truncates_only_when_asked_and_on_the_side_asked(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    refused, right, left = tei(
        unary("Embed", "Embed", {"inputs": LONG + " end"}),
        unary("Embed", "Embed", {"inputs": LONG + " end", "truncate": True}),
        unary("Embed", "Embed", {"inputs": "start " + LONG, "truncate": True,
                                 "truncation_direction": "TRUNCATION_DIRECTION_LEFT"}),
    )  # fmt: skip
    assert refused["code"] == "INVALID_ARGUMENT"
    assert "tokens" in refused["details"]
    assert "truncation" in refused["details"]
    kept_start = v1_pooled(pod, [LONG + " end"], truncate=pb.TRUNCATE_END, normalize=True)
    kept_end = v1_pooled(pod, ["start " + LONG], truncate=pb.TRUNCATE_START, normalize=True)
    assert cosines(np.array([ok(right)["embeddings"]]), kept_start)[0] >= 0.99999
    assert cosines(np.array([ok(left)["embeddings"]]), kept_end)[0] >= 0.99999


def test_embed_all_answers_every_token_s_vector(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    (answer,) = tei(unary("Embed", "EmbedAll", {"inputs": TEXTS[1]}))
    tokens = np.array([row["embeddings"] for row in ok(answer)["token_embeddings"]])
    options = pb.EmbedOptions(pooled=False, token_embeddings=True)
    reference = v1(pod).Embed(pb.EmbedRequest(texts=[TEXTS[1]], options=options))
    expected = wire.decode(reference.results[0].token_embeddings)
    assert tokens.shape == expected.shape
    assert cosines(tokens, expected).min() >= 0.99999


def test_embed_sparse_is_unimplemented_saying_why(tei: Callable[..., list[Answer]]) -> None:
    (answer,) = tei(unary("Embed", "EmbedSparse", {"inputs": "hello"}))
    assert answer["code"] == "UNIMPLEMENTED"
    assert "SPLADE" in answer["details"]
    assert "Embed" in answer["details"]


def test_bad_embed_requests_get_tei_s_statuses(tei: Callable[..., list[Answer]]) -> None:
    empty, dimensions, prompt = tei(
        unary("Embed", "Embed", {"inputs": ""}),
        unary("Embed", "Embed", {"inputs": "hello", "dimensions": 100_000}),
        unary("Embed", "Embed", {"inputs": "hello", "prompt_name": "nonexistent"}),
    )
    for answer in (empty, dimensions, prompt):
        assert answer["code"] == "INVALID_ARGUMENT", answer
    assert "empty" in empty["details"]
    assert "dimensions" in dimensions["details"]
    assert "nonexistent" in prompt["details"]


def test_tokenize_answers_attnserve_v1_s_ids_and_tei_s_offsets(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    texts = ["The bank by the river", "Café naïve — 東京 ok"]
    answers = tei(
        *(unary("Tokenize", "Tokenize", {"inputs": t, "add_special_tokens": True}) for t in texts),
        *(unary("Tokenize", "Tokenize", {"inputs": t}) for t in texts),
    )
    reference = v1(pod).Tokenize(pb.TokenizeRequest(texts=texts))
    for text, answer, plain, expected in zip(texts, answers[:2], answers[2:], reference.texts,
                                             strict=True):  # fmt: skip
        tokens = ok(answer)["tokens"]
        assert [int(token["id"]) for token in tokens] == [token.id for token in expected.tokens]
        for token in tokens:
            if token["special"]:  # TEI: the token's own string, no offsets
                assert "start" not in token
                assert token["text"].startswith("[")
            else:  # the input's slice, at UTF-8 byte offsets
                piece = text.encode()[int(token["start"]) : int(token["stop"])].decode()
                assert piece == token["text"]
        without = ok(plain)["tokens"]  # add_special_tokens false (proto3's default)
        assert [t["id"] for t in without] == [t["id"] for t in tokens if not t["special"]]


def test_decode_is_the_tokenizer_s_own(
    tei: Callable[..., list[Answer]], artifact_dir: Path
) -> None:
    tokenizer = Tokenizer.from_file(str(artifact_dir / "tokenizer.json"))
    ids = tokenizer.encode("The bank by the river").ids
    kept, skipped, empty, outside = tei(
        unary("Tokenize", "Decode", {"ids": ids}),
        unary("Tokenize", "Decode", {"ids": ids, "skip_special_tokens": True}),
        unary("Tokenize", "Decode", {"ids": []}),
        unary("Tokenize", "Decode", {"ids": [10**9]}),
    )
    assert ok(kept)["text"] == tokenizer.decode(ids, skip_special_tokens=False)
    assert ok(skipped)["text"] == tokenizer.decode(ids, skip_special_tokens=True)
    assert empty["code"] == outside["code"] == "INVALID_ARGUMENT"
    assert "vocabulary" in outside["details"]


def test_info_describes_the_default_model_in_tei_s_fields(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    (answer,) = tei(unary("Info", "Info", {}))
    info = ok(answer)
    reference = v1(pod).Info(pb.InfoRequest())
    assert info["model_id"] == reference.model_name
    assert info["model_type"] == "MODEL_TYPE_EMBEDDING"
    assert info["model_dtype"] == "float32"
    assert info["version"] == reference.server_version
    assert info["max_input_length"] == reference.default_max_tokens
    assert info["max_client_batch_size"] == reference.limits.max_texts_per_request


def v1_rerank(server: ServerThread, **fields: Any) -> pb.RerankResponse:
    answer: pb.RerankResponse = v1(server).Rerank(pb.RerankRequest(model=RERANKER, **fields))
    return answer


def test_rerank_answers_attnserve_v1_s_scores_best_first(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    request = {"query": QUERY, "texts": DOCUMENTS, "truncate": True}  # one is over 128 tokens
    plain, raw, texts = tei(
        unary("Rerank", "Rerank", request),
        unary("Rerank", "Rerank", {**request, "raw_scores": True}),
        unary("Rerank", "Rerank", {**request, "return_text": True}),
    )
    for answer, raw_scores in ((plain, False), (raw, True)):
        reference = v1_rerank(pod, query=QUERY, documents=DOCUMENTS, raw_scores=raw_scores)
        ranks = ok(answer)["ranks"]
        assert [rank["index"] for rank in ranks] == [r.index for r in reference.results]
        np.testing.assert_allclose([rank["score"] for rank in ranks],
                                   [r.score for r in reference.results], atol=1e-5)  # fmt: skip
        assert all("text" not in rank for rank in ranks)  # only when asked for
    assert [rank["text"] for rank in ok(texts)["ranks"]] == [
        DOCUMENTS[rank["index"]] for rank in ok(texts)["ranks"]
    ]
    metadata = ok(plain)["metadata"]
    assert int(metadata["compute_chars"]) == len(QUERY) * len(DOCUMENTS) + sum(map(len, DOCUMENTS))


def test_predict_answers_attnserve_v1_s_classify(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    single, pair, raw = tei(
        unary("Predict", "Predict", {"inputs": DOCUMENTS[0]}),
        unary("Predict", "PredictPair", {"inputs": [QUERY, DOCUMENTS[0]]}),
        unary("Predict", "PredictPair", {"inputs": [QUERY, DOCUMENTS[0]], "raw_scores": True}),
    )
    text = v1(pod).Classify(pb.ClassifyRequest(model=RERANKER, texts=[DOCUMENTS[0]]))
    pairs = [pb.TextPair(text=QUERY, text_pair=DOCUMENTS[0])]
    paired = v1(pod).Classify(pb.ClassifyRequest(model=RERANKER, pairs=pairs))
    logits = v1(pod).Classify(pb.ClassifyRequest(model=RERANKER, pairs=pairs, raw_scores=True))
    for answer, reference in ((single, text), (pair, paired), (raw, logits)):
        (prediction,) = ok(answer)["predictions"]
        (expected,) = reference.results[0].labels
        assert prediction["label"] == expected.label
        assert abs(prediction["score"] - expected.score) <= 1e-5
    # A pair scores as the same pair reranked: one cross-encoder, two ways in.
    reranked = v1_rerank(pod, query=QUERY, documents=DOCUMENTS[:1])
    assert abs(ok(pair)["predictions"][0]["score"] - reranked.results[0].score) <= 1e-5


def test_predict_on_a_classifier_answers_every_label_best_first(
    tei: Callable[..., list[Answer]], classifier: ServerThread
) -> None:
    answer, info = tei(
        unary("Predict", "Predict", {"inputs": DOCUMENTS[1]}),
        unary("Info", "Info", {}),
        target=classifier.target,
    )
    assert ok(info)["model_type"] == "MODEL_TYPE_CLASSIFIER"
    predictions = ok(answer)["predictions"]
    reference = v1(classifier).Classify(pb.ClassifyRequest(texts=[DOCUMENTS[1]]))
    assert [p["label"] for p in predictions] == [s.label for s in reference.results[0].labels]
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1.0) <= 1e-5  # softmax over the three labels


def test_bad_score_requests_get_tei_s_statuses(
    tei: Callable[..., list[Answer]], classifier: ServerThread
) -> None:
    no_texts, three, long_pair = tei(
        unary("Rerank", "Rerank", {"query": QUERY, "texts": []}),
        unary("Predict", "PredictPair", {"inputs": ["a", "b", "c"]}),
        unary("Rerank", "Rerank", {"query": QUERY, "texts": [LONG]}),
    )
    for answer in (no_texts, three, long_pair):
        assert answer["code"] == "INVALID_ARGUMENT", answer
    assert "`inputs` must have a single or two elements. Given: 3" in three["details"]
    # A call no served model answers: TEI's status for a model of the wrong type, naming
    # what this server serves.
    rerank, embed = tei(
        unary("Rerank", "Rerank", {"query": QUERY, "texts": DOCUMENTS[:1]}),
        unary("Embed", "Embed", {"inputs": "hello"}),
        target=classifier.target,
    )
    for answer, what in ((rerank, "a re-ranker"), (embed, "an embedding model")):
        assert answer["code"] == "FAILED_PRECONDITION", answer
        assert what in answer["details"]
        assert v1(classifier).Info(pb.InfoRequest()).model in answer["details"]


def stream(service: str, method: str, *requests: dict[str, Any]) -> dict[str, Any]:
    return {"service": service, "method": method, "kind": "stream", "requests": list(requests)}


def test_streams_answer_in_order_as_their_unary_calls_do(
    tei: Callable[..., list[Answer]],
) -> None:
    """Each stream's answers, in the requests' order, are its unary calls' answers (the texts
    differ in length, so a later short one finishing first would show)."""
    texts = [VARIED_TEXTS[i] for i in (3, 0, 2, 1)]
    pairs = [[QUERY, document] for document in DOCUMENTS[:3]]
    calls: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("Embed", "EmbedStream"): [{"inputs": text} for text in texts],
        ("Embed", "EmbedAllStream"): [{"inputs": text} for text in texts[:2]],
        ("Predict", "PredictStream"): [{"inputs": document} for document in DOCUMENTS[:3]],
        ("Predict", "PredictPairStream"): [{"inputs": pair} for pair in pairs],
        ("Tokenize", "TokenizeStream"): [{"inputs": text} for text in texts],
        ("Tokenize", "DecodeStream"): [{"ids": [101, 7592 + i, 102]} for i in range(3)],
    }
    unary_method = {"EmbedStream": "Embed", "EmbedAllStream": "EmbedAll",
                    "PredictStream": "Predict", "PredictPairStream": "PredictPair",
                    "TokenizeStream": "Tokenize", "DecodeStream": "Decode"}  # fmt: skip
    plan = [stream(service, method, *requests) for (service, method), requests in calls.items()]
    plan += [
        unary(service, unary_method[method], request)
        for (service, method), requests in calls.items()
        for request in requests
    ]
    answers = tei(*plan)
    streamed, singles = answers[: len(calls)], iter(answers[len(calls) :])
    for ((_, method), requests), answer in zip(calls.items(), streamed, strict=True):
        assert answer["code"] == "OK", (method, answer)
        assert len(answer["responses"]) == len(requests), method
        for response in answer["responses"]:
            expected = ok(next(singles))
            if method.startswith("Embed"):  # floats: the same vectors, up to batching
                got, want = flat_vectors(response), flat_vectors(expected)
                assert cosines(got, want).min() >= 0.99999, method
            elif method.startswith("Predict"):
                assert [p["label"] for p in response["predictions"]] == [
                    p["label"] for p in expected["predictions"]
                ]
                np.testing.assert_allclose([p["score"] for p in response["predictions"]],
                                           [p["score"] for p in expected["predictions"]],
                                           atol=1e-5)  # fmt: skip
            else:
                assert response == expected, method


def flat_vectors(response: dict[str, Any]) -> np.ndarray:
    """An Embed answer's vector or an EmbedAll answer's token vectors, as rows."""
    if "token_embeddings" in response:
        return np.array([row["embeddings"] for row in response["token_embeddings"]])
    return np.array([response["embeddings"]])


def test_a_failure_ends_the_stream_with_its_status_after_the_answers_before_it(
    tei: Callable[..., list[Answer]],
) -> None:
    embed, tokenize, sparse = tei(
        stream("Embed", "EmbedStream", {"inputs": "one"}, {"inputs": "two"}, {"inputs": ""},
               {"inputs": "four"}),
        stream("Tokenize", "DecodeStream", {"ids": [101]}, {"ids": [10**9]}, {"ids": [102]}),
        stream("Embed", "EmbedSparseStream", {"inputs": "hello"}),
    )  # fmt: skip
    assert embed["code"] == "INVALID_ARGUMENT"
    assert "empty" in embed["details"]
    assert len(embed["responses"]) == 2
    assert tokenize["code"] == "INVALID_ARGUMENT"
    assert [r["text"] for r in tokenize["responses"]] == ["[CLS]"]
    assert sparse["code"] == "UNIMPLEMENTED"


def test_rerank_stream_ranks_the_pairs_it_was_sent(
    tei: Callable[..., list[Answer]], pod: ServerThread
) -> None:
    one_query = [{"query": QUERY, "text": document, "truncate": True} for document in DOCUMENTS]
    one_query[0] |= {"return_text": True}  # read from the first message only
    other = "what rose in the third quarter"
    mixed = [
        {"query": QUERY, "text": DOCUMENTS[0]},
        {"query": other, "text": DOCUMENTS[2]},
        {"query": QUERY, "text": DOCUMENTS[1]},
        {"query": other, "text": DOCUMENTS[0]},
    ]
    same, varied, empty = tei(
        {"service": "Rerank", "method": "RerankStream", "kind": "client_stream",
         "requests": one_query},
        {"service": "Rerank", "method": "RerankStream", "kind": "client_stream",
         "requests": mixed},
        {"service": "Rerank", "method": "RerankStream", "kind": "client_stream",
         "requests": []},
    )  # fmt: skip
    reference = v1_rerank(pod, query=QUERY, documents=DOCUMENTS)
    ranks = ok(same)["ranks"]
    assert [rank["index"] for rank in ranks] == [r.index for r in reference.results]
    np.testing.assert_allclose([rank["score"] for rank in ranks],
                               [r.score for r in reference.results], atol=1e-5)  # fmt: skip
    assert [rank["text"] for rank in ranks] == [DOCUMENTS[r.index] for r in reference.results]
    # Each pair scored against its own query, the ranks over the whole stream.
    expected = {
        index: v1_rerank(pod, query=pair["query"], documents=[pair["text"]]).results[0].score
        for index, pair in enumerate(mixed)
    }
    got = {rank["index"]: rank["score"] for rank in ok(varied)["ranks"]}
    assert got.keys() == expected.keys()
    assert max(abs(got[i] - expected[i]) for i in got) <= 1e-5
    assert list(got.values()) == sorted(got.values(), reverse=True)
    assert empty["code"] == "INVALID_ARGUMENT"


TEI_SERVICES = ("Info", "Embed", "Predict", "Rerank", "Tokenize")


def health(*services: str) -> list[dict[str, Any]]:
    return [
        {"service": name and f"tei.v1.{name}", "method": "Check", "kind": "health", "requests": []}
        for name in services
    ]


def test_health_per_service_as_tei_reports_it(
    tei: Callable[..., list[Answer]], pod: ServerThread, classifier: ServerThread
) -> None:
    """SERVING for every service a model answers; NOT_SERVING for one no model answers (TEI's
    classifier server: Embed and Rerank), attnserve.v1 and OIP beside them."""
    pod_answers = tei(*health(*TEI_SERVICES, ""))
    assert [answer["status"] for answer in pod_answers] == ["SERVING"] * 6
    lone = tei(*health(*TEI_SERVICES), target=classifier.target)
    statuses = dict(zip(TEI_SERVICES, (answer["status"] for answer in lone), strict=True))
    assert statuses == {"Info": "SERVING", "Embed": "NOT_SERVING", "Predict": "SERVING",
                        "Rerank": "NOT_SERVING", "Tokenize": "SERVING"}  # fmt: skip


def test_the_docs_python_example_runs_as_a_tei_user_would(
    tei_stubs: Path, pod: ServerThread
) -> None:
    """docs/tei-grpc.md's example, unchanged but for the server's port, with the TEI stubs."""
    page = (ROOT / "docs" / "tei-grpc.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    assert "localhost:50051" in example
    done = subprocess.run(
        [sys.executable, "-c", example.replace("localhost:50051", pod.target)],
        env={**os.environ, "PYTHONPATH": str(tei_stubs)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    size, tokens = done.stdout.split(" ", 1)
    assert int(size) == 384  # all-MiniLM-L6-v2's vectors
    assert "'attention'" in tokens


def test_a_bearer_token_guards_tei_v1_as_every_api(
    tei: Callable[..., list[Answer]], make_server: Callable[..., ServerThread]
) -> None:
    """Under --auth-tokens, TEI's clients send `authorization: Bearer <token>`, as TEI's
    --api-key expects; health stays open for probes."""
    guarded = make_server(auth_tokens="tei-secret", warmup=False)
    request = unary("Embed", "Embed", {"inputs": "hello"})
    bare, wrong, right, probe = tei(
        request,
        {**request, "metadata": [["authorization", "Bearer nope"]]},
        {**request, "metadata": [["authorization", "Bearer tei-secret"]]},
        *health("Embed"),
        target=guarded.target,
    )
    assert bare["code"] == wrong["code"] == "UNAUTHENTICATED"
    assert len(ok(right)["embeddings"]) == 384
    assert probe["status"] == "SERVING"


@pytest.fixture(scope="module")
def prompted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A tiny Qwen3-style embedder with sentence-transformers prompts (default: "query")."""
    from attnserve.export.artifact import build_artifact
    from tests.support.decoders import DECODER_SHAPES, build_bpe_tokenizer
    from tests.support.reference import build_decoder_checkpoint

    root = tmp_path_factory.mktemp("prompted")
    tokenizer = build_bpe_tokenizer(root / "tokenizer.json")
    checkpoint = build_decoder_checkpoint(
        root / "checkpoint", DECODER_SHAPES["qwen3-tied-mqa"], tokenizer
    )
    build_artifact(root / "artifact", checkpoint, int8=False, fp16=False)
    running = ServerThread(server_settings(root / "artifact", warmup=False))
    yield running
    running.stop()


def test_prompts_are_applied_as_attnserve_v1_applies_them(
    tei: Callable[..., list[Answer]], prompted: ServerThread
) -> None:
    """prompt_name (and the model's default prompt when none is named) in Embed and Tokenize:
    the same vectors and ids as attnserve.v1's, the prompt's tokens covering the prompt."""
    from tests.support.decoders import PROMPTS

    text = "where is the river bank"
    default, named, none, tokens = tei(
        unary("Embed", "Embed", {"inputs": text}),
        unary("Embed", "Embed", {"inputs": text, "prompt_name": "query"}),
        unary("Embed", "Embed", {"inputs": text, "prompt_name": ""}),
        unary("Tokenize", "Tokenize", {"inputs": text, "prompt_name": "query",
                                       "add_special_tokens": True}),
        target=prompted.target,
    )  # fmt: skip
    for answer, prompt_name in ((default, None), (named, "query"), (none, "")):
        options = {} if prompt_name is None else {"prompt_name": prompt_name}
        expected = v1_pooled(prompted, [text], normalize=True, **options)
        assert cosines(np.array([ok(answer)["embeddings"]]), expected)[0] >= 0.99999
    with_prompt, without = (np.array([ok(answer)["embeddings"]]) for answer in (named, none))
    assert cosines(with_prompt, without)[0] < 0.9999  # the prompt changed the vector
    reference = v1(prompted).Tokenize(pb.TokenizeRequest(texts=[text], prompt_name="query"))
    got = ok(tokens)["tokens"]
    assert [int(t["id"]) for t in got] == [t.id for t in reference.texts[0].tokens]
    spoken = "".join(t["text"] for t in got if not t["special"])
    assert spoken == PROMPTS["query"] + text  # TEI's offsets: into the prompt and the text
