"""The load tester's mergeable histograms: percentiles within a bucket, merging exact."""

from __future__ import annotations

import random

import numpy as np
import pytest

from attnserve.service.loadtest.report import Histogram, Outcome, Tally, percentile_map


def test_percentiles_are_within_one_percent_of_the_exact_ones() -> None:
    rng = random.Random(0)
    values = [rng.lognormvariate(2.0, 1.0) for _ in range(5000)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    exact = percentile_map(np.array(values))
    summary = histogram.summary()
    for name in ("p50", "p90", "p99", "p99.9"):
        assert summary[name] == pytest.approx(exact[name], rel=0.011), name
    assert summary["max"] == max(values)
    assert summary["mean"] == pytest.approx(exact["mean"])


def test_merging_is_the_same_as_counting_everything_in_one() -> None:
    rng = random.Random(1)
    fast = [rng.uniform(1, 2) for _ in range(900)]
    slow = [rng.uniform(100, 200) for _ in range(100)]
    one, two, both = Histogram(), Histogram(), Histogram()
    for value in fast:
        one.add(value)
        both.add(value)
    for value in slow:
        two.add(value)
        both.add(value)
    one.merge(two)
    assert one.counts == both.counts
    assert one.summary() == pytest.approx(both.summary())
    # Averaging the two processes' p99s would say ~100 ms; the merged p99 is the slow tail's.
    assert one.percentile(99) > 100


def test_tallies_add_counts_and_keep_the_longest_elapsed_time() -> None:
    ok = Outcome(0.0, 0.010, "OK", 2, 20, 1.0, 0.5, 3.0)
    refused = Outcome(0.0, 0.001, "RESOURCE_EXHAUSTED", 0)
    first = Tally.of([ok, ok, refused], sent=3, elapsed_s=2.0)
    second = Tally.of([ok], sent=1, elapsed_s=2.5)
    first.merge(second)
    summary = first.summary()
    assert (summary.sent, summary.succeeded) == (4, 3)
    assert summary.errors == {"RESOURCE_EXHAUSTED": 1}
    assert summary.elapsed_s == 2.5
    assert summary.texts_per_s == pytest.approx(6 / 2.5)
    assert summary.server_ms["inference_p50"] == pytest.approx(3.0, rel=0.01)


def test_an_empty_histogram_reports_zeros() -> None:
    assert Histogram().summary()["p99"] == 0.0
