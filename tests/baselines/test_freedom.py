import json
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.freedom import FREEDOM, FREEDOMConfig, item_item_graph, knn_graph, prune_edges
from baselines.lightgcn import normalized_adjacency
from benchmark.cli import main
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, pairwise_batches, round_trip
from tests.baselines.test_vbpr import COLD_A, COLD_B, N_ITEMS, N_USERS, features, group_items, interactions

CONFIG = FREEDOMConfig(embedding_dim=8, knn_k=3, lr=0.05, batch_size=16, num_negatives=2, edge_dropout=0.2)


def _train_pairs() -> tuple[np.ndarray, np.ndarray]:
    users, items = zip(*interactions())
    return np.array(users), np.array(items)


def _model(config: FREEDOMConfig = CONFIG, **feature_options) -> FREEDOM:
    torch.manual_seed(0)
    return FREEDOM(N_USERS, N_ITEMS, config, train_pairs=_train_pairs(), features=features(**feature_options))


@pytest.fixture(scope="module")
def trained() -> tuple[FREEDOM, list[float]]:
    """5 epochs of 3 passes each (fresh negatives per pass); the user-item graph is pruned afresh every epoch."""
    model = _model()
    passes = [pairwise_batches(interactions(), N_ITEMS, CONFIG.batch_size, CONFIG.num_negatives, seed=seed) for seed in range(3)]
    batches = [batch for one_pass in passes for batch in one_pass]
    return model, fit(model, batches, epochs=5)


def _all_users() -> dict[str, torch.Tensor]:
    return eval_batch(list(range(N_USERS)), [[]] * N_USERS, N_ITEMS, 1)


def test_learns_the_planted_preference(trained) -> None:
    model, losses = trained
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    scores = eval_scores(model, _all_users())
    seen = set(interactions())
    for user in range(N_USERS):
        liked = group_items(user)
        assert set(scores[user].topk(5).indices.tolist()) <= liked
        unseen_liked = [i for i in liked if (user, i) not in seen]
        other_half = [i for i in range(N_ITEMS) if i not in liked]
        assert scores[user, unseen_liked].mean() > scores[user, other_half].mean()


def test_cold_items_reach_users_through_the_item_item_graph(trained) -> None:
    """Items 16 and 17 have no interactions: their content neighbours carry them to the right group."""
    model, _ = trained
    scores = eval_scores(model, _all_users())
    for user in range(N_USERS):
        mine, other = (COLD_A, COLD_B) if user % 2 == 0 else (COLD_B, COLD_A)
        assert scores[user, mine] > scores[user, other]
    swapped = FREEDOM(N_USERS, N_ITEMS, CONFIG, train_pairs=_train_pairs(), features=features(swap_cold=True))
    swapped.load_state_dict(model.state_dict())
    again = eval_scores(swapped, _all_users())
    for user in range(N_USERS):
        mine, other = (COLD_A, COLD_B) if user % 2 == 0 else (COLD_B, COLD_A)
        assert again[user, other] > again[user, mine]


def test_knn_graph_by_hand() -> None:
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [5.0, 5.0], [0.0, 0.0]], dtype=np.float32)
    mask = np.array([True, True, True, True, False, False])  # items 4, 5 lack the modality
    dense = knn_graph(x, mask, k=2).to_dense()
    expected = torch.zeros(6, 6)
    for row, cols in {0: (0, 1), 1: (1, 0), 2: (2, 3), 3: (3, 2)}.items():
        expected[row, list(cols)] = 0.5  # D^-1/2 A D^-1/2 with k = 2 entries per row
    torch.testing.assert_close(dense, expected)
    # k above the number of items with the modality: every present item, weight 1/4
    torch.testing.assert_close(knn_graph(x, mask, k=10).to_dense()[0], torch.tensor([0.25] * 4 + [0.0, 0.0]))
    with pytest.raises(ValueError, match="knn_k"):
        knn_graph(x, mask, k=0)


def test_item_item_graph_renormalises_weights_per_item() -> None:
    text = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]], dtype=np.float32)  # cos(0,2) .995, cos(1,2) .0995, cos(0,1) 0
    image = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    masks = [np.array([True, True, True]), np.array([True, True, False])]  # item 2 has no image
    # k = 1: every item's nearest neighbour is itself in each modality; weights sum to 1 per item
    torch.testing.assert_close(item_item_graph([text, image], masks, [0.9, 0.1], k=1).to_dense(), torch.eye(3))
    graph = item_item_graph([text, image], masks, [0.9, 0.1], k=2).to_dense()
    # text neighbours: 0 -> {0, 2}, 1 -> {1, 2}, 2 -> {2, 0}; image (items 0, 1 only): {0, 1} for both
    expected = torch.tensor(
        [
            [0.9 * 0.5 + 0.1 * 0.5, 0.1 * 0.5, 0.9 * 0.5],
            [0.1 * 0.5, 0.9 * 0.5 + 0.1 * 0.5, 0.9 * 0.5],
            [0.5, 0.0, 0.5],  # no image: its text row at weight 1
        ]
    )
    torch.testing.assert_close(graph, expected)


def test_degree_sensitive_pruning_draws_like_multinomial_without_replacement() -> None:
    # user 0 has 8 items (edge weight 1/sqrt(8 * 1)); users 1-4 one private item each (weight 1)
    users = torch.tensor([0] * 8 + [1, 2, 3, 4])
    items = torch.arange(12)
    draws = 300
    kept_hub = kept_leaf = 0
    for seed in range(draws):
        u, i = prune_edges(users, items, 5, 12, keep=0.5, generator=torch.Generator().manual_seed(seed))
        assert len(u) == 6 and len(set(zip(u.tolist(), i.tolist()))) == 6  # distinct edges
        kept_hub += int((u == 0).sum())
        kept_leaf += int((u != 0).sum())
    # MMRec's draw: torch.multinomial(weights, 6) without replacement
    weights = torch.tensor([8**-0.5] * 8 + [1.0] * 4)
    generator = torch.Generator().manual_seed(0)
    reference = torch.stack([torch.multinomial(weights, 6, generator=generator) for _ in range(3000)])
    ref_leaf, ref_hub = (reference >= 8).float().mean() * 6 / 4, (reference < 8).float().mean() * 6 / 8
    leaf, hub = kept_leaf / (draws * 4), kept_hub / (draws * 8)
    assert abs(leaf - ref_leaf) < 0.05 and abs(hub - ref_hub) < 0.05
    assert leaf > hub + 0.3  # low-degree edges survive far more often
    a = prune_edges(users, items, 5, 12, keep=0.5, generator=torch.Generator().manual_seed(1))
    b = prune_edges(users, items, 5, 12, keep=0.5, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_each_epoch_prunes_afresh_and_evaluation_uses_the_full_graph() -> None:
    model = _model(FREEDOMConfig(embedding_dim=8, knn_k=3, edge_dropout=0.5))
    torch.manual_seed(7)
    first, again, second = model.prune(0).to_dense(), model.prune(0).to_dense(), model.prune(1).to_dense()
    assert torch.equal(first, again) and not torch.equal(first, second)
    n_edges = len(set(interactions()))
    assert int((first > 0).sum()) == 2 * int(n_edges * 0.5)  # both directions of the kept edges
    # the kept graph is renormalised with its own degrees
    rows, cols = first.nonzero().T
    degree = (first > 0).sum(1).float()
    torch.testing.assert_close(first[rows, cols], (degree[rows] * degree[cols]).rsqrt())
    full = _model(FREEDOMConfig(embedding_dim=8, knn_k=3, edge_dropout=0.0))
    assert full.prune(3) is full.norm_adj


def test_scores_are_the_two_graph_propagation() -> None:
    model = _model()
    x = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    adj = normalized_adjacency(*_train_pairs(), N_USERS, N_ITEMS).to_dense()
    final = (x + adj @ x + adj @ adj @ x) / 3
    h = model.item_graph.to_dense() @ model.item_emb.weight.detach()
    expected = final[:N_USERS] @ (final[N_USERS:] + h).T
    torch.testing.assert_close(eval_scores(model, _all_users()), expected)
    assert model._cache is not None
    with torch.no_grad():  # a weight change invalidates the cache; everything is linear: scores times 4
        model.user_emb.weight.mul_(2)
        model.item_emb.weight.mul_(2)
    torch.testing.assert_close(eval_scores(model, _all_users()), 4 * expected)


def test_scores_after_training_steps_are_fresh() -> None:
    """The optimizer (fused Adam) changes weights in place without bumping their version
    counters: embeddings cached before training must not survive it."""
    model = _model()
    before = eval_scores(model, _all_users())  # fills the cache
    model.train()
    fit(model, pairwise_batches(interactions(), N_ITEMS, CONFIG.batch_size, CONFIG.num_negatives), epochs=1)
    fresh = _model()
    fresh.load_state_dict(model.state_dict())
    after = eval_scores(model, _all_users())
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, eval_scores(fresh, _all_users()), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_loss_is_bpr_plus_the_modality_terms() -> None:
    config = FREEDOMConfig(embedding_dim=8, knn_k=3, num_negatives=2, reg_weight=0.5, edge_dropout=0.0)
    model = _model(config)
    batch = {"users": torch.tensor([0, 5]), "pos_items": torch.tensor([1, 9]), "neg_items": torch.tensor([[2, 3], [4, 17]])}
    with torch.no_grad():
        model.missing["text"].normal_()
        u, v = model.propagate(model.norm_adj)
    pairs = [(0, 1, 2), (0, 1, 3), (5, 9, 4), (5, 9, 17)]

    def bpr(items: torch.Tensor) -> torch.Tensor:
        return torch.stack([-torch.log(torch.sigmoid(u[a] @ items[p] - u[a] @ items[n])) for a, p, n in pairs]).mean()

    feats = features()
    text = torch.from_numpy(feats.text)
    text[3] = model.missing["text"].detach()  # item 3 has no text: the learned missing vector
    image = torch.from_numpy(feats.image)
    image[~torch.from_numpy(feats.image_mask)] = model.missing["image"].detach()
    with torch.no_grad():
        text_proj, image_proj = model.projections["text"](text), model.projections["image"](image)
    expected = bpr(v) + 0.5 * (bpr(text_proj) + bpr(image_proj))
    torch.testing.assert_close(model.training_step(batch, 0), expected)


def test_missing_modalities_and_bad_input() -> None:
    assert _model(image=False).modalities == ["text"]
    assert _model(text=False).modalities == ["image"]
    for model in (_model(image=False), _model(text=False)):
        scores = eval_scores(model, _all_users())
        assert scores.shape == (N_USERS, N_ITEMS) and torch.isfinite(scores).all()
    # items without text are in no text neighbourhood; their row is empty in a text-only graph
    graph = _model(image=False).item_graph.to_dense()
    assert graph[3].sum() == 0 and graph[:, 3].sum() == 0
    torch.testing.assert_close(graph.sum(1)[[0, 1, 2, 4]], torch.ones(4))
    with pytest.raises(ValueError, match="at least one of"):
        _model(text=False, image=False)
    with pytest.raises(ValueError, match="edge_dropout"):
        _model(FREEDOMConfig(edge_dropout=1.0))
    with pytest.raises(ValueError, match="image_weight"):
        _model(FREEDOMConfig(image_weight=1.5))
    with pytest.raises(ValueError, match="train_pairs"):
        FREEDOM(N_USERS, N_ITEMS, CONFIG, features=features())
    with pytest.raises(ValueError, match="features="):
        FREEDOM(N_USERS, N_ITEMS, CONFIG, train_pairs=_train_pairs())


def test_state_dict_round_trip(trained, tmp_path) -> None:
    model, _ = trained
    assert not {"item_graph", "norm_adj", "text_features"} & set(model.state_dict())
    restored = round_trip(model, _model, tmp_path)
    assert torch.equal(eval_scores(restored, _all_users()), eval_scores(model, _all_users()))


def test_score_contract() -> None:
    scores = eval_scores(_model(), eval_batch([3, 0, 3], [[], [], []], N_ITEMS, 1))
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[0], scores[2])


def test_default_config_and_batch_spec() -> None:
    c = FREEDOMConfig()
    assert (c.embedding_dim, c.knn_k, c.n_mm_layers, c.n_ui_layers, c.image_weight, c.edge_dropout, c.reg_weight) == (
        64, 10, 1, 2, 0.1, 0.8, 1e-4
    )  # fmt: skip
    assert (c.lr, c.batch_size, c.num_negatives, c.modalities) == (1e-3, 2048, 1, ["text", "image"])
    model = FREEDOM(N_USERS, N_ITEMS, c, train_pairs=_train_pairs(), features=features())
    assert model.batch_spec() == BatchSpec(kind="pairwise", batch_size=2048, num_negatives=1, history_length=0)


def test_runner_trains_on_text_features_and_evaluate_restores(tiny_ml: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", "--model", "freedom", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress"]
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
def test_runner_uses_text_and_the_images_present(tiny_ml: Path, tmp_path: Path) -> None:
    from benchmark.data.datasets import load_dataset
    from benchmark.runner import build_model, resolve, run
    from tests.baselines.test_vbpr import with_images

    raw = with_images(tiny_ml, tmp_path)
    cfg = resolve("freedom", "synthetic-ml", {"image_encoder": "random-cnn", "max_epochs": 1}, raw_dir=str(raw))
    model = build_model(cfg, load_dataset("synthetic-ml", raw_dir=raw), progress=False)
    assert model.modalities == ["text", "image"]
    # items with an image mix text (0.9) and image (0.1) neighbours; the others use text alone
    has_image = model.image_present
    assert 0.4 < has_image.float().mean() < 0.6
    torch.testing.assert_close(torch.sparse.sum(model.item_graph, 1).to_dense(), torch.ones(model.n_items))
    record = run(cfg, tmp_path / "out", progress=False).to_dict()
    assert record["status"] == "completed" and record["metrics"]["test"]["ndcg@10"] > 0
