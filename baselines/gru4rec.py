"""GRU4Rec: session-based recommendation with a GRU, trained with full cross-entropy.

Reference: Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with
Recurrent Neural Networks", ICLR 2016. As in the replicability literature (and RecBole's
``GRU4Rec``, the peer implementation we are compared with) it is trained with the
cross-entropy over ALL items, not with the original sampled ranking losses: item
embedding, dropout, a GRU, a linear layer from the hidden size back to the embedding
size, and a dot product with the item embeddings (output layer tied to the input
embedding). The loss is taken at every position of a window that has a next item.

Sequences are left-padded with ``pad = n_items``. Before the GRU each row is rotated so
that its real items come first and its padding last (right alignment); a GRU is causal,
so the states of the real items never see the padding, and a left-padded history scores
exactly as the same history without padding. An all-pad history reads only the (zero)
pad embedding and gives finite scores.

Defaults (RecBole's): embedding 64, hidden 128, 1 GRU layer, dropout 0.3 on the input
embeddings, Adam lr 1e-3, weight_decay 0, xavier initialisation; max_seq_length 50;
batch_size 48 windows. RecBole's batch is 2048 single targets; a window of ours trains up
to max_seq_length targets (43 on average on ml-latest-small), so 48 windows make a step of
about 2,000 targets and as many Adam steps per epoch as RecBole (48 against 49 on
ml-latest-small).
With 128 windows (18 steps per epoch) GRU4Rec was under-trained when validation noise
stopped it: training loss 7.7 after 17 epochs, test NDCG@10 0.0195 (mean of 3 seeds)
against RecBole's 0.0308. With 48 windows: 0.0309 +- 0.0051 (seeds 0-2: 0.0251, 0.0331,
0.0346; best epochs 17, 55, 23).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.model import RecModule, TrainBatchKind, adam


@dataclass
class GRU4RecConfig:
    """Hyper-parameters of GRU4Rec."""

    embedding_size: int = 64
    """Item embedding size (also the size of the output projection)."""
    hidden_size: int = 128
    """GRU hidden-state size."""
    n_layers: int = 1
    """Stacked GRU layers."""
    dropout: float = 0.3
    """Dropout on the input item embeddings."""
    max_seq_length: int = 50
    """Items of history the model reads (training windows and evaluation histories)."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam L2 penalty."""
    batch_size: int = 48
    """Training windows per batch (about 2,000 next-item targets, RecBole's step size)."""
    bucket_batches: bool = False
    """Batch windows of similar length (equal target counts per batch, padding trimmed):
    the same steps per epoch with far less padding on sparse data (RecDataModule)."""


class GRU4Rec(RecModule):
    """GRU4Rec with a tied output layer, trained with cross-entropy over all items."""

    train_batches: ClassVar[TrainBatchKind] = "sequential"

    def __init__(self, n_users: int, n_items: int, config: GRU4RecConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        self.pad = n_items
        self.item_emb = nn.Embedding(n_items + 1, config.embedding_size, padding_idx=self.pad)
        self.emb_dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.embedding_size, config.hidden_size, num_layers=config.n_layers, batch_first=True, bias=False)
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[self.pad].zero_()
        for name, param in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(param)
        nn.init.xavier_normal_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def _rotation(self, seq: torch.Tensor) -> torch.Tensor:
        """Gather index [B, L] that moves the left padding of seq [B, L] to the right."""
        length = seq.shape[1]
        n_pad = (seq == self.pad).sum(1, keepdim=True)
        return (torch.arange(length, device=seq.device) + n_pad) % length

    def encode(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output states [B, L, embedding_size] of left-padded sequences seq [B, L], RIGHT-aligned
        (the real items of a row at positions 0..n-1), and the gather index used to align them."""
        index = self._rotation(seq)
        x = self.emb_dropout(self.item_emb(seq.gather(1, index)))
        out, _ = self.gru(x)
        return self.dense(out), index

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores [..., n_items] of the real items (not the pad row) for states [..., embedding_size]."""
        return hidden @ self.item_emb.weight[: self.n_items].T

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        max_len = self.config.max_seq_length
        inputs = batch["input_seq"][:, -max_len:]
        hidden, index = self.encode(inputs)
        targets = batch["target_seq"][:, -max_len:].gather(1, index)  # aligned like the states
        has_target = targets != self.pad
        logits = self.item_logits(hidden[has_target])
        # a sum over a clamped count, not a mean: a batch without any target gives 0, not NaN
        loss = F.cross_entropy(logits, targets[has_target], reduction="sum") / has_target.sum().clamp(min=1)
        self.log_train_loss(loss, inputs.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history = batch["history"][:, -self.config.max_seq_length :]
        hidden, _ = self.encode(history)
        last = ((history != self.pad).sum(1) - 1).clamp(min=0)  # the last real item (0 for an all-pad row)
        return self.item_logits(hidden[torch.arange(history.shape[0], device=history.device), last])
