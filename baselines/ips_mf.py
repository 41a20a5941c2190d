"""IPS-MF: matrix factorisation trained with an inverse-propensity-weighted BPR loss.

Implicit feedback is missing not at random: a user can only click what was shown, and
popular items are shown more. Inverse propensity scoring (IPS) reweights every observed
interaction by 1 / P(exposure) so that the training loss is, in expectation, the loss
over what users *would* like under uniform exposure.

Propensity (Saito et al., "Unbiased Recommender Learning from Missing-Not-At-Random
Implicit Feedback", WSDM 2020, section 5): item popularity with a power law,

    p_i = (n_i / max_j n_j) ** propensity_power        (eta = 0.5 by default)

where n_i is the number of distinct training users of item i (training split only: no
held-out data). Clipping: p_i is raised to at least ``min_propensity``, so a weight
w_i = 1 / max(p_i, min_propensity) is at most 1 / min_propensity (10 by default): the
usual bias-variance trade-off, since a rare item's raw weight explodes.

Loss: the unbiased pairwise (UBPR) loss of Saito, "Unbiased Pairwise Learning from
Biased Implicit Feedback", ICTIR 2020, with the negatives drawn from the user's
unobserved items. For an observed positive i and an unobserved j, the UBPR weight
(Y_ui / p_ui) (1 - Y_uj / p_uj) reduces to w_i, so the loss of a row is
w_i * mean_k -log sigmoid(s_ui - s_uj_k). Self-normalised (SNIPS): the batch loss is
sum_b w_b l_b / sum_b w_b, which keeps the loss scale of BPR and bounds the variance. We
chose the pairwise form over the pointwise Rel-MF loss because the latter's
(1 - Y/p) factor is negative for clicked items and its loss is unbounded below.

Model: BPR-MF (``baselines.bpr``): user and item embeddings with Xavier-normal
initialisation, score = dot product. The propensities are a non-persistent buffer built
from ``train_pairs=`` (``needs_train_graph``): checkpoints hold only the embeddings.

Defaults: those of BPR (embedding_dim 64, Adam, lr 1e-3, weight_decay 0, batch_size
2048, 1 negative) plus propensity_power 0.5 (Saito et al.) and min_propensity 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.model import RecModule, adam


@dataclass
class IPSMFConfig:
    """Hyper-parameters of IPS-MF."""

    embedding_dim: int = 64
    """Size of the user and item embeddings."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam L2 penalty."""
    batch_size: int = 2048
    """Training interactions (positive pairs) per batch."""
    num_negatives: int = 1
    """Negatives sampled per positive; the weighted BPR loss is taken against each of them."""
    propensity_power: float = 0.5
    """eta in p_i = (n_i / max n) ** eta; 0 gives every item p = 1 (plain BPR)."""
    min_propensity: float = 0.1
    """Clipping: propensities below this are raised to it, capping weights at 1 / min_propensity."""


def item_propensities(users: np.ndarray, items: np.ndarray, n_items: int, power: float, minimum: float) -> torch.Tensor:
    """Clipped popularity propensities, float32 [n_items]: max((n_i / max n) ** power, minimum).

    n_i counts distinct (user, item) pairs; items without training interactions get ``minimum``.
    """
    if power < 0:
        raise ValueError(f"propensity_power must be >= 0, got {power}")
    if not 0.0 < minimum <= 1.0:
        raise ValueError(f"min_propensity must be in (0, 1], got {minimum}")
    keys = np.unique(np.asarray(users, dtype=np.int64) * n_items + np.asarray(items, dtype=np.int64))
    counts = np.bincount(keys % n_items, minlength=n_items).astype(np.float64)
    top = counts.max() if len(keys) else 1.0
    raw = np.where(counts > 0, (counts / top) ** power, 0.0)
    return torch.from_numpy(np.maximum(raw, minimum).astype(np.float32))


class IPSMF(RecModule):
    """BPR-MF whose per-interaction losses are weighted by clipped inverse item propensities (self-normalised)."""

    #: the harness passes ``train_pairs`` (the training split's users and items) to __init__
    needs_train_graph: ClassVar[bool] = True

    def __init__(
        self, n_users: int, n_items: int, config: IPSMFConfig, *, train_pairs: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        super().__init__(n_users, n_items)
        if train_pairs is None:
            raise ValueError("IPS-MF needs train_pairs=(users, items) of the training split to estimate propensities")
        self.config = config
        users, items = train_pairs
        propensity = item_propensities(users, items, n_items, config.propensity_power, config.min_propensity)
        self.register_buffer("propensity", propensity, persistent=False)
        self.user_emb = nn.Embedding(n_users, config.embedding_dim)
        self.item_emb = nn.Embedding(n_items, config.embedding_dim)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)

    @property
    def weights(self) -> torch.Tensor:
        """IPS weights 1 / p_i of every item, [n_items]."""
        return self.propensity.reciprocal()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        users = self.user_emb(batch["users"])  # [B, d]
        pos = self.item_emb(batch["pos_items"])  # [B, d]
        neg = self.item_emb(batch["neg_items"])  # [B, K, d]
        pos_scores = (users * pos).sum(-1)
        neg_scores = (users.unsqueeze(1) * neg).sum(-1)
        per_row = F.softplus(neg_scores - pos_scores.unsqueeze(1)).mean(1)  # [B]: -log sigmoid(pos - neg)
        w = self.weights[batch["pos_items"]]
        loss = (w * per_row).sum() / w.sum()  # self-normalised IPS
        self.log_train_loss(loss, users.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.user_emb(batch["users"]) @ self.item_emb.weight.T
