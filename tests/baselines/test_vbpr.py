import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.vbpr import VBPR, VBPRConfig, select_modalities
from benchmark.cli import main
from benchmark.data.features import ItemFeatures
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, pairwise_batches, round_trip

N_USERS, HALF = 16, 8
WARM = 2 * HALF  # items 0-15 have interactions
COLD_A, COLD_B = WARM, WARM + 1  # items 16, 17: never interacted with, content only
N_ITEMS = WARM + 2
CONFIG = VBPRConfig(embedding_dim=8, feature_dim=4, lr=0.05, batch_size=16, num_negatives=2, reg_weight=1e-4)


def group_items(user: int) -> set[int]:
    """Planted preference: even users like items 0-7 (and cold item 16), odd users items 8-15 (and 17)."""
    first = 0 if user % 2 == 0 else HALF
    return set(range(first, first + HALF)) | {COLD_A if user % 2 == 0 else COLD_B}


def interactions() -> list[tuple[int, int]]:
    """Each user interacted with 5 of the 8 warm items of their group's half."""
    rng = random.Random(0)
    return [(u, i) for u in range(N_USERS) for i in sorted(rng.sample(sorted(group_items(u) - {COLD_A, COLD_B}), 5))]


def features(*, text: bool = True, image: bool = True, swap_cold: bool = False) -> ItemFeatures:
    """Text: group A items (0-7, 16) near e0, group B items (8-15, 17) near e1 (unit vectors,
    d = 6); item 3 has no text. Image (d = 4): every other item has one, carrying the same group signal."""
    rng = np.random.default_rng(0)
    group = np.array([0] * HALF + [1] * HALF + [0, 1])
    if swap_cold:
        group[[COLD_A, COLD_B]] = group[[COLD_B, COLD_A]]
    out = ItemFeatures("toy", "fp", N_ITEMS)
    if text:
        t = np.eye(6, dtype=np.float32)[group] + 0.1 * rng.standard_normal((N_ITEMS, 6)).astype(np.float32)
        out.text = t / np.linalg.norm(t, axis=1, keepdims=True)
        out.text_mask = np.ones(N_ITEMS, dtype=bool)
        out.text_mask[3] = False
        out.text[3] = 0.0
    if image:
        out.image = np.eye(4, dtype=np.float32)[group + 2] + 0.1 * rng.standard_normal((N_ITEMS, 4)).astype(np.float32)
        out.image_mask = np.arange(N_ITEMS) % 2 == 0
        out.image[~out.image_mask] = 0.0
    return out


def _model(config: VBPRConfig = CONFIG, **feature_options) -> VBPR:
    torch.manual_seed(0)
    return VBPR(N_USERS, N_ITEMS, config, features=features(**feature_options))


@pytest.fixture(scope="module")
def trained() -> tuple[VBPR, list[float]]:
    """15 passes over the interactions, fresh negatives in each (served as one long epoch)."""
    model = _model()
    batches = [
        batch
        for epoch in range(15)
        for batch in pairwise_batches(interactions(), N_ITEMS, CONFIG.batch_size, CONFIG.num_negatives, seed=epoch)
    ]
    return model, fit(model, batches, epochs=1)


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


def test_cold_items_are_ranked_by_their_content(trained) -> None:
    """Items 16 and 17 were never interacted with: only their features tell the groups apart."""
    model, _ = trained
    scores = eval_scores(model, _all_users())
    for user in range(N_USERS):
        mine, other = (COLD_A, COLD_B) if user % 2 == 0 else (COLD_B, COLD_A)
        assert scores[user, mine] > scores[user, other]
    # swapping the two cold items' features (same learned weights) swaps the preference
    swapped = VBPR(N_USERS, N_ITEMS, CONFIG, features=features(swap_cold=True))
    swapped.load_state_dict(model.state_dict())
    again = eval_scores(swapped, _all_users())
    for user in range(N_USERS):
        mine, other = (COLD_A, COLD_B) if user % 2 == 0 else (COLD_B, COLD_A)
        assert again[user, other] > again[user, mine]
    torch.testing.assert_close(again[:, :WARM], scores[:, :WARM])


def test_scores_are_the_vbpr_predictor() -> None:
    model = _model()
    with torch.no_grad():  # non-zero biases and missing vector, so every term is exercised
        model.item_bias.weight.normal_()
        model.content_bias.weight.normal_()
        model.missing.normal_()
    feats = features()
    f = np.concatenate([feats.text, feats.image], axis=1)
    missing = model.missing.detach().numpy()
    f[3, :6] = missing[:6]  # item 3 has no text
    f[~feats.image_mask, 6:] = missing[6:]
    f = torch.from_numpy(f)
    gamma_u, gamma_i = model.user_gamma.weight.detach(), model.item_gamma.weight.detach()
    theta_u, e = model.user_theta.weight.detach(), model.projection.weight.detach()
    expected = (
        model.item_bias.weight.detach().T + gamma_u @ gamma_i.T + theta_u @ (f @ e.T).T + (f @ model.content_bias.weight.detach().T).T
    )
    torch.testing.assert_close(eval_scores(model, _all_users()), expected)
    assert model._cache is not None
    with torch.no_grad():  # a weight change invalidates the cached item side
        model.item_bias.weight.add_(1.0)
    torch.testing.assert_close(eval_scores(model, _all_users()), expected + 1.0)


def test_scores_after_training_steps_are_fresh() -> None:
    """The optimizer (fused Adam) changes weights in place without bumping their version
    counters: scores cached before training must not survive it."""
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
def test_loss_is_bpr_plus_the_squared_l2_term() -> None:
    model = _model(VBPRConfig(embedding_dim=8, feature_dim=4, num_negatives=2, reg_weight=0.5))
    with torch.no_grad():
        model.item_bias.weight.normal_()
    batch = {"users": torch.tensor([0, 5]), "pos_items": torch.tensor([1, 9]), "neg_items": torch.tensor([[2, 3], [4, 17]])}
    scores = eval_scores(model, _all_users())
    model.train()
    pairs = [(0, 1, 2), (0, 1, 3), (5, 9, 4), (5, 9, 17)]
    bpr = torch.stack([-torch.log(torch.sigmoid(scores[u, p] - scores[u, n])) for u, p, n in pairs]).mean()
    gu, gi = model.user_gamma.weight.detach(), model.item_gamma.weight.detach()
    tu, b = model.user_theta.weight.detach(), model.item_bias.weight.detach().squeeze(1)
    sq = lambda rows, m: m[rows].pow(2).sum()  # noqa: E731
    reg = (sq([0, 5], gu) + sq([0, 5], tu) + sq([1, 9], gi) + sq([2, 3, 4, 17], gi) + sq([1, 9], b) + sq([2, 3, 4, 17], b)) / 2
    torch.testing.assert_close(model.training_step(batch, 0), bpr + 0.5 * reg)


def test_missing_modalities() -> None:
    # rows flagged absent are never read: garbage there changes nothing
    model = _model()
    noisy = features()
    noisy.text[3] = 100.0
    noisy.image[~noisy.image_mask] = -50.0
    other = VBPR(N_USERS, N_ITEMS, CONFIG, features=noisy)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(eval_scores(other, _all_users()), eval_scores(model, _all_users()))
    # whole modalities: text only, image only, or "image" asked for but not extracted
    assert _model(image=False).modalities == ["text"]
    assert _model(text=False).modalities == ["image"]
    assert _model(VBPRConfig(modalities=["image"]), text=True).modalities == ["image"]
    assert _model(VBPRConfig(modalities=["text"])).item_content.shape == (N_ITEMS, 6)
    for scores in (eval_scores(_model(image=False), _all_users()), eval_scores(_model(text=False), _all_users())):
        assert scores.shape == (N_USERS, N_ITEMS) and torch.isfinite(scores).all()
    with pytest.raises(ValueError, match="at least one of"):
        _model(text=False, image=False)
    with pytest.raises(ValueError, match="at least one of"):
        _model(VBPRConfig(modalities=["image"]), image=False)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="modalities must be"):
        _model(VBPRConfig(modalities=["audio"]))
    with pytest.raises(ValueError, match="features="):
        VBPR(N_USERS, N_ITEMS, CONFIG)
    with pytest.raises(ValueError, match="rows"):
        select_modalities(features(), ["text"], N_ITEMS + 1, "VBPR")


def test_state_dict_round_trip(trained, tmp_path) -> None:
    model, _ = trained
    assert not any(k.startswith(("item_content", "present", "column_modality")) for k in model.state_dict())
    restored = round_trip(model, _model, tmp_path)
    assert torch.equal(eval_scores(restored, _all_users()), eval_scores(model, _all_users()))


def test_score_contract() -> None:
    scores = eval_scores(_model(), eval_batch([3, 0, 3], [[], [], []], N_ITEMS, 1))
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[0], scores[2])


def test_default_config_and_batch_spec() -> None:
    config = VBPRConfig()
    assert (config.embedding_dim, config.feature_dim, config.reg_weight, config.lr, config.batch_size, config.num_negatives) == (
        64, 64, 1e-4, 1e-3, 2048, 1
    )  # fmt: skip
    assert config.modalities == ["text", "image"]
    model = VBPR(N_USERS, N_ITEMS, config, features=features())
    assert model.batch_spec() == BatchSpec(kind="pairwise", batch_size=2048, num_negatives=1, history_length=0)


def test_runner_trains_on_text_features_and_evaluate_restores(tiny_ml: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", "--model", "vbpr", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress"]
    assert main([*args, "--max-epochs", "2", "--set", "lr=0.01"]) == 0
    (path,) = out.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed" and record["metrics"]["test"]["ndcg@10"] > 0
    assert record["config"]["train_config"]["text_encoder"] == "all-MiniLM-L6-v2"
    ckpt = path.parent / "checkpoints" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--output", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    for key, value in record["metrics"]["test"].items():
        assert again[key] == pytest.approx(value, abs=1e-12)


def with_images(tiny_ml: Path, out: Path) -> Path:
    """A copy of the tiny MovieLens data with a local image (a flat colour per first genre)
    for every other movie, where the features module looks: <raw>/images/<movieId>.png."""
    import shutil

    import pandas as pd
    from PIL import Image

    raw = out / "tiny-ml-images"
    shutil.copytree(tiny_ml, raw)
    (raw / "images").mkdir()
    movies = pd.read_csv(raw / "movies.csv")
    for n, (movie, genres) in enumerate(zip(movies["movieId"], movies["genres"])):
        if n % 2 == 0:
            shade = sum(map(ord, genres.split("|")[0])) % 200
            Image.new("RGB", (16, 16), (shade, 255 - shade, 40)).save(raw / "images" / f"{movie}.png")
    return raw


@pytest.mark.slow
def test_runner_uses_text_and_the_images_present(tiny_ml: Path, tmp_path: Path) -> None:
    from benchmark.data.datasets import load_dataset
    from benchmark.runner import build_model, resolve, run

    raw = with_images(tiny_ml, tmp_path)
    cfg = resolve("vbpr", "synthetic-ml", {"image_encoder": "random-cnn", "max_epochs": 1}, raw_dir=str(raw))
    model = build_model(cfg, load_dataset("synthetic-ml", raw_dir=raw), progress=False)
    assert model.modalities == ["text", "image"]
    assert 0.4 < model.present[:, 1].float().mean() < 0.6 and bool(model.present[:, 0].all())
    record = run(cfg, tmp_path / "out", progress=False).to_dict()
    assert record["status"] == "completed" and record["metrics"]["test"]["ndcg@10"] > 0
