"""Shared by the benchmark scripts: the machine description and paired timing."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    versions = []
    for package in ("onnxruntime", "torch", "numpy", "grpcio"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores visible, Python "
        f"{platform.python_version()}, {', '.join(versions)}"
    )


def paired_medians(
    paths: dict[str, Callable[[], object]],
    min_rounds: int = 3,
    max_rounds: int = 15,
    budget_s: float = 6.0,
) -> dict[str, float]:
    """Run each path once per round, interleaved, so drifts in machine load hit all alike.

    The order rotates every round: on few cores, whatever ran just before (a thread pool still
    spinning, a cache just flushed) must not always hurt the same path. Returns each path's
    median seconds per call. One warm-up call per path is not counted.
    """
    for run in paths.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    started = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (rounds < max_rounds and time.perf_counter() - started < budget_s):
        names = list(paths)
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            paths[name]()
            samples[name].append(time.perf_counter() - began)
        rounds += 1
    return {name: statistics.median(values) for name, values in samples.items()}
