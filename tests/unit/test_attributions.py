"""The explanations' maths (server/tasks/attributions.py) on arrays small enough to check by
hand: the decomposition's cells sum to the cosine of the mean-pooled vectors, rollout follows
the paper's recipe."""

from __future__ import annotations

import numpy as np

from attnserve.service.artifact import Pooling
from attnserve.service.server.tasks.attributions import (
    pooled_relevance,
    rollout,
    similarity_terms,
)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_cells_by_hand() -> None:
    t = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # a = (0.5, 0.5)
    u = np.array([[2.0, 0.0]], dtype=np.float32)  # b = (2, 0)
    terms = similarity_terms(t, u)
    # |a| = 1/sqrt(2), |b| = 2, n m = 2: t_0 . u_0 = 2 -> 2 / (2 * sqrt(2)) = 1/sqrt(2).
    np.testing.assert_allclose(terms.cells, [[1 / np.sqrt(2)], [0.0]], atol=1e-7)
    np.testing.assert_allclose(terms.first_shares, [1 / np.sqrt(2), 0.0], atol=1e-7)
    np.testing.assert_allclose(terms.second_shares, [1 / np.sqrt(2)], atol=1e-7)
    assert abs(terms.cosine - 1 / np.sqrt(2)) < 1e-12


def test_the_cells_sum_to_the_cosine_of_the_means() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=(7, 32)).astype(np.float32)
    u = rng.normal(size=(11, 32)).astype(np.float32)
    for dims in (32, 8, 1):  # Matryoshka: the same rule over the first D dimensions
        terms = similarity_terms(t[:, :dims], u[:, :dims])
        expected = cosine(t[:, :dims].mean(0), u[:, :dims].mean(0))
        assert terms.cells.shape == (7, 11)
        assert abs(float(terms.cells.sum(dtype=np.float64)) - expected) < 1e-6
        assert abs(terms.cosine - expected) < 1e-6
        np.testing.assert_allclose(terms.first_shares.sum(), expected, atol=1e-6)
        np.testing.assert_allclose(terms.second_shares.sum(), expected, atol=1e-6)
        assert terms.cells.dtype == np.float32


def test_a_zero_mean_has_no_direction() -> None:
    t = np.array([[1.0, 2.0], [-1.0, -2.0]], dtype=np.float32)
    terms = similarity_terms(t, np.ones((3, 2), dtype=np.float32))
    assert not terms.cells.any()
    assert terms.cosine == 0.0


def test_rollout_by_hand() -> None:
    # Every position attends to token 0: 0.5 A + 0.5 I = [[1, 0], [.5, .5]] each layer.
    to_first = np.array([[[1.0, 0.0], [1.0, 0.0]]], dtype=np.float32)  # (heads=1, 2, 2)
    joint = rollout(np.stack([to_first, to_first]))  # two layers
    np.testing.assert_allclose(joint, [[1.0, 0.0], [0.75, 0.25]], atol=1e-7)
    # Two heads that disagree average to uniform attention: half to each token after one layer.
    swap = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    heads = np.stack([np.eye(2, dtype=np.float32), swap])  # mean: [[.5, .5], [.5, .5]]
    np.testing.assert_allclose(rollout(heads[None]), [[0.75, 0.25], [0.25, 0.75]], atol=1e-7)


def test_rollout_multiplies_later_layers_on_the_left() -> None:
    rng = np.random.default_rng(1)
    maps = rng.random((3, 2, 5, 5))
    maps /= maps.sum(-1, keepdims=True)
    per_layer = []
    for layer in maps:
        mixed = 0.5 * layer.mean(0) + 0.5 * np.eye(5)
        per_layer.append(mixed / mixed.sum(-1, keepdims=True))
    expected = per_layer[2] @ per_layer[1] @ per_layer[0]
    joint = rollout(maps.astype(np.float32))
    np.testing.assert_allclose(joint, expected, atol=1e-6)
    np.testing.assert_allclose(joint.sum(-1), 1.0, atol=1e-6)  # each row still a distribution
    assert rollout(maps.astype(np.float32)).tobytes() == joint.tobytes()  # deterministic


def test_relevance_from_the_pooled_position() -> None:
    joint = np.arange(9, dtype=np.float32).reshape(3, 3)
    np.testing.assert_array_equal(pooled_relevance(joint, Pooling.CLS), [0, 1, 2])
    np.testing.assert_array_equal(pooled_relevance(joint, Pooling.LAST), [6, 7, 8])
    np.testing.assert_allclose(pooled_relevance(joint, Pooling.MEAN), [3, 4, 5])
