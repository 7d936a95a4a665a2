"""All server settings in one typed place: environment variables and `attnserve serve` flags.

Every field has an environment twin (`ATTNSERVE_<NAME>`) and a flag (`--<name-with-dashes>`);
flags win over the environment, the environment over the defaults. Validated at start, so a bad
value stops the server with a message naming it instead of failing on the first request.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from attnserve.service.artifact import Precision
from attnserve.service.server.artifact_entries import ArtifactEntry, expand, parse_entries

# Which execution provider to ask ONNX Runtime for: auto tries CUDA, then falls back to CPU.
Provider = Literal["auto", "cpu", "cuda"]

DEFAULT_CACHE = Path.home() / ".cache" / "attnserve"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTNSERVE_", extra="forbid", frozen=True)

    # --- what to serve -------------------------------------------------------------------------
    artifact: Annotated[tuple[ArtifactEntry, ...], NoDecode] = Field(
        (),
        description="the artifacts to serve, one model each: `PATH` or `NAME=PATH`, the flag "
        "repeated (comma-separated in the environment); a directory of artifacts serves each "
        "one in it; the first is the default model; unset builds the packaged "
        "all-MiniLM-L6-v2 once into the cache (needs the export extra) and serves that",
    )
    cache_dir: Path = Field(DEFAULT_CACHE, description="where the default artifact is cached")
    precision: Precision = Field(
        "fp32",
        description="graph precision: int8 is ~1.5-2x faster on CPU at ~0.99 cosine to fp32; "
        "fp16 is for CUDA only",
    )
    provider: Provider = Field(
        "auto", description="execution provider: auto tries CUDA, then falls back to CPU"
    )
    workers: int | Literal["auto"] = Field(
        1,
        description="serving processes sharing the port (SO_REUSEPORT), each with its own "
        "engine and event loop; auto picks from the cores and the provider and says why",
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        description="ONNX Runtime threads per worker, shared out between its models (each gets "
        "this divided by the number of models, at least 1); 0 = the cores shared out between "
        "workers",
    )
    allow_tf32: bool = Field(
        False,
        description="CUDA may run the fast graph's fp32 matrix products in TF32 (10-bit "
        "mantissas): faster on Ampere and later GPUs, less exact; the maps graph never does",
    )

    # --- network -------------------------------------------------------------------------------
    host: str = Field("[::]", description="address the gRPC server binds")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    port_file: Path | None = Field(
        None, description="write the bound gRPC port here once SERVING (useful with port 0)"
    )
    http_port: int = Field(
        -1,
        ge=-1,
        le=65535,
        description="OpenAI-compatible HTTP embeddings (POST /v1/embeddings) on this port; "
        "-1 = off (gRPC is the main API, and every open port is one more to secure), 0 picks one",
    )
    model_name: str | None = Field(
        None,
        description="the served name of the one model (several: NAME=PATH in --artifact); unset "
        "= the artifact's short name (all-MiniLM-L6-v2)",
    )
    metrics_port: int = Field(
        9464, ge=-1, le=65535, description="Prometheus /metrics port; 0 picks one, -1 disables"
    )
    max_receive_message_bytes: int = Field(
        16 << 20, gt=0, description="largest request the server accepts (bytes)"
    )
    max_send_message_bytes: int = Field(
        128 << 20, gt=0, description="largest response the server sends (bytes)"
    )
    max_connection_age_s: float = Field(
        300.0,
        ge=0,
        description="close client connections after this long so load rebalances "
        "across replicas (0 = never)",
    )
    max_connection_age_grace_s: float = Field(
        30.0, ge=0, description="time calls on an aged-out connection get to finish"
    )
    max_concurrent_streams: int = Field(
        0,
        ge=0,
        description="calls in progress on one connection (HTTP/2 streams); 0 = unbounded, as "
        "gRPC's own default: a bound refuses (REFUSED_STREAM) the calls of ordinary clients "
        "that multiplex one channel, while max_queue_texts already bounds the work",
    )
    max_connection_idle_s: float = Field(
        600.0,
        ge=0,
        description="close a connection with no call for this long: idle clients hold no "
        "sockets for ever (0 = never)",
    )
    keepalive_time_s: float = Field(
        60.0,
        gt=0,
        description="ping a client whose connection has been quiet this long, to find "
        "connections whose peer vanished",
    )
    min_client_ping_interval_s: float = Field(
        10.0,
        ge=0,
        description="clients that ping more often than this are sent GOAWAY (too_many_pings)",
    )

    # --- batching ------------------------------------------------------------------------------
    max_batch_tokens: int = Field(
        16384,
        gt=0,
        description="padded tokens per model batch: larger batches raise "
        "throughput and each batch's latency",
    )
    max_batch_texts: int = Field(64, gt=0, description="texts per model batch")
    max_wait_ms: float = Field(
        2.0, ge=0, description="how long a batch waits for company: latency traded for merging"
    )
    max_queue_texts: int = Field(
        4096, gt=0, description="texts waiting for inference before RESOURCE_EXHAUSTED"
    )

    # --- limits per request --------------------------------------------------------------------
    max_texts_per_request: int = Field(
        2048,
        gt=0,
        description="texts in one request, any protocol: OpenAI's and Infinity's 2,048, so "
        "LangChain's 1,000-text batches pass; the work stays bounded by max_queue_texts (a "
        "request must fit the queue's free room) and max_batch_tokens per batch; left unset, "
        "at most max_queue_texts",
    )
    max_documents_per_request: int = Field(
        1000,
        gt=0,
        description="documents in one rerank request (one query-document pair each, batched "
        "like texts); a pair's tokens are capped by max_tokens_per_text; left unset, at most "
        "max_queue_texts",
    )
    max_stream_pending: int = Field(
        64,
        gt=0,
        description="requests of one EmbedStream in progress at once; past it the stream "
        "stops reading until one finishes",
    )
    max_chars_per_text: int = Field(50_000, gt=0, description="characters in one text")
    max_tokens_per_text: int = Field(
        0, ge=0, description="token cap per text; 0 = the model's max positions"
    )
    chunking: bool = Field(
        False,
        description="chunked embeddings by default: a text over the token cap runs as "
        "overlapping windows of the cap whose vectors are averaged (weighted by tokens) into "
        "one, instead of being truncated or refused; a request may say otherwise",
    )
    chunk_overlap_tokens: int = Field(
        0,
        ge=0,
        description="text tokens neighbouring windows share by default (context across each "
        "cut, for ~overlap/window more work; measured, it brought the vector no closer to the "
        "full-context one: docs/benchmarks.md); capped below half a window",
    )
    max_document_tokens: int = Field(
        8192,
        gt=0,
        description="tokens in one chunked text, over all its windows; longer ones are "
        "truncated or refused as the request's truncation says (each window counts as a "
        "text against max_texts_per_request and the queue)",
    )
    max_attention_elements: int = Field(
        8_000_000,
        gt=0,
        description="attention-map floats in one response (layers x heads x "
        "tokens x tokens, summed over texts)",
    )
    max_late_chunking_documents: int = Field(
        64,
        gt=0,
        description="documents in one late-chunking request (EmbedChunks, /v1/late_chunking): "
        "each runs whole, up to the token cap, so this bounds one request's share of the "
        "batcher at that many full-length rows; left unset, at most max_queue_texts",
    )
    max_chunks_per_document: int = Field(
        512,
        gt=0,
        description="chunks in one late-chunking document (spans given, or made every N "
        "tokens): bounds the span checks, the pooling and the response per document",
    )

    auto_truncate: bool = Field(
        False,
        description="HTTP embedding requests that send no `truncate` (OpenAI's /v1/embeddings, "
        "TEI's /embed, /embed_all, /similarity; the clients that never send it: the openai "
        "SDK, LangChain, Dify) are cut at the end instead of refused: TEI's --auto-truncate "
        "(true there); rerank and predict cut by default either way, and gRPC's Embed says "
        "its own (truncate END unless the request says NONE)",
    )

    # --- lifecycle -----------------------------------------------------------------------------
    drain_delay_s: float = Field(
        5.0,
        ge=0,
        description="after SIGTERM: NOT_SERVING for this long before refusing calls, "
        "so load balancers notice",
    )
    shutdown_grace_s: float = Field(
        20.0, ge=0, description="after the drain: time in-flight calls get to finish"
    )

    # --- security ------------------------------------------------------------------------------
    tls_cert: Path | None = Field(None, description="PEM certificate chain; enables TLS")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate (mTLS)"
    )
    auth_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (),
        description="accepted bearer tokens (comma-separated in the environment); empty = no auth",
    )

    otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector (OTLP/gRPC, e.g. http://otel:4317) for "
        "per-request spans; needs the tracing extra",
    )

    # --- logs ----------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_format: Literal["text", "json"] = Field("text", description="log line format")

    # --- measurement only -------------------------------------------------------------------------
    # Knobs that exist to measure what a default costs (bench/ turns them off side by side);
    # a deployment leaves them as they are.
    spin_wait: bool = Field(
        True,
        description="ONNX Runtime's idle threads spin before sleeping: ~1 ms less per "
        "small batch, for CPU time the gRPC thread might have used",
    )
    metrics: bool = Field(
        True, description="collect Prometheus metrics; off only to measure their cost"
    )
    warmup: bool = Field(
        True,
        description="run typical shapes and fit the batch cost model before reporting SERVING; "
        "off only for tests and to measure its effect",
    )

    @field_validator("artifact", mode="before")
    @classmethod
    def parse_artifacts(cls, value: Any) -> tuple[ArtifactEntry, ...]:
        return parse_entries(value)

    @field_validator("artifact", mode="after")
    @classmethod
    def expand_artifacts(cls, value: tuple[ArtifactEntry, ...]) -> tuple[ArtifactEntry, ...]:
        return expand(value)

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @model_validator(mode="after")
    def check_consistency(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: {path} is not a file")
        texts_unset = "max_texts_per_request" not in self.model_fields_set
        if texts_unset and self.max_texts_per_request > self.max_queue_texts:
            # The default follows a smaller queue, as the document limits below do.
            object.__setattr__(self, "max_texts_per_request", self.max_queue_texts)
        if self.max_texts_per_request > self.max_queue_texts:
            raise ValueError(
                f"max_texts_per_request ({self.max_texts_per_request}) exceeds max_queue_texts "
                f"({self.max_queue_texts}): such a request could never be queued"
            )
        for name in ("max_documents_per_request", "max_late_chunking_documents"):
            if getattr(self, name) <= self.max_queue_texts:
                continue
            if name in self.model_fields_set:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) exceeds max_queue_texts "
                    f"({self.max_queue_texts}): such a request could never be queued"
                )
            # The default follows a smaller queue: a start must not fail over a rerank (or
            # late-chunking) limit its operator never set (frozen model: set once, here).
            object.__setattr__(self, name, self.max_queue_texts)
        if isinstance(self.workers, int) and self.workers < 1:
            raise ValueError(f"workers must be at least 1 (or auto), got {self.workers}")
        if self.model_name is not None and len(self.artifact) > 1:
            raise ValueError(
                "model_name names one model, but several artifacts are served: name each "
                "as --artifact NAME=PATH"
            )
        return self

    @classmethod
    def from_sources(cls, cli_values: dict[str, Any] | None = None) -> Settings:
        """Flags (given, not None) over environment over defaults."""
        given = {k: v for k, v in (cli_values or {}).items() if v is not None}
        return cls(**given)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per settings field, help text from its description, defaults left to pydantic;
    a repeatable field's flag collects every value given."""
    for name, field in Settings.model_fields.items():
        env = f"ATTNSERVE_{name.upper()}"
        parser.add_argument(
            flag_name(name),
            dest=name,
            default=None,
            action="append" if name in REPEATABLE else "store",
            metavar=name.split("_")[-1].upper(),
            help=f"{field.description} [env {env}; default {field.default!r}]",
        )


# Fields whose flag may be given many times (`--artifact A --artifact B`).
REPEATABLE = ("artifact",)

# The fields under "measurement only" above: docs/settings.md lists them in a
# table of their own.
MEASUREMENT_ONLY = ("spin_wait", "metrics", "warmup")


def settings_table() -> str:
    """The settings tables of docs/settings.md, generated from the fields (a test keeps them
    equal): the settings, then the measurement-only ones."""
    header = ["| flag | env | default | what it does |", "|---|---|---|---|"]
    main, measuring = list(header), list(header)
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(none)" if default == () else str(default).replace(str(Path.home()), "~")
        env = f"ATTNSERVE_{name.upper()}"
        row = f"| `{flag_name(name)}` | `{env}` | `{shown}` | {field.description} |"
        (measuring if name in MEASUREMENT_ONLY else main).append(row)
    note = "Measurement only (they exist to measure what a default costs; leave them on):"
    return "\n".join([*main, "", note, "", *measuring])
