"""LLM4Rec's real-time adaptation: which parameters adapt, weighted losses, the momentum rule,
and how a model's choices reach the harness's streaming protocol."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.config import DataConfig, TrainConfig
from benchmark.data.prepare import Interactions, PreparedData
from benchmark.model import RecModule
from benchmark.streaming import momentum_sgd, run_stream
from llm4rec.adaptive import adaptation_parameters, lora_parameters, weighted_mean
from llm4rec.backbone import TINY, BackboneConfig, load_backbone


def test_adapters_and_named_modules_adapt_base_weights_do_not() -> None:
    backbone = load_backbone(BackboneConfig(name=TINY, lora_r=4), seed=0).model
    fusion = nn.Linear(8, 4)
    chosen = adaptation_parameters(backbone, fusion, fusion)  # a module named twice counts once
    lora = lora_parameters(backbone)
    assert len(lora) == 2 * 4 * 2  # A and B on q, k, v, o of 2 layers
    assert [id(p) for p in chosen] == [id(p) for p in lora] + [id(fusion.weight), id(fusion.bias)]
    base = {id(p) for n, p in backbone.named_parameters() if "lora_" not in n}
    assert base and not base & {id(p) for p in chosen}
    full = load_backbone(BackboneConfig(name=TINY, mode="full"), seed=0).model
    assert adaptation_parameters(full, None) == []  # no adapters: nothing of the LLM adapts


def test_weighted_mean_by_hand() -> None:
    values = torch.tensor([[1.0, 2.0, float("inf")], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, False, True]])
    weights = torch.tensor([[1.0, 3.0, 9.0], [0.5, 7.0, 0.5]])
    # (1*1 + 2*3 + 3*0.5 + 5*0.5) / (1 + 3 + 0.5 + 0.5) = 11 / 5
    assert float(weighted_mean(values, weights, mask)) == pytest.approx(11 / 5)
    assert float(weighted_mean(values, None, mask)) == pytest.approx((1 + 2 + 3 + 5) / 4)
    assert float(weighted_mean(torch.tensor([1.0, 2.0]), torch.zeros(2))) == 0.0  # no weight: 0, not NaN
    with pytest.raises(ValueError, match="shape"):
        weighted_mean(values, torch.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        weighted_mean(torch.ones(2), torch.tensor([1.0, -1.0]))


def test_momentum_sgd_is_the_papers_rule() -> None:
    theta = nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = momentum_sgd([theta], lr=0.1, momentum=0.9)
    grads = [torch.tensor([1.0, 0.5]), torch.tensor([-2.0, 1.0]), torch.tensor([0.5, 0.5])]
    expected, v = torch.tensor([1.0, -2.0]), torch.zeros(2)
    for g in grads:
        v = 0.9 * v + 0.1 * g  # v_t = gamma v_(t-1) + eta grad
        expected = expected - v  # theta_t = theta_(t-1) - v_t
        theta.grad = g.clone()
        optimizer.step()
        assert torch.allclose(theta.detach(), expected, atol=1e-7)


class Weighted(RecModule):
    """A model that adapts only its ``fusion`` layer and reduces its loss with the batch weights."""

    supports_sample_weights = True

    def __init__(self) -> None:
        super().__init__(3, 6)
        self.config = SimpleNamespace(batch_size=8, num_negatives=1)
        torch.manual_seed(0)
        self.user_emb = nn.Embedding(3, 4)
        self.item_emb = nn.Embedding(6, 4)
        self.fusion = nn.Linear(4, 4)
        self.weights_seen: list[torch.Tensor] = []

    def adaptation_parameters(self) -> list[nn.Parameter]:
        return adaptation_parameters(None, self.fusion)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fusion(self.user_emb(batch["users"])) @ self.item_emb.weight.T

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.weights_seen.append(batch["weights"])
        u = self.fusion(self.user_emb(batch["users"]))
        margin = (u * self.item_emb(batch["pos_items"])).sum(-1) - (u * self.item_emb(batch["neg_items"][:, 0])).sum(-1)
        return weighted_mean(nn.functional.softplus(-margin), batch["weights"])


def _log(rows: list[tuple[int, int, int]]) -> Interactions:
    arr = np.array(sorted(rows, key=lambda r: (r[0], r[2])), dtype=np.int64)
    return Interactions(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())


def test_the_harness_updates_only_adaptation_parameters_with_batch_weights() -> None:
    data = PreparedData(
        name="hand", source="synthetic", fingerprint="0" * 64, config=DataConfig(split="temporal"), n_users=3, n_items=6,
        train=_log([(0, 0, 1), (1, 1, 2), (2, 2, 3)]), valid=_log([(0, 3, 10), (1, 4, 11)]),
        test=_log([(2, 5, 12), (0, 4, 13)]), user_ids=np.arange(3), item_ids=np.arange(6),
        items=pd.DataFrame({"raw_id": np.arange(6)}), stats={},
    )  # fmt: skip
    model = Weighted()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = TrainConfig.from_flat(dict(ks=[10], protocol="streaming", stream_windows=2, stream_lr=0.5, stream_replay_size=0, stream_recency_half_life=1.0))
    stream = run_stream(model, data, train, seed=0)
    after = model.state_dict()
    assert not torch.equal(before["fusion.weight"], after["fusion.weight"])
    assert all(torch.equal(before[k], after[k]) for k in ("user_emb.weight", "item_emb.weight"))
    assert stream["config"]["weighting"] == "batch weights" and stream["config"]["n_adaptation_parameters"] == 4 * 4 + 4
    # window 0 holds t = 10, 11 (start 10, end 11): weights 0.5 and 1, passed normalised to mean 1
    first = model.weights_seen[0]
    assert sorted(first.tolist()) == pytest.approx([2 / 3, 4 / 3])
