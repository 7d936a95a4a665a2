"""The composition root and lifecycle: assemble, start, warm up, serve, drain on SIGTERM, stop.

`assemble` builds every part from settings and wires them (nothing else constructs the engine,
batcher or pipeline); `build_server` starts the assembly on a real port (port 0 picks a free
one), so tests run the same code as production on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import grpc
import onnxruntime
from aiohttp import web
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from attnserve.service.artifact import ArtifactError, Manifest, verify
from attnserve.service.server.auth import TokenAuthInterceptor, Tokens
from attnserve.service.server.batcher import Batcher
from attnserve.service.server.calls import Front
from attnserve.service.server.default_artifact import ensure_default_artifact
from attnserve.service.server.engine import Engine
from attnserve.service.server.errors import StartupError
from attnserve.service.server.logs import install_request_id_factory
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.oip import SERVICE_NAME as OIP_SERVICE_NAME
from attnserve.service.server.oip import InferenceService
from attnserve.service.server.oip import method_handlers as oip_handlers
from attnserve.service.server.openai_http import EmbeddingsApp, start_http
from attnserve.service.server.pipeline import Pipeline
from attnserve.service.server.servicer import EmbedderService, method_handlers
from attnserve.service.server.settings import Settings
from attnserve.service.server.tokenizer import TextTokenizer
from attnserve.service.server.tracing import Tracer
from attnserve.v1 import embedder_pb2
from attnserve.v1 import embedder_pb2 as pb

log = logging.getLogger(__name__)
SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name


def attnserve_version() -> str:
    try:
        return version("attnserve")
    except PackageNotFoundError:
        return "unknown"


def grpc_options(settings: Settings, worker: int | None = None) -> list[tuple[str, int]]:
    """gRPC server options; a worker of `--workers N` shares its port with the others."""
    ping_interval_ms = int(settings.min_client_ping_interval_s * 1000)
    options = [
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        ("grpc.max_send_message_length", settings.max_send_message_bytes),
        ("grpc.so_reuseport", 0 if worker is None else 1),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Keepalive enforcement: a client's pings closer than this (busy or idle) are strikes,
        # and after max_ping_strikes the connection gets GOAWAY (too_many_pings).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", ping_interval_ms),
        ("grpc.http2.max_ping_strikes", 2),
    ]
    if settings.max_connection_idle_s > 0:
        options.append(("grpc.max_connection_idle_ms", int(settings.max_connection_idle_s * 1000)))
    if settings.max_connection_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
        ]
    return options


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def load_artifact(settings: Settings) -> tuple[Path, Manifest]:
    try:
        directory = settings.artifact or ensure_default_artifact(settings.cache_dir)
        return directory, verify(directory)
    except ArtifactError as error:
        raise StartupError(f"artifact: {error}") from error


def build_info(
    settings: Settings, manifest: Manifest, engine: Engine, pipeline: Pipeline
) -> pb.InfoResponse:
    """The `Info` answer: what is served and under which limits (fixed for the server's life)."""
    model = manifest.model
    return pb.InfoResponse(
        model_name=model.name,
        model_source=model.source,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        num_heads=model.num_heads,
        pooling=model.pooling,
        normalize=model.normalize,
        default_max_tokens=pipeline.default_max_tokens,
        limits=pb.Limits(
            max_texts_per_request=settings.max_texts_per_request,
            max_chars_per_text=settings.max_chars_per_text,
            max_tokens_per_text=pipeline.tokenizer.max_tokens,
            max_attention_elements=settings.max_attention_elements,
            max_receive_message_bytes=settings.max_receive_message_bytes,
            max_send_message_bytes=settings.max_send_message_bytes,
            max_queue_texts=settings.max_queue_texts,
        ),
        precision=settings.precision,
        execution_provider=engine.provider,
        attention_maps=engine.supports_maps(),
        artifact_sha256=manifest.artifact_hash,
        server_version=attnserve_version(),
        onnxruntime_version=onnxruntime.__version__,
        prompts=model.prompts,
        default_prompt_name=model.default_prompt_name or "",
        family=model.family,
        causal=model.causal,
    )


@dataclass
class Assembly:
    """Every part of one server, built and wired, not yet started."""

    settings: Settings
    directory: Path
    manifest: Manifest
    engine: Engine
    tokenizer: TextTokenizer
    metrics: Metrics
    batcher: Batcher
    front: Front
    service: EmbedderService
    oip: InferenceService
    http: EmbeddingsApp | None


def served_name(settings: Settings, manifest: Manifest) -> str:
    """The model's name in the OIP and OpenAI APIs: the setting, or the artifact's short name."""
    return settings.model_name or manifest.model.name.rsplit("/", 1)[-1]


def assemble(settings: Settings, span_exporter: Any = None) -> Assembly:
    # Tokenise in the calling thread: the tokenizers library's own thread pool spins while it
    # waits for work and, on a busy server, burns the cores inference needs (large requests
    # still leave the event loop, in a worker thread). A user's own setting wins.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    directory, manifest = load_artifact(settings)
    engine = Engine(
        directory,
        manifest,
        settings.precision,
        settings.provider,
        settings.intra_op_threads,
        settings.spin_wait,
        settings.allow_tf32,
    )
    max_tokens = min(
        settings.max_tokens_per_text or manifest.model.max_positions, manifest.model.max_positions
    )
    tokenizer = TextTokenizer(directory / manifest.tokenizer.file, max_tokens)
    metrics = Metrics(enabled=settings.metrics)
    batcher = Batcher(
        engine,
        pad_token_id=manifest.tokenizer.pad_token_id,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_texts=settings.max_batch_texts,
        max_wait_ms=settings.max_wait_ms,
        max_queue_texts=settings.max_queue_texts,
        on_batch=metrics.observe_batch,
        on_depth=metrics.queue_depth.set,
    )
    tracer = Tracer(settings.otlp_endpoint, span_exporter)
    pipeline = Pipeline(
        settings, manifest, tokenizer, batcher, metrics, tracer, engine.supports_maps()
    )
    info = build_info(settings, manifest, engine, pipeline)
    # Every protocol is a thin adapter over the one pipeline, sharing the call envelope.
    front = Front(metrics, tracer, version=attnserve_version())
    service = EmbedderService(pipeline, info, front, settings.max_stream_pending)
    name = served_name(settings, manifest)
    oip = InferenceService(
        pipeline, front, name, manifest.model.hidden_size, settings.max_texts_per_request
    )
    http = None
    if settings.http_port >= 0:
        tokens = auth_tokens(settings)
        http = EmbeddingsApp(pipeline, front, name, (manifest.model.name,), tokens)
    return Assembly(
        settings, directory, manifest, engine, tokenizer, metrics, batcher, front, service, oip,
        http,
    )  # fmt: skip


def auth_tokens(settings: Settings) -> Tokens | None:
    if not settings.auth_tokens:
        return None
    return Tokens(tuple(token.get_secret_value() for token in settings.auth_tokens))


@dataclass
class RunningServer:
    settings: Settings
    server: aio.Server
    port: int
    health: health.aio.HealthServicer
    front: Front
    batcher: Batcher
    metrics: Metrics
    metrics_port: int | None = None
    http: web.AppRunner | None = None
    http_port: int | None = None

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME, OIP_SERVICE_NAME):
            await self.health.set(name, status)
        self.front.ready = serving
        self.metrics.ready.set(1 if serving else 0)

    async def drain_and_stop(self) -> None:
        """NOT_SERVING, wait for balancers to notice, refuse new calls, finish in-flight ones."""
        log.info("draining: NOT_SERVING for %.1f s", self.settings.drain_delay_s)
        await self.set_serving(False)
        await asyncio.sleep(self.settings.drain_delay_s)
        self.front.accepting = False
        log.info("stopping: in-flight calls get %.1f s", self.settings.shutdown_grace_s)
        await self.server.stop(self.settings.shutdown_grace_s)
        if self.http is not None:
            await self.http.cleanup()
        await self.batcher.stop()
        self.metrics.close()
        log.info("stopped")


def start_grpc(assembly: Assembly, worker: int | None) -> tuple[aio.Server, int, Any]:
    """The gRPC server with both APIs (attnserve.v1, OIP), health and reflection, bound (not
    yet started)."""
    settings = assembly.settings
    interceptors = []
    tokens = auth_tokens(settings)
    if tokens is not None:
        interceptors.append(TokenAuthInterceptor(tokens))
    server = aio.server(options=grpc_options(settings, worker), interceptors=interceptors)
    for name, handlers in (
        (SERVICE_NAME, method_handlers(assembly.service)),
        (OIP_SERVICE_NAME, oip_handlers(assembly.oip)),
    ):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        server.add_registered_method_handlers(name, handlers)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, OIP_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    return server, port, health_servicer


def log_startup(assembly: Assembly, running: RunningServer) -> None:
    settings, manifest, engine = assembly.settings, assembly.manifest, assembly.engine
    log.info(
        "serving %s (artifact %s, sha256 %s) on port %d (attnserve.v1 and OIP as %r), "
        "OpenAI HTTP on %s; provider %s, %d threads, precision %s; "
        "metrics on %s; limits: %d texts/request, %d chars/text, %d tokens/text, "
        "%d attention elements/response; tls %s, auth %s",
        manifest.model.name,
        assembly.directory,
        manifest.artifact_hash[:12],
        running.port,
        assembly.oip.model_name,
        running.http_port if running.http_port is not None else "off",
        engine.provider,
        engine.threads,
        settings.precision,
        running.metrics_port,
        settings.max_texts_per_request,
        settings.max_chars_per_text,
        assembly.tokenizer.max_tokens,
        settings.max_attention_elements,
        "on" if settings.tls_cert else "off",
        "on" if settings.auth_tokens else "off",
    )


async def build_server(
    settings: Settings, span_exporter: Any = None, worker: int | None = None
) -> RunningServer:
    """Start a server; `span_exporter` (tests) receives spans without an OTLP collector;
    `worker` is this process's index under `--workers N` (it then shares the port)."""
    install_request_id_factory()
    assembly = assemble(settings, span_exporter)
    if worker is not None:
        assembly.metrics.set_worker(worker)
    server, port, health_servicer = start_grpc(assembly, worker)
    metrics, batcher, engine = assembly.metrics, assembly.batcher, assembly.engine
    running = RunningServer(
        settings, server, port, health_servicer, assembly.front, batcher, metrics
    )
    await running.set_serving(False)  # NOT_SERVING until warm
    await server.start()
    if assembly.http is not None:
        running.http, running.http_port = await start_http(
            settings, assembly.http, reuse_port=worker is not None
        )
    if settings.metrics_port >= 0:
        running.metrics_port = metrics.serve(settings.metrics_port)
    metrics.describe_model(
        model=assembly.manifest.model.name,
        artifact_sha256=assembly.manifest.artifact_hash,
        provider=engine.provider,
        precision=settings.precision,
        onnxruntime=onnxruntime.__version__,  # the one serving (the manifest has export's)
    )
    costs = None
    if settings.warmup:
        started = time.perf_counter()
        await asyncio.to_thread(engine.warm_up)
        costs = await asyncio.to_thread(engine.calibrate)
        for purpose, cost in costs.items():
            log.info("cost model, %s graph: %s", purpose, cost.describe())
        log.info("warm-up and calibration took %.2f s", time.perf_counter() - started)
    batcher.start(costs)  # texts queued during warm-up are served from here on
    await running.set_serving(True)
    if settings.port_file is not None:
        settings.port_file.write_text(f"{port}\n")
    log_startup(assembly, running)
    return running


async def serve_forever(
    settings: Settings,
    worker: int | None = None,
    on_ready: Callable[[int], None] | None = None,
    parent: int | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT, then drain; `on_ready(port)` once SERVING. A worker
    (`parent` = its supervisor's pid) also drains when its supervisor is gone, so a killed
    supervisor never leaves orphans serving on its port."""
    running = await build_server(settings, worker=worker)
    if on_ready is not None:
        on_ready(running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watchdog = None if parent is None else asyncio.create_task(watch_parent(parent, stop))
    await stop.wait()
    if watchdog is not None:
        watchdog.cancel()
    await running.drain_and_stop()
    return 0


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the supervisor (pid %d) is gone: draining", parent)
    stop.set()
