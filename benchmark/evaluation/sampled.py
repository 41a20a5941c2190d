"""The sampled-negative protocol (``--eval-protocol sampled``): per-user negatives drawn once
and saved, and the candidate restriction each scored batch goes through."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class SampledNegatives:
    """Per-user sampled negatives for ``--eval-protocol sampled``: ``users`` [n] sorted internal
    ids, ``negatives`` [n, N] item ids (-1 where a user has fewer than N eligible items)."""

    users: np.ndarray
    negatives: np.ndarray
    sampler: str
    seed: int

    def lookup(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, items) of the negatives of a batch's users."""
        keys = torch.from_numpy(self.users).to(users.device)
        position = torch.searchsorted(keys, users).clamp(max=len(keys) - 1)
        if not bool((keys[position] == users).all()):
            raise ValueError("SampledNegatives: a batch user has no sampled negatives")
        negatives = torch.from_numpy(self.negatives).to(users.device)[position]
        rows = torch.arange(len(users), device=users.device).unsqueeze(1).expand_as(negatives)
        keep = negatives >= 0
        return rows[keep], negatives[keep]

    def save(self, path: Path, raw_user_ids: np.ndarray | None = None) -> None:
        extra = {"raw_user_ids": raw_user_ids[self.users].astype(str)} if raw_user_ids is not None else {}
        np.savez_compressed(path, users=self.users, negatives=self.negatives, sampler=self.sampler, seed=self.seed, **extra)

    @classmethod
    def load(cls, path: Path) -> SampledNegatives:
        with np.load(path) as npz:
            return cls(npz["users"], npz["negatives"], str(npz["sampler"]), int(npz["seed"]))


def sample_negatives(
    users: np.ndarray, excluded: list, n_items: int, n: int, *, sampler: str = "uniform", popularity: np.ndarray | None = None, seed: int = 0
) -> SampledNegatives:
    """Draw ``n`` distinct negatives per user, never an item in any of the ``excluded`` CSRs
    (seen and relevant items), uniformly or in proportion to training popularity. Deterministic
    in (users, seed); users are processed in fixed chunks."""
    from benchmark.data.datamodule import _contains

    if sampler not in ("uniform", "popularity"):
        raise ValueError(f"eval_sampler must be 'uniform' or 'popularity', got {sampler!r}")
    users = np.sort(np.asarray(users, dtype=np.int64))
    rng = np.random.default_rng([seed, 20_24])
    if sampler == "popularity":
        assert popularity is not None
        p = popularity.astype(np.float64) / max(popularity.sum(), 1)
        draw = lambda size: rng.choice(n_items, size=size, p=p)  # noqa: E731
    else:
        draw = lambda size: rng.integers(0, n_items, size)  # noqa: E731
    out = np.empty((len(users), n), dtype=np.int64)
    for start in range(0, len(users), 4096):
        chunk = users[start : start + 4096]
        parts = [csr.gather(chunk) for csr in excluded]
        keys = np.unique(np.concatenate([r * n_items + i for r, i in parts]))
        local = np.arange(len(chunk))[:, None] * n_items
        neg = draw((len(chunk), n))
        for _ in range(100):
            bad = _contains(keys, local + neg) | _repeats(neg)
            if not bad.any():
                break
            neg[bad] = draw(int(bad.sum()))
        else:
            neg[_contains(keys, local + neg) | _repeats(neg)] = -1
        out[start : start + len(chunk)] = neg
    return SampledNegatives(users, out, sampler, seed)


def _repeats(rows: np.ndarray) -> np.ndarray:
    """Entries equal to an earlier entry of their row."""
    order = np.argsort(rows, axis=1, kind="stable")
    ordered = np.take_along_axis(rows, order, 1)
    repeat_sorted = np.zeros(rows.shape, dtype=bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, 1)
    return repeat


def keep_candidates(scores: torch.Tensor, batch: dict[str, torch.Tensor], negatives: SampledNegatives) -> None:
    """Sampled protocol: every item but the batch's relevant items and sampled negatives -> -inf."""
    rows, items = negatives.lookup(batch["users"])
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep[rows, items] = True
    keep[batch["rel_rows"], batch["rel_items"]] = True
    scores.masked_fill_(~keep, float("-inf"))

