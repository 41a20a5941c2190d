"""Ranking metrics (DESIGN.md, "Metric definitions"): torchmetrics ``Metric``s with summable state.

Every metric object measures one cut-off ``k`` and reports under ``key`` = ``f"{name}@{k}"``.
The Evaluator (benchmark.evaluation) turns each evaluation batch into one ``RankedBatch``
(the top-K lists for K = the largest cut-off, with their relevance) and feeds the same
object to every metric: ``metric.update(ranked)``. A metric reads the fields it needs and
its own first ``k`` columns, so accuracy metrics read ``hits``/``n_relevant`` and
beyond-accuracy metrics (coverage, gini, ...) read ``items``/``valid``/``users``. New metrics
subclass ``RankingMetric`` and register in a registry like ``ACCURACY_METRICS``.

States are sums (``dist_reduce_fx="sum"``), never lists of predictions, so a value under
DDP on N processes equals the value on one process.

Per-user functional forms (``ndcg``, ``hr``, ``recall``, ``mrr``, ``average_precision``) take
``hits`` [B, K'] (``hits[b, r]``: the item ranked r+1 for user b is relevant) and
``n_relevant`` [B] (|R_u|). ``K'`` may exceed ``k`` (the first k columns are used) or fall
short of it (a catalogue with fewer than k candidates); the ideal list is always built from
min(|R_u|, k) items. Users with no relevant item get 0 and the metric classes leave them out
of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torchmetrics import Metric

__all__ = [
    "ACCURACY_METRICS",
    "HR",
    "MAP",
    "MRR",
    "NDCG",
    "RankedBatch",
    "RankingMetric",
    "Recall",
    "TopKMetric",
    "ValidRatio",
    "average_precision",
    "hr",
    "mrr",
    "ndcg",
    "recall",
]


@dataclass(frozen=True)
class RankedBatch:
    """The top-K lists of one evaluation batch, as every metric's ``update`` receives them.

    ``items`` [B, K] long: ranked item ids, -1 in invalid slots; ``valid`` [B, K] bool: the
    slot holds a real recommendation (not a masked/-inf item, not an unknown or repeated id
    from a generative model); ``hits`` [B, K] bool: valid and relevant; ``n_relevant`` [B]
    long: |R_u|; ``users`` [B] long: user ids (for user-group metrics).
    """

    users: torch.Tensor
    items: torch.Tensor
    valid: torch.Tensor
    hits: torch.Tensor
    n_relevant: torch.Tensor


# --- per-user functional forms ---------------------------------------------------------


def _ranks(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(1, n + 1, device=device, dtype=torch.float32)


def _cut(hits: torch.Tensor, k: int) -> torch.Tensor:
    return hits[:, :k].to(torch.float32)


def ndcg(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k per user: DCG of the list over the DCG of min(|R_u|, k) relevant items on top."""
    h = _cut(hits, k)
    discounts = 1.0 / torch.log2(_ranks(k, hits.device) + 1.0)
    dcg = (h * discounts[: h.shape[1]]).sum(1)
    n_ideal = n_relevant.clamp(max=k)
    idcg = torch.cumsum(discounts, 0)[(n_ideal - 1).clamp(min=0)]
    return torch.where(n_ideal > 0, dcg / idcg, torch.zeros_like(dcg))


def hr(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """HR@k per user: 1 if any of the first k items is relevant."""
    found = _cut(hits, k).sum(1)
    return torch.where(n_relevant > 0, (found > 0).to(torch.float32), 0.0)


def recall(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Recall@k per user: share of the user's relevant items found in the first k."""
    found = _cut(hits, k).sum(1)
    return torch.where(n_relevant > 0, found / n_relevant.clamp(min=1), 0.0)


def mrr(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """MRR@k per user: reciprocal rank of the first relevant item within the first k, else 0."""
    h = _cut(hits, k)
    first = (h > 0) & (h.cumsum(1) == 1)
    rr = (first / _ranks(h.shape[1], hits.device)).sum(1)
    return torch.where(n_relevant > 0, rr, 0.0)


def average_precision(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """AP@k per user: sum of Precision@r at each relevant rank r <= k, over min(|R_u|, k)."""
    h = _cut(hits, k)
    precision = h.cumsum(1) / _ranks(h.shape[1], hits.device)
    n_ideal = n_relevant.clamp(max=k)
    return torch.where(n_ideal > 0, (precision * h).sum(1) / n_ideal.clamp(min=1), 0.0)


# --- metric classes --------------------------------------------------------------------


class RankingMetric(Metric):
    """A metric at cut-off ``k`` updated with ``RankedBatch``es; reported as ``key``."""

    name: ClassVar[str]
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, k: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"{type(self).__name__}: k must be >= 1, got {k}")
        self.k = k

    @property
    def key(self) -> str:
        return f"{self.name}@{self.k}"


class TopKMetric(RankingMetric):
    """Mean of a per-user accuracy value over users with at least one relevant item.

    States: ``total`` (float64 sum of per-user values) and ``count`` (number of such users).
    """

    fn: ClassVar[Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]]

    def __init__(self, k: int, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def user_values(self, ranked: RankedBatch) -> torch.Tensor:
        """Per-user values [B] (0 for users with no relevant item)."""
        return type(self).fn(ranked.hits, ranked.n_relevant, self.k)

    def update(self, ranked: RankedBatch) -> None:
        eligible = ranked.n_relevant > 0
        self.total += self.user_values(ranked)[eligible].to(torch.float64).sum()
        self.count += eligible.sum()

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            return torch.zeros((), dtype=torch.float64, device=self.total.device)
        return self.total / self.count


class NDCG(TopKMetric):
    name = "ndcg"
    fn = staticmethod(ndcg)


class HR(TopKMetric):
    name = "hr"
    fn = staticmethod(hr)


class Recall(TopKMetric):
    name = "recall"
    fn = staticmethod(recall)


class MRR(TopKMetric):
    name = "mrr"
    fn = staticmethod(mrr)


class MAP(TopKMetric):
    name = "map"
    fn = staticmethod(average_precision)


ACCURACY_METRICS: dict[str, type[TopKMetric]] = {
    cls.name: cls for cls in (NDCG, HR, Recall, MRR, MAP)
}


class ValidRatio(Metric):
    """Share of top-K slots holding a valid item: how often a generative model decodes
    unknown or repeated ids. ``compute`` is NaN when nothing was updated (a dense model),
    so callers can tell "not applicable" from 0 after the DDP sync."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    name = "valid_ratio"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("valid_slots", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("slots", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranked: RankedBatch) -> None:
        self.valid_slots += ranked.valid.sum()
        self.slots += ranked.valid.numel()

    def compute(self) -> torch.Tensor:
        if self.slots == 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.slots.device)
        return self.valid_slots.to(torch.float64) / self.slots
