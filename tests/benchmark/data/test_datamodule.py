"""RecDataModule batches against their definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.data.datamodule import EpochBatchSampler, LengthBucketSampler, RecDataModule
from benchmark.data.datasets import load_dataset
from benchmark.model import BatchSpec


@pytest.fixture(scope="module")
def data(tiny_ml: Path):
    return load_dataset("synthetic-ml", raw_dir=tiny_ml)


def _user_items(part) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for u, i in zip(part.user.tolist(), part.item.tolist()):
        out.setdefault(u, []).append(i)
    return out


def test_pairwise_epoch_covers_each_interaction_once_with_true_negatives(data) -> None:
    dm = RecDataModule(data, BatchSpec("pairwise", batch_size=97, num_negatives=3), seed=1)
    train = _user_items(data.train)
    pairs, first = [], []
    for batch in dm.train_dataloader():
        users, pos, neg = batch["users"].numpy(), batch["pos_items"].numpy(), batch["neg_items"].numpy()
        assert neg.shape == (len(users), 3)
        for u, p, ns in zip(users, pos, neg):
            pairs.append((u, p))
            assert not set(ns.tolist()) & set(train[u])
        first.append(neg)
    expected = sorted(zip(data.train.user.tolist(), data.train.item.tolist()))
    assert sorted((int(u), int(p)) for u, p in pairs) == expected
    again = [b["neg_items"].numpy() for b in dm.train_dataloader()]
    assert all((a == b).all() for a, b in zip(first, again))  # same epoch, same seed: same batches


def test_sequential_windows_cover_every_transition_once(data) -> None:
    length = 7
    dm = RecDataModule(data, BatchSpec("sequential", batch_size=64, history_length=length))
    pad = data.n_items
    seen = []
    for batch in dm.train_dataloader():
        for u, inp, tgt in zip(batch["users"].tolist(), batch["input_seq"].numpy(), batch["target_seq"].numpy()):
            real = inp != pad
            assert (tgt[~real] == pad).all() and (tgt[real] != pad).all()
            assert real[::-1].cumprod().sum() == real.sum()  # left-padded
            seen += [(u, a, b) for a, b in zip(inp[real], tgt[real])]
    train = _user_items(data.train)
    expected = [(u, s[j], s[j + 1]) for u, s in train.items() for j in range(len(s) - 1)]
    assert sorted(seen) == sorted(expected)


def test_bucketed_batches_cover_every_transition_once_with_equal_targets(data) -> None:
    length = 7
    plain = RecDataModule(data, BatchSpec("sequential", batch_size=16, history_length=length))
    dm = RecDataModule(data, BatchSpec("sequential", batch_size=16, history_length=length, bucket_batches=True))
    pad = data.n_items
    seen, targets, widths = [], [], []
    batches = list(dm.train_dataloader())
    assert len(batches) == len(list(plain.train_dataloader()))  # the same optimiser steps per epoch
    for batch in batches:
        inp, tgt = batch["input_seq"].numpy(), batch["target_seq"].numpy()
        assert (inp != pad).any(axis=0)[0]  # no all-padding leading column is left
        widths.append(inp.shape[1])
        targets.append(int((tgt != pad).sum()))
        for u, i, t in zip(batch["users"].tolist(), inp, tgt):
            real = i != pad
            seen += [(u, a, b) for a, b in zip(i[real], t[real])]
    train = _user_items(data.train)
    expected = [(u, s[j], s[j + 1]) for u, s in train.items() for j in range(len(s) - 1)]
    assert sorted(seen) == sorted(expected)
    assert max(targets) - min(targets) <= length + 1  # equal target counts, up to one window
    assert min(widths) < length  # short windows travel together, their padding trimmed


def test_length_bucket_sampler_shards_without_duplicates() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(1, 51, 1001)
    whole = LengthBucketSampler(targets, 32, seed=3)
    assert sorted(np.concatenate([b for _, _, b in whole]).tolist()) == list(range(1001))
    shards = [list(LengthBucketSampler(targets, 32, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # every process takes the same number of steps
    flat = np.concatenate([b for shard in shards for _, _, b in shard])
    assert sorted(flat.tolist()) == list(range(1001))
    again = LengthBucketSampler(targets, 32, seed=3)
    again.set_epoch(1)
    assert [b.tolist() for _, _, b in again] != [b.tolist() for _, _, b in whole]  # reshuffled per epoch


@pytest.mark.parametrize("stage", ["valid", "test"])
def test_eval_batches_mask_the_past_and_hold_out_the_future(data, stage: str) -> None:
    length = 5
    dm = RecDataModule(data, BatchSpec("pairwise", 64, history_length=length), eval_batch_size=33)
    loader = dm.val_dataloader() if stage == "valid" else dm.test_dataloader()
    train, valid, test = _user_items(data.train), _user_items(data.valid), _user_items(data.test)
    users_seen = []
    for batch in loader:
        for row, u in enumerate(batch["users"].tolist()):
            users_seen.append(u)
            past = train.get(u, []) + (valid.get(u, []) if stage == "test" else [])
            held = (valid if stage == "valid" else test)[u]
            seen = batch["seen_items"][batch["seen_rows"] == row].tolist()
            rel = batch["rel_items"][batch["rel_rows"] == row].tolist()
            assert sorted(seen) == sorted(past)
            assert rel == held
            hist = batch["history"][row].tolist()
            expected = past[-length:]
            assert hist == [data.n_items] * (length - len(expected)) + expected
    assert sorted(users_seen) == sorted((valid if stage == "valid" else test).keys())


def test_eval_shards_are_disjoint_and_complete() -> None:
    shards = [
        np.concatenate([idx for _, _, idx in EpochBatchSampler(101, 10, shuffle=False, seed=0, rank=r, world_size=2)]) for r in (0, 1)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(np.concatenate(shards).tolist()) == list(range(101))


def test_train_shards_are_complete_with_equal_batch_counts_and_reshuffle_per_epoch() -> None:
    samplers = [EpochBatchSampler(101, 10, shuffle=True, seed=0, rank=r, world_size=2) for r in (0, 1)]
    batches = [[idx for _, _, idx in s] for s in samplers]
    assert len(batches[0]) == len(batches[1]) == 6  # ceil(ceil(101 / 2) / 10)
    first = [np.concatenate(b) for b in batches]
    assert not set(first[0]) & set(first[1])
    assert sorted(np.concatenate(first).tolist()) == list(range(101))  # nothing dropped or repeated
    samplers[0].set_epoch(1)
    assert not np.array_equal(np.concatenate([idx for _, _, idx in samplers[0]]), first[0])


def test_valid_users_samples_validation_only_fixed_per_seed(data) -> None:
    spec = BatchSpec("pairwise", 64)
    full = RecDataModule(data, spec)
    n_valid, n_test = len(full.valid_set), len(full.test_set)
    assert n_valid > 10

    def users(dm: RecDataModule, loader: str) -> list[int]:
        return [u for b in getattr(dm, loader)() for u in b["users"].tolist()]

    sampled = RecDataModule(data, spec, seed=3, valid_users=10)
    chosen = users(sampled, "val_dataloader")
    assert len(chosen) == len(set(chosen)) == 10
    assert set(chosen) <= set(users(full, "val_dataloader"))
    assert len(users(sampled, "test_dataloader")) == n_test  # the test keeps every user
    assert users(RecDataModule(data, spec, seed=3, valid_users=10), "val_dataloader") == chosen
    assert users(RecDataModule(data, spec, seed=4, valid_users=10), "val_dataloader") != chosen
    assert len(users(RecDataModule(data, spec, valid_users=n_valid + 5), "val_dataloader")) == n_valid
    with pytest.raises(ValueError, match="valid_users"):
        RecDataModule(data, spec, valid_users=-1)
