"""The Evaluator: ranks each evaluation batch, updates every metric, keeps per-user values."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from benchmark.evaluation.context import EvalContext
from benchmark.evaluation.ranking import _valid_ids, rank
from benchmark.evaluation.sampled import SampledNegatives
from benchmark.evaluation.truth import TrueRelevance
from benchmark.metrics import ACCURACY_METRICS, BEYOND_METRICS, RankedBatch, ValidRatio

if TYPE_CHECKING:
    from benchmark.model import RecModule


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
        items, valid = rank(model, batch, self.max_k, n_items=self.n_items, negatives=self.negatives)
        self.update_lists(batch, items, valid, lists_from_ids=type(model).is_generative())

    def evaluate(self, model: RecModule, datamodule: Any, stage: str = "test", *, trainer: Any = None) -> dict[str, float]:
        """Every metric of ``model`` on ``datamodule``'s ``stage`` ("valid" or "test") users,
        synced across processes; the model keeps this evaluator attached. ``trainer``: a
        Lightning trainer to run the pass (default: one CPU process, no logger)."""
        if stage not in ("valid", "test"):
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
        if trainer is None:
            import lightning.pytorch as L

            trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                                enable_checkpointing=False, use_distributed_sampler=False)  # fmt: skip
        model.attach_evaluator(self)
        (trainer.test if stage == "test" else trainer.validate)(model, datamodule=datamodule, verbose=False)
        return dict(model.evaluation_results[stage])

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


def _concat(tensors: list[torch.Tensor], dtype: torch.dtype) -> np.ndarray:
    if not tensors:
        return torch.empty(0, dtype=dtype).numpy()
    return torch.cat(tensors).to(dtype).numpy()

