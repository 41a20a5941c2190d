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


# --- beyond-accuracy metrics, by hand ----------------------------------------------------

from benchmark.metrics import (  # noqa: E402
    ILD,
    Coverage,
    Entropy,
    Gini,
    GroupDisparity,
    Novelty,
    TailShare,
    TrueNDCG,
    UserGapNDCG,
)


def lists(items: list[list[int]], users: list[int] | None = None, hits: list[list[int]] | None = None, n_rel: list[int] | None = None) -> RankedBatch:
    """A RankedBatch from id lists; -1 marks an invalid slot."""
    tensor = torch.tensor(items)
    valid = tensor >= 0
    return RankedBatch(
        users=torch.tensor(users if users is not None else list(range(len(items)))),
        items=tensor,
        valid=valid,
        hits=torch.tensor(hits, dtype=torch.bool) if hits is not None else torch.zeros_like(valid),
        n_relevant=torch.tensor(n_rel if n_rel is not None else [1] * len(items)),
    )


# users' lists over 5 items: exposure c = [3, 1, 1, 0, 0] (an invalid slot counts for nothing)
EXPOSED = [[0, 1], [0, 2], [0, -1]]


def test_coverage_gini_entropy_by_hand() -> None:
    batch = lists(EXPOSED)
    values = {}
    for cls in (Coverage, Gini, Entropy):
        metric = cls(k=2, n_items=5)
        metric.update(batch)
        values[cls.name] = metric.compute().item()
    assert values["coverage"] == pytest.approx(3 / 5)
    # sorted c = [0, 0, 1, 1, 3]; sum (2j - n - 1) c_j = 2*1 + 4*3 = 14; / (n * sum c) = 14 / 25
    assert values["gini"] == pytest.approx(14 / 25)
    assert values["entropy"] == pytest.approx(-(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2)))


def test_exposure_metrics_cut_at_k_and_edge_cases() -> None:
    gini = Gini(k=1, n_items=4)
    gini.update(lists([[0, 1], [0, 2]]))  # k = 1: only item 0, twice -> c = [2, 0, 0, 0]
    assert gini.compute().item() == pytest.approx((2 * 4 - 4 - 1) * 2 / (4 * 2))  # = 3/4 = 1 - 1/n
    equal = Gini(k=1, n_items=2)
    equal.update(lists([[0], [1]]))
    assert equal.compute().item() == 0.0
    for cls in (Coverage, Gini, Entropy):  # nothing exposed
        metric = cls(k=3, n_items=4)
        metric.update(lists([[-1, -1]]))
        assert metric.compute().item() == 0.0
    entropy = Entropy(k=5, n_items=8)
    entropy.update(lists([[0, 1, 2, 3]]))  # K > list length: uniform over 4 items
    assert entropy.compute().item() == pytest.approx(math.log(4))


def test_ild_by_hand() -> None:
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [0.0, 0.0]])  # item 2 is scaled: cosine ignores norms
    metric = ILD(k=3, features=features)
    # user 0: pairs (0,1) d=1, (0,2) d=1-1/sqrt2, (1,2) d=1-1/sqrt2; user 1: one valid item -> left out;
    # user 2: (1, 3): the all-zero item has cosine 0 with everything -> d=1
    batch = lists([[0, 1, 2], [2, -1, -1], [1, 3, -1]])
    values = metric.user_values(batch)
    u0 = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert values[0].item() == pytest.approx(u0) and math.isnan(values[1].item()) and values[2].item() == pytest.approx(1.0)
    metric.update(batch)
    assert metric.compute().item() == pytest.approx((u0 + 1.0) / 2)
    at2 = ILD(k=2, features=features)
    at2.update(batch)  # k = 2: user 0 has the pair (0, 1) only
    assert at2.compute().item() == pytest.approx((1.0 + 1.0) / 2)
    same = ILD(k=2, features=features)
    same.update(lists([[0, 2]]))
    assert same.compute().item() == pytest.approx(1 - 1 / math.sqrt(2))


def test_novelty_by_hand() -> None:
    info = torch.tensor([1.0, 2.0, 4.0])
    metric = Novelty(k=2, self_information=info)
    metric.update(lists([[0, 2, 1], [1, -1, 0], [-1, -1, -1]]))  # user 2: empty list, left out
    assert metric.compute().item() == pytest.approx(((1 + 4) / 2 + 2 / 1) / 2)
    assert metric.count.item() == 2


def test_tailshare_by_hand() -> None:
    is_tail = torch.tensor([False, True, True, False, True])
    metric = TailShare(k=2, is_tail=is_tail)
    metric.update(lists([[0, 1, 4], [2, 4, 0], [3, -1, 1]]))  # first 2 slots: 0 1 | 2 4 | 3 (invalid)
    assert metric.compute().item() == pytest.approx(3 / 5)


def test_usergap_ndcg_by_hand() -> None:
    is_active = torch.tensor([True, False, False, True])
    metric = UserGapNDCG(k=2, is_active=is_active)
    batch = lists(
        [[0, 1], [0, 1], [0, 1], [0, 1]], users=[0, 1, 2, 3], hits=[[1, 0], [0, 1], [0, 0], [1, 1]], n_rel=[1, 1, 2, 2]
    )
    active = (1.0 + 1.0) / 2  # user 0: 1; user 3: both hits of 2 relevant -> 1
    inactive = ((1 / L3) / 1 + 0.0) / 2  # user 1: hit at rank 2, ideal 1 item; user 2: none
    metric.update(batch)
    assert metric.compute().item() == pytest.approx(active - inactive)
    only_inactive = UserGapNDCG(k=2, is_active=is_active)
    only_inactive.update(lists([[0, 1]], users=[1], hits=[[1, 0]]))
    assert only_inactive.compute().item() == pytest.approx(0.0 - 1.0)


def test_group_disparity_by_hand() -> None:
    metric = GroupDisparity(k=2, item_group=torch.tensor([0, 0, 1, 1, 1]))
    metric.update(lists(EXPOSED))  # group exposure [4, 1] -> shares [.8, .2]; catalogue [.4, .6]
    assert metric.compute().item() == pytest.approx(0.5 * (0.4 + 0.4))
    fair = GroupDisparity(k=1, item_group=torch.tensor([0, 1]))
    fair.update(lists([[0], [1]]))
    assert fair.compute().item() == 0.0


def test_true_ndcg_by_hand() -> None:
    batch = dataclasses.replace(
        lists([[0, 1, 2], [0, 1, 2], [0, 1, 2]]),
        true_gains=torch.tensor([[3.0, 0.0, 1.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64),
        ideal_gains=torch.tensor([[3.0, 2.0, 1.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64),
    )
    metric = TrueNDCG(k=2)
    u0 = 3.0 / (3.0 + 2.0 / L3)
    u1 = (2.0 / L3) / 2.0
    assert metric.user_values(batch)[:2].tolist() == pytest.approx([u0, u1])
    metric.update(batch)  # user 2 has no relevant item at all: left out
    assert metric.compute().item() == pytest.approx((u0 + u1) / 2)
    ignored = TrueNDCG(k=2)
    ignored.update(lists([[0, 1]]))  # no true relevance in the batch: nothing to do
    assert ignored.count.item() == 0


def test_beyond_states_are_summable_and_bounded() -> None:
    metrics = [
        Coverage(k=2, n_items=5), ILD(k=2, features=torch.eye(5)), Novelty(k=2, self_information=torch.ones(5)),
        TailShare(k=2, is_tail=torch.ones(5, dtype=torch.bool)), UserGapNDCG(k=2, is_active=torch.ones(3, dtype=torch.bool)),
        GroupDisparity(k=2, item_group=torch.zeros(5, dtype=torch.long)), TrueNDCG(k=2),
    ]  # fmt: skip
    for metric in metrics:
        for state, default in metric._defaults.items():
            assert metric._reductions[state] is not None, (metric.key, state)
            assert default.numel() <= 5, (metric.key, state)  # never grows with the number of users
        assert not any(k.endswith(("features", "is_tail", "is_active", "item_group", "self_information")) for k in metric.state_dict())


# --- text metrics ------------------------------------------------------------------------------


def test_bleu4_by_hand() -> None:
    from benchmark.metrics import text_metrics

    # n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert text_metrics(["The cat sat on the mat."], ["the cat sat on a mat"], None)["bleu4"] == pytest.approx(expected, rel=1e-5)
    # every n-gram matches but the candidate is 4 words against 6: brevity penalty exp(1 - 6/4)
    short = text_metrics(["the cat sat on"], ["the cat sat on the mat"], None)
    assert short["bleu4"] == pytest.approx(math.exp(-0.5), rel=1e-5)


def test_rouge_l_feature_match_distinct_by_hand() -> None:
    from benchmark.metrics import distinct_n, feature_match, text_metrics

    explanations = ["the cat sat on the mat", "Great pizza here!"]
    references = ["the cat is on the mat", "The pizza was great"]
    metrics = text_metrics(explanations, references, [["Cat"], ["Pizza"]])
    # LCS 5 of 6 and 6 words: F = 5/6; LCS 1 of 3 and 4 words: P 1/3, R 1/4, F = 2/7
    assert metrics["rouge_l"] == pytest.approx((5 / 6 + 2 / 7) / 2, rel=1e-5)
    assert metrics["feature_match"] == 1.0 and set(metrics) == {"bleu4", "rouge_l", "feature_match", "distinct_2"}
    texts = ["Best Pizza in town!", "Nice pizzas", "good Coffee & Tea spot", "the Barstool was fine"]
    assert feature_match(texts, [["pizza"], ["Pizza"], ["coffee & tea"], ["Bars"]]) == 0.5  # whole words only
    assert distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)  # ab, ba, ab | ab, bc
    assert distinct_n(["one"], 2) == 0.0
    # no references: no BLEU/ROUGE; no attributes: no feature match
    assert set(text_metrics(["a b c"], None, [[]])) == {"distinct_2"}
    with pytest.raises(ValueError, match="1 explanations, 2 references"):
        text_metrics(["x"], ["a", "b"], None)
