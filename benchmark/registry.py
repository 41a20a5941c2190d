"""The model registry: every runnable model name, in one place.

A name maps to a class and a config instance; ablations (later) are further names with
the same class and a different config, never copies of the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from baselines.bpr import BPR, BPRConfig
from baselines.gru4rec import GRU4Rec, GRU4RecConfig
from baselines.itemknn import ItemKNN, ItemKNNConfig
from baselines.lightgcn import LightGCN, LightGCNConfig
from baselines.pop import Pop, PopConfig
from baselines.sasrec import SASRec, SASRecConfig
from benchmark.errors import BenchmarkError
from benchmark.model import RecModule


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[RecModule]
    config: Any  # the model's config dataclass instance (its defaults)
    description: str
    train_defaults: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields this model changes


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("pop", Pop, PopConfig(), "Most popular items in training (non-personalised)", {"max_epochs": 1}),
        ModelSpec("bpr", BPR, BPRConfig(), "BPR-MF: matrix factorisation with the pairwise BPR loss (Rendle et al. 2009)"),
        ModelSpec("sasrec", SASRec, SASRecConfig(), "SASRec: causal self-attention over the history, cross-entropy over all items"),
        ModelSpec("bert4rec", BERT4Rec, BERT4RecConfig(), "BERT4Rec: bidirectional self-attention, masked item prediction over all items (Sun et al. 2019)"),
        ModelSpec("gru4rec", GRU4Rec, GRU4RecConfig(), "GRU4Rec: a GRU over the history, cross-entropy over all items (Hidasi et al. 2016)"),
        ModelSpec("itemknn", ItemKNN, ItemKNNConfig(), "ItemKNN: item-based CF, top-k cosine item similarities with shrinkage", {"max_epochs": 1}),
        ModelSpec("lightgcn", LightGCN, LightGCNConfig(), "LightGCN: linear graph convolution over the training graph, BPR loss (He et al. 2020)"),
    )
}


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise BenchmarkError(f"unknown model {name!r}; choose from: {', '.join(MODELS)}")
    return MODELS[name]
