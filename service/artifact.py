"""The artifact directory: the only contract between `export/` and the server.

`manifest.json` records everything the server must know and nothing it must guess. `export/`
writes it through these models; the server reads it through `verify`, which refuses a missing,
truncated or altered file with a message naming it.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_FILE = "manifest.json"
# 2 added the model's family, causality, padding side and prompts; a version-1 manifest (BERT
# only) reads as version 2 with the defaults, which describe exactly what it held. 3 added how
# an int8 graph was quantised and what it costs (`Int8Spec`), required on an embedder's int8
# graphs; older manifests read without it. 4 added `head`: a cross-encoder's graphs answer
# `scores` (logits over named labels) for text pairs instead of pooled vectors; a manifest
# before 4 reads as one with no head (an embedder). An embedder's artifact is still written as
# version 3, so servers that read 3 keep reading it. 5 added the retrieval heads: `sparse`
# (SPLADE's (B, V) weights reduced in the graph, or bge-m3's (B, T) token weights) and
# `multi_vector` (per-token unit vectors, with ColBERT's markers and query expansion); only such
# an artifact is written as 5, so a server that reads 4 refuses it by its version, by name.
FORMAT_VERSION = 4
EMBEDDER_FORMAT_VERSION = 3
RETRIEVAL_FORMAT_VERSION = 5
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4, 5)

# The artifact's vocabulary, spelled once: the server, export and tests all use these.
GraphPurpose = Literal["fast", "maps"]  # fast: embeddings only; maps: also attention probabilities
# What a scoring model's default answer does to its logits (raw logits are always on request).
ScoreActivation = Literal["sigmoid", "softmax", "identity"]
Precision = Literal["fp32", "int8", "fp16"]
ExecutionProvider = Literal["CUDAExecutionProvider", "CPUExecutionProvider"]  # ONNX Runtime's names


class Family(StrEnum):
    """Which architecture a checkpoint is: config.json's `model_type` names it.

    Spelled here, in the floor (no torch), because the manifest records it; `model/` maps each
    family onto its modules (`model/families.py`) and the server reads it as a name.
    """

    BERT = "bert"  # learned positions, post-norm LayerNorm, GELU, token types
    ROBERTA = "roberta"  # BERT's layers; positions counted from past the padding index
    XLM_ROBERTA = "xlm-roberta"  # RoBERTa with a multilingual (Unigram) vocabulary
    CAMEMBERT = "camembert"  # RoBERTa trained on French
    DISTILBERT = "distilbert"  # BERT without token types or pooler, its own tensor names
    MPNET = "mpnet"  # BERT-like, with a learned relative position bias on the scores
    MODERNBERT = "modernbert"  # pre-norm, rotary, GeGLU, alternating global/local attention
    QWEN3 = "qwen3"  # causal decoder: RoPE, GQA, RMSNorm (also on Q and K per head), SwiGLU
    QWEN2 = "qwen2"  # as Qwen3 without the Q/K norms, with biases on the Q/K/V projections

    @property
    def causal(self) -> bool:
        """Whether each position attends only to itself and earlier ones."""
        return self in (Family.QWEN3, Family.QWEN2)


class Pooling(StrEnum):
    """How token vectors become one text vector."""

    MEAN = "mean"  # average over real (non-padding) tokens: sentence-transformers' default
    CLS = "cls"  # the first token's vector
    LAST = "last"  # the last real token's vector (decoder-style embedders)


class ArtifactError(ValueError):
    """An artifact the server must not load; the message names the file and what is wrong."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    name: str = Field(description="model name, e.g. sentence-transformers/all-MiniLM-L6-v2")
    source: str = Field(description="where the checkpoint came from (package or directory)")
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    max_positions: int = Field(
        gt=0,
        description="the most tokens a text may hold: the position table's usable rows (RoBERTa's "
        "less its padding offset), a hard token limit",
    )
    vocab_size: int = Field(gt=0)
    pooling: Pooling
    normalize: bool = Field(description="whether pooled embeddings are L2-normalised by default")
    family: Family = Field(Family.BERT, description="the architecture (config.json model_type)")
    causal: bool = Field(
        False, description="each position attends only to itself and earlier ones (decoders)"
    )
    num_kv_heads: int | None = Field(
        None, gt=0, description="key/value heads (grouped-query attention); None: num_heads"
    )
    padding_side: Literal["right"] = Field(
        "right",
        description="where batches must be padded: the causal fast graph and last-token "
        "pooling are exact with padding after each text",
    )
    prompts: dict[str, str] = Field(
        default_factory=dict, description="named instruction prefixes, prepended to a text"
    )
    default_prompt_name: str | None = Field(
        None, description="the prompt applied when a request names none (None: no prompt)"
    )

    @model_validator(mode="after")
    def check_prompts(self) -> Self:
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(
                f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                f"{sorted(self.prompts)}"
            )
        return self


class TokenizerSpec(Strict):
    file: str
    default_max_tokens: int = Field(gt=0, description="truncation length used by default")
    pad_token_id: int
    lowercase: bool


class Int8Spec(Strict):
    """How an int8 graph was made, and what it costs against fp32 on held-out texts."""

    method: str = Field(description="how activations and weights were quantised")
    fp32_nodes: tuple[str, ...] = Field(description="matrix products kept in fp32")
    calibration_texts: int = Field(ge=0, description="texts that fixed the activation scales")
    held_out_texts: int = Field(gt=0, description="other texts the figures were measured on")
    nn_agreement: float = Field(
        ge=0, le=1, description="share of held-out queries whose nearest neighbour is fp32's"
    )
    top10_overlap: float = Field(
        ge=0, le=1, description="mean share of fp32's top 10 neighbours that int8's top 10 holds"
    )
    batch_invariance: float = Field(
        description="min cosine between a text's vector alone and inside varied batches"
    )


class GraphSpec(Strict):
    file: str
    purpose: GraphPurpose = Field(description="fast: embeddings only; maps: also attentions")
    precision: Precision
    providers: tuple[ExecutionProvider, ...] = Field(
        description="execution providers the graph is meant for"
    )
    opset: int
    op_counts: dict[str, int] = Field(description="fused-op counts by op type")
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    graph_optimization_level: str = Field(description="ORT optimisation level to load it with")
    parity: dict[str, float] = Field(description="figures measured at export")
    int8: Int8Spec | None = Field(None, description="int8 graphs: method and retrieval figures")

    @model_validator(mode="after")
    def check_int8(self) -> Self:
        if self.int8 is not None and self.precision != "int8":
            raise ValueError(f"{self.file}: a {self.precision} graph with int8 figures")
        return self


class HeadSpec(Strict):
    """A cross-encoder's head: what its graphs output and how to read it.

    The graphs take one text or one text pair per row (the pair through tokenizer.json's own
    pair template: [CLS] a [SEP] b [SEP] with token types, <s> a </s></s> b </s>) and output
    `scores`: (B, L) logits, one per label, instead of `pooled`."""

    kind: Literal["sequence_classification"] = "sequence_classification"
    output: Literal["scores"] = "scores"
    labels: tuple[str, ...] = Field(
        min_length=1, description="config.json's id2label, in label order (one: a reranker)"
    )
    multi_label: bool = Field(
        False, description="labels are independent (problem_type multi_label_classification)"
    )
    activation: ScoreActivation = Field(
        description="the default answer's function of the logits: sigmoid for one logit (as "
        "CrossEncoder and text-embeddings-inference) or per label where multi-label, softmax "
        "over labels otherwise, or identity where the checkpoint asks for raw logits"
    )

    @property
    def reranker(self) -> bool:
        """One logit: a relevance score per pair."""
        return len(self.labels) == 1


# Graph outputs with one row per token, (B, T, ...): a text's rows are its first n.
PER_TOKEN_OUTPUTS = ("token_embeddings", "token_weights", "multi_vectors")


class SparseSpec(Strict):
    """A sparse lexical vector per text: one non-negative weight per vocabulary id, most 0.

    `vocabulary`: the graph's `output` is (B, V), already reduced over the text's real tokens
    (SPLADE: log(1 + relu(MLM logits)), max or sum), indexed by token id. `per_token`: the graph's
    `output` is (B, T), one weight per token (bge-m3's relu(sparse_linear)); the server keeps each
    token id's largest weight in the text and never reports `dropped_ids`."""

    kind: Literal["vocabulary", "per_token"]
    output: str = Field(description="the graph output holding the weights")
    reduction: Literal["max", "sum"] = Field(description="over a text's tokens (per_token: max)")
    dropped_ids: tuple[int, ...] = Field(
        (), description="token ids never reported (bge-m3: <s>, </s>, <pad>, <unk>)"
    )


class MultiVectorSpec(Strict):
    """Per-token unit vectors (B, T, D) and what a text's token ids are before the graph.

    ColBERT (PyLate folders): a marker id is inserted after the first token (queries and
    documents have their own), a query is padded to `query_length` with `expansion_id`
    ([MASK]) and every one of its positions kept, attended to where `attend_to_expansion`; a
    document keeps its real tokens not in `skiplist_ids`. bge-m3: no markers, position 0 (the
    dense vector's) dropped."""

    output: str = Field(description="the graph output holding the (B, T, D) unit vectors")
    dim: int = Field(gt=0)
    skip_first: bool = Field(False, description="drop position 0 (bge-m3's <s>)")
    query_marker_id: int | None = None
    document_marker_id: int | None = None
    query_length: int | None = Field(
        None, gt=1, description="queries are expanded to this many tokens (None: no expansion)"
    )
    expansion_id: int | None = Field(None, description="the id queries are padded with")
    attend_to_expansion: bool = False
    document_length: int | None = Field(None, gt=1, description="tokens a document may hold")
    skiplist_ids: tuple[int, ...] = Field((), description="ids a document's vectors leave out")

    @model_validator(mode="after")
    def check_expansion(self) -> Self:
        if (self.query_length is None) != (self.expansion_id is None):
            raise ValueError("query_length and expansion_id come together")
        return self


class FileSpec(Strict):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(Strict):
    format_version: int
    model: ModelSpec
    tokenizer: TokenizerSpec
    graphs: tuple[GraphSpec, ...]
    files: dict[str, FileSpec] = Field(description="every file of the artifact but the manifest")
    tools: dict[str, str] = Field(description="versions of the tools that built the artifact")
    created_at: str
    head: HeadSpec | None = Field(
        None, description="a cross-encoder's head (graphs answer scores); None: an embedder"
    )

    sparse: SparseSpec | None = Field(None, description="sparse lexical weights (format 5)")
    multi_vector: MultiVectorSpec | None = Field(
        None, description="per-token vectors for late interaction (format 5)"
    )
    dense: bool = Field(
        True, description="whether the graphs answer `pooled` (False: SPLADE, a ColBERT model)"
    )

    @property
    def row_output(self) -> str:
        """The graph output holding one vector per row: pooled vectors, a head's scores, or,
        for a retrieval model without pooled vectors, its sparse or multi-vector output."""
        if self.head is not None:
            return self.head.output
        if self.dense:
            return "pooled"
        found = self.sparse or self.multi_vector
        assert found is not None, "a model without pooled vectors has a retrieval head"
        return found.output

    @model_validator(mode="after")
    def check_retrieval_heads(self) -> Self:
        """A retrieval head's output is one every graph answers; it needs format 5; a model
        without pooled vectors has one."""
        if not self.dense and self.head is None and self.sparse is None is self.multi_vector:
            raise ValueError("dense is false, yet there is no sparse or multi_vector output")
        for name, spec in (("sparse", self.sparse), ("multi_vector", self.multi_vector)):
            if spec is None:
                continue
            if self.format_version < RETRIEVAL_FORMAT_VERSION:
                raise ValueError(f"{name} needs format_version {RETRIEVAL_FORMAT_VERSION}")
            for graph in self.graphs:
                if spec.output not in graph.outputs:
                    raise ValueError(f"{graph.file}: no output {spec.output!r} for {name}")
        return self

    @model_validator(mode="after")
    def check_int8_recorded(self) -> Self:
        """From version 3 an embedder's int8 graph says how it was made: one without its figures
        would be dynamic int8 of an older export, whose vectors depend on their batch. (A
        cross-encoder's int8 graph records its score gate in `parity` instead: retrieval figures
        mean nothing for scores.)"""
        if self.format_version >= 3 and self.head is None:
            for spec in self.graphs:
                if spec.precision == "int8" and spec.int8 is None:
                    raise ValueError(f"{spec.file}: an int8 graph without its int8 figures")
        return self

    def graph(self, purpose: GraphPurpose, precision: Precision) -> GraphSpec | None:
        for spec in self.graphs:
            if spec.purpose == purpose and spec.precision == precision:
                return spec
        return None

    @property
    def artifact_hash(self) -> str:
        """One hash naming the whole artifact: the hash of its file hashes, in name order."""
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(f"{name}:{self.files[name].sha256}\n".encode())
        return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(path: Path) -> FileSpec:
    return FileSpec(sha256=sha256_of(path), bytes=path.stat().st_size)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactError(f"{path}: not found (is {directory} an attnserve artifact?)")
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ArtifactError(f"{path}: not a valid manifest: {exc}") from exc
    if manifest.format_version not in READABLE_FORMAT_VERSIONS:
        *earlier, last = (str(v) for v in READABLE_FORMAT_VERSIONS)
        readable = f"{', '.join(earlier)} and {last}"
        raise ArtifactError(
            f"{path}: format_version {manifest.format_version}, this server reads {readable}"
        )
    return manifest


def verify(directory: Path) -> Manifest:
    """Check every file the manifest names: present, complete, unaltered. Returns the manifest."""
    manifest = read_manifest(directory)
    referenced = [manifest.tokenizer.file, *(graph.file for graph in manifest.graphs)]
    for name in referenced:
        if name not in manifest.files:
            raise ArtifactError(f"{name}: used by the manifest but has no hash in its file list")
    for name, expected in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{name}: missing from {directory}")
        size = path.stat().st_size
        if size != expected.bytes:
            raise ArtifactError(
                f"{name}: {size} bytes, the manifest says {expected.bytes} (truncated or replaced)"
            )
        if sha256_of(path) != expected.sha256:
            raise ArtifactError(f"{name}: sha256 does not match the manifest (file was altered)")
    return manifest
