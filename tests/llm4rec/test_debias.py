import dataclasses

import numpy as np
import pytest
import torch

from benchmark.data.datasets import load_dataset
from benchmark.errors import BenchmarkError
from llm4rec.debias import (
    LogisticExposure, PopularityAdversary, exposure_parity_penalty, grl_schedule, ips_weights, popularity_groups,
    popularity_propensity, propensity_agreement, simulator_propensity_report,
)  # fmt: skip


def test_ips_weights_against_hand_values() -> None:
    propensity = torch.tensor([0.5, 0.1, 0.01])
    # 1 / max(e, 0.05) = [2, 10, 20]; self-normalised by their mean 32/3
    torch.testing.assert_close(ips_weights(propensity, clip=0.05, self_normalise=False), torch.tensor([2.0, 10.0, 20.0]))
    torch.testing.assert_close(ips_weights(propensity, clip=0.05), torch.tensor([0.1875, 0.9375, 1.875]))
    with pytest.raises(BenchmarkError, match="ips_clip"):
        ips_weights(propensity, clip=0.0)


def test_popularity_propensity_power_law() -> None:
    e = popularity_propensity(np.array([100, 25, 0]), power=0.5)
    np.testing.assert_allclose(e, [1.0, 0.5, np.sqrt(0.5 / 100)])
    np.testing.assert_allclose(popularity_propensity(np.array([100, 25]), power=0.0), [1.0, 1.0])


def test_popularity_groups_head_is_the_top_fifth() -> None:
    counts = np.array([5, 50, 5, 7, 1, 0, 9, 2, 3, 50])
    assert popularity_groups(counts).tolist() == [1, 0, 1, 1, 1, 1, 1, 1, 1, 0]  # ties at 50: both in the top 2
    assert popularity_groups(np.array([4, 3, 2, 1]), 4).tolist() == [0, 1, 2, 3]
    with pytest.raises(BenchmarkError):
        popularity_groups(counts, 1)


def test_adversary_head_and_encoder_terms() -> None:
    torch.manual_seed(0)
    prior = torch.tensor([0.25, 0.75])
    adversary = PopularityAdversary(4, prior)
    user = torch.randn(6, 4, requires_grad=True)
    groups = torch.tensor([0, 1, 1, 1, 0, 1])
    head, encoder = adversary.head_loss(user, groups), adversary.prior_matching(user)
    term, logged = adversary(user, torch.ones(6, 4), groups, 0.3)
    assert term.item() == pytest.approx(head.item() + 0.3 * encoder.item()) and logged.item() == pytest.approx(head.item())
    # the head's loss trains the head only; the encoder's term moves the representation only
    assert torch.autograd.grad(head, user, allow_unused=True)[0] is None
    assert all(g is None for g in torch.autograd.grad(encoder, list(adversary.parameters()), allow_unused=True))
    assert torch.autograd.grad(encoder, user)[0].abs().sum() > 0
    # the paper's -sum_s P(S=s) log P(S=s | r): at its minimum (prediction = prior) it is the
    # prior's entropy and gives the representation no gradient
    with torch.no_grad():
        adversary.net[2].weight.zero_()
        adversary.net[2].bias.copy_(prior.log())
    encoder = adversary.prior_matching(user)
    assert encoder.item() == pytest.approx(-(prior * prior.log()).sum().item(), rel=1e-6)
    assert torch.autograd.grad(encoder, user)[0].abs().max() < 1e-6
    with pytest.raises(BenchmarkError, match="distribution"):
        PopularityAdversary(4, torch.tensor([0.5, 0.2]))


def test_gradient_reversal_adversary() -> None:
    """kind="grl": one cross-entropy; the head gets its ordinary gradient, the representation
    the same gradient reversed and scaled by lambda."""
    torch.manual_seed(0)
    adversary = PopularityAdversary(4, torch.tensor([0.25, 0.75]), kind="grl")
    user = torch.randn(6, 4, requires_grad=True)
    groups = torch.tensor([0, 1, 1, 1, 0, 1])
    term, logged = adversary(user, torch.ones(6, 4), groups, 0.5)
    plain = torch.nn.functional.cross_entropy(adversary.net(user), groups)
    assert term.item() == pytest.approx(plain.item()) and logged.item() == pytest.approx(plain.item())
    reversed_grad, *head_grads = torch.autograd.grad(term, [user, *adversary.parameters()])
    plain_grad, *plain_head = torch.autograd.grad(plain, [user, *adversary.parameters()])
    torch.testing.assert_close(reversed_grad, -0.5 * plain_grad)
    for a, b in zip(head_grads, plain_head):
        torch.testing.assert_close(a, b)
    assert grl_schedule(0.0) == 0.0 and grl_schedule(1.0) == pytest.approx(0.99991, abs=1e-5) and grl_schedule(0.1) == pytest.approx(0.4621, abs=1e-4)
    with pytest.raises(BenchmarkError, match="prior' or 'grl"):
        PopularityAdversary(4, torch.tensor([0.5, 0.5]), kind="other")


def test_exposure_parity_penalty_against_hand_values() -> None:
    is_head = torch.tensor([True, False, False, False, False])
    scores = torch.tensor([[3.0, 0.0, 0.0, 0.0, 0.0]])
    # tau = 3 (k=1): the head item is "half in" (sigmoid(0)); tail items sigmoid(-300) ~ 0
    assert exposure_parity_penalty(scores, is_head, k=1, temperature=0.01).item() == pytest.approx(0.5)
    assert exposure_parity_penalty(scores, is_head, k=1, temperature=0.01, epsilon=0.2).item() == pytest.approx(0.3)
    even = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0]])
    assert exposure_parity_penalty(even, is_head, k=2).item() == pytest.approx(0.0)
    scores.requires_grad_(True)
    exposure_parity_penalty(scores, is_head, k=1, temperature=1.0).backward()
    assert scores.grad[0, 0] > 0 > scores.grad[0, 1]  # descent pushes the head item down, tail items up


def test_logistic_exposure_is_calibrated_and_increasing_in_popularity() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 150, 100
    popularity = np.exp(rng.normal(0, 1.2, n_items))
    items = rng.choice(n_items, 2500, p=popularity / popularity.sum())
    users = rng.integers(0, n_users, 2500)
    key = np.unique(users * n_items + items)
    users, items = key // n_items, key % n_items
    model = LogisticExposure.fit(users, items, n_users, n_items, seed=0)
    assert model.item_coef > 0
    n_i = np.bincount(items, minlength=n_items)
    n_u = np.bincount(users, minlength=n_users)
    all_u, all_i = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    mean_p = model(n_u[all_u.ravel()], n_i[all_i.ravel()]).mean()
    density = len(key) / (n_users * n_items)
    assert mean_p == pytest.approx(density, rel=0.15)  # the case-control correction recovers the real rate
    sampled = LogisticExposure.fit(users, items, n_users, n_items, max_positives=800, seed=0)  # positives subsampled too
    assert sampled(n_u[all_u.ravel()], n_i[all_i.ravel()]).mean() == pytest.approx(density, rel=0.2)
    torch_p = model(torch.tensor(n_u[:3]), torch.tensor(n_i[:3]))
    np.testing.assert_allclose(torch_p.numpy(), model(n_u[:3], n_i[:3]), rtol=1e-5)


def test_propensity_agreement() -> None:
    agreement = propensity_agreement(np.array([0.1, 0.2, 0.4, 0.8]), np.array([0.01, 0.02, 0.05, 0.5]))
    assert agreement["spearman"] == pytest.approx(1.0) and agreement["n_pairs"] == 4
    with pytest.raises(BenchmarkError):
        propensity_agreement(np.array([0.1, 0.2]), np.array([0.1, 0.2]))


def test_propensities_agree_with_the_simulators_truth(tiny_ml) -> None:
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    report = simulator_propensity_report(data)
    assert set(report) == {"popularity", "logistic"}
    for kind in report.values():
        assert kind["n_pairs"] > 1000 and kind["spearman"] > 0.3  # the simulator's exposure is popularity-driven
    # pinned figures of the report on tiny_ml: the held-out pairs and their true propensities, exactly
    assert report["popularity"] == pytest.approx({"spearman": 0.7057216627033613, "pearson_log": 0.7151027069431078, "n_pairs": 3795.0}, rel=1e-6)
    assert report["logistic"] == pytest.approx({"spearman": 0.9341911006516199, "pearson_log": 0.8862849332945388, "n_pairs": 3795.0}, rel=1e-6)
    assert simulator_propensity_report(dataclasses.replace(data, source="real")) is None


def test_the_propensity_report_needs_no_raw_folder(tiny_ml, tmp_path, monkeypatch) -> None:
    import shutil

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    data = load_dataset("synthetic-ml", raw_dir=raw)
    shutil.rmtree(raw)  # prepared data carry their truth
    report = simulator_propensity_report(data)
    assert report is not None and report["logistic"]["n_pairs"] == 3795.0
