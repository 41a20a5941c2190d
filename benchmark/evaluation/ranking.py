"""Ranking: mask seen items and take the top K with exact ties (lower item index first);
``rank``, the one ranking step every consumer of top-K lists goes through."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from benchmark.evaluation.sampled import SampledNegatives, keep_candidates

if TYPE_CHECKING:
    from benchmark.model import RecModule


# Largest number of score entries the tie fix-up of `top_k` handles at once (bounds its
# temporary memory to a few hundred MiB whatever the batch size).
_TIE_CHUNK = 1 << 24
# First prefix of columns searched for the lowest-index tied items (see `_fill_ties`).
_TIE_WINDOW = 2048


def mask_seen(scores: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> None:
    """Set ``scores[rows, items] = -inf`` in place, so seen items rank last and count as invalid."""
    scores[rows, items] = float("-inf")


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best items per row, ordered by (score desc, item index asc).

    Returns ``items`` LongTensor [B, min(k, N)] and ``valid`` BoolTensor of the same shape
    (False where the item's score is -inf, i.e. masked). ``torch.topk`` alone picks tied
    items arbitrarily; here the set and the order follow the lower-index rule exactly. Only
    rows whose tie at the k-th value straddles the cut get a second pass over their scores.
    """
    if k < 1:
        raise ValueError(f"top_k: k must be >= 1, got {k}")
    if scores.dim() != 2:
        raise ValueError(f"top_k: scores must be 2-D [users, items], got shape {tuple(scores.shape)}")
    n_items = scores.shape[1]
    kk = min(k, n_items)
    if kk == 0 or scores.shape[0] == 0:
        empty = torch.empty(scores.shape[0], kk, dtype=torch.long, device=scores.device)
        return empty, torch.ones_like(empty, dtype=torch.bool)
    # One value past the cut tells whether a tie straddles it; topk ranks NaN first.
    values, indices = torch.topk(scores, min(kk + 1, n_items), dim=1)
    if torch.isnan(values[:, 0]).any():
        raise ValueError("top_k: scores contain NaN; the model produced invalid scores")
    if kk < n_items:
        straddling = (values[:, kk] == values[:, kk - 1]).nonzero().squeeze(1)
        values, indices = values[:, :kk], indices[:, :kk]
        if straddling.numel():
            indices[straddling] = _fill_ties(scores, straddling, values[straddling], indices[straddling])
    indices = indices.sort(dim=1).values
    values, order = scores.gather(1, indices).sort(dim=1, descending=True, stable=True)
    return indices.gather(1, order), values > float("-inf")


def _fill_ties(
    scores: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """For ``rows`` whose k-th value is tied beyond the cut: keep the items scored above it
    (all in ``indices``, first, as topk sorts) and fill the rest with the lowest-index tied items.

    The lowest tied items are searched in a prefix of the columns that widens until it holds
    enough of them, so dense ties (a popularity model, all-zero or masked tails) cost a
    fraction of a pass over the row; row chunks bound the temporary memory.
    """
    n_items, kk = scores.shape[1], indices.shape[1]
    kth = values[:, kk - 1 : kk]
    n_above = (values > kth).sum(1, keepdim=True)
    position = torch.arange(kk, device=scores.device)
    item_ids = torch.arange(n_items, device=scores.device, dtype=torch.int32)
    lowest_tied = torch.empty_like(indices)
    chunk = max(1, _TIE_CHUNK // n_items)
    for start in range(0, rows.numel(), chunk):
        pending = torch.arange(start, min(start + chunk, rows.numel()), device=scores.device)
        width = min(n_items, max(kk, _TIE_WINDOW))
        while pending.numel():
            tied = scores[rows[pending], :width] == kth[pending]
            enough = tied.sum(1, keepdim=True) >= kk - n_above[pending]
            done = enough.squeeze(1) | (width == n_items)
            key = torch.where(tied[done], item_ids[:width], n_items)
            lowest_tied[pending[done]] = key.topk(kk, dim=1, largest=False).values.long()
            pending, width = pending[~done], min(n_items, width * 4)
    shift = (position - n_above).clamp(min=0)
    return torch.where(position < n_above, indices, lowest_tied.gather(1, shift))


def _writable(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` itself when masking it in place is safe, else a copy.

    ``score`` must return a tensor the harness may overwrite (no copy on the hot path); this
    catches the usual slips: a view of a model tensor (an expanded popularity row, a slice of
    a cached matrix), a parameter, or a row broadcast with stride 0.
    """
    if scores._base is not None or scores.requires_grad or 0 in scores.stride():
        return scores.clone(memory_format=torch.contiguous_format)
    return scores


def _valid_ids(items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Slots of a generated list holding a known item id seen for the first time in its row."""
    in_range = (items >= 0) & (items < n_items)
    ordered, order = items.sort(dim=1, stable=True)
    repeat_sorted = torch.zeros_like(in_range)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeat = torch.empty_like(repeat_sorted).scatter_(1, order, repeat_sorted)
    return in_range & ~repeat



@torch.no_grad()
def rank(
    model: RecModule, batch: dict[str, torch.Tensor], k: int, *, n_items: int | None = None, negatives: SampledNegatives | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-``k`` lists of a batch's users, the one ranking step of every consumer (metrics,
    explanations, predictions files): a generative model's ``recommend``; a scorer's ``score``
    with the known items masked, restricted to sampled candidates under ``negatives``, and the
    top ``k`` by (score desc, index asc). ``n_items``: the catalogue (default the model's).
    Returns ``items`` [B, k'] and ``valid`` [B, k']."""
    n_rows = batch["users"].shape[0]
    n_items = model.n_items if n_items is None else n_items
    if type(model).is_generative():
        if negatives is not None:
            raise ValueError(f"{type(model).__name__} is generative: the sampled protocol needs a dense scorer")
        items = model.recommend(batch, k)
        if items.shape != (n_rows, k) or items.is_floating_point():
            raise ValueError(f"{type(model).__name__}.recommend must return a LongTensor of shape {(n_rows, k)}, got {items.dtype} {tuple(items.shape)}")
        return items, _valid_ids(items, n_items)
    scores = model.score(batch)
    if scores.shape != (n_rows, n_items) or not scores.is_floating_point():
        raise ValueError(f"{type(model).__name__}.score must return a float tensor of shape {(n_rows, n_items)}, got {scores.dtype} {tuple(scores.shape)}")
    scores = _writable(scores)
    mask_seen(scores, batch["seen_rows"], batch["seen_items"])
    if negatives is not None:
        keep_candidates(scores, batch, negatives)
    return top_k(scores, k)

