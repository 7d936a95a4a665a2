"""How `--workers` shares a machine out, and the port every worker binds beside the others."""

from __future__ import annotations

import socket
from typing import Literal

import pytest

from attnserve.service.server.settings import Settings
from attnserve.service.server.workers import plan_workers, reserve_port


@pytest.mark.parametrize(
    ("workers", "cores", "cuda", "expected"),
    [
        (1, 2, False, (1, 2)),  # one worker takes every core
        (2, 2, False, (2, 1)),  # cores shared out
        (3, 16, False, (3, 5)),
        ("auto", 2, False, (1, 2)),
        ("auto", 16, False, (8, 2)),
        ("auto", 16, True, (4, 4)),  # a GPU is fed by a few processes
        ("auto", 2, True, (1, 2)),
    ],
)
def test_workers_and_threads_per_worker(
    workers: int | Literal["auto"], cores: int, cuda: bool, expected: tuple[int, int]
) -> None:
    plan = plan_workers(Settings(workers=workers), cores, cuda)
    assert (plan.workers, plan.threads) == expected
    assert ("auto" in plan.why) == (workers == "auto")


def test_explicit_threads_win_over_the_share() -> None:
    plan = plan_workers(Settings(workers=2, intra_op_threads=3), 8, False)
    assert plan.threads == 3


def test_auto_on_cuda_with_the_cpu_provider_plans_for_the_cpu() -> None:
    plan = plan_workers(Settings(workers="auto", provider="cpu"), 16, True)
    assert "CPU" in plan.why


def test_the_reserved_port_takes_workers_beside_it_and_no_one_else() -> None:
    (holder,), port = reserve_port(Settings(host="127.0.0.1", port=0, metrics_port=-1))
    try:
        assert port > 0
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))  # a worker (SO_REUSEPORT) binds beside it
        worker.close()
        stranger = socket.socket()
        with pytest.raises(OSError, match="in use"):
            stranger.bind(("127.0.0.1", port))  # another program cannot take the port
        stranger.close()
    finally:
        holder.close()
