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

Beyond-accuracy metrics (coverage, gini, entropy, ild, novelty, tailshare, usergap-ndcg,
groupdisparity) need per-dataset statistics (training popularity, user activity, item
features, an item grouping); they receive them as tensors at construction (built once by
``benchmark.evaluation.EvalContext``) and keep them as non-persistent buffers, so a metric's
*state* stays a few sums or one count vector bounded by the catalogue. ``ndcg-true`` scores
the lists against graded true relevance (simulated data), carried by ``RankedBatch``.

Per-user functional forms (``ndcg``, ``hr``, ``recall``, ``mrr``, ``average_precision``) take
``hits`` [B, K'] (``hits[b, r]``: the item ranked r+1 for user b is relevant) and
``n_relevant`` [B] (|R_u|). ``K'`` may exceed ``k`` (the first k columns are used) or fall
short of it (a catalogue with fewer than k candidates); the ideal list is always built from
min(|R_u|, k) items. Users with no relevant item get 0 and the metric classes leave them out
of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

import torch
from torchmetrics import Metric

__all__ = [
    "ACCURACY_METRICS",
    "BEYOND_METRICS",
    "ILD",
    "Coverage",
    "Entropy",
    "Gini",
    "GroupDisparity",
    "Novelty",
    "TailShare",
    "TrueNDCG",
    "UserGapNDCG",
    "HR",
    "MAP",
    "MRR",
    "NDCG",
    "RankedBatch",
    "RankingMetric",
    "Recall",
    "TopKMetric",
    "ValidRatio",
    "Direction",
    "FAMILIES",
    "MetricInfo",
    "average_precision",
    "metric_catalogue",
    "metric_directions",
    "metric_info",
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
    long: |R_u|; ``users`` [B] long: user ids (for user-group metrics). Optional, for
    ``ndcg-true``: ``true_gains`` [B, K] float64, the true relevance (>= 0) of each listed item
    (0 in invalid slots), and ``ideal_gains`` [B, K] float64, the K largest true relevances
    among the user's rankable (unmasked) items, in descending order.
    """

    users: torch.Tensor
    items: torch.Tensor
    valid: torch.Tensor
    hits: torch.Tensor
    n_relevant: torch.Tensor
    true_gains: torch.Tensor | None = None
    ideal_gains: torch.Tensor | None = None


# --- per-user functional forms ---------------------------------------------------------


def _ranks(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(1, n + 1, device=device, dtype=torch.float64)


def _cut(hits: torch.Tensor, k: int) -> torch.Tensor:
    return hits[:, :k].to(torch.float64)


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
    return torch.where(n_relevant > 0, (found > 0).to(torch.float64), 0.0)


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


Direction = Literal["higher", "lower", "zero"]  # "zero": the signed value is best when |x| is closest to 0
FAMILIES = ("accuracy", "diversity", "fairness")  # result tables order their columns by family


class RankingMetric(Metric):
    """A metric at cut-off ``k`` updated with ``RankedBatch``es; reported as ``key``.

    ``direction`` and ``family`` are the one declaration of which values are better and where
    the metric belongs; result tables, legends and markers read them (``metric_catalogue``).
    """

    name: ClassVar[str]
    family: ClassVar[str]
    direction: ClassVar[Direction] = "higher"
    per_user: ClassVar[bool] = False  # has a per-user value (``user_values``) for significance tests
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # torchmetrics' own flag follows ``direction``; "closest to 0" is neither higher nor lower
        cls.higher_is_better = {"higher": True, "lower": False, "zero": None}[cls.direction]

    def __init__(self, k: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"{type(self).__name__}: k must be >= 1, got {k}")
        self.k = k

    @property
    def key(self) -> str:
        return f"{self.name}@{self.k}"

    def user_values(self, ranked: RankedBatch) -> torch.Tensor:
        """Per-user values [B] (float64; NaN for users the metric leaves out of its mean)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-user value")

    def _cut_lists(self, ranked: RankedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The first k slots: item ids (-1 -> 0 so they can index) and their validity."""
        return ranked.items[:, : self.k].clamp(min=0), ranked.valid[:, : self.k]


class TopKMetric(RankingMetric):
    """Mean of a per-user accuracy value over users with at least one relevant item.

    States: ``total`` (float64 sum of per-user values) and ``count`` (number of such users).
    """

    fn: ClassVar[Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]]
    family = "accuracy"
    per_user = True

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


# --- beyond accuracy -------------------------------------------------------------------


class _MeanOverUsers(RankingMetric):
    """Mean of a per-user value over the users it is defined for (states: total, count)."""

    per_user = True

    def __init__(self, k: int, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _values(self, ranked: RankedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-user values [B] float64, defined [B] bool)."""
        raise NotImplementedError

    def user_values(self, ranked: RankedBatch) -> torch.Tensor:
        values, defined = self._values(ranked)
        return torch.where(defined, values, float("nan"))

    def update(self, ranked: RankedBatch) -> None:
        values, defined = self._values(ranked)
        self.total += values[defined].sum()
        self.count += defined.sum()

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            return torch.zeros((), dtype=torch.float64, device=self.total.device)
        return self.total / self.count


class _Exposure(RankingMetric):
    """State: ``exposure`` [n_items] long, c_i = number of evaluated users whose top-k list holds item i."""

    def __init__(self, k: int, n_items: int, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        if n_items < 1:
            raise ValueError(f"{type(self).__name__}: n_items must be >= 1")
        self.n_items = n_items
        self.add_state("exposure", torch.zeros(n_items, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranked: RankedBatch) -> None:
        items, valid = self._cut_lists(ranked)
        self.exposure += torch.bincount(items[valid], minlength=self.n_items)


class Coverage(_Exposure):
    """Coverage@k = |union of the top-k lists| / n_items."""

    name = "coverage"
    family = "diversity"

    def compute(self) -> torch.Tensor:
        return (self.exposure > 0).sum().to(torch.float64) / self.n_items


class Gini(_Exposure):
    """Gini@k of the exposure counts of all catalogue items (zeros included): 0 = equal, ->1 = concentrated."""

    name = "gini"
    family = "diversity"
    direction = "lower"

    def compute(self) -> torch.Tensor:
        c = self.exposure.to(torch.float64).sort().values
        n, total = c.numel(), c.sum()
        if total == 0:
            return torch.zeros((), dtype=torch.float64, device=c.device)
        j = torch.arange(1, n + 1, dtype=torch.float64, device=c.device)
        return ((2 * j - n - 1) * c).sum() / (n * total)


class Entropy(_Exposure):
    """Entropy@k = -sum p_i ln p_i over items, p_i = c_i / sum c (nats)."""

    name = "entropy"
    family = "diversity"

    def compute(self) -> torch.Tensor:
        c = self.exposure.to(torch.float64)
        total = c.sum()
        if total == 0:
            return torch.zeros((), dtype=torch.float64, device=c.device)
        p = c[c > 0] / total
        return -(p * p.log()).sum()


class GroupDisparity(RankingMetric):
    """GroupDisparity@k = 1/2 sum_g |exposure share of group g - catalogue share of group g|.

    The total-variation distance between how top-k slots are spread over item groups and how
    the catalogue is: 0 = every group is exposed in proportion to its size, 1 = all exposure
    goes to groups with no items' share. ``item_group`` [n_items] holds each item's group
    index in 0..n_groups-1 (the harness gives items without a value a group of their own).
    """

    name = "groupdisparity"
    family = "fairness"
    direction = "lower"

    def __init__(self, k: int, item_group: torch.Tensor, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        item_group = torch.as_tensor(item_group, dtype=torch.long)
        if item_group.dim() != 1 or item_group.numel() == 0 or item_group.min() < 0:
            raise ValueError("GroupDisparity: item_group must be a 1-D tensor of group indices >= 0")
        self.n_groups = int(item_group.max()) + 1
        self.register_buffer("item_group", item_group, persistent=False)
        self.register_buffer("catalogue", torch.bincount(item_group, minlength=self.n_groups), persistent=False)
        self.add_state("group_exposure", torch.zeros(self.n_groups, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranked: RankedBatch) -> None:
        items, valid = self._cut_lists(ranked)
        self.group_exposure += torch.bincount(self.item_group[items[valid]], minlength=self.n_groups)

    def compute(self) -> torch.Tensor:
        exposure = self.group_exposure.to(torch.float64)
        if exposure.sum() == 0:
            return torch.zeros((), dtype=torch.float64, device=exposure.device)
        catalogue = self.catalogue.to(exposure)
        return 0.5 * (exposure / exposure.sum() - catalogue / catalogue.sum()).abs().sum()


class TailShare(RankingMetric):
    """TailShare@k = share of all filled top-k slots (valid items) that hold a long-tail item."""

    name = "tailshare"
    family = "fairness"

    def __init__(self, k: int, is_tail: torch.Tensor, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        self.register_buffer("is_tail", torch.as_tensor(is_tail, dtype=torch.bool), persistent=False)
        self.add_state("tail_slots", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("slots", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranked: RankedBatch) -> None:
        items, valid = self._cut_lists(ranked)
        self.tail_slots += (self.is_tail[items] & valid).sum()
        self.slots += valid.sum()

    def compute(self) -> torch.Tensor:
        if self.slots == 0:
            return torch.zeros((), dtype=torch.float64, device=self.slots.device)
        return self.tail_slots.to(torch.float64) / self.slots


class Novelty(_MeanOverUsers):
    """Novelty@k = mean over users of the mean self-information -log2(n_train_users(i) / n_users)
    of their (valid) listed items. ``self_information`` [n_items] is precomputed by the harness.
    Users with an empty list are left out."""

    name = "novelty"
    family = "diversity"

    def __init__(self, k: int, self_information: torch.Tensor, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        self.register_buffer("self_information", torch.as_tensor(self_information, dtype=torch.float64), persistent=False)

    def _values(self, ranked: RankedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        items, valid = self._cut_lists(ranked)
        n = valid.sum(1)
        total = torch.where(valid, self.self_information[items], 0.0).sum(1)
        return total / n.clamp(min=1), n > 0


class ILD(_MeanOverUsers):
    """ILD@k = mean over users of the mean over unordered pairs of listed items of 1 - cos(f_i, f_j).

    ``features`` [n_items, d]: item feature vectors (rows are L2-normalised here; an all-zero
    row has cosine 0 with everything). Users with fewer than two valid items are left out.
    """

    name = "ild"
    family = "diversity"

    def __init__(self, k: int, features: torch.Tensor, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        features = torch.as_tensor(features, dtype=torch.float32)
        if features.dim() != 2:
            raise ValueError("ILD: features must be a 2-D [n_items, d] tensor")
        self.register_buffer("features", features, persistent=False)

    def _values(self, ranked: RankedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        items, valid = self._cut_lists(ranked)
        f = self.features[items].to(torch.float64)  # [B, k, d]
        norms = f.norm(dim=2, keepdim=True)
        f = f / torch.where(norms > 0, norms, 1.0)
        cosine = f @ f.transpose(1, 2)  # [B, k, k]
        kk = items.shape[1]
        upper = torch.ones(kk, kk, dtype=torch.bool, device=items.device).triu(1)
        pairs = valid.unsqueeze(2) & valid.unsqueeze(1) & upper
        n_pairs = pairs.sum((1, 2))
        distance = torch.where(pairs, 1.0 - cosine, 0.0).sum((1, 2))
        return distance / n_pairs.clamp(min=1), n_pairs > 0


class UserGapNDCG(RankingMetric):
    """UserGap-NDCG@k = mean NDCG@k of active users - mean NDCG@k of inactive users.

    ``is_active`` [n_users] bool (the top 20% of users by training interactions, chosen by the
    harness). A group with no evaluated user has mean 0.
    """

    name = "usergap-ndcg"
    family = "fairness"
    direction = "zero"  # reported signed (active - inactive); 0 is the fair value

    def __init__(self, k: int, is_active: torch.Tensor, **kwargs: object) -> None:
        super().__init__(k, **kwargs)
        self.register_buffer("is_active", torch.as_tensor(is_active, dtype=torch.bool), persistent=False)
        for state in ("total_active", "total_inactive"):
            self.add_state(state, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for state in ("count_active", "count_inactive"):
            self.add_state(state, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranked: RankedBatch) -> None:
        values = ndcg(ranked.hits, ranked.n_relevant, self.k).to(torch.float64)
        eligible = ranked.n_relevant > 0
        active = self.is_active[ranked.users] & eligible
        inactive = ~self.is_active[ranked.users] & eligible
        self.total_active += values[active].sum()
        self.count_active += active.sum()
        self.total_inactive += values[inactive].sum()
        self.count_inactive += inactive.sum()

    def compute(self) -> torch.Tensor:
        def mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
            return total / count if count > 0 else torch.zeros_like(total)

        return mean(self.total_active, self.count_active) - mean(self.total_inactive, self.count_inactive)


class TrueNDCG(_MeanOverUsers):
    """NDCG@k against graded true relevance (simulated data): sum_r g(r)/log2(r+1) over the same
    sum for the k largest true relevances among the user's rankable items (``RankedBatch``'s
    ``true_gains`` / ``ideal_gains``; linear gains). Users whose ideal DCG is 0 are left out;
    batches without true relevance are ignored."""

    name = "ndcg-true"
    family = "accuracy"

    def _values(self, ranked: RankedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        if ranked.true_gains is None or ranked.ideal_gains is None:
            raise ValueError("ndcg-true needs RankedBatch.true_gains and ideal_gains")
        gains, ideal = ranked.true_gains[:, : self.k].to(torch.float64), ranked.ideal_gains[:, : self.k].to(torch.float64)
        discounts = 1.0 / torch.log2(torch.arange(2, self.k + 2, dtype=torch.float64, device=gains.device))
        dcg = (gains * discounts[: gains.shape[1]]).sum(1)
        idcg = (ideal * discounts[: ideal.shape[1]]).sum(1)
        return dcg / torch.where(idcg > 0, idcg, 1.0), idcg > 0

    def update(self, ranked: RankedBatch) -> None:
        if ranked.true_gains is not None:
            super().update(ranked)


# Beyond-accuracy metrics, by name; the keyword each needs from the harness (None: n_items).
BEYOND_METRICS: dict[str, tuple[type[RankingMetric], str]] = {
    "ild": (ILD, "features"),
    "coverage": (Coverage, "n_items"),
    "gini": (Gini, "n_items"),
    "entropy": (Entropy, "n_items"),
    "novelty": (Novelty, "self_information"),
    "tailshare": (TailShare, "is_tail"),
    "usergap-ndcg": (UserGapNDCG, "is_active"),
    "groupdisparity": (GroupDisparity, "item_group"),
}


@dataclass(frozen=True)
class MetricInfo:
    """What a report needs to know about one ranking metric."""

    name: str
    family: str
    direction: Direction
    per_user: bool

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` under this metric's direction."""
        if self.direction == "zero":
            return abs(a) < abs(b)
        return a > b if self.direction == "higher" else a < b


def metric_catalogue() -> list[MetricInfo]:
    """Every ranking metric the harness reports, grouped by family in ``FAMILIES`` order
    (within a family, registry order): the column order of result tables."""
    classes: list[type[RankingMetric]] = [*ACCURACY_METRICS.values(), TrueNDCG, *(cls for cls, _ in BEYOND_METRICS.values())]
    infos = [MetricInfo(cls.name, cls.family, cls.direction, cls.per_user) for cls in classes]
    return sorted(infos, key=lambda info: FAMILIES.index(info.family))  # stable: keeps registry order


def metric_directions() -> dict[str, Direction]:
    """Every ranking metric's name and its direction ("higher", "lower" or "zero": |x| closest to 0)."""
    return {info.name: info.direction for info in metric_catalogue()}


def metric_info(key: str) -> MetricInfo | None:
    """The metric of a reported key such as ``ndcg@10`` (or a bare name); None for a name no metric has."""
    name = key.split("@", 1)[0]
    return next((info for info in metric_catalogue() if info.name == name), None)


# --- text metrics: generated explanations against held-out references -----------------------
#
# Computed by the harness (benchmark.runner) from the text a model generates; tokens are the
# lower-cased ``\w+`` runs of the text. ``bleu4`` is corpus BLEU-4 (torchmetrics ``BLEUScore``:
# uniform weights, brevity penalty, no smoothing), ``rouge_l`` the mean ROUGE-L F1 over pairs
# (torchmetrics ``ROUGEScore``, no stemming); both need a reference text per explanation (a
# user's own held-out review), so datasets without review text report neither.
# ``feature_match`` is the share of explanations naming at least one true attribute of their
# item (whole words, case-insensitive), ``distinct_2`` distinct bigrams over all bigrams of all
# explanations (bigrams never span two explanations); both need no reference.


def words(text: str) -> list[str]:
    """The text metrics' tokens: lower-cased runs of word characters."""
    import re

    return re.findall(r"\w+", text.lower())


def feature_match(explanations: list[str], item_attributes: list[list[str]]) -> float:
    """Share of explanations mentioning >= 1 attribute of their item (case-insensitive, whole word)."""
    import re

    if len(explanations) != len(item_attributes):
        raise ValueError(f"feature_match: {len(explanations)} explanations but {len(item_attributes)} attribute lists")
    if not explanations:
        raise ValueError("feature_match: no explanations")
    hits = 0
    for text, attrs in zip(explanations, item_attributes):
        if any(re.search(r"(?<!\w)" + re.escape(a.strip()) + r"(?!\w)", text, flags=re.IGNORECASE) for a in attrs if a.strip()):
            hits += 1
    return hits / len(explanations)


def distinct_n(explanations: list[str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over all explanations (n-grams within one explanation); 0 if none."""
    grams = [tuple(tokens[i : i + n]) for tokens in map(words, explanations) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def text_metrics(explanations: list[str], references: list[str] | None, item_attributes: list[list[str]] | None) -> dict[str, float]:
    """``bleu4`` and ``rouge_l`` (when ``references`` are given, one per explanation),
    ``feature_match`` (when some item has attributes) and ``distinct_2``."""
    from torchmetrics.text import BLEUScore, ROUGEScore

    if not explanations:
        raise ValueError("text_metrics: no explanations")
    out: dict[str, float] = {}
    if references is not None:
        if len(references) != len(explanations):
            raise ValueError(f"text_metrics: {len(explanations)} explanations, {len(references)} references")
        tokenised = [" ".join(words(t)) for t in explanations]
        refs = [" ".join(words(t)) for t in references]
        out["bleu4"] = float(BLEUScore(n_gram=4, smooth=False)(tokenised, [[r] for r in refs]))
        out["rouge_l"] = float(ROUGEScore(rouge_keys="rougeL", normalizer=lambda s: s)(tokenised, refs)["rougeL_fmeasure"])
    if item_attributes is not None and any(item_attributes):
        out["feature_match"] = feature_match(explanations, item_attributes)
    out["distinct_2"] = distinct_n(explanations, 2)
    return out
