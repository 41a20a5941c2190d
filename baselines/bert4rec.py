"""BERT4Rec: bidirectional self-attention trained with masked item prediction.

Reference: Sun, Liu, Wu, Pei, Lin, Ou & Jiang, "BERT4Rec: Sequential Recommendation with
Bidirectional Encoder Representations from Transformer", CIKM 2019. The architecture
follows RecBole's ``BERT4Rec`` (the peer implementation we are compared with): item +
learned positional embeddings, LayerNorm, dropout, post-LN Transformer blocks (the
blocks of ``baselines.sasrec``, here with bidirectional attention), then an output head
(linear, GELU, LayerNorm) scored against the item embeddings (tied) plus a per-item bias.

Training (Cloze task): a sequential batch's window is turned into the full sequence of
its real items (``input_seq`` followed by its final target), cut to the last
``max_seq_length`` items; every real item is replaced by the learned [MASK] token (id
``n_items + 1``; the embedding table has ``n_items + 2`` rows, ``pad = n_items``) with
probability ``mask_ratio``, drawn with torch's RNG (deterministic given the torch seed);
the loss is the cross-entropy over all items at the masked positions only. Scoring: the
last ``max_seq_length - 1`` history items followed by [MASK]; the scores are the output
at the [MASK] position.

Sequences are left-padded. Positions are counted from the first real item, and no query
attends to padding (a query always attends to itself, so all-pad rows stay finite);
hence left padding never changes the result.

Defaults (RecBole's): 2 layers, 2 heads, hidden 64, inner 256, hidden and attention
dropout 0.2, mask_ratio 0.2, max_seq_length 50 (the length of a masked training
sequence and of the scoring input, [MASK] included), Adam lr 1e-3, weight_decay 0,
LayerNorm eps 1e-12, N(0, 0.02) initialisation; batch_size 128 windows.

``ft_ratio`` (RecBole's name; the original code's last-item-masked training instances): each
training sequence has, with this probability, only its last item masked instead of the
Cloze masking, so training also sees the scoring task itself (a [MASK] at the end of a
history). 0 turns it off; its default is decided on validation (baselines/README.md).

Training length: the replicability study of Petrov & Macdonald ("A Systematic Review and
Replicability Study of BERT4Rec for Sequential Recommendation", RecSys 2022) finds that
BERT4Rec needs far longer training than its peers to reach its reported quality (only a
few masked positions per sequence carry a loss): the original implementation trains for
hours, and RecBole's default budget under-trains it. The registry therefore gives it
early-stopping ``patience`` 30 (the harness's default is 10) within ``max_epochs`` 200.
Its training loss sits near the popularity level for the first ~20 epochs and validation
stays flat; on synthetic-amazon (seed 0) patience 10 stopped it there after 18 epochs
(test NDCG@10 0.0333, below Pop's 0.0381), while patience 30 let validation climb from
0.028 to 0.048 (best epoch 59 of 89; test NDCG@10 0.0485). On ml-latest-small (3 seeds)
test NDCG@10 went from 0.0222 ± 0.0011 (patience 10) to 0.0259 ± 0.0052 (patience 30;
98-113 epochs), against RecBole 1.2.1's 0.0187.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.sasrec import _Block
from benchmark.model import RecModule, TrainBatchKind, adam


@dataclass
class BERT4RecConfig:
    """Hyper-parameters of BERT4Rec."""

    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 2
    """Attention heads per block; must divide hidden_size."""
    hidden_size: int = 64
    """Embedding and hidden-state size."""
    inner_size: int = 256
    """Width of the feed-forward layer of each block."""
    hidden_dropout: float = 0.2
    """Dropout on the input embeddings and on each block's residual branches."""
    attn_dropout: float = 0.2
    """Dropout on the attention probabilities."""
    mask_ratio: float = 0.2
    """Probability that a real item of a training sequence is replaced by [MASK]."""
    ft_ratio: float = 0.0
    """Probability that a training sequence has only its last item masked (the scoring task)."""
    layer_norm_eps: float = 1e-12
    """LayerNorm epsilon (RecBole's value)."""
    initializer_range: float = 0.02
    """Standard deviation of the normal initialisation of embeddings and linear layers."""
    max_seq_length: int = 50
    """Length of a training sequence and of the scoring input ([MASK] included)."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam L2 penalty."""
    batch_size: int = 128
    """Training windows per batch."""
    bucket_batches: bool = False
    """Batch windows of similar length (equal target counts per batch, padding trimmed):
    the same steps per epoch with far less padding on sparse data (RecDataModule)."""


class BERT4Rec(RecModule):
    """BERT4Rec with a tied output layer, trained with masked item prediction over all items."""

    train_batches: ClassVar[TrainBatchKind] = "sequential"

    def __init__(self, n_users: int, n_items: int, config: BERT4RecConfig) -> None:
        super().__init__(n_users, n_items)
        if config.max_seq_length < 2:
            raise ValueError("max_seq_length must be at least 2 (one history item and [MASK])")
        self.config = config
        self.pad = n_items
        self.mask_token = n_items + 1
        d = config.hidden_size
        self.item_emb = nn.Embedding(n_items + 2, d, padding_idx=self.pad)
        self.pos_emb = nn.Embedding(config.max_seq_length, d)
        self.emb_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.emb_dropout = nn.Dropout(config.hidden_dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layers))  # type: ignore[arg-type]
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=config.layer_norm_eps))
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, d] of left-padded sequences seq [B, L] (L <= max_seq_length)."""
        real = seq != self.pad  # [B, L]; [MASK] counts as real
        positions = (real.cumsum(1) - 1).clamp(min=0)  # 0 at the first real item
        x = self.emb_dropout(self.emb_norm(self.item_emb(seq) + self.pos_emb(positions)))
        itself = torch.eye(seq.shape[1], dtype=torch.bool, device=seq.device)
        attn_mask = (real.unsqueeze(1) | itself).unsqueeze(1)  # [B, 1, L, L]: bidirectional, no padding keys
        for block in self.blocks:
            x = block(x, attn_mask)
        return x

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores [..., n_items] of the real items (not pad, not [MASK]) for hidden states [..., d]."""
        return self.head(hidden) @ self.item_emb.weight[: self.n_items].T + self.output_bias

    def training_sequence(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The window's real items (input_seq then its final target), last max_seq_length, left-padded."""
        full = torch.cat([batch["input_seq"], batch["target_seq"][:, -1:]], dim=1)
        return full[:, -self.config.max_seq_length :]

    def mask(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """seq with random real items replaced by [MASK] (torch RNG), and where [B, L] bool.

        With ``ft_ratio`` > 0, a sequence drawn with that probability has only its last item
        (the last column: sequences are left-padded) masked instead."""
        real = seq != self.pad
        masked = (torch.rand(seq.shape, device=seq.device) < self.config.mask_ratio) & real
        if self.config.ft_ratio > 0:
            last_only = torch.rand(seq.shape[0], 1, device=seq.device) < self.config.ft_ratio
            last = torch.zeros_like(real)
            last[:, -1] = real[:, -1]
            masked = torch.where(last_only, last, masked)
        return seq.masked_fill(masked, self.mask_token), masked

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        seq = self.training_sequence(batch)
        inputs, masked = self.mask(seq)
        hidden = self.encode(inputs)
        logits = self.item_logits(hidden[masked])
        # a sum over a clamped count, not a mean: a batch without any masked item gives 0, not NaN
        loss = F.cross_entropy(logits, seq[masked], reduction="sum") / masked.sum().clamp(min=1)
        self.log_train_loss(loss, seq.shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history = batch["history"][:, -(self.config.max_seq_length - 1) :]
        mask_col = torch.full_like(history[:, :1], self.mask_token)
        return self.item_logits(self.encode(torch.cat([history, mask_col], dim=1))[:, -1])
