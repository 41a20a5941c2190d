"""LLM4Rec module 3: causal debiasing -- propensities and IPS weights, an adversarial
popularity head with gradient reversal, and an exposure-parity penalty.

The paper: an IPS loss (1/|D|) sum l(r_ui, r^_ui) / e(u, i); an adversarial loss
-sum_s P(S=s) log P(S=s | r^); a parity bound |P(r^ > tau | s1) - P(r^ > tau | s2)| <= eps.
The propensity model, clipping, the sensitive attribute, tau and eps are open; ours
(llm4rec/README.md):

- Propensity e(u, i) of an observed interaction:
  ``popularity``: e_i = (n_i / max_j n_j) ** power (a power law of the item's training
  count; Yang et al. 2018 use power 0.5); or ``logistic``: an exposure model
  P(O_ui = 1) = sigmoid(a + b log(1 + n_i) + c log(1 + n_u)) fitted by logistic regression
  on the training pairs against uniformly sampled unobserved pairs, with the
  case-control intercept correction log(n_sampled / n_unobserved) so that it estimates
  the real observation rate (and per-user activity enters, as in the simulator's truth).
- IPS weights w = 1 / max(e, clip), self-normalised (divided by their batch mean): the
  loss becomes sum w l / sum w (SNIPS), whose variance clipping and normalisation bound.
- The sensitive attribute: no dataset has user demographics, so the attribute is the
  *item popularity group* (quantiles of training counts; 2 groups = the top 20% "head"
  items, as in the evaluation, and the rest). A head predicts it from the user-item
  representation z = u * v_i, and the encoder is trained so that z tells nothing about
  it, in one of two ways (``PopularityAdversary(kind=...)``):
  ``grl``: the paper's adversary, a gradient-reversal layer (Ganin & Lempitsky 2015)
  between z and the head: one cross-entropy, minimised by the head and maximised by the
  encoder, whose reversed gradient is scaled by lambda (the adversarial weight, ramped up
  over training by Ganin's schedule 2 / (1 + exp(-10 p)) - 1 of the training progress p);
  ``prior``: prior matching, the head trained on detached z, the encoder trained to make
  the fixed head's prediction equal the prior P(S) (the paper's term
  -sum_s P(S=s) log P(S=s | z), which is bounded, unlike the reversed cross-entropy).
- Parity: tau = the row's K-th highest score (so "r^ > tau" = "in the top K");
  P(in top K | head) and P(in top K | tail) are estimated with a soft indicator
  sigmoid((r^ - tau) / T) averaged over each group's items; the penalty is
  relu(|gap| - eps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError

PropensityKind = Literal["popularity", "logistic"]
HEAD_FRACTION = 0.2  # as benchmark.evaluation: head = the top 20% of items by training interactions


# --- propensities ----------------------------------------------------------------------


def popularity_propensity(item_counts: np.ndarray, power: float = 0.5) -> np.ndarray:
    """e_i = (n_i / max n) ** power; items never seen in training count as half an interaction."""
    counts = np.asarray(item_counts, dtype=np.float64)
    if power < 0:
        raise BenchmarkError(f"propensity_power must be >= 0, got {power}")
    top = max(counts.max(initial=0.0), 1.0)
    return np.power(np.maximum(counts, 0.5) / top, power)


@dataclass
class LogisticExposure:
    """P(O_ui = 1) = sigmoid(a + b log(1 + n_i) + c log(1 + n_u)) (fitted by ``fit``)."""

    intercept: float
    item_coef: float
    user_coef: float

    @classmethod
    def fit(
        cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, *, negatives_per_positive: int = 4,
        max_positives: int = 500_000, seed: int = 0,
    ) -> LogisticExposure:  # fmt: skip
        """Fit on the observed pairs (at most ``max_positives``, a uniform sample) against
        ``negatives_per_positive`` uniform unobserved pairs each; the intercept is corrected
        for both sampling rates."""
        from sklearn.linear_model import LogisticRegression

        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        if len(users) == 0:
            raise BenchmarkError("logistic propensity: no training interactions to fit on")
        n_u = np.bincount(users, minlength=n_users).astype(np.float64)
        n_i = np.bincount(items, minlength=n_items).astype(np.float64)
        rng = np.random.default_rng(seed)
        observed = np.unique(users * n_items + items)
        positive_rate = 1.0
        if len(users) > max_positives:  # counts above come from every pair; the fit needs only a sample
            keep = rng.choice(len(users), max_positives, replace=False)
            positive_rate = max_positives / len(users)
            users, items = users[keep], items[keep]
        m = negatives_per_positive * len(users)
        neg_u, neg_i = rng.integers(0, n_users, m), rng.integers(0, n_items, m)
        key = neg_u * n_items + neg_i
        at = np.minimum(np.searchsorted(observed, key), len(observed) - 1)
        unobserved = observed[at] != key
        neg_u, neg_i = neg_u[unobserved], neg_i[unobserved]
        if len(neg_u) == 0:  # (nearly) every pair observed: every propensity is 1
            return cls(float(np.log(np.finfo(np.float32).max) / 2), 0.0, 0.0)
        x = np.stack([np.log1p(np.concatenate([n_i[items], n_i[neg_i]])), np.log1p(np.concatenate([n_u[users], n_u[neg_u]]))], axis=1)
        y = np.concatenate([np.ones(len(users)), np.zeros(len(neg_u))])
        model = LogisticRegression(C=1e4, max_iter=1000).fit(x, y)
        # case-control correction: negatives were subsampled from all unobserved pairs
        total_unobserved = float(n_users) * n_items - len(observed)
        intercept = float(model.intercept_[0]) + float(np.log(len(neg_u) / total_unobserved)) - float(np.log(positive_rate))
        return cls(intercept, float(model.coef_[0, 0]), float(model.coef_[0, 1]))

    def __call__(self, user_counts: np.ndarray | torch.Tensor, item_counts: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(item_counts, torch.Tensor):
            logit = self.intercept + self.item_coef * torch.log1p(item_counts.float()) + self.user_coef * torch.log1p(user_counts.float())
            return torch.sigmoid(logit)
        logit = self.intercept + self.item_coef * np.log1p(item_counts) + self.user_coef * np.log1p(user_counts)
        return 1.0 / (1.0 + np.exp(-logit))


def ips_weights(propensity: torch.Tensor, clip: float = 0.05, self_normalise: bool = True) -> torch.Tensor:
    """w = 1 / max(e, clip); self-normalised to mean 1 over the given entries."""
    if not 0 < clip <= 1:
        raise BenchmarkError(f"ips_clip must lie in (0, 1], got {clip}")
    w = 1.0 / propensity.clamp(min=clip)
    if self_normalise and w.numel():
        w = w / w.mean()
    return w


def popularity_groups(item_counts: np.ndarray, n_groups: int = 2) -> np.ndarray:
    """Group of every item by training popularity: 0 = most popular. Two groups: the top
    20% (ties by lower index, as the evaluation's head items) and the rest; more groups:
    equal-size popularity quantiles."""
    counts = np.asarray(item_counts)
    n = len(counts)
    if n_groups < 2:
        raise BenchmarkError(f"popularity_groups must be >= 2, got {n_groups}")
    order = np.lexsort((np.arange(n), -counts))  # most popular first, ties by lower index
    groups = np.empty(n, dtype=np.int64)
    if n_groups == 2:
        head = int(np.ceil(HEAD_FRACTION * n))
        groups[order] = (np.arange(n) >= head).astype(np.int64)
    else:
        groups[order] = np.minimum(np.arange(n) * n_groups // max(n, 1), n_groups - 1)
    return groups


# --- adversary ---------------------------------------------------------------------------


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient multiplied by -scale backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def grl_schedule(progress: float) -> float:
    """Ganin's ramp 2 / (1 + exp(-10 p)) - 1 of the training progress p in [0, 1]: 0 -> 1."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


AdversaryKind = Literal["prior", "grl"]


class PopularityAdversary(nn.Module):
    """A head predicting the target item's popularity group from z = u * v, and the encoder's
    adversarial objective against it (module docstring: ``grl`` or ``prior``)."""

    def __init__(self, dim: int, prior: torch.Tensor, hidden: int = 64, kind: AdversaryKind = "prior") -> None:
        super().__init__()
        if prior.dim() != 1 or len(prior) < 2 or not torch.isclose(prior.sum(), torch.tensor(1.0, dtype=prior.dtype)):
            raise BenchmarkError(f"adversary: the group prior must be a distribution over >= 2 groups, got {prior.tolist()}")
        if kind not in ("prior", "grl"):
            raise BenchmarkError(f"adversary must be 'prior' or 'grl', got {kind!r}")
        self.kind = kind
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, len(prior)))
        self.register_buffer("prior", prior.float(), persistent=False)

    def forward(self, user: torch.Tensor, item: torch.Tensor, group: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to add, the head's cross-entropy) for pairs whose items are in ``group``;
        ``weight`` scales the encoder's side (lambda), never the head's own training."""
        z = user * item
        if self.kind == "grl":
            head = F.cross_entropy(self.net(GradientReversal.apply(z, weight)), group)
            return head, head.detach()
        head = self.head_loss(z, group)
        return head + weight * self.prior_matching(z), head.detach()

    def head_loss(self, z: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """The head's cross-entropy on detached representations: it never moves the encoder."""
        return F.cross_entropy(self.net(z.detach()), group)

    def prior_matching(self, z: torch.Tensor) -> torch.Tensor:
        """-sum_s P(S=s) log P(S=s | z) through the head held fixed: it moves the representation only."""
        fixed = {name: p.detach() for name, p in self.net.named_parameters()}
        log_p = F.log_softmax(torch.func.functional_call(self.net, fixed, (z,)), dim=-1)
        return -(self.prior * log_p).sum(-1).mean()


# --- parity ------------------------------------------------------------------------------


def exposure_parity_penalty(scores: torch.Tensor, is_head: torch.Tensor, k: int = 10, temperature: float = 1.0, epsilon: float = 0.0) -> torch.Tensor:
    """relu(|P(top-K | head) - P(top-K | tail)| - eps), averaged over rows of ``scores`` [N, n_items].

    "In the top K" is the soft indicator sigmoid((s - tau) / T) with tau the row's K-th
    highest score (no gradient through tau); P(. | group) its mean over the group's items.
    """
    if scores.numel() == 0 or is_head.all() or not is_head.any():
        return scores.sum() * 0.0
    if temperature <= 0:
        raise BenchmarkError(f"parity_temperature must be > 0, got {temperature}")
    kk = min(k, scores.shape[1])
    tau = scores.detach().topk(kk, dim=1).values[:, -1:]
    inside = torch.sigmoid((scores - tau) / temperature)
    head = is_head.to(scores.dtype)
    p_head = inside @ head / head.sum()
    p_tail = inside @ (1 - head) / (1 - head).sum()
    return F.relu((p_head - p_tail).abs() - epsilon).mean()


# --- agreement with the simulator's true propensities -----------------------------------------


def propensity_agreement(estimated: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson correlation (of log propensities) between estimates and the truth."""
    from scipy.stats import pearsonr, spearmanr

    est, tru = np.asarray(estimated, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if est.shape != tru.shape or len(est) < 3:
        raise BenchmarkError(f"propensity_agreement: need matching arrays of >= 3 values, got {est.shape} and {tru.shape}")
    floor = 1e-12
    return {
        "spearman": float(spearmanr(est, tru).statistic),
        "pearson_log": float(pearsonr(np.log(np.maximum(est, floor)), np.log(np.maximum(tru, floor))).statistic),
        "n_pairs": float(len(est)),
    }


def simulator_propensity_report(data: object, *, power: float = 0.5, seed: int = 0) -> dict[str, dict[str, float]] | None:
    """On simulated data: agreement of both propensity models with the simulator's true
    exposure propensity, over the held-out pairs of the prepared ground truth
    (``data.truth.heldout``: test, validation and random unobserved pairs of every user).
    None for real data or without ground truth."""
    truth = getattr(data, "truth", None)
    if truth is None or truth.heldout is None:
        return None
    held = truth.heldout
    users, items, true = held["user"].to_numpy(), held["item"].to_numpy(), held["propensity"].to_numpy()
    train = data.train  # type: ignore[attr-defined]
    n_users, n_items = data.n_users, data.n_items  # type: ignore[attr-defined]
    item_counts = np.bincount(train.item, minlength=n_items)
    user_counts = np.bincount(train.user, minlength=n_users)
    logistic = LogisticExposure.fit(train.user, train.item, n_users, n_items, seed=seed)
    return {
        "popularity": propensity_agreement(popularity_propensity(item_counts, power)[items], true),
        "logistic": propensity_agreement(np.asarray(logistic(user_counts[users], item_counts[items])), true),
    }
