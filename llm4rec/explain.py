"""LLM4Rec module 4: explanation generation, its supervision and its quality metrics.

The paper gives P(y_exp | u, i, c_t) = LLM([h_u; h_i; c_t; template]) and leaves the
template, the supervision and the metrics open. The suite's choices:

- Supervision (``ExplanationData.build``): the target text of a (user, item) pair is the
  user's own review of the item where the dataset has reviews (Yelp, Amazon, and the
  simulator's Yelp/Amazon formats, which write one review per interaction), read per
  interaction by the dataset's ``read_review_texts`` and matched to the prepared
  interactions on (raw user, raw item, timestamp); whitespace is collapsed and the text
  cut at a word boundary to ``max_chars``. Datasets without reviews (MovieLens) use the
  item's genres and tags rendered as a sentence ("Comedy and Romance, tagged quirky and
  funny."). Only training-split pairs are training targets; validation/test pairs carry
  the references for evaluation, so no held-out review is ever trained on. Aligned texts
  are cached under ``$BENCHMARK_CACHE/explanations/<dataset>/<fingerprint[:20]>/``.
- Prompt (``build_prompt``): the user's recent item titles, the item's title and
  attributes, and retrieved evidence (module 2) filled into ``DEFAULT_TEMPLATE``, which
  ends with "Explanation:"; the target follows after a space and ends with EOS. Soft
  inputs (h_u, h_i from the fusion module) can be prepended as ``prefix_embeds``.
- Training (``explanation_loss``): teacher forcing, cross-entropy on the target tokens
  only (prompt, prefix and padding labelled -100), through any transformers causal LM,
  peft-wrapped or not.
- Decoding (``generate_explanations``): greedy, batched with left padding.
- Metrics (``explanation_metrics``), on word tokens (lower-cased ``\\w+`` runs):
  ``bleu4`` corpus BLEU-4 (torchmetrics ``BLEUScore``: uniform weights, brevity penalty,
  no smoothing; in [0, 1]); ``rouge_l`` mean ROUGE-L F1 over pairs (torchmetrics
  ``ROUGEScore``, no stemming, works offline); ``feature_match`` the share of
  explanations that mention at least one true attribute of their item (case-insensitive,
  whole words: "pizza" matches "Pizza!" but not "pizzas"); ``distinct_2`` distinct
  bigrams / all bigrams over all explanations (bigrams never span two explanations).
  Item attributes (``item_attributes``): categories (genres), tags without "=" (Yelp's
  "WiFi=free" style attribute values are not words) and brand.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from benchmark.data.prepare import Interactions, PreparedData, cache_root
from benchmark.errors import BenchmarkError

__all__ = [
    "DEFAULT_TEMPLATE", "ExplanationData", "attribute_sentence", "build_prompt", "distinct_n", "explanation_loss",
    "explanation_metrics", "feature_match", "generate_explanations", "item_attributes",
]  # fmt: skip

EXPLANATION_CACHE_VERSION = 1
_PARTS = ("train", "valid", "test")

DEFAULT_TEMPLATE = (
    "The user recently enjoyed: {history}.\n"
    "Recommended item: {item}.\n"
    "Item attributes: {attributes}.\n"
    "Related information: {evidence}.\n"
    "In one sentence, explain why the user will like the recommended item.\n"
    "Explanation:"
)
_FIELDS = ("history", "item", "attributes", "evidence")


# --- supervision ---------------------------------------------------------------------------


def _values(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


def item_attributes(items: pd.DataFrame) -> list[list[str]]:
    """True attributes of every item (row i = internal item i): categories, word-like tags, brand."""
    n = len(items)
    column = lambda name: items[name].tolist() if name in items.columns else [None] * n  # noqa: E731
    out = []
    for cats, tags, brand in zip(column("categories"), column("tags"), column("brand")):
        values = _values(cats) + [t for t in _values(tags) if "=" not in t] + _values(brand)
        out.append(list(dict.fromkeys(values)))
    return out


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


def _clean(text: str, max_chars: int) -> str:
    text = " ".join(str(text).split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1].rsplit(" ", 1)[0]
    return cut if cut else text[:max_chars]


def _review_reader(name: str):  # noqa: ANN202 (a reader function or None)
    from benchmark.data import amazon, yelp
    from benchmark.data.datasets import get_dataset

    read = get_dataset(name).read
    return {yelp.read_yelp: yelp.read_review_texts, amazon.read_amazon: amazon.read_review_texts}.get(read)


@dataclass
class ExplanationData:
    """Explanation targets and references of a prepared dataset.

    ``train`` / ``valid`` / ``test``: DataFrames (user, item, timestamp, text) of the
    split's interactions that have a text, internal ids; ``train`` holds the training
    targets, ``valid`` and ``test`` the references. ``titles`` and ``attributes`` are per
    internal item.
    """

    source: Literal["reviews", "attributes"]
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    titles: list[str]
    attributes: list[list[str]]

    @classmethod
    def build(cls, data: PreparedData, *, raw_dir: str | Path | None = None, max_chars: int = 200, on_bad_line: str | None = None) -> ExplanationData:
        """Targets from the users' reviews (Yelp/Amazon formats) or from item attributes (others)."""
        if max_chars < 1:
            raise BenchmarkError(f"max_chars must be >= 1, got {max_chars}")
        titles = [str(t) if isinstance(t, str) else "" for t in (data.items["title"] if "title" in data.items else [""] * data.n_items)]
        attributes = item_attributes(data.items)
        reader = _review_reader(data.name)
        if reader is None:
            return cls("attributes", *cls._from_attributes(data, max_chars), titles=titles, attributes=attributes)
        return cls("reviews", *cls._from_reviews(data, reader, raw_dir, max_chars, on_bad_line), titles=titles, attributes=attributes)

    @staticmethod
    def _from_attributes(data: PreparedData, max_chars: int) -> list[pd.DataFrame]:
        n = data.n_items
        column = lambda name: data.items[name].tolist() if name in data.items.columns else [None] * n  # noqa: E731
        sentences = np.array(
            [_clean(attribute_sentence(_values(c), _values(t)), max_chars) for c, t in zip(column("categories"), column("tags"))], dtype=object
        )
        frames = []
        for part in _PARTS:
            log: Interactions = getattr(data, part)
            frame = pd.DataFrame({"user": log.user, "item": log.item, "timestamp": log.timestamp, "text": sentences[log.item] if n else []})
            frames.append(frame[frame["text"].str.len() > 0].reset_index(drop=True))
        return frames

    @staticmethod
    def _from_reviews(data: PreparedData, reader, raw_dir: str | Path | None, max_chars: int, on_bad_line: str | None) -> list[pd.DataFrame]:  # noqa: ANN001
        folder = cache_root() / "explanations" / data.name / data.fingerprint[:20]
        path = folder / f"texts-v{EXPLANATION_CACHE_VERSION}-{max_chars}.parquet"
        if path.is_file():
            aligned = pd.read_parquet(path)
        else:
            if raw_dir is None:
                from benchmark.data.datasets import default_raw_dir

                raw_dir = default_raw_dir(data.name)
            texts = reader(Path(raw_dir), on_bad_line or data.config.on_bad_line)
            if "summary" in texts.columns:  # Amazon: the body, or the summary line when the body is empty
                body = texts["text"].fillna("").astype(str)
                texts = texts.assign(text=body.where(body.str.strip() != "", texts["summary"].fillna("").astype(str)))
            users = pd.Index(data.user_ids).get_indexer(texts["user"].to_numpy())
            items = pd.Index(data.item_ids).get_indexer(texts["item"].to_numpy())
            known = (users >= 0) & (items >= 0)
            lookup = pd.DataFrame({"user": users[known], "item": items[known], "timestamp": texts["timestamp"].to_numpy()[known].astype(np.int64),
                                   "text": [_clean(t, max_chars) for t in texts["text"].to_numpy()[known]]})  # fmt: skip
            # the prepared pair is the first (user, item) review in time; match it exactly, first in file order
            lookup = lookup.drop_duplicates(["user", "item", "timestamp"], keep="first")
            frames = []
            for part in _PARTS:
                log: Interactions = getattr(data, part)
                frame = pd.DataFrame({"user": log.user, "item": log.item, "timestamp": log.timestamp})
                frame = frame.merge(lookup, on=["user", "item", "timestamp"], how="left")
                frames.append(frame.assign(part=part))
            aligned = pd.concat(frames, ignore_index=True)
            aligned["text"] = aligned["text"].fillna("")
            _atomic_parquet(aligned, path)
        out = []
        for part in _PARTS:
            frame = aligned[(aligned["part"] == part) & (aligned["text"].str.len() > 0)]
            out.append(frame[["user", "item", "timestamp", "text"]].reset_index(drop=True))
        return out

    def pairs(self, part: Literal["train", "valid", "test"]) -> pd.DataFrame:
        if part not in _PARTS:
            raise ValueError(f"part must be one of {_PARTS}, got {part!r}")
        return getattr(self, part)


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# --- prompts ---------------------------------------------------------------------------------


def build_prompt(
    history_titles: Sequence[str], item_title: str, attributes: Sequence[str], evidence: Sequence[str], template: str = DEFAULT_TEMPLATE
) -> str:
    """Fill ``template``'s fields {history}, {item}, {attributes}, {evidence} (lists joined by
    "; ", "none" when empty)."""
    values = {
        "history": "; ".join(t for t in history_titles if t) or "none",
        "item": item_title or "unknown item",
        "attributes": ", ".join(a for a in attributes if a) or "none",
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


# --- metrics ---------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The metrics' tokens: lower-cased runs of word characters."""
    return re.findall(r"\w+", text.lower())


def feature_match(explanations: Sequence[str], item_attributes: Sequence[Sequence[str]]) -> float:
    """Share of explanations mentioning >= 1 attribute of their item (case-insensitive, whole word)."""
    if len(explanations) != len(item_attributes):
        raise ValueError(f"feature_match: {len(explanations)} explanations but {len(item_attributes)} attribute lists")
    if not explanations:
        raise ValueError("feature_match: no explanations")
    hits = 0
    for text, attrs in zip(explanations, item_attributes):
        if any(re.search(r"(?<!\w)" + re.escape(a.strip()) + r"(?!\w)", text, flags=re.IGNORECASE) for a in attrs if a.strip()):
            hits += 1
    return hits / len(explanations)


def distinct_n(explanations: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over all explanations (n-grams within one explanation); 0 if none."""
    grams = [tuple(tokens[i : i + n]) for tokens in map(words, explanations) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def explanation_metrics(explanations: Sequence[str], references: Sequence[str], item_attributes: Sequence[Sequence[str]]) -> dict[str, float]:
    """``bleu4``, ``rouge_l``, ``feature_match`` and ``distinct_2`` of explanations against
    their references (one reference and one attribute list per explanation)."""
    from torchmetrics.text import BLEUScore, ROUGEScore

    if not (len(explanations) == len(references) == len(item_attributes)):
        raise ValueError(f"explanation_metrics: {len(explanations)} explanations, {len(references)} references, {len(item_attributes)} attribute lists")
    if not explanations:
        raise ValueError("explanation_metrics: no explanations")
    tokenised = [" ".join(words(t)) for t in explanations]
    refs = [" ".join(words(t)) for t in references]
    bleu = BLEUScore(n_gram=4, smooth=False)(tokenised, [[r] for r in refs])
    rouge = ROUGEScore(rouge_keys="rougeL", normalizer=lambda s: s)(tokenised, refs)["rougeL_fmeasure"]
    return {
        "bleu4": float(bleu),
        "rouge_l": float(rouge),
        "feature_match": feature_match(explanations, item_attributes),
        "distinct_2": distinct_n(explanations, 2),
    }
