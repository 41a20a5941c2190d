"""Full-ranking evaluation: mask seen items, take the top K, update the metrics.

Models only score (or, if generative, decode) items; this module owns everything after
that (DESIGN.md, "The model contract"), so every model is measured by the same code.
Ties in scores are broken by the lower item index, exactly, wherever they fall.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from benchmark.metrics import ACCURACY_METRICS, RankedBatch, ValidRatio

if TYPE_CHECKING:
    from benchmark.model import RecModule

__all__ = ["Evaluator", "mask_seen", "top_k"]

# Largest number of score entries the tie fix-up of `top_k` handles at once (bounds its
# temporary memory to a few hundred MiB whatever the batch size).
_TIE_CHUNK = 1 << 24
# First prefix of columns searched for the lowest-index tied items (see `_fill_ties`).
_TIE_WINDOW = 2048


def mask_seen(scores: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> None:
    """Set ``scores[rows, items] = -inf`` in place, so seen items rank last and count as invalid."""
    scores[rows, items] = float("-inf")


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best items per row, ordered by (score desc, item index asc).

    Returns ``items`` LongTensor [B, min(k, N)] and ``valid`` BoolTensor of the same shape
    (False where the item's score is -inf, i.e. masked). ``torch.topk`` alone picks tied
    items arbitrarily; here the set and the order follow the lower-index rule exactly. Only
    rows whose tie at the k-th value straddles the cut get a second pass over their scores.
    """
    if k < 1:
        raise ValueError(f"top_k: k must be >= 1, got {k}")
    if scores.dim() != 2:
        raise ValueError(f"top_k: scores must be 2-D [users, items], got shape {tuple(scores.shape)}")
    n_items = scores.shape[1]
    kk = min(k, n_items)
    if kk == 0 or scores.shape[0] == 0:
        empty = torch.empty(scores.shape[0], kk, dtype=torch.long, device=scores.device)
        return empty, torch.ones_like(empty, dtype=torch.bool)
    # One value past the cut tells whether a tie straddles it; topk ranks NaN first.
    values, indices = torch.topk(scores, min(kk + 1, n_items), dim=1)
    if torch.isnan(values[:, 0]).any():
        raise ValueError("top_k: scores contain NaN; the model produced invalid scores")
    if kk < n_items:
        straddling = (values[:, kk] == values[:, kk - 1]).nonzero().squeeze(1)
        values, indices = values[:, :kk], indices[:, :kk]
        if straddling.numel():
            indices[straddling] = _fill_ties(scores, straddling, values[straddling], indices[straddling])
    indices = indices.sort(dim=1).values
    values, order = scores.gather(1, indices).sort(dim=1, descending=True, stable=True)
    return indices.gather(1, order), values > float("-inf")


def _fill_ties(
    scores: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """For ``rows`` whose k-th value is tied beyond the cut: keep the items scored above it
    (all in ``indices``, first, as topk sorts) and fill the rest with the lowest-index tied items.

    The lowest tied items are searched in a prefix of the columns that widens until it holds
    enough of them, so dense ties (a popularity model, all-zero or masked tails) cost a
    fraction of a pass over the row; row chunks bound the temporary memory.
    """
    n_items, kk = scores.shape[1], indices.shape[1]
    kth = values[:, kk - 1 : kk]
    n_above = (values > kth).sum(1, keepdim=True)
    position = torch.arange(kk, device=scores.device)
    item_ids = torch.arange(n_items, device=scores.device, dtype=torch.int32)
    lowest_tied = torch.empty_like(indices)
    chunk = max(1, _TIE_CHUNK // n_items)
    for start in range(0, rows.numel(), chunk):
        pending = torch.arange(start, min(start + chunk, rows.numel()), device=scores.device)
        width = min(n_items, max(kk, _TIE_WINDOW))
        while pending.numel():
            tied = scores[rows[pending], :width] == kth[pending]
            enough = tied.sum(1, keepdim=True) >= kk - n_above[pending]
            done = enough.squeeze(1) | (width == n_items)
            key = torch.where(tied[done], item_ids[:width], n_items)
            lowest_tied[pending[done]] = key.topk(kk, dim=1, largest=False).values.long()
            pending, width = pending[~done], min(n_items, width * 4)
    shift = (position - n_above).clamp(min=0)
    return torch.where(position < n_above, indices, lowest_tied.gather(1, shift))


def _writable(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` itself when masking it in place is safe, else a copy.

    ``score`` must return a tensor the harness may overwrite (no copy on the hot path); this
    catches the usual slips: a view of a model tensor (an expanded popularity row, a slice of
    a cached matrix), a parameter, or a row broadcast with stride 0.
    """
    if scores._base is not None or scores.requires_grad or 0 in scores.stride():
        return scores.clone(memory_format=torch.contiguous_format)
    return scores


def _valid_ids(items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Slots of a generated list holding a known item id seen for the first time in its row."""
    in_range = (items >= 0) & (items < n_items)
    ordered, order = items.sort(dim=1, stable=True)
    repeat_sorted = torch.zeros_like(in_range)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeat = torch.empty_like(repeat_sorted).scatter_(1, order, repeat_sorted)
    return in_range & ~repeat


def _hits(
    items: torch.Tensor, valid: torch.Tensor, rel_rows: torch.Tensor, rel_items: torch.Tensor, n_items: int
) -> torch.Tensor:
    """hits[b, r]: the valid item at rank r+1 of row b is among that row's relevant pairs."""
    rows = torch.arange(items.shape[0], device=items.device).unsqueeze(1)
    keys = torch.where(valid, rows * n_items + items.clamp(0, n_items - 1), -1)
    return torch.isin(keys, rel_rows * n_items + rel_items) & valid


class Evaluator(torch.nn.Module):
    """Accumulates ranking metrics over evaluation batches (one per ``(metric, k)``).

    A child module of the model, so ``.to(device)`` moves every metric state with it, and
    torchmetrics syncs the states across processes in ``compute``. Users without any
    relevant item are left out of every metric (DESIGN.md). With ``collect_per_user`` it
    also keeps each evaluated user's values (on the CPU) for significance tests.
    """

    def __init__(
        self,
        n_items: int,
        ks: Iterable[int] = (5, 10, 20),
        metrics: Iterable[str] = ("ndcg", "hr", "recall", "mrr", "map"),
        collect_per_user: bool = False,
    ) -> None:
        super().__init__()
        if n_items < 1:
            raise ValueError(f"Evaluator: n_items must be >= 1, got {n_items}")
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"Evaluator: ks must be positive integers, got {self.ks}")
        names = list(dict.fromkeys(metrics))
        unknown = [name for name in names if name not in ACCURACY_METRICS]
        if unknown:
            raise ValueError(f"Evaluator: unknown metric(s) {unknown}; known: {sorted(ACCURACY_METRICS)}")
        self.n_items = n_items
        self.collect_per_user = collect_per_user
        self.metrics = torch.nn.ModuleDict()
        for name in names:
            for k in self.ks:
                metric = ACCURACY_METRICS[name](k)
                self.metrics[metric.key] = metric
        self.valid_ratio = ValidRatio()
        self._users: list[torch.Tensor] = []
        self._values: dict[str, list[torch.Tensor]] = {key: [] for key in self.metrics}

    @torch.no_grad()
    def update(self, model: RecModule, batch: dict[str, torch.Tensor]) -> None:
        """Rank the batch's users with ``model`` and update every metric."""
        users = batch["users"]
        n_rows, k = users.shape[0], self.ks[-1]
        generative = type(model).is_generative()
        if generative:
            items = model.recommend(batch, k)
            if items.shape != (n_rows, k) or items.is_floating_point():
                raise ValueError(
                    f"{type(model).__name__}.recommend must return a LongTensor of shape {(n_rows, k)}, "
                    f"got {items.dtype} {tuple(items.shape)}"
                )
            valid = _valid_ids(items, self.n_items)
        else:
            scores = model.score(batch)
            if scores.shape != (n_rows, self.n_items) or not scores.is_floating_point():
                raise ValueError(
                    f"{type(model).__name__}.score must return a float tensor of shape {(n_rows, self.n_items)}, "
                    f"got {scores.dtype} {tuple(scores.shape)}"
                )
            scores = _writable(scores)
            mask_seen(scores, batch["seen_rows"], batch["seen_items"])
            items, valid = top_k(scores, k)
        items = items.masked_fill(~valid, -1)
        hits = _hits(items, valid, batch["rel_rows"], batch["rel_items"], self.n_items)
        n_relevant = torch.bincount(batch["rel_rows"], minlength=n_rows)
        keep = n_relevant > 0
        ranked = RankedBatch(users[keep], items[keep], valid[keep], hits[keep], n_relevant[keep])
        for metric in self.metrics.values():
            metric.update(ranked)
        if generative:
            self.valid_ratio.update(ranked)
        if self.collect_per_user:
            self._users.append(ranked.users.cpu())
            for key, metric in self.metrics.items():
                self._values[key].append(metric.user_values(ranked).cpu())

    def compute(self) -> dict[str, float]:
        """Metric values keyed ``name@k`` (plus ``valid_ratio`` for generative models)."""
        values = {key: float(metric.compute()) for key, metric in self.metrics.items()}
        with warnings.catch_warnings():  # never updated for dense models: NaN, not a warning
            warnings.filterwarnings("ignore", message=".*called before the ``update`` method.*")
            ratio = float(self.valid_ratio.compute())
        if not math.isnan(ratio):
            values[self.valid_ratio.name] = ratio
        return values

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        self.valid_ratio.reset()
        self._users.clear()
        for values in self._values.values():
            values.clear()

    def per_user(self) -> dict[str, np.ndarray]:
        """Per-user values of every evaluated user (``user`` plus one array per metric key),
        gathered from all processes and ordered by user id; collective under DDP, so call it
        on every rank. Repeated users (padding by a distributed sampler) are kept once."""
        if not self.collect_per_user:
            raise RuntimeError("Evaluator.per_user needs collect_per_user=True")
        local = {"user": _concat(self._users, torch.long)}
        local.update({key: _concat(values, torch.float64) for key, values in self._values.items()})
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list[dict[str, np.ndarray] | None] = [None] * dist.get_world_size()
            dist.all_gather_object(parts, local)
            local = {key: np.concatenate([part[key] for part in parts if part is not None]) for key in local}
        _, first = np.unique(local["user"], return_index=True)
        return {key: value[first] for key, value in local.items()}


def _concat(tensors: list[torch.Tensor], dtype: torch.dtype) -> np.ndarray:
    if not tensors:
        return torch.empty(0, dtype=dtype).numpy()
    return torch.cat(tensors).to(dtype).numpy()
