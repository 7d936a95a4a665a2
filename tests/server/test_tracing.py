"""Optional OpenTelemetry spans: one per request, with its stages as children."""

from __future__ import annotations

import pytest

from attnserve.service.client.client import EmbedderClient
from attnserve.service.server import tracing
from tests.support.servers import MakeServer, ServerThread

memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


@pytest.fixture
def traced(make_server: MakeServer) -> tuple[ServerThread, object]:
    exporter = memory.InMemorySpanExporter()
    return make_server(span_exporter=exporter), exporter


def test_request_span_has_tokenize_queue_and_inference_children(
    traced: tuple[ServerThread, object],
) -> None:
    running, exporter = traced
    with EmbedderClient(running.target) as client:
        client.embed(["trace this request", "and this text"], request_id="span-1")
    spans = {span.name: span for span in exporter.get_finished_spans()}  # type: ignore[attr-defined]
    assert {"Embed", "tokenize", "queue", "inference"} <= set(spans)
    root = spans["Embed"]
    for stage in ("tokenize", "queue", "inference"):
        child = spans[stage]
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time
    assert spans["tokenize"].end_time <= spans["queue"].end_time <= spans["inference"].end_time
    assert spans["inference"].attributes["graph"] == "fast"
    assert spans["tokenize"].attributes["texts"] == 2


def test_endpoint_without_the_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "trace", None)
    with pytest.raises(tracing.TracingUnavailableError, match=r"attnserve\[tracing\]"):
        tracing.Tracer("http://collector:4317")
    assert not tracing.Tracer(None).enabled  # no endpoint: no tracing, no error
