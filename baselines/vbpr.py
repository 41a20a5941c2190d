"""VBPR: BPR matrix factorisation with a learned projection of item content features.

Reference: He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016. The paper's predictor, with the modality features of
``benchmark.data.features`` in place of the CNN image features:

    score(u, i) = beta_i + <gamma_u, gamma_i> + <theta_u, E f_i> + <beta', f_i>

gamma (``embedding_dim``) are the latent factors of BPR-MF, E projects the content vector
f_i to ``feature_dim`` "visual" factors matched by the user's theta_u, beta_i is an item
bias and beta' a global content bias. The global offset and the user bias of the paper
cancel in the pairwise loss and do not change a user's ranking, so they are left out (as
in Cornac and MMRec).

f_i is the concatenation of the modalities listed in ``modalities`` that the features
provide (text: the sentence-transformers vectors; image: the image encoder's vectors,
present only when a run sets ``image_encoder``). A modality that no item has is skipped;
at least one must be available. Missing modality rows: an item without a modality (mask
False) gets a learned "missing" vector for that modality's block of f_i instead of the
zero row (features.py leaves that vector to the model), so "no text" is a learned signal
rather than the origin of the feature space.

Loss: the BPR loss over every (interaction, negative) pair + ``reg_weight`` times the
squared L2 norm of the batch's parameters (gamma_u, theta_u, and gamma, beta of the
positive and negative items; the paper's lambda_Theta), divided by the batch size. E and
beta' are not regularised (MMRec's VBPR regularises only the batch embeddings as well).

The feature matrix is a non-persistent buffer built from ``features=`` at construction:
checkpoints hold only learned parameters, and restoring through
``benchmark.runner.build_model`` reloads the same cached features. The item side of the
score is cached while no gradient is recorded (evaluation); every training step and every
in-place weight change (e.g. ``load_state_dict``) invalidates it.

Defaults: embedding_dim 64, feature_dim 64, reg_weight 1e-4, Adam, lr 1e-3, batch_size
2048, 1 uniformly sampled negative per positive, modalities text + image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.data.features import ItemFeatures
from benchmark.model import RecModule, adam

MODALITIES = ("text", "image")


@dataclass
class VBPRConfig:
    """Hyper-parameters of VBPR."""

    embedding_dim: int = 64
    """Size of the latent (collaborative) user and item factors gamma."""
    feature_dim: int = 64
    """Size of the content factors: theta_u and the projection E f_i."""
    reg_weight: float = 1e-4
    """Weight of the squared L2 term on the batch's factors and item biases."""
    lr: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 2048
    """Training interactions (positive pairs) per batch."""
    num_negatives: int = 1
    """Negatives sampled per positive; the BPR loss is taken against each of them."""
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    """Content modalities concatenated into f_i (of "text", "image"); those the features lack are skipped."""


@dataclass
class ModalityFeatures:
    """The modalities a model uses: float32 [n_items, d_m] arrays (missing rows zero) and masks."""

    names: list[str]
    arrays: list[np.ndarray]
    masks: list[np.ndarray]  # bool [n_items] each


def select_modalities(features: ItemFeatures, wanted: list[str], n_items: int, model: str) -> ModalityFeatures:
    """The modalities of ``wanted`` that ``features`` provides for at least one item, in order.

    Raises ValueError on an unknown modality name, a wrong row count, or when none is available.
    """
    unknown = [m for m in wanted if m not in MODALITIES]
    if unknown or not wanted:
        raise ValueError(f"{model}: modalities must be a non-empty list of {list(MODALITIES)}, got {wanted!r}")
    names, arrays, masks = [], [], []
    for name in dict.fromkeys(wanted):
        values, mask = getattr(features, name), getattr(features, f"{name}_mask")
        if values is None or mask is None or not np.asarray(mask).any():
            continue
        if len(values) != n_items or len(mask) != n_items:
            raise ValueError(f"{model}: {name} features have {len(values)} rows for {n_items} items")
        names.append(name)
        arrays.append(np.asarray(values, dtype=np.float32))
        masks.append(np.asarray(mask, dtype=bool))
    if not names:
        raise ValueError(
            f"{model} needs item features of at least one of {wanted}; none is available "
            "(set text_encoder, or image_encoder for image features)"
        )
    return ModalityFeatures(names, arrays, masks)


class VBPR(RecModule):
    """BPR-MF plus a user preference over a linear projection of the items' content features."""

    #: the harness passes ``features=`` (the dataset's ItemFeatures) to __init__
    needs_item_features: ClassVar[bool] = True

    def __init__(self, n_users: int, n_items: int, config: VBPRConfig, *, features: ItemFeatures | None = None) -> None:
        super().__init__(n_users, n_items)
        if features is None:
            raise ValueError("VBPR needs features= (the dataset's ItemFeatures)")
        self.config = config
        chosen = select_modalities(features, config.modalities, n_items, "VBPR")
        self.modalities = chosen.names
        # f_i concatenated over modalities; column_modality maps each column to its modality,
        # so one gather expands the per-item presence mask to the columns.
        self.register_buffer("item_content", torch.from_numpy(np.concatenate(chosen.arrays, axis=1)), persistent=False)
        self.register_buffer("present", torch.from_numpy(np.stack(chosen.masks, axis=1)), persistent=False)
        widths = [a.shape[1] for a in chosen.arrays]
        self.register_buffer("column_modality", torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths)), persistent=False)
        content_dim = sum(widths)

        self.user_gamma = nn.Embedding(n_users, config.embedding_dim)
        self.item_gamma = nn.Embedding(n_items, config.embedding_dim)
        self.user_theta = nn.Embedding(n_users, config.feature_dim)
        self.item_bias = nn.Embedding(n_items, 1)
        self.projection = nn.Linear(content_dim, config.feature_dim, bias=False)  # E
        self.content_bias = nn.Linear(content_dim, 1, bias=False)  # beta'
        self.missing = nn.Parameter(torch.zeros(content_dim))  # learned rows for absent modalities
        for emb in (self.user_gamma, self.item_gamma, self.user_theta):
            nn.init.xavier_normal_(emb.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.content_bias.weight)
        self._cache: tuple[tuple[int, ...], torch.Tensor] | None = None

    def content(self, items: torch.Tensor) -> torch.Tensor:
        """f_i of ``items`` (any shape S): [*S, content_dim], the missing vector where a modality is absent."""
        present = self.present[items][..., self.column_modality]
        return torch.where(present, self.item_content[items], self.missing)

    def item_side(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """gamma_i, E f_i and beta_i + <beta', f_i> of ``items``."""
        f = self.content(items)
        return self.item_gamma(items), self.projection(f), self.item_bias(items).squeeze(-1) + self.content_bias(f).squeeze(-1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # the optimizer step that follows changes the weights without bumping their version
        # counters (fused Adam), so the version key alone would keep a stale item side
        self._cache = None
        users, pos_items, neg_items = batch["users"], batch["pos_items"], batch["neg_items"]
        gamma_u, theta_u = self.user_gamma(users), self.user_theta(users)  # [B, d], [B, d']
        pos_gamma, pos_visual, pos_bias = self.item_side(pos_items)  # [B, d], [B, d'], [B]
        neg_gamma, neg_visual, neg_bias = self.item_side(neg_items)  # [B, K, d], [B, K, d'], [B, K]
        pos_scores = pos_bias + (gamma_u * pos_gamma).sum(-1) + (theta_u * pos_visual).sum(-1)
        neg_scores = neg_bias + (gamma_u.unsqueeze(1) * neg_gamma).sum(-1) + (theta_u.unsqueeze(1) * neg_visual).sum(-1)
        bpr = F.softplus(neg_scores - pos_scores.unsqueeze(1)).mean()  # -log sigmoid(pos - neg)
        reg = (
            gamma_u.pow(2).sum() + theta_u.pow(2).sum() + pos_gamma.pow(2).sum() + neg_gamma.pow(2).sum()
            + self.item_bias(pos_items).pow(2).sum() + self.item_bias(neg_items).pow(2).sum()
        ) / users.shape[0]  # fmt: skip
        loss = bpr + self.config.reg_weight * reg
        self.log_train_loss(loss, users.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.config.lr)

    def _item_matrix(self) -> torch.Tensor:
        """[n_items, d + d' + 1]: gamma_i, E f_i, beta_i + <beta', f_i>; users are [gamma_u, theta_u, 1]."""
        if torch.is_grad_enabled():
            self._cache = None
            return self._build_item_matrix()
        key = tuple(v for p in self.parameters() for v in (p.data_ptr(), p._version))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._build_item_matrix())
        return self._cache[1]

    def _build_item_matrix(self) -> torch.Tensor:
        gamma, visual, bias = self.item_side(torch.arange(self.n_items, device=self.item_content.device))
        return torch.cat([gamma, visual, bias.unsqueeze(1)], dim=1)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users = batch["users"]
        ones = torch.ones(len(users), 1, device=users.device)
        return torch.cat([self.user_gamma(users), self.user_theta(users), ones], dim=1) @ self._item_matrix().T
