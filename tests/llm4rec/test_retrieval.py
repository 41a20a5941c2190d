import copy

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.errors import BenchmarkError
from llm4rec.model import LLM4Rec, LLM4RecConfig
from llm4rec.retrieval import RetrievalIndex, SnippetStore, known_items
from tests.baselines.helpers import eval_batch, sequential_batches
from tests.llm4rec.conftest import N_ITEMS, N_USERS, make_features, make_items

# four items on the unit circle and one far off: cosine neighbours are known by hand
VECTORS = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0], [0.6, -0.8]], dtype=np.float32)


def _brute_force(query: np.ndarray, known: np.ndarray, r: int) -> list[int]:
    cosine = VECTORS @ (query / np.linalg.norm(query))
    order = [i for i in np.argsort(-cosine, kind="stable") if known[i]]
    return order[:r]


def test_flat_index_is_exact_cosine_top_r() -> None:
    index = RetrievalIndex("flat")
    index.build(VECTORS * np.array([[3], [1], [2], [5], [1]], dtype=np.float32), np.ones(5, dtype=bool))  # norms do not matter
    items, sims = index.search(np.array([[1, 0.1], [0.1, -2]], dtype=np.float32), 3)
    assert items.tolist() == [_brute_force(np.array([1, 0.1]), np.ones(5, bool), 3), [4, 0, 3]]
    q = np.array([0.1, -2]) / np.hypot(0.1, 2)
    np.testing.assert_allclose(sims[1], [0.6 * q[0] - 0.8 * q[1], q[0], -q[0]], atol=1e-6)


def test_exclusions_and_short_results() -> None:
    index = RetrievalIndex("flat")
    index.build(VECTORS, np.ones(5, dtype=bool))
    items, sims = index.search(np.array([[1, 0]], dtype=np.float32), 2, exclude=np.array([[0, 1, -1]]))
    assert items.tolist() == [[4, 2]]
    items, sims = index.search(np.array([[1, 0]], dtype=np.float32), 7)
    assert items[0, 5:].tolist() == [-1, -1] and np.isneginf(sims[0, 5:]).all()


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_index_holds_known_items_only(kind: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((200, 8)).astype(np.float32)
    known = rng.random(200) < 0.6
    index = RetrievalIndex(kind, nlist=4, nprobe=4, hnsw_m=8)
    index.build(vectors, known)
    assert len(index) == known.sum()
    items, _ = index.search(vectors[:50], 5)
    found = items[items >= 0]
    assert known[found].all() and len(found) > 0.9 * items.size
    # the nearest known item of a known item is itself, for the approximate indexes too
    own = np.flatnonzero(known[:50])
    assert (items[own, 0] == own).mean() >= 0.9


def test_deep_copy_starts_unbuilt_and_errors_are_clear() -> None:
    index = RetrievalIndex("flat")
    index.build(VECTORS, np.ones(5, dtype=bool))
    clone = copy.deepcopy(index)
    assert index.built and not clone.built and clone.kind == "flat"
    with pytest.raises(RuntimeError, match="before build"):
        clone.search(VECTORS[:1], 2)
    with pytest.raises(BenchmarkError, match="flat, ivf or hnsw"):
        RetrievalIndex("lsh")  # type: ignore[arg-type]
    with pytest.raises(BenchmarkError, match="do not match"):
        index.build(VECTORS, np.ones(4, dtype=bool))


def test_snippets_hold_training_text_of_known_items_only() -> None:
    titles, attrs = ["A", "B", "C"], [["Pizza"], [], ["Bars", "Nightlife"]]
    reviews = pd.DataFrame({"user": [0, 1, 2], "item": [0, 0, 2], "timestamp": [5, 1, 3], "text": ["late  review", "first review", "fun"]})
    store = SnippetStore.build(titles, attrs, known_items(np.array([0, 2]), 3), reviews)
    assert store.texts == ["A (Pizza): first review", "", "C (Bars, Nightlife): fun"]
    assert store.get([2, 1, -1, 0]) == ["C (Bars, Nightlife): fun", "A (Pizza): first review"]


def test_model_retrieval_never_returns_items_from_the_future() -> None:
    """Items 9-11 occur only after the training period (in no training pair): no prompt may
    retrieve them, in training or at evaluation, whatever the history."""
    sequences = {u: [(u + s) % 9 for s in range(12)] for u in range(N_USERS)}
    users = np.array([u for u, s in sequences.items() for _ in s])
    items = np.array([i for s in sequences.values() for i in s])
    torch.manual_seed(0)
    config = LLM4RecConfig(backbone="tiny-llama", max_seq_length=6, dim=16, rag_top_r=4, explain=False, debias=False)
    model = LLM4Rec(N_USERS, N_ITEMS, config, features=make_features(), train_pairs=(users, items), items=make_items())
    future = {9, 10, 11}
    model.train()
    for batch in sequential_batches(sequences, N_ITEMS, 6, 8):
        model.training_step(batch, 0)
        got = set(model.last_retrieved[model.last_retrieved >= 0].tolist())
        assert got and not got & future
    model.eval()
    histories = [[9, 10, 11], [0, 9], [11, 3, 4, 5, 6, 7], [1]]  # the future items may be *in* a history
    with torch.no_grad():
        model.score(eval_batch(list(range(4)), histories, N_ITEMS, 6))
    got = model.last_retrieved[model.last_retrieved >= 0]
    assert len(got) and not set(got.tolist()) & future
    assert len(model.index) == 9
