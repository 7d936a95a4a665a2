"""A typed Python client: numpy arrays out, retries with backoff on UNAVAILABLE.

Tensors are decoded as read-only views over the response bytes (no copies). Retries use gRPC's
own retry policy (service config), so they are transparent and bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import numpy as np

from attnserve.service.client.channel import Connection
from attnserve.service.wire import decode
from attnserve.v1 import embedder_pb2 as pb
from attnserve.v1 import embedder_pb2_grpc

TRUNCATE = {
    "end": pb.TRUNCATE_END,
    "start": pb.TRUNCATE_START,
    "none": pb.TRUNCATE_NONE,
}
DTYPES = {"float32": pb.DTYPE_FLOAT32, "float16": pb.DTYPE_FLOAT16}


@dataclass(frozen=True)
class Embeddings:
    model: str  # the model that produced them (Info.model_name)
    pooled: np.ndarray | None  # (n, H)
    token_embeddings: list[np.ndarray | None]  # per text (tokens, H)
    attentions: list[np.ndarray | None]  # per text (layers, heads or 1, tokens, tokens)
    token_counts: list[int]
    truncated: list[bool]
    timings: pb.Timings
    attention_layers: list[int]
    attention_heads: list[int]
    request_id: str
    prompt_name: str = ""  # the prompt the server prepended ("" = none)
    prompt_tokens: list[int] = field(default_factory=list)  # per text, of its token count
    windows: list[int] = field(default_factory=list)  # per text: chunked embeddings' windows


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    start: int
    end: int
    special: bool
    prompt: bool = False  # a token of the prepended prompt (offsets index the prompt)


@dataclass(frozen=True)
class PairMaps:
    """A pair's attention maps as served (`PairAttention`), and where its texts lie."""

    maps: np.ndarray  # (layers, heads or 1, n, n) over the pair's n tokens
    layers: list[int]
    heads: list[int]  # before any averaging
    segments: list[tuple[int, int]]  # [start, end) of the first text (the query), the second's
    tokens: list[str]  # the pair's tokens, special tokens included

    @property
    def cross_block(self) -> np.ndarray:
        """Where the query's tokens look in the document: (layers, heads, query, document)."""
        (q0, q1), (d0, d1) = self.segments
        return self.maps[:, :, q0:q1, d0:d1]


@dataclass(frozen=True)
class TokenCount:
    """How many tokens a text would run as (after truncation), and whether it was cut."""

    tokens: int
    truncated: bool


@dataclass(frozen=True)
class Ranked:
    """One document of a rerank answer."""

    index: int  # its position in the request's documents
    score: float
    document: str  # "" unless return_documents
    token_count: int
    truncated: bool
    attention: PairMaps | None = None  # when asked for


@dataclass(frozen=True)
class SparseTerms:
    """One text's sparse vector: its non-zero terms, by vocabulary index (ascending)."""

    indices: np.ndarray  # (n,) int64
    values: np.ndarray  # (n,) float32
    tokens: list[str]  # the terms' token strings (empty unless asked for)
    token_count: int
    truncated: bool

    def top(self, count: int) -> list[tuple[str, float]]:
        """The `count` heaviest terms as (token, weight), heaviest first."""
        order = np.argsort(-self.values, kind="stable")[:count]
        return [(self.tokens[i] if self.tokens else str(self.indices[i]), float(self.values[i]))
                for i in order]  # fmt: skip


@dataclass(frozen=True)
class TokenVectors:
    """One text's per-token unit vectors (late interaction), each row's token and place."""

    vectors: np.ndarray  # (k, D)
    token_ids: list[int]
    spans: list[tuple[int, int]]  # characters of the text; (0, 0) for a token the model added


@dataclass(frozen=True)
class Classification:
    labels: list[tuple[str, float]]  # (label, score), best first
    token_count: int
    truncated: bool
    attention: PairMaps | None = None  # when asked for


@dataclass(frozen=True)
class LateChunk:
    """One chunk of a late-chunked document."""

    start: int  # its span, [start, end) in code points (with tokens_per_chunk: its tokens')
    end: int
    vector: np.ndarray | None  # (H,); None when the chunk fell outside a truncated document
    token_count: int  # tokens pooled
    truncated: bool  # some of its tokens were cut away with the document's end (or start)
    attentions: np.ndarray | None = None  # (layers, heads or 1, token_count, document tokens)

    @property
    def outside(self) -> bool:
        return self.vector is None


@dataclass(frozen=True)
class ChunkedDocument:
    chunks: list[LateChunk]  # in request order
    token_count: int  # tokens the model saw, special tokens included
    truncated: bool


@dataclass(frozen=True)
class ExplainedText:
    tokens: list[Token]  # the tokens run, special and prompt tokens included
    relevance: np.ndarray | None  # (n,) rollout from the pooled position; None: not asked
    truncated: bool
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Similarity:
    """Two mean-pooled texts' cosine split over their token pairs (cells sum to `cosine`)."""

    cells: np.ndarray  # (n, m): the first text's tokens (rows) by the second's (columns)
    first_shares: np.ndarray  # (n,) row sums
    second_shares: np.ndarray  # (m,) column sums
    cosine: float  # of the served pooled vectors
    cells_sum: float
    dimensions: int


@dataclass(frozen=True)
class ExplainedDocument:
    index: int
    score: float
    tokens: list[str]  # the document's tokens within the pair
    relevance: np.ndarray  # (k,) rollout from CLS over those tokens
    token_count: int
    truncated: bool


@dataclass(frozen=True)
class Explanation:
    """An Explain answer: texts (one: relevance; two: similarity too) or documents."""

    model: str
    texts: list[ExplainedText]
    similarity: Similarity | None
    documents: list[ExplainedDocument]
    pooling: str  # where the texts' relevance is read from: "mean", "cls" or "last"
    prompt_name: str = ""


def explained_text(text: pb.ExplainedText) -> ExplainedText:
    tokens = [Token(t.id, t.text, t.start, t.end, t.special, t.prompt) for t in text.tokens]
    relevance = decode(text.relevance) if text.HasField("relevance") else None
    return ExplainedText(tokens, relevance, text.truncated, text.prompt_tokens)


def explanation(response: pb.ExplainResponse) -> Explanation:
    similarity = None
    if response.HasField("similarity"):
        s = response.similarity
        similarity = Similarity(
            decode(s.cells), decode(s.first_shares), decode(s.second_shares),
            s.cosine, s.cells_sum, s.dimensions,
        )  # fmt: skip
    documents = [
        ExplainedDocument(
            d.index, d.score, list(d.tokens), decode(d.relevance), d.token_count, d.truncated
        )
        for d in response.documents
    ]
    texts = [explained_text(text) for text in response.texts]
    return Explanation(
        response.model, texts, similarity, documents, response.pooling, response.prompt_name
    )


class EmbedderClient:
    def __init__(
        self, target: str | Connection, *, attempts: int = 4, timeout_s: float = 60.0
    ) -> None:
        """`target` is HOST:PORT (plaintext, no token) or a `Connection`, which holds the TLS,
        mTLS, token and message-size options under the names every client command uses."""
        self.connection = target if isinstance(target, Connection) else Connection(target)
        self.channel = self.connection.channel(attempts)
        self.stub = embedder_pb2_grpc.EmbedderStub(self.channel)  # type: ignore[no-untyped-call]
        self.metadata = self.connection.metadata
        self.timeout_s = timeout_s

    def __enter__(self) -> EmbedderClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call_metadata(self, request_id: str | None) -> tuple[tuple[str, str], ...]:
        return self.metadata + ((("x-request-id", request_id),) if request_id else ())

    def embed_raw(
        self, request: pb.EmbedRequest, timeout_s: float | None = None
    ) -> pb.EmbedResponse:
        response: pb.EmbedResponse = self.stub.Embed(
            request,
            timeout=timeout_s or self.timeout_s,
            metadata=self.call_metadata(request.request_id or None),
        )
        return response

    def embed(
        self,
        texts: Sequence[str],
        *,
        pooled: bool = True,
        token_embeddings: bool = False,
        normalize: bool | None = None,
        truncate: Literal["end", "start", "none"] = "end",
        max_tokens: int = 0,
        attention: bool = False,
        layers: Sequence[int] = (),
        heads: Sequence[int] = (),
        average_heads: bool = False,
        dtype: Literal["float32", "float16"] = "float32",
        prompt_name: str | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
        model: str = "",
        chunking: bool | None = None,
        chunk_overlap: int | None = None,
    ) -> Embeddings:
        """`prompt_name`: None = the model's default prompt (Info.default_prompt_name), "" = no
        prompt, otherwise one of Info.prompts (e.g. "query"). `model`: a served model's name
        (Info.models); "" = the server's default. `chunking`: a text over `max_tokens` as
        pooled windows of it (None = the server's default, Info.chunking), neighbours sharing
        `chunk_overlap` tokens (None = Info.chunk_overlap); `windows` says how many ran."""
        options = pb.EmbedOptions(
            pooled=pooled,
            token_embeddings=token_embeddings,
            truncate=TRUNCATE[truncate],
            output_dtype=DTYPES[dtype],
            max_tokens=max_tokens,
            attention=attention_options(attention, layers, heads, average_heads),
        )
        if normalize is not None:
            options.normalize = normalize
        if prompt_name is not None:
            options.prompt_name = prompt_name
        if chunking is not None:  # None: the server's default (Info.chunking)
            options.chunking = chunking
        if chunk_overlap is not None:
            options.chunk_overlap = chunk_overlap
        request = pb.EmbedRequest(
            texts=list(texts), options=options, request_id=request_id, model=model
        )
        return to_embeddings(self.embed_raw(request, timeout_s))

    def tokenize(
        self,
        texts: Sequence[str],
        truncate: Literal["end", "start", "none"] = "end",
        prompt_name: str | None = None,
        max_tokens: int = 0,
        model: str = "",
    ) -> list[list[Token]]:
        response = self.tokenize_raw(texts, truncate, prompt_name, max_tokens, model, False)
        return [
            [Token(t.id, t.text, t.start, t.end, t.special, t.prompt) for t in text.tokens]
            for text in response.texts
        ]

    def count_tokens(
        self,
        texts: Sequence[str],
        truncate: Literal["end", "start", "none"] = "end",
        prompt_name: str | None = None,
        max_tokens: int = 0,
        model: str = "",
    ) -> list[TokenCount]:
        """Each text's token count as `embed` would run it (special tokens and the prompt's
        included), without the tokens themselves: cheap for many texts."""
        response = self.tokenize_raw(texts, truncate, prompt_name, max_tokens, model, True)
        return [TokenCount(text.token_count, text.truncated) for text in response.texts]

    def tokenize_raw(
        self,
        texts: Sequence[str],
        truncate: Literal["end", "start", "none"],
        prompt_name: str | None,
        max_tokens: int,
        model: str,
        counts_only: bool,
    ) -> pb.TokenizeResponse:
        """One Tokenize call, for `tokenize` (the tokens) and `count_tokens` (counts only)."""
        request = pb.TokenizeRequest(
            texts=list(texts), truncate=TRUNCATE[truncate], max_tokens=max_tokens, model=model,
            counts_only=counts_only,
        )  # fmt: skip
        if prompt_name is not None:
            request.prompt_name = prompt_name
        response: pb.TokenizeResponse = self.stub.Tokenize(
            request, timeout=self.timeout_s, metadata=self.metadata
        )
        return response

    def info(self, model: str = "") -> pb.InfoResponse:
        """A served model's description ("" = the default model's); `models` lists them all."""
        response: pb.InfoResponse = self.stub.Info(
            pb.InfoRequest(model=model), timeout=self.timeout_s, metadata=self.metadata
        )
        return response

    def embed_sparse(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        top_k: int = 0,
        min_weight: float = 0.0,
        words: bool = False,
        truncate: Literal["end", "start", "none"] = "end",
    ) -> list[SparseTerms]:
        """Each text's sparse vector (a SPLADE or bge-m3 model); `top_k`: the K heaviest terms
        (0 = all), `min_weight`: only heavier ones, `words`: with their token strings."""
        request = pb.SparseRequest(
            texts=list(texts), model=model, top_k=top_k, min_weight=min_weight,
            return_tokens=words, truncation=TRUNCATE[truncate],
        )  # fmt: skip
        response: pb.SparseResponse = self.stub.EmbedSparse(
            request, timeout=self.timeout_s, metadata=self.metadata
        )
        return [
            SparseTerms(
                np.asarray(v.indices, dtype=np.int64), np.asarray(v.values, dtype=np.float32),
                list(v.tokens), v.token_count, v.truncated,
            )
            for v in response.vectors
        ]  # fmt: skip

    def embed_multi_vector(
        self, texts: Sequence[str], *, model: str = "", query: bool = False
    ) -> list[TokenVectors]:
        """Each text's token vectors (a ColBERT or bge-m3 model), as a query or a document."""
        kind = pb.INPUT_TYPE_QUERY if query else pb.INPUT_TYPE_DOCUMENT
        request = pb.MultiVectorRequest(texts=list(texts), model=model, input_type=kind)
        response: pb.MultiVectorResponse = self.stub.EmbedMultiVector(
            request, timeout=self.timeout_s, metadata=self.metadata
        )
        return [
            TokenVectors(decode(r.vectors), list(r.token_ids), [(s.start, s.end) for s in r.spans])
            for r in response.results
        ]

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int = 0,
        return_documents: bool = False,
        raw_scores: bool = False,
        truncate: Literal["end", "start", "none"] = "end",
        max_tokens: int = 0,
        model: str = "",
        attention: bool = False,
        layers: Sequence[int] = (),
        heads: Sequence[int] = (),
        average_heads: bool = False,
    ) -> list[Ranked]:
        """The documents scored against the query by a reranker, best first (top_n: the best N;
        0 = all), each with its index in `documents`; with `attention`, each pair's maps (the
        layers and heads as `embed` selects them)."""
        request = pb.RerankRequest(
            query=query, documents=list(documents), top_n=top_n,
            return_documents=return_documents, raw_scores=raw_scores,
            truncation=TRUNCATE[truncate], max_tokens=max_tokens, model=model,
            attention=attention_options(attention, layers, heads, average_heads),
        )  # fmt: skip
        response: pb.RerankResponse = self.stub.Rerank(
            request, timeout=self.timeout_s, metadata=self.metadata
        )
        return [
            Ranked(r.index, r.score, r.document, r.token_count, r.truncated, pair_maps(r))
            for r in response.results
        ]

    def explain(
        self,
        texts: Sequence[str] = (),
        *,
        query: str = "",
        documents: Sequence[str] = (),
        rollout: bool = False,
        dimensions: int = 0,
        prompt_name: str | None = None,
        truncate: Literal["end", "start", "none"] = "end",
        max_tokens: int = 0,
        model: str = "",
    ) -> Explanation:
        """Explain (docs/explain.md): two texts -> their cosine split over token pairs (mean
        pooling only), `rollout` adding each text's rollout; one text -> its rollout relevance;
        a query and documents on a reranker -> each document's score and rollout from CLS."""
        request = pb.ExplainRequest(
            texts=list(texts), query=query, documents=list(documents), rollout=rollout,
            dimensions=dimensions, truncation=TRUNCATE[truncate], max_tokens=max_tokens,
            model=model,
        )  # fmt: skip
        if prompt_name is not None:
            request.prompt_name = prompt_name
        response: pb.ExplainResponse = self.stub.Explain(
            request, timeout=self.timeout_s, metadata=self.metadata
        )
        return explanation(response)

    def embed_chunks(
        self,
        documents: Sequence[str],
        *,
        spans: Sequence[Sequence[tuple[int, int]]] = (),
        tokens_per_chunk: int = 0,
        truncate: Literal["none", "end", "start"] = "none",
        max_tokens: int = 0,
        normalize: bool | None = None,
        attention: bool = False,
        layers: Sequence[int] = (),
        heads: Sequence[int] = (),
        average_heads: bool = False,
        dtype: Literal["float32", "float16"] = "float32",
        request_id: str = "",
        model: str = "",
    ) -> list[ChunkedDocument]:
        """Late chunking (EmbedChunks): each document runs whole once and each chunk's vector
        pools its tokens' vectors. Chunks are `spans[i]` for document i (character spans,
        [start, end) in code points), or every `tokens_per_chunk` tokens of every document. A
        document over the token cap is refused unless `truncate` is "end" or "start"."""
        request = pb.ChunkRequest(
            truncate=TRUNCATE[truncate], max_tokens=max_tokens, output_dtype=DTYPES[dtype],
            request_id=request_id, model=model,
            attention=pb.AttentionOptions(
                enabled=attention, layers=list(layers), heads=list(heads),
                aggregation=pb.HEAD_AGGREGATION_MEAN if average_heads else pb.HEAD_AGGREGATION_NONE,
            ),
        )  # fmt: skip
        if normalize is not None:
            request.normalize = normalize
        for index, text in enumerate(documents):
            document = request.documents.add(text=text, tokens_per_chunk=tokens_per_chunk)
            for start, end in spans[index] if spans else ():
                document.spans.add(start=start, end=end)
        response: pb.ChunkResponse = self.stub.EmbedChunks(
            request, timeout=self.timeout_s, metadata=self.call_metadata(request_id or None)
        )
        return [to_chunked_document(document) for document in response.documents]

    def classify(
        self,
        inputs: Sequence[str] | Sequence[tuple[str, str]],
        *,
        top_k: int = 0,
        raw_scores: bool = False,
        truncate: Literal["end", "start", "none"] = "end",
        model: str = "",
        attention: bool = False,
        layers: Sequence[int] = (),
        heads: Sequence[int] = (),
        average_heads: bool = False,
    ) -> list[Classification]:
        """Texts, or (text, text_pair) pairs, against a classifier's labels, in input order;
        with `attention`, each input's maps as `rerank` gives them."""
        request = pb.ClassifyRequest(
            top_k=top_k, raw_scores=raw_scores, truncation=TRUNCATE[truncate], model=model,
            attention=attention_options(attention, layers, heads, average_heads),
        )  # fmt: skip
        for item in inputs:
            if isinstance(item, str):
                request.texts.append(item)
            else:
                request.pairs.add(text=item[0], text_pair=item[1])
        response: pb.ClassifyResponse = self.stub.Classify(
            request, timeout=self.timeout_s, metadata=self.metadata
        )
        return [
            Classification(
                [(label.label, label.score) for label in r.labels],
                r.token_count,
                r.truncated,
                pair_maps(r),
            )
            for r in response.results
        ]


def attention_options(
    enabled: bool, layers: Sequence[int], heads: Sequence[int], average_heads: bool
) -> pb.AttentionOptions:
    return pb.AttentionOptions(
        enabled=enabled,
        layers=list(layers),
        heads=list(heads),
        aggregation=pb.HEAD_AGGREGATION_MEAN if average_heads else pb.HEAD_AGGREGATION_NONE,
    )


def pair_maps(result: pb.RerankResult | pb.Classification) -> PairMaps | None:
    if not result.HasField("attention"):
        return None
    served = result.attention
    return PairMaps(
        maps=decode(served.attentions),
        layers=list(served.layers),
        heads=list(served.heads),
        segments=[(span.start, span.end) for span in served.segments],
        tokens=list(served.tokens),
    )


def optional_tensor(message: pb.TextResult, field: str) -> np.ndarray | None:
    return decode(getattr(message, field)) if message.HasField(field) else None


def to_embeddings(response: pb.EmbedResponse) -> Embeddings:
    return Embeddings(
        model=response.model,
        pooled=decode(response.pooled) if response.HasField("pooled") else None,
        token_embeddings=[optional_tensor(r, "token_embeddings") for r in response.results],
        attentions=[optional_tensor(r, "attentions") for r in response.results],
        token_counts=[r.token_count for r in response.results],
        truncated=[r.truncated for r in response.results],
        timings=response.timings,
        attention_layers=list(response.attention_layers),
        attention_heads=list(response.attention_heads),
        request_id=response.request_id,
        prompt_name=response.prompt_name,
        prompt_tokens=[r.prompt_tokens for r in response.results],
        windows=[r.windows for r in response.results],
    )


def to_chunked_document(document: pb.DocumentChunks) -> ChunkedDocument:
    vectors = iter(decode(document.vectors))
    chunks = [
        LateChunk(
            start=chunk.start,
            end=chunk.end,
            vector=None if chunk.outside else next(vectors),
            token_count=chunk.token_count,
            truncated=chunk.truncated,
            attentions=decode(chunk.attentions) if chunk.HasField("attentions") else None,
        )
        for chunk in document.chunks
    ]
    return ChunkedDocument(chunks, document.token_count, document.truncated)
