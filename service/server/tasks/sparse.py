"""The `embed_sparse` task: texts -> sparse lexical vectors, sorted (indices, values) pairs.

For a model whose manifest has a `sparse` head (SPLADE: the graph answers each text's (V,) row,
already reduced over its tokens; bge-m3: a weight per token, kept per token id here). The
pairs' rule is `service/sparse.py`'s, shared with export's checks and the tests: sorted by
index, the `top_k` largest on request, those under `min_weight` dropped. The answer is bounded
by terms x texts: over the server's send limit, the request is refused (RESOURCE_EXHAUSTED)
rather than failed by gRPC on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from attnserve.service.artifact import SparseSpec
from attnserve.service.server.errors import invalid
from attnserve.service.server.options import TokenizeOptions, Truncation
from attnserve.service.server.pipeline import Pipeline
from attnserve.service.server.tasks.attention_maps import check_response_bytes
from attnserve.service.server.timings import Timings
from attnserve.service.sparse import SparseVector, from_tokens, from_vocabulary

BYTES_PER_TERM = 10  # a varint index and a float on the wire, generously
BYTES_PER_TERM_TOKEN = 24  # ... and its token string, when asked for


@dataclass(frozen=True)
class SparseOptions:
    truncation: Truncation = Truncation.END
    max_tokens: int | None = None
    top_k: int | None = None  # the largest K terms per text (None: all)
    min_weight: float = 0.0  # terms at or under it are dropped


@dataclass(frozen=True)
class SparseText:
    vector: SparseVector
    token_count: int
    truncated: bool


@dataclass(frozen=True)
class SparseResult:
    texts: list[SparseText]
    tokens: int
    timings: Timings


class SparseEmbedTask:
    name: ClassVar[str] = "embed_sparse"

    def __init__(self, pipeline: Pipeline, spec: SparseSpec) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.limits = pipeline.limits

    async def embed_sparse(
        self, texts: list[str], options: SparseOptions, deadline: float | None, words: bool
    ) -> SparseResult:
        """`words`: the answer will carry each term's token string (its size is checked so)."""
        if options.top_k is not None and options.top_k < 1:
            raise invalid(f"top_k must be at least 1, got {options.top_k}")
        if not np.isfinite(options.min_weight) or options.min_weight < 0:
            raise invalid(f"min_weight must be a number >= 0, got {options.min_weight}")
        tokenizing = TokenizeOptions(options.truncation, options.max_tokens, "")
        tokenized = await self.pipeline.admit(texts, tokenizing)
        ran = await self.pipeline.run(tokenized, "fast", False, deadline, (self.spec.output,))
        answered = []
        for text, result in zip(tokenized.texts, ran.results, strict=True):
            weights = result.outputs[self.spec.output]
            if self.spec.kind == "vocabulary":
                vector = from_vocabulary(weights, options.top_k, options.min_weight)
            else:
                vector = from_tokens(
                    text.ids, weights, self.spec.dropped_ids, options.top_k, options.min_weight
                )
            answered.append(SparseText(vector, text.length, text.truncated))
        per_term = BYTES_PER_TERM_TOKEN if words else BYTES_PER_TERM
        size = per_term * sum(len(t.vector.indices) for t in answered) + 64 * len(answered)
        advice = "ask for fewer texts, or fewer terms per text (top_k, min_weight)"
        check_response_bytes(size, self.limits.max_send_message_bytes, advice)
        return SparseResult(answered, tokenized.tokens, ran.timings)
