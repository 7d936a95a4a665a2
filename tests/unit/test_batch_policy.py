"""The batch policy and the cost model it follows: pure functions, no engine, no timing."""

from __future__ import annotations

import random

import pytest

from attnserve.service.server.batch_policy import grow_batch
from attnserve.service.server.cost_model import CALIBRATION_SHAPES, CostModel

# Shaped like the measurements: a CPU run has little fixed cost per batch and pays for every
# padded token; a GPU run has a large fixed cost (launches, transfers) and cheap tokens.
CPU = CostModel(per_call_s=2e-4, per_token_s=7e-5, per_token_pair_s=6e-8)
GPU = CostModel(per_call_s=2e-3, per_token_s=2e-7, per_token_pair_s=1e-10)


def batches(lengths: list[int], cost: CostModel, max_texts: int = 64) -> list[list[int]]:
    """Run the policy to exhaustion, anchoring each batch on the oldest text left."""
    queue = list(lengths)  # arrival order
    formed = []
    while queue:
        ordered = sorted(range(len(queue)), key=lambda i: queue[i])
        anchor = ordered.index(0)
        low, high = grow_batch([queue[i] for i in ordered], anchor, cost, max_texts, 16384)
        taken = {ordered[i] for i in range(low, high)}
        formed.append(sorted(queue[i] for i in taken))
        queue = [length for i, length in enumerate(queue) if i not in taken]
    return formed


def test_a_shuffled_queue_comes_out_in_batches_of_like_length_on_a_cpu() -> None:
    lengths = [8] * 12 + [9] * 12 + [120] * 4 + [200] * 2
    random.Random(1).shuffle(lengths)
    formed = batches(lengths, CPU)
    for batch in formed:
        assert max(batch) - min(batch) <= 1, batch  # never a query padded to a document
    assert sorted(x for batch in formed for x in batch) == sorted(lengths)


def test_on_a_cpu_short_texts_share_runs_and_long_ones_do_not_wait_for_company() -> None:
    formed = batches([10] * 16 + [250] * 2, CPU)
    assert [10] * 16 in formed  # the per-run cost is shared by equal short texts
    assert formed.count([250]) == 2 or [250, 250] in formed


def test_on_a_gpu_the_fixed_cost_makes_one_large_batch_of_mixed_lengths() -> None:
    lengths = [10, 12, 14, 40, 60, 80]
    random.Random(2).shuffle(lengths)
    assert batches(lengths, GPU) == [sorted(lengths)]


def test_the_same_queue_batches_differently_under_each_cost_model() -> None:
    lengths = [6, 7, 8, 30, 32, 64, 100]
    cpu, gpu = batches(lengths, CPU), batches(lengths, GPU)
    assert len(cpu) > len(gpu)
    assert max(len(batch) for batch in gpu) == len(lengths)


def test_the_oldest_text_is_always_in_the_batch_and_limits_hold() -> None:
    rng = random.Random(3)
    for _ in range(200):
        lengths = sorted(rng.randint(3, 250) for _ in range(rng.randint(1, 40)))
        anchor = rng.randrange(len(lengths))
        cost = rng.choice([CPU, GPU])
        low, high = grow_batch(lengths, anchor, cost, max_texts=8, max_tokens=1024)
        assert low <= anchor < high
        assert high - low <= 8
        assert high - low == 1 or (high - low) * lengths[high - 1] <= 1024


def test_a_text_longer_than_the_token_budget_still_runs_alone() -> None:
    assert grow_batch([5, 6, 500], 2, GPU, max_texts=64, max_tokens=256) == (2, 3)


def test_no_text_waits_beyond_its_bound_while_others_keep_arriving() -> None:
    """A steady stream of short queries and a few long documents, one batch formed per step:
    every text is served within as many steps as there were texts ahead of it on arrival."""
    rng = random.Random(4)
    queue: list[tuple[int, int, int]] = []  # (arrival step, length, id)
    ahead: dict[int, int] = {}
    served_at: dict[int, int] = {}
    arrivals: dict[int, int] = {}
    next_id = 0
    for step in range(400):
        for _ in range(rng.choice([0, 1, 2])):  # the queue neither drains nor explodes
            length = rng.choice([5, 6, 7, 8]) if rng.random() < 0.9 else rng.choice([150, 240])
            ahead[next_id] = len(queue)
            arrivals[next_id] = step
            queue.append((step, length, next_id))
            next_id += 1
        if not queue:
            continue
        ordered = sorted(range(len(queue)), key=lambda i: queue[i][1])
        low, high = grow_batch([queue[i][1] for i in ordered], ordered.index(0), CPU, 8, 4096)
        taken = {ordered[i] for i in range(low, high)}
        for i in taken:
            served_at[queue[i][2]] = step
        queue = [entry for i, entry in enumerate(queue) if i not in taken]
    assert len(served_at) > 300
    for text_id, step in served_at.items():
        assert step - arrivals[text_id] <= ahead[text_id], text_id


def test_the_fit_recovers_the_costs_it_was_timed_with() -> None:
    truth = CostModel(per_call_s=3e-4, per_token_s=6e-5, per_token_pair_s=4e-8)
    timings = [truth.seconds(b, t) for b, t in CALIBRATION_SHAPES]
    fitted = CostModel.fit(CALIBRATION_SHAPES, timings)
    for name in ("per_call_s", "per_token_s", "per_token_pair_s"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=1e-6)


def test_the_fit_never_returns_a_negative_cost() -> None:
    # Timings that a plain least-squares fit would explain with a negative fixed cost.
    timings = [1e-5 * b * t for b, t in CALIBRATION_SHAPES]
    timings[0] *= 0.5
    fitted = CostModel.fit(CALIBRATION_SHAPES, timings)
    assert min(fitted.per_call_s, fitted.per_token_s, fitted.per_token_pair_s) >= 0
    assert fitted.per_token_s > 0
