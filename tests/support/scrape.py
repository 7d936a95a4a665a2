"""A test server's /metrics read over HTTP, as Prometheus reads it: every sample by name and
labels, a series summed over the labels not given, and a scrape that waits for late records."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import ServerThread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ServerThread) -> tuple[Samples, set[str]]:
    url = f"http://127.0.0.1:{server.running.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    """Summed over the labels not given (the per-model `model` label, ...), as PromQL's `sum`."""
    wanted = labels.items()
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= dict(got).items())


def scrape_until(server: ServerThread, done: Callable[[Samples], bool]) -> Samples:
    """grpc.aio's `context.abort` sends a failed call's status before the server's call scope
    records it, so the client can scrape a moment too early: scrape until the records are in
    (at most 10 s; the assertions after it still decide)."""
    deadline = time.monotonic() + 10
    while True:
        samples, _ = scrape(server)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.01)
