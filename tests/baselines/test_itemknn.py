import math
import random

import pytest
import torch

from baselines.itemknn import ItemKNN, ItemKNNConfig
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, pairwise_batches, round_trip

N_USERS, N_ITEMS = 16, 16
HALF = N_ITEMS // 2
CONFIG = ItemKNNConfig(batch_size=16)


def _group_items(user: int) -> set[int]:
    """Planted preference: even users like items 0-7, odd users items 8-15."""
    first = 0 if user % 2 == 0 else HALF
    return set(range(first, first + HALF))


def _interactions() -> list[tuple[int, int]]:
    """Each user interacted with 5 of the 8 items of their group's half."""
    rng = random.Random(0)
    return [(u, i) for u in range(N_USERS) for i in sorted(rng.sample(sorted(_group_items(u)), 5))]


def _model(config: ItemKNNConfig = CONFIG, n_users: int = N_USERS, n_items: int = N_ITEMS) -> ItemKNN:
    return ItemKNN(n_users, n_items, config)


@pytest.fixture(scope="module")
def trained() -> ItemKNN:
    """Two epochs, so that the test also shows a second epoch replaces, not adds to, the first."""
    model = _model()
    fit(model, pairwise_batches(_interactions(), N_ITEMS, CONFIG.batch_size), epochs=2)
    return model


def _all_users() -> dict[str, torch.Tensor]:
    """Every user with their training items as the known items (the profile ItemKNN reads)."""
    known = [[i for u, i in _interactions() if u == user] for user in range(N_USERS)]
    return eval_batch(list(range(N_USERS)), known, N_ITEMS, 1)


def test_learns_the_planted_preference(trained) -> None:
    scores = eval_scores(trained, _all_users())
    seen = set(_interactions())
    for user in range(N_USERS):
        liked = _group_items(user)
        assert set(scores[user].topk(5).indices.tolist()) <= liked
        unseen_liked = [i for i in liked if (user, i) not in seen]
        other_half = [i for i in range(N_ITEMS) if i not in liked]
        assert scores[user, unseen_liked].min() > scores[user, other_half].max()


# Hand-computed example: 3 users, 4 items; columns item0 = item1 = [1, 1, 0], item2 = [0, 1, 1],
# item3 = [0, 0, 1]; norms sqrt2, sqrt2, sqrt2, 1; dots (0,1) 2, (0,2) 1, (1,2) 1, (2,3) 1, others 0.
SMALL = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2), (2, 3)]


def _small_scores(k: int, shrink: float) -> torch.Tensor:
    model = _model(ItemKNNConfig(k=k, shrink=shrink), n_users=3, n_items=4)
    users, items = zip(*SMALL)
    model.fit_pairs(torch.tensor(users + (0,)), torch.tensor(items + (0,)))  # a duplicate pair counts once
    return eval_scores(model, eval_batch([0, 1, 2], [[0, 1], [0, 1, 2], [2, 3]], 4, 1))


def test_scores_match_a_hand_computed_example() -> None:
    # shrink 0, every neighbour kept: sim(0,1) = 1, sim(0,2) = sim(1,2) = 1/2, sim(2,3) = 1/sqrt2
    s23 = 1 / math.sqrt(2)
    expected = torch.tensor(
        [
            [1.0, 1.0, 1.0, 0.0],  # user 0 has items 0, 1
            [1.5, 1.5, 1.0, s23],  # user 1 has items 0, 1, 2
            [0.5, 0.5, s23, s23],  # user 2 has items 2, 3
        ]
    )
    torch.testing.assert_close(_small_scores(k=100, shrink=0.0), expected)


def test_shrinkage_and_top_k_truncation() -> None:
    # shrink 1: sim(0,1) = 2/3, sim(0,2) = sim(1,2) = 1/3, sim(2,3) = 1/(sqrt2 + 1).
    # k = 1 keeps, per target item, its single most similar item: 0 <- 1, 1 <- 0, 2 <- 3, 3 <- 2
    s23 = 1 / (math.sqrt(2) + 1)
    expected = torch.tensor(
        [
            [2 / 3, 2 / 3, 0.0, 0.0],
            [2 / 3, 2 / 3, 0.0, s23],
            [0.0, 0.0, s23, s23],
        ]
    )
    torch.testing.assert_close(_small_scores(k=1, shrink=1.0), expected)


def test_similarities_are_computed_in_blocks(trained) -> None:
    small_blocks = _model(ItemKNNConfig(block_elements=3 * N_USERS))  # blocks of 3 target items
    users, items = zip(*_interactions())
    small_blocks.fit_pairs(torch.tensor(users), torch.tensor(items))
    torch.testing.assert_close(eval_scores(small_blocks, _all_users()), eval_scores(trained, _all_users()))


def test_state_dict_round_trip(trained, tmp_path) -> None:
    restored = round_trip(trained, _model, tmp_path)
    assert torch.equal(eval_scores(restored, _all_users()), eval_scores(trained, _all_users()))


def test_score_contract(trained) -> None:
    for model in (_model(), trained):  # untrained: all zeros
        scores = eval_scores(model, eval_batch([3, 0, 3], [[], [], []], N_ITEMS, 1))
        assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)
        assert torch.isfinite(scores).all()
        assert torch.equal(scores[0], scores[2])


def test_default_config_and_batch_spec() -> None:
    config = ItemKNNConfig()
    assert (config.k, config.shrink, config.epochs_needed) == (100, 0.0, 1)
    model = ItemKNN(N_USERS, N_ITEMS, config)
    assert model.k == N_ITEMS  # k is capped at n_items
    assert model.batch_spec() == BatchSpec(kind="pairwise", batch_size=65536, num_negatives=1, history_length=0)


def test_the_profile_is_the_known_items_of_the_batch() -> None:
    """At test time the validation item is known (masked, and read as history): a user's
    scores are the sum of the similarity rows of exactly the items the batch marks as seen."""
    model = _model(ItemKNNConfig(k=100, shrink=0.0), n_users=3, n_items=4)
    users, items = zip(*SMALL)
    model.fit_pairs(torch.tensor(users), torch.tensor(items))
    train_only = eval_scores(model, eval_batch([2], [[2]], 4, 1))
    with_validation = eval_scores(model, eval_batch([2], [[2, 3]], 4, 1))
    s23 = 1 / math.sqrt(2)
    torch.testing.assert_close(train_only, torch.tensor([[0.5, 0.5, 0.0, s23]]))
    torch.testing.assert_close(with_validation - train_only, torch.tensor([[0.0, 0.0, s23, 0.0]]))
