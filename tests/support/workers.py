"""`attnserve serve --workers N` run by the tests: the supervised server as a test holds it, a
free port to give it, and its worker processes read from /proc."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Supervised:
    process: subprocess.Popen[bytes]
    target: str
    metrics_url: str
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_pids(parent: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's helper processes excluded)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            found.add(int(stat.parent.name))
    return found
