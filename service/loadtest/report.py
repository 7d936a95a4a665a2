"""Load-test results: percentiles, errors by code, the server's stage times, JSON and a plot."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class Outcome:
    scheduled_at: float  # seconds since the measured phase began
    latency_s: float  # from the scheduled send time (open loop) or the send (closed loop)
    code: str
    texts: int
    tokens: int = 0
    queue_ms: float = 0.0
    tokenize_ms: float = 0.0
    inference_ms: float = 0.0


@dataclass(frozen=True)
class Summary:
    sent: int
    succeeded: int
    errors: dict[str, int]
    elapsed_s: float
    requests_per_s: float
    texts_per_s: float
    tokens_per_s: float
    latency_ms: dict[str, float]  # p50, p90, p99, p99.9, max, mean
    server_ms: dict[str, float]  # p50 of the server's queue / tokenize / inference times

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "succeeded": self.succeeded,
            "errors_by_code": self.errors,
            "elapsed_s": self.elapsed_s,
            "requests_per_s": self.requests_per_s,
            "texts_per_s": self.texts_per_s,
            "tokens_per_s": self.tokens_per_s,
            "latency_ms": self.latency_ms,
            "server_ms": self.server_ms,
        }

    def table(self) -> str:
        lat, srv = self.latency_ms, self.server_ms
        errors = ", ".join(f"{code} {n}" for code, n in sorted(self.errors.items())) or "none"
        rows = [
            ("requests sent / succeeded", f"{self.sent} / {self.succeeded}"),
            ("errors by code", errors),
            ("throughput", f"{self.requests_per_s:.1f} req/s, {self.texts_per_s:.1f} texts/s, "
                           f"{self.tokens_per_s:.0f} tokens/s"),
            ("latency p50 / p90 / p99 / p99.9 / max",
             " / ".join(f"{lat[k]:.2f}" for k in ("p50", "p90", "p99", "p99.9", "max")) + " ms"),
            ("server p50: queue / tokenise / inference",
             f"{srv['queue_p50']:.2f} / {srv['tokenize_p50']:.2f} / "
             f"{srv['inference_p50']:.2f} ms"),
        ]  # fmt: skip
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def percentile_map(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "p99.9": 0.0, "max": 0.0, "mean": 0.0}
    points = np.percentile(values, PERCENTILES)
    result = {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, points, strict=True)}
    result["max"] = float(values.max())
    result["mean"] = float(values.mean())
    return result


def summarize(outcomes: list[Outcome], sent: int, elapsed_s: float) -> Summary:
    ok = [o for o in outcomes if o.code == "OK"]
    latencies = np.array([o.latency_s * 1000 for o in ok], dtype=np.float64)
    elapsed = max(elapsed_s, 1e-9)

    def server_p50(attribute: str) -> float:
        values = [getattr(o, attribute) for o in ok]
        return float(np.median(values)) if values else 0.0

    return Summary(
        sent=sent,
        succeeded=len(ok),
        errors=dict(Counter(o.code for o in outcomes if o.code != "OK")),
        elapsed_s=elapsed_s,
        requests_per_s=len(ok) / elapsed,
        texts_per_s=sum(o.texts for o in ok) / elapsed,
        tokens_per_s=sum(o.tokens for o in ok) / elapsed,
        latency_ms=percentile_map(latencies),
        server_ms={
            "queue_p50": server_p50("queue_ms"),
            "tokenize_p50": server_p50("tokenize_ms"),
            "inference_p50": server_p50("inference_ms"),
        },
    )


def render_plot(outcomes: list[Outcome], out: Path, title: str) -> None:
    """Latency over time (errors in red) and the latency histogram, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [o for o in outcomes if o.code == "OK"]
    failed = [o for o in outcomes if o.code != "OK"]
    figure, (over_time, histogram) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    over_time.scatter([o.scheduled_at for o in ok], [o.latency_s * 1000 for o in ok], s=4,
                      label="OK")  # fmt: skip
    if failed:
        over_time.scatter([o.scheduled_at for o in failed], [o.latency_s * 1000 for o in failed],
                          s=6, color="red", label="error")  # fmt: skip
    over_time.set_xlabel("scheduled send time (s)")
    over_time.set_ylabel("latency (ms)")
    over_time.set_title(title)
    over_time.legend(loc="upper left")
    histogram.hist([o.latency_s * 1000 for o in ok] or [0.0], bins=50)
    histogram.set_xlabel("latency (ms)")
    histogram.set_ylabel("requests")
    histogram.set_title("latency distribution")
    figure.savefig(out, dpi=100)
    plt.close(figure)
