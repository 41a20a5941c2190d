import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.lightgcn import LightGCN, LightGCNConfig, normalized_adjacency
from benchmark.cli import main
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, pairwise_batches, round_trip

N_USERS, N_ITEMS = 16, 16
HALF = N_ITEMS // 2
CONFIG = LightGCNConfig(embedding_dim=8, lr=0.05, batch_size=16, num_negatives=2)


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


def _model() -> LightGCN:
    torch.manual_seed(0)
    return LightGCN(N_USERS, N_ITEMS, CONFIG, train_pairs=_train_pairs())


@pytest.fixture(scope="module")
def trained() -> tuple[LightGCN, list[float]]:
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


def test_normalized_adjacency() -> None:
    # user 0 - items 0, 1 (the pair (0, 1) twice: binarised); user 1 - item 1; item 2 isolated
    adj = normalized_adjacency(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 1]), 2, 3).to_dense()
    deg = torch.tensor([2.0, 1.0, 1.0, 2.0, 0.0]) + 1e-7  # nodes: u0, u1, i0, i1, i2
    expected = torch.zeros(5, 5)
    for a, b in [(0, 2), (0, 3), (1, 3)]:
        expected[a, b] = expected[b, a] = 1 / torch.sqrt(deg[a] * deg[b])
    torch.testing.assert_close(adj, expected)


def test_scores_are_propagated_dot_products_and_cached() -> None:
    model = _model()
    x = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    adj = model.norm_adj.to_dense()
    final = (x + adj @ x + adj @ adj @ x) / 3
    expected = final[:N_USERS] @ final[N_USERS:].T
    torch.testing.assert_close(eval_scores(model, _all_users()), expected)
    assert model._cache is not None
    with torch.no_grad():  # a weight change invalidates the cache
        model.user_emb.weight.mul_(2)  # propagation is linear: both doubled, scores times 4
        model.item_emb.weight.mul_(2)
    torch.testing.assert_close(eval_scores(model, _all_users()), 4 * expected)


def test_propagation_gradient_equals_dense_autograd() -> None:
    # the symmetric sparse product's hand-written backward must match autograd on the dense graph
    model = _model()
    loss_weights = torch.randn(N_USERS + model.n_items, model.config.embedding_dim, generator=torch.Generator().manual_seed(1))
    users, items = model.propagate()
    (torch.cat([users, items]) * loss_weights).sum().backward()
    grads = (model.user_emb.weight.grad.clone(), model.item_emb.weight.grad.clone())
    x = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach().requires_grad_(True)
    adj = model.norm_adj.to_dense()
    (((x + adj @ x + adj @ adj @ x) / 3) * loss_weights).sum().backward()
    torch.testing.assert_close(torch.cat(grads), x.grad)


def test_evaluation_sees_every_optimizer_step() -> None:
    # fused Adam updates weights in place without bumping their version counters: the
    # evaluation cache must still be dropped after a training step (a stale cache once
    # froze validation NDCG for a whole run)
    model = _model()
    before = eval_scores(model, _all_users())
    optimizer = model.configure_optimizers()
    batch = {"users": torch.tensor([0, 1]), "pos_items": torch.tensor([0, 1]), "neg_items": torch.tensor([[2], [0]])}
    model.log = lambda *a, **k: None
    model.training_step(batch, 0).backward()
    optimizer.step()
    assert not torch.allclose(eval_scores(model, _all_users()), before)


def test_state_dict_round_trip(trained, tmp_path) -> None:
    model, _ = trained
    assert "norm_adj" not in model.state_dict()  # rebuilt from train_pairs, not saved
    restored = round_trip(model, _model, tmp_path)
    assert torch.equal(eval_scores(restored, _all_users()), eval_scores(model, _all_users()))


def test_score_contract() -> None:
    scores = eval_scores(_model(), eval_batch([3, 0, 3], [[], [], []], N_ITEMS, 1))
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[0], scores[2])


def test_default_config_and_batch_spec() -> None:
    config = LightGCNConfig()
    assert (config.embedding_dim, config.n_layers, config.reg_weight, config.lr, config.batch_size, config.num_negatives) == (
        64, 2, 1e-5, 1e-3, 2048, 1
    )
    model = LightGCN(N_USERS, N_ITEMS, config, train_pairs=_train_pairs())
    assert model.batch_spec() == BatchSpec(kind="pairwise", batch_size=2048, num_negatives=1, history_length=0)
    with pytest.raises(ValueError, match="train_pairs"):
        LightGCN(N_USERS, N_ITEMS, config)


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_loss_is_bpr_plus_the_ego_embedding_l2_term() -> None:
    model = LightGCN(N_USERS, N_ITEMS, LightGCNConfig(embedding_dim=8, reg_weight=0.5, num_negatives=2), train_pairs=_train_pairs())
    batch = {"users": torch.tensor([0, 5]), "pos_items": torch.tensor([1, 9]), "neg_items": torch.tensor([[2, 3], [4, 9]])}
    with torch.no_grad():
        u, v = model.propagate()
    pairs = [(0, 1, 2), (0, 1, 3), (5, 9, 4), (5, 9, 9)]
    bpr = torch.stack([-torch.log(torch.sigmoid(u[a] @ v[p] - u[a] @ v[n])) for a, p, n in pairs]).mean()
    ue, ie = model.user_emb.weight.detach(), model.item_emb.weight.detach()
    reg = (ue[[0, 5]].norm() + ie[[1, 9]].norm() + ie[[2, 3, 4, 9]].norm()) / 2
    torch.testing.assert_close(model.training_step(batch, 0), bpr + 0.5 * reg)


def _run(tiny_ml: Path, out: Path, model: str, *extra: str) -> dict:
    code = main(["run", "--model", model, "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress", *extra])
    assert code == 0
    (record,) = out.glob("runs/*/result.json")
    return json.loads(record.read_text())


@pytest.mark.parametrize("model, extra", [("lightgcn", ("--max-epochs", "2")), ("itemknn", ())])
def test_runner_trains_and_evaluate_checkpoint_restores(tiny_ml: Path, tmp_path: Path, model: str, extra: tuple[str, ...]) -> None:
    """The runner passes the training graph (lightgcn) and restores both models from their checkpoint."""
    record = _run(tiny_ml, tmp_path / "out", model, *extra)
    assert record["status"] == "completed" and record["metrics"]["test"]["ndcg@10"] > 0
    ckpt = tmp_path / "out" / "runs" / record["run_id"] / "checkpoints" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--output", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    for key, value in record["metrics"]["test"].items():
        assert again[key] == pytest.approx(value, abs=1e-12)
