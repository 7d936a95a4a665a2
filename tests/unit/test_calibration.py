"""Workers share one cost-model fit: the first fits alone, the others (and a restarted one) read
it, so no fit is timed while another worker competes for the cores."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from attnserve.service.artifact import GraphPurpose
from attnserve.service.server.cost_model import CostModel
from attnserve.service.server.shared_fit import fit_once, fit_path


class CountingEngine:
    """Calibrates slowly and says how many fits ran at once."""

    def __init__(self, fit: CostModel) -> None:
        self.fit = fit
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def calibrate(self) -> dict[GraphPurpose, CostModel]:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.2)  # long enough for the other workers to arrive meanwhile
        with self.lock:
            self.running -= 1
        return {"fast": self.fit, "maps": CostModel(1e-3, 2e-5, 3e-8)}


def test_workers_use_one_shared_fit(tmp_path: Path) -> None:
    shared = tmp_path / "cost-model.json"
    engines = [CountingEngine(CostModel(3e-4 * (i + 1), 6e-5, 5e-8)) for i in range(4)]
    fits: list[dict[GraphPurpose, CostModel]] = [{} for _ in engines]

    def worker(index: int) -> None:
        fits[index] = fit_once(engines[index], shared)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(engine.calls for engine in engines) == 1  # one fit, made alone
    assert all(fit == fits[0] for fit in fits)  # and every worker batches by it
    (fitted,) = [engine for engine in engines if engine.calls]
    assert fits[0]["fast"] == fitted.fit
    restarted = CountingEngine(CostModel(9.0, 9.0, 9.0))
    assert fit_once(restarted, shared) == fits[0]  # a restarted worker times nothing
    assert restarted.calls == 0


def test_a_lone_server_fits_its_own() -> None:
    engine = CountingEngine(CostModel(3e-4, 6e-5, 5e-8))
    assert fit_once(engine, None)["fast"] == engine.fit
    assert engine.calls == 1


def test_each_model_has_its_own_shared_fit(tmp_path: Path) -> None:
    shared = tmp_path / "cost-model.json"
    small, large = (
        CountingEngine(CostModel(1e-4, 1e-5, 0.0)),
        CountingEngine(CostModel(1.0, 1.0, 0.0)),
    )
    assert fit_path(shared, "small") != fit_path(shared, "large")
    assert fit_once(small, fit_path(shared, "small"))["fast"] == small.fit
    # The second model fits itself: the first model's fit is never read for it.
    assert fit_once(large, fit_path(shared, "large"))["fast"] == large.fit
    assert (small.calls, large.calls) == (1, 1)
