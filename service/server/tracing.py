"""Optional OpenTelemetry spans for each request's stages: queue, tokenise, inference.

Needs the `tracing` extra and an OTLP endpoint (`--otlp-endpoint`); without either the server
runs unchanged and this module costs one `if` per request. Queue and inference happen in the
batcher, shared by many requests, so their spans are recorded afterwards with the measured
start and end times, as children of the request's span.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from attnserve.service.server.errors import StartupError
from attnserve.service.server.startup_errors import ExitCode

try:
    from opentelemetry import trace
except ImportError:  # the extra is not installed
    trace = None  # type: ignore[assignment]


class TracingUnavailableError(StartupError):
    """`otlp_endpoint` is set but the tracing extra is not installed."""

    exit_code = ExitCode.TRACING


class Tracer:
    def __init__(self, endpoint: str | None, exporter: Any = None) -> None:
        """`exporter` overrides the OTLP exporter (tests pass an in-memory one)."""
        self.tracer: Any = None
        if endpoint is None and exporter is None:
            return
        if trace is None:
            raise TracingUnavailableError(
                f"--otlp-endpoint {endpoint}: OpenTelemetry is not installed: "
                "pip install 'attnserve[tracing]'"
            )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "attnserve"}))
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.provider = provider
        self.tracer = provider.get_tracer("attnserve")

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def request(self, method: str, request_id: str) -> AbstractContextManager[Any]:
        if self.tracer is None:
            return nullcontext()
        span: AbstractContextManager[Any] = self.tracer.start_as_current_span(
            method, attributes={"rpc.system": "grpc", "attnserve.request_id": request_id}
        )
        return span

    def stage(self, name: str, started: float, ended: float, **attributes: Any) -> None:
        """Record a finished stage of the current request; times from time.perf_counter()."""
        if self.tracer is None:
            return
        offset = time.time_ns() - time.perf_counter_ns()
        span = self.tracer.start_span(
            name, start_time=int(started * 1e9) + offset, attributes=attributes
        )
        span.end(end_time=int(ended * 1e9) + offset)
