"""Start-up time of the `attnserve` command: `--help`, `embed` against a running server, and
`serve` from launch to SERVING (its port file written) with a built artifact.

    python bench/startup.py --artifact DIR [--runs 7] [--baseline "CMD ..."]

Each case runs as a child process, wall clock from spawn to exit (or to SERVING). `--baseline`
names another way to launch attnserve (e.g. an older tree through a loader), timed in the same
rounds, alternating with this one, so the ratio holds under a shared machine's load. Run it
under the bench lock (`flock /tmp/attnserve-bench.lock python bench/startup.py ...`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_line

CURRENT = [sys.executable, "-m", "attnserve.service.cli"]
SERVING_TIMEOUT_S = 300


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, timeout=120)
    return time.perf_counter() - started


def serve_args(artifact: Path, port_file: Path) -> list[str]:
    return ["serve", "--artifact", str(artifact), "--host", "127.0.0.1", "--port", "0",
            "--port-file", str(port_file), "--metrics-port", "-1",
            "--drain-delay-s", "0"]  # fmt: skip


def until_serving(launcher: list[str], artifact: Path) -> float:
    """Spawn to the port file's port (written once SERVING: warm-up done), then drain."""
    with tempfile.TemporaryDirectory() as scratch:
        port_file = Path(scratch) / "port"
        started = time.perf_counter()
        process = subprocess.Popen(
            [*launcher, *serve_args(artifact, port_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not (port_file.exists() and port_file.read_text().strip()):
                if process.poll() is not None or time.perf_counter() - started > SERVING_TIMEOUT_S:
                    raise RuntimeError(f"serve exited or hung: {process.returncode}")
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            return elapsed
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def start_server(artifact: Path, port_file: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*CURRENT, *serve_args(artifact, port_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + SERVING_TIMEOUT_S
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the embed case's server did not start")
        time.sleep(0.05)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, required=True, help="a built artifact")
    parser.add_argument("--runs", type=int, default=7, help="rounds (each case, each launcher)")
    parser.add_argument("--baseline", default=None, help="another launcher, timed alongside")
    args = parser.parse_args()
    launchers = {"this tree": CURRENT}
    if args.baseline:
        launchers = {"baseline": shlex.split(args.baseline), **launchers}
    print(machine_line())
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as scratch:
        server = start_server(args.artifact, Path(scratch) / "port")
        target = f"127.0.0.1:{(Path(scratch) / 'port').read_text().strip()}"
        try:
            cases: dict[str, Callable[[list[str]], float]] = {
                "attnserve --help": lambda launcher: timed([*launcher, "--help"]),
                "attnserve embed (1 text)": lambda launcher: timed(
                    [*launcher, "embed", "--target", target, "Attention is all you need."]
                ),
                "attnserve serve (to SERVING)": lambda launcher: until_serving(
                    launcher, args.artifact
                ),
            }
            results: dict[tuple[str, str], list[float]] = {
                (case, name): [] for case in cases for name in launchers
            }
            for _ in range(args.runs):
                for case, run in cases.items():
                    for name, launcher in launchers.items():  # alternating, round by round
                        results[case, name].append(run(launcher))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    print(f"load average after: {os.getloadavg()}")
    names = list(launchers)
    header = "| case | " + " | ".join(f"{n} median (min-max) s" for n in names)
    print(header + (" | ratio |" if len(names) == 2 else " |"))
    print("|" + " --- |" * (len(names) + 1 + (len(names) == 2)))
    for case in cases:
        cells = []
        for name in names:
            times = results[case, name]
            cells.append(f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})")
        ratio = ""
        if len(names) == 2:
            first, second = (statistics.median(results[case, n]) for n in names)
            ratio = f" {first / second:.1f}x |"
        print(f"| {case} | " + " | ".join(cells) + " |" + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
