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

from attnserve.service.artifact import ArtifactError, GraphPurpose, Manifest, verify
from attnserve.service.server.artifact_entries import ArtifactEntry, duplicate_names
from attnserve.service.server.auth import TokenAuthInterceptor, Tokens
from attnserve.service.server.batcher import Batcher
from attnserve.service.server.calls import Front
from attnserve.service.server.cost_model import CostModel
from attnserve.service.server.default_artifact import ensure_default_artifact
from attnserve.service.server.engine import Engine
from attnserve.service.server.http.app import HttpApp, start_http
from attnserve.service.server.http.routes import route_sets
from attnserve.service.server.limits import Limits
from attnserve.service.server.listeners import check_ports, grpc_address
from attnserve.service.server.logs import install_request_id_factory
from attnserve.service.server.memory import mib, rss_bytes
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.oip import service as oip_service
from attnserve.service.server.pipeline import Pipeline
from attnserve.service.server.registry import Registry, ServedModel, Task
from attnserve.service.server.settings import Settings
from attnserve.service.server.shared_fit import fit_once, fit_path
from attnserve.service.server.startup_errors import ArtifactUnreadableError, check_tls_files
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tasks.explain import ExplainTask
from attnserve.service.server.tasks.late_chunking import LateChunkTask
from attnserve.service.server.tasks.maxsim import MaxSimScoreTask
from attnserve.service.server.tasks.multi_vector import MultiVectorTask
from attnserve.service.server.tasks.score import ScoreTask
from attnserve.service.server.tasks.sparse import SparseEmbedTask
from attnserve.service.server.tei import service as tei_service
from attnserve.service.server.tokenizer import TextTokenizer
from attnserve.service.server.tracing import Tracer
from attnserve.service.server.v1 import service as v1_service

log = logging.getLogger(__name__)
# The gRPC services, each of one protocol: its name -> (its protocol label, its methods'
# builder). TEI's API is five services (tei.v1.Embed, tei.v1.Rerank, ...), all on the same port.
GRPC_PROTOCOLS = {
    v1_service.SERVICE_NAME: (v1_service.PROTOCOL, v1_service.handlers),
    oip_service.SERVICE_NAME: (oip_service.PROTOCOL, oip_service.handlers),
    **{name: (tei_service.PROTOCOL, build) for name, build in tei_service.SERVICES.items()},
}
# The services whose health depends on what the models offer (TEI reports tei.v1.Rerank
# NOT_SERVING on a server of no re-ranker); every other service is SERVING once warm.
GRPC_OFFERED = tei_service.OFFERED


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
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Keepalive enforcement: a client's pings closer than this (busy or idle) are strikes,
        # and after max_ping_strikes the connection gets GOAWAY (too_many_pings).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", ping_interval_ms),
        ("grpc.http2.max_ping_strikes", 2),
    ]
    if settings.max_concurrent_streams > 0:
        options.append(("grpc.max_concurrent_streams", settings.max_concurrent_streams))
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


def load_artifact(settings: Settings, entry: ArtifactEntry | None) -> tuple[Path, Manifest]:
    """`entry`'s artifact read and verified (None: the packaged default, built once)."""
    try:
        directory = entry.path if entry else ensure_default_artifact(settings.cache_dir)
        return directory, verify(directory)
    except (ArtifactError, OSError) as error:
        flag = f"--artifact {entry}" if entry else "the default artifact"
        raise ArtifactUnreadableError(f"{flag}: {error}") from error


def served_name(settings: Settings, entry: ArtifactEntry | None, manifest: Manifest) -> str:
    """A model's name in every API: the entry's NAME (or `--model-name` for a lone model), else
    the artifact's short name."""
    if entry is not None and entry.name is not None:
        return entry.name
    return settings.model_name or manifest.model.name.rsplit("/", 1)[-1]


def threads_per_model(settings: Settings, models: int) -> int:
    """The worker's intra-op threads shared out between its models (docs/architecture.md,
    "Several models": each model runs on its own share of the cores, so a flood on one never
    takes the cores another needs)."""
    return max(1, (settings.intra_op_threads or os.cpu_count() or 1) // models)


def load_model(
    settings: Settings,
    entry: ArtifactEntry | None,
    threads: int,
    metrics: Metrics,
    tracer: Tracer,
) -> ServedModel:
    """One artifact made servable: engine, tokenizer, batcher, pipeline and the tasks it
    offers, under its served name, with `threads` intra-op threads."""
    directory, manifest = load_artifact(settings, entry)
    name = served_name(settings, entry, manifest)
    limits = Limits.of(settings, manifest.model.max_positions)
    engine = Engine(
        directory,
        manifest,
        settings.precision,
        settings.provider,
        threads,
        settings.spin_wait,
        settings.allow_tf32,
    )
    tokenizer = TextTokenizer(directory / manifest.tokenizer.file, limits.max_tokens_per_text)
    observed = metrics.for_model(name)
    batcher = Batcher(
        engine,
        pad_token_id=manifest.tokenizer.pad_token_id,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_texts=settings.max_batch_texts,
        max_wait_ms=settings.max_wait_ms,
        max_queue_texts=limits.max_queue_texts,
        on_batch=observed.observe_batch,
        on_depth=observed.queue_depth.set,
        row_output=manifest.row_output,
    )
    pipeline = Pipeline(manifest, limits, tokenizer, batcher, observed, tracer)
    tasks = offered_tasks(pipeline, manifest, engine)
    return ServedModel(
        name, (manifest.model.name,), directory, manifest, limits, engine, tokenizer, batcher,
        pipeline, tasks,
    )  # fmt: skip


def load_models(settings: Settings, metrics: Metrics, tracer: Tracer) -> Registry:
    """Every artifact the settings name (the first is the default), each under a name no other
    model has."""
    entries: list[ArtifactEntry | None] = list(settings.artifact) or [None]
    threads = threads_per_model(settings, len(entries))
    models = []
    for entry in entries:  # one at a time, so each model's memory is what the process grew by
        before = rss_bytes()
        model = load_model(settings, entry, threads, metrics, tracer)
        model.rss_bytes = rss_bytes() - before
        models.append(model)
    clashes = duplicate_names([model.name for model in models])
    if clashes:
        raise ArtifactUnreadableError(
            f"--artifact: more than one model would be served as {', '.join(clashes)}; "
            "name them apart with NAME=PATH"
        )
    return Registry(models)


def offered_tasks(pipeline: Pipeline, manifest: Manifest, engine: Engine) -> tuple[Task, ...]:
    """What the artifact's graphs answer: pooled vectors (embed, and late chunking over the same
    token vectors) or a head's scores (score); a retrieval head's sparse vectors
    (embed_sparse) and per-token vectors (embed_multi_vector, and for ColBERT MaxSim rerank
    through the score task); for a dense embedder or a head, their explanations (explain)."""
    maps = engine.supports_maps()
    if manifest.head is not None:
        head = manifest.head
        return (ScoreTask(pipeline, head, maps), ExplainTask(pipeline, maps, head))
    tasks: list[Task] = []
    if manifest.dense:
        embed = EmbedTask(pipeline, maps)
        tasks += [embed, LateChunkTask(embed), ExplainTask(pipeline, maps, None)]
    if manifest.sparse is not None:
        tasks.append(SparseEmbedTask(pipeline, manifest.sparse))
    if manifest.multi_vector is not None:
        vectors = MultiVectorTask(pipeline, manifest.multi_vector)
        tasks.append(vectors)
        if not manifest.multi_vector.skip_first:  # ColBERT (bge-m3 scores its own way)
            tasks.append(MaxSimScoreTask(vectors))
    return tuple(tasks)


@dataclass
class Assembly:
    """Every part of one server, built and wired, not yet started."""

    settings: Settings
    models: Registry
    metrics: Metrics
    front: Front
    tokens: Tokens | None  # accepted bearer tokens (None: no auth)
    grpc: dict[str, dict[str, grpc.RpcMethodHandler]]  # gRPC service name -> its methods
    unanswered: frozenset[str]  # gRPC services no served model answers (health NOT_SERVING)
    http: HttpApp | None  # the HTTP app and its route sets (None: --http-port -1)


def assemble(settings: Settings, span_exporter: Any = None) -> Assembly:
    # Tokenise in the calling thread: the tokenizers library's own thread pool spins while it
    # waits for work and, on a busy server, burns the cores inference needs (large requests
    # still leave the event loop, in a worker thread). A user's own setting wins.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    metrics = Metrics(enabled=settings.metrics)
    tracer = Tracer(settings.otlp_endpoint, span_exporter)
    models = load_models(settings, metrics, tracer)
    # Every protocol is a thin adapter over the served models' tasks, sharing the call envelope.
    front = Front(metrics, tracer, version=attnserve_version())
    tokens = auth_tokens(settings)
    services = {name: build(models, front, settings) for name, (_, build) in GRPC_PROTOCOLS.items()}
    unanswered = frozenset(name for name, answers in GRPC_OFFERED.items() if not answers(models))
    http = HttpApp(front, tokens, route_sets(models)) if settings.http_port >= 0 else None
    return Assembly(settings, models, metrics, front, tokens, services, unanswered, http)


def auth_tokens(settings: Settings) -> Tokens | None:
    if not settings.auth_tokens:
        return None
    return Tokens(tuple(token.get_secret_value() for token in settings.auth_tokens))


@dataclass
class RunningServer:
    assembly: Assembly
    server: aio.Server
    port: int
    health: health.aio.HealthServicer
    metrics_port: int | None = None
    http: web.AppRunner | None = None
    http_port: int | None = None

    @property
    def settings(self) -> Settings:
        return self.assembly.settings

    async def set_serving(self, serving: bool) -> None:
        answers = health_pb2.HealthCheckResponse
        for name in ("", *self.assembly.grpc):
            up = serving and name not in self.assembly.unanswered
            await self.health.set(name, answers.SERVING if up else answers.NOT_SERVING)
        self.assembly.front.ready = serving
        for model in self.assembly.models:  # a model is ready once warm, until the drain
            model.pipeline.metrics.ready.set(1 if serving and model.ready else 0)

    async def drain_and_stop(self) -> None:
        """NOT_SERVING, wait for balancers to notice, refuse new calls, finish in-flight ones."""
        settings = self.settings
        log.info("draining: NOT_SERVING for %.1f s", settings.drain_delay_s)
        for model in self.assembly.models:
            model.ready = False  # OIP's ModelReady answers false from here on
        await self.set_serving(False)
        await asyncio.sleep(settings.drain_delay_s)
        self.assembly.front.accepting = False
        log.info("stopping: in-flight calls get %.1f s", settings.shutdown_grace_s)
        await self.server.stop(settings.shutdown_grace_s)
        if self.http is not None:
            await self.http.cleanup()
        for model in self.assembly.models:
            await model.batcher.stop()
        self.assembly.metrics.close()
        log.info("stopped")


def start_grpc(assembly: Assembly, worker: int | None) -> tuple[aio.Server, int, Any]:
    """The gRPC server with its APIs (attnserve.v1, OIP, tei.v1), health and reflection, bound
    (not yet started)."""
    settings = assembly.settings
    interceptors = []
    if assembly.tokens is not None:
        protocols = {name: protocol for name, (protocol, _) in GRPC_PROTOCOLS.items()}
        interceptors.append(TokenAuthInterceptor(assembly.tokens, assembly.front, protocols))
    server = aio.server(options=grpc_options(settings, worker), interceptors=interceptors)
    for name, handlers in assembly.grpc.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        server.add_registered_method_handlers(name, handlers)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*assembly.grpc, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = grpc_address(settings.host, settings.port)
    credentials = server_credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    return server, port, health_servicer


def log_startup(running: RunningServer) -> None:
    settings = running.settings
    log.info(
        "serving on port %d (attnserve.v1, OIP, tei.v1), HTTP %s; metrics %s; tls %s, auth %s",
        running.port,
        "off" if running.http_port is None else f"on port {running.http_port}",
        "off" if running.metrics_port is None else f"on port {running.metrics_port}",
        "on" if settings.tls_cert else "off",
        "on" if settings.auth_tokens else "off",
    )
    for model in running.assembly.models:
        manifest, engine = model.manifest, model.engine
        log.info(
            "model %r%s: %s (artifact %s, sha256 %s); provider %s, %d threads, precision %s; "
            "tasks %s; memory %s (RSS added by loading and warming it up); limits: %s",
            model.name,
            " (default)" if model is running.assembly.models.default else "",
            manifest.model.name,
            model.directory,
            manifest.artifact_hash[:12],
            engine.provider,
            engine.threads,
            engine.precision,
            ", ".join(model.task_names),
            mib(model.rss_bytes),
            model.limits.describe(),
        )
    log.info(
        "process RSS %s with %d model(s)", mib(rss_bytes()), len(running.assembly.models.names)
    )


async def build_server(
    settings: Settings,
    span_exporter: Any = None,
    worker: int | None = None,
    shared_fit: Path | None = None,
) -> RunningServer:
    """Start a server; `span_exporter` (tests) receives spans without an OTLP collector;
    `worker` is this process's index under `--workers N` (it then shares the port), and
    `shared_fit` where the workers share one cost-model fit (shared_fit.py)."""
    install_request_id_factory()
    # Checked first, in plain words: gRPC itself would log a C-core line and raise a traceback
    # for a busy port, and take a bad certificate only to fail every handshake.
    check_ports(settings, reuse_port=worker is not None)
    check_tls_files(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    assembly = assemble(settings, span_exporter)
    if worker is not None:
        assembly.metrics.set_worker(worker)
    server, port, health_servicer = start_grpc(assembly, worker)
    metrics = assembly.metrics
    running = RunningServer(assembly, server, port, health_servicer)
    await running.set_serving(False)  # NOT_SERVING until every model is warm
    await server.start()
    if assembly.http is not None:
        running.http, running.http_port = await start_http(
            settings, assembly.http, reuse_port=worker is not None
        )
    if settings.metrics_port >= 0:
        running.metrics_port = metrics.serve(settings.host, settings.metrics_port)
    for model in assembly.models:
        metrics.describe_model(
            model=model.name,
            checkpoint=model.manifest.model.name,
            artifact_sha256=model.manifest.artifact_hash,
            provider=model.engine.provider,
            precision=model.engine.precision,
            onnxruntime=onnxruntime.__version__,  # the one serving (the manifest has export's)
        )
        before = rss_bytes()  # warm-up grows the sessions' arenas: the model's too
        costs = await warm_up(model, shared_fit) if settings.warmup else None
        model.rss_bytes += rss_bytes() - before
        model.batcher.start(costs)  # texts queued during warm-up are served from here on
        model.ready = True  # OIP's ModelReady says so; the server is ready once all are
        model.pipeline.metrics.ready.set(1)
    await running.set_serving(True)
    if settings.port_file is not None:
        settings.port_file.write_text(f"{port}\n")
    log_startup(running)
    return running


async def warm_up(model: ServedModel, shared_fit: Path | None) -> dict[GraphPurpose, CostModel]:
    """Run typical shapes once, then time them: the model's batch cost per graph (under a
    supervisor, one worker fits and the others read its fit: shared_fit.py)."""
    started = time.perf_counter()
    await asyncio.to_thread(model.engine.warm_up)
    shared = None if shared_fit is None else fit_path(shared_fit, model.name)
    costs = await asyncio.to_thread(fit_once, model.engine, shared)
    for purpose, cost in costs.items():
        log.info("model %r: cost model, %s graph: %s", model.name, purpose, cost.describe())
    log.info(
        "model %r: warm-up and calibration took %.2f s", model.name, time.perf_counter() - started
    )
    return costs


async def serve_forever(
    settings: Settings,
    worker: int | None = None,
    on_ready: Callable[[int], None] | None = None,
    parent: int | None = None,
    shared_fit: Path | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT, then drain; `on_ready(port)` once SERVING. A worker
    (`parent` = its supervisor's pid) also drains when its supervisor is gone, so a killed
    supervisor never leaves orphans serving on its port."""
    running = await build_server(settings, worker=worker, shared_fit=shared_fit)
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
