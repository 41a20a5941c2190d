"""LLM4Rec: one RecModule composing the five modules around an LLM backbone.

Prompt (one sequence per training window or evaluated user)::

    <instruction tokens> [title tokens of i_1] s_1  [title tokens of i_2] s_2  ...  s_L

``s_t`` is a soft token: the fused embedding of item i_t (module 1) projected to the
LLM's width, plus the projection of its retrieved context r_t (module 2: the
similarity-weighted mean of the fused embeddings of the ``rag_top_r`` known items
nearest to the user's ``rag_query_items`` most recent items up to t). Title tokens are
optional (``history_titles``; costly on CPU). The hidden state at s_t -- the position
dedicated to "what comes after i_t" -- is projected to item space and scored against
every fused item embedding: ``score()`` is a full ranking, as for every baseline. The
LLM is causal and everything at position t is built from items up to t, so one forward
pass trains all L next-item predictions of a window (sequential batches) without
leakage; at evaluation the last position ranks the next item, once per user.

Loss = ranking + adversarial_weight * adversary + parity_weight * parity
+ explain_weight * explanation: the ranking term is the softmax cross-entropy of the
target against all items (``num_negatives=0``) or against shared uniform negatives,
weighted by self-normalised IPS weights (module 3), which also supplies the adversarial
popularity head and the exposure-parity penalty; the explanation term (module 4) is the
teacher-forced loss of the user's training-period review (or the item's attributes)
given an explanation prompt with the retrieved snippets as evidence and [h_u; h_i] as
soft prefix. Module 5 (real-time adaptation) is the harness's streaming protocol: this
model names its adapters (``adaptation_parameters``) and accepts recency weights.

``LLM4RecGenerative`` (registered as ``llm4rec-generative``) is the same model with a
generative head: it decodes item titles with beam search constrained to the catalogue
(benchmark/llm/decoding.py) from the same soft prompt, and is evaluated through ``recommend``.

Design choices, CPU budget and measurements: llm4rec/README.md.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.data.features import ItemFeatures
from benchmark.config import check_ranges
from benchmark.errors import BenchmarkError
from benchmark.model import BatchSpec, RecModule, TrainBatchKind
from benchmark.llm.backbone import BackboneConfig, load_backbone
from benchmark.llm.checkpoints import TrainedWeightsOnly
from llm4rec.debias import (
    LogisticExposure, PopularityAdversary, exposure_parity_penalty, grl_schedule, ips_weights, popularity_groups, popularity_propensity,
)
from llm4rec.ablations import ABLATIONS, ablation_config
from llm4rec.config import INSTRUCTION, LLM4RecConfig
from llm4rec.fusion import MultimodalFusion
from llm4rec.retrieval import RetrievalIndex, SnippetStore, known_items

@contextmanager
def _depth(decoder: nn.Module, layers: int) -> Iterator[None]:
    """Run ``decoder`` (a transformers decoder) with only its first ``layers`` blocks.

    transformers' Llama-family decoders iterate ``self.layers[: config.num_hidden_layers]``;
    lowering the number for one call keeps every weight (explanations still use them all).
    """
    config = decoder.config
    full = config.num_hidden_layers
    if layers and layers < full:
        config.num_hidden_layers = layers
    try:
        yield
    finally:
        config.num_hidden_layers = full


class LLM4Rec(TrainedWeightsOnly, RecModule):
    """LLM4Rec (module docstring). Ablations are configs of this class (benchmark/registry.py)."""

    train_batches: ClassVar[TrainBatchKind] = "sequential"
    needs_item_features: ClassVar[bool] = True
    needs_train_graph: ClassVar[bool] = True  # training counts: propensities, popularity groups, the index's known items
    needs_item_table: ClassVar[bool] = True  # titles and attributes for prompts and snippets
    needs_interaction_texts: ClassVar[bool] = True  # training-split reviews: explanation targets, snippets
    supports_sample_weights: ClassVar[bool] = True  # the streaming protocol's recency weights scale the ranking loss

    def __init__(
        self,
        n_users: int,
        n_items: int,
        config: LLM4RecConfig,
        *,
        features: ItemFeatures | None = None,
        train_pairs: tuple[np.ndarray, np.ndarray] | None = None,
        items: pd.DataFrame | None = None,
        texts: pd.DataFrame | None = None,
    ) -> None:
        """``texts``: the training split's review texts (user, item, timestamp, text; internal
        ids), the explanation targets; None where the dataset has no reviews (the targets are
        then the items' attribute sentences)."""
        super().__init__(n_users, n_items)
        check_ranges(config)
        self.config = config
        self.pad = n_items
        self.supports_adaptation = config.adaptive  # read by the streaming protocol
        self.generates_explanations = config.explain  # read by the harness (runner.explanations)
        users, train_items = train_pairs if train_pairs is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        users, train_items = np.asarray(users, dtype=np.int64), np.asarray(train_items, dtype=np.int64)
        item_counts = np.bincount(train_items, minlength=n_items)
        user_counts = np.bincount(users, minlength=n_users)
        # statistics of the training split, rebuilt from train_pairs at every construction: not in checkpoints
        self.register_buffer("item_counts", torch.as_tensor(item_counts, dtype=torch.float32), persistent=False)
        self.register_buffer("user_counts", torch.as_tensor(user_counts, dtype=torch.float32), persistent=False)
        self.register_buffer("known", torch.as_tensor(known_items(train_items, n_items)), persistent=False)
        groups = popularity_groups(item_counts, config.popularity_groups) if n_items else np.zeros(0, np.int64)
        self.register_buffer("item_group", torch.as_tensor(groups), persistent=False)
        self.register_buffer("is_head", torch.as_tensor(groups == 0), persistent=False)
        self.register_buffer("item_propensity", torch.as_tensor(popularity_propensity(item_counts, config.propensity_power), dtype=torch.float32), persistent=False)
        self.exposure_model = (
            LogisticExposure.fit(users, train_items, n_users, n_items) if config.debias and config.propensity == "logistic" else None
        )

        self._load_backbone()
        width = self.hidden_size
        self.fusion = MultimodalFusion(
            n_items, features, config.dim, modalities=config.modalities, cross_attention=config.cross_attention,
            fusion=config.fusion, heads=config.fusion_heads, dropout=config.dropout, numerical_exclude=config.numerical_exclude,
            center=config.center_items,
        )  # fmt: skip
        self.item_in = nn.Linear(config.dim, width)  # fused item -> soft token
        self.rag_in = nn.Linear(config.dim, width) if config.rag else None  # retrieved context -> soft token
        # soft tokens enter at the scale of the LLM's own token embeddings (a plain Linear gives
        # ~8x their norm); a precaution: in 40-step trials the loss was the same either way
        self.token_norm = nn.LayerNorm(width)
        with torch.no_grad():
            typical = self.lm.get_input_embeddings().weight.float().norm(dim=1).mean() / width**0.5
            self.token_norm.weight.fill_(float(typical))
        self.user_out = nn.Linear(width, config.dim)  # hidden state at the prediction position -> item space
        # small initial user vectors, so the first logits are small; the early loss spike itself
        # was removed by the warm-up (configure_optimizers)
        nn.init.normal_(self.user_out.weight, std=0.01)
        nn.init.zeros_(self.user_out.bias)
        self.token_dropout = nn.Dropout(config.dropout)
        # log of the cosine scores' scale: learned, positive by construction
        self.log_scale = nn.Parameter(torch.tensor(-math.log(config.score_temperature))) if config.cosine_scores else None
        self.item_bias = nn.Parameter(torch.zeros(n_items)) if config.item_bias else None
        # the prior P(S) of the adversarial term: the groups' share of training interactions
        prior = torch.as_tensor(np.bincount(groups[train_items], minlength=config.popularity_groups) if len(train_items) else np.ones(config.popularity_groups), dtype=torch.float64)
        self.adversary = (
            PopularityAdversary(config.dim, (prior / prior.sum()).float(), kind=config.adversary)
            if config.debias and config.adversarial_weight > 0 else None
        )  # fmt: skip
        self.index = RetrievalIndex(config.rag_index, nlist=config.rag_nlist, nprobe=config.rag_nprobe, hnsw_m=config.rag_hnsw_m)

        tok = self.tokenizer
        self.register_buffer("instruction_ids", torch.tensor(tok(config.instruction, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]), persistent=False)
        self.titles, self.attributes = _titles_and_attributes(items, n_items)
        if config.history_titles:
            ids = tok([" " + t for t in self.titles], add_special_tokens=False)["input_ids"] if n_items else []
            table = torch.full((n_items + 1, config.title_tokens), -1, dtype=torch.long)
            for i, row in enumerate(ids):
                row = row[: config.title_tokens]
                table[i, config.title_tokens - len(row) :] = torch.tensor(row, dtype=torch.long)  # right-aligned: next to s_t
            self.register_buffer("title_table", table, persistent=False)
        self._train_texts: dict[tuple[int, int], str] = {}
        self._item_sentences: list[str] = []
        if texts is not None and len(texts):
            self._train_texts = dict(zip(zip(texts["user"].tolist(), texts["item"].tolist()), texts["text"].tolist()))
        elif items is not None:
            from llm4rec.explain import attribute_targets

            self._item_sentences = attribute_targets(items)
        self.snippets = SnippetStore.build(self.titles, self.attributes, self.known.cpu().numpy(), texts)
        self._cache: torch.Tensor | None = None  # fused item table of the current weights (evaluation)
        self.last_retrieved: np.ndarray | None = None  # [B, L, r] items of the last prompt's context (-1: none)

    # --- construction -------------------------------------------------------------------------
    def _load_backbone(self) -> None:
        cfg = self.config
        # seed 0 fixes tiny-llama's random frozen weights (not stored in checkpoints); the fork
        # keeps that seeding from resetting the run's random stream
        with torch.random.fork_rng():
            backbone = load_backbone(
                BackboneConfig(
                    # scratch reads only the pretrained model's configuration (width, heads, vocabulary)
                    name=cfg.backbone, mode="frozen" if cfg.llm == "scratch" else cfg.backbone_mode, lora_r=cfg.lora_r,
                    lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, dtype=cfg.backbone_dtype,
                ),
                seed=0,
            )  # fmt: skip
        lm = backbone.model
        if cfg.llm == "scratch":
            from transformers import AutoModelForCausalLM

            # the same width, heads and vocabulary, ``scratch_layers`` blocks, new random
            # weights drawn from the run's seed, all trained
            scratch = copy.deepcopy(lm.config)
            scratch.num_hidden_layers = cfg.scratch_layers
            for name in ("layer_types",):  # per-layer lists some configs carry must match the depth
                if getattr(scratch, name, None) is not None:
                    setattr(scratch, name, list(getattr(scratch, name))[: cfg.scratch_layers])
            lm = AutoModelForCausalLM.from_config(scratch, dtype=next(lm.parameters()).dtype)
        self.lm = lm.train()  # transformers loads in eval mode; Lightning keeps module modes as they are
        self.tokenizer = backbone.tokenizer
        self.hidden_size = backbone.hidden_size
        # ranking depth: the first rank_layers blocks of a pretrained LLM (all when it has fewer)
        self.depth = cfg.rank_layers if cfg.llm == "pretrained" and cfg.rank_layers < self.decoder.config.num_hidden_layers else 0

    def batch_spec(self) -> BatchSpec:
        # num_negatives is this model's loss option (negatives drawn per step), not the data module's
        return BatchSpec(kind="sequential", batch_size=self.config.batch_size, history_length=self.config.max_seq_length)

    @property
    def decoder(self) -> nn.Module:
        """The LLM's transformer stack (a property: an attribute would register its weights twice)."""
        return self.lm.get_decoder()

    @property
    def backbone_dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    # --- checkpoints hold trained weights only (benchmark.llm.checkpoints); a load invalidates caches ---
    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._invalidate()
        return result

    # --- data the harness provides at fit/test time ---------------------------------------------
    def setup(self, stage: str) -> None:
        cap = self.config.train_windows_per_epoch
        if stage == "fit" and cap:
            # the window budget per epoch as Lightning's own batch limit: the sampler shuffles
            # every epoch, so the first batches are a fresh random sample, and the epoch still
            # ends with its validation pass (stopping early from on_train_batch_start skips it)
            self.trainer.limit_train_batches = -(-cap // self.config.batch_size)

    def target_text(self, user: int, item: int) -> str | None:
        """The explanation target of a training pair: the user's review, or (no reviews) the
        item's attribute sentence; None when there is none."""
        if self._train_texts:
            return self._train_texts.get((user, item))
        return self._item_sentences[item] or None if self._item_sentences else None

    # --- the prompt -----------------------------------------------------------------------------
    def _invalidate(self) -> None:
        """The weights changed: cached item embeddings and the retrieval index are stale."""
        self._cache = None
        self.index.index = None

    def item_table(self) -> torch.Tensor:
        """Fused embeddings of all items under the current weights, cached for evaluation
        (computed once per evaluation pass); the retrieval index is rebuilt with them."""
        if self._cache is None or self._cache.device != self.device:
            with torch.no_grad():
                self._cache = self.fusion()
            if self.config.rag:
                self.index.build(self._cache, self.known)
        return self._cache

    def _context(self, seq: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        """Retrieved context [B, L, dim] at every real position of ``seq`` (module 2)."""
        cfg = self.config
        if not self.index.built:
            self.index.build(fused.detach(), self.known)
        real = seq != self.pad
        w = cfg.rag_query_items
        with torch.no_grad():
            unit = torch.cat([F.normalize(fused.detach().float(), dim=-1), fused.new_zeros(1, fused.shape[1]).float()])
            window = F.pad(seq, (w - 1, 0), value=self.pad).unfold(1, w, 1)  # [B, L, w]: items t-w+1..t
            query = unit[window].sum(2)[real]  # normalised inside the search
            exclude = window[real]
        items, sims = self.index.search(query, cfg.rag_top_r, exclude)
        retrieved = torch.full((*seq.shape, cfg.rag_top_r), -1, dtype=torch.long)
        retrieved[real.cpu()] = torch.from_numpy(items)
        self.last_retrieved = retrieved.numpy()
        items_t = torch.from_numpy(items).to(seq.device)
        sims_t = torch.from_numpy(sims).to(fused.device)
        found = items_t >= 0
        weights = torch.softmax(sims_t.masked_fill(~found, -1e4) / cfg.rag_temperature, dim=1) * found.any(1, keepdim=True)
        pooled = (weights.unsqueeze(-1).to(fused.dtype) * fused[items_t.clamp(min=0)] * found.unsqueeze(-1)).sum(1)
        out = fused.new_zeros(*seq.shape, fused.shape[1])
        out[real] = pooled
        return out

    def _prompt(self, seq: torch.Tensor, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs_embeds [B, S, H], attention_mask [B, S], index of each s_t [L]) for ``seq`` [B, L]."""
        cfg = self.config
        batch, length = seq.shape
        real = seq != self.pad
        padded = torch.cat([fused, fused.new_zeros(1, fused.shape[1])])
        tokens = self.item_in(padded[seq])
        if self.rag_in is not None:
            tokens = tokens + self.rag_in(self._context(seq, fused))
        tokens = self.token_dropout(self.token_norm(tokens)) * real.unsqueeze(-1)
        embed = self.lm.get_input_embeddings()
        dtype = self.backbone_dtype
        body, body_mask = tokens.to(dtype), real
        if cfg.history_titles:
            ids = self.title_table[seq]  # [B, L, T], -1 = no token
            present = (ids >= 0) & real.unsqueeze(-1)
            titles = embed(ids.clamp(min=0)) * present.unsqueeze(-1)
            body = torch.cat([titles, body.unsqueeze(2)], dim=2).flatten(1, 2)  # [B, L * (T + 1), H]
            body_mask = torch.cat([present, real.unsqueeze(-1)], dim=2).flatten(1, 2)
        instruction = embed(self.instruction_ids).unsqueeze(0).expand(batch, -1, -1)
        embeds = torch.cat([instruction.to(dtype), body], dim=1)
        mask = torch.cat([torch.ones(batch, len(self.instruction_ids), dtype=torch.bool, device=seq.device), body_mask], dim=1)
        step = cfg.title_tokens + 1 if cfg.history_titles else 1
        positions = len(self.instruction_ids) + torch.arange(length, device=seq.device) * step + step - 1
        return embeds, mask, positions

    def _run(self, embeds: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        """Last hidden states [B, S, H] (float32) of the decoder's first ``layers`` blocks (0 = all)."""
        # interior padding (empty history slots) is masked; positions count real tokens only
        position_ids = (mask.long().cumsum(1) - 1).clamp(min=0)
        with _depth(self.decoder, layers):
            out = self.decoder(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=position_ids, use_cache=False)
        return out.last_hidden_state.float()

    def user_states(self, seq: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        """User vectors in item space [B, L, dim]: the state after each history position."""
        embeds, mask, positions = self._prompt(seq, fused)
        hidden = self._run(embeds, mask, self.depth)
        states = self.user_out(hidden[:, positions])
        if self.log_scale is not None:
            states = F.normalize(states, dim=-1) * self.log_scale.exp()
        return states

    def scoring_table(self, fused: torch.Tensor) -> torch.Tensor:
        """Item vectors that user states are scored against: the fused table, unit-length
        under ``cosine_scores`` (the scale then sits on the user side)."""
        return F.normalize(fused, dim=-1) if self.log_scale is not None else fused

    def _add_bias(self, scores: torch.Tensor) -> torch.Tensor:
        """scores [B, n_items] plus the learned item bias (``item_bias``), else unchanged."""
        return scores + self.item_bias if self.item_bias is not None else scores

    # --- training -------------------------------------------------------------------------------
    def propensity(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """e(u, i) of observed pairs under the configured propensity model."""
        if self.exposure_model is not None:
            return self.exposure_model(self.user_counts[users], self.item_counts[items])
        return self.item_propensity[items]

    def on_train_epoch_start(self) -> None:
        self._invalidate()  # the index is rebuilt from this epoch's first embeddings

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        cfg = self.config
        self._cache = None  # evaluation after this step needs fresh embeddings (and index)
        length = cfg.max_seq_length
        inputs, targets = batch["input_seq"][:, -length:], batch["target_seq"][:, -length:]
        fused = self.fusion()
        states = self.user_states(inputs, fused)
        has = targets != self.pad
        rows = torch.nonzero(has)
        user_vec, target = states[has], targets[has]
        users = batch["users"][rows[:, 0]]
        weight = batch["weights"][:, -length:][has].float() if "weights" in batch else torch.ones_like(target, dtype=torch.float32)

        table = self.scoring_table(fused)
        if cfg.num_negatives:  # shared uniform negatives; a negative equal to the row's target is masked
            negatives = torch.randint(0, self.n_items, (cfg.num_negatives,), device=target.device)
            positive = (user_vec * table[target]).sum(-1, keepdim=True)
            sampled = user_vec @ table[negatives].T
            if self.item_bias is not None:
                positive, sampled = positive + self.item_bias[target].unsqueeze(1), sampled + self.item_bias[negatives]
            logits = torch.cat([positive, sampled.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), float("-inf"))], dim=1)
            ce = F.cross_entropy(logits, torch.zeros_like(target), reduction="none")
            parity_scores, parity_head = sampled, self.is_head[negatives]
        else:
            logits = self._add_bias(user_vec @ table.T)
            ce = F.cross_entropy(logits, target, reduction="none")
            parity_scores, parity_head = logits, self.is_head
        logs: dict[str, torch.Tensor] = {}
        if cfg.debias:
            weight = weight * ips_weights(self.propensity(users, target), cfg.ips_clip, cfg.ips_self_normalise)
        loss = (ce * weight).sum() / weight.sum().clamp(min=1e-12) if len(target) else states.sum() * 0.0
        logs["train/rank"] = loss.detach()
        if cfg.debias and len(target):
            if self.adversary is not None:
                lam = cfg.adversarial_weight * (grl_schedule(self._progress()) if cfg.adversary == "grl" else 1.0)
                term, head = self.adversary(user_vec, fused[target], self.item_group[target], lam)
                loss = loss + term  # the head trains at full rate, the encoder's side is weighted by lambda
                logs["train/adversary_head"], logs["train/adversary_lambda"] = head, torch.tensor(lam)
            if cfg.parity_weight > 0:
                parity = exposure_parity_penalty(parity_scores, parity_head, cfg.parity_k, cfg.parity_temperature, cfg.parity_epsilon)
                loss = loss + cfg.parity_weight * parity
                logs["train/parity"] = parity.detach()
        if cfg.explain and cfg.explain_weight > 0 and (self._train_texts or self._item_sentences) and batch_idx % cfg.explain_every == 0:
            explanation = self._explanation_loss(batch, inputs, targets, states, fused, batch_idx)
            if explanation is not None:
                loss = loss + cfg.explain_weight * explanation
                logs["train/explanation"] = explanation.detach()
        extra = self._extra_loss(inputs, targets, fused)
        if extra is not None:
            loss = loss + extra
            logs["train/generative"] = extra.detach()
        self.log_train_loss(loss, inputs.shape[0])
        self.log_dict(logs, batch_size=inputs.shape[0])
        return loss

    def _progress(self) -> float:
        """Share of the planned optimiser steps done (0 outside a Trainer)."""
        trainer = self._trainer
        total = trainer.estimated_stepping_batches if trainer is not None else 0
        return float(self.global_step) / total if total and math.isfinite(total) else 0.0

    def _extra_loss(self, inputs: torch.Tensor, targets: torch.Tensor, fused: torch.Tensor) -> torch.Tensor | None:
        return None  # the generative subclass adds its title loss here

    # --- module 4: explanations -----------------------------------------------------------------
    def _evidence(self, retrieved: Sequence[int]) -> list[str]:
        if self.snippets is None or not self.config.rag:
            return []
        return self.snippets.get([int(i) for i in retrieved if i >= 0])[: self.config.rag_snippets]

    def _explain_prompt(self, history: Sequence[int], item: int, retrieved: Sequence[int]) -> str:
        from llm4rec.explain import build_prompt

        k = self.config.explain_history
        titles = [self.titles[i] for i in list(history)[-k:]] if k else []
        # the explained item's own snippet would hand the prompt its attributes (what
        # feature_match checks): evidence is about the other retrieved items only
        return build_prompt(titles, self.titles[item], self._evidence([r for r in retrieved if r != item]))

    def _prefix(self, user_vec: torch.Tensor, item_vec: torch.Tensor) -> torch.Tensor | None:
        """[h_u; h_i] as two soft tokens [B, 2, H] (the paper's LLM([h_u; h_i; c_t; template]))."""
        if not self.config.explain_soft_prefix:
            return None
        return self.item_in(torch.stack([user_vec, item_vec], dim=1)).to(self.backbone_dtype)

    def _explanation_loss(
        self, batch: dict[str, torch.Tensor], inputs: torch.Tensor, targets: torch.Tensor, states: torch.Tensor, fused: torch.Tensor, batch_idx: int
    ) -> torch.Tensor | None:
        from llm4rec.explain import explanation_loss

        cfg = self.config
        users = batch["users"].tolist()
        candidates = [(b, t) for b, t in torch.nonzero(targets != self.pad).tolist() if self.target_text(users[b], int(targets[b, t]))]
        if not candidates:
            return None
        rng = np.random.default_rng([self.global_step, batch_idx])
        chosen = [candidates[j] for j in rng.choice(len(candidates), min(cfg.explain_batch, len(candidates)), replace=False)]
        retrieved = self.last_retrieved
        prompts, texts = [], []
        for b, t in chosen:
            history = [i for i in inputs[b, : t + 1].tolist() if i != self.pad]
            item = int(targets[b, t])
            prompts.append(self._explain_prompt(history, item, retrieved[b, t] if retrieved is not None else []))
            texts.append(self.target_text(users[b], item))
        b_idx = torch.tensor([b for b, _ in chosen], device=states.device)
        t_idx = torch.tensor([t for _, t in chosen], device=states.device)
        prefix = self._prefix(states[b_idx, t_idx], fused[targets[b_idx, t_idx]])
        return explanation_loss(self.lm, self.tokenizer, prompts, texts, cfg.explain_max_length, prefix_embeds=prefix)

    @torch.no_grad()
    def explain(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> list[str]:
        """One explanation per row of an evaluation ``batch`` (its users' histories) for the
        item ``items[row]`` (the harness's hook: it chooses the pairs and scores the texts)."""
        from llm4rec.explain import generate_explanations

        self.eval()
        fused = self.item_table()
        seq = batch["history"][:, -self.config.max_seq_length :].to(self.device)
        histories = [[i for i in row if i != self.pad] for row in seq.tolist()]
        vectors, retrieved = [], []
        for s in range(0, len(seq), 64):
            part = seq[s : s + 64]
            vectors.append(self.user_states(part, fused)[:, -1])
            # the context of the last position: what the explanation prompt cites as evidence
            retrieved += [row[-1].tolist() for row in self.last_retrieved] if self.config.rag else [[] for _ in range(len(part))]
        user_vec = torch.cat(vectors) if vectors else fused.new_zeros(0, self.config.dim)
        items = items.to(self.device)
        prompts = [self._explain_prompt(h, int(i), r) for h, i, r in zip(histories, items.tolist(), retrieved)]
        prefix = self._prefix(user_vec, fused[items])
        return generate_explanations(self.lm, self.tokenizer, prompts, self.config.explain_new_tokens, prefix_embeds=prefix)

    # --- evaluation -----------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._invalidate()
        super().on_validation_epoch_start()

    def on_test_epoch_start(self) -> None:
        self._invalidate()
        super().on_test_epoch_start()

    @torch.no_grad()
    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        fused = self.item_table()
        history = batch["history"][:, -self.config.max_seq_length :]
        return self._add_bias(self.user_states(history, fused)[:, -1] @ self.scoring_table(fused).T)

    # --- module 5 -----------------------------------------------------------------------------
    def adaptation_parameters(self) -> list[nn.Parameter]:
        """The streaming updates' parameters: the backbone's trainable weights (LoRA
        adapters; all of the scratch transformer), the fusion module and the projections.
        Not the adversary, a training-time critic."""
        skip = {id(p) for p in self.adversary.parameters()} if self.adversary is not None else set()
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        backbone = [p for p in self.lm.parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr": self.config.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": self.config.backbone_lr})
        optimizer = torch.optim.AdamW(groups, lr=self.config.lr, weight_decay=self.config.weight_decay)
        warmup = self.config.warmup_steps
        # linear warm-up: Adam's first full-size steps on fresh embeddings overshoot (the loss
        # rises before it falls), which a budget of a few hundred steps cannot afford
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


# --- helpers ------------------------------------------------------------------------------------


def _titles_and_attributes(items: pd.DataFrame | None, n_items: int) -> tuple[list[str], list[list[str]]]:
    if items is None:
        return [f"item {i}" for i in range(n_items)], [[] for _ in range(n_items)]
    from benchmark.data.features import item_attributes
    from benchmark.llm.decoding import item_titles

    if len(items) != n_items:
        raise BenchmarkError(f"llm4rec: the item table has {len(items)} rows for {n_items} items")
    titles = item_titles(items) if "title" in items.columns else [f"item {i}" for i in range(n_items)]
    return titles, item_attributes(items)


class LLM4RecGenerative(LLM4Rec):
    """LLM4Rec with a generative head: decodes item titles under a catalogue trie.

    The same soft prompt (instruction, history soft tokens with retrieved context) is
    followed by the text "Next:", and the whole LLM generates the next item's title; beam
    search is constrained to the catalogue (``benchmark.llm.decoding``) and never returns a seen
    item. Training adds ``generative_weight`` x the teacher-forced loss of each window's
    last target title to LLM4Rec's losses.
    """

    def __init__(self, n_users: int, n_items: int, config: LLM4RecConfig, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, config, **kwargs)
        from benchmark.llm.decoding import CatalogueTrie, catalogue_sequences

        keys = [str(i) for i in range(n_items)]
        self.sequences = catalogue_sequences(self.titles, keys, self.tokenizer, max_tokens=config.generative_title_tokens)
        self.trie = CatalogueTrie(self.sequences)
        self.register_buffer("next_ids", torch.tensor(self.tokenizer(" Next:", add_special_tokens=False)["input_ids"]), persistent=False)

    @classmethod
    def is_generative(cls) -> bool:
        return True

    def _generative_prompt(self, seq: torch.Tensor, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, mask, _ = self._prompt(seq, fused)
        tail = self.lm.get_input_embeddings()(self.next_ids).unsqueeze(0).expand(len(seq), -1, -1)
        ones = torch.ones(len(seq), len(self.next_ids), dtype=torch.bool, device=seq.device)
        return torch.cat([embeds, tail.to(embeds.dtype)], 1), torch.cat([mask, ones], 1)

    def _progress(self) -> float:
        """Share of the planned optimiser steps done (0 outside a Trainer)."""
        trainer = self._trainer
        total = trainer.estimated_stepping_batches if trainer is not None else 0
        return float(self.global_step) / total if total and math.isfinite(total) else 0.0

    def _extra_loss(self, inputs: torch.Tensor, targets: torch.Tensor, fused: torch.Tensor) -> torch.Tensor | None:
        if self.config.generative_weight == 0:
            return None
        last = targets[:, -1]
        keep = last != self.pad
        if not keep.any():
            return None
        embeds, mask = self._generative_prompt(inputs[keep], fused)
        titles = [self.sequences[i] for i in last[keep].tolist()]
        width = max(len(t) for t in titles)
        ids = torch.zeros(len(titles), width, dtype=torch.long, device=inputs.device)
        labels = torch.full_like(ids, -100)
        title_mask = torch.zeros_like(ids, dtype=torch.bool)
        for row, t in enumerate(titles):  # right padding after the title: masked, unlabelled
            ids[row, : len(t)] = torch.tensor(t)
            labels[row, : len(t)] = torch.tensor(t)
            title_mask[row, : len(t)] = True
        full = torch.cat([embeds, self.lm.get_input_embeddings()(ids).to(embeds.dtype)], 1)
        full_mask = torch.cat([mask, title_mask], 1)
        hidden = self._run(full, full_mask, 0)
        # position p predicts token p + 1: the prompt's last position predicts the first title token
        start = embeds.shape[1] - 1
        states = hidden[:, start : start + width]
        logits = self.lm.get_output_embeddings()(states.to(self.backbone_dtype)).float()
        return self.config.generative_weight * F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    @torch.no_grad()
    def recommend(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        from benchmark.llm.decoding import constrained_beam_search

        fused = self.item_table()
        history = batch["history"][:, -self.config.max_seq_length :]
        embeds, mask = self._generative_prompt(history, fused)
        result = constrained_beam_search(
            self.lm, self.trie, k, inputs_embeds=embeds, attention_mask=mask,
            exclude=(batch["seen_rows"], batch["seen_items"]), num_beams=max(k, self.config.generative_beams),
            pad_token_id=self.tokenizer.pad_token_id or 0,
        )  # fmt: skip
        return result.items.to(history.device)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # generative: evaluated through recommend
        raise NotImplementedError("LLM4RecGenerative is evaluated through recommend()")


__all__ = ["ABLATIONS", "INSTRUCTION", "LLM4Rec", "LLM4RecConfig", "LLM4RecGenerative", "ablation_config"]  # the config and ablations live beside
