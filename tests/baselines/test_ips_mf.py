import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from baselines.ips_mf import IPSMF, IPSMFConfig, item_propensities
from benchmark.cli import main
from benchmark.data.datasets import load_dataset
from benchmark.data.simulator import load_ground_truth
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, pairwise_batches, round_trip

N_USERS, N_ITEMS = 16, 16
HALF = N_ITEMS // 2
CONFIG = IPSMFConfig(embedding_dim=8, lr=0.05, batch_size=16, num_negatives=2)


def _group_items(user: int) -> set[int]:
    """Planted preference: even users like items 0-7, odd users items 8-15."""
    first = 0 if user % 2 == 0 else HALF
    return set(range(first, first + HALF))


def _interactions() -> list[tuple[int, int]]:
    """Each user interacted with 5 of the 8 items of their group's half."""
    rng = random.Random(0)
    return [(u, i) for u in range(N_USERS) for i in sorted(rng.sample(sorted(_group_items(u)), 5))]


def _train_pairs() -> tuple[np.ndarray, np.ndarray]:
    users, items = zip(*_interactions())
    return np.array(users), np.array(items)


def _model(config: IPSMFConfig = CONFIG) -> IPSMF:
    torch.manual_seed(0)
    return IPSMF(N_USERS, N_ITEMS, config, train_pairs=_train_pairs())


@pytest.fixture(scope="module")
def trained() -> tuple[IPSMF, list[float]]:
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
        unseen_liked = [i for i in liked if (user, i) not in seen]
        other_half = [i for i in range(N_ITEMS) if i not in liked]
        assert scores[user, unseen_liked].mean() > scores[user, other_half].mean()


def test_propensities_and_weights_by_hand() -> None:
    # distinct users per item: item 0: 4 (one pair repeated), item 1: 1, item 2: none, item 3: 2
    users = np.array([0, 1, 2, 3, 3, 0, 1, 2])
    items = np.array([0, 0, 0, 0, 0, 1, 3, 3])
    p = item_propensities(users, items, 4, power=0.5, minimum=0.1)
    torch.testing.assert_close(p, torch.tensor([1.0, 0.5, 0.1, 0.5**0.5]))
    clipped = item_propensities(users, items, 4, power=0.5, minimum=0.6)  # clipping caps weights at 1/0.6
    torch.testing.assert_close(clipped, torch.tensor([1.0, 0.6, 0.6, 0.5**0.5]))
    torch.testing.assert_close(item_propensities(users, items, 4, power=1.0, minimum=0.01), torch.tensor([1.0, 0.25, 0.01, 0.5]))
    torch.testing.assert_close(item_propensities(users, items, 4, power=0.0, minimum=0.1), torch.tensor([1.0, 1.0, 0.1, 1.0]))
    model = IPSMF(4, 4, IPSMFConfig(min_propensity=0.6), train_pairs=(users, items))
    torch.testing.assert_close(model.weights, torch.tensor([1.0, 1 / 0.6, 1 / 0.6, 2**0.5]))
    with pytest.raises(ValueError, match="min_propensity"):
        item_propensities(users, items, 4, power=0.5, minimum=0.0)
    with pytest.raises(ValueError, match="propensity_power"):
        item_propensities(users, items, 4, power=-1.0, minimum=0.1)


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_loss_is_the_self_normalised_ips_weighted_bpr_loss() -> None:
    model = _model()
    batch = {"users": torch.tensor([0, 5, 2]), "pos_items": torch.tensor([1, 9, 0]), "neg_items": torch.tensor([[2, 3], [4, 9], [12, 13]])}
    u, v = model.user_emb.weight.detach(), model.item_emb.weight.detach()
    counts = np.bincount(np.unique(np.stack(_train_pairs(), 1), axis=0)[:, 1], minlength=N_ITEMS)
    w = [1 / max((counts[i] / counts.max()) ** 0.5, 0.1) for i in (1, 9, 0)]
    rows = [((0, 1), (2, 3)), ((5, 9), (4, 9)), ((2, 0), (12, 13))]
    per_row = [torch.stack([-torch.log(torch.sigmoid(u[a] @ v[p] - u[a] @ v[n])) for n in negs]).mean() for (a, p), negs in rows]
    expected = sum(wi * li for wi, li in zip(w, per_row)) / sum(w)
    torch.testing.assert_close(model.training_step(batch, 0), expected.float())
    assert len(set(w)) > 1  # the weights differ, so the weighting is exercised


def test_propensity_tracks_the_simulators_true_exposure(tiny_ml: Path) -> None:
    """Items the simulator exposed more often get higher estimated propensities."""
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    truth = load_ground_truth(tiny_ml)
    position = pd.Index(truth.item_ids.astype(str)).get_indexer(data.item_ids.astype(str))
    assert (position >= 0).all()
    true_q = truth.exposure[position]  # q_i: probability that one slate position shows item i
    estimate = item_propensities(data.train.user, data.train.item, data.n_items, 0.5, 1e-6).numpy()
    assert spearmanr(estimate, true_q).statistic > 0.7


def test_state_dict_round_trip(trained, tmp_path) -> None:
    model, _ = trained
    assert "propensity" not in model.state_dict()  # rebuilt from train_pairs
    restored = round_trip(model, _model, tmp_path)
    assert torch.equal(eval_scores(restored, _all_users()), eval_scores(model, _all_users()))


def test_score_contract() -> None:
    scores = eval_scores(_model(), eval_batch([3, 0, 3], [[], [], []], N_ITEMS, 1))
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[0], scores[2])


def test_default_config_and_batch_spec() -> None:
    c = IPSMFConfig()
    assert (c.embedding_dim, c.lr, c.weight_decay, c.batch_size, c.num_negatives, c.propensity_power, c.min_propensity) == (
        64, 1e-3, 0.0, 2048, 1, 0.5, 0.1
    )  # fmt: skip
    model = IPSMF(N_USERS, N_ITEMS, c, train_pairs=_train_pairs())
    assert model.batch_spec() == BatchSpec(kind="pairwise", batch_size=2048, num_negatives=1, history_length=0)
    with pytest.raises(ValueError, match="train_pairs"):
        IPSMF(N_USERS, N_ITEMS, c)


def test_runner_trains_and_evaluate_restores(tiny_ml: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", "--model", "ips-mf", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress"]
    assert main([*args, "--max-epochs", "2", "--set", "lr=0.01"]) == 0
    (path,) = out.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed" and record["metrics"]["test"]["ndcg@10"] > 0
    ckpt = path.parent / "checkpoints" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--output", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    for key, value in record["metrics"]["test"].items():
        assert again[key] == pytest.approx(value, abs=1e-12)


@pytest.mark.slow
def test_propensity_against_the_truth_on_synthetic_amazon() -> None:
    """Simulated Amazon data (3,000 users, 1,000 products): rank correlation of our item
    propensities with the true per-item exposure q_i, and with the true per-pair exposure
    propensity of the held-out pairs (which also depends on how many slates the user saw)."""
    from benchmark.data.datasets import default_raw_dir

    data = load_dataset("synthetic-amazon")
    truth = load_ground_truth(default_raw_dir("synthetic-amazon"))
    estimate = item_propensities(data.train.user, data.train.item, data.n_items, 0.5, 1e-9).numpy()
    position = pd.Index(truth.item_ids.astype(str)).get_indexer(data.item_ids.astype(str))
    assert spearmanr(estimate, truth.exposure[position]).statistic > 0.85  # measured 0.93
    pairs = truth.heldout
    item = pd.Index(data.item_ids.astype(str)).get_indexer(pairs["item_id"].astype(str))
    known = item >= 0  # items the 5-core filter kept
    assert spearmanr(estimate[item[known]], pairs["propensity"][known]).statistic > 0.5  # measured 0.67
