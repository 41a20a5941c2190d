"""Catalogue-constrained decoding for generative recommenders (GenRec, LLM4Rec's generative mode).

Three pieces, usable on their own:

- ``item_titles(items)`` and ``catalogue_sequences(titles, keys, tokenizer)``: one token
  sequence per item (its title, cut to ``max_tokens``, then a terminator), made unique:
  items whose sequences coincide (duplicate titles, or titles equal after the cut) get
  their key (raw item id) appended, so every sequence names exactly one item.
- ``CatalogueTrie(sequences)``: the prefix tree of those sequences, as flat arrays
  (children of a node in CSR form, items below a node as a contiguous range). It rejects
  duplicate sequences and sequences that are a prefix of another, so every root-to-leaf
  path is exactly one item.
- ``constrained_beam_search(lm, trie, k, prompts=...)``: beam search over the trie with a
  transformers causal LM (peft-wrapped or not), returning the k best items per prompt,
  never an item in that prompt's ``exclude`` set (the user's seen items).

Scoring. An item's score is its title's log-probability under the LM, teacher-forced:
the sum over its tokens of log softmax(logits)[token], the softmax running over the
catalogue's token vocabulary (``trie.tokens``, the only tokens decoding can emit; what
GenRec trains on) or over any given token set (``normalize_over``, e.g. the whole
vocabulary). Constraints mask continuations (a child token whose subtree holds no
admissible item is never taken) but never renormalise: renormalising over the allowed
children would give every forced token probability 1 and favour titles in sparse
subtrees whatever the model thinks of their remaining tokens (GENRE and transformers'
``prefix_allowed_tokens_fn`` do not renormalise either).

Search. The beam holds the ``num_beams`` best hypotheses, complete or not (default and
minimum: k). Each step expands the incomplete ones by one choice and keeps the
``num_beams`` best of (complete so far + expansions); scores never increase along a
path, so a complete hypothesis in the beam is final, and the search stops when every
hypothesis in the beam is complete. It returns min(num_beams, admissible items) distinct
items: fewer than k only when fewer than k items are admissible; those slots hold -1
(the evaluator counts them as invalid). Ties: higher score first, then the lower item id.
A run of forced tokens (a node with one admissible child: a shared prefix, or the rest
of a title once one admissible item is left) involves no choice, so a beam may feed its
chosen token and the next ``max_chain - 1`` forced tokens in one forward pass, reading
their log-probabilities from it (on synthetic-amazon's titles a path has 13.9 tokens but
3.2 choices). All beams of a pass share its width, so long runs pad every other beam:
feeding whole runs cost 2.7x the real tokens and made decoding 3x slower than
``max_chain=2`` (default), which was also as fast as 1 or 4 (GenRec, SmolLM2 8 blocks, 48
ml-latest-small users, one thread: 141.6 s whole runs, 45.8 s / 41.6 s / 42.1 s for
1 / 2 / 4). Shorter chains change which partial hypotheses the beam keeps, not how a
title is scored; the mean log-probability of the 20 titles found was -164.2 (2) against
-166.2 (whole runs).

Why not ``model.generate(prefix_allowed_tokens_fn=...)``: transformers' beam search
encodes the prompt once per beam (``num_beams`` times the prefill cost), computes logits
over the whole vocabulary at every step and calls a Python hook per beam per step; it
also cannot prune subtrees per user or stop early on forced suffixes. Here the prompt is
encoded once per user and its KV cache is shared by the beams (``Cache.reorder_cache``),
logits are computed over the normalising token set only (rows of the output embedding),
and the decoder is the model's own transformers decoder with its own cache class.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = [
    "BeamSearchResult",
    "CatalogueTrie",
    "catalogue_sequences",
    "constrained_beam_search",
    "item_titles",
]


# --- item titles -> unique token sequences ------------------------------------------------


def item_titles(items: pd.DataFrame) -> list[str]:
    """One display title per item (row i = internal item i): the ``title`` column with
    whitespace runs (newlines included) collapsed; ``item <raw_id>`` where it is missing."""
    if "title" not in items.columns:
        raise ValueError(f"the item table has no 'title' column (columns: {list(items.columns)})")
    raw = items["raw_id"].astype(str).tolist() if "raw_id" in items.columns else [str(i) for i in range(len(items))]
    out = []
    for title, key in zip(items["title"].tolist(), raw):
        text = "" if title is None or (isinstance(title, float) and np.isnan(title)) else re.sub(r"\s+", " ", str(title)).strip()
        out.append(text or f"item {key}")
    return out


def catalogue_sequences(
    titles: Sequence[str], keys: Sequence[str], tokenizer: Any, *, max_tokens: int = 24, terminator: str = "\n"
) -> list[list[int]]:
    """Token ids of every item: its title (at most ``max_tokens`` tokens) + the terminator's tokens.

    Items whose cut titles tokenise identically (duplicate titles, or long titles equal in
    their first ``max_tokens`` tokens) are disambiguated by appending `` [<key>]`` (keys:
    raw item ids, unique per item) within the same token budget. Raises ValueError if
    sequences still coincide (keys not unique).
    """
    if len(titles) != len(keys):
        raise ValueError(f"{len(titles)} titles but {len(keys)} keys")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    end = tokenizer(terminator, add_special_tokens=False).input_ids
    if not end:
        raise ValueError(f"the terminator {terminator!r} tokenises to nothing")
    ids = [row[:max_tokens] for row in tokenizer(list(titles), add_special_tokens=False).input_ids]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(ids):
        groups.setdefault(tuple(row), []).append(i)
    for members in groups.values():
        if len(members) > 1:
            for i in members:
                suffix = tokenizer(f" [{keys[i]}]", add_special_tokens=False).input_ids
                full = tokenizer(titles[i], add_special_tokens=False).input_ids
                ids[i] = full[: max(max_tokens - len(suffix), 0)] + suffix
    seen: dict[tuple[int, ...], int] = {}
    for i, row in enumerate(ids):
        other = seen.setdefault(tuple(row), i)
        if other != i:
            raise ValueError(f"items {other} and {i} have the same token sequence even with their keys appended (keys must be unique)")
    return [row + end for row in ids]


# --- the trie ---------------------------------------------------------------------------------


class CatalogueTrie:
    """Prefix tree over one token sequence per item; every root-to-leaf path is one item.

    Nodes are numbered in depth-first order (root = 0, children by increasing token), so
    the items below a node are ``items_in_order[first[v] : first[v] + n_below[v]]``.
    Arrays: ``child_ptr`` [n_nodes + 1] and ``child_token`` / ``child_node`` [n_nodes - 1]
    (the children of v are entries ``child_ptr[v]:child_ptr[v + 1]``), ``n_below``,
    ``leaf_item`` (-1 for inner nodes), ``item_path`` [n_items, max_length] (the nodes
    after each token of an item's sequence, -1 padded).
    """

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        n_items = len(sequences)
        if n_items == 0:
            raise ValueError("CatalogueTrie needs at least one item")
        seqs = [tuple(int(t) for t in s) for s in sequences]
        for i, s in enumerate(seqs):
            if not s:
                raise ValueError(f"item {i} has an empty token sequence")
        order = sorted(range(n_items), key=seqs.__getitem__)
        parent, token, first = [-1], [-1], [0]
        leaf_item = {}
        self.max_length = max(len(s) for s in seqs)
        item_path = np.full((n_items, self.max_length), -1, dtype=np.int64)
        stack, prev = [0], ()
        for rank, i in enumerate(order):
            s = seqs[i]
            common = 0
            while common < min(len(prev), len(s)) and prev[common] == s[common]:
                common += 1
            if prev and common == len(prev):  # sorted order puts a prefix right before its extensions
                j = order[rank - 1]
                what = "the same token sequence as" if s == prev else "a token sequence that extends that of"
                raise ValueError(f"item {i} has {what} item {j}; every item needs a unique, prefix-free sequence")
            del stack[common + 1 :]
            for t in s[common:]:
                parent.append(stack[-1])
                token.append(t)
                first.append(rank)
                stack.append(len(parent) - 1)
            leaf_item[stack[-1]] = i
            item_path[i, : len(s)] = stack[1:]
            prev = s
        n_nodes = len(parent)
        self.n_items, self.n_nodes = n_items, n_nodes
        parent_a = np.asarray(parent, dtype=np.int64)
        token_a = np.asarray(token, dtype=np.int64)
        by_parent = np.argsort(parent_a[1:], kind="stable") + 1  # creation order = token order within a parent
        self.child_token = token_a[by_parent]
        self.child_node = by_parent
        self.child_ptr = np.concatenate([[0], np.cumsum(np.bincount(parent_a[1:], minlength=n_nodes))]).astype(np.int64)
        self.leaf_item = np.full(n_nodes, -1, dtype=np.int64)
        self.leaf_item[list(leaf_item)] = list(leaf_item.values())
        self.first = np.asarray(first, dtype=np.int64)
        self.items_in_order = np.asarray(order, dtype=np.int64)
        # items below a node: the leaves of its subtree, summed level by level from the deepest
        depth = np.zeros(n_nodes, dtype=np.int64)
        for v in range(1, n_nodes):  # parents precede children
            depth[v] = depth[parent[v]] + 1
        n_below = (self.leaf_item >= 0).astype(np.int64)
        for d in range(int(depth.max()), 0, -1):
            level = np.flatnonzero(depth == d)
            np.add.at(n_below, parent_a[level], n_below[level])
        self.n_below = n_below
        self.item_path = item_path
        self.sequences = seqs

    def __len__(self) -> int:
        return self.n_items

    @property
    def tokens(self) -> np.ndarray:
        """The sorted distinct token ids used by the catalogue (the decoding vocabulary)."""
        return np.unique(self.child_token)

    def children(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, child nodes) of ``node``, by increasing token."""
        lo, hi = self.child_ptr[node], self.child_ptr[node + 1]
        return self.child_token[lo:hi], self.child_node[lo:hi]

    def step(self, node: int, token: int) -> int:
        """The child of ``node`` reached by ``token``, or -1 if the catalogue has no such prefix."""
        tokens, nodes = self.children(node)
        at = int(np.searchsorted(tokens, token))
        return int(nodes[at]) if at < len(tokens) and tokens[at] == token else -1

    def walk(self, tokens: Sequence[int]) -> int:
        """The node reached from the root by ``tokens``, or -1."""
        node = 0
        for t in tokens:
            node = self.step(node, int(t))
            if node < 0:
                return -1
        return node

    def lookup(self, tokens: Sequence[int]) -> int:
        """The item whose full sequence is ``tokens``, or -1."""
        node = self.walk(tokens)
        return int(self.leaf_item[node]) if node >= 0 else -1

    def allowed(self, tokens: Sequence[int]) -> list[int]:
        """Tokens that may follow the prefix ``tokens`` (empty after a complete item or off the trie)."""
        node = self.walk(tokens)
        return self.children(node)[0].tolist() if node >= 0 else []

    def items_below(self, node: int) -> np.ndarray:
        """Item ids whose sequences start with the prefix that leads to ``node``."""
        return self.items_in_order[self.first[node] : self.first[node] + self.n_below[node]]


# --- per-prompt exclusions --------------------------------------------------------------------


class _Exclusions:
    """For B prompts: how many excluded items lie below each (prompt, node), by binary search."""

    def __init__(self, trie: CatalogueTrie, rows: np.ndarray, items: np.ndarray, n_rows: int) -> None:
        if len(items) and (items.min() < 0 or items.max() >= trie.n_items):
            raise ValueError(f"excluded item ids must lie in [0, {trie.n_items})")
        pairs = np.unique(rows * trie.n_items + items)
        rows, items = pairs // trie.n_items, pairs % trie.n_items
        self.trie, self.n_nodes = trie, trie.n_nodes
        self.root_count = np.bincount(rows, minlength=n_rows)
        paths = trie.item_path[items]  # [m, max_length]
        keep = paths >= 0
        keys = np.repeat(rows, keep.sum(1)) * trie.n_nodes + paths[keep]
        self.keys, self.counts = np.unique(keys, return_counts=True)

    def admissible(self, rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Items below each (row, node) that are not excluded for that row."""
        out = self.trie.n_below[nodes].copy()
        root = nodes == 0
        out[root] -= self.root_count[rows[root]]
        if len(self.keys):
            query = rows * self.n_nodes + nodes
            at = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
            hit = (self.keys[at] == query) & ~root
            out[hit] -= self.counts[at[hit]]
        return out


def _forced_chains(
    trie: CatalogueTrie, exclusions: _Exclusions, rows: np.ndarray, nodes: np.ndarray, tokens: np.ndarray,
    max_length: int,
) -> tuple[list[list[int]], np.ndarray]:
    """Extend each beam (row, node reached by ``tokens``) down its forced path, to at most
    ``max_length`` tokens in all: while its node has exactly one child with an admissible item,
    take that child (towards the leaf once a single admissible item is left). Returns every
    beam's token chain (its chosen token first) and the nodes reached."""
    chains = [[int(t)] for t in tokens]
    nodes = nodes.copy()
    active = np.arange(len(nodes))
    for _ in range(max_length - 1):
        if not len(active):
            break
        starts, ends = trie.child_ptr[nodes[active]], trie.child_ptr[nodes[active] + 1]
        counts = ends - starts
        owner = np.repeat(np.arange(len(active)), counts)
        edge = starts[owner] + np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        ok = exclusions.admissible(rows[active][owner], trie.child_node[edge]) > 0
        forced = np.bincount(owner[ok], minlength=len(active)) == 1
        if not forced.any():
            break
        chosen_edge = np.zeros(len(active), dtype=np.int64)
        chosen_edge[owner[ok]] = edge[ok]  # the single admissible child where forced
        for b, e in zip(active[forced].tolist(), chosen_edge[forced].tolist()):
            chains[b].append(int(trie.child_token[e]))
        nodes[active[forced]] = trie.child_node[chosen_edge[forced]]
        active = active[forced]
    return chains, nodes


# --- beam search ------------------------------------------------------------------------------


@dataclass
class BeamSearchResult:
    """``items`` LongTensor [B, k]: best first, -1 where fewer than k items are admissible;
    ``scores`` FloatTensor [B, k]: log P(title | prompt) under the LM (softmax over the
    normalising tokens), -inf where ``items`` is -1."""

    items: torch.Tensor
    scores: torch.Tensor


def _left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if len(prompt):
            ids[row, length - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
            mask[row, length - len(prompt) :] = 1
    return ids, mask


def _output_layer(lm: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    head = lm.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(lm).__name__} has no output embedding (is it a causal LM?)")
    return head.weight, getattr(head, "bias", None)


@torch.no_grad()
def constrained_beam_search(
    lm: Any,
    trie: CatalogueTrie,
    k: int,
    *,
    prompts: Sequence[Sequence[int]] | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    exclude: Sequence[Collection[int]] | tuple[torch.Tensor, torch.Tensor] | None = None,
    num_beams: int | None = None,
    pad_token_id: int = 0,
    normalize_over: Sequence[int] | torch.Tensor | None = None,
    max_chain: int = 2,
) -> BeamSearchResult:
    """The k best catalogue items for each prompt (see the module docstring for the scoring).

    ``lm``: a transformers causal LM (optionally peft-wrapped); put it in eval mode first.
    Prompts: either ``prompts`` (token id lists; left-padded here) or ``inputs_embeds``
    [B, P, d] with its left-padded ``attention_mask`` [B, P] (for soft prompts).
    ``exclude``: per prompt, item ids never to return: a list of collections, or the
    evaluation batch's flat ``(seen_rows, seen_items)`` pair.
    ``num_beams``: beam width, at least ``k`` (default ``k``).
    ``normalize_over``: token ids the next-token softmax runs over (default: the
    catalogue's tokens, ``trie.tokens``; ``range(vocab_size)`` for the LM's full softmax).
    ``max_chain``: tokens a beam feeds per forward pass, its chosen token and up to
    ``max_chain - 1`` forced tokens after it (1: one token per step).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_chain < 1:
        raise ValueError(f"max_chain must be >= 1, got {max_chain}")
    if (prompts is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of prompts or inputs_embeds")
    beams = max(k, num_beams or k)
    decoder = lm.get_decoder()
    weight, bias = _output_layer(lm)
    device = weight.device
    with _sdpa_gqa(device):
        return _search(decoder, weight, bias, trie, k, beams, prompts, inputs_embeds, attention_mask, exclude, pad_token_id, normalize_over, max_chain)


@contextlib.contextmanager
def _sdpa_gqa(device: torch.device) -> Iterator[None]:
    """On CPU, let transformers' SDPA attention share key/value heads (``enable_gqa``) instead of
    copying them once per query head (``repeat_kv``): the beams' KV caches are large, and the
    copies were 16% of decoding time (SmolLM2: 3 key/value heads for 9 query heads; identical
    results). transformers turns it on by default only without an attention mask."""
    if device.type != "cpu":
        yield
        return
    previous = os.environ.get(_FORCE_GQA)
    os.environ[_FORCE_GQA] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[_FORCE_GQA]
        else:
            os.environ[_FORCE_GQA] = previous


_FORCE_GQA = "TRANSFORMERS_SDPA_FORCE_GQA"


def _search(
    decoder: Any, weight: torch.Tensor, bias: torch.Tensor | None, trie: CatalogueTrie, k: int, beams: int,
    prompts: Sequence[Sequence[int]] | None, inputs_embeds: torch.Tensor | None, attention_mask: torch.Tensor | None,
    exclude: Sequence[Collection[int]] | tuple[torch.Tensor, torch.Tensor] | None, pad_token_id: int,
    normalize_over: Sequence[int] | torch.Tensor | None, max_chain: int,
) -> BeamSearchResult:
    device = weight.device
    if prompts is not None:
        input_ids, mask = _left_pad(prompts, pad_token_id)
        first_inputs: dict[str, torch.Tensor] = {"input_ids": input_ids.to(device)}
    else:
        assert inputs_embeds is not None
        if attention_mask is None or attention_mask.shape != inputs_embeds.shape[:2]:
            raise ValueError("inputs_embeds needs an attention_mask of shape [B, P]")
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("inputs_embeds must be left-padded (attention_mask[:, -1] all ones)")
        mask = attention_mask.long().cpu()
        first_inputs = {"inputs_embeds": inputs_embeds}
    n_rows = mask.shape[0]

    if exclude is None:
        ex_rows = ex_items = np.zeros(0, dtype=np.int64)
    elif isinstance(exclude, tuple) and len(exclude) == 2 and isinstance(exclude[0], torch.Tensor):
        ex_rows, ex_items = (t.detach().cpu().numpy().astype(np.int64) for t in exclude)
    else:
        if len(exclude) != n_rows:
            raise ValueError(f"exclude has {len(exclude)} entries for {n_rows} prompts")
        ex_rows = np.asarray([r for r, items in enumerate(exclude) for _ in items], dtype=np.int64)
        ex_items = np.asarray([int(i) for items in exclude for i in items], dtype=np.int64)
    exclusions = _Exclusions(trie, ex_rows, ex_items, n_rows)

    norm_tokens = torch.as_tensor(trie.tokens if normalize_over is None else normalize_over, dtype=torch.long, device=device)
    if not bool(torch.isin(torch.as_tensor(trie.tokens, device=device), norm_tokens).all()):
        raise ValueError("normalize_over must include every token of the catalogue (trie.tokens)")
    norm_weight = weight[norm_tokens].float()
    norm_bias = bias[norm_tokens].float() if bias is not None else None

    def log_normalizer(states: torch.Tensor) -> torch.Tensor:
        """logsumexp of the logits over the normalising tokens, for states [..., d] (in row chunks)."""
        flat = states.reshape(-1, states.shape[-1])
        out = torch.empty(flat.shape[0], device=device)
        chunk = max(1, (1 << 24) // max(len(norm_tokens), 1))
        for lo in range(0, flat.shape[0], chunk):
            logits = flat[lo : lo + chunk] @ norm_weight.T
            out[lo : lo + chunk] = torch.logsumexp(logits if norm_bias is None else logits + norm_bias, dim=-1)
        return out.reshape(states.shape[:-1])

    def token_logits(states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logit of ``tokens[i]`` for ``states[i]``."""
        logits = (states * weight[tokens].float()).sum(-1)
        return logits if bias is None else logits + bias[tokens].float()

    # finished hypotheses (row, score, item) and running ones (row, node, score; beam b = cache row b)
    fin_row, fin_score, fin_item = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
    run_row = np.flatnonzero(exclusions.admissible(np.arange(n_rows), np.zeros(n_rows, dtype=np.int64)) > 0)
    run_node = np.zeros(len(run_row), dtype=np.int64)
    run_score = np.zeros(len(run_row))
    hidden = cache = None
    if len(run_row):
        sel = torch.as_tensor(run_row)
        inputs = {name: value[sel.to(value.device)] for name, value in first_inputs.items()}
        cache_mask = mask[sel]  # [running beams, cached positions]: 0 for padding, in the prompt or between chains
        next_position = cache_mask.sum(1)
        position = (cache_mask.cumsum(1) - 1).clamp(min=0)
        out = decoder(**inputs, attention_mask=cache_mask.to(device), position_ids=position.to(device), use_cache=True)
        hidden, cache = out.last_hidden_state[:, -1].float(), out.past_key_values
        normalizer = log_normalizer(hidden)
    while len(run_row):
        # candidate continuations: admissible children of every running beam
        starts, ends = trie.child_ptr[run_node], trie.child_ptr[run_node + 1]
        counts = ends - starts
        cand_beam = np.repeat(np.arange(len(run_row)), counts)
        edge = starts[cand_beam] + np.arange(len(cand_beam)) - np.repeat(np.cumsum(counts) - counts, counts)
        cand_token, cand_node = trie.child_token[edge], trie.child_node[edge]
        cand_row = run_row[cand_beam]
        keep = exclusions.admissible(cand_row, cand_node) > 0
        cand_beam, cand_token, cand_node, cand_row = (a[keep] for a in (cand_beam, cand_token, cand_node, cand_row))
        # log-probabilities of the candidate tokens: rows of the output layer, one gather per distinct token
        vocab, column = np.unique(cand_token, return_inverse=True)
        vocab_t = torch.as_tensor(vocab, device=device)
        logits = hidden @ weight[vocab_t].float().T  # [beams, distinct candidate tokens]
        if bias is not None:
            logits = logits + bias[vocab_t].float()
        beam_t = torch.as_tensor(cand_beam, device=device)
        log_p = (logits[beam_t, torch.as_tensor(column, device=device)] - normalizer[beam_t]).double().cpu().numpy()
        cand_score = run_score[cand_beam] + log_p
        cand_item = trie.leaf_item[cand_node]  # the terminator was chosen: complete

        # the beam: the `beams` best of (finished so far + candidates) per prompt
        all_row = np.concatenate([fin_row, cand_row])
        all_score = np.concatenate([fin_score, cand_score])
        all_item = np.concatenate([fin_item, cand_item])
        source = np.concatenate([np.full(len(fin_row), -1), np.arange(len(cand_row))])
        tie = np.where(all_item >= 0, all_item, trie.n_items + np.concatenate([np.zeros(len(fin_row), dtype=np.int64), cand_node]))
        order = np.lexsort((tie, -all_score, all_row))
        sorted_row = all_row[order]
        group_start = np.searchsorted(sorted_row, sorted_row, side="left")
        chosen = order[np.arange(len(order)) - group_start < beams]
        done = all_item[chosen] >= 0
        fin_row, fin_score, fin_item = all_row[chosen[done]], all_score[chosen[done]], all_item[chosen[done]]
        going = source[chosen[~done]]
        if not len(going):
            break
        parent = cand_beam[going]
        run_row, run_score = cand_row[going], cand_score[going]
        # the chosen token and its forced run (no choice) in one forward pass
        chains, run_node = _forced_chains(trie, exclusions, run_row, cand_node[going], cand_token[going], max_chain)
        width = max(len(c) for c in chains)
        tokens = torch.full((len(chains), width), pad_token_id, dtype=torch.long)
        chain_mask = torch.zeros((len(chains), width), dtype=torch.long)
        for b, chain in enumerate(chains):
            tokens[b, : len(chain)] = torch.as_tensor(chain)
            chain_mask[b, : len(chain)] = 1
        parent_t = torch.as_tensor(parent)
        cache.reorder_cache(parent_t.to(device))
        cache_mask = torch.cat([cache_mask[parent_t], chain_mask], dim=1)
        position = next_position[parent_t].unsqueeze(1) + torch.arange(width)
        lengths = chain_mask.sum(1)
        next_position = next_position[parent_t] + lengths
        out = decoder(
            input_ids=tokens.to(device), attention_mask=cache_mask.to(device), position_ids=position.to(device),
            past_key_values=cache, use_cache=True,
        )  # fmt: skip
        states, cache = out.last_hidden_state.float(), out.past_key_values  # [beams, width, d]
        normalizers = log_normalizer(states)
        # the state at chain position j predicts the chain's token j + 1
        forced = chain_mask[:, 1:].bool().to(device)
        forced_log_p = torch.where(forced, token_logits(states[:, :-1], tokens[:, 1:].to(device)) - normalizers[:, :-1], 0.0)
        run_score = run_score + forced_log_p.sum(1).double().cpu().numpy()
        last = (lengths - 1).to(device)
        rows_t = torch.arange(len(chains), device=device)
        hidden, normalizer = states[rows_t, last], normalizers[rows_t, last]
        # a chain that reached its leaf (one admissible item was left) is complete
        leaf = trie.leaf_item[run_node]
        complete = leaf >= 0
        if complete.any():
            fin_row = np.concatenate([fin_row, run_row[complete]])
            fin_score = np.concatenate([fin_score, run_score[complete]])
            fin_item = np.concatenate([fin_item, leaf[complete]])
            keep_t = torch.as_tensor(np.flatnonzero(~complete), device=device)
            run_row, run_node, run_score = run_row[~complete], run_node[~complete], run_score[~complete]
            hidden, normalizer = hidden[keep_t], normalizer[keep_t]
            cache.reorder_cache(keep_t)
            cache_mask, next_position = cache_mask[keep_t.cpu()], next_position[keep_t.cpu()]

    items = torch.full((n_rows, k), -1, dtype=torch.long)
    scores = torch.full((n_rows, k), float("-inf"))
    order = np.lexsort((fin_item, -fin_score, fin_row))
    fin_row, fin_score, fin_item = fin_row[order], fin_score[order], fin_item[order]
    rank = np.arange(len(fin_row)) - np.searchsorted(fin_row, fin_row, side="left")
    top_k = rank < k
    items[fin_row[top_k], rank[top_k]] = torch.as_tensor(fin_item[top_k])
    scores[fin_row[top_k], rank[top_k]] = torch.as_tensor(fin_score[top_k], dtype=torch.float32)
    return BeamSearchResult(items, scores)
