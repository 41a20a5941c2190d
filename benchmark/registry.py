"""The model registry: every runnable model name, in one place.

A name maps to a class and a config instance; ablations (later) are further names with
the same class and a different config, never copies of the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baselines.bpr import BPR, BPRConfig
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
    )
}


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise BenchmarkError(f"unknown model {name!r}; choose from: {', '.join(MODELS)}")
    return MODELS[name]
