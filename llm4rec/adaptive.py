"""LLM4Rec module 5: real-time adaptive learning, the model's side of the streaming protocol.

The paper: momentum SGD on incoming feedback, v_t = gamma v_(t-1) + eta grad L and
theta_t = theta_(t-1) - v_t, with updates weighted by importance sampling; gamma, eta,
the parameters, the window, forgetting and the protocol are left open. The protocol
(windows, predict-then-update order, momentum SGD, replay buffer, recency weights, the
frozen reference model) is the harness's, ``benchmark/streaming.py``, so every model is
measured the same way. This module holds what LLM4Rec contributes to it:

- which parameters adapt online (``adaptation_parameters``): the backbone's LoRA
  adapters plus the small modules named by the model (the fusion layers). The backbone's
  base weights stay fixed, so an update touches a small fraction of the parameters and
  takes milliseconds rather than a fine-tuning step of the whole LLM;
- how the importance weights enter its loss (``weighted_mean``): LLM4Rec sets
  ``supports_sample_weights = True`` and reduces its per-example (or per-target) losses
  with the batch's ``"weights"``;
- the opt-out: the ``llm4rec-no-adaptive`` ablation sets ``supports_adaptation = False``
  on the instance; the harness then reports its adaptive figures equal to the frozen ones.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["adaptation_parameters", "lora_parameters", "weighted_mean"]


def lora_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The trainable LoRA adapter matrices of a peft-wrapped model (names containing ``lora_``)."""
    return [p for name, p in module.named_parameters() if "lora_" in name and p.requires_grad]


def adaptation_parameters(backbone: nn.Module | None, *modules: nn.Module | None) -> list[nn.Parameter]:
    """Online-adapted parameters: the backbone's LoRA adapters, then every trainable parameter
    of ``modules`` (e.g. the fusion module), each once, in that order.

    A backbone without adapters (frozen or fully fine-tuned) contributes nothing: adapting
    every weight of an LLM per window is not real-time.
    """
    chosen: list[nn.Parameter] = []
    seen: set[int] = set()
    candidates = lora_parameters(backbone) if backbone is not None else []
    for module in modules:
        if module is not None:
            candidates += [p for p in module.parameters() if p.requires_grad]
    for p in candidates:
        if id(p) not in seen:
            seen.add(id(p))
            chosen.append(p)
    return chosen


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """sum(w * values) / sum(w) over the entries where ``mask`` (default: all) holds.

    ``weights`` None: the plain mean over the masked entries. ``weights`` must have the
    shape of ``values`` ([B] per example or [B, L] per target); negative weights are refused.
    """
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    if mask.shape != values.shape:
        raise ValueError(f"weighted_mean: mask shape {tuple(mask.shape)} differs from values {tuple(values.shape)}")
    if weights is None:
        w = mask.to(values.dtype)
    else:
        if weights.shape != values.shape:
            raise ValueError(f"weighted_mean: weights shape {tuple(weights.shape)} differs from values {tuple(values.shape)}")
        if (weights < 0).any():
            raise ValueError("weighted_mean: weights must be >= 0")
        w = weights.to(values.dtype) * mask
    total = w.sum()
    # an all-masked batch (no target) gives 0, not NaN, as the models' own losses do
    # masked entries may hold inf/NaN (padding positions): they are zeroed, not multiplied by 0
    return (torch.where(mask, values, 0.0) * w).sum() / total.clamp(min=torch.finfo(values.dtype).tiny)
