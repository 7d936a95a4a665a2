"""Load-test results: percentiles, errors by code, the server's stage times, JSON and a plot.

One process keeps every outcome and reports exact percentiles. Several (`--processes N`) each
reduce theirs to a `Tally`: counts and log-bucketed histograms, which add up exactly, so the
merged percentiles are those of all requests together (within a bucket's 1% width), never an
average of per-process percentiles.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
HISTOGRAM_FLOOR_MS = 0.01  # the lowest bucket's lower edge
HISTOGRAM_GROWTH = 1.01  # each bucket 1% wider than the last: percentiles within 1%
STAGES = ("queue_ms", "tokenize_ms", "inference_ms")  # the server's own times, per response


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

    @property
    def error_rate(self) -> float:
        """Failed requests over those sent (0 when none were)."""
        return sum(self.errors.values()) / self.sent if self.sent else 0.0

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


@dataclass
class Histogram:
    """Values (ms) in log-spaced buckets: mergeable by adding counts."""

    counts: Counter[int] = field(default_factory=Counter)
    total: float = 0.0
    maximum: float = 0.0

    @staticmethod
    def bucket(value: float) -> int:
        return max(0, math.floor(math.log(max(value, HISTOGRAM_FLOOR_MS) / HISTOGRAM_FLOOR_MS,
                                          HISTOGRAM_GROWTH)))  # fmt: skip

    def add(self, value: float) -> None:
        self.counts[self.bucket(value)] += 1
        self.total += value
        self.maximum = max(self.maximum, value)

    def merge(self, other: Histogram) -> None:
        self.counts.update(other.counts)
        self.total += other.total
        self.maximum = max(self.maximum, other.maximum)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float:
        """The geometric middle of the bucket holding the q-th percentile."""
        count = self.count
        if count == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100 * count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                middle: float = HISTOGRAM_FLOOR_MS * HISTOGRAM_GROWTH ** (index + 0.5)
                return min(middle, self.maximum)
        return self.maximum

    def summary(self) -> dict[str, float]:
        result = {f"p{q:g}": self.percentile(q) for q in PERCENTILES}
        result["max"] = self.maximum
        result["mean"] = self.total / self.count if self.count else 0.0
        return result


@dataclass
class Tally:
    """One process's load, reduced to what merges exactly."""

    sent: int = 0
    elapsed_s: float = 0.0
    codes: Counter[str] = field(default_factory=Counter)
    texts: int = 0
    tokens: int = 0
    latency: Histogram = field(default_factory=Histogram)
    stages: dict[str, Histogram] = field(
        default_factory=lambda: {name: Histogram() for name in STAGES}
    )

    @classmethod
    def of(cls, outcomes: list[Outcome], sent: int, elapsed_s: float) -> Tally:
        tally = cls(sent=sent, elapsed_s=elapsed_s)
        for outcome in outcomes:
            tally.codes[outcome.code] += 1
            if outcome.code != "OK":
                continue
            tally.texts += outcome.texts
            tally.tokens += outcome.tokens
            tally.latency.add(outcome.latency_s * 1000)
            for name in STAGES:
                tally.stages[name].add(getattr(outcome, name))
        return tally

    def merge(self, other: Tally) -> None:
        """Add another process's tally (the processes ran at the same time)."""
        self.sent += other.sent
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.codes.update(other.codes)
        self.texts += other.texts
        self.tokens += other.tokens
        self.latency.merge(other.latency)
        for name in STAGES:
            self.stages[name].merge(other.stages[name])

    def summary(self) -> Summary:
        succeeded = self.codes.get("OK", 0)
        elapsed = max(self.elapsed_s, 1e-9)
        return Summary(
            sent=self.sent,
            succeeded=succeeded,
            errors={code: n for code, n in self.codes.items() if code != "OK"},
            elapsed_s=self.elapsed_s,
            requests_per_s=succeeded / elapsed,
            texts_per_s=self.texts / elapsed,
            tokens_per_s=self.tokens / elapsed,
            latency_ms=self.latency.summary(),
            server_ms={
                f"{name.removesuffix('_ms')}_p50": self.stages[name].percentile(50)
                for name in STAGES
            },
        )


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
