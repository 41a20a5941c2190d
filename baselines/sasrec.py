"""SASRec: self-attentive sequential recommendation, trained with full cross-entropy.

Reference: Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. The
architecture follows RecBole's ``SASRec`` (the peer implementation we are compared
with): item + learned positional embeddings, LayerNorm, dropout, then post-LN
Transformer blocks (causal multi-head self-attention, position-wise GELU feed-forward,
residual connections), output layer tied to the item embedding. Training uses the
cross-entropy over ALL items at every position of a window that has a next item
("SASRec+CE"; Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really
better than SASRec?", RecSys 2023), with no negative sampling.

Sequences are left-padded with ``pad = n_items``. Positions are counted from the first
real item of a sequence, and a query never attends to padding (it always attends to
itself, so all-pad rows stay finite); hence left padding never changes the result for
the real items.

Defaults (RecBole's unless noted): 2 layers, 2 heads, hidden 64, inner 256,
max_seq_length 50, Adam lr 1e-3, weight_decay 0, LayerNorm eps 1e-12, N(0, 0.02)
initialisation; batch_size 128 windows (each window trains up to max_seq_length
next-item targets). Hidden and attention dropout are 0.2, not RecBole's 0.5: on
ml-latest-small (chronological leave-one-out, non-overlapping windows of 50, full
ranking with seen items masked, one seed, 25 epochs) validation NDCG@10 with 0.5 was
below 0.2's at every epoch from the 8th on; best epochs 0.0496 (test 0.0433) vs 0.0597
(test 0.0511). Sequential models run on an epoch/time budget, so the faster learner is
the default; set both to 0.5 to reproduce RecBole's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.model import RecModule, TrainBatchKind, adam


@dataclass
class SASRecConfig:
    """Hyper-parameters of SASRec."""

    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 2
    """Attention heads per block; must divide hidden_size."""
    hidden_size: int = 64
    """Embedding and hidden-state size."""
    inner_size: int = 256
    """Width of the feed-forward layer of each block."""
    hidden_dropout: float = 0.2
    """Dropout on the input embeddings and on each block's residual branches (RecBole: 0.5)."""
    attn_dropout: float = 0.2
    """Dropout on the attention probabilities (RecBole: 0.5)."""
    layer_norm_eps: float = 1e-12
    """LayerNorm epsilon (RecBole's value)."""
    initializer_range: float = 0.02
    """Standard deviation of the normal initialisation of embeddings and linear layers."""
    max_seq_length: int = 50
    """Items of history the model reads (training windows and evaluation histories)."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam L2 penalty."""
    batch_size: int = 128
    """Training windows per batch."""
    bucket_batches: bool = False
    """Batch windows of similar length (equal target counts per batch, padding trimmed):
    the same steps per epoch with far less padding on sparse data (RecDataModule)."""


class _Block(nn.Module):
    """Post-LN Transformer block: causal multi-head self-attention, then a GELU feed-forward."""

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        d = config.hidden_size
        if d % config.n_heads:
            raise ValueError(f"hidden_size {d} is not a multiple of n_heads {config.n_heads}")
        self.n_heads = config.n_heads
        self.attn_dropout = config.attn_dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.ffn = nn.Sequential(
            nn.Linear(d, config.inner_size),
            nn.GELU(),
            nn.Linear(config.inner_size, d),
        )
        self.ffn_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x [B, L, d]; attn_mask [B, 1, L, L] bool, True where a query may attend to a key."""
        batch, length, d = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0
        )
        attn = attn.transpose(1, 2).reshape(batch, length, d)
        x = self.attn_norm(x + self.dropout(self.attn_out(attn)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


class SASRec(RecModule):
    """SASRec with a tied output layer, trained with cross-entropy over all items."""

    train_batches: ClassVar[TrainBatchKind] = "sequential"

    def __init__(self, n_users: int, n_items: int, config: SASRecConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        self.pad = n_items
        d = config.hidden_size
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=self.pad)
        self.pos_emb = nn.Embedding(config.max_seq_length, d)
        self.emb_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.emb_dropout = nn.Dropout(config.hidden_dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layers))
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])
        # nn.LayerNorm already starts at weight 1, bias 0

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, d] of left-padded item sequences seq [B, L] (L <= max_seq_length)."""
        real = seq != self.pad  # [B, L]
        positions = (real.cumsum(1) - 1).clamp(min=0)  # 0 at the first real item
        x = self.emb_dropout(self.emb_norm(self.item_emb(seq) + self.pos_emb(positions)))
        length = seq.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        itself = torch.eye(length, dtype=torch.bool, device=seq.device)
        attn_mask = (causal & (real.unsqueeze(1) | itself)).unsqueeze(1)  # [B, 1, L, L]
        for block in self.blocks:
            x = block(x, attn_mask)
        return x

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores [..., n_items] of the real items (not the pad row) for hidden states [..., d]."""
        return hidden @ self.item_emb.weight[: self.n_items].T

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        max_len = self.config.max_seq_length
        inputs = batch["input_seq"][:, -max_len:]
        targets = batch["target_seq"][:, -max_len:]
        hidden = self.encode(inputs)
        has_target = targets != self.pad
        # project only the positions that have a next item: the [N, n_items] logits dominate the cost
        logits = self.item_logits(hidden[has_target])
        # a sum over a clamped count, not a mean: a batch without any target gives 0, not NaN
        loss = F.cross_entropy(logits, targets[has_target], reduction="sum") / has_target.sum().clamp(min=1)
        self.log_train_loss(loss, inputs.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history = batch["history"][:, -self.config.max_seq_length :]
        return self.item_logits(self.encode(history)[:, -1])
