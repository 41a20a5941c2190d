"""``python -m benchmark perf eval``: throughput of the evaluation engine, side by side.

On the same random inputs (a user and an item embedding table, ``seen`` random seen items
and one relevant unseen item per user), in one process, it times:

- ``engine``: ``Evaluator.update`` with every accuracy metric at K (a dense dot-product
  model: scores, masking, exact top-K with lower-index tie-breaking, metric updates);
- ``raw``: the floor of any full-ranking evaluation: matmul + mask + ``torch.topk`` only;
- ``torchmetrics``: torchmetrics' ``RetrievalNormalizedDCG(top_k=K)`` fed the same masked
  scores (flattened, with query indexes), on the first ``--torchmetrics-users`` users only:
  its state keeps every score, so a full pass would need n_users x n_items floats.

Figures are users per second of each (median over ``--repeats`` rounds, the three measured
in turn in each round), and the ratios engine/raw and engine/torchmetrics.
"""

from __future__ import annotations

import logging
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.evaluation import Evaluator, mask_seen
from benchmark.metrics import ACCURACY_METRICS
from benchmark.model import RecModule

LOG = logging.getLogger(__name__)  # progress and notes: the CLI shows them on stderr


@dataclass
class PerfSetup:
    users: int = 20_000
    items: int = 59_047
    dim: int = 64
    k: int = 10
    seen: int = 50
    batch_size: int = 1024
    torchmetrics_users: int = 200
    repeats: int = 1
    seed: int = 0


class _DotModel(RecModule):
    def __init__(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> None:
        super().__init__(user_emb.shape[0], item_emb.shape[0])
        self.user_emb, self.item_emb = user_emb, item_emb

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.user_emb[batch["users"]] @ self.item_emb.T


def _inputs(setup: PerfSetup) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(setup.seed)
    user_emb = torch.randn(setup.users, setup.dim, generator=g)
    item_emb = torch.randn(setup.items, setup.dim, generator=g)
    batches = []
    for start in range(0, setup.users, setup.batch_size):
        n = min(setup.batch_size, setup.users - start)
        picks = _distinct_draws(n, setup.seen + 1, setup.items, g)
        seen, relevant = picks[:, : setup.seen], picks[:, setup.seen]
        batches.append(
            {
                "users": torch.arange(start, start + n),
                "seen_rows": torch.arange(n).repeat_interleave(setup.seen),
                "seen_items": seen.reshape(-1),
                "rel_rows": torch.arange(n),
                "rel_items": relevant,
            }
        )
    return user_emb, item_emb, batches


def _distinct_draws(n: int, m: int, n_items: int, g: torch.Generator) -> torch.Tensor:
    """[n, m] random items, distinct within each row, in random order."""
    if m > n_items:
        raise ValueError(f"perf: {m} distinct items per user need at least {m} items")
    width = min(n_items, 2 * m + 16)
    while True:
        draws = torch.randint(0, n_items, (n, width), generator=g) if width < n_items else torch.rand(n, n_items, generator=g).argsort(1)
        ordered = draws.sort(dim=1).values
        repeat = torch.zeros_like(ordered, dtype=torch.bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        if int((~repeat).sum(1).min()) >= m:
            break
        width = min(n_items, width * 2)
    unique = torch.where(repeat, n_items, ordered).sort(dim=1).values[:, :m]
    return unique.gather(1, torch.rand(n, m, generator=g).argsort(1))


def _time_engine(model: _DotModel, batches: list[dict[str, torch.Tensor]], k: int) -> float:
    evaluator = Evaluator(model.n_items, ks=(k,), metrics=tuple(ACCURACY_METRICS))
    start = time.perf_counter()
    for batch in batches:
        evaluator.update(model, batch)
    evaluator.compute()
    return time.perf_counter() - start


@torch.no_grad()
def _time_raw(model: _DotModel, batches: list[dict[str, torch.Tensor]], k: int) -> float:
    start = time.perf_counter()
    for batch in batches:
        scores = model.user_emb[batch["users"]] @ model.item_emb.T
        mask_seen(scores, batch["seen_rows"], batch["seen_items"])
        torch.topk(scores, k, dim=1)
    return time.perf_counter() - start


@torch.no_grad()
def _time_torchmetrics(model: _DotModel, batches: list[dict[str, torch.Tensor]], k: int, n_users: int) -> tuple[float, int]:
    from torchmetrics.retrieval import RetrievalNormalizedDCG

    metric = RetrievalNormalizedDCG(top_k=k)
    done, seconds = 0, 0.0
    for batch in batches:
        if done >= n_users:
            break
        start = time.perf_counter()
        scores = model.user_emb[batch["users"]] @ model.item_emb.T
        mask_seen(scores, batch["seen_rows"], batch["seen_items"])
        target = torch.zeros_like(scores, dtype=torch.bool)
        target[batch["rel_rows"], batch["rel_items"]] = True
        indexes = torch.arange(scores.shape[0]).unsqueeze(1).expand_as(scores)
        metric.update(scores.reshape(-1), target.reshape(-1), indexes=indexes.reshape(-1))
        metric.compute()
        metric.reset()  # bounds its memory to one batch; the per-batch compute is what a pass costs
        seconds += time.perf_counter() - start
        done += scores.shape[0]
    return seconds, done


def perf_eval(setup: PerfSetup, progress: bool = True) -> dict[str, Any]:
    """Median users/s of engine, raw limit and torchmetrics over ``setup.repeats`` rounds."""
    user_emb, item_emb, batches = _inputs(setup)
    model = _DotModel(user_emb, item_emb)
    rates: dict[str, list[float]] = {"engine": [], "raw": [], "torchmetrics": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _time_raw(model, batches[:1], setup.k)  # warm-up
        _time_engine(model, batches[:1], setup.k)
        for round_ in range(setup.repeats):
            rates["raw"].append(setup.users / _time_raw(model, batches, setup.k))
            rates["engine"].append(setup.users / _time_engine(model, batches, setup.k))
            seconds, n = _time_torchmetrics(model, batches, setup.k, setup.torchmetrics_users)
            rates["torchmetrics"].append(n / seconds)
            if progress:
                LOG.info(f"round {round_ + 1}/{setup.repeats}: " + ", ".join(f"{name} {values[-1]:,.0f} users/s" for name, values in rates.items()))
    engine, raw, tm = (statistics.median(rates[name]) for name in ("engine", "raw", "torchmetrics"))
    return {
        "engine_users_per_s": engine,
        "raw_users_per_s": raw,
        "torchmetrics_users_per_s": tm,
        "engine_vs_raw": engine / raw,
        "engine_vs_torchmetrics": engine / tm,
        "n_users": setup.users,
        "n_items": setup.items,
        "dim": setup.dim,
        "k": setup.k,
        "seen_per_user": setup.seen,
        "batch_size": setup.batch_size,
        "torchmetrics_users": min(setup.torchmetrics_users, setup.users),
        "repeats": setup.repeats,
        "torch_threads": torch.get_num_threads(),
    }
