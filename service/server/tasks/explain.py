"""The `explain` task: why two texts are similar, what a text's vector rests on, which of a
document's tokens a reranker's score rests on; computed from one run of the texts (the maths:
`attributions.py`).

- `similarity` (an embedder with mean pooling): both texts run once, their token vectors back
  (the fast graph; the maps graph when each text's rollout is asked too); the token-pair
  decomposition over exactly what was pooled (prompt and special tokens included, the first
  `dimensions` of each vector), beside the cosine of the pooled vectors served. Refused for CLS
  and last-token pooling, where no such exact split exists.
- `relevance` (any embedder): each text's rollout from its pooled position (the maps graph).
- `rerank` (a reranker): each (query, document) pair once on the maps graph; its score (the
  head's activation, as `score` answers it) and the rollout from CLS over the document's tokens.

The rollout needs every layer's and head's maps: they count against max_attention_elements as
maps asked for would (refused before any inference), though only (n,) floats come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from attnserve.service.artifact import HeadSpec, Pooling
from attnserve.service.heads import activate
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import (
    AttentionRequest,
    ExplainOptions,
    TokenizeOptions,
)
from attnserve.service.server.pipeline import Pipeline, Ran, Tokenized
from attnserve.service.server.tasks.attention_maps import (
    NO_MAPS,
    MapsPlan,
    check_attention_elements,
    check_response_bytes,
    plan,
)
from attnserve.service.server.tasks.attributions import (
    SimilarityTerms,
    pooled_relevance,
    rollout,
    similarity_terms,
)
from attnserve.service.server.tasks.embed import check_dimensions
from attnserve.service.server.tasks.score import segments_of, token_strings
from attnserve.service.server.timings import Timings
from attnserve.service.server.tokenizer import EncodedText, TokenView, token_views

EVERY_MAP = AttentionRequest((), (), False)  # the rollout runs over every layer and head


@dataclass(frozen=True)
class ExplainedText:
    tokens: list[TokenView]  # the tokens run, prompt and special tokens included
    relevance: np.ndarray | None  # (n,) rollout from the pooled position; None: not asked
    truncated: bool
    prompt_tokens: int = 0


@dataclass(frozen=True)
class SimilarityExplanation:
    first: ExplainedText
    second: ExplainedText
    terms: SimilarityTerms  # cells (n, m) and shares; terms.cosine is their sum
    cosine: float  # of the pooled vectors, as `embed` serves them (the same first D)
    dimensions: int  # of each vector the decomposition ran over
    timings: Timings
    prompt_name: str = ""


@dataclass(frozen=True)
class RelevanceExplanation:
    texts: list[ExplainedText]
    pooling: Pooling  # the position the relevance is read from
    timings: Timings
    prompt_name: str = ""


@dataclass(frozen=True)
class ExplainedDocument:
    index: int  # in the request
    score: float  # the head's activation, as rerank answers it
    tokens: list[str]  # the document's tokens within the pair, as the model saw them
    relevance: np.ndarray  # (k,) rollout from CLS over those tokens
    token_count: int  # of the pair, special tokens included
    truncated: bool


@dataclass(frozen=True)
class RerankExplanation:
    documents: list[ExplainedDocument]  # in request order
    timings: Timings


Explanation = SimilarityExplanation | RelevanceExplanation | RerankExplanation


class ExplainTask:
    name: ClassVar[str] = "explain"

    def __init__(self, pipeline: Pipeline, maps_available: bool, head: HeadSpec | None) -> None:
        self.pipeline = pipeline
        self.model = pipeline.manifest.model
        self.limits = pipeline.limits
        self.maps_available = maps_available
        self.head = head  # None: an embedder

    async def explain(
        self,
        texts: list[str],
        query: str,
        documents: list[str],
        options: ExplainOptions,
        deadline: float | None,
    ) -> Explanation:
        """What a request's fields ask for, decided once for every protocol: a query or
        documents -> the ranking; two texts -> their similarity; one text -> its relevance."""
        if query or documents:
            if texts:
                raise invalid("explain either texts, or a query and documents, not both")
            return await self.rerank(query, documents, options, deadline)
        if len(texts) == 2:
            return await self.similarity(texts[0], texts[1], options, deadline)
        if len(texts) != 1:
            raise invalid(
                f"explain one text (its rollout relevance) or two (their similarity), got "
                f"{len(texts)}; or a query and documents on a reranker"
            )
        return await self.relevance(texts, options, deadline)

    async def similarity(
        self, first: str, second: str, options: ExplainOptions, deadline: float | None
    ) -> SimilarityExplanation:
        self.require_embedder("a similarity")
        if self.model.pooling is not Pooling.MEAN:
            raise invalid(
                f"the similarity decomposition is exact for mean pooling only; model "
                f"{self.model.name!r} pools {self.model.pooling.value}: explain one text "
                "instead (its rollout relevance)"
            )
        check_dimensions(self.model, options.dimensions)
        maps = self.rollout_plan() if options.rollout else NO_MAPS
        tokenized = await self.admit([first, second], options)
        self.check_maps(tokenized.texts, maps)
        n, m = (text.length for text in tokenized.texts)
        cells = n * m + n + m + (n + m if options.rollout else 0)
        size = 4 * cells + 48 * (n + m) + 1024  # floats, token views, framing
        advice = "send shorter texts (max_tokens)"
        check_response_bytes(size, self.limits.max_send_message_bytes, advice)
        ran = await self.pipeline.run(tokenized, maps.purpose, True, deadline)
        dims = options.dimensions or self.model.hidden_size
        vectors = []
        for result in ran.results:
            assert result.token_embeddings is not None  # asked for above
            vectors.append(result.token_embeddings[:, :dims])
        terms = similarity_terms(*vectors)
        a, b = (result.pooled[:dims].astype(np.float64) for result in ran.results)
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosine = float(a @ b) / norms if norms >= 1e-24 else 0.0
        one, two = self.explained(tokenized, ran, options.rollout)
        prompt = tokenized.prompt.name
        return SimilarityExplanation(one, two, terms, cosine, dims, ran.timings, prompt)

    async def relevance(
        self, texts: list[str], options: ExplainOptions, deadline: float | None
    ) -> RelevanceExplanation:
        self.require_embedder("a text's relevance")
        maps = self.rollout_plan()
        tokenized = await self.admit(texts, options)
        self.check_maps(tokenized.texts, maps)
        ran = await self.pipeline.run(tokenized, maps.purpose, False, deadline)
        explained = self.explained(tokenized, ran, True)
        prompt = tokenized.prompt.name
        return RelevanceExplanation(explained, self.model.pooling, ran.timings, prompt)

    async def rerank(
        self, query: str, documents: list[str], options: ExplainOptions, deadline: float | None
    ) -> RerankExplanation:
        if self.head is None or not self.head.reranker:
            what = "an embedder" if self.head is None else "a classifier"
            raise invalid(
                f"explaining a ranking needs a reranker; model {self.model.name!r} is {what}"
                + (": explain one text, or two for their similarity" if self.head is None else "")
            )
        if not documents:
            raise invalid("the request has no documents")
        limit = self.limits.max_documents_per_request
        if len(documents) > limit:
            raise invalid(f"{len(documents)} documents: at most {limit} documents per request")
        self.limits.check_text("the query", query)
        for index, document in enumerate(documents):
            self.limits.check_text(f"document {index}", document)
        maps = self.rollout_plan()
        tokenizing = TokenizeOptions(options.truncation, options.max_tokens, "")
        pairs: list[tuple[str, str | None]] = [(query, document) for document in documents]
        tokenized = await self.pipeline.admit_pairs(pairs, tokenizing)
        self.check_maps(tokenized.texts, maps)
        ran = await self.pipeline.run(tokenized, maps.purpose, False, deadline)
        scores = activate(np.stack([result.pooled for result in ran.results]), self.head.activation)
        explained = []
        for index, (text, result) in enumerate(zip(tokenized.texts, ran.results, strict=True)):
            assert result.attentions is not None  # the maps graph ran
            start, end = segments_of(text)[1]  # the document's tokens within the pair
            from_cls = rollout(result.attentions)[0]  # (n,)
            tokens = token_strings(self.pipeline.pairs.tokenizer, text)[start:end]
            score, relevance = float(scores[index, 0]), from_cls[start:end]
            counts = (text.length, text.truncated)
            explained.append(ExplainedDocument(index, score, tokens, relevance, *counts))
        return RerankExplanation(explained, ran.timings)

    def require_embedder(self, what: str) -> None:
        if self.head is not None:
            raise invalid(
                f"model {self.model.name!r} is a cross-encoder: explaining {what} needs an "
                "embedder; explain a query and documents on it instead"
            )

    def rollout_plan(self) -> MapsPlan:
        """Every layer and head (refused where the artifact has no maps graph)."""
        return plan(self.model, self.maps_available, EVERY_MAP)

    def check_maps(self, encoded: list[EncodedText], maps: MapsPlan) -> None:
        check_attention_elements(
            self.limits,
            maps.square_elements(encoded),
            what="the attention maps the rollout runs over (every layer and head)",
            fewer="send fewer or shorter texts",
        )

    async def admit(self, texts: list[str], options: ExplainOptions) -> Tokenized:
        tokenizing = TokenizeOptions(options.truncation, options.max_tokens, options.prompt_name)
        return await self.pipeline.admit(texts, tokenizing, offsets=True)

    def explained(self, tokenized: Tokenized, ran: Ran, with_rollout: bool) -> list[ExplainedText]:
        texts = []
        for text, result in zip(tokenized.texts, ran.results, strict=True):
            relevance = None
            if with_rollout:
                assert result.attentions is not None  # the maps graph ran
                relevance = pooled_relevance(rollout(result.attentions), self.model.pooling)
            views = token_views(text)
            texts.append(ExplainedText(views, relevance, text.truncated, text.prompt_tokens))
        return texts
