"""Splits against their definitions: exact held-out items, no leakage, ties in file order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config import DataConfig
from benchmark.data.datasets import load_dataset
from benchmark.data.prepare import build
from benchmark.data.raw import RawData

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "splits" / "ml-latest-small.loo_split.tsv"


def _raw(rows: list[tuple[int, int, int]]) -> RawData:
    user, item, ts = (np.array(c, dtype=np.int64) for c in zip(*rows))
    return RawData(user, item, ts, np.full(len(rows), 4.0, dtype=np.float32), pd.DataFrame(index=pd.Index([], name="raw_id")))


def _prepare(rows: list[tuple[int, int, int]], **config: object):
    return build(_raw(rows), DataConfig(**config), name="t", source="synthetic", fp="x", default_kcore=0)


def _held_out(part, data) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for u, i in zip(data.user_ids[part.user], data.item_ids[part.item]):
        out.setdefault(int(u), []).append(int(i))
    return out


def test_loo_equals_reference_split_of_ml_latest_small(ml_small: Path) -> None:
    if not REFERENCE.is_file():
        pytest.skip("reference split not found")
    data = load_dataset("ml-latest-small", raw_dir=ml_small)
    reference = pd.read_csv(REFERENCE, sep="\t")
    valid, test = _held_out(data.valid, data), _held_out(data.test, data)
    assert len(reference) == 610 == len(valid) == len(test)
    for user, valid_item, test_item in reference.itertuples(index=False):
        assert valid[user] == [valid_item] and test[user] == [test_item], user
    assert len(data.train) == 100_836 - 2 * 610


def test_loo_breaks_timestamp_ties_by_file_order() -> None:
    # user 7: three items in the same second, then (earlier in the file) an older one
    rows = [(7, 30, 50), (7, 10, 100), (7, 12, 100), (7, 11, 100), (8, 1, 5), (8, 2, 6)]
    data = _prepare(rows)
    assert _held_out(data.test, data) == {7: [11]}
    assert _held_out(data.valid, data) == {7: [12]}
    train = _held_out(data.train, data)
    assert train[7] == [30, 10]  # chronological, ties in file order
    assert train[8] == [1, 2]  # fewer than 3 interactions: training only


def test_loo_duplicates_count_once_at_first_occurrence() -> None:
    rows = [(1, 5, 10), (1, 6, 20), (1, 5, 30), (1, 7, 40), (1, 8, 50)]
    data = _prepare(rows)
    assert data.stats["duplicates_removed"] == 1
    assert _held_out(data.train, data) == {1: [5, 6]}
    assert _held_out(data.valid, data) == {1: [7]} and _held_out(data.test, data) == {1: [8]}


def test_temporal_split_has_no_future_in_training(tiny_ml: Path) -> None:
    data = load_dataset("synthetic-ml", DataConfig(split="temporal"), raw_dir=tiny_ml)
    assert data.train.timestamp.max() < data.valid.timestamp.min()
    assert data.valid.timestamp.max() < data.test.timestamp.min()
    assert data.test.timestamp.min() == data.stats["test_cut"]
    assert data.valid.timestamp.min() == data.stats["valid_cut"]
    n = data.n_interactions
    assert abs(len(data.test) / n - 0.1) < 0.02 and abs(len(data.valid) / n - 0.1) < 0.02


def test_temporal_cut_keeps_equal_timestamps_together() -> None:
    rows = [(u, i, t) for u, i, t in zip(range(10), range(10), [1, 2, 3, 4, 5, 6, 7, 8, 8, 8])]
    data = _prepare(rows, split="temporal", valid_fraction=0.2, test_fraction=0.2)
    assert sorted(data.test.timestamp.tolist()) == [8, 8, 8]
    assert sorted(data.valid.timestamp.tolist()) == [7]


def test_ratio_split_per_user() -> None:
    rows = [(1, i, i) for i in range(20)] + [(2, i, i) for i in range(3)]
    data = _prepare(rows, split="ratio", valid_fraction=0.1, test_fraction=0.2)
    assert _held_out(data.test, data) == {1: [16, 17, 18, 19], 2: [2]}
    assert _held_out(data.valid, data) == {1: [14, 15], 2: [1]}


@pytest.mark.parametrize("split", ["loo", "temporal", "ratio"])
def test_splits_partition_the_log(split: str, tiny_ml: Path) -> None:
    data = load_dataset("synthetic-ml", DataConfig(split=split), raw_dir=tiny_ml)
    parts = [data.train, data.valid, data.test]
    keys = np.concatenate([p.user * data.n_items + p.item for p in parts])
    assert len(np.unique(keys)) == len(keys) == data.n_interactions
    if split != "temporal":  # per-user splits: held-out items are each user's latest
        last_train = pd.Series(data.train.timestamp).groupby(data.train.user).max()
        first_test = pd.Series(data.test.timestamp).groupby(data.test.user).min()
        assert (last_train.reindex(first_test.index) <= first_test).all()


def test_min_rating_and_kcore() -> None:
    rows = [(u, i, u * 10 + i) for u in range(1, 6) for i in range(1, 5)] + [(9, 1, 1), (9, 99, 2)]
    raw = _raw(rows)
    raw.rating[:] = 4.0
    raw.rating[0] = 1.0  # user 1's first rating
    data = build(raw, DataConfig(min_rating=3.0, kcore=3), name="t", source="synthetic", fp="x", default_kcore=0)
    users = set(data.user_ids.tolist())
    assert users == {1, 2, 3, 4, 5}  # user 9 (2 items) removed by the 3-core
    assert 99 not in set(data.item_ids.tolist())  # item 99 (1 user) removed
    counts_u = np.bincount(np.concatenate([data.train.user, data.valid.user, data.test.user]))
    counts_i = np.bincount(np.concatenate([data.train.item, data.valid.item, data.test.item]))
    assert counts_u.min() >= 3 and counts_i.min() >= 3
    assert data.n_interactions == 5 * 4 - 1
