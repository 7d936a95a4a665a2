"""`--workers 2` under steady load, one worker SIGKILLed: the other keeps serving, the
supervisor starts a replacement (which reads the workers' one cost-model fit instead of timing
its own), and /metrics answers throughout. Callers through attnserve's client channel (gRPC's
retry policy on UNAVAILABLE) lose no call; plain channels, each on its own connection, see only
UNAVAILABLE (retryable), and only between the kill and the replacement serving: the call in
flight on the dead worker, and a call sent in the instant before the client learned the
connection was gone (gRPC does not retry a call that reached the wire without a policy).
Real processes, sockets and model."""

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

from attnserve.service.client.channel import Connection
from attnserve.v1 import embedder_pb2 as pb
from tests.support.servers import wait_for_port_file
from tests.support.workers import Supervised, free_port, worker_pids

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
    retrying = range(CALLERS // 2)  # the rest use plain channels

    def open_channel(index: int) -> grpc.Channel:
        # attnserve's client options (with its retry policy), or none; each caller on its own
        # connection (channels with equal options otherwise share one), which the kernel
        # spreads over the workers.
        options = Connection(warm_supervised.target).options(attempts=5)
        return grpc.insecure_channel(
            warm_supervised.target,
            options=[
                *(options if index in retrying else []),
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )

    def caller(index: int) -> None:
        with open_channel(index) as channel:
            embed = channel.unary_unary("/attnserve.v1.Embedder/Embed")
            request = pb.EmbedRequest(
                texts=[f"caller {index} under steady load"]
            ).SerializeToString()
            while not stop.is_set():
                try:
                    # wait_for_ready: a call made while the channel reconnects waits for a
                    # worker instead of failing at once.
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
                replaced_at = time.monotonic()
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
    failures = [
        (i, round(at - killed_at[0], 3), code)
        for i, calls in enumerate(seen)
        for at, code in calls
        if code != "OK"
    ]
    assert not [f for f in failures if f[0] in retrying], failures  # the client retried them
    assert {code for _, _, code in failures} <= {"UNAVAILABLE"}, failures
    window = replaced_at - killed_at[0]
    assert all(0 <= after <= window for _, after, _ in failures), (window, failures)
    assert all(any(code == "OK" and at > replaced_at for at, code in calls) for calls in seen)
    after_kill = [code for calls in seen for at, code in calls if at > killed_at[0]]
    assert after_kill.count("OK") > CALLERS  # the survivor (then both) kept serving
    # One cost-model fit for all: the other worker and the replacement read it.
    text = warm_supervised.log.read_text()
    assert text.count("the fit another worker made") == 2, text
    fits = set(re.findall(r"cost model, fast graph: (.*)", text))
    assert len(fits) == 1, fits
