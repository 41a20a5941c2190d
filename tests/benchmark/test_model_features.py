"""Models that declare `needs_item_features` get the dataset's cached item features."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import registry
from benchmark.cli import main
from benchmark.data.features import ItemFeatures, features_dir
from benchmark.model import RecModule
from benchmark.registry import ModelSpec


@dataclass
class CategoryBPRConfig:
    dim: int = 8
    lr: float = 0.05
    batch_size: int = 256


class CategoryBPR(RecModule):
    """BPR whose item vectors are a learned projection of the items' category multi-hot."""

    needs_item_features = True
    received: list[ItemFeatures] = []

    def __init__(self, n_users: int, n_items: int, config: CategoryBPRConfig, *, features: ItemFeatures) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        CategoryBPR.received.append(features)
        multi_hot = torch.from_numpy(features.categorical["categories"].multi_hot())
        self.register_buffer("categories", multi_hot)
        self.user = nn.Embedding(n_users, config.dim)
        self.proj = nn.Linear(multi_hot.shape[1], config.dim, bias=False)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        users, items = self.user(batch["users"]), self.proj(self.categories)
        pos = (users * items[batch["pos_items"]]).sum(-1, keepdim=True)
        neg = (users[:, None] * items[batch["neg_items"]]).sum(-1)
        return -F.logsigmoid(pos - neg).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.config.lr)

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.user(batch["users"]) @ self.proj(self.categories).T


@pytest.fixture()
def category_bpr(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec("category-bpr", CategoryBPR, CategoryBPRConfig(), "test model using item categories")
    monkeypatch.setitem(registry.MODELS, spec.name, spec)
    CategoryBPR.received.clear()


def test_features_are_extracted_cached_and_passed_to_the_model(category_bpr: None, tiny_ml: Path, tmp_path: Path) -> None:
    from benchmark.runner import resolve, run

    cfg = resolve("category-bpr", "synthetic-ml", {"max_epochs": 2, "text_encoder": None}, raw_dir=str(tiny_ml))
    record = run(cfg, tmp_path, progress=False).to_dict()
    (features,) = CategoryBPR.received
    assert features.n_items == record["dataset_stats"]["n_items"]
    assert features.categorical["categories"].multi_hot().sum(1).min() >= 1  # every simulated movie has a genre
    from benchmark.data.datasets import load_dataset

    assert (features_dir(load_dataset("synthetic-ml", raw_dir=tiny_ml)) / "tabular").is_dir()
    # evaluate rebuilds the model from the cache and reproduces the run
    ckpt = tmp_path / "runs" / record["run_id"] / "checkpoints" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--output", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["ndcg@10"] == pytest.approx(record["metrics"]["test"]["ndcg@10"])
    assert len(CategoryBPR.received) == 2
