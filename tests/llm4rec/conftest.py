"""Fixtures of the LLM4Rec tests: tiny hand-made item features and item tables, one thread.

Tensors here are tiny: torch's intra-op threads only add synchronisation (on a shared CPU
they make a step 10x slower), so the package's tests run single-threaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.data.features import Categorical, ItemFeatures

N_USERS, N_ITEMS = 8, 12


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_features(n_items: int = N_ITEMS, *, seed: int = 0, text_missing: tuple[int, ...] = (), with_image: bool = False) -> ItemFeatures:
    """Text (16 dims), one categorical field (3 values), a numerical year, optional image."""
    rng = np.random.default_rng(seed)
    text_mask = np.ones(n_items, dtype=bool)
    text_mask[list(text_missing)] = False
    text = rng.standard_normal((n_items, 16)).astype(np.float32) * text_mask[:, None]
    lists = [[i % 3] if i % 4 else [i % 3, (i + 1) % 3] for i in range(n_items)]
    ptr = np.concatenate([[0], np.cumsum([len(v) for v in lists])]).astype(np.int64)
    index = np.array([x for v in lists for x in v], dtype=np.int64)
    feats = ItemFeatures(
        "tiny", "fp", n_items, text=text, text_mask=text_mask,
        categorical={"categories": Categorical(["Pizza", "Sushi", "Tacos"], ptr, index)},
        numerical=rng.standard_normal((n_items, 2)).astype(np.float32)[:, :1], numerical_names=["year"],
        numerical_mask=np.ones((n_items, 1), dtype=bool),
    )  # fmt: skip
    if with_image:
        feats.image = rng.standard_normal((n_items, 8)).astype(np.float32)
        feats.image_mask = np.ones(n_items, dtype=bool)
    return feats


def make_items(n_items: int = N_ITEMS) -> pd.DataFrame:
    cats = ["Pizza", "Sushi", "Tacos"]
    return pd.DataFrame(
        {"raw_id": [f"b{i}" for i in range(n_items)], "title": [f"Place {i}" for i in range(n_items)],
         "categories": [[cats[i % 3]] for i in range(n_items)]}
    )  # fmt: skip


def cycle(start: int, length: int, n_items: int = N_ITEMS) -> list[int]:
    """Planted pattern: item i is always followed by item (i + 1) mod n_items."""
    return [(start + step) % n_items for step in range(length)]


def cycle_sequences(n_users: int = N_USERS) -> dict[int, list[int]]:
    return {user: cycle(3 * user, 20 + user) for user in range(n_users)}


def train_pairs(sequences: dict[int, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    users = np.array([u for u, s in sequences.items() for _ in s], dtype=np.int64)
    items = np.array([i for s in sequences.values() for i in s], dtype=np.int64)
    return users, items
