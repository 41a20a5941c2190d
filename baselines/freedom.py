"""FREEDOM: a frozen item-item graph from content features plus a denoised user-item graph.

Reference: Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for
Multimodal Recommendation", ACM MM 2023. Follows the authors' implementation in MMRec
(``FREEDOM.py``), the peer we are compared with:

- Frozen item-item graph, built once at construction: per modality, the top-``knn_k``
  cosine neighbours of every item (the item itself included, as MMRec), each row
  normalised D^-1/2 A D^-1/2 (every row has k entries, so each edge weighs 1/k); the
  modality graphs are summed with weights ``image_weight`` (image) and 1 - image_weight
  (text). Item-side embedding h = S^{n_mm_layers} e_item (ID embeddings convolved over S).
- Denoised user-item graph: before every training epoch, degree-sensitive edge pruning
  keeps (1 - ``edge_dropout``) of the training edges, drawn without replacement with
  probability proportional to 1/sqrt(d_u d_i) (edges between low-degree nodes are kept
  more often), and re-normalises the kept graph D^-1/2 A D^-1/2. MMRec draws with
  ``torch.multinomial``; we draw with the equivalent Gumbel top-k (exponential keys), which
  has no 2^24 category limit (MovieLens-25M has 20M+ edges). Evaluation uses the full graph.
- LightGCN propagation over the (pruned) user-item graph for ``n_ui_layers`` layers, mean
  of the layers; final item embedding = that mean + h; score = dot product.
- Loss: BPR loss on the final embeddings over every (interaction, negative) pair, plus
  ``reg_weight`` times, per modality m, the BPR loss of the propagated user embedding
  against the projected content features W_m x_i + b_m of the positive and negative items
  (the paper's modality terms; MMRec ``calculate_loss``).

Deviations from MMRec, documented: (1) the raw content features are frozen buffers (MMRec
wraps them in a trainable ``nn.Embedding``); only the projections W_m, b_m learn. (2)
Missing modalities: items without a modality (mask False) take no part in that
modality's kNN graph (neither as row nor as neighbour), an item's modality weights are
renormalised over the modalities it has (an item with text only gets its text graph row
at weight 1), and in the modality loss its projected feature is that of a learned
"missing" vector. MMRec assumes every item has every modality (a zero row would give NaN
cosines there). (3) The pruning draw is seeded from the run seed and the epoch, so a run
is reproducible.

The two graphs are non-persistent buffers rebuilt from ``train_pairs=`` and
``features=`` at construction (``needs_train_graph`` and ``needs_item_features``):
checkpoints hold only learned parameters. kNN search runs in row blocks, so memory stays
O(block x n_items) rather than O(n_items^2). The propagated embeddings are cached while no
gradient is recorded (evaluation); every training step and every in-place weight change
(e.g. ``load_state_dict``) invalidates them.

Defaults (MMRec's FREEDOM.yaml and overall.yaml): embedding_dim 64 (also the projected
feature size, which must match it for the modality loss), knn_k 10, n_mm_layers 1,
n_ui_layers 2, image_weight 0.1, edge_dropout 0.8, reg_weight 1e-4 (from MMRec's grid
0, 1e-5, 1e-4, 1e-3), Adam, lr 1e-3, batch_size 2048, 1 uniformly sampled negative per
positive, modalities text + image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.lightgcn import normalized_adjacency
from baselines.vbpr import MODALITIES, select_modalities
from benchmark.data.features import ItemFeatures
from benchmark.model import RecModule, adam

KNN_BLOCK_ELEMENTS = 1 << 24  # similarity entries computed at once (64 MiB of float32)


@dataclass
class FREEDOMConfig:
    """Hyper-parameters of FREEDOM."""

    embedding_dim: int = 64
    """Size of the user and item ID embeddings and of the projected content features."""
    knn_k: int = 10
    """Neighbours per item in each modality's frozen item-item graph."""
    n_mm_layers: int = 1
    """Convolutions of the item ID embeddings over the item-item graph."""
    n_ui_layers: int = 2
    """LightGCN layers over the user-item graph; the result averages layers 0..n_ui_layers."""
    image_weight: float = 0.1
    """Weight of the image graph in the item-item graph (text gets 1 - image_weight)."""
    edge_dropout: float = 0.8
    """Share of user-item training edges pruned (degree-sensitive) before each epoch; 0 keeps all."""
    reg_weight: float = 1e-4
    """Weight of the modality BPR terms (user vs projected content features)."""
    lr: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 2048
    """Training interactions (positive pairs) per batch."""
    num_negatives: int = 1
    """Negatives sampled per positive; the BPR losses are taken against each of them."""
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    """Content modalities used (of "text", "image"); those the features lack are skipped."""


def knn_graph(values: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor, k: int) -> torch.Tensor:
    """Sparse [n, n] top-k cosine kNN graph over the rows where ``mask`` is True, rows normalised.

    Row i (a present item) holds its min(k, n_present) most similar present items (itself
    included), each with weight D^-1/2 A D^-1/2 = 1/k'; rows of absent items are empty.
    """
    if k < 1:
        raise ValueError(f"knn_k must be >= 1, got {k}")
    x = torch.as_tensor(values, dtype=torch.float32)
    present = torch.as_tensor(mask, dtype=torch.bool)
    n = x.shape[0]
    ids = torch.nonzero(present).squeeze(1)
    k_eff = min(k, len(ids))
    if k_eff == 0:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (n, n), check_invariants=True).coalesce()
    unit = F.normalize(x[ids], dim=1)
    block = max(1, KNN_BLOCK_ELEMENTS // len(ids))
    neighbours = torch.cat([torch.topk(unit[s : s + block] @ unit.T, k_eff, dim=1).indices for s in range(0, len(ids), block)])
    rows = ids.repeat_interleave(k_eff)
    cols = ids[neighbours.reshape(-1)]
    values_ = torch.full((len(rows),), 1.0 / k_eff)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values_, (n, n), check_invariants=True).coalesce()


def item_item_graph(arrays: list[np.ndarray], masks: list[np.ndarray], weights: list[float], k: int) -> torch.Tensor:
    """The weighted sum of the modality kNN graphs, each item's weights renormalised over its modalities."""
    present = torch.from_numpy(np.stack(masks, axis=1)).float()  # [n, M]
    raw = torch.tensor(weights, dtype=torch.float32) * present
    share = raw / raw.sum(1, keepdim=True).clamp_min(1e-12)  # rows of items without any modality stay 0
    total = None
    for m, (values, mask) in enumerate(zip(arrays, masks)):
        graph = knn_graph(values, mask, k)
        rows = graph.indices()[0]
        weighted = torch.sparse_coo_tensor(graph.indices(), graph.values() * share[rows, m], graph.shape, check_invariants=True)
        total = weighted if total is None else total + weighted
    return total.coalesce()


def prune_edges(
    users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int, keep: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Degree-sensitive pruning: round(len * keep) distinct edges drawn with P ~ 1/sqrt(d_u d_i), without replacement.

    Gumbel top-k: the k largest log w + Gumbel noise are a draw of k items without
    replacement with probabilities proportional to w (the same law as torch.multinomial).
    """
    n_keep = int(len(users) * keep)
    du = torch.bincount(users, minlength=n_users).float() + 1e-7
    di = torch.bincount(items, minlength=n_items).float() + 1e-7
    log_w = -0.5 * (du[users].log() + di[items].log())
    uniform = torch.rand(len(users), generator=generator).clamp_min(1e-12)
    kept = torch.topk(log_w - torch.log(-torch.log(uniform)), n_keep).indices
    return users[kept], items[kept]


class FREEDOM(RecModule):
    """LightGCN on a per-epoch pruned user-item graph + item ID embeddings convolved over a frozen content kNN graph."""

    needs_train_graph: ClassVar[bool] = True
    needs_item_features: ClassVar[bool] = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        config: FREEDOMConfig,
        *,
        train_pairs: tuple[np.ndarray, np.ndarray] | None = None,
        features: ItemFeatures | None = None,
    ) -> None:
        super().__init__(n_users, n_items)
        if train_pairs is None:
            raise ValueError("FREEDOM needs train_pairs=(users, items) of the training split to build its user-item graph")
        if features is None:
            raise ValueError("FREEDOM needs features= (the dataset's ItemFeatures) to build its item-item graph")
        if not 0.0 <= config.edge_dropout < 1.0:
            raise ValueError(f"edge_dropout must be in [0, 1), got {config.edge_dropout}")
        if not 0.0 <= config.image_weight <= 1.0:
            raise ValueError(f"image_weight must be in [0, 1], got {config.image_weight}")
        self.config = config
        chosen = select_modalities(features, config.modalities, n_items, "FREEDOM")
        self.modalities = chosen.names
        weights = [config.image_weight if m == "image" else 1.0 - config.image_weight for m in chosen.names]
        self.register_buffer("item_graph", item_item_graph(chosen.arrays, chosen.masks, weights, config.knn_k), persistent=False)
        self.register_buffer("norm_adj", normalized_adjacency(*train_pairs, n_users, n_items), persistent=False)
        keys = np.unique(np.asarray(train_pairs[0], dtype=np.int64) * n_items + np.asarray(train_pairs[1], dtype=np.int64))
        self.register_buffer("edge_users", torch.from_numpy(keys // n_items), persistent=False)
        self.register_buffer("edge_items", torch.from_numpy(keys % n_items), persistent=False)
        self.masked_adj: torch.Tensor | None = None  # the pruned graph of the current epoch

        self.user_emb = nn.Embedding(n_users, config.embedding_dim)
        self.item_emb = nn.Embedding(n_items, config.embedding_dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        for name, values, mask in zip(chosen.names, chosen.arrays, chosen.masks):
            self.register_buffer(f"{name}_features", torch.from_numpy(values), persistent=False)
            self.register_buffer(f"{name}_present", torch.from_numpy(mask), persistent=False)
        self.projections = nn.ModuleDict({m: nn.Linear(a.shape[1], config.embedding_dim) for m, a in zip(chosen.names, chosen.arrays)})
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(a.shape[1])) for m, a in zip(chosen.names, chosen.arrays)})
        self._cache: tuple[tuple[int, ...], torch.Tensor, torch.Tensor] | None = None

    # --- graphs ------------------------------------------------------------------------
    def prune(self, epoch: int) -> torch.Tensor:
        """The normalised adjacency of this epoch's degree-sensitively pruned training graph."""
        if self.config.edge_dropout <= 0.0:
            return self.norm_adj
        # seeded by the run seed (seed_everything) and the epoch: reproducible, fresh each epoch
        generator = torch.Generator().manual_seed((torch.initial_seed() * 1_000_003 + epoch) % (1 << 63))
        keep = 1.0 - self.config.edge_dropout
        users, items = prune_edges(self.edge_users.cpu(), self.edge_items.cpu(), self.n_users, self.n_items, keep, generator)
        return normalized_adjacency(users.numpy(), items.numpy(), self.n_users, self.n_items).to(self.norm_adj.device)

    def on_train_epoch_start(self) -> None:
        self.masked_adj = self.prune(self.current_epoch)

    def propagate(self, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item embeddings over the user-item graph ``adj``: [n_users, d], [n_items, d]."""
        h = self.item_emb.weight
        for _ in range(self.config.n_mm_layers):
            h = torch.sparse.mm(self.item_graph, h)
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        layers = [x]
        for _ in range(self.config.n_ui_layers):
            x = torch.sparse.mm(adj, x)
            layers.append(x)
        final = torch.stack(layers).mean(0)
        return final[: self.n_users], final[self.n_users :] + h

    def _final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``propagate`` over the full graph, cached while no gradient is recorded, until the weights change."""
        if torch.is_grad_enabled():
            self._cache = None
            return self.propagate(self.norm_adj)
        weights = (self.user_emb.weight, self.item_emb.weight)
        key = tuple(v for w in weights for v in (w.data_ptr(), w._version))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, *self.propagate(self.norm_adj))
        return self._cache[1], self._cache[2]

    # --- training ------------------------------------------------------------------------
    def projected(self, modality: str, items: torch.Tensor) -> torch.Tensor:
        """W_m x_i + b_m of ``items`` (any shape), the learned missing vector where the item lacks the modality."""
        present = getattr(self, f"{modality}_present")[items].unsqueeze(-1)
        x = torch.where(present, getattr(self, f"{modality}_features")[items], self.missing[modality])
        return self.projections[modality](x)

    @staticmethod
    def _bpr(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Mean -log sigmoid(<u, pos> - <u, neg_k>) over rows and negatives: u, pos [B, d]; neg [B, K, d]."""
        pos_scores = (u * pos).sum(-1, keepdim=True)
        neg_scores = (u.unsqueeze(1) * neg).sum(-1)
        return F.softplus(neg_scores - pos_scores).mean()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # the optimizer step that follows changes the weights without bumping their version
        # counters (fused Adam), so the version key alone would keep stale embeddings
        self._cache = None
        if self.masked_adj is None:  # a step outside a Trainer epoch (tests): prune as for epoch 0
            self.masked_adj = self.prune(0)
        user_all, item_all = self.propagate(self.masked_adj)
        users, pos_items, neg_items = batch["users"], batch["pos_items"], batch["neg_items"]
        u = user_all[users]
        loss = self._bpr(u, item_all[pos_items], item_all[neg_items])
        for m in self.modalities:
            loss = loss + self.config.reg_weight * self._bpr(u, self.projected(m, pos_items), self.projected(m, neg_items))
        self.log_train_loss(loss, users.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.config.lr)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        user_all, item_all = self._final_embeddings()
        return user_all[batch["users"]] @ item_all.T
