"""text-embeddings-inference's HTTP API on the HTTP app, so TEI's clients work unchanged: the
same paths, fields, defaults and answer shapes as TEI's router (`router/src/http/server.rs`,
`types.rs`; the bodies in `tei_bodies.py`), and TEI's error bodies `{"error", "error_type"}`
with its statuses (Validation 422, Empty 400, Overloaded 429, Backend 424; `app.py` maps them).

    POST /             what the model offers, as TEI dispatches by model type: an embedder
    POST /invocations  embeds (`/embed`; `inputs` {"source_sentence", "sentences"}: similarity),
                       a reranker reranks, a classifier predicts (SageMaker calls /invocations;
                       huggingface_hub's InferenceClient(url) calls /)
    POST /embed        {"inputs": str | [str], "normalize", "truncate", "truncation_direction",
                       "prompt_name", "dimensions"} -> [[f32]] (one vector per input)
    POST /embed_all    the same (no normalize, dimensions) -> [[[f32]]] (every token's vector)
    POST /similarity   {"inputs": {"source_sentence", "sentences"}, "parameters"} -> [f32]
    POST /rerank       {"query", "texts", "raw_scores", "return_text", "truncate", ...}
                       -> [{"index", "score", "text"?}], best first
    POST /predict      {"inputs": str | [a, b] | [str | [a, b], ...], "raw_scores", ...}
                       -> [{"label", "score"}] per input, best first
    POST /tokenize     {"inputs", "add_special_tokens", "prompt_name"}
                       -> [[{"id", "text", "special", "start", "stop"}]] (UTF-8 byte offsets)
    POST /decode       {"ids": [int] | [[int]], "skip_special_tokens"} -> [str]
    GET  /info         TEI's Info: model_id, model_type {"embedding" | "reranker" |
                       "classifier"}, max_input_length, max_client_batch_size, auto_truncate...
    GET  /ping         health (SageMaker), as the app's /health

Every route enters the served model's task (embed, score) or its tokenizer through the registry,
as attnserve.v1 does: the same batcher, limits and answers. Each body may name a `model` (absent:
the default); `GET /info?model=NAME` describes another. An absent `truncate` means the server's
`--auto-truncate` for embeddings (TEI's default is true; here it is off unless set, as the OpenAI
route's refusal) and cutting for rerank and predict (both as before). Token-id inputs are refused
(TEI reads them in its own vocabulary). `/embed_sparse` answers a model with a sparse head
(SPLADE, bge-m3), 424 for any other. Counted under protocol "http".
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Literal

from aiohttp import web

from attnserve.service.server.errors import Code, ServiceError, invalid
from attnserve.service.server.http.fields import (
    Envelope,
    RouteDoc,
    is_count,
    json_object,
    token_ids_refusal,
    truncation,
)
from attnserve.service.server.http.tei_bodies import (
    DecodeBody,
    EmbedAllBody,
    EmbedBody,
    EmbedSparseBody,
    PredictBody,
    RerankBody,
    SimilarityBody,
    TokenizeBody,
    parse,
)
from attnserve.service.server.options import EmbedOptions, ScoreOptions, TokenizeOptions, Truncation
from attnserve.service.server.registry import Registry, ServedModel
from attnserve.service.server.tasks.embed import EmbedResult, EmbedTask
from attnserve.service.server.tasks.score import ScoreTask
from attnserve.service.server.tasks.sparse import SparseEmbedTask, SparseOptions, SparseResult
from attnserve.service.server.tokenizer import byte_offsets, token_views

PROTOCOL = "http"
DTYPES = {"fp32": "float32", "fp16": "float16", "int8": "int8"}
TEI_POOLING = {"last": "last-token"}  # TEI's name for it (`--pooling last-token`)


class EmptyError(ServiceError):
    """TEI's `Empty`: a batch with nothing in it (400, where its other refusals are 422)."""

    http_status = 400
    tei_error_type = "Empty"

    def __init__(self, field: str) -> None:
        super().__init__(Code.INVALID_ARGUMENT, f"`{field}` cannot be empty")


class NotSparseError(ServiceError):
    """TEI's answer to `/embed_sparse` for a model without a sparse head: 424 Backend (a
    refusal, counted as INVALID_ARGUMENT, not a server fault)."""

    http_status = 424
    tei_error_type = "Backend"

    def __init__(self, model: ServedModel) -> None:
        offers = ", ".join(model.task_names)
        super().__init__(
            Code.INVALID_ARGUMENT,
            f"`/embed_sparse` is only available for SPLADE models; {model.name!r} answers "
            f"dense vectors (/embed) and offers {offers}",
        )


def texts_of(given: str | list[str], field: str = "inputs") -> list[str]:
    if isinstance(given, str):
        return [given]
    if not given:
        raise EmptyError(field)
    return given


def is_ids(item: object) -> bool:
    """A token id, or a list of them."""
    if isinstance(item, list):
        return bool(item) and all(is_count(i) for i in item)
    return is_count(item)


def refuse_token_ids(body: dict[str, Any], model: ServedModel) -> None:
    """TEI accepts ids in `inputs` and reads them in its own vocabulary; here they are refused
    with the fix (`fields.token_ids_refusal`)."""
    given = body.get("inputs")
    items = given if isinstance(given, list) else [given]
    if items and all(is_ids(item) for item in items):
        raise invalid(token_ids_refusal(model))


def timing_headers(result: EmbedResult | SparseResult, tokens: int) -> dict[str, str]:
    """TEI's response metadata: tokens and each stage's milliseconds."""
    timings = result.timings
    stages = timings.tokenize_s + timings.queue_s + timings.inference_s
    return {
        "x-compute-tokens": str(tokens),
        "x-total-time": str(round(stages * 1000)),
        "x-tokenization-time": str(round(timings.tokenize_s * 1000)),
        "x-queue-time": str(round(timings.queue_s * 1000)),
        "x-inference-time": str(round(timings.inference_s * 1000)),
    }


def model_type(model: ServedModel) -> dict[str, Any]:
    """TEI's `model_type`: {"embedding": {"pooling"}} or {"reranker" | "classifier":
    {"id2label", "label2id"}}."""
    head = model.manifest.head
    if head is None:
        pooling = str(model.manifest.model.pooling)
        return {"embedding": {"pooling": TEI_POOLING.get(pooling, pooling)}}
    labels = {
        "id2label": {str(i): label for i, label in enumerate(head.labels)},
        "label2id": {label: i for i, label in enumerate(head.labels)},
    }
    return {"reranker" if head.reranker else "classifier": labels}


def tei(method: Literal["get", "post"], path: str, summary: str, body: Any = None) -> RouteDoc:
    return RouteDoc(method, path, f"TEI: {summary}", body, errors="tei")


class TeiRoutes:
    docs = (
        tei("post", "/", "what the model offers (embed, rerank or predict)", EmbedBody),
        tei("post", "/invocations", "as / (SageMaker)", EmbedBody),
        tei("post", "/embed", "pooled vectors", EmbedBody),
        tei("post", "/embed_all", "every token's vector", EmbedAllBody),
        tei("post", "/embed_sparse", "sparse vectors, {index, value} sorted by index",
            EmbedSparseBody),
        tei("post", "/similarity", "cosines of a sentence with others", SimilarityBody),
        tei("post", "/rerank", "texts scored against a query", RerankBody),
        tei("post", "/predict", "a classifier's labels", PredictBody),
        tei("post", "/tokenize", "tokens, UTF-8 byte offsets", TokenizeBody),
        tei("post", "/decode", "ids back to text", DecodeBody),
        tei("get", "/info", "the model and the server's limits"),
    )  # fmt: skip

    def __init__(self, models: Registry) -> None:
        self.models = models
        self.version = importlib.metadata.version("attnserve")

    def add_to(self, app: web.Application, envelope: Envelope) -> None:
        def post(path: str, method: str, handler: Any) -> None:
            app.router.add_post(path, envelope(method, handler, PROTOCOL, "tei"))

        post("/", "invocations", self.invocations)
        post("/invocations", "invocations", self.invocations)
        post("/embed", "embed", self.embed)
        post("/embed_all", "embed_all", self.embed_all)
        post("/embed_sparse", "embed_sparse", self.embed_sparse)
        post("/similarity", "similarity", self.similarity)
        post("/rerank", "rerank", self.rerank)
        post("/predict", "predict", self.predict)
        post("/tokenize", "tokenize", self.tokenize)
        post("/decode", "decode", self.decode)
        app.router.add_get("/info", envelope("info", self.info, PROTOCOL, "tei"))

    async def model_and_body(self, request: web.Request) -> tuple[ServedModel, dict[str, Any]]:
        body = await json_object(request)
        model = self.models.route(body.get("model"))
        return model, body

    async def invocations(self, request: web.Request) -> web.Response:
        """As TEI's `/`: the route of the model's type. For an embedder, `inputs` as an object
        ({"source_sentence", "sentences"}) is a similarity request (TEI serves that on `/`
        under TASK=sentence-similarity; the shape says it here, as /embed's never is one)."""
        model, body = await self.model_and_body(request)
        if model.offers(SparseEmbedTask) and not model.offers(EmbedTask):  # SPLADE, as TEI
            return await self.sparse(model, body)
        if model.offers(EmbedTask):
            if isinstance(body.get("inputs"), dict):
                return await self.compared(model, body)
            return await self.embedded(model, body)
        if model.manifest.head is not None and model.manifest.head.reranker:
            return await self.reranked(model, body)
        return await self.predicted(model, body)

    async def embed(self, request: web.Request) -> web.Response:
        return await self.embedded(*await self.model_and_body(request))

    async def embedded(self, model: ServedModel, body: dict[str, Any]) -> web.Response:
        refuse_token_ids(body, model)
        parsed = parse(EmbedBody, body)
        options = EmbedOptions(
            truncation=truncation(body, default=model.limits.auto_truncate),
            normalize=parsed.normalize,  # TEI's default, true, whatever the model's own
            dimensions=parsed.dimensions,
            prompt_name=parsed.prompt_name,
        )
        result = await model.task(EmbedTask).embed(texts_of(parsed.inputs), options, None)
        assert result.pooled is not None
        tokens = sum(text.token_count for text in result.texts)
        return web.json_response(result.pooled.tolist(), headers=timing_headers(result, tokens))

    async def embed_all(self, request: web.Request) -> web.Response:
        model, body = await self.model_and_body(request)
        refuse_token_ids(body, model)
        parsed = parse(EmbedAllBody, body)
        options = EmbedOptions(
            pooled=False,
            token_embeddings=True,
            truncation=truncation(body, default=model.limits.auto_truncate),
            prompt_name=parsed.prompt_name,
        )
        result = await model.task(EmbedTask).embed(texts_of(parsed.inputs), options, None)
        matrices = []
        for text in result.texts:
            assert text.token_embeddings is not None
            matrices.append(text.token_embeddings.tolist())
        tokens = sum(text.token_count for text in result.texts)
        return web.json_response(matrices, headers=timing_headers(result, tokens))

    async def embed_sparse(self, request: web.Request) -> web.Response:
        return await self.sparse(*await self.model_and_body(request))

    async def sparse(self, model: ServedModel, body: dict[str, Any]) -> web.Response:
        """TEI's `/embed_sparse` over the embed_sparse task: every non-zero term of each input,
        [[{"index", "value"}]], as TEI answers a SPLADE model."""
        if not model.offers(SparseEmbedTask):
            raise NotSparseError(model)
        refuse_token_ids(body, model)
        parsed = parse(EmbedSparseBody, body)
        if parsed.prompt_name is not None:
            raise invalid(f"{model.name!r} applies no prompts to sparse vectors; drop prompt_name")
        options = SparseOptions(truncation=truncation(body, default=model.limits.auto_truncate))
        texts = texts_of(parsed.inputs)
        result = await model.task(SparseEmbedTask).embed_sparse(texts, options, None, False)
        answer = [
            [{"index": int(i), "value": float(v)} for i, v in zip(*text.vector, strict=True)]
            for text in result.texts
        ]
        tokens = sum(text.token_count for text in result.texts)
        return web.json_response(answer, headers=timing_headers(result, tokens))

    async def similarity(self, request: web.Request) -> web.Response:
        return await self.compared(*await self.model_and_body(request))

    async def compared(self, model: ServedModel, body: dict[str, Any]) -> web.Response:
        parsed = parse(SimilarityBody, body)
        if not parsed.inputs.sentences:
            raise EmptyError("inputs.sentences")
        parameters = body.get("parameters") or {}
        options = EmbedOptions(
            truncation=truncation(parameters, default=model.limits.auto_truncate),
            normalize=True,
            prompt_name=parsed.parameters.prompt_name if parsed.parameters else None,
        )
        texts = [parsed.inputs.source_sentence, *parsed.inputs.sentences]
        result = await model.task(EmbedTask).embed(texts, options, None)
        assert result.pooled is not None
        cosines = result.pooled[1:] @ result.pooled[0]  # unit rows: the cosines
        tokens = sum(text.token_count for text in result.texts)
        return web.json_response(cosines.tolist(), headers=timing_headers(result, tokens))

    async def rerank(self, request: web.Request) -> web.Response:
        return await self.reranked(*await self.model_and_body(request))

    async def reranked(self, model: ServedModel, body: dict[str, Any]) -> web.Response:
        parsed = parse(RerankBody, body)
        if not parsed.texts:
            raise EmptyError("texts")
        options = ScoreOptions(
            truncation=truncation(body, default=True), raw_scores=parsed.raw_scores
        )
        result = await model.task(ScoreTask, "rerank").rerank(
            parsed.query, parsed.texts, options, None
        )
        answer = []
        for ranked in result.results:
            entry: dict[str, Any] = {"index": ranked.index, "score": ranked.score}
            if parsed.return_text:
                entry["text"] = parsed.texts[ranked.index]
            answer.append(entry)
        return web.json_response(answer)

    async def predict(self, request: web.Request) -> web.Response:
        return await self.predicted(*await self.model_and_body(request))

    async def predicted(self, model: ServedModel, body: dict[str, Any]) -> web.Response:
        parsed = parse(PredictBody, body)
        inputs, single = predict_inputs(parsed.inputs)
        options = ScoreOptions(
            truncation=truncation(body, default=True), raw_scores=parsed.raw_scores
        )
        result = await model.task(ScoreTask, "classify").classify(inputs, options, None)
        answers = [
            [{"label": label.label, "score": label.score} for label in item.labels]
            for item in result.inputs
        ]
        return web.json_response(answers[0] if single else answers)

    async def tokenize(self, request: web.Request) -> web.Response:
        model, body = await self.model_and_body(request)
        parsed = parse(TokenizeBody, body)
        texts = texts_of(parsed.inputs)
        # TEI cuts nothing here: a long text's every token, up to a chunked document's cap.
        options = TokenizeOptions(
            truncation=Truncation.NONE,
            prompt_name=parsed.prompt_name,
            document_tokens=model.limits.max_document_tokens,
        )
        tokenized = await model.tokenize(texts, options)
        prompt = tokenized.prompt.text
        answer = []
        for text, encoded in zip(texts, tokenized.texts, strict=True):
            whole = prompt + text  # TEI's offsets are into the input the prompt was added to
            starts = byte_offsets(whole)
            tokens = []
            for view in token_views(encoded):
                if view.special:
                    if parsed.add_special_tokens:
                        tokens.append(
                            {"id": view.id, "text": view.text, "special": True,
                             "start": None, "stop": None}
                        )  # fmt: skip
                    continue
                shift = 0 if view.prompt else len(prompt)
                start, stop = view.start + shift, view.end + shift
                tokens.append(
                    {"id": view.id, "text": whole[start:stop], "special": False,
                     "start": starts[start], "stop": starts[stop]}
                )  # fmt: skip
            answer.append(tokens)
        return web.json_response(answer)

    async def decode(self, request: web.Request) -> web.Response:
        model, body = await self.model_and_body(request)
        parsed = parse(DecodeBody, body)
        if not parsed.ids:
            raise EmptyError("ids")
        ids = parsed.ids
        rows: list[list[int]] = [ids] if isinstance(ids[0], int) else ids
        return web.json_response(model.decode(rows, parsed.skip_special_tokens))

    async def info(self, request: web.Request) -> web.Response:
        """TEI's Info for the default model (or `?model=NAME`)."""
        model = self.models.route(request.query.get("model"))
        limits = model.limits
        return web.json_response(
            {
                "model_id": model.manifest.model.name,
                "model_sha": None,
                "model_dtype": DTYPES.get(model.engine.precision, model.engine.precision),
                "served_model_name": model.name,
                "model_type": model_type(model),
                "max_concurrent_requests": limits.max_queue_texts,
                "max_input_length": limits.max_tokens_per_text,
                "max_batch_tokens": model.batcher.max_batch_tokens,
                "max_batch_requests": model.batcher.max_batch_texts,
                "max_client_batch_size": limits.max_texts_per_request,
                "auto_truncate": limits.auto_truncate,
                "tokenization_workers": 1,
                "version": self.version,
                "sha": None,
                "docker_label": None,
            }
        )


Inputs = list[str] | list[tuple[str, str]]


def predict_inputs(given: str | list[str] | list[list[str]]) -> tuple[Inputs, bool]:
    """TEI's `inputs`: one text, one pair [a, b], or a batch of [text] and [a, b] items (a
    batch of bare strings too, as attnserve read it before); and whether it was one input."""
    if isinstance(given, str):
        return [given], True
    if not given:
        raise EmptyError("inputs")
    if all(isinstance(item, str) for item in given):
        if len(given) == 2:  # TEI: a list of two strings is one pair
            return [(str(given[0]), str(given[1]))], True
        return [str(item) for item in given], False
    items: list[str | tuple[str, str]] = []
    for item in given:
        if isinstance(item, list) and len(item) == 1:
            items.append(item[0])
        elif isinstance(item, list) and len(item) == 2:
            items.append((item[0], item[1]))
        else:
            raise invalid("'inputs': each item of a batch must be [text] or a pair [a, b]")
    if len({isinstance(item, tuple) for item in items}) > 1:
        raise invalid("'inputs': a batch must be all texts or all pairs")
    return items, False  # type: ignore[return-value]
