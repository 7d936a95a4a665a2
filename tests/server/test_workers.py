"""`attnserve serve --workers 2`: one port, both workers answer, one /metrics, coordinated
drain, a killed worker replaced. Real processes, real sockets, the real packaged model."""

from __future__ import annotations

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

from attnserve.service.client.client import EmbedderClient
from tests.support.servers import wait_for_port_file
from tests.support.workers import Supervised, free_port, worker_pids

pytestmark = pytest.mark.slow


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


MINI, SECOND = "all-MiniLM-L6-v2", "second"


@pytest.fixture
def supervised(artifact_dir: Path, tmp_path: Path) -> Iterator[Supervised]:
    port_file, log = tmp_path / "port", tmp_path / "server.log"
    metrics_port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "attnserve.service.cli", "serve",
                # Two models (the artifact under a second name): every worker serves both.
                "--artifact", str(artifact_dir), "--artifact", f"{SECOND}={artifact_dir}",
                "--workers", "2", "--host", "127.0.0.1",
                "--port", "0", "--port-file", str(port_file), "--metrics-port", str(metrics_port),
                "--warmup", "false", "--drain-delay-s", "1", "--shutdown-grace-s", "20",
                "--log-level", "debug",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        port = wait_for_port_file(port_file, process, timeout=180)
        yield Supervised(
            process, f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", log
        )
    finally:
        if process.poll() is None:
            process.terminate()  # the workers drain with it
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_two_workers_share_one_port_and_one_metrics_endpoint(supervised: Supervised) -> None:
    sent = 0
    for _ in range(24):  # new connections: the kernel spreads them over the workers
        with EmbedderClient(supervised.target, attempts=1) as client:
            for _ in range(2):
                assert client.embed(["which worker answers?"]).pooled is not None
                sent += 1
            assert client.embed(["and the second model?"], model=SECOND).pooled is not None
    samples = scrape(supervised.metrics_url)
    per_worker = [
        samples.get(f'attnserve_worker_requests_total{{worker="{i}"}}', 0.0) for i in (0, 1)
    ]
    assert all(count > 0 for count in per_worker), per_worker
    assert sum(per_worker) == sent + 24
    ok = (
        'attnserve_requests_total{{code="OK",method="Embed",model="{}",protocol="attnserve.v1",'
        'task="embed"}}'
    )
    assert samples[ok.format(MINI)] == sent
    assert samples[ok.format(SECOND)] == 24  # each connection's worker served the second model
    for model in (MINI, SECOND):  # every worker ready with every model ("livemin")
        assert samples[f'attnserve_model_ready{{model="{model}"}}'] == 1.0
    text = supervised.log.read_text()
    assert " w0 " in text
    assert " w1 " in text  # every worker's lines say which worker wrote them


def test_sigterm_under_load_drains_every_worker_and_loses_nothing(
    supervised: Supervised,
) -> None:
    outcomes: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def hammer() -> None:
        with EmbedderClient(supervised.target, attempts=1) as client:
            for _ in range(30):
                try:
                    served = client.embed(["drained, not dropped " * 8] * 4, timeout_s=60)
                    assert served.pooled is not None
                    assert served.pooled.shape == (4, 384)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                with lock:
                    outcomes.append(code)
                if code != grpc.StatusCode.OK:
                    return

    workers = worker_pids(supervised.process.pid)
    assert len(workers) == 2
    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    supervised.process.send_signal(signal.SIGTERM)  # to the supervisor only, as Kubernetes does
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    assert supervised.process.wait(timeout=60) == 0  # 0 only if every worker exited 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    ok = outcomes.count(grpc.StatusCode.OK)
    assert ok > 0
    # Calls that came after the drain are refused: UNAVAILABLE from our handler, or CANCELLED by
    # gRPC itself for a call that raced the listener's close and never reached a handler.
    assert set(outcomes) <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
    }
    # Every call a worker accepted finished: the workers' own record (one debug line per call
    # handled) holds only successes and refusals, and as many successes as the callers saw.
    handled = [
        line for line in supervised.log.read_text().splitlines() if "method=Embed code=" in line
    ]
    codes = {line.split("code=")[1].split()[0] for line in handled}
    assert codes <= {"OK", "UNAVAILABLE"}, codes
    assert sum("code=OK" in line for line in handled) == ok


def test_a_killed_worker_is_replaced(supervised: Supervised) -> None:
    before = worker_pids(supervised.process.pid)
    victim = min(before)
    subprocess.run(["kill", "-9", str(victim)], check=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = worker_pids(supervised.process.pid)
        after_death = supervised.log.read_text().split("starting a new one")
        if len(now) == 2 and victim not in now and "is serving" in after_death[-1]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no replacement: {worker_pids(supervised.process.pid)}")
    assert "exited with code -9; starting a new one" in supervised.log.read_text()
    for _ in range(12):  # both workers (the new one included) answer
        with EmbedderClient(supervised.target, attempts=1) as client:
            assert client.embed(["still serving"]).pooled is not None


def test_workers_of_a_killed_supervisor_drain_and_exit(supervised: Supervised) -> None:
    workers = worker_pids(supervised.process.pid)
    supervised.process.kill()  # no chance to pass SIGTERM on
    supervised.process.wait()
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "orphans left serving"
    assert "the supervisor (pid" in supervised.log.read_text()
