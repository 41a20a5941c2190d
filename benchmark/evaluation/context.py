"""Per-dataset statistics for the beyond-accuracy metrics (``EvalContext``), built once from
``PreparedData``: item popularity, head/tail items, active users, item features, item groups."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from benchmark.data.prepare import PreparedData


HEAD_FRACTION = 0.2  # head items: the top 20% of items by training interactions
ACTIVE_FRACTION = 0.2  # active users: the top 20% of users by training interactions
AUTO_GROUP_COLUMNS = ("state", "brand")  # item groupings used by default when a dataset has them
NO_CATEGORY = "(none)"


def _top_share(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the first ceil(fraction * n) entries by (count desc, index asc)."""
    n = len(counts)
    top = np.zeros(n, dtype=bool)
    top[np.lexsort((np.arange(n), -counts))[: math.ceil(fraction * n)]] = True
    return top


def category_multi_hot(categories: Iterable[object], n_items: int) -> tuple[np.ndarray, list[str]]:
    """[n_items, n_categories + 1] float32 multi-hot of each item's categories; items with none
    get the extra ``(none)`` column, so two uncategorised items are alike (distance 0) and differ
    fully from every categorised one (distance 1)."""
    lists = [[] if c is None or (isinstance(c, float) and math.isnan(c)) else [str(x) for x in c] for c in categories]
    vocab = sorted({c for row in lists for c in row}) + [NO_CATEGORY]
    index = {c: j for j, c in enumerate(vocab)}
    rows = [i for i, row in enumerate(lists) for _ in (row or [NO_CATEGORY])]
    cols = [index[c] for row in lists for c in (row or [NO_CATEGORY])]
    features = np.zeros((n_items, len(vocab)), dtype=np.float32)
    features[rows, cols] = 1.0
    return features, vocab


@dataclass
class EvalContext:
    """What beyond-accuracy metrics need about a dataset, built once from ``PreparedData``.

    ``item_train_users`` [n_items]: distinct training users per item; ``item_train_interactions``
    [n_items]: training interactions per item (the same unless the data keep repeated pairs,
    ``repeats=keep``); ``user_train_counts`` [n_users] training interactions per user; ``item_features`` [n_items, d]
    for ILD (category multi-hot by default) or None; ``item_group`` [n_items] group index
    (with ``group_names`` and ``group_column``) for the group-exposure disparity, or None.
    """

    n_users: int
    n_items: int
    item_train_users: np.ndarray
    user_train_counts: np.ndarray
    item_train_interactions: np.ndarray | None = None
    item_features: np.ndarray | None = None
    item_group: np.ndarray | None = None
    group_names: list[str] = field(default_factory=list)
    group_column: str | None = None
    features_source: str | None = None

    @classmethod
    def from_data(cls, data: PreparedData, *, features: str | None = "categories", item_group: str | None = "auto") -> EvalContext:
        """``features``: "categories" (multi-hot of ``items["categories"]``), a path to a ``.npy``
        [n_items, d] array in internal item order (e.g. cached text embeddings), or None.
        ``item_group``: an item column name, "auto" (the first of state/brand present) or None."""
        from benchmark.errors import BenchmarkError

        n_users, n_items = data.n_users, data.n_items
        distinct_items = np.unique(data.train.user * n_items + data.train.item) % n_items
        context = cls(
            n_users=n_users,
            n_items=n_items,
            item_train_users=np.bincount(distinct_items, minlength=n_items).astype(np.int64),
            user_train_counts=np.bincount(data.train.user, minlength=n_users).astype(np.int64),
            item_train_interactions=np.bincount(data.train.item, minlength=n_items).astype(np.int64),
        )
        if features == "categories":
            if "categories" in data.items:
                context.item_features, _ = category_multi_hot(data.items["categories"], n_items)
                context.features_source = "categories"
        elif features:
            path = Path(features)
            if not path.is_file():
                raise BenchmarkError(f"ild_features: {path} not found (expected 'categories' or a .npy [n_items, d] file)")
            array = np.load(path)
            if array.ndim != 2 or array.shape[0] != n_items:
                raise BenchmarkError(f"ild_features: {path} holds shape {array.shape}; expected ({n_items}, d) in internal item order")
            context.item_features, context.features_source = array.astype(np.float32), str(path)
        column = item_group
        if column == "auto":
            column = next((c for c in AUTO_GROUP_COLUMNS if c in data.items), None)
        if column:
            if column not in data.items:
                raise BenchmarkError(f"eval_item_group: dataset {data.name!r} has no item column {column!r}; columns: {list(data.items.columns)}")
            values = data.items[column]
            if values.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
                raise BenchmarkError(f"eval_item_group: column {column!r} holds lists; choose a single-valued column")
            codes, names = pd_factorize(values)
            context.item_group, context.group_names, context.group_column = codes, names, column
        return context

    @property
    def is_tail(self) -> np.ndarray:
        counts = self.item_train_users if self.item_train_interactions is None else self.item_train_interactions
        return ~_top_share(counts, HEAD_FRACTION)

    @property
    def is_active(self) -> np.ndarray:
        return _top_share(self.user_train_counts, ACTIVE_FRACTION)

    @property
    def self_information(self) -> np.ndarray:
        """-log2(n_train_users(i) / n_users); an item never interacted with counts as 1 user."""
        return -np.log2(np.maximum(self.item_train_users, 1) / self.n_users)

    def metric_inputs(self) -> dict[str, object]:
        inputs: dict[str, object] = {
            "n_items": self.n_items,
            "self_information": torch.from_numpy(self.self_information),
            "is_tail": torch.from_numpy(self.is_tail),
            "is_active": torch.from_numpy(self.is_active),
        }
        if self.item_features is not None:
            inputs["features"] = torch.from_numpy(self.item_features)
        if self.item_group is not None:
            inputs["item_group"] = torch.from_numpy(self.item_group)
        return inputs


def pd_factorize(values: object) -> tuple[np.ndarray, list[str]]:
    """Group codes 0..G-1 (sorted by value); missing values form their own last group."""
    import pandas as pd

    series = pd.Series(values).astype("object")
    missing = series.isna().to_numpy()
    codes, uniques = pd.factorize(series.where(~missing, None).astype(str).where(~missing, None), sort=True)
    names = [str(u) for u in uniques]
    if missing.any():
        codes = np.where(missing, len(names), codes)
        names.append("(missing)")
    return codes.astype(np.int64), names

