"""`attnserve serve --workers N`: N serving processes behind one port, supervised.

One Python process is one event loop and one GIL: on a GPU it cannot keep the device busy, and on
a CPU its request handling competes with inference for the same few cores. So N workers, each a
whole server (engine, batcher, gRPC) in its own process, bind the same port with SO_REUSEPORT and
the kernel spreads connections between them (no hop through an acceptor process). The
supervisor (this module, the process `attnserve serve` started):
- reserves the port (a socket bound with SO_REUSEPORT, never listening) so port 0 works and no
  other program takes the port between workers;
- shares the cores out (`intra_op_threads`), starts the workers and waits until each is SERVING;
- gives them one place to share the cost model's fit, so it is timed once, alone
  (`shared_fit.py`);
- serves one /metrics for all of them (prometheus_client's multiprocess mode);
- restarts a worker that dies, and logs it;
- on SIGTERM or SIGINT passes SIGTERM to every worker, each drains as a lone server does
  (NOT_SERVING, the drain delay, refuse new calls, finish in-flight ones), and exits 0 when all
  did.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from pathlib import Path
from types import FrameType
from typing import Any

from attnserve.service.server.errors import StartupError
from attnserve.service.server.listeners import bind_sockets, check_ports
from attnserve.service.server.settings import Settings

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 900.0  # a first start may build the default artifact
STOP_MARGIN_S = 15.0  # beyond the drain delay and grace: a worker that still runs is killed


@dataclass(frozen=True)
class Plan:
    workers: int
    threads: int  # intra-op threads per worker
    why: str


def plan_workers(settings: Settings, cores: int, has_cuda: bool) -> Plan:
    """How many workers, and the threads each gets; `auto` says why it chose."""
    on_gpu = has_cuda and settings.provider != "cpu"
    if settings.workers == "auto":
        if on_gpu:
            # Several processes feed one GPU (measured 2.5-5.6x one process on an H200 with 4).
            count = max(1, min(4, cores // 2))
            why = f"auto: CUDA device, {cores} cores: {count} processes to keep it busy"
        else:
            count = max(1, cores // 2)
            why = f"auto: CPU, {cores} cores: one worker per 2 cores"
    else:
        count = settings.workers
        why = f"--workers {count}"
    threads = settings.intra_op_threads or max(1, cores // count)
    return Plan(count, threads, why)


def reserve_port(settings: Settings) -> tuple[list[socket.socket], int]:
    """Bind (not listen) with SO_REUSEPORT: the workers bind the same port beside it. The other
    listeners' ports are checked here too, so a busy one stops the start in plain words."""
    holders = bind_sockets(settings.host, settings.port, "--port", reuse_port=True)
    port = int(holders[0].getsockname()[1])
    try:
        check_ports(settings.model_copy(update={"port": 0}), reuse_port=True)
    except StartupError:
        for holder in holders:
            holder.close()
        raise
    return holders, port


def worker_main(
    settings: Settings, index: int, events: Queue[tuple[str, int, int]], shared_fit: Path
) -> None:
    """A worker process: a whole server on the shared port; tells the supervisor when ready."""
    import asyncio

    from attnserve.service.server.app import serve_forever
    from attnserve.service.server.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format, f"w{index}")

    def ready(_port: int) -> None:
        events.put(("ready", index, os.getpid()))

    try:
        code = asyncio.run(
            serve_forever(
                settings,
                worker=index,
                on_ready=ready,
                parent=os.getppid(),
                shared_fit=shared_fit,
            )
        )
    except StartupError as exc:
        log.error("worker %d cannot start: %s", index, exc)
        events.put(("failed", index, os.getpid()))
        code = exc.exit_code
    sys.exit(code)


class Supervisor:
    def __init__(self, settings: Settings, plan: Plan, port: int, shared_fit: Path) -> None:
        self.settings = settings
        self.shared_fit = shared_fit  # the workers' one cost-model fit (shared_fit.py)
        self.port = port
        self.context = multiprocessing.get_context("spawn")
        self.events: Queue[tuple[str, int, int]] = self.context.Queue()
        self.worker_settings = settings.model_copy(
            update={
                "port": port,
                "workers": 1,
                "intra_op_threads": plan.threads,
                "metrics_port": -1,  # the supervisor serves /metrics for all
                "port_file": None,
            }
        )
        self.processes: dict[int, SpawnProcess] = {}
        self.stopping = False

    def start(self, index: int) -> None:
        process = self.context.Process(
            target=worker_main,
            args=(self.worker_settings, index, self.events, self.shared_fit),
            name=f"attnserve-w{index}",
        )
        process.start()
        self.processes[index] = process

    def wait_ready(self, indices: set[int], timeout: float) -> bool:
        """Until each of `indices` says it is SERVING; False if one failed or time ran out."""
        deadline = time.monotonic() + timeout
        waiting = set(indices)
        while waiting and not self.stopping:
            try:
                kind, index, pid = self.events.get(timeout=0.5)
            except queue.Empty:  # check for a dead worker, then wait on
                if time.monotonic() > deadline or any(
                    not self.processes[i].is_alive() for i in waiting
                ):
                    return False
                continue
            if kind == "failed":
                return False
            waiting.discard(index)
            log.info("worker %d (pid %d) is serving", index, pid)
        return not waiting

    def note_events(self) -> None:
        """Log what workers said since last time (a replacement coming up, one failing)."""
        while True:
            try:
                kind, index, pid = self.events.get_nowait()
            except queue.Empty:
                return
            if kind == "ready":
                log.info("worker %d (pid %d) is serving", index, pid)
            else:
                log.error("worker %d (pid %d) could not start", index, pid)

    def replace_dead(self) -> None:
        from prometheus_client import multiprocess

        for index, process in list(self.processes.items()):
            if process.is_alive() or self.stopping:
                continue
            log.warning(
                "worker %d (pid %s) exited with code %s; starting a new one",
                index,
                process.pid,
                process.exitcode,
            )
            if process.pid is not None:
                multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
            self.start(index)

    def stop(self) -> bool:
        """SIGTERM to every worker; True when each drained and exited 0."""
        self.stopping = True
        for process in self.processes.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        budget = self.settings.drain_delay_s + self.settings.shutdown_grace_s + STOP_MARGIN_S
        deadline = time.monotonic() + budget
        clean = True
        for index, process in self.processes.items():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker %d did not stop in %.0f s; killing it", index, budget)
                process.kill()
                process.join()
                clean = False
            elif process.exitcode != 0:
                log.error("worker %d exited with code %s", index, process.exitcode)
                clean = False
        return clean


def machine_plan(settings: Settings) -> Plan:
    import onnxruntime

    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return plan_workers(settings, os.cpu_count() or 1, has_cuda)


def supervise(settings: Settings, plan: Plan) -> int:
    """The supervisor's life; returns the exit code."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="attnserve-metrics-"))
    # Read by prometheus_client when a worker imports it: values go to files the supervisor
    # combines. Set before any worker starts (they inherit the environment).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    holders, port = reserve_port(settings)
    fit_dir = Path(tempfile.mkdtemp(prefix="attnserve-fit-"))
    supervisor = Supervisor(settings, plan, port, fit_dir / "cost-model.json")
    metrics_server: Any = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for index in range(plan.workers):
            supervisor.start(index)
        if not supervisor.wait_ready(set(range(plan.workers)), READY_TIMEOUT_S):
            if not supervisor.stopping:
                log.error("a worker could not start; stopping the others")
            supervisor.stop()
            # A worker's start-up failure is the command's: its exit code says which.
            codes = [p.exitcode for p in supervisor.processes.values() if p.exitcode]
            return codes[0] if codes else 2
        if settings.metrics_port >= 0:
            from attnserve.service.server.metrics import Metrics

            metrics_server = Metrics.serve_multiprocess(settings.host, settings.metrics_port)
            metrics_port = metrics_server.port
        else:
            metrics_port = None
        if settings.port_file is not None:
            settings.port_file.write_text(f"{port}\n")
        pids = ", ".join(str(p.pid) for p in supervisor.processes.values())
        log.info(
            "serving on port %d with %d workers (%s), %d intra-op threads each; pids %s; "
            "metrics on port %s",
            port,
            plan.workers,
            plan.why,
            plan.threads,
            pids,
            metrics_port,
        )
        while not supervisor.stopping:
            time.sleep(0.2)
            supervisor.note_events()
            supervisor.replace_dead()
        log.info("stopping: every worker drains")
        clean = supervisor.stop()
        log.info("stopped")
        return 0 if clean else 1
    finally:
        if metrics_server is not None:
            metrics_server.close()
        for holder in holders:
            holder.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        shutil.rmtree(fit_dir, ignore_errors=True)
