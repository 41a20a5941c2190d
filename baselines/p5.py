"""P5-style generative recommendation: every item is one new token of the LLM's vocabulary.

Reference: Geng et al., "Recommendation as Language Processing (RLP): A Unified Pretrain,
Personalized Prompt & Predict Paradigm (P5)", RecSys 2022, sequential-recommendation
task; item indexing as in Hua et al., "How to Index Item IDs for Recommendation
Foundation Models" (SIGIR-AP 2023): items are numbered by a random permutation, never by
order of appearance, because sequential numbering lets a model read the next item off
consecutive ids of the history (the test item would be guessable from the numbering).

Item tokens. Item i is the token ``<item_c>`` with c = ``item_code[i]``, a random
permutation of 0..n_items-1 drawn from ``numbering_seed`` and stored in the checkpoint
(a persistent buffer), with token id ``len(tokenizer) + c``. The new tokens' input and
output embeddings are one trainable ``[n_items, hidden]`` table (tied, as SmolLM2 ties
its own), kept beside the frozen, LoRA-adapted backbone instead of resizing its
49k-row embedding: only the item rows train and are stored. The rows are initialised
independently, so with atomic tokens the numbering itself carries no signal; it is random
so that nothing derived from the token names (printed prompts, exported vocabularies, a
sub-word tokenisation of the names) can encode chronology.

Prompt and training (one window = one sequence)::

    <instruction> <item_a> <item_b> ... <item_z>

with a teacher-forced loss at every item token after the first (each predicted from the
instruction and the items before it): cross-entropy over the item tokens, the only
tokens the model may generate. Whole-item generation is one step: the next item is one
token, so the exact beam search of width k is the top k of the item-token logits with
the user's known items removed. P5 is therefore a dense scorer: ``score`` returns the
item-token logits and the harness masks and ranks, as for every scorer.
No user-id token (P5's "user_23"): the history carries the personalisation.

CPU budget of the defaults (2 cores): ``num_layers=8`` (first 8 of SmolLM2's 30
blocks), ``max_seq_length=20`` items per window (~40 tokens), ``train_windows_per_epoch=
2048`` (a fresh random sample each epoch; ml-latest-small has ~5.6k windows of 20), 5
epochs at most with patience 2 (registry ``train_defaults``). Timings: ``sweeps/p5.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.genrec import LLMBaseline, history_items, window_items
from benchmark.errors import BenchmarkError
from benchmark.llm.backbone import SMOLLM2

INSTRUCTION = "Items a user chose, oldest first, then the item they choose next:"


@dataclass
class P5Config:
    """Hyper-parameters of P5 (CPU-budget defaults: see the module docstring)."""

    backbone: str = SMOLLM2
    """Backbone name: smollm2-135m (offline), tiny-llama (tests only), a hub name or a local path."""
    num_layers: int = 8
    """Keep the first N transformer blocks of the backbone (0 = all)."""
    finetune: Literal["lora", "full"] = "lora"
    """How the backbone trains: LoRA adapters on the attention projections (default) or full fine-tuning."""
    lora_r: int = 8
    """LoRA rank (attention projections)."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on LoRA's input."""
    max_seq_length: int = 20
    """Item tokens of history in a prompt (training windows hold this many + the target)."""
    numbering_seed: int = 0
    """Seed of the random permutation that numbers the item tokens."""
    lr: float = 1e-3
    """AdamW learning rate (LoRA weights and item-token embeddings)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    batch_size: int = 16
    """Training windows per batch."""
    train_windows_per_epoch: int = 2048
    """Training windows per epoch (a fresh random sample each epoch); 0 = every window."""


class P5(LLMBaseline):
    """Items as single new tokens of a LoRA-tuned LLM; next-item generation over item tokens."""

    def __init__(self, n_users: int, n_items: int, config: P5Config) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        self.pad = n_items
        self._load_backbone()
        rng = np.random.default_rng(config.numbering_seed)
        self.register_buffer("item_code", torch.as_tensor(rng.permutation(n_items), dtype=torch.long))
        self.first_item_token = len(self.tokenizer)  # token id of <item_0>
        self.item_embedding = nn.Embedding(n_items, self.hidden_size)
        # transformers' init of new embedding rows (N(0, initializer_range)), not the text rows'
        # scale: on the truncated backbone that scale gives item logits of std ~5 (initial loss
        # ~22 on ml-latest-small); this one starts near-uniform (loss ~ln n_items)
        std = float(getattr(self.backbone.config, "initializer_range", 0.02))
        nn.init.normal_(self.item_embedding.weight, std=std)
        self.register_buffer("instruction", torch.as_tensor(self.tokenizer(INSTRUCTION).input_ids), persistent=False)
        if len(self.instruction) == 0:
            raise BenchmarkError("P5: the instruction tokenises to nothing")

    def item_token(self, item: int) -> str:
        """The vocabulary entry of an item, e.g. ``<item_4711>``."""
        return f"<item_{int(self.item_code[item])}>"

    def _encode(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states [B, P + W, d] of instruction + item tokens (right-padded), and the mask."""
        n, width = len(sequences), max(max((len(s) for s in sequences), default=0), 1)
        items = torch.full((n, width), 0, dtype=torch.long, device=self.device)
        real = torch.zeros((n, width), dtype=torch.bool, device=self.device)
        for row, seq in enumerate(sequences):
            if seq:
                items[row, : len(seq)] = torch.as_tensor(seq, device=self.device)
                real[row, : len(seq)] = True
        prefix = self.backbone.get_input_embeddings()(self.instruction).unsqueeze(0).expand(n, -1, -1)
        embeds = torch.cat([prefix, self.item_embedding(self.item_code[items]) * real.unsqueeze(-1)], dim=1)
        mask = torch.cat([torch.ones(n, len(self.instruction), dtype=torch.long, device=self.device), real.long()], dim=1)
        hidden = self.backbone.get_decoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return hidden, mask

    def code_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [..., n_items] of the item tokens <item_0> ... <item_{n-1}> (in code order)."""
        return hidden.float() @ self.item_embedding.weight.float().T

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        windows = [w for w in window_items(batch["input_seq"], batch["target_seq"], self.pad) if len(w) >= 2]
        if not windows:  # nothing to predict: a zero loss that still reaches the trained weights
            return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
        hidden, mask = self._encode(windows)
        start = len(self.instruction)
        states = hidden[:, start:-1]  # the state at item j predicts item j + 1
        targets = torch.full(states.shape[:2], -100, dtype=torch.long, device=self.device)
        for row, items in enumerate(windows):
            targets[row, : len(items) - 1] = self.item_code[torch.as_tensor(items[1:], device=self.device)]
        has = targets != -100
        loss = F.cross_entropy(self.code_logits(states[has]), targets[has])
        self.log_train_loss(loss, len(windows))
        return loss

    @torch.no_grad()
    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Next-item-token logits [B, n_items] in item-id order for the batch's histories: the
        whole-item generation step scores every item token at once, so P5 is a dense scorer
        (the harness masks the known items and takes the top K)."""
        histories = history_items(batch["history"], self.pad, self.config.max_seq_length)
        hidden, mask = self._encode(histories)
        last = mask.sum(1) - 1  # the last real position (the instruction's end for an empty history)
        states = hidden[torch.arange(len(histories), device=self.device), last]
        return self.code_logits(states)[:, self.item_code]
