"""LLM4Rec module 1: multimodal fusion of item side information into one item embedding.

The paper: modality encoders h_m = f_m(x_m); pairwise cross-modal attention
A(m->n) = softmax(Q_m K_n^T / sqrt(d_k)), h(m<-n) = A(m->n) V_n; adaptive fusion
h = sum_m alpha_m h_m + beta * MLP([h_1; ...; h_M]) with residual connections and alpha
"learned contextually". Our reading (choices documented in llm4rec/README.md):

- Modalities: ``id`` (a learned item-id embedding: the collaborative signal), ``text``
  (the cached sentence-transformer vector of title/categories/tags/description; the
  frozen encoder stands in for the paper's "Transformer over token plus position
  embeddings"), ``categorical`` (every categorical field's vocabulary in one
  ``nn.EmbeddingBag``, mean over the item's values), ``numerical`` (the standardised
  numeric columns and their presence bits; whole-period fields never get here, the
  readers drop them) and ``image`` (cached image-encoder vectors)
  -- each projected to ``dim`` by its own encoder (Linear + LayerNorm). A modality that
  a dataset lacks entirely is dropped; one that some items lack is *masked* for them.
- Cross-modal attention: every modality m of an item queries the other modalities n != m
  of the same item (multi-head, scaled dot product). With one vector per modality the
  softmax of a single pair is identically 1, so the softmax runs over the keys of all the
  item's *present* other modalities: the output sum_n A(m->n) V_n holds one term per
  ordered pair. Residual + LayerNorm: h'_m = LN(h_m + W_o sum_n A(m->n) V_n).
- Adaptive fusion: alpha = softmax over the item's present modalities of a learned score
  w^T tanh(W h'_m) (per item: "contextual"); beta = sigmoid(v^T [h'_1; ...; h'_M] + b) per
  item; h = sum_m alpha_m h'_m + beta * MLP([h'_1; ...; h'_M]).
- Missing modalities are masked, never zero-filled: they are left out of the attention
  keys and of the gate's softmax, and their slot in the MLP's concatenation holds a
  learned "missing" vector of that modality, so the output never depends on the values
  stored for a missing modality.

- Centring (``center=True``, our addition): the catalogue's mean fused vector is
  subtracted from every item. A component shared by all items adds the same logit to
  every item, so the ranking softmax cannot see it, but it makes every history soft token
  alike. Uncentred, the items' mean pairwise cosine rose from 0.55 to 0.99 within 30
  training steps on synthetic-yelp, and the LLM could no longer tell history items apart.

``fusion="mean"`` (the ``llm4rec-no-fusion`` ablation, with ``cross_attention=False`` and
modalities ``id`` + ``text``) replaces the gate and the MLP by the plain mean of the
present modality vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from benchmark.data.features import ItemFeatures
from benchmark.errors import BenchmarkError
from llm4rec.config import MODALITIES


FusionKind = Literal["adaptive", "mean"]


def _encoder(d_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, dim), nn.LayerNorm(dim))


class CrossModalAttention(nn.Module):
    """Each modality vector attends to the item's other present modalities (multi-head)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise BenchmarkError(f"fusion: dim {dim} is not a multiple of fusion_heads {heads}")
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h [N, M, d], present [N, M] bool -> (h' [N, M, d], attention [N, heads, M, M])."""
        n, m, d = h.shape
        split = lambda x: x.view(n, m, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        logits = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5  # [N, heads, M(query), M(key)]
        allowed = present[:, None, None, :] & ~torch.eye(m, dtype=torch.bool, device=h.device)
        # a large negative, not -inf: a modality with no present partner gets a zero update, not NaN
        weights = torch.softmax(logits.masked_fill(~allowed, torch.finfo(logits.dtype).min), dim=-1)
        weights = weights * allowed.any(-1, keepdim=True)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).reshape(n, m, d)
        return self.norm(h + self.out(mixed)), weights


class MultimodalFusion(nn.Module):
    """Fused item embeddings [n_items, dim] from the cached ``ItemFeatures`` (module docstring).

    ``forward()`` returns the embeddings of all items (the fusion of every item costs far
    less than one LLM step, and scoring needs them all); ``forward(return_gates=True)``
    also returns the gate weights alpha [n_items, M] (0 for masked modalities).
    """

    def __init__(
        self,
        n_items: int,
        features: ItemFeatures | None,
        dim: int = 64,
        *,
        modalities: Sequence[str] = MODALITIES,
        cross_attention: bool = True,
        fusion: FusionKind = "adaptive",
        heads: int = 2,
        dropout: float = 0.1,
        numerical_exclude: Sequence[str] = (),
        center: bool = True,
    ) -> None:
        super().__init__()
        self.center = center
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise BenchmarkError(f"fusion: unknown modalities {unknown}; choose a non-empty subset of {list(MODALITIES)}")
        if fusion not in ("adaptive", "mean"):
            raise BenchmarkError(f"fusion must be 'adaptive' or 'mean', got {fusion!r}")
        if features is not None and features.n_items != n_items:
            raise BenchmarkError(f"fusion: features describe {features.n_items} items, the model has {n_items}")
        self.n_items, self.dim, self.fusion_kind = n_items, dim, fusion
        self.encoders = nn.ModuleDict()
        self.names: list[str] = []
        masks: list[torch.Tensor] = []
        for name in dict.fromkeys(modalities):
            mask = self._add(name, n_items, features, dim, numerical_exclude)
            if mask is not None:
                self.names.append(name)
                masks.append(mask)
        if not self.names:
            raise BenchmarkError(f"fusion: none of the modalities {list(modalities)} is available for this dataset")
        self.register_buffer("present", torch.stack(masks, dim=1), persistent=False)  # [n_items, M]
        m = len(self.names)
        self.cross = CrossModalAttention(dim, heads, dropout) if cross_attention and m > 1 else None
        if fusion == "adaptive":
            self.gate = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
            self.missing = nn.Parameter(torch.randn(m, dim) * 0.02)
            self.mlp = nn.Sequential(nn.Linear(m * dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))
            self.beta = nn.Linear(m * dim, 1)
        self.dropout = nn.Dropout(dropout)

    # --- construction: one encoder and one presence mask per available modality ----------
    def _add(self, name: str, n: int, features: ItemFeatures | None, dim: int, exclude: Sequence[str]) -> torch.Tensor | None:
        if name == "id":
            self.encoders["id"] = nn.Embedding(n, dim)
            nn.init.normal_(self.encoders["id"].weight, std=0.02)
            return torch.ones(n, dtype=torch.bool)
        if features is None:
            return None
        if name in ("text", "image"):
            values, mask = (features.text, features.text_mask) if name == "text" else (features.image, features.image_mask)
            if values is None or mask is None or not mask.any():
                return None
            self.register_buffer(f"{name}_x", torch.as_tensor(np.asarray(values, dtype=np.float32)), persistent=False)
            self.encoders[name] = _encoder(values.shape[1], dim)
            return torch.as_tensor(np.asarray(mask, dtype=bool))
        if name == "categorical":
            fields = [c for c in features.categorical.values() if len(c.vocab)]
            if not fields:
                return None
            offset, rows, index = 0, [], []
            for cat in fields:  # one vocabulary across fields: field f's entries shifted by the sizes before it
                rows.append(np.repeat(np.arange(n), np.diff(cat.ptr)))
                index.append(cat.index + offset)
                offset += len(cat.vocab)
            rows_a, index_a = np.concatenate(rows), np.concatenate(index)
            order = np.argsort(rows_a, kind="stable")
            counts = np.bincount(rows_a, minlength=n)
            self.register_buffer("cat_index", torch.as_tensor(index_a[order], dtype=torch.long), persistent=False)
            self.register_buffer("cat_offsets", torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), dtype=torch.long), persistent=False)
            self.encoders["categorical"] = nn.ModuleDict({"bag": nn.EmbeddingBag(offset, dim, mode="mean"), "norm": nn.LayerNorm(dim)})
            nn.init.normal_(self.encoders["categorical"]["bag"].weight, std=0.1)
            return torch.as_tensor(counts > 0)
        if name == "numerical":
            if features.numerical is None or not features.numerical_names:
                return None
            keep = [j for j, c in enumerate(features.numerical_names) if c not in exclude]
            if not keep:
                return None
            values = np.asarray(features.numerical, dtype=np.float32)[:, keep]
            present = np.asarray(features.numerical_mask, dtype=bool)[:, keep]
            # value and presence bit per column: a missing value is 0 with bit 0, never read as "average"
            self.register_buffer("num_x", torch.as_tensor(np.concatenate([values * present, present], axis=1), dtype=torch.float32), persistent=False)
            self.encoders["numerical"] = _encoder(2 * len(keep), dim)
            return torch.as_tensor(present.any(axis=1))
        return None  # image requested but not extracted

    # --- forward ---------------------------------------------------------------------------
    def modality_vectors(self) -> torch.Tensor:
        """h [n_items, M, dim]: every modality's encoder output (masked ones included, unused)."""
        out = []
        for name in self.names:
            enc = self.encoders[name]
            if name == "id":
                out.append(enc.weight)
            elif name == "categorical":
                out.append(enc["norm"](enc["bag"](self.cat_index, self.cat_offsets)))
            else:
                out.append(enc(getattr(self, f"{name}_x" if name != "numerical" else "num_x")))
        return torch.stack(out, dim=1)

    def forward(self, return_gates: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        present = self.present
        h = self.dropout(self.modality_vectors())
        if self.cross is not None:
            h, _ = self.cross(h, present)
        weight = present.to(h.dtype)
        kept = torch.where(present.unsqueeze(-1), h, 0.0)  # masked vectors never enter a sum (not even times 0)
        if self.fusion_kind == "mean":
            alpha = weight / weight.sum(1, keepdim=True).clamp(min=1.0)
            fused = (alpha.unsqueeze(-1) * kept).sum(1)
        else:
            scores = self.gate(h).squeeze(-1)
            # masked modalities out of the softmax (a large negative, not -inf: an item without
            # any present modality gets alpha = 0 everywhere instead of NaN)
            alpha = torch.softmax(scores.masked_fill(~present, torch.finfo(scores.dtype).min), dim=1) * weight
            slots = torch.where(present.unsqueeze(-1), h, self.missing.unsqueeze(0))
            concat = slots.flatten(1)
            beta = torch.sigmoid(self.beta(concat))
            fused = (alpha.unsqueeze(-1) * kept).sum(1) + beta * self.mlp(concat)
        if self.center:
            fused = fused - fused.mean(0, keepdim=True)
        return (fused, alpha) if return_gates else fused


def fusion_summary(fusion: MultimodalFusion) -> dict[str, float]:
    """Mean gate weight per modality over the items that have it (for logs and the README)."""
    with torch.no_grad():
        _, alpha = fusion(return_gates=True)
    present = fusion.present
    return {f"alpha_{name}": float(alpha[present[:, j], j].mean()) for j, name in enumerate(fusion.names) if present[:, j].any()}


__all__ = ["MODALITIES", "CrossModalAttention", "MultimodalFusion", "fusion_summary"]
