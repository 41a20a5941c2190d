import random

import pytest
import torch

from baselines.bpr import BPR, BPRConfig
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, pairwise_batches, round_trip

N_USERS, N_ITEMS = 16, 16
HALF = N_ITEMS // 2
CONFIG = BPRConfig(embedding_dim=8, lr=0.05, batch_size=16, num_negatives=2)


def _group_items(user: int) -> set[int]:
    """Planted preference: even users like items 0-7, odd users items 8-15."""
    first = 0 if user % 2 == 0 else HALF
    return set(range(first, first + HALF))


def _interactions() -> list[tuple[int, int]]:
    """Each user interacted with 5 of the 8 items of their group's half."""
    rng = random.Random(0)
    return [(u, i) for u in range(N_USERS) for i in sorted(rng.sample(sorted(_group_items(u)), 5))]


def _model() -> BPR:
    torch.manual_seed(0)
    return BPR(N_USERS, N_ITEMS, CONFIG)


@pytest.fixture(scope="module")
def trained() -> tuple[BPR, list[float]]:
    """Trained for 15 passes over the interactions with fresh negatives in each (served as
    one long epoch); returns the model and its step losses."""
    model = _model()
    batches = [
        batch
        for epoch in range(15)
        for batch in pairwise_batches(_interactions(), N_ITEMS, CONFIG.batch_size, CONFIG.num_negatives, seed=epoch)
    ]
    return model, fit(model, batches, epochs=1)


def _all_users() -> dict[str, torch.Tensor]:
    return eval_batch(list(range(N_USERS)), [[]] * N_USERS, N_ITEMS, 1)


def test_learns_the_planted_preference(trained) -> None:
    model, losses = trained
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    scores = eval_scores(model, _all_users())
    seen = set(_interactions())
    for user in range(N_USERS):
        liked = _group_items(user)
        assert set(scores[user].topk(5).indices.tolist()) <= liked
        # generalisation: the liked items the user never had beat the other half on average
        unseen_liked = [i for i in liked if (user, i) not in seen]
        other_half = [i for i in range(N_ITEMS) if i not in liked]
        assert scores[user, unseen_liked].mean() > scores[user, other_half].mean()


def test_state_dict_round_trip(trained, tmp_path) -> None:
    model, _ = trained
    restored = round_trip(model, _model, tmp_path)
    assert torch.equal(eval_scores(restored, _all_users()), eval_scores(model, _all_users()))


def test_score_contract() -> None:
    scores = eval_scores(_model(), eval_batch([3, 0, 3], [[], [], []], N_ITEMS, 1))
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[0], scores[2])


def test_default_config_and_batch_spec() -> None:
    config = BPRConfig()
    assert (config.embedding_dim, config.lr, config.batch_size, config.num_negatives, config.weight_decay) == (
        64,
        1e-3,
        2048,
        1,
        0.0,
    )
    model = BPR(N_USERS, N_ITEMS, config)
    assert model.batch_spec() == BatchSpec(kind="pairwise", batch_size=2048, num_negatives=1, history_length=0)


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_loss_is_the_bpr_loss_against_each_negative() -> None:
    model = _model()
    batch = {
        "users": torch.tensor([0, 5]),
        "pos_items": torch.tensor([1, 9]),
        "neg_items": torch.tensor([[2, 3], [4, 9]]),
    }
    u, v = model.user_emb.weight.detach(), model.item_emb.weight.detach()
    pairs = [(0, 1, 2), (0, 1, 3), (5, 9, 4), (5, 9, 9)]
    expected = torch.stack([-torch.log(torch.sigmoid(u[a] @ v[p] - u[a] @ v[n])) for a, p, n in pairs]).mean()
    torch.testing.assert_close(model.training_step(batch, 0), expected)
