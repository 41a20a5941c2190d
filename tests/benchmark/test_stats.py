"""The statistics of the validity rules, against hand computations and known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.stats import hierarchical_bootstrap, holm, paired_tests, seed_test


def test_holm_against_a_hand_computation() -> None:
    # sorted p: 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06 (monotone), 0.5 (x1) = 0.5
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.4, 0.6]) == pytest.approx([0.8, 0.8])  # capped at 1 after monotonicity: min(1, 0.8), max(0.8, 0.6)
    adjusted = holm([0.01, math.nan, 0.02])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_seed_test_is_the_paired_t_test_over_seed_means() -> None:
    a, b = [0.040, 0.045, 0.043], [0.046, 0.047, 0.049]
    assert seed_test(a, b) == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert math.isnan(seed_test([0.1], [0.2])) and seed_test(a, a) == 1.0


def test_hierarchical_bootstrap_is_wider_than_the_pooled_user_test() -> None:
    """Three seeds whose user-level differences are precise but whose seed means disagree:
    pooling 3 x 500 users calls the difference certain; the seed level does not."""
    rng = np.random.default_rng(1)
    parts = [rng.normal(shift, 0.05, 500) for shift in (0.03, -0.01, 0.01)]
    pooled = paired_tests(np.zeros(1500), np.concatenate(parts))[0]
    result = hierarchical_bootstrap(parts, n_resamples=4000, seed=0)
    assert pooled < 1e-6
    assert result["mean"] == pytest.approx(np.mean([p.mean() for p in parts]))
    assert result["ci_low"] < 0 < result["ci_high"] and result["p"] > 0.1


def test_hierarchical_bootstrap_finds_a_consistent_difference() -> None:
    rng = np.random.default_rng(2)
    parts = [rng.normal(0.02, 0.05, 400) + rng.normal(0, 0.001) for _ in range(5)]
    result = hierarchical_bootstrap(parts, n_resamples=2000, seed=0)
    assert 0.01 < result["ci_low"] < result["mean"] < result["ci_high"] < 0.03 and result["p"] == pytest.approx(1 / 2000)
