"""Latency metrics and logs an operator can run on, read from a real server's /metrics."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from attnserve.service.client.channel import Connection
from attnserve.service.client.client import EmbedderClient
from attnserve.v1 import embedder_pb2 as pb
from tests.support import ROOT
from tests.support.scrape import Samples, scrape, scrape_until, value
from tests.support.servers import MakeServer, ServerThread, server_settings


@pytest.fixture(scope="module")
def metered(artifact_dir: Path) -> Iterator[ServerThread]:
    """A server of its own, so counts start from zero."""
    running = ServerThread(server_settings(artifact_dir, warmup=False))
    yield running
    running.stop()


def test_counts_and_durations_match_the_requests_sent(metered: ServerThread) -> None:
    before, _ = scrape(metered)
    with EmbedderClient(metered.target) as client:
        for i in range(7):
            client.embed([f"counted request {i}"])
        for _ in range(3):
            with pytest.raises(grpc.RpcError):
                client.embed([""])

    def failed(samples: Samples) -> float:  # the last metric a failed call records
        return value(samples, "attnserve_errors_total", code="INVALID_ARGUMENT")

    after = scrape_until(metered, lambda samples: failed(samples) - failed(before) >= 3)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    v1 = "attnserve.v1"
    assert delta("attnserve_requests_total", protocol=v1, method="Embed", code="OK") == 7
    assert (
        delta("attnserve_request_duration_seconds_count", protocol=v1, method="Embed", code="OK")
        == 7
    )
    assert (
        delta("attnserve_requests_total", protocol=v1, method="Embed", code="INVALID_ARGUMENT") == 3
    )
    assert delta("attnserve_errors_total", protocol=v1, code="INVALID_ARGUMENT") == 3
    assert delta("attnserve_input_tokens_total") > 7 * 4
    assert value(after, "attnserve_model_ready") == 1.0
    info = [k for k in after if k[0] == "attnserve_model_info"]
    assert info
    labels = dict(info[0][1])
    assert labels["model"] == "all-MiniLM-L6-v2"  # the served name, as on every per-model series
    assert labels["checkpoint"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(labels["artifact_sha256"]) == 64
    assert labels["provider"] == "CPUExecutionProvider"


def test_gauges_read_while_held_and_return_to_zero(metered: ServerThread) -> None:
    with EmbedderClient(metered.target) as client:
        held = client.stub.Embed.future(
            pb.EmbedRequest(texts=["a long text that keeps the model busy " * 12] * 240),
            timeout=120,
        )
        seen_in_flight, seen_queue = 0.0, 0.0
        deadline = time.monotonic() + 60
        while not held.done() and time.monotonic() < deadline:
            samples, _ = scrape(metered)
            seen_in_flight = max(seen_in_flight, value(samples, "attnserve_in_flight_requests"))
            seen_queue = max(seen_queue, value(samples, "attnserve_queue_depth_texts"))
            time.sleep(0.02)
        assert len(held.result().results) == 240
    assert seen_in_flight >= 1
    assert seen_queue > 0
    idle, _ = scrape(metered)
    assert value(idle, "attnserve_in_flight_requests") == 0
    assert value(idle, "attnserve_queue_depth_texts") == 0


def test_batch_size_histogram_shows_merging(metered: ServerThread) -> None:
    before, _ = scrape(metered)

    def one(i: int) -> None:
        with EmbedderClient(metered.target) as client:
            client.embed([f"concurrent text {i} " * 5])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    after, _ = scrape(metered)
    texts = value(after, "attnserve_batch_size_texts_sum") - value(
        before, "attnserve_batch_size_texts_sum"
    )
    batches = value(after, "attnserve_batch_size_texts_count") - value(
        before, "attnserve_batch_size_texts_count"
    )
    assert texts == 32
    assert batches < 32  # at least two texts shared a batch
    above_one = value(after, "attnserve_batch_size_texts_count") - value(
        after, "attnserve_batch_size_texts_bucket", le="1.0"
    )
    assert above_one >= 1


STAGES: tuple[tuple[str, dict[str, str]], ...] = (
    ("attnserve_queue_wait_seconds_sum", {}),
    ("attnserve_tokenize_duration_seconds_sum", {}),
    ("attnserve_inference_duration_seconds_sum", {"graph": "fast"}),
    ("attnserve_serialize_duration_seconds_sum", {}),
)


def test_stage_histograms_add_up_to_the_request(metered: ServerThread) -> None:
    """The stages (queue, tokenise, inference, serialise) are parts of the request's time, and
    they account for nearly all of it. The second is only true of an undisturbed request (on a
    busy machine a thread switch can add a few ms between stages), so the best of a few counts."""
    request = ("attnserve_request_duration_seconds_sum",
               {"protocol": "attnserve.v1", "method": "Embed", "code": "OK"})  # fmt: skip
    unaccounted: list[tuple[float, float]] = []  # (seconds outside the stages, request)
    with EmbedderClient(metered.target) as client:
        client.embed(["warm the path"])
        for attempt in range(5):
            time.sleep(0.2)
            before, _ = scrape(metered)
            client.embed([f"request {attempt} at idle, measured stage by stage"])
            after, _ = scrape(metered)
            spent = [value(after, name, **labels) - value(before, name, **labels)
                     for name, labels in (request, *STAGES)]  # fmt: skip
            total, stages = spent[0], sum(spent[1:])
            assert 0 < stages <= total, (total, stages)
            unaccounted.append((total - stages, total))
    assert any(gap < max(0.002, 0.25 * total) for gap, total in unaccounted), unaccounted


def test_request_id_comes_back_and_is_on_its_log_line(
    metered: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="attnserve")
    with EmbedderClient(metered.target) as client:
        _, call = client.stub.Embed.with_call(
            pb.EmbedRequest(texts=["find me in the logs"]),
            metadata=(("x-request-id", "trace-7f3a"),),
            timeout=30,
        )
    assert ("x-request-id", "trace-7f3a") in tuple(call.trailing_metadata())
    lines = [r for r in caplog.records if getattr(r, "request_id", None) == "trace-7f3a"]
    assert any("method=Embed code=OK" in r.getMessage() for r in lines)


def test_secrets_never_reach_the_logs(
    make_server: MakeServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "tok-9d2b61c4e8"
    running = make_server(auth_tokens=secret)
    with EmbedderClient(Connection(running.target, token=secret)) as good:
        good.embed(["authorised"])
    with (
        EmbedderClient(Connection(running.target, token=secret + "x"), attempts=1) as bad,
        pytest.raises(grpc.RpcError),
    ):
        bad.embed(["refused"])
    assert secret not in repr(running.settings)
    running.stop()
    out, err = capfd.readouterr()
    assert secret not in caplog.text + out + err
    assert any("auth on" in r.getMessage() for r in caplog.records)  # the start-up line


def test_json_log_lines_carry_the_request_id() -> None:
    from attnserve.service.server.logs import (
        JsonFormatter,
        install_request_id_factory,
        request_id_var,
    )

    install_request_id_factory()
    token = request_id_var.set("json-1")
    try:
        record = logging.getLogger("attnserve.test").makeRecord(
            "attnserve.test", logging.INFO, __file__, 1, "hello %s", ("world",), None
        )
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "json-1"
    assert line["msg"] == "hello world"
    assert line["level"] == "info"


METRIC = re.compile(r"\battnserve_[a-z_]+")
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_info")


def base_name(name: str, families: set[str]) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in families:
            return name.removesuffix(suffix)
    return name


def test_dashboard_and_adapter_only_use_real_metrics(metered: ServerThread) -> None:
    with EmbedderClient(metered.target) as client:
        client.embed(["populate the histograms"])
    _, families = scrape(metered)
    dashboard = json.loads((ROOT / "deploy/grafana/attnserve-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if "query" in v]
    rules = yaml.safe_load((ROOT / "deploy/prometheus/adapter-rules.yaml").read_text())
    for rule in rules["rules"]["custom"]:
        exprs += [rule["seriesQuery"], rule["metricsQuery"], rule["name"]["as"]]
    used = {base_name(name, families) for expr in exprs for name in METRIC.findall(expr)}
    assert used, "no attnserve metrics found in the dashboard"
    assert used <= families, f"not exported: {sorted(used - families)}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "p99", "stage", "batch", "errors", "queue"):
        assert topic in titles
