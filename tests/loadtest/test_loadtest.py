"""The load tester on real servers: counts add up, percentiles order, no coordinated omission."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from attnserve.service.client.channel import Connection
from attnserve.service.loadtest.generator import LoadConfig, run_load
from attnserve.service.loadtest.report import percentile_map
from tests.support.cli import png_size, run_cli
from tests.support.servers import MakeServer, ServerThread
from tests.support.stand_in_servers import SlowEmbedder, serving

SUMMARY_KEYS = {
    "sent",
    "succeeded",
    "errors_by_code",
    "elapsed_s",
    "requests_per_s",
    "texts_per_s",
    "tokens_per_s",
    "latency_ms",
    "server_ms",
}


@pytest.mark.parametrize(
    "mode_flags", [["--mode", "closed", "--concurrency", "4"], ["--mode", "open", "--rate", "40"]]
)
def test_command_writes_complete_json_and_a_plot(
    server: ServerThread, tmp_path: Path, mode_flags: list[str]
) -> None:
    out, plot = tmp_path / "result.json", tmp_path / "latency.png"
    result = run_cli(
        "loadtest", "--target", server.target, *mode_flags, "--duration", "3",
        "--warmup", "0.5", "--requests", "400", "--texts-per-request", "2",
        "--json", str(out), "--plot", str(plot), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "latency p50" in result.stdout
    document = json.loads(out.read_text())
    assert set(document) >= SUMMARY_KEYS
    assert document["succeeded"] + sum(document["errors_by_code"].values()) == document["sent"]
    assert document["sent"] > 10
    latency = document["latency_ms"]
    ordered = [latency[k] for k in ("p50", "p90", "p99", "p99.9", "max")]
    assert ordered == sorted(ordered)
    assert latency["p50"] > 0
    assert document["texts_per_s"] == pytest.approx(2 * document["requests_per_s"])
    assert document["server_ms"]["inference_p50"] > 0
    assert document["config"]["connection"]["token"] is False  # never the token itself
    width, height = png_size(plot)
    assert width > 100
    assert height > 100


@pytest.fixture
def tiny_queue(make_server: MakeServer) -> ServerThread:
    return make_server(max_queue_texts=6, max_batch_texts=2, max_texts_per_request=4)


def test_rejections_are_counted_exactly(tiny_queue: ServerThread) -> None:
    registry = tiny_queue.running.assembly.metrics.registry
    before = registry.get_sample_value(
        "attnserve_errors_total", {"protocol": "attnserve.v1", "code": "RESOURCE_EXHAUSTED"}
    )
    config = LoadConfig(
        connection=Connection(tiny_queue.target),
        mode="closed",
        concurrency=24,
        requests=300,
        duration_s=3,
        warmup_s=0,
        texts_per_request=3,
    )
    run, summary = run_load(config)
    after = registry.get_sample_value(
        "attnserve_errors_total", {"protocol": "attnserve.v1", "code": "RESOURCE_EXHAUSTED"}
    )
    rejected = summary.errors.get("RESOURCE_EXHAUSTED", 0)
    assert rejected > 0
    assert rejected == (after or 0) - (before or 0)  # the server agrees
    assert summary.succeeded + sum(summary.errors.values()) == run.sent == len(run.outcomes)


@pytest.fixture
def slow_server() -> Iterator[str]:
    with serving(SlowEmbedder()) as target:
        yield target


def test_open_loop_shows_the_backlog_of_a_slow_server(slow_server: str) -> None:
    # Offered 40/s for 3 s against a capacity of 20/s: the backlog grows all along.
    config = LoadConfig(
        connection=Connection(slow_server),
        mode="open",
        rate=40,
        requests=1000,
        duration_s=3,
        warmup_s=0,
        timeout_s=30,
    )
    run, summary = run_load(config)
    ok = sorted((o for o in run.outcomes if o.code == "OK"), key=lambda o: o.scheduled_at)
    assert len(ok) == run.sent
    third = len(ok) // 3
    early = np.median([o.latency_s for o in ok[:third]])
    late = np.median([o.latency_s for o in ok[-third:]])
    # Measured from the schedule, the wait is not hidden: the backlog adds ~1.5 s by the end.
    assert late > early + 1.0
    assert summary.latency_ms["max"] > 1000  # ~60 queued requests x 50 ms behind by the end
    # A closed loop against the same server would report ~50 ms: the contrast is the point.
    _, closed_summary = run_load(
        LoadConfig(
            Connection(slow_server),
            mode="closed",
            concurrency=1,
            requests=20,
            duration_s=2,
            warmup_s=0,
        )
    )
    assert closed_summary.latency_ms["p99"] < 0.5 * summary.latency_ms["p50"]


def test_loops_stop_by_themselves_at_the_request_bound(server: ServerThread) -> None:
    config = LoadConfig(
        connection=Connection(server.target),
        mode="closed",
        concurrency=4,
        requests=25,
        duration_s=60,
        warmup_s=0,
    )
    run, summary = run_load(config)
    assert run.sent == 25
    assert summary.succeeded == 25
    assert run.elapsed_s < 60


def test_two_load_processes_merge_counts_and_percentiles(
    known_latency_server: str, tmp_path: Path
) -> None:
    corpus = tmp_path / "latencies.txt"
    corpus.write_text("0.020\n" * 9 + "0.200\n")  # 90% take 20 ms, 10% take 200 ms
    config = LoadConfig(
        Connection(known_latency_server),
        mode="closed",
        concurrency=8,
        requests=240,
        duration_s=60,
        warmup_s=0,
        corpus=str(corpus),
        processes=2,
    )
    run, summary = run_load(config)
    assert run.sent == summary.sent == summary.succeeded == 240  # both processes' counts
    assert len(run.outcomes) == 240  # every outcome came back from its process
    exact = percentile_map(np.array([o.latency_s * 1000 for o in run.outcomes]))
    for name in ("p50", "p90", "p99", "max"):  # the merged histograms agree with all requests
        assert summary.latency_ms[name] == pytest.approx(exact[name], rel=0.011), name
    # ... and with what the server was told to take.
    assert 20 <= summary.latency_ms["p50"] < 40
    assert 200 <= summary.latency_ms["p99"] < 260
    slow = sum(o.latency_s >= 0.2 for o in run.outcomes) / len(run.outcomes)
    assert 0.03 < slow < 0.2  # the two processes drew different texts, ~10% slow ones


def test_an_open_loop_from_two_processes_offers_the_whole_rate(
    known_latency_server: str, tmp_path: Path
) -> None:
    corpus = tmp_path / "fast.txt"
    corpus.write_text("0.001\n")
    config = LoadConfig(
        Connection(known_latency_server),
        mode="open",
        rate=60,
        requests=10_000,
        duration_s=3,
        warmup_s=0,
        corpus=str(corpus),
        processes=2,
    )
    run, summary = run_load(config)
    # Poisson arrivals at 30/s in each of two processes for 3 s: ~180 in all.
    assert 120 < run.sent < 250
    assert summary.sent == run.sent == summary.succeeded
