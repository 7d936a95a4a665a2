"""What a request may ask for, in the domain's terms (no protobuf): the tasks' input.

Each protocol adapter parses its own messages into these; the tasks, pipeline, tokenizer and
batcher see only them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Truncation(Enum):
    END = "end"  # keep the start of the text
    START = "start"  # keep the end of the text
    NONE = "none"  # refuse over-long text


@dataclass(frozen=True)
class AttentionRequest:
    layers: tuple[int, ...]  # empty = all
    heads: tuple[int, ...]  # empty = all
    average_heads: bool


@dataclass(frozen=True)
class EmbedOptions:
    pooled: bool = True
    token_embeddings: bool = False
    normalize: bool | None = None  # None = the model's default
    truncation: Truncation = Truncation.END
    attention: AttentionRequest | None = None
    max_tokens: int | None = None  # None = the model's default (manifest), capped by the limit
    float_bytes: int = 4  # each float of the response: 4 (float32) or 2 (float16)
    dimensions: int | None = None  # Matryoshka: keep the first N of each pooled vector
    prompt_name: str | None = None  # None = the model's default prompt; "" = no prompt
    # Chunked embeddings: a text over max_tokens runs as windows of max_tokens, pooled into one
    # vector (server/chunking.py). None = the server's default (Limits.chunking).
    chunking: bool | None = None
    chunk_overlap: int | None = None  # tokens neighbouring windows share; None = the default


@dataclass(frozen=True)
class TokenizeOptions:
    """How a request's texts become tokens: the part of a request every task shares."""

    truncation: Truncation = Truncation.END
    max_tokens: int | None = None  # None = the model's default (manifest), capped by the limit
    prompt_name: str | None = None  # None = the model's default prompt; "" = no prompt
    # Chunked embeddings: texts are cut (or refused) at this many tokens instead of max_tokens,
    # which becomes the window (max_document_tokens); None = no chunking.
    document_tokens: int | None = None


@dataclass(frozen=True)
class ExplainOptions:
    """What an explain request may ask for (the explain task's input)."""

    truncation: Truncation = Truncation.END
    max_tokens: int | None = None  # None = the model's default (manifest), capped by the limit
    dimensions: int | None = None  # Matryoshka: decompose over the first N of each vector
    prompt_name: str | None = None  # None = the model's default prompt; "" = no prompt
    rollout: bool = False  # a similarity: each text's rollout relevance too (the maps graph)


@dataclass(frozen=True)
class ScoreOptions:
    """What a rerank or classify request may ask for (the score task's input)."""

    truncation: Truncation = Truncation.END  # each pair longest-first, as CrossEncoder
    max_tokens: int | None = None  # per pair; None = the model's default (manifest)
    raw_scores: bool = False  # the logits, without the head's activation
    top_n: int | None = None  # rerank: the best N documents (None: all)
    top_k: int | None = None  # classify: the best K labels per input (None: all)
    return_documents: bool = False  # rerank: each result carries its document's text
    attention: AttentionRequest | None = None  # each pair's attention maps, when set


@dataclass(frozen=True)
class ChunkDocument:
    """One document of a late-chunking request and where to cut it: character spans, or every
    N of its tokens (exactly one of the two)."""

    text: str
    spans: tuple[tuple[int, int], ...] = ()  # [start, end) in Unicode code points
    tokens_per_chunk: int = 0  # 0 = use `spans`


@dataclass(frozen=True)
class LateChunkOptions:
    """What a late-chunking request may ask for (the late_chunking task's input)."""

    truncation: Truncation = Truncation.NONE  # a document over the cap is refused by default
    max_tokens: int | None = None  # None = the model's default (manifest), capped by the limit
    normalize: bool | None = None  # None = the model's default
    attention: AttentionRequest | None = None  # each chunk's rows of the document's maps
    float_bytes: int = 4  # each float of the response: 4 (float32) or 2 (float16)
    prompt_name: str | None = None  # None = the model's default prompt; "" = no prompt
