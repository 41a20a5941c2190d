"""Significance tests whose unit is independent (DESIGN.md, validity rules).

- Within one run, users are the unit: ``paired_tests`` pairs two runs' per-user values.
- Across runs, seeds are the unit: ``seed_test`` pairs two models' per-seed means (a paired
  t-test with n_seeds - 1 degrees of freedom), and ``hierarchical_bootstrap`` resamples
  seeds, then users within each resampled seed, for a confidence interval and p-value of
  the mean difference that respects both levels. Pooling user x seed pairs as if they were
  independent (pseudo-replication) is what neither of them does.
- Many metrics or variants compared at once: ``holm`` adjusts the family's p-values
  (Holm 1979, strong family-wise error control); reports keep the raw p beside it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np


def paired_tests(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(paired t-test p, Wilcoxon signed-rank p), two-sided; 1.0 where the samples do not differ."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = b - a
    if len(diff) < 2 or np.all(diff == 0):
        return 1.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_p = float(stats.ttest_rel(b, a).pvalue)
        w_p = float(stats.wilcoxon(b, a, zero_method="wilcox").pvalue)
    return (1.0 if math.isnan(t_p) else t_p), (1.0 if math.isnan(w_p) else w_p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out.tolist()
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()


def seed_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p over seeds (a[i] and b[i] are one seed's means); NaN below 2 seeds."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"seed_test: {len(x)} and {len(y)} seeds")
    if len(x) < 2:
        return math.nan
    diff = y - x
    if np.all(diff == diff[0]):
        return 1.0 if diff[0] == 0 else 0.0  # no spread: the difference is the same on every seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.ttest_rel(y, x).pvalue)


def hierarchical_bootstrap(
    per_seed_differences: Sequence[np.ndarray], *, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> dict[str, float]:
    """Mean paired difference (B - A) over seeds and users, with a two-level bootstrap.

    ``per_seed_differences[s]``: the per-user differences within seed s (users paired in the
    seed). Each resample draws seeds with replacement, then users with replacement within
    each drawn seed, and averages the seed means. Returns ``mean``, ``ci_low``, ``ci_high``
    and a two-sided ``p`` (twice the share of resampled means on the far side of 0, at
    least 1 / n_resamples).
    """
    parts = [np.asarray(d, dtype=np.float64) for d in per_seed_differences if len(d)]
    if not parts:
        raise ValueError("hierarchical_bootstrap: no paired differences")
    rng = np.random.default_rng(seed)
    seed_means = np.array([p.mean() for p in parts])
    observed = float(seed_means.mean())
    means = np.zeros(n_resamples)
    drawn = rng.integers(0, len(parts), size=(n_resamples, len(parts)))
    for s, part in enumerate(parts):
        picks = (drawn == s).sum(axis=1)  # how often each resample drew seed s
        owner = np.repeat(np.arange(n_resamples), picks)
        chunk = max(1, 4_000_000 // len(part))  # bounded memory: user draws in chunks
        for start in range(0, len(owner), chunk):
            rows = owner[start : start + chunk]
            resampled = part[rng.integers(0, len(part), size=(len(rows), len(part)))].mean(axis=1)
            means += np.bincount(rows, weights=resampled, minlength=n_resamples)
    means /= len(parts)
    alpha = (1 - confidence) / 2
    far = np.mean(means <= 0) if observed > 0 else np.mean(means >= 0)
    return {
        "mean": observed,
        "ci_low": float(np.quantile(means, alpha)),
        "ci_high": float(np.quantile(means, 1 - alpha)),
        "p": float(min(1.0, max(2 * far, 1 / n_resamples))),
        "n_seeds": float(len(parts)),
    }
