"""Evaluation engine: exact top-K with lower-index tie-breaking, masking, and the Evaluator
against a slow per-user reference written straight from DESIGN.md's definitions."""

from __future__ import annotations

import math
import random
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark import evaluation
from benchmark.evaluation import Evaluator, mask_seen, ranking, top_k
from benchmark.model import RecModule

INF = float("inf")


def reference_top_k(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]


# --- top_k ------------------------------------------------------------------------------


def test_all_equal_scores_give_the_lowest_indices() -> None:
    items, valid = top_k(torch.zeros(2, 10), 3)
    assert items.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert valid.all()


def test_ties_straddling_the_cut_and_order_within_the_list() -> None:
    scores = torch.tensor([[0.0, 5, 3, 3, 3, 1, 3], [1, 2, 2, 0, 2, 2, 2]])
    items, _ = top_k(scores, 3)
    assert items.tolist() == [[1, 2, 3], [1, 2, 4]]
    items, _ = top_k(scores, 6)
    assert items.tolist() == [[1, 2, 3, 4, 6, 5], [1, 2, 4, 5, 6, 0]]


def test_minus_inf_is_invalid_and_k_larger_than_catalogue() -> None:
    scores = torch.tensor([[-INF, 1.0, -INF, 0.0], [-INF, -INF, -INF, -INF], [INF, 0.0, INF, 2.0]])
    items, valid = top_k(scores, 10)
    assert items.tolist() == [[1, 3, 0, 2], [0, 1, 2, 3], [0, 2, 3, 1]]
    assert valid.tolist() == [[True, True, False, False], [False] * 4, [True] * 4]
    items, valid = top_k(scores, 3)
    assert items.tolist() == [[1, 3, 0], [0, 1, 2], [0, 2, 3]]
    assert valid.tolist() == [[True, True, False], [False] * 3, [True] * 3]


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        top_k(torch.tensor([[1.0, float("nan"), 0.0]]), 2)


@settings(max_examples=300, deadline=None, database=None)
@given(
    data=st.data(),
    n_rows=st.integers(1, 5),
    n_items=st.integers(1, 30),
    k=st.integers(1, 35),
    window=st.sampled_from([1, 2, 2048]),
    chunk=st.sampled_from([1, 40, 1 << 24]),
)
def test_top_k_matches_python_sort(
    data: st.DataObject, n_rows: int, n_items: int, k: int, window: int, chunk: int
) -> None:
    values = st.sampled_from([-INF, 0.0, 1.0, 2.0, 3.0, INF])
    rows = [data.draw(st.lists(values, min_size=n_items, max_size=n_items)) for _ in range(n_rows)]
    with mock.patch.object(ranking, "_TIE_WINDOW", window), mock.patch.object(ranking, "_TIE_CHUNK", chunk):
        items, valid = top_k(torch.tensor(rows), k)
    expected = [reference_top_k(row, k) for row in rows]
    assert items.tolist() == expected
    assert valid.tolist() == [[row[i] > -INF for i in ranked] for row, ranked in zip(rows, expected)]


def test_top_k_popularity_like_ties_at_scale() -> None:
    generator = torch.Generator().manual_seed(0)
    popularity = torch.randint(0, 40, (1, 3000), generator=generator).float()
    scores = torch.cat([popularity.expand(50, -1), torch.randint(0, 3, (50, 3000), generator=generator).float()])
    items, _ = top_k(scores, 20)
    expected = [np.lexsort((np.arange(3000), -row))[:20].tolist() for row in scores.numpy()]
    assert items.tolist() == expected


def test_masked_items_never_rank_above_unmasked_ones() -> None:
    scores = torch.tensor([[9.0, 1.0, 8.0, 2.0], [0.0, 0.0, 0.0, 7.0]])
    mask_seen(scores, torch.tensor([0, 0, 1]), torch.tensor([0, 2, 3]))
    items, valid = top_k(scores, 3)
    assert items.tolist() == [[3, 1, 0], [0, 1, 2]]
    assert valid.tolist() == [[True, True, False], [True, True, True]]


# --- Evaluator --------------------------------------------------------------------------


class FixedScores(RecModule):
    """A dense model with a fixed [n_users, n_items] score matrix."""

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__(*scores.shape)
        self.scores = scores

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scores[batch["users"]]


class Popularity(RecModule):
    """Returns one shared row expanded to the batch (not writable in place)."""

    def __init__(self, counts: torch.Tensor) -> None:
        super().__init__(1, counts.numel())
        self.counts = counts

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.counts.expand(batch["users"].numel(), -1)


class FixedLists(RecModule):
    """A generative model returning fixed (possibly malformed) id lists."""

    def __init__(self, lists: torch.Tensor, n_items: int) -> None:
        super().__init__(lists.shape[0], n_items)
        self.lists = lists

    def recommend(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        return self.lists[batch["users"], :k]


def make_batch(users: list[int], seen: dict[int, list[int]], relevant: dict[int, list[int]]) -> dict[str, torch.Tensor]:
    def pairs(table: dict[int, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [row for row, user in enumerate(users) for _ in table.get(user, [])]
        items = [item for user in users for item in table.get(user, [])]
        return torch.tensor(rows, dtype=torch.long), torch.tensor(items, dtype=torch.long)

    seen_rows, seen_items = pairs(seen)
    rel_rows, rel_items = pairs(relevant)
    return {
        "users": torch.tensor(users, dtype=torch.long),
        "history": torch.zeros(len(users), 1, dtype=torch.long),
        "seen_rows": seen_rows,
        "seen_items": seen_items,
        "rel_rows": rel_rows,
        "rel_items": rel_items,
    }


def reference_user_metrics(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """DESIGN.md's definitions, literally."""
    top = ranked[:k]
    rel = [1 if item in relevant else 0 for item in top]
    n_ideal = min(len(relevant), k)
    dcg = sum(r / math.log2(rank + 1) for rank, r in enumerate(rel, start=1))
    idcg = sum(1 / math.log2(rank + 1) for rank in range(1, n_ideal + 1))
    first = next((rank for rank, r in enumerate(rel, start=1) if r), None)
    precision_sum = sum(sum(rel[:rank]) / rank for rank, r in enumerate(rel, start=1) if r)
    return {
        f"ndcg@{k}": dcg / idcg,
        f"hr@{k}": float(any(rel)),
        f"recall@{k}": sum(rel) / len(relevant),
        f"mrr@{k}": 1 / first if first else 0.0,
        f"map@{k}": precision_sum / n_ideal,
    }


N_USERS, N_ITEMS, KS = 37, 30, (1, 5, 10, 40)


@pytest.fixture(scope="module")
def random_setup() -> tuple[torch.Tensor, dict[int, list[int]], dict[int, list[int]]]:
    rng = random.Random(7)
    scores = torch.tensor([[float(rng.randint(0, 4)) for _ in range(N_ITEMS)] for _ in range(N_USERS)])
    scores[3] = 1.0  # one user with all scores tied
    seen, relevant = {}, {}
    for user in range(N_USERS):
        n_seen = N_ITEMS - 3 if user == 5 else rng.randint(0, 10)  # user 5: fewer candidates than k
        items = rng.sample(range(N_ITEMS), N_ITEMS)
        seen[user] = items[:n_seen]
        n_rel = 0 if user % 6 == 0 else rng.randint(1, 3 if user == 5 else 12)
        relevant[user] = items[n_seen : n_seen + n_rel]
    return scores, seen, relevant


def reference(scores: torch.Tensor, seen: dict[int, list[int]], relevant: dict[int, list[int]]) -> dict[int, dict[str, float]]:
    per_user = {}
    for user in range(N_USERS):
        if not relevant[user]:
            continue
        row = [(-INF if item in seen[user] else value) for item, value in enumerate(scores[user].tolist())]
        ranked = [item for item in reference_top_k(row, max(KS)) if row[item] > -INF]
        per_user[user] = {
            key: value for k in KS for key, value in reference_user_metrics(ranked, set(relevant[user]), k).items()
        }
    return per_user


@pytest.mark.parametrize("batch_size", [1, 7, N_USERS])
def test_evaluator_matches_reference_for_any_batching(random_setup, batch_size: int) -> None:
    scores, seen, relevant = random_setup
    expected_per_user = reference(scores, seen, relevant)
    evaluator = Evaluator(N_ITEMS, ks=KS, metrics=tuple(evaluation.ACCURACY_METRICS), collect_per_user=True)
    model = FixedScores(scores)
    order = list(range(N_USERS))
    random.Random(batch_size).shuffle(order)
    for start in range(0, N_USERS, batch_size):
        evaluator.update(model, make_batch(order[start : start + batch_size], seen, relevant))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = evaluator.compute()
    keys = [f"{name}@{k}" for name in ("ndcg", "hr", "recall", "mrr", "map") for k in KS]
    assert list(values) == keys  # no valid_ratio for dense models
    for key in keys:
        mean = sum(user[key] for user in expected_per_user.values()) / len(expected_per_user)
        assert values[key] == pytest.approx(mean, rel=1e-6), key

    per_user = evaluator.per_user()
    assert per_user["user"].tolist() == sorted(expected_per_user)
    for key in keys:
        expected = [expected_per_user[user][key] for user in per_user["user"]]
        assert per_user[key].tolist() == pytest.approx(expected, rel=1e-6), key
    assert scores[3].eq(1.0).all()  # the model's own matrix is untouched by masking

    evaluator.reset()
    assert evaluator.per_user()["user"].size == 0


class CachedSlice(RecModule):
    """Returns a view (row slice) of a cached score matrix."""

    def __init__(self, cache: torch.Tensor) -> None:
        super().__init__(*cache.shape)
        self.cache = cache

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.cache[int(batch["users"][0]) : int(batch["users"][-1]) + 1]


@pytest.mark.parametrize("n_rows", [1, 3])
def test_masking_never_writes_into_model_tensors(n_rows: int) -> None:
    counts = torch.tensor([5.0, 9.0, 9.0, 1.0, 9.0])
    batch = make_batch(list(range(n_rows)), seen={0: [1]}, relevant={0: [4]})
    evaluator = Evaluator(5, ks=(2,), metrics=("hr",))
    evaluator.update(Popularity(counts), batch)
    assert evaluator.compute() == {"hr@2": 1.0}  # ranks 2, 4 (1 masked)
    assert counts.tolist() == [5.0, 9.0, 9.0, 1.0, 9.0]
    cache = counts.repeat(3, 1)
    evaluator.update(CachedSlice(cache), batch)
    assert cache.eq(counts).all()
    parameter = torch.nn.Parameter(counts.repeat(n_rows, 1))
    model = FixedScores(counts.repeat(n_rows, 1))
    model.score = lambda batch: parameter  # type: ignore[method-assign]
    evaluator.update(model, batch)
    assert parameter.eq(counts).all()


def test_no_per_user_state_unless_asked() -> None:
    evaluator = Evaluator(4, ks=(2,))
    evaluator.update(FixedScores(torch.rand(3, 4)), make_batch([0, 1, 2], {}, {0: [1], 2: [3]}))
    assert evaluator._users == [] and all(values == [] for values in evaluator._values.values())
    with pytest.raises(RuntimeError, match="collect_per_user"):
        evaluator.per_user()


def test_generative_model_invalid_ids_and_valid_ratio() -> None:
    n_items = 6
    lists = torch.tensor(
        [
            [2, 2, 4, 5],  # repeat of relevant 2 counts once; valid: T F T T
            [-1, 6, 99, 0],  # unknown ids; valid: F F F T
            [1, 3, 5, 0],  # user without relevant items: excluded everywhere
        ]
    )
    relevant = {0: [2, 5], 1: [0, 3]}
    evaluator = Evaluator(n_items, ks=(2, 4), metrics=("hr", "recall", "ndcg", "mrr"), collect_per_user=True)
    evaluator.update(FixedLists(lists, n_items), make_batch([0, 1, 2], {}, relevant))
    values = evaluator.compute()
    idcg2 = 1 + 1 / math.log2(3)
    assert values == pytest.approx(
        {
            "hr@2": (1 + 0) / 2,
            "hr@4": (1 + 1) / 2,
            "recall@2": (1 / 2 + 0) / 2,
            "recall@4": (2 / 2 + 1 / 2) / 2,
            "ndcg@2": (1 / idcg2 + 0) / 2,
            "ndcg@4": ((1 + 1 / math.log2(5)) / idcg2 + (1 / math.log2(5)) / idcg2) / 2,
            "mrr@2": (1 + 0) / 2,
            "mrr@4": (1 + 1 / 4) / 2,
            "valid_ratio": (3 + 1) / 8,
        }
    )
    assert evaluator.per_user()["user"].tolist() == [0, 1]


def test_wrong_model_outputs_are_rejected() -> None:
    batch = make_batch([0, 1], {}, {0: [0]})
    with pytest.raises(ValueError, match=r"score must return a float tensor of shape \(2, 4\)"):
        Evaluator(4, ks=(2,)).update(FixedScores(torch.rand(2, 5)), batch)
    with pytest.raises(ValueError, match=r"recommend must return a LongTensor of shape \(2, 3\)"):
        Evaluator(4, ks=(3,)).update(FixedLists(torch.zeros(2, 2, dtype=torch.long), 4), batch)
    with pytest.raises(ValueError, match="unknown metric"):
        Evaluator(4, metrics=("ndcg", "auc"))


def test_metric_states_move_with_the_module() -> None:
    evaluator = Evaluator(10, ks=(5, 10), metrics=("ndcg", "map")).to("meta")
    assert list(evaluator.metrics) == ["ndcg@5", "ndcg@10", "map@5", "map@10"]
    for metric in (*evaluator.metrics.values(), evaluator.valid_ratio):
        assert all(getattr(metric, state).device.type == "meta" for state in metric._defaults)


def _ddp_worker(rank: int, world_size: int, init_file: str, setup, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        scores, seen, relevant = setup
        evaluator = Evaluator(N_ITEMS, ks=KS, collect_per_user=True)
        users = list(range(rank, N_USERS, world_size))
        for start in range(0, len(users), 4):
            evaluator.update(FixedScores(scores), make_batch(users[start : start + 4], seen, relevant))
        results.put((evaluator.compute(), evaluator.per_user()))
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_sync_and_per_user_gather(random_setup, tmp_path) -> None:
    """Two gloo processes, each with half the users, report what one process reports."""
    results = torch.multiprocessing.get_context("spawn").SimpleQueue()
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), random_setup, results), nprocs=2, join=True
    )
    scores, seen, relevant = random_setup
    single = Evaluator(N_ITEMS, ks=KS, collect_per_user=True)
    single.update(FixedScores(scores), make_batch(list(range(N_USERS)), seen, relevant))
    expected_values, expected_per_user = single.compute(), single.per_user()
    for _ in range(2):  # every rank gets the synced values and everyone's per-user values
        values, per_user = results.get()
        assert values == pytest.approx(expected_values)
        assert per_user.keys() == expected_per_user.keys()
        for key, array in per_user.items():
            assert array.tolist() == pytest.approx(expected_per_user[key].tolist()), key


def test_per_user_keeps_a_repeated_user_once(random_setup) -> None:
    """A padding distributed sampler can serve a user twice; its values are identical."""
    scores, seen, relevant = random_setup
    evaluator = Evaluator(N_ITEMS, ks=(5,), metrics=("ndcg",), collect_per_user=True)
    for users in ([1, 2], [2, 4]):
        evaluator.update(FixedScores(scores), make_batch(users, seen, relevant))
    per_user = evaluator.per_user()
    assert per_user["user"].tolist() == [1, 2, 4]
    assert per_user["ndcg@5"].tolist() == pytest.approx(
        [reference(scores, seen, relevant)[user]["ndcg@5"] for user in (1, 2, 4)]
    )


# --- every metric against a slow reference loop; batch size and workers do not matter ----

from benchmark.evaluation import EvalContext, SampledNegatives, category_multi_hot, sample_negatives  # noqa: E402
from benchmark.metrics import BEYOND_METRICS  # noqa: E402


def reference_all(scores, seen, relevant, k, features, self_info, is_tail, is_active, group, true_rel=None) -> dict[str, float]:
    """Every metric at k, straight from DESIGN.md, one user at a time (plain Python)."""
    n_users, n_items = len(scores), len(scores[0])
    acc = {name: [] for name in ("ndcg", "hr", "recall", "mrr", "map")}
    exposure = [0] * n_items
    ild, nov, gap, true = [], [], {True: [], False: []}, []
    slots = tail_slots = 0
    for u in range(n_users):
        if not relevant[u]:
            continue
        row = [(-INF if i in seen[u] else scores[u][i]) for i in range(n_items)]
        top = [i for i in reference_top_k(row, k) if row[i] > -INF]
        per = reference_user_metrics(top, set(relevant[u]), k)
        for name in acc:
            acc[name].append(per[f"{name}@{k}"])
        gap[bool(is_active[u])].append(per[f"ndcg@{k}"])
        for i in top:
            exposure[i] += 1
            slots += 1
            tail_slots += bool(is_tail[i])
        if top:
            nov.append(sum(self_info[i] for i in top) / len(top))
        pairs = [(a, b) for x, a in enumerate(top) for b in top[x + 1 :]]
        if pairs:
            def cos(a, b):
                fa, fb = features[a], features[b]
                na, nb = math.sqrt(sum(x * x for x in fa)), math.sqrt(sum(x * x for x in fb))
                return 0.0 if na == 0 or nb == 0 else sum(x * y for x, y in zip(fa, fb)) / (na * nb)
            ild.append(sum(1 - cos(a, b) for a, b in pairs) / len(pairs))
        if true_rel is not None:
            gains = [true_rel[u][i] for i in top]
            ideal = sorted((true_rel[u][i] for i in range(n_items) if i not in seen[u]), reverse=True)[:k]
            dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
            idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
            if idcg > 0:
                true.append(dcg / idcg)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    out = {f"{name}@{k}": mean(values) for name, values in acc.items()}
    total = sum(exposure)
    c = sorted(exposure)
    n = n_items
    groups = sorted(set(group))
    g_exp = [sum(exposure[i] for i in range(n) if group[i] == g) for g in groups]
    g_cat = [sum(1 for i in range(n) if group[i] == g) for g in groups]
    out.update({
        f"coverage@{k}": sum(1 for x in exposure if x) / n,
        f"gini@{k}": sum((2 * j - n - 1) * c[j - 1] for j in range(1, n + 1)) / (n * total) if total else 0.0,
        f"entropy@{k}": -sum(x / total * math.log(x / total) for x in exposure if x) if total else 0.0,
        f"ild@{k}": mean(ild),
        f"novelty@{k}": mean(nov),
        f"tailshare@{k}": tail_slots / slots if slots else 0.0,
        f"usergap-ndcg@{k}": mean(gap[True]) - mean(gap[False]),
        f"groupdisparity@{k}": 0.5 * sum(abs(e / total - m / n) for e, m in zip(g_exp, g_cat)) if total else 0.0,
    })  # fmt: skip
    if true_rel is not None:
        out[f"ndcg-true@{k}"] = mean(true)
    return out


def _context(n_users, n_items, train_items, train_users, categories, group) -> EvalContext:
    features, _ = category_multi_hot(categories, n_items)
    return EvalContext(
        n_users=n_users, n_items=n_items, item_train_users=np.array(train_items), user_train_counts=np.array(train_users),
        item_features=features, item_group=np.array(group), group_names=[str(g) for g in sorted(set(group))], group_column="g",
    )  # fmt: skip


@settings(max_examples=40, deadline=None, database=None)
@given(data=st.data(), n_users=st.integers(1, 12), n_items=st.integers(1, 14), k=st.integers(1, 16), batch_size=st.integers(1, 13))
def test_engine_matches_reference_loop(data: st.DataObject, n_users: int, n_items: int, k: int, batch_size: int) -> None:
    draw = data.draw
    scores = [[float(draw(st.integers(0, 3))) for _ in range(n_items)] for _ in range(n_users)]  # many ties
    seen = [set(draw(st.lists(st.integers(0, n_items - 1), max_size=n_items))) for _ in range(n_users)]
    relevant = [sorted(set(draw(st.lists(st.integers(0, n_items - 1), max_size=4))) - seen[u]) for u in range(n_users)]
    categories = [draw(st.lists(st.sampled_from("abc"), max_size=2)) for _ in range(n_items)]
    group = [draw(st.integers(0, 2)) for _ in range(n_items)]
    train_items = [draw(st.integers(0, 5)) for _ in range(n_items)]
    train_users = [draw(st.integers(0, 5)) for _ in range(n_users)]
    true_rel = [[float(draw(st.integers(0, 2))) for _ in range(n_items)] for _ in range(n_users)]
    context = _context(n_users, n_items, train_items, train_users, categories, group)
    truth = torch.tensor(true_rel)
    evaluator = Evaluator(n_items, ks=(k,), context=context, true_relevance=lambda users: truth[users], collect_per_user=True)
    table = lambda sets: {u: sorted(s) for u, s in enumerate(sets)}  # noqa: E731
    model = FixedScores(torch.tensor(scores))
    for start in range(0, n_users, batch_size):
        evaluator.update(model, make_batch(list(range(start, min(start + batch_size, n_users))), table(seen), table(relevant)))
    values = evaluator.compute()
    expected = reference_all(
        scores, seen, relevant, k, context.item_features.tolist(), context.self_information.tolist(),
        context.is_tail.tolist(), context.is_active.tolist(), group, true_rel,
    )  # fmt: skip
    assert set(values) == set(expected)
    for key, value in expected.items():
        assert values[key] == pytest.approx(value, abs=1e-9), key


def test_results_do_not_depend_on_batch_size_or_workers(tiny_ml) -> None:
    """Through the real RecDataModule: eval batch sizes 1/7/1024 and 0 or 2 loader workers agree exactly."""
    from benchmark.data.datamodule import RecDataModule
    from benchmark.data.datasets import load_dataset
    from benchmark.model import BatchSpec

    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    scores = torch.randint(0, 5, (data.n_users, data.n_items), generator=torch.Generator().manual_seed(0)).float()
    context = EvalContext.from_data(data, item_group="year")
    results = []
    for batch_size, workers in ((1024, 0), (7, 2), (1, 0)):
        dm = RecDataModule(data, BatchSpec("pairwise", 8), eval_batch_size=batch_size, num_workers=workers)
        evaluator = Evaluator(data.n_items, ks=(5, 10, 20), context=context, collect_per_user=True)
        for batch in dm.test_dataloader():
            evaluator.update(FixedScores(scores), batch)
        results.append((evaluator.compute(), evaluator.per_user()))
    (first, first_users), *others = results
    assert {"ild@10", "groupdisparity@10", "usergap-ndcg@10", "coverage@20"} <= set(first)
    for values, per_user in others:
        assert values.keys() == first.keys()
        for key in first:
            assert values[key] == pytest.approx(first[key], abs=1e-12), key
        np.testing.assert_allclose(per_user["ndcg@10"], first_users["ndcg@10"], atol=1e-12)
        np.testing.assert_array_equal(per_user["user"], first_users["user"])


def test_eval_context_from_data(tiny_ml) -> None:
    from benchmark.data.datasets import load_dataset

    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    context = EvalContext.from_data(data)
    assert context.item_group is None  # MovieLens has no state/brand column
    assert context.item_train_users.sum() == len(data.train) and context.user_train_counts.sum() == len(data.train)
    assert context.is_tail.sum() == data.n_items - math.ceil(0.2 * data.n_items)
    assert context.is_active.sum() == math.ceil(0.2 * data.n_users)
    head = np.flatnonzero(~context.is_tail)
    assert context.item_train_users[head].min() >= context.item_train_users[context.is_tail].max()
    assert context.item_features.shape[0] == data.n_items and (context.item_features.sum(1) >= 1).all()
    with pytest.raises(Exception, match="no item column"):
        EvalContext.from_data(data, item_group="brand")
    evaluator = Evaluator(data.n_items, ks=(10,), context=context)
    assert sorted(evaluator.metrics) == sorted(f"{name}@10" for name in ("ndcg", "hr", "recall", "mrr", "map", *BEYOND_METRICS) if name != "groupdisparity")


def test_head_tail_ties_and_uncategorised_items() -> None:
    from benchmark.evaluation.context import _top_share

    assert _top_share(np.array([5, 9, 9, 1, 0, 9]), 0.2).tolist() == [False, True, True, False, False, False]  # ceil(1.2) = 2, lower index wins
    features, vocab = category_multi_hot([["b", "a"], [], None, ["a"]], 4)
    assert vocab == ["a", "b", "(none)"]
    assert features.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0]]


def test_k_larger_than_the_catalogue_for_every_metric() -> None:
    context = _context(2, 3, [1, 0, 2], [1, 2], [["a"], ["b"], []], [0, 0, 1])
    evaluator = Evaluator(3, ks=(10,), context=context)
    evaluator.update(FixedScores(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])), make_batch([0, 1], {0: [2]}, {0: [0], 1: [1, 2]}))
    values = evaluator.compute()
    assert values["coverage@10"] == 1.0 and values["hr@10"] == 1.0
    assert values["ndcg@10"] == pytest.approx(((1 / math.log2(3)) + (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))) / 2)
    assert values["tailshare@10"] == pytest.approx(4 / 5)  # head = item 2 (ceil(0.6) = 1 item); slots: 1 0 | 0 1 2


def test_sampled_protocol_ranks_only_candidates() -> None:
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    negatives = SampledNegatives(np.array([0]), np.array([[4, 2, -1]]), "uniform", 0)
    evaluator = Evaluator(6, ks=(1, 2), metrics=("hr", "mrr"), negatives=negatives)
    evaluator.update(FixedScores(scores), make_batch([0], {0: [0]}, {0: [3]}))  # candidates: 2, 4 (neg) and 3 (relevant)
    assert evaluator.compute() == pytest.approx({"hr@1": 0.0, "hr@2": 1.0, "mrr@1": 0.0, "mrr@2": 0.5})
    assert evaluator.protocol == "sampled"
    with pytest.raises(ValueError, match="no sampled negatives"):
        evaluator.update(FixedScores(torch.zeros(2, 6)), make_batch([1], {}, {1: [3]}))
    with pytest.raises(ValueError, match="dense scorer"):
        evaluator.update(FixedLists(torch.zeros(1, 2, dtype=torch.long), 6), make_batch([0], {}, {0: [3]}))


def test_sample_negatives_never_seen_or_relevant_and_deterministic(tmp_path) -> None:
    from benchmark.data.datamodule import CSR
    from benchmark.data.prepare import Interactions

    seen = CSR.from_interactions(Interactions(np.array([0, 0, 1]), np.array([1, 2, 3]), np.zeros(3, dtype=np.int64)), 3)
    rel = CSR.from_interactions(Interactions(np.array([0, 1, 2]), np.array([0, 0, 5]), np.zeros(3, dtype=np.int64)), 3)
    for sampler in ("uniform", "popularity"):
        popularity = np.array([0, 1, 1, 1, 5, 1, 1, 1, 2, 0])
        a = sample_negatives(np.array([2, 0, 1]), [seen, rel], 10, 4, sampler=sampler, popularity=popularity, seed=3)
        b = sample_negatives(np.array([0, 1, 2]), [seen, rel], 10, 4, sampler=sampler, popularity=popularity, seed=3)
        np.testing.assert_array_equal(a.negatives, b.negatives)
        assert a.users.tolist() == [0, 1, 2]
        forbidden = {0: {1, 2, 0}, 1: {3, 0}, 2: {5}}
        for user, row in zip(a.users, a.negatives):
            assert len(set(row.tolist())) == 4 and not set(row.tolist()) & forbidden[int(user)]
            if sampler == "popularity":
                assert not set(row.tolist()) & {0, 9}  # never drawn: no training interactions
        a.save(tmp_path / "n.npz")
        loaded = SampledNegatives.load(tmp_path / "n.npz")
        np.testing.assert_array_equal(loaded.negatives, a.negatives)
        assert (loaded.sampler, loaded.seed) == (sampler, 3)
    short = sample_negatives(np.array([0]), [seen, rel], 5, 4, seed=0)  # only items 3 and 4 are eligible
    assert sorted(short.negatives[0].tolist()) == [-1, -1, 3, 4]


def test_update_lists_scores_external_lists_like_a_generative_model() -> None:
    lists = torch.tensor([[2, 2, 4, -1], [0, 6, 3, 1]])
    relevant = {0: [2, 5], 1: [0, 3]}
    a = Evaluator(6, ks=(4,), metrics=("recall", "ndcg"))
    a.update_lists(make_batch([0, 1], {}, relevant), lists)
    b = Evaluator(6, ks=(4,), metrics=("recall", "ndcg"))
    b.update(FixedLists(lists, 6), make_batch([0, 1], {}, relevant))
    assert a.compute() == b.compute()
    assert a.compute()["valid_ratio"] == pytest.approx(5 / 8)


def test_true_relevance_follows_the_simulators_ground_truth(tiny_ml) -> None:
    from benchmark.data.datasets import load_dataset
    from benchmark.data.simulator import load_ground_truth
    from benchmark.evaluation import true_relevance_for

    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    relevance = true_relevance_for(data)
    assert relevance is not None
    truth = load_ground_truth(tiny_ml)
    users = torch.tensor([0, 7, data.n_users - 1])
    table = relevance(users)
    assert table.shape == (3, data.n_items) and set(table.unique().tolist()) <= {0.0, 1.0}
    raw_users = np.repeat(data.user_ids[users.numpy()], data.n_items)
    raw_items = np.tile(data.item_ids, 3)
    expected = truth.expected_rating(raw_users, raw_items) >= truth.rating_center + 0.5
    assert table.reshape(-1).numpy().astype(bool).tolist() == expected.tolist()
    assert true_relevance_for(dataclasses_replace(data, source="real")) is None


# ndcg-true of a Pop run on ``tiny_ml`` (pinned): the simulator's relevance flag, whichever
# way the truth reaches the engine, gives these figures.
POP_NDCG_TRUE = {"ndcg-true@5": 0.0355080218262828, "ndcg-true@10": 0.04751697209661601, "ndcg-true@20": 0.06867164678465563}


def test_ndcg_true_of_a_run_is_unchanged(tiny_ml, tmp_path) -> None:
    from tests.benchmark.eval_runs import run_model

    record, _ = run_model(tiny_ml, tmp_path, "pop")
    test = record["metrics"]["test"]
    assert {key: test[key] for key in POP_NDCG_TRUE} == pytest.approx(POP_NDCG_TRUE, rel=1e-12)


def test_moving_the_raw_folder_leaves_ndcg_true_alone(tiny_ml, tmp_path, monkeypatch) -> None:
    import shutil

    from benchmark.data.datasets import default_raw_dir, load_dataset
    from benchmark.evaluation import true_relevance_for

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCHMARK_DATA", str(tmp_path / "data"))
    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    data = load_dataset("synthetic-ml", raw_dir=raw)
    users = torch.arange(data.n_users)
    expected = true_relevance_for(load_dataset("synthetic-ml", raw_dir=raw))(users)
    assert expected.sum() > 0
    moved = tmp_path / "moved"
    raw.rename(moved)
    # where the raw files were, and where the default raw folder is, lies a contrary truth now:
    # an engine that opened a raw folder would see it
    for folder in (raw, default_raw_dir("synthetic-ml")):
        folder.mkdir(parents=True)
        with np.load(moved / "ground_truth.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["user_factors"], arrays["user_drift"] = -arrays["user_factors"], -arrays["user_drift"]
        np.savez_compressed(folder / "ground_truth.npz", **arrays)
    assert data._truth is None  # not read before the move
    assert torch.equal(true_relevance_for(data)(users), expected)
    again = load_dataset("synthetic-ml", raw_dir=moved)
    assert again.fingerprint == data.fingerprint and torch.equal(true_relevance_for(again)(users), expected)


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)
