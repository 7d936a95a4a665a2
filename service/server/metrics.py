"""Prometheus metrics: what operators autoscale and page on.

Histograms and gauges (not cumulative-time counters), millisecond-scale buckets, bounded labels
(method, code, graph, worker, model, task; never per-text values). Each server owns its own
registry so several can run in one process (tests) without sharing counts; the process
collectors come along. With `--workers N` every worker writes its values to files shared with
the supervisor (prometheus_client's multiprocess mode, switched on by `PROMETHEUS_MULTIPROC_DIR`
before the worker starts); each gauge says how the workers' values combine, and the supervisor
serves one /metrics for all of them (`serve_multiprocess`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from attnserve.service.server.batcher import BatchStats
from attnserve.service.server.listeners import MetricsListener

# Seconds, from 0.25 ms to 10 s: sub-millisecond stages and multi-second overloads both resolve.
LATENCY_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1,
    0.15, 0.25, 0.4, 0.6, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_TEXT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
PADDING_BUCKETS = (1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
# `model` is the served name (the label every per-model series carries, so they join);
# `checkpoint` the manifest's full model name.
# A call's labels: `task` is what the call asked of its model (embed, rerank, classify; "" for
# a call that reached no task), set by the task itself (routed.py), so it is bounded as `model` is.
CALL_LABELS = ("protocol", "method", "code", "model", "task")
INFO_LABELS = ("model", "checkpoint", "artifact_sha256", "provider", "precision", "onnxruntime")


class Disabled:
    """Stands in for every instrument when metrics are off (only to measure what they cost)."""

    def labels(self, *_: object) -> Disabled:
        return self

    def __getattr__(self, _: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


class Metrics:
    def __init__(self, enabled: bool = True) -> None:
        self.http_server: MetricsListener | None = None
        self.call_children: dict[tuple[str, str, str, str, str], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "attnserve_requests",
            "calls finished, by protocol, method, status code, model and task",
            CALL_LABELS,
            registry=r,
        )
        # Kept beside attnserve_requests{code!="OK"} on purpose: it is the failure count an
        # alert or a dashboard can read without knowing the set of codes or methods (the shipped
        # Grafana board plots it), and it is cheap (one increment per failed call only).
        self.errors = Counter(
            "attnserve_errors",
            "calls that failed, by protocol and status code",
            ["protocol", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "attnserve_request_duration_seconds",
            "call wall time in the server, by protocol, method, status code, model and task",
            CALL_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "attnserve_queue_wait_seconds",
            "time a request's texts waited for a model batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokenize_seconds = Histogram(
            "attnserve_tokenize_duration_seconds",
            "tokenisation time per request",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "attnserve_inference_duration_seconds",
            "model batch run time, by model and graph",
            ["model", "graph"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.serialize_seconds = Histogram(
            "attnserve_serialize_duration_seconds",
            "building the response message per request",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_texts = Histogram(
            "attnserve_batch_size_texts",
            "texts per model batch",
            ["model"],
            buckets=BATCH_TEXT_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "attnserve_batch_tokens",
            "padded tokens per model batch",
            ["model"],
            buckets=BATCH_TOKEN_BUCKETS,
            registry=r,
        )
        self.padding_ratio = Histogram(
            "attnserve_batch_padding_ratio",
            "padded tokens / real tokens per model batch",
            ["model"],
            buckets=PADDING_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "attnserve_queue_depth_texts",
            "texts waiting for a model batch, by model",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "attnserve_in_flight_requests",
            "RPCs being handled now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "attnserve_model_ready",
            "1 once the model is loaded and warmed up (every worker, with --workers), by model",
            ["model"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.worker_requests = Counter(
            "attnserve_worker_requests",
            "RPCs finished, by worker process (0 without --workers)",
            ["worker"],
            registry=r,
        )
        self.input_tokens = Counter(
            "attnserve_input_tokens",
            "tokens fed to the model (after truncation), by model",
            ["model"],
            registry=r,
        )
        self.truncated = Counter(
            "attnserve_truncated_texts", "texts cut to the token limit, by model", ["model"],
            registry=r,
        )  # fmt: skip
        self.non_finite_outputs = Counter(
            "attnserve_non_finite_outputs",
            "texts whose model output held NaN or Inf (their requests failed as INTERNAL)",
            ["model"],
            registry=r,
        )
        # A gauge fixed at 1 carries the labels (prometheus_client's Info has no multiprocess
        # mode); it reads the same in a scrape: attnserve_model_info{...} 1.
        self.model_info = Gauge(
            "attnserve_model_info",
            "model and artifact being served",
            INFO_LABELS,
            registry=r,
            multiprocess_mode="max",
        )
        self.worker: Any = Disabled()  # this process's child of worker_requests
        if not enabled:
            for name, value in list(vars(self).items()):
                if isinstance(value, Counter | Gauge | Histogram):
                    setattr(self, name, Disabled())
        self.set_worker(0)

    def set_worker(self, index: int) -> None:
        self.worker = self.worker_requests.labels(str(index))

    def describe_model(self, **labels: str) -> None:
        self.model_info.labels(*(labels[name] for name in INFO_LABELS)).set(1)

    def for_model(self, model: str) -> ModelMetrics:
        """The stage metrics of one served model (its children, labelled model=<name>)."""
        return ModelMetrics(self, model)

    def observe_call(
        self, protocol: str, method: str, code: str, seconds: float, model: str = "", task: str = ""
    ) -> None:
        """One finished call. Labelled children are cached: `labels()` costs a lock and a dict.

        `code` is the gRPC status name for every protocol (HTTP statuses map onto them), so
        one query counts failures whatever the caller spoke. `model` is the served model the
        call was routed to ("" when it reached none: an unknown name, a server-wide call, a
        stream), so the label holds only served names, never a caller's string; `task` likewise
        holds only the tasks' own names."""
        key = (protocol, method, code, model, task)
        children = self.call_children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.request_seconds.labels(*key))
            self.call_children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        self.worker.inc()
        if code != "OK":
            self.errors.labels(protocol, code).inc()

    def serve(self, host: str, port: int) -> int:
        """Expose /metrics over HTTP on `host` (see `listeners.py`); returns the bound port
        (useful with port 0)."""
        self.http_server = MetricsListener(host, port, self.registry)
        return self.http_server.port

    @staticmethod
    def serve_multiprocess(host: str, port: int) -> MetricsListener:
        """The supervisor's /metrics: every worker's values, combined (see the module doc)."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return MetricsListener(host, port, registry)

    def close(self) -> None:
        if self.http_server is not None:
            self.http_server.close()
            self.http_server = None


class ModelMetrics:
    """One served model's view of the stage metrics: the same names the pipeline and batcher
    used before there were several models, each bound to its `model` label once (at load), so
    the request path pays no `labels()` lookup."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.model = model
        self.inference_seconds = metrics.inference_seconds
        self.tokenize_seconds = metrics.tokenize_seconds.labels(model)
        self.queue_seconds = metrics.queue_seconds.labels(model)
        self.batch_texts = metrics.batch_texts.labels(model)
        self.batch_tokens = metrics.batch_tokens.labels(model)
        self.padding_ratio = metrics.padding_ratio.labels(model)
        self.queue_depth = metrics.queue_depth.labels(model)
        self.ready = metrics.ready.labels(model)
        self.input_tokens = metrics.input_tokens.labels(model)
        self.truncated = metrics.truncated.labels(model)
        self.non_finite_outputs = metrics.non_finite_outputs.labels(model)

    def observe_batch(self, stats: BatchStats) -> None:
        self.inference_seconds.labels(self.model, stats.purpose).observe(stats.inference_s)
        self.batch_texts.observe(stats.texts)
        self.batch_tokens.observe(stats.padded_tokens)
        self.padding_ratio.observe(stats.padded_tokens / max(stats.real_tokens, 1))
