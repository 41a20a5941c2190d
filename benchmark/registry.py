"""The model registry: every runnable model name, in one place.

A name maps to a class and a config instance; ablations (later) are further names with
the same class and a different config, never copies of the class.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from baselines.bpr import BPR, BPRConfig
from baselines.freedom import FREEDOM, FREEDOMConfig
from baselines.genrec import GenRec, GenRecConfig
from baselines.gru4rec import GRU4Rec, GRU4RecConfig
from baselines.ips_mf import IPSMF, IPSMFConfig
from baselines.itemknn import ItemKNN, ItemKNNConfig
from baselines.lightgcn import LightGCN, LightGCNConfig
from baselines.p5 import P5, P5Config
from baselines.pop import Pop, PopConfig
from baselines.sasrec import SASRec, SASRecConfig
from baselines.vbpr import VBPR, VBPRConfig
from benchmark.errors import BenchmarkError
from benchmark.model import RecModule
from llm4rec.model import ABLATIONS, LLM4Rec, LLM4RecConfig, LLM4RecGenerative, ablation_config


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[RecModule]
    config: Any  # the model's config dataclass instance (its defaults)
    description: str
    train_defaults: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields this model changes


# LLM4Rec's CPU budget: few epochs of capped windows (llm4rec/README.md), evaluation in chunks with a
# progress bar, explanations generated for a sample of test users. Patience 3: validation NDCG@10 dips
# at epoch 2 before it climbs (ml-latest-small seed 0: 0.033, 0.030, 0.031, 0.043, 0.052 at epochs 1-5)
LLM4REC_TRAIN = {"max_epochs": 8, "patience": 3, "eval_batch_size": 256, "explanation_users": 64}

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("pop", Pop, PopConfig(), "Most popular items in training (non-personalised)", {"max_epochs": 1}),
        # stream_lr: streaming updates are plain momentum SGD on a batch-mean loss, so an embedding
        # row moves ~lr / batch_size per event; 20 was the best of 1/5/20/50 on synthetic-amazon (temporal)
        ModelSpec("bpr", BPR, BPRConfig(), "BPR-MF: matrix factorisation with the pairwise BPR loss (Rendle et al. 2009)", {"stream_lr": 20.0}),
        ModelSpec("sasrec", SASRec, SASRecConfig(), "SASRec: causal self-attention over the history, cross-entropy over all items"),
        # patience 30: BERT4Rec learns popularity first and its validation NDCG@10 stays flat for ~20
        # epochs; on synthetic-amazon patience 10 stopped it there (test 0.0333, below Pop), 30 gave 0.0485
        ModelSpec("bert4rec", BERT4Rec, BERT4RecConfig(), "BERT4Rec: bidirectional self-attention, masked item prediction over all items (Sun et al. 2019)", {"patience": 30}),
        ModelSpec("gru4rec", GRU4Rec, GRU4RecConfig(), "GRU4Rec: a GRU over the history, cross-entropy over all items (Hidasi et al. 2016)"),
        ModelSpec("itemknn", ItemKNN, ItemKNNConfig(), "ItemKNN: item-based CF, top-k cosine item similarities with shrinkage", {"max_epochs": 1}),
        # patience 30: LightGCN's validation NDCG@10 stays flat for ~20 epochs, then climbs slowly
        # (best epochs 132-196 on ml-latest-small); patience 10 stopped it on the plateau (baselines/lightgcn.py)
        ModelSpec("lightgcn", LightGCN, LightGCNConfig(), "LightGCN: linear graph convolution over the training graph, BPR loss (He et al. 2020)", {"patience": 30}),
        ModelSpec("vbpr", VBPR, VBPRConfig(), "VBPR: BPR-MF plus a user preference over projected text/image item features (He & McAuley 2016)"),
        ModelSpec("freedom", FREEDOM, FREEDOMConfig(), "FREEDOM: frozen item-item kNN graph from item features + degree-pruned user-item graph (Zhou & Shen 2023)"),
        ModelSpec("ips-mf", IPSMF, IPSMFConfig(), "IPS-MF: BPR-MF with clipped, self-normalised inverse item-popularity propensity weights (Saito 2020)"),
        # LLM baselines on a CPU budget: few epochs of capped windows (docstrings of baselines/genrec.py, p5.py)
        ModelSpec("genrec", GenRec, GenRecConfig(), "GenRec: LoRA LLM generates the next item's title from the history's titles, beam search constrained to the catalogue (Ji et al. 2024)", {"max_epochs": 3, "patience": 1, "valid_users": 1000}),
        ModelSpec("p5", P5, P5Config(), "P5: items as new LLM tokens (random numbering), LoRA, whole-item generation of the next item token (Geng et al. 2022)", {"max_epochs": 5, "patience": 2}),
        ModelSpec("llm4rec", LLM4Rec, LLM4RecConfig(), "LLM4Rec (Ma et al. 2025): LLM over fused multimodal item soft tokens, RAG, debiasing, explanations, adaptation", LLM4REC_TRAIN),
        *(
            ModelSpec(f"llm4rec-{name}", LLM4Rec, ablation_config(name), f"LLM4Rec ablation: {name.removeprefix('no-')} module off ({', '.join(f'{k}={v}' for k, v in changes.items())})", LLM4REC_TRAIN)
            for name, changes in ABLATIONS.items()
        ),
        ModelSpec("llm4rec-generative", LLM4RecGenerative, LLM4RecConfig(), "LLM4Rec decoding item titles by beam search constrained to the catalogue (evaluated through recommend)", LLM4REC_TRAIN),
    )
}


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise BenchmarkError(f"unknown model {name!r}{did_you_mean(name, MODELS)}; choose from: {', '.join(MODELS)}")
    return MODELS[name]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """" (did you mean 'x'?)" for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def register_model(
    name: str, cls: type[RecModule], config: Any, *, description: str = "", train_defaults: dict[str, Any] | None = None,
    replace: bool = False,
) -> ModelSpec:
    """Register your own model under ``name`` (then ``run``, ``Experiment``, sweeps and
    ``evaluate`` know it). ``cls``: a ``RecModule`` subclass taking ``(n_users, n_items, config)``;
    ``config``: its config dataclass or an instance of it (the defaults); ``train_defaults``:
    training keys it changes (e.g. ``{"patience": 30}``). A taken name is refused unless
    ``replace`` (and the class is the same or ``replace`` is explicit)."""
    if not isinstance(cls, type) or not issubclass(cls, RecModule):
        raise BenchmarkError(f"register_model: {cls!r} is not a RecModule subclass (benchmark.model)")
    instance = config() if isinstance(config, type) else config
    if not dataclasses.is_dataclass(instance):
        raise BenchmarkError(f"register_model: the config of {name!r} must be a dataclass (or an instance of one), got {type(instance).__name__}")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise BenchmarkError(f"register_model: {name!r} is not a valid model name (letters, digits, '-', '_', '.')")
    if name in MODELS and not replace:
        raise BenchmarkError(f"register_model: the name {name!r} is taken ({MODELS[name].description or MODELS[name].cls.__name__})")
    spec = ModelSpec(name, cls, instance, description or (cls.__doc__ or cls.__name__).strip().splitlines()[0], dict(train_defaults or {}))
    MODELS[name] = spec
    return spec
