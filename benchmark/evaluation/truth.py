"""True relevance of simulated data, for ``ndcg-true``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

# A callable giving graded true relevance (>= 0) of every item for a batch of users:
# users LongTensor [B] -> FloatTensor [B, n_items] (simulated data; for ``ndcg-true``).
TrueRelevance = Callable[[torch.Tensor], torch.Tensor]


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
