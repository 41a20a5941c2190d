"""One LightningDataModule for every model (batch formats: benchmark/model.py).

Batches are built whole from numpy arrays (no per-example Python), so data loading is
never the bottleneck. A sampler yields ``(epoch, batch_number, indices)`` keys; random
negatives are drawn from a generator seeded by (seed, epoch, batch, rank), so a run is
reproducible whatever the number of loader workers. Under DDP each process gets a
disjoint shard: training shards have equal length (DDP needs equal step counts);
evaluation shards are the users ``rank::world_size`` with no padding, so no user is
evaluated twice or dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from benchmark.data.prepare import Interactions, PreparedData
from benchmark.model import BatchSpec


@dataclass
class CSR:
    """Per-user item lists: items of user u are ``items[ptr[u]:ptr[u+1]]`` (chronological)."""

    ptr: np.ndarray
    items: np.ndarray

    @classmethod
    def from_interactions(cls, log: Interactions, n_users: int) -> CSR:
        order = np.argsort(log.user, kind="stable")  # keeps chronological order within a user
        counts = np.bincount(log.user, minlength=n_users)
        return cls(np.concatenate([[0], np.cumsum(counts)]), log.item[order])

    def lengths(self, users: np.ndarray) -> np.ndarray:
        return self.ptr[users + 1] - self.ptr[users]

    def gather(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat (row, item) pairs of the given users' lists."""
        lengths = self.lengths(users)
        rows = np.repeat(np.arange(len(users)), lengths)
        offsets = np.repeat(self.ptr[users] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return rows, self.items[offsets + np.arange(len(rows))]

    def last(self, users: np.ndarray, length: int, pad: int) -> np.ndarray:
        """The last ``length`` items of each user's list, left-padded with ``pad``."""
        end = self.ptr[users + 1]
        index = end[:, None] - length + np.arange(length)
        real = index >= self.ptr[users][:, None]
        if len(self.items) == 0:
            return np.full((len(users), length), pad, dtype=np.int64)
        return np.where(real, self.items[np.clip(index, 0, len(self.items) - 1)], pad)


class EpochBatchSampler(Sampler):
    """Yields ``(epoch, batch_number, indices)``; Lightning calls ``set_epoch`` every epoch."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[np.ndarray]:
        if not self.shuffle:  # evaluation: plain batches; ranks may differ by one batch
            shard = np.arange(self.n)[self.rank :: self.world_size]
            return [shard[i : i + self.batch_size] for i in range(0, len(shard), self.batch_size)]
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        shard = order[self.rank :: self.world_size]
        # Training: every rank takes the same number of near-equal batches (DDP needs equal
        # step counts) and no example is dropped or repeated, so an epoch is exactly the data.
        n_batches = -(-(-(-self.n // self.world_size)) // self.batch_size)
        return np.array_split(shard, n_batches) if len(shard) else []

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        for number, indices in enumerate(self._batches()):
            yield self.epoch, number, indices

    def __len__(self) -> int:
        return len(self._batches())


class LengthBucketSampler(EpochBatchSampler):
    """Training batches of windows of similar length, each holding about the same number of
    targets, for sequential models on sparse data (most windows short, mostly padding).

    Per epoch: a seeded permutation of the windows is cut into chunks of ``CHUNK_BATCHES``
    batches, each chunk sorted by target count (stable), and the arrangement split into
    ``n_batches`` pieces of near-equal target count (the same number of batches, hence of
    optimiser steps, as random batches of ``batch_size`` windows, and the same expected
    targets per step); the batches are then shuffled. Every window appears exactly once per
    epoch; under DDP rank r takes batches r, r + world, ... (the count is a multiple of the
    world size, as in ``EpochBatchSampler``).
    """

    CHUNK_BATCHES = 50

    def __init__(self, targets: np.ndarray, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(len(targets), batch_size, shuffle=True, seed=seed, rank=rank, world_size=world_size)
        self.targets = np.asarray(targets, dtype=np.int64)

    def _batches(self) -> list[np.ndarray]:
        if self.n == 0:
            return []
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n)
        chunk = self.batch_size * self.CHUNK_BATCHES
        arranged = np.concatenate(
            [part[np.argsort(self.targets[part], kind="stable")] for part in np.split(order, range(chunk, self.n, chunk))]
        )
        per_rank = -(-(-(-self.n // self.world_size)) // self.batch_size)
        n_batches = min(per_rank * self.world_size, self.n)
        total = np.cumsum(np.maximum(self.targets[arranged], 1))
        cuts = np.searchsorted(total, total[-1] * np.arange(1, n_batches) / n_batches, side="left") + 1
        if len(np.unique(cuts)) != len(cuts) or (len(cuts) and (cuts[0] < 1 or cuts[-1] >= self.n)):
            batches = np.array_split(arranged, n_batches)  # degenerate lengths: equal window counts
        else:
            batches = np.split(arranged, cuts)
        batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches[self.rank :: self.world_size]


def _contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Membership test against a sorted unique array (binary search; np.isin re-sorts every call)."""
    if len(sorted_keys) == 0:
        return np.zeros(queries.shape, dtype=bool)
    position = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    return sorted_keys[position] == queries


class PairSet:
    """Membership of (user, item) pairs, for negative sampling.

    A dense boolean table when it fits in ``table_limit`` bytes (one random read per query:
    negative sampling on ml-latest-small costs a few ms per epoch instead of ~0.1 s), else
    binary search on the sorted keys (memory-bounded for ML-25M-sized catalogues).
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, table_limit: int = 64 * 2**20) -> None:
        self.n_items = n_items
        keys = np.unique(np.asarray(users, dtype=np.int64) * n_items + np.asarray(items, dtype=np.int64))
        self.table: np.ndarray | None = None
        self.keys: np.ndarray | None = None
        if n_users * n_items <= table_limit:
            self.table = np.zeros(n_users * n_items, dtype=bool)
            self.table[keys] = True
        else:
            self.keys = keys

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Elementwise: is (users, items) a known pair? (broadcasts like numpy)"""
        queries = users * self.n_items + items
        if self.table is not None:
            return self.table[queries]
        return _contains(self.keys, queries)


def _tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in batch.items()}


class PairwiseDataset(Dataset):
    """(user, positive, negatives): one row per training interaction; negatives uniform over unseen items."""

    def __init__(self, train: Interactions, n_items: int, num_negatives: int, seed: int, rank: int = 0) -> None:
        self.user, self.item = train.user, train.item
        self.n_items, self.num_negatives, self.seed, self.rank = n_items, num_negatives, seed, rank
        self.positives = PairSet(train.user, train.item, int(train.user.max(initial=-1)) + 1, n_items)

    def __len__(self) -> int:
        return len(self.user)

    def __getitem__(self, key: tuple[int, int, np.ndarray]) -> dict[str, torch.Tensor]:
        epoch, number, idx = key
        rng = np.random.default_rng([self.seed, epoch, number, self.rank])
        users = self.user[idx]
        negatives = rng.integers(0, self.n_items, (len(idx), self.num_negatives))
        rows, cols = np.nonzero(self.positives.contains(users[:, None], negatives))
        for _ in range(100):  # resample collisions with positives; bounded for near-complete users
            if not len(rows):
                break
            negatives[rows, cols] = rng.integers(0, self.n_items, len(rows))
            still = self.positives.contains(users[rows], negatives[rows, cols])  # re-check only the resampled
            rows, cols = rows[still], cols[still]
        return _tensors({"users": users, "pos_items": self.item[idx], "neg_items": negatives})


class SequenceDataset(Dataset):
    """Windows of each user's chronological training sequence: every transition appears once.

    A user with n training items gives ceil((n - 1) / L) windows of up to L + 1 items,
    cut from the end backwards; inputs are the first L of a window, targets the last L.
    """

    def __init__(self, train: Interactions, n_users: int, n_items: int, length: int, *, trim: bool = False) -> None:
        """``trim``: drop the leading columns that are padding in every row of a batch
        (left padding never changes a model's output, so only the cost changes)."""
        self.trim = trim
        csr = CSR.from_interactions(train, n_users)
        counts = np.diff(csr.ptr)
        windows = np.where(counts >= 2, (counts - 2) // length + 1, 0)
        owner = np.repeat(np.arange(n_users), windows)
        rank = np.arange(windows.sum()) - np.repeat(np.cumsum(windows) - windows, windows)
        end = csr.ptr[owner] + counts[owner] - rank * length  # exclusive end of each window
        index = end[:, None] - (length + 1) + np.arange(length + 1)
        real = index >= csr.ptr[owner][:, None]
        tokens = np.where(real, csr.items[np.clip(index, 0, None)], n_items)
        self.users, self.pad = owner, n_items
        self.input_seq = tokens[:, :-1]
        self.target_seq = np.where(real[:, :-1], tokens[:, 1:], n_items)  # no target for padded inputs

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, key: tuple[int, int, np.ndarray]) -> dict[str, torch.Tensor]:
        _, _, idx = key
        inputs, targets = self.input_seq[idx], self.target_seq[idx]
        if self.trim and len(idx):
            first = int(np.argmax((inputs != self.pad).any(axis=0)))
            inputs, targets = inputs[:, first:], targets[:, first:]
        return _tensors({"users": self.users[idx], "input_seq": inputs, "target_seq": targets})

    @property
    def targets_per_window(self) -> np.ndarray:
        return (self.target_seq != self.pad).sum(axis=1)


class EvalDataset(Dataset):
    """Users to rank with their history, the items to mask and the relevant held-out items."""

    def __init__(self, history: CSR, seen: CSR, relevant: CSR, n_items: int, history_length: int) -> None:
        self.history, self.seen, self.relevant = history, seen, relevant
        self.users = np.flatnonzero(relevant.lengths(np.arange(len(relevant.ptr) - 1)) > 0)
        self.n_items, self.history_length = n_items, max(history_length, 1)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, key: tuple[int, int, np.ndarray]) -> dict[str, torch.Tensor]:
        _, _, idx = key
        users = self.users[idx]
        seen_rows, seen_items = self.seen.gather(users)
        rel_rows, rel_items = self.relevant.gather(users)
        return _tensors(
            {
                "users": users,
                "history": self.history.last(users, self.history_length, self.n_items),
                "seen_rows": seen_rows,
                "seen_items": seen_items,
                "rel_rows": rel_rows,
                "rel_items": rel_items,
            }
        )


def _relevant(held_out: Interactions, seen: CSR, n_users: int, n_items: int) -> CSR:
    """Held-out items the user has not interacted with before (those are masked, so never rankable)."""
    seen_keys = np.unique(np.repeat(np.arange(n_users), np.diff(seen.ptr)) * n_items + seen.items)
    new = ~_contains(seen_keys, held_out.user * n_items + held_out.item)
    return CSR.from_interactions(held_out.take(new), n_users)


class RecDataModule(L.LightningDataModule):
    """Serves training batches of the kind the model asks for, and evaluation batches."""

    def __init__(
        self, data: PreparedData, spec: BatchSpec, *, eval_batch_size: int = 1024, seed: int = 0, num_workers: int = 0,
        valid_users: int = 0,
    ) -> None:
        """``valid_users`` > 0: validation (early stopping, sweeps) ranks for a fixed seeded sample of
        that many validation users instead of all of them (for models whose evaluation is costly,
        e.g. LLM decoding); the test set always holds every user."""
        super().__init__()
        if valid_users < 0:
            raise ValueError(f"valid_users must be >= 0, got {valid_users}")
        self.data, self.spec = data, spec
        self.eval_batch_size, self.seed, self.num_workers = eval_batch_size, seed, num_workers
        n_users, n_items = data.n_users, data.n_items
        train_csr = CSR.from_interactions(data.train, n_users)
        before_test = Interactions(*(np.concatenate([getattr(data.train, c), getattr(data.valid, c)]) for c in ("user", "item", "timestamp")))
        # train items precede validation items for every split, so this stays chronological
        before_test_csr = CSR.from_interactions(before_test, n_users)
        length = spec.history_length
        self.valid_set = EvalDataset(train_csr, train_csr, _relevant(data.valid, train_csr, n_users, n_items), n_items, length)
        self.test_set = EvalDataset(before_test_csr, before_test_csr, _relevant(data.test, before_test_csr, n_users, n_items), n_items, length)
        if 0 < valid_users < len(self.valid_set):
            sample = np.random.default_rng([seed, 23]).choice(len(self.valid_set), valid_users, replace=False)
            self.valid_set.users = self.valid_set.users[np.sort(sample)]
        self._train_set: Dataset | None = None

    @property
    def train_set(self) -> Dataset:
        if self._train_set is None:
            d, spec = self.data, self.spec
            if spec.kind == "pairwise":
                self._train_set = PairwiseDataset(d.train, d.n_items, spec.num_negatives, self.seed, self._rank()[0])
            elif spec.kind == "sequential":
                self._train_set = SequenceDataset(d.train, d.n_users, d.n_items, spec.history_length, trim=spec.bucket_batches)
            else:
                raise ValueError(f"unknown training batch kind {spec.kind!r}")
        return self._train_set

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        rank, world = self._rank()
        sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world)
        return DataLoader(
            dataset, sampler=sampler, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_set
        if self.spec.kind == "sequential" and self.spec.bucket_batches:
            rank, world = self._rank()
            sampler = LengthBucketSampler(dataset.targets_per_window, self.spec.batch_size, seed=self.seed, rank=rank, world_size=world)
            return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
        return self._loader(dataset, self.spec.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.valid_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)
