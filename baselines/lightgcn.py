"""LightGCN: linear graph convolution over the user-item bipartite graph.

Reference: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. Follows RecBole's ``LightGCN`` (the peer implementation we
are compared with): ego embeddings E0 of users and items (Xavier-uniform
initialisation), E_{l+1} = D^-1/2 A D^-1/2 E_l over the bipartite graph A of the
*training* interactions (binarised; degrees + 1e-7 as RecBole, so isolated nodes do not
divide by zero), final embeddings = mean of E_0 .. E_L, score = dot product of final
embeddings. Loss = BPR loss over every (interaction, negative) pair + reg_weight * the
L2 term of RecBole's ``EmbLoss`` (``require_pow`` False): the sum of the Frobenius norms
of the batch's user, positive-item and negative-item *ego* embeddings, divided by the
batch size.

The graph: models only receive batches, but LightGCN needs the training graph before its
first gradient step. The class sets ``needs_train_graph = True`` and the harness
(``benchmark.runner.build_model``) passes ``train_pairs=(users, items)`` of the training
split to ``__init__``, which builds the normalised adjacency as a non-persistent sparse
buffer: checkpoints hold only the embeddings, and restoring through ``build_model``
rebuilds the same graph from the same data. The propagated embeddings are cached while
no gradient is recorded (evaluation) and recomputed whenever the weights change.

Defaults (RecBole's): embedding_dim 64, 2 layers, reg_weight 1e-5, Adam, lr 1e-3,
batch_size 2048, 1 uniformly sampled negative per positive.

Early stopping: the registry gives LightGCN ``patience`` 30, not the harness's 10. On
ml-latest-small its training loss and validation NDCG@10 follow RecBole's epoch by epoch,
but validation stays flat (0.017-0.019) for about 20 epochs and then climbs slowly: with
patience 30 the best epochs were 132, 160 and 196 (seeds 0-2; test NDCG@10 0.0283,
0.0275, 0.0281), while patience 10 stopped on the plateau after 12-23 epochs (0.0198,
0.0236, 0.0191). RecBole has the same plateau; its 10-epoch runs went on by chance.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.model import RecModule, adam


@dataclass
class LightGCNConfig:
    """Hyper-parameters of LightGCN."""

    embedding_dim: int = 64
    """Size of the user and item (ego) embeddings."""
    n_layers: int = 2
    """Propagation layers; the final embedding averages layers 0..n_layers."""
    reg_weight: float = 1e-5
    """Weight of the L2 term on the batch's ego embeddings (RecBole's EmbLoss)."""
    lr: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 2048
    """Training interactions (positive pairs) per batch."""
    num_negatives: int = 1
    """Negatives sampled per positive; the BPR loss is taken against each of them."""


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """Sparse COO D^-1/2 A D^-1/2 of the bipartite graph (users first, then items), A binary."""
    keys = np.unique(np.asarray(users, dtype=np.int64) * n_items + np.asarray(items, dtype=np.int64))
    u, i = torch.from_numpy(keys // n_items), torch.from_numpy(keys % n_items) + n_users
    n = n_users + n_items
    rows, cols = torch.cat([u, i]), torch.cat([i, u])
    degree = torch.bincount(rows, minlength=n).to(torch.float32) + 1e-7
    d_inv_sqrt = degree.pow(-0.5)
    values = d_inv_sqrt[rows] * d_inv_sqrt[cols]
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=True).coalesce()


class _SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``, with the gradient ``adj @ grad``.

    torch's sparse backward computes ``adj.T @ grad`` through a slow generic path (4x the
    forward here); for a symmetric matrix that product is the forward product again.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, ctx.adj @ grad


class LightGCN(RecModule):
    """Mean of 0..L rounds of normalised neighbourhood averaging of the embeddings; score = dot product."""

    #: the harness passes ``train_pairs`` (the training split's users and items) to __init__
    needs_train_graph: ClassVar[bool] = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        config: LightGCNConfig,
        *,
        train_pairs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__(n_users, n_items)
        if train_pairs is None:
            raise ValueError("LightGCN needs train_pairs=(users, items) of the training split to build its graph")
        self.config = config
        self.user_emb = nn.Embedding(n_users, config.embedding_dim)
        self.item_emb = nn.Embedding(n_items, config.embedding_dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        # CSR (fastest sparse @ dense on CPU); a plain attribute, not a buffer, so DDP never
        # broadcasts it; propagate() moves it to the embeddings' device.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.norm_adj = normalized_adjacency(*train_pairs, n_users, n_items).to_sparse_csr()
        self._cache: tuple[tuple[int, ...], torch.Tensor, torch.Tensor] | None = None

    def _propagate_nodes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ego, final) embeddings of all nodes [n_users + n_items, d], users first."""
        ego = torch.cat([self.user_emb.weight, self.item_emb.weight])
        if self.norm_adj.device != ego.device:
            self.norm_adj = self.norm_adj.to(ego.device)
        # the layer mean as a running sum: torch.stack(layers).mean(0) copies every layer into a
        # [L + 1, N, d] block and its backward materialises another; that was half of a step
        x = total = ego
        for _ in range(self.config.n_layers):
            x = _SymmetricSpMM.apply(self.norm_adj, x)
            total = total + x
        return ego, total / (self.config.n_layers + 1)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (layer-averaged) user and item embeddings: [n_users, d], [n_items, d]."""
        final = self._propagate_nodes()[1]
        return final[: self.n_users], final[self.n_users :]

    def _final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``propagate()``, cached while no gradient is recorded, until the weights change."""
        if torch.is_grad_enabled():
            self._cache = None
            return self.propagate()
        weights = (self.user_emb.weight, self.item_emb.weight)
        key = tuple(v for w in weights for v in (w.data_ptr(), w._version))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, *self.propagate())
        return self._cache[1], self._cache[2]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # the optimizer step that follows changes the weights without bumping their version
        # counters (fused Adam), so the version key alone would keep stale evaluation embeddings
        self._cache = None
        ego_all, final_all = self._propagate_nodes()
        users, pos_items, neg_items = batch["users"], batch["pos_items"], batch["neg_items"]
        # one gather per table for users, positives and negatives: each gather's backward is a
        # dense [n_users + n_items, d] gradient, so one instead of six halves the step on a CPU
        nodes = torch.cat([users, pos_items + self.n_users, neg_items.flatten() + self.n_users])
        b = len(users)
        parts = [b, b, neg_items.numel()]  # split, not slicing: a slice's backward zero-fills the whole tensor
        u, pos, neg = final_all.index_select(0, nodes).split(parts)
        neg = neg.view(*neg_items.shape, -1)
        pos_scores = (u * pos).sum(-1)  # [B]
        neg_scores = (u.unsqueeze(1) * neg).sum(-1)  # [B, K]; elementwise beats bmm for small K
        bpr = F.softplus(neg_scores - pos_scores.unsqueeze(1)).mean()  # -log sigmoid(pos - neg)
        reg = sum(torch.linalg.vector_norm(e) for e in ego_all.index_select(0, nodes).split(parts)) / b
        loss = bpr + self.config.reg_weight * reg
        self.log_train_loss(loss, users.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.config.lr)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        user_all, item_all = self._final_embeddings()
        return user_all[batch["users"]] @ item_all.T
