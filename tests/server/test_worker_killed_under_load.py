"""`--workers 2` under steady load, one worker SIGKILLed: the other keeps serving, the
supervisor starts a replacement (which reads the workers' one cost-model fit instead of timing
its own), callers see at most their in-flight call on the dead worker fail, with UNAVAILABLE
(retryable), and /metrics answers throughout. Real processes, sockets and model."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from attnserve.v1 import embedder_pb2 as pb
from tests.server.test_workers import Supervised, free_port, worker_pids
from tests.support.servers import wait_for_port_file

pytestmark = pytest.mark.slow
CALLERS = 8


@pytest.fixture
def warm_supervised(artifact_dir: Path, tmp_path: Path) -> Iterator[Supervised]:
    """Two workers with warm-up on: each fits (or shares) the cost model as in production."""
    port_file, log = tmp_path / "port", tmp_path / "server.log"
    metrics_port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "attnserve.service.cli", "serve",
                "--artifact", str(artifact_dir), "--workers", "2", "--host", "127.0.0.1",
                "--port", "0", "--port-file", str(port_file), "--metrics-port", str(metrics_port),
                "--drain-delay-s", "0", "--shutdown-grace-s", "10",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        port = wait_for_port_file(port_file, process, timeout=300)
        yield Supervised(
            process, f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", log
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def scrape_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status == 200 and b"attnserve_requests_total" in response.read()


def test_a_worker_killed_under_load(warm_supervised: Supervised) -> None:
    supervisor = warm_supervised.process.pid
    stop = threading.Event()
    killed_at: list[float] = []
    seen: list[list[tuple[float, str]]] = [[] for _ in range(CALLERS)]

    def caller(index: int) -> None:
        # One connection per caller: the kernel spreads them over the workers. wait_for_ready:
        # a call made while the channel reconnects waits for the surviving worker.
        with grpc.insecure_channel(warm_supervised.target) as channel:
            embed = channel.unary_unary("/attnserve.v1.Embedder/Embed")
            request = pb.EmbedRequest(
                texts=[f"caller {index} under steady load"]
            ).SerializeToString()
            while not stop.is_set():
                try:
                    embed(request, timeout=60, wait_for_ready=True)
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                seen[index].append((time.monotonic(), code))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)  # steady load
        victim = min(worker_pids(supervisor))
        killed_at.append(time.monotonic())
        subprocess.run(["kill", "-9", str(victim)], check=True)
        scrapes = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            scrapes.append(scrape_ok(warm_supervised.metrics_url))
            now = worker_pids(supervisor)
            after_death = warm_supervised.log.read_text().split("starting a new one")
            if len(now) == 2 and victim not in now and "is serving" in after_death[-1]:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no replacement: {worker_pids(supervisor)}")
        time.sleep(2.0)  # load on the two workers again
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    assert all(scrapes), "/metrics stopped answering while a worker was replaced"
    failures = [(i, code) for i, calls in enumerate(seen) for _, code in calls if code != "OK"]
    # At most the call each caller had in flight on the dead worker, and only UNAVAILABLE.
    assert {code for _, code in failures} <= {"UNAVAILABLE"}, failures
    per_caller = [sum(1 for i, _ in failures if i == caller) for caller in range(CALLERS)]
    assert max(per_caller) <= 1, per_caller
    after_kill = [code for calls in seen for at, code in calls if at > killed_at[0]]
    assert after_kill.count("OK") > CALLERS  # the survivor (then both) kept serving
    # One cost-model fit for all: the other worker and the replacement read it.
    text = warm_supervised.log.read_text()
    assert text.count("the fit another worker made") == 2, text
    fits = set(re.findall(r"cost model, fast graph: (.*)", text))
    assert len(fits) == 1, fits
