"""Full-ranking evaluation: mask seen items, take the top K, update the metrics.

Models only score (or, if generative, decode) items; this module owns everything after
that (DESIGN.md, "The model contract"), so every model is measured by the same code.
Ties in scores are broken by the lower item index, exactly, wherever they fall.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from benchmark.metrics import ACCURACY_METRICS, BEYOND_METRICS, RankedBatch, ValidRatio

if TYPE_CHECKING:
    from benchmark.data.prepare import PreparedData
    from benchmark.model import RecModule

__all__ = ["EvalContext", "Evaluator", "SampledNegatives", "mask_seen", "sample_negatives", "top_k"]

# A callable giving graded true relevance (>= 0) of every item for a batch of users:
# users LongTensor [B] -> FloatTensor [B, n_items] (simulated data; for ``ndcg-true``).
TrueRelevance = Callable[[torch.Tensor], torch.Tensor]

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


# --- per-dataset statistics for beyond-accuracy metrics ---------------------------------

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


# --- sampled-negative protocol ------------------------------------------------------------


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


# --- the engine -------------------------------------------------------------------------


class Evaluator(torch.nn.Module):
    """Accumulates ranking metrics over evaluation batches (one per ``(metric, k)``).

    A child module of the model, so ``.to(device)`` moves every metric state with it, and
    torchmetrics syncs the states across processes in ``compute``. Users without any
    relevant item are left out of every metric (DESIGN.md). With ``collect_per_user`` it
    also keeps each evaluated user's values (on the CPU) for significance tests.

    Optional: ``context`` (an ``EvalContext``) adds the beyond-accuracy metrics named in
    ``beyond_metrics`` (default: every one the context supports) at ``beyond_ks`` (default:
    ``ks``); ``true_relevance`` adds ``ndcg-true@k``; ``negatives`` switches to the sampled
    protocol (each user ranks its relevant items and its sampled negatives only).
    """

    def __init__(
        self,
        n_items: int,
        ks: Iterable[int] = (5, 10, 20),
        metrics: Iterable[str] = ("ndcg", "hr", "recall", "mrr", "map"),
        collect_per_user: bool = False,
        *,
        context: EvalContext | None = None,
        beyond_metrics: Iterable[str] | None = None,
        beyond_ks: Iterable[int] | None = None,
        true_relevance: TrueRelevance | None = None,
        negatives: SampledNegatives | None = None,
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
        self.true_relevance = true_relevance
        self.negatives = negatives
        self.metrics = torch.nn.ModuleDict()
        for name in names:
            for k in self.ks:
                metric = ACCURACY_METRICS[name](k)
                self.metrics[metric.key] = metric
        extra_ks = self.ks if beyond_ks is None else tuple(sorted({int(k) for k in beyond_ks}))
        if context is not None:
            if context.n_items != n_items:
                raise ValueError(f"Evaluator: context has {context.n_items} items, evaluator {n_items}")
            inputs = context.metric_inputs()
            wanted = list(BEYOND_METRICS) if beyond_metrics is None else list(dict.fromkeys(beyond_metrics))
            unknown = [name for name in wanted if name not in BEYOND_METRICS]
            if unknown:
                raise ValueError(f"Evaluator: unknown beyond-accuracy metric(s) {unknown}; known: {sorted(BEYOND_METRICS)}")
            for name in wanted:
                cls, needs = BEYOND_METRICS[name]
                if needs not in inputs:
                    if beyond_metrics is not None:
                        raise ValueError(f"Evaluator: {name} needs {needs}, which the context lacks")
                    continue
                for k in extra_ks:
                    metric = cls(k, **{needs: inputs[needs]})
                    self.metrics[metric.key] = metric
        if true_relevance is not None:
            from benchmark.metrics import TrueNDCG

            for k in self.ks:
                metric = TrueNDCG(k)
                self.metrics[metric.key] = metric
        self.max_k = max(self.ks + extra_ks) if context is not None else self.ks[-1]
        self.valid_ratio = ValidRatio()
        self._users: list[torch.Tensor] = []
        self._values: dict[str, list[torch.Tensor]] = {key: [] for key, m in self.metrics.items() if m.per_user}

    @property
    def protocol(self) -> str:
        return "full" if self.negatives is None else "sampled"

    @torch.no_grad()
    def update(self, model: RecModule, batch: dict[str, torch.Tensor]) -> None:
        """Rank the batch's users with ``model`` and update every metric."""
        users = batch["users"]
        n_rows, k = users.shape[0], self.max_k
        generative = type(model).is_generative()
        if generative:
            if self.negatives is not None:
                raise ValueError(f"{type(model).__name__} is generative: the sampled protocol needs a dense scorer")
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
            if self.negatives is not None:
                _keep_candidates(scores, batch, self.negatives)
            items, valid = top_k(scores, k)
        self.update_lists(batch, items, valid, lists_from_ids=generative)

    @torch.no_grad()
    def update_lists(self, batch: dict[str, torch.Tensor], items: torch.Tensor, valid: torch.Tensor | None = None, *, lists_from_ids: bool = True) -> None:
        """Update every metric with ready top-K lists ``items`` [B, K'] for ``batch``'s users.

        ``valid`` defaults to "a known id seen for the first time in its row"; with
        ``lists_from_ids`` (generative models, external predictions) the valid ratio is kept.
        """
        users = batch["users"]
        n_rows = users.shape[0]
        if valid is None:
            valid = _valid_ids(items, self.n_items)
        items = items.masked_fill(~valid, -1)
        hits = _hits(items, valid, batch["rel_rows"], batch["rel_items"], self.n_items)
        n_relevant = torch.bincount(batch["rel_rows"], minlength=n_rows)
        keep = n_relevant > 0
        true_gains = ideal_gains = None
        if self.true_relevance is not None:
            true_gains, ideal_gains = self._true_gains(batch, items, valid)
            true_gains, ideal_gains = true_gains[keep], ideal_gains[keep]
        ranked = RankedBatch(users[keep], items[keep], valid[keep], hits[keep], n_relevant[keep], true_gains, ideal_gains)
        for metric in self.metrics.values():
            metric.update(ranked)
        if lists_from_ids:
            self.valid_ratio.update(_pad_valid(ranked, self.max_k))
        if self.collect_per_user:
            self._users.append(ranked.users.cpu())
            for key in self._values:
                self._values[key].append(self.metrics[key].user_values(ranked).cpu())

    def _true_gains(self, batch: dict[str, torch.Tensor], items: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.true_relevance is not None
        relevance = self.true_relevance(batch["users"]).to(torch.float64)
        if relevance.shape != (batch["users"].shape[0], self.n_items):
            raise ValueError(f"true_relevance must return shape {(batch['users'].shape[0], self.n_items)}, got {tuple(relevance.shape)}")
        relevance = relevance.clamp(min=0).clone()
        relevance[batch["seen_rows"], batch["seen_items"]] = 0.0  # masked items cannot be recommended
        gains = torch.where(valid, relevance.gather(1, items.clamp(min=0)), 0.0)
        ideal = relevance.topk(min(self.max_k, self.n_items), dim=1).values
        return gains, ideal

    def compute(self) -> dict[str, float]:
        """Metric values keyed ``name@k`` (plus ``valid_ratio`` for top-K id lists)."""
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
        """Per-user values of every evaluated user (``user`` plus one array per metric key that
        has per-user values; NaN where a metric leaves the user out), gathered from all
        processes and ordered by user id; collective under DDP, so call it on every rank.
        Repeated users (padding by a distributed sampler) are kept once."""
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


def _pad_valid(ranked: RankedBatch, k: int) -> RankedBatch:
    """The valid ratio counts K slots per user even when a list is shorter than K."""
    short = k - ranked.valid.shape[1]
    if short <= 0:
        return ranked
    pad = torch.zeros(ranked.valid.shape[0], short, dtype=torch.bool, device=ranked.valid.device)
    return RankedBatch(ranked.users, ranked.items, torch.cat([ranked.valid, pad], 1), ranked.hits, ranked.n_relevant)


def _keep_candidates(scores: torch.Tensor, batch: dict[str, torch.Tensor], negatives: SampledNegatives) -> None:
    """Sampled protocol: every item but the batch's relevant items and sampled negatives -> -inf."""
    rows, items = negatives.lookup(batch["users"])
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep[rows, items] = True
    keep[batch["rel_rows"], batch["rel_items"]] = True
    scores.masked_fill_(~keep, float("-inf"))


def _concat(tensors: list[torch.Tensor], dtype: torch.dtype) -> np.ndarray:
    if not tensors:
        return torch.empty(0, dtype=dtype).numpy()
    return torch.cat(tensors).to(dtype).numpy()


def test_evaluator(dm: object, train: object, *, seed: int, negatives: SampledNegatives | None = None, true_relevance: TrueRelevance | None = None) -> Evaluator:
    """The Evaluator of a run's test pass, built from a ``RecDataModule`` and a ``TrainConfig``.

    Full protocol: accuracy at ``train.loop.ks`` and every beyond-accuracy metric the dataset
    supports (at the same ks), plus ``ndcg-true`` when ``true_relevance`` is given. Sampled
    protocol: accuracy only, over each user's relevant items and ``train.evaluation.eval_negatives``
    sampled negatives (``negatives`` if given, else drawn now with ``seed``).
    """
    data = dm.data  # type: ignore[attr-defined]
    ks = tuple(train.loop.ks)  # type: ignore[attr-defined]
    if train.evaluation.eval_protocol == "sampled":  # type: ignore[attr-defined]
        if negatives is None:
            negatives = test_negatives(dm, train, seed=seed)
        return Evaluator(data.n_items, ks=ks, collect_per_user=True, negatives=negatives)
    context = EvalContext.from_data(data, features=train.evaluation.ild_features, item_group=train.evaluation.eval_item_group)  # type: ignore[attr-defined]
    return Evaluator(data.n_items, ks=ks, collect_per_user=True, context=context, true_relevance=true_relevance)


def test_negatives(dm: object, train: object, *, seed: int) -> SampledNegatives:
    """Sampled negatives of every test user (deterministic in the seed): never a seen or relevant item."""
    test_set = dm.test_set  # type: ignore[attr-defined]
    popularity = np.bincount(dm.data.train.item, minlength=dm.data.n_items)  # type: ignore[attr-defined]
    return sample_negatives(
        test_set.users, [test_set.seen, test_set.relevant], dm.data.n_items, train.evaluation.eval_negatives,  # type: ignore[attr-defined]
        sampler=train.evaluation.eval_sampler, popularity=popularity, seed=seed,  # type: ignore[attr-defined]
    )  # fmt: skip


def true_relevance_for(data: object, raw_dir: str | Path | None) -> TrueRelevance | None:
    """True relevance of simulated data, for ``ndcg-true``, from the simulator's ground truth
    (``ground_truth.npz`` beside the raw files; ``benchmark.data.simulator.load_ground_truth``).

    Relevance is the simulator's own flag: the noiseless expected rating at the end of the
    user's history is at least the scale's centre + 0.5 (binary gains), i.e. affinity
    (u + w) . v_i / sqrt(d) >= mean + 0.5 std. None for real data, or when the ground truth
    is absent or does not cover the prepared users and items.
    """
    if getattr(data, "source", None) != "synthetic":
        return None
    from benchmark.data.datasets import default_raw_dir

    folder = Path(raw_dir) if raw_dir is not None else default_raw_dir(data.name)  # type: ignore[attr-defined]
    if not (folder / "ground_truth.npz").is_file():
        return None
    try:
        from benchmark.data.simulator import load_ground_truth

        truth = load_ground_truth(folder)
        import pandas as pd

        users = pd.Index(truth.user_ids).get_indexer(data.user_ids)  # type: ignore[attr-defined]
        items = pd.Index(truth.item_ids).get_indexer(data.item_ids)  # type: ignore[attr-defined]
        if (users < 0).any() or (items < 0).any():
            return None
        preference = torch.from_numpy(truth.user_factors[users] + truth.user_drift[users])  # [n_users, d]
        item_factors = torch.from_numpy(truth.item_factors[items]).T / math.sqrt(truth.item_factors.shape[1])
        threshold = truth.affinity_mean + 0.5 * truth.affinity_std
    except (ImportError, AttributeError, KeyError, OSError, ValueError) as exc:
        warnings.warn(f"ndcg-true skipped: the simulator's ground truth in {folder} could not be read ({exc})", stacklevel=2)
        return None

    def relevance(batch_users: torch.Tensor) -> torch.Tensor:
        affinity = preference[batch_users.cpu()] @ item_factors
        return (affinity >= threshold).to(torch.float64).to(batch_users.device)

    return relevance
