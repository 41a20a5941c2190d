"""LLM4Rec module 2: retrieval-augmented context -- a FAISS index over fused item embeddings
and a store of item text snippets.

The paper: cosine similarity between a user query embedding and knowledge entries drawn
from the system's own item metadata and user histories; the retrieved set conditions
generation. Our reading (llm4rec/README.md):

- Entries: one per *known* item -- an item with at least one training interaction.
  Items that first occur in the validation or test period are never in the index, and
  snippets hold training-period text only, so retrieval cannot return anything from
  the future of the evaluated interaction.
- Keys: the fused item embeddings (module 1), L2-normalised, so inner product = cosine.
  ``IndexFlatIP`` (exact) by default; ``ivf`` (``IndexIVFFlat``, ``nlist`` cells,
  ``nprobe`` probed) and ``hnsw`` (``IndexHNSWFlat``, ``hnsw_m`` links) for large
  catalogues. The model rebuilds the index whenever the embeddings change: at the start
  of every training epoch and before every evaluation pass.
- Query (built by the model): the normalised mean of the fused embeddings of the user's
  ``rag_query_items`` most recent items; the items of the query are excluded from the
  results.
- Snippets: "title (categories): a training-period review" per item, for the text part
  of the context (the explanation prompt's evidence).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import faiss
import numpy as np
import pandas as pd
import torch

from benchmark.errors import BenchmarkError

IndexKind = Literal["flat", "ivf", "hnsw"]


class RetrievalIndex:
    """Top-r nearest known items by cosine similarity (FAISS), with per-query exclusions.

    ``build(embeddings, known)`` indexes the rows of ``embeddings`` [n_items, d] whose
    ``known`` flag is set; ``search(queries, r, exclude)`` returns item ids and cosine
    similarities [Q, r] (-1 / -inf where fewer than r known items remain).
    """

    def __init__(self, kind: IndexKind = "flat", *, nlist: int = 64, nprobe: int = 8, hnsw_m: int = 32, seed: int = 0) -> None:
        if kind not in ("flat", "ivf", "hnsw"):
            raise BenchmarkError(f"rag_index must be flat, ivf or hnsw, got {kind!r}")
        if nlist < 1 or nprobe < 1 or hnsw_m < 2:
            raise BenchmarkError(f"retrieval index: need nlist >= 1, nprobe >= 1, hnsw_m >= 2 (got {nlist}, {nprobe}, {hnsw_m})")
        self.kind, self.nlist, self.nprobe, self.hnsw_m, self.seed = kind, nlist, nprobe, hnsw_m, seed
        self.index: faiss.Index | None = None
        self.ids = np.zeros(0, dtype=np.int64)  # index row -> item id

    def __deepcopy__(self, memo: dict) -> RetrievalIndex:
        # FAISS objects do not deep-copy; a copy starts unbuilt and is rebuilt on first use
        fresh = copy.copy(self)
        fresh.index, fresh.ids = None, np.zeros(0, dtype=np.int64)
        return fresh

    def __getstate__(self) -> dict:
        return {**self.__dict__, "index": None, "ids": np.zeros(0, dtype=np.int64)}

    @property
    def built(self) -> bool:
        return self.index is not None

    def __len__(self) -> int:
        return len(self.ids)

    def build(self, embeddings: torch.Tensor | np.ndarray, known: torch.Tensor | np.ndarray) -> None:
        vectors = _as_numpy(embeddings)
        known = np.asarray(known.cpu() if isinstance(known, torch.Tensor) else known, dtype=bool)
        if vectors.ndim != 2 or len(known) != len(vectors):
            raise BenchmarkError(f"retrieval index: embeddings {vectors.shape} and known flags {known.shape} do not match")
        self.ids = np.flatnonzero(known).astype(np.int64)
        keys = np.ascontiguousarray(vectors[self.ids])
        faiss.normalize_L2(keys)
        d = keys.shape[1]
        if self.kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(d)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            # FAISS wants >= 39 training points per cell; fewer cells for small catalogues
            nlist = max(1, min(self.nlist, len(keys) // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = self.seed
            if len(keys):
                index.train(keys)
            index.nprobe = min(self.nprobe, nlist)
        if len(keys):
            index.add(keys)
        self.index = index

    def search(self, queries: torch.Tensor | np.ndarray, r: int, exclude: torch.Tensor | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(items [Q, r] int64, cosine [Q, r] float32) of the r nearest known items per query,
        never an id in that query's row of ``exclude`` [Q, E] (-1 or any absent id = nothing)."""
        if self.index is None:
            raise RuntimeError("RetrievalIndex.search before build")
        if r < 1:
            raise BenchmarkError(f"rag_top_r must be >= 1, got {r}")
        q = np.ascontiguousarray(_as_numpy(queries))
        n = len(q)
        items = np.full((n, r), -1, dtype=np.int64)
        sims = np.full((n, r), -np.inf, dtype=np.float32)
        if n == 0 or len(self.ids) == 0:
            return items, sims
        faiss.normalize_L2(q)
        ex = None if exclude is None else np.asarray(exclude.cpu() if isinstance(exclude, torch.Tensor) else exclude, dtype=np.int64)
        if ex is not None and ex.shape[0] != n:
            raise BenchmarkError(f"retrieval: {n} queries but {ex.shape[0]} exclusion rows")
        width = min(r + (ex.shape[1] if ex is not None else 0), len(self.ids))
        found_sim, rows = self.index.search(q, width)
        found = np.where(rows >= 0, self.ids[np.clip(rows, 0, None)], -1)
        valid = found >= 0
        if ex is not None and ex.shape[1]:
            valid &= ~(found[:, :, None] == ex[:, None, :]).any(-1)
        # keep the first r valid results of each row, in order of similarity
        rank = np.cumsum(valid, axis=1) - 1
        take = valid & (rank < r)
        row_ids = np.nonzero(take)[0]
        items[row_ids, rank[take]] = found[take]
        sims[row_ids, rank[take]] = found_sim[take]
        return items, sims


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.array(x, dtype=np.float32, copy=True)  # a copy: normalize_L2 works in place


def known_items(train_items: np.ndarray, n_items: int) -> np.ndarray:
    """Items with at least one training interaction: what the index may hold."""
    known = np.zeros(n_items, dtype=bool)
    known[np.asarray(train_items, dtype=np.int64)] = True
    return known


class SnippetStore:
    """One short text per known item: ``"title (categories): review"`` from the training period.

    ``reviews``: a DataFrame (item, timestamp, text) of *training* interactions (the
    training split of ``benchmark.data.reviews``); the earliest review of each item is used. Items without
    training interactions get no snippet ('').
    """

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    @classmethod
    def build(
        cls, titles: Sequence[str], attributes: Sequence[Sequence[str]], known: np.ndarray,
        reviews: pd.DataFrame | None = None, *, max_chars: int = 160,
    ) -> SnippetStore:  # fmt: skip
        if not (len(titles) == len(attributes) == len(known)):
            raise BenchmarkError(f"snippets: {len(titles)} titles, {len(attributes)} attribute lists, {len(known)} known flags")
        review = [""] * len(titles)
        if reviews is not None and len(reviews):
            first = reviews.sort_values(["item", "timestamp"], kind="stable").drop_duplicates("item")
            for item, text in zip(first["item"].to_numpy(), first["text"].to_numpy()):
                review[int(item)] = " ".join(str(text).split())
        texts = []
        for title, attrs, ok, text in zip(titles, attributes, known, review):
            if not ok:
                texts.append("")
                continue
            head = str(title or "").strip() or "an item"
            if attrs:
                head += f" ({', '.join(list(attrs)[:4])})"
            snippet = f"{head}: {text}" if text else head
            texts.append(snippet[:max_chars].rsplit(" ", 1)[0] if len(snippet) > max_chars else snippet)
        return cls(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def get(self, items: Sequence[int]) -> list[str]:
        """Snippets of the given items (ids < 0 and unknown items are skipped)."""
        return [self.texts[i] for i in items if 0 <= i < len(self.texts) and self.texts[i]]
