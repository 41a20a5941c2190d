"""True relevance of simulated data, for ``ndcg-true``, from the prepared data's ground truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from benchmark.data.prepare import PreparedData

# A callable giving graded true relevance (>= 0) of every item for a batch of users:
# users LongTensor [B] -> FloatTensor [B, n_items] (simulated data; for ``ndcg-true``).
TrueRelevance = Callable[[torch.Tensor], torch.Tensor]


def true_relevance_for(data: PreparedData) -> TrueRelevance | None:
    """True relevance of simulated data, for ``ndcg-true``, from ``data.truth`` (the simulator's
    ground truth, stored with the prepared data and aligned with its internal ids).

    Relevance is the simulator's own flag: the noiseless expected rating at the end of the
    user's history is at least the scale's centre + 0.5 (binary gains), i.e. affinity
    (u + w) . v_i / sqrt(d) >= mean + 0.5 std. None for real data and for simulated data
    prepared without a ground truth that covers its users and items.
    """
    truth = data.truth
    if truth is None:
        return None
    preference = torch.from_numpy(truth.user_factors + truth.user_drift)  # [n_users, d]
    item_factors = torch.from_numpy(truth.item_factors).T / math.sqrt(truth.item_factors.shape[1])
    threshold = truth.affinity_mean + 0.5 * truth.affinity_std

    def relevance(batch_users: torch.Tensor) -> torch.Tensor:
        affinity = preference[batch_users.cpu()] @ item_factors
        return (affinity >= threshold).to(torch.float64).to(batch_users.device)

    return relevance
