"""The cost model's fit, made once per machine-shape and shared by every worker.

Fitting times real batches. With `--workers N` on shared cores, N workers fitting at once time
each other's contention: one fit came out as `0.000 ms/batch + 256.50 us/token + 0.00
ns/token/position` (the per-batch and quadratic terms lost), and a worker batches by that for
its whole life. So under a supervisor the workers take turns on a lock file: the first fits
alone and writes the fit, the others (and any worker restarted later) read it instead of timing
anything. A lone server fits as before. With several models each has its own fit (its own
file, `fit_path`): a fit is a property of one engine, never shared between models.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Protocol

from attnserve.service.artifact import GraphPurpose
from attnserve.service.server.cost_model import CostModel

log = logging.getLogger(__name__)


class Calibrates(Protocol):
    def calibrate(self) -> dict[GraphPurpose, CostModel]: ...


def save(path: Path, costs: dict[GraphPurpose, CostModel]) -> None:
    document = {
        purpose: [cost.per_call_s, cost.per_token_s, cost.per_token_pair_s]
        for purpose, cost in costs.items()
    }
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    os.replace(partial, path)  # readers see the whole fit or none


def load(path: Path) -> dict[GraphPurpose, CostModel]:
    document: dict[GraphPurpose, list[float]] = json.loads(path.read_text())
    return {purpose: CostModel(*values) for purpose, values in document.items()}


def fit_path(shared: Path, model: str) -> Path:
    """The shared fit's file for one served model (names are path-safe: artifact_entries.NAME)."""
    return shared.with_name(f"{shared.stem}.{model}{shared.suffix}")


def fit_once(engine: Calibrates, shared: Path | None) -> dict[GraphPurpose, CostModel]:
    """The engine's cost models: fitted here, or (`shared` set, under a supervisor) fitted by
    the first worker to get the lock and read from `shared` by the others. Blocks while another
    worker fits (run it off the event loop)."""
    if shared is None:
        return engine.calibrate()
    with open(shared.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fit at a time; released when the file closes
        if shared.exists():
            log.info("cost model: the fit another worker made (%s)", shared.name)
            return load(shared)
        costs = engine.calibrate()
        save(shared, costs)
        return costs
