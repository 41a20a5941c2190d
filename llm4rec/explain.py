"""LLM4Rec module 4: explanation generation and its supervision.

The paper gives P(y_exp | u, i, c_t) = LLM([h_u; h_i; c_t; template]) and leaves the
template, the supervision and the metrics open. The suite's choices:

- Supervision: the target text of a training pair (user, item) is the user's own review of
  the item where the dataset has reviews (Yelp, Amazon, and the simulator's Yelp/Amazon
  formats), which the harness gives the model for the training split only
  (``benchmark.data.reviews``; validation and test reviews are held-out references the
  model never sees). Datasets without reviews (MovieLens) use the item's genres and
  training-period tags rendered as a sentence ("Comedy and Romance, tagged quirky and
  funny.", ``attribute_targets``).
- Prompt (``build_prompt``): the user's recent item titles, the item's title and retrieved
  evidence (module 2) filled into ``DEFAULT_TEMPLATE``, which ends with "Explanation:"; the
  target follows after a space and ends with EOS. Neither the reference nor the item's
  attributes are in the prompt. Soft inputs (h_u, h_i from the fusion module) can be
  prepended as ``prefix_embeds``.
- Training (``explanation_loss``): teacher forcing, cross-entropy on the target tokens
  only (prompt, prefix and padding labelled -100), through any transformers causal LM,
  peft-wrapped or not.
- Decoding (``generate_explanations``): greedy, batched with left padding.
- Metrics are the harness's (``benchmark.metrics`` text metrics, computed by
  ``benchmark.runner`` from the generated text): BLEU-4 and ROUGE-L against the user's
  own held-out review where the dataset has reviews (MovieLens has no reference text),
  feature match against the item's attributes, distinct-2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmark.data.reviews import clean_text

__all__ = ["DEFAULT_TEMPLATE", "attribute_sentence", "attribute_targets", "build_prompt", "explanation_loss", "generate_explanations"]

DEFAULT_TEMPLATE = (
    "The user recently enjoyed: {history}.\n"
    "Recommended item: {item}.\n"
    "Related information: {evidence}.\n"
    "In one sentence, explain why the user will like the recommended item.\n"
    "Explanation:"
)
_FIELDS = ("history", "item", "evidence")


# --- supervision ---------------------------------------------------------------------------


def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1] if words else ""


def attribute_sentence(categories: Sequence[str], tags: Sequence[str], max_tags: int = 5) -> str:
    """``["Comedy", "Romance"], ["quirky", "funny"]`` -> "Comedy and Romance, tagged quirky and funny."
    ('' when both are empty)."""
    parts = []
    if categories:
        parts.append(_join(categories))
    if tags:
        parts.append(("tagged " if categories else "Tagged ") + _join(list(tags)[:max_tags]))
    return ", ".join(parts) + "." if parts else ""


def attribute_targets(items: pd.DataFrame, max_chars: int = 200) -> list[str]:
    """The attribute sentence of every item (row i = internal item i): the explanation target
    of datasets without review text (MovieLens: genres and training-period tags)."""
    n = len(items)
    column = lambda name: items[name].tolist() if name in items.columns else [None] * n  # noqa: E731
    return [clean_text(attribute_sentence(_values(c), _values(t)), max_chars) for c, t in zip(column("categories"), column("tags"))]


def _values(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


# --- prompts ---------------------------------------------------------------------------------


def build_prompt(history_titles: Sequence[str], item_title: str, evidence: Sequence[str], template: str = DEFAULT_TEMPLATE) -> str:
    """Fill ``template``'s fields {history}, {item}, {evidence} (lists joined by "; ", "none"
    when empty). The item's own attributes are never in the prompt: they are what
    ``feature_match`` checks, and on MovieLens the target itself."""
    values = {
        "history": "; ".join(t for t in history_titles if t) or "none",
        "item": item_title or "unknown item",
        "evidence": "; ".join(e for e in evidence if e) or "none",
    }
    try:
        return template.format(**values)
    except (KeyError, IndexError) as exc:
        raise ValueError(f"explanation template may only use the fields {{{'}, {'.join(_FIELDS)}}}; got {exc}") from None


# --- training and decoding ---------------------------------------------------------------------


def _encode(tokenizer: Any, prompts: Sequence[str], targets: Sequence[str], max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of each prompt and of " target<eos>", tokenised apart so the boundary is exact.

    Over ``max_length``: the target keeps at most half of it, the prompt its last tokens
    (the instruction, at the end of the template, survives)."""
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    target_ids = tokenizer([" " + t for t in targets], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    out_p, out_t = [], []
    for p, t in zip(prompt_ids, target_ids):
        t = list(t) + ([eos] if eos is not None else [])
        t = t[: max(1, max_length // 2)] if len(p) + len(t) > max_length else t
        keep = max_length - len(t)
        out_p.append(list(p)[-keep:] if keep > 0 else [])
        out_t.append(t)
    return out_p, out_t


def explanation_loss(
    lm: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], targets: Sequence[str], max_length: int,
    *, prefix_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Teacher-forced cross-entropy of ``targets`` given ``prompts`` (mean over target tokens).

    Prompt tokens, padding and the optional ``prefix_embeds`` [B, P, d] (soft inputs such
    as h_u, h_i, placed before the prompt) are labelled -100, so only target tokens count.
    """
    if len(prompts) != len(targets) or not prompts:
        raise ValueError(f"explanation_loss needs as many prompts as targets (>= 1); got {len(prompts)} and {len(targets)}")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    prompt_ids, target_ids = _encode(tokenizer, prompts, targets, max_length)
    device = lm.get_input_embeddings().weight.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(p) + len(t) for p, t in zip(prompt_ids, target_ids))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for row, (p, t) in enumerate(zip(prompt_ids, target_ids)):  # right padding: positions start at 0
        ids[row, : len(p) + len(t)] = torch.tensor(p + t)
        labels[row, len(p) : len(p) + len(t)] = torch.tensor(t)
        mask[row, : len(p) + len(t)] = 1
    ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
    if prefix_embeds is None:
        return lm(input_ids=ids, attention_mask=mask, labels=labels).loss
    if prefix_embeds.dim() != 3 or prefix_embeds.shape[0] != len(prompts):
        raise ValueError(f"prefix_embeds must be [batch, P, hidden]; got {tuple(prefix_embeds.shape)}")
    embeds = lm.get_input_embeddings()(ids)
    n = prefix_embeds.shape[1]
    embeds = torch.cat([prefix_embeds.to(embeds.dtype), embeds], dim=1)
    ones = torch.ones(len(prompts), n, dtype=mask.dtype, device=device)
    labels = torch.cat([torch.full_like(ones, -100), labels], dim=1)
    return lm(inputs_embeds=embeds, attention_mask=torch.cat([ones, mask], dim=1), labels=labels).loss


@torch.no_grad()
def generate_explanations(
    lm: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 40,
    *, batch_size: int = 16, max_prompt_length: int = 512, prefix_embeds: torch.Tensor | None = None,
) -> list[str]:
    """Greedy explanations for ``prompts`` (batched, left-padded), without the prompt and
    special tokens, stripped. ``prefix_embeds`` [len(prompts), P, d] as in ``explanation_loss``."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prefix_embeds is not None and (prefix_embeds.dim() != 3 or prefix_embeds.shape[0] != len(prompts)):
        raise ValueError(f"prefix_embeds must be [len(prompts), P, hidden]; got {tuple(prefix_embeds.shape)}")
    was_training = lm.training
    lm.eval()
    device = lm.get_input_embeddings().weight.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = [tokenizer(p, add_special_tokens=False)["input_ids"][-max_prompt_length:] for p in prompts[start : start + batch_size]]
            width = max(len(c) for c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, c in enumerate(chunk):  # left padding: every prompt ends where generation starts
                if c:
                    ids[row, width - len(c) :] = torch.tensor(c)
                    mask[row, width - len(c) :] = 1
            ids, mask = ids.to(device), mask.to(device)
            options = dict(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
            if prefix_embeds is None:
                generated = lm.generate(input_ids=ids, attention_mask=mask, **options)[:, width:]
            else:
                prefix = prefix_embeds[start : start + len(chunk)].to(device)
                embeds = torch.cat([prefix.to(lm.get_input_embeddings().weight.dtype), lm.get_input_embeddings()(ids)], dim=1)
                # left padding goes before the prefix: pad positions are masked, prefix and prompt stay adjacent
                embeds, full_mask = _left_align(embeds, torch.cat([torch.ones(len(chunk), prefix.shape[1], dtype=mask.dtype, device=device), mask], 1))
                generated = lm.generate(inputs_embeds=embeds, attention_mask=full_mask, **options)  # only new tokens
            out.extend(t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True))
    finally:
        lm.train(was_training)
    return out


def _left_align(embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move every row's masked-out positions to its front (stable), keeping real positions in order."""
    order = torch.argsort(mask, dim=1, stable=True)  # zeros (padding) first
    return embeds.gather(1, order.unsqueeze(-1).expand_as(embeds)), mask.gather(1, order)
