"""Accuracy metrics against values computed by hand from DESIGN.md's definitions."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from benchmark.metrics import (
    ACCURACY_METRICS,
    HR,
    MAP,
    MRR,
    NDCG,
    RankedBatch,
    Recall,
    TopKMetric,
    ValidRatio,
    average_precision,
    hr,
    mrr,
    ndcg,
    recall,
)

L2, L3, L4, L5, L6 = (math.log2(x) for x in (2, 3, 4, 5, 6))

# Three users, five ranked slots each.
HITS = torch.tensor(
    [
        [1, 0, 1, 0, 0],  # |R| = 3: hits at ranks 1 and 3
        [0, 0, 0, 1, 1],  # |R| = 2: hits at ranks 4 and 5
        [0, 0, 0, 0, 0],  # |R| = 0: excluded from means
    ],
    dtype=torch.bool,
)
N_REL = torch.tensor([3, 2, 0])


def ranked(hits: torch.Tensor, n_relevant: torch.Tensor) -> RankedBatch:
    items = torch.arange(hits.numel()).view(hits.shape)
    return RankedBatch(
        users=torch.arange(hits.shape[0]),
        items=items,
        valid=torch.ones_like(hits),
        hits=hits,
        n_relevant=n_relevant,
    )


def test_functional_at_5() -> None:
    idcg3 = 1 / L2 + 1 / L3 + 1 / L4
    idcg2 = 1 / L2 + 1 / L3
    assert ndcg(HITS, N_REL, 5).tolist() == pytest.approx([(1 + 1 / L4) / idcg3, (1 / L5 + 1 / L6) / idcg2, 0.0])
    assert hr(HITS, N_REL, 5).tolist() == [1.0, 1.0, 0.0]
    assert recall(HITS, N_REL, 5).tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert mrr(HITS, N_REL, 5).tolist() == pytest.approx([1.0, 1 / 4, 0.0])
    # AP: (P@1 + P@3) / min(3, 5) and (P@4 + P@5) / min(2, 5)
    assert average_precision(HITS, N_REL, 5).tolist() == pytest.approx([(1 + 2 / 3) / 3, (1 / 4 + 2 / 5) / 2, 0.0])


def test_hits_beyond_k_are_ignored() -> None:
    assert ndcg(HITS, N_REL, 3).tolist() == pytest.approx([(1 + 1 / L4) / (1 / L2 + 1 / L3 + 1 / L4), 0.0, 0.0])
    assert hr(HITS, N_REL, 3).tolist() == [1.0, 0.0, 0.0]
    assert recall(HITS, N_REL, 3).tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert mrr(HITS, N_REL, 3).tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert average_precision(HITS, N_REL, 3).tolist() == pytest.approx([(1 + 2 / 3) / 3, 0.0, 0.0])
    # k = 1: only the first slot counts; ideal list has min(|R|, 1) = 1 item.
    assert ndcg(HITS, N_REL, 1).tolist() == [1.0, 0.0, 0.0]
    assert average_precision(HITS, N_REL, 1).tolist() == [1.0, 0.0, 0.0]


def test_more_relevant_items_than_k() -> None:
    hits = torch.tensor([[1, 1], [0, 1]], dtype=torch.bool)
    n_rel = torch.tensor([5, 5])
    # ideal list: min(5, 2) = 2 items, so a full list of hits is perfect
    assert ndcg(hits, n_rel, 2).tolist() == pytest.approx([1.0, (1 / L3) / (1 + 1 / L3)])
    assert average_precision(hits, n_rel, 2).tolist() == pytest.approx([1.0, (1 / 2) / 2])
    assert recall(hits, n_rel, 2).tolist() == pytest.approx([2 / 5, 1 / 5])


def test_k_larger_than_the_list() -> None:
    """A catalogue with 2 candidates evaluated at k = 5: IDCG still uses min(|R|, 5) items."""
    hits = torch.tensor([[0, 1]], dtype=torch.bool)
    n_rel = torch.tensor([4])
    idcg4 = 1 / L2 + 1 / L3 + 1 / L4 + 1 / L5
    assert ndcg(hits, n_rel, 5).item() == pytest.approx((1 / L3) / idcg4)
    assert hr(hits, n_rel, 5).item() == 1.0
    assert recall(hits, n_rel, 5).item() == pytest.approx(1 / 4)
    assert mrr(hits, n_rel, 5).item() == pytest.approx(1 / 2)
    assert average_precision(hits, n_rel, 5).item() == pytest.approx((1 / 2) / 4)
    empty = torch.zeros(1, 0, dtype=torch.bool)
    for fn in (ndcg, hr, recall, mrr, average_precision):
        assert fn(empty, n_rel, 5).tolist() == [0.0]


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (NDCG, ((1 + 1 / L4) / (1 / L2 + 1 / L3 + 1 / L4) + (1 / L5 + 1 / L6) / (1 / L2 + 1 / L3)) / 2),
        (HR, 1.0),
        (Recall, (2 / 3 + 1) / 2),
        (MRR, (1 + 1 / 4) / 2),
        (MAP, ((1 + 2 / 3) / 3 + (1 / 4 + 2 / 5) / 2) / 2),
    ],
)
def test_metric_class_means_over_users_with_relevant_items(cls: type[TopKMetric], expected: float) -> None:
    metric = cls(k=5)
    metric.update(ranked(HITS, N_REL))
    assert metric.compute().item() == pytest.approx(expected)
    # the same users split over two batches give the same value
    split = cls(k=5)
    split.update(ranked(HITS[:1], N_REL[:1]))
    split.update(ranked(HITS[1:], N_REL[1:]))
    assert split.compute().item() == pytest.approx(expected)
    assert split.count.item() == 2


def test_metric_state_is_small_and_summable() -> None:
    metric = NDCG(k=10)
    assert metric.key == "ndcg@10"
    assert metric.total.dtype == torch.float64 and metric.total.shape == ()
    assert metric.count.dtype == torch.long and metric.count.shape == ()
    assert metric._reductions["total"] is not None and metric.full_state_update is False
    metric.update(ranked(HITS[2:], N_REL[2:]))  # only a user without relevant items
    assert metric.compute().item() == 0.0 and metric.count.item() == 0


def test_registry_names() -> None:
    assert set(ACCURACY_METRICS) == {"ndcg", "hr", "recall", "mrr", "map"}
    assert [ACCURACY_METRICS[name](k=20).key for name in ("hr", "map")] == ["hr@20", "map@20"]
    with pytest.raises(ValueError, match="k must be >= 1"):
        NDCG(k=0)


def test_valid_ratio() -> None:
    metric = ValidRatio()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(metric.compute().item())  # never updated: not applicable
    batch = ranked(torch.zeros(2, 2, dtype=torch.bool), torch.tensor([1, 1]))
    metric.update(dataclasses.replace(batch, valid=torch.tensor([[True, False], [True, True]])))
    assert metric.compute().item() == pytest.approx(3 / 4)
