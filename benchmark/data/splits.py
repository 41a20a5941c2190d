"""Splits of a chronologically sorted interaction log (DESIGN.md, "Data contract").

Input arrays are sorted by (user, timestamp, file order), so "chronological order with
ties kept in file order" is simply array order within a user. Each function returns a
label per interaction: 0 train, 1 validation, 2 test.
"""

from __future__ import annotations

import numpy as np

from benchmark.errors import BenchmarkError

TRAIN, VALID, TEST = 0, 1, 2


def _user_bounds(user: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(user, minlength=n_users)
    ends = np.cumsum(counts)
    return ends - counts, counts


def leave_one_out(user: np.ndarray, n_users: int) -> np.ndarray:
    """Per user: last interaction test, second-to-last validation; users with < 3 stay in training."""
    starts, counts = _user_bounds(user, n_users)
    label = np.zeros(len(user), dtype=np.int8)
    eligible = counts >= 3
    last = starts[eligible] + counts[eligible] - 1
    label[last] = TEST
    label[last - 1] = VALID
    return label


def ratio(user: np.ndarray, n_users: int, valid_fraction: float, test_fraction: float) -> np.ndarray:
    """Per user, chronologically: the last ``test_fraction`` (>= 1 item) test, the ``valid_fraction`` before it validation."""
    if not (0 < valid_fraction and 0 < test_fraction and valid_fraction + test_fraction < 1):
        raise BenchmarkError("ratio split needs 0 < valid_fraction, 0 < test_fraction, and their sum < 1")
    starts, counts = _user_bounds(user, n_users)
    n_test = np.maximum(1, np.round(counts * test_fraction)).astype(np.int64)
    n_valid = np.maximum(1, np.round(counts * valid_fraction)).astype(np.int64)
    eligible = counts >= 3
    n_test[~eligible] = 0
    n_valid[~eligible] = 0
    n_train = counts - n_test - n_valid
    short = eligible & (n_train < 1)  # tiny histories: keep one item of each kind
    n_test[short], n_valid[short] = 1, 1
    n_train = counts - n_test - n_valid
    position = np.arange(len(user)) - np.repeat(starts, counts)
    bound_train = np.repeat(n_train, counts)
    bound_valid = np.repeat(n_train + n_valid, counts)
    return np.where(position < bound_train, TRAIN, np.where(position < bound_valid, VALID, TEST)).astype(np.int8)


def temporal(timestamp: np.ndarray, valid_fraction: float, test_fraction: float) -> tuple[np.ndarray, int, int]:
    """Global time cuts: interactions at or after ``t_test`` are test, from ``t_valid`` validation.

    The cuts are timestamps, so interactions sharing a timestamp fall on the same side and
    no training interaction is later than any validation or test interaction.
    Returns labels and the two cut timestamps.
    """
    if not (0 < valid_fraction and 0 < test_fraction and valid_fraction + test_fraction < 1):
        raise BenchmarkError("temporal split needs 0 < valid_fraction, 0 < test_fraction, and their sum < 1")
    ordered = np.sort(timestamp, kind="stable")
    n = len(ordered)
    t_valid = int(ordered[int(n * (1 - valid_fraction - test_fraction))])
    t_test = int(ordered[int(n * (1 - test_fraction))])
    if not (ordered[0] < t_valid < t_test):
        raise BenchmarkError(
            "temporal split: the time cuts coincide (too many interactions share a timestamp); "
            "change valid_fraction/test_fraction or use split=loo"
        )
    label = np.where(timestamp >= t_test, TEST, np.where(timestamp >= t_valid, VALID, TRAIN)).astype(np.int8)
    return label, t_valid, t_test
