"""k-NN precision and recall (Kynkäänniemi et al. 2019) on distributions with known overlap."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.manifold import manifold_coverage, precision_recall
from evaluation.neighbours import nearest_neighbours
from synth.errors import DataError


def test_identical_distributions_score_near_one():
    rng = np.random.default_rng(0)
    result = precision_recall(rng.standard_normal((600, 4)), rng.standard_normal((600, 4)), k=3)
    assert result.precision > 0.85 and result.recall > 0.85


def test_disjoint_distributions_score_near_zero():
    rng = np.random.default_rng(1)
    result = precision_recall(rng.standard_normal((300, 4)), rng.standard_normal((300, 4)) + 20.0, k=3)
    assert result.precision == 0.0 and result.recall == 0.0


def test_mode_collapse_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((600, 2))
    collapsed = 0.1 * rng.standard_normal((600, 2)) + np.array([1.0, 0.0])  # one small region of the real data
    result = precision_recall(real, collapsed, k=3)
    # The collapsed points all fall among the same few dozen real balls, so precision varies with where those
    # happen to leave holes; recall counts the real points near that region only (about 1.5% of them).
    assert result.precision > 0.6 and result.recall < 0.1


def test_coverage_is_exact_on_a_hand_made_example():
    support = np.array([[0.0], [1.0], [10.0], [12.0]])  # 1-NN radii: 1, 1, 2, 2
    query = np.array([[0.5], [-1.0], [-1.1], [11.0], [14.0], [5.0]])
    np.testing.assert_array_equal(manifold_coverage(query, support, k=1), [True, True, False, True, True, False])


def test_batched_neighbours_match_brute_force():
    rng = np.random.default_rng(3)
    q, r = rng.standard_normal((37, 5)), rng.standard_normal((23, 5))
    dist, idx = nearest_neighbours(q, r, k=3, batch_size=8)
    brute = np.linalg.norm(q[:, None] - r[None], axis=-1)
    np.testing.assert_array_equal(idx, np.argsort(brute, axis=1)[:, :3])
    np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :3], rtol=1e-12)


def test_too_few_records_for_k_is_refused():
    with pytest.raises(DataError, match="k=3"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
