"""LLM4Rec's ablations: each switches exactly one module off, as a change of
``LLM4RecConfig`` fields (registered as ``llm4rec-<name>``; the same class, never a copy)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from benchmark.errors import BenchmarkError
from llm4rec.config import LLM4RecConfig

ABLATIONS: dict[str, dict[str, Any]] = {
    # text only beside the id embedding, no cross-modal attention, no gate/MLP
    "no-fusion": {"modalities": ["id", "text"], "cross_attention": False, "fusion": "mean"},
    "no-rag": {"rag": False},
    "no-debias": {"debias": False},
    "no-explain": {"explain": False},
    "no-adaptive": {"adaptive": False},
    # a randomly initialised 2-layer transformer of the backbone's width instead of the LLM
    "no-llm": {"llm": "scratch"},
}


def ablation_config(name: str, base: LLM4RecConfig | None = None) -> LLM4RecConfig:
    """The config of ablation ``name`` (a key of ``ABLATIONS``)."""
    if name not in ABLATIONS:
        raise BenchmarkError(f"unknown LLM4Rec ablation {name!r}; choose from {list(ABLATIONS)}")
    return dataclasses.replace(base or LLM4RecConfig(), **copy.deepcopy(ABLATIONS[name]))
