"""The model registry: every runnable model name, in one place.

A name maps to a class and a config instance (``ModelSpec``); ablations are further names
with the same class and a different config, never copies of the class. The table below is
static text (module paths, descriptions, papers), so listing the names (``--help``,
``models``) imports no model: a spec's class and config are imported on first use.
``register_model`` adds your own.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import BenchmarkError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type  # a benchmark.model.RecModule subclass
    config: Any  # the model's config dataclass instance (its defaults)
    description: str
    train_defaults: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields this model changes
    paper: str = ""

    @property
    def file(self) -> str:
        """The source file of the model class, relative to the project (e.g. baselines/bpr.py)."""
        return self.cls.__module__.replace(".", "/") + ".py"


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows without importing: where the class and its config live."""

    name: str
    target: str  # "module:Class"
    config: str  # "module:ConfigClass", or "module:function:argument" (a factory, e.g. an ablation's config)
    description: str
    train_defaults: dict[str, Any] = field(default_factory=dict)
    paper: str = ""

    @property
    def file(self) -> str:
        return self.target.split(":")[0].replace(".", "/") + ".py"

    @property
    def config_class(self) -> str:
        return self.config.split(":")[1] if self.config.count(":") == 1 else "LLM4RecConfig"

    def resolve(self) -> ModelSpec:
        module, name = self.target.split(":")
        cls = getattr(importlib.import_module(module), name)
        parts = self.config.split(":")
        factory = getattr(importlib.import_module(parts[0]), parts[1])
        config = factory(*parts[2:])
        return ModelSpec(self.name, cls, config, self.description, dict(self.train_defaults), self.paper)


class Registry(dict):
    """name -> ModelSpec; entries are ``ModelEntry`` until first asked for, then resolved."""

    def __getitem__(self, name: str) -> ModelSpec:
        value = super().__getitem__(name)
        if isinstance(value, ModelEntry):
            value = value.resolve()
            super().__setitem__(name, value)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def values(self) -> list[ModelSpec]:  # type: ignore[override]
        return [self[name] for name in self]

    def items(self) -> list[tuple[str, ModelSpec]]:  # type: ignore[override]
        return [(name, self[name]) for name in self]

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def entry(self, name: str) -> ModelEntry | ModelSpec:
        """The static description of ``name`` (nothing imported)."""
        return super().__getitem__(name)


# LLM4Rec's CPU budget: few epochs of capped windows (llm4rec/README.md), evaluation in chunks with a
# progress bar, explanations generated for a sample of test users; epochs and patience: llm4rec/README.md
LLM4REC_TRAIN = {"max_epochs": 8, "patience": 3, "eval_batch_size": 256, "explanation_users": 64}
LLM4REC_PAPER = "Ma et al. 2025, https://arxiv.org/abs/2510.01622"
#: the ablations of LLM4Rec, registered as llm4rec-<name> (llm4rec/ablations.py holds their changes)
LLM4REC_ABLATIONS = ("no-fusion", "no-rag", "no-debias", "no-explain", "no-adaptive", "no-llm")

MODELS: Registry = Registry(
    (entry.name, entry)
    for entry in (
        ModelEntry("pop", "baselines.pop:Pop", "baselines.pop:PopConfig", "Most popular items in training (non-personalised)",
                   {"max_epochs": 1}, "Cremonesi et al. 2010, https://doi.org/10.1145/1864708.1864721"),
        # stream_lr: streaming updates are plain momentum SGD on a batch-mean loss, so an embedding
        # row moves ~lr / batch_size per event; 20 was the best of 1/5/20/50 on synthetic-amazon (temporal)
        ModelEntry("bpr", "baselines.bpr:BPR", "baselines.bpr:BPRConfig", "BPR-MF: matrix factorisation with the pairwise BPR loss",
                   {"stream_lr": 20.0}, "Rendle et al. 2009, https://arxiv.org/abs/1205.2618"),
        ModelEntry("sasrec", "baselines.sasrec:SASRec", "baselines.sasrec:SASRecConfig",
                   "SASRec: causal self-attention over the history, cross-entropy over all items", {},
                   "Kang & McAuley 2018, https://arxiv.org/abs/1808.09781"),
        # patience 30: the validation curve plateaus for ~20 epochs before it climbs (baselines/README.md)
        ModelEntry("bert4rec", "baselines.bert4rec:BERT4Rec", "baselines.bert4rec:BERT4RecConfig",
                   "BERT4Rec: bidirectional self-attention, masked item prediction over all items", {"patience": 30},
                   "Sun et al. 2019, https://arxiv.org/abs/1904.06690"),
        ModelEntry("gru4rec", "baselines.gru4rec:GRU4Rec", "baselines.gru4rec:GRU4RecConfig",
                   "GRU4Rec: a GRU over the history, cross-entropy over all items", {},
                   "Hidasi et al. 2016, https://arxiv.org/abs/1511.06939"),
        ModelEntry("itemknn", "baselines.itemknn:ItemKNN", "baselines.itemknn:ItemKNNConfig",
                   "ItemKNN: item-based CF, top-k cosine item similarities with shrinkage", {"max_epochs": 1},
                   "Sarwar et al. 2001, https://doi.org/10.1145/371920.372071"),
        # patience 30: LightGCN's validation curve plateaus before it climbs slowly (baselines/README.md)
        ModelEntry("lightgcn", "baselines.lightgcn:LightGCN", "baselines.lightgcn:LightGCNConfig",
                   "LightGCN: linear graph convolution over the training graph, BPR loss", {"patience": 30},
                   "He et al. 2020, https://arxiv.org/abs/2002.02126"),
        ModelEntry("vbpr", "baselines.vbpr:VBPR", "baselines.vbpr:VBPRConfig",
                   "VBPR: BPR-MF plus a user preference over projected text/image item features", {},
                   "He & McAuley 2016, https://arxiv.org/abs/1510.01784"),
        ModelEntry("freedom", "baselines.freedom:FREEDOM", "baselines.freedom:FREEDOMConfig",
                   "FREEDOM: frozen item-item kNN graph from item features + degree-pruned user-item graph", {},
                   "Zhou & Shen 2023, https://arxiv.org/abs/2211.06924"),
        ModelEntry("ips-mf", "baselines.ips_mf:IPSMF", "baselines.ips_mf:IPSMFConfig",
                   "IPS-MF: BPR-MF with clipped, self-normalised inverse item-popularity propensity weights", {},
                   "Saito et al. 2020, https://arxiv.org/abs/1909.03601"),
        # LLM baselines on a CPU budget: few epochs of capped windows (docstrings of baselines/genrec.py, p5.py)
        ModelEntry("genrec", "baselines.genrec:GenRec", "baselines.genrec:GenRecConfig",
                   "GenRec: LoRA LLM generates the next item's title from the history's titles, beam search constrained to the catalogue",
                   {"max_epochs": 3, "patience": 1, "valid_users": 1000}, "Ji et al. 2024, https://arxiv.org/abs/2307.00457"),
        ModelEntry("p5", "baselines.p5:P5", "baselines.p5:P5Config",
                   "P5: items as new LLM tokens (random numbering), LoRA, the next item token scored over the catalogue",
                   {"max_epochs": 5, "patience": 2}, "Geng et al. 2022, https://arxiv.org/abs/2203.13366"),
        ModelEntry("llm4rec", "llm4rec.model:LLM4Rec", "llm4rec.config:LLM4RecConfig",
                   "LLM4Rec: LLM over fused multimodal item soft tokens, RAG, debiasing, explanations, adaptation", LLM4REC_TRAIN, LLM4REC_PAPER),
        *(
            ModelEntry(f"llm4rec-{name}", "llm4rec.model:LLM4Rec", f"llm4rec.ablations:ablation_config:{name}",
                       f"LLM4Rec ablation: the {name.removeprefix('no-')} module off (llm4rec/ablations.py)", LLM4REC_TRAIN, LLM4REC_PAPER)
            for name in LLM4REC_ABLATIONS
        ),
        ModelEntry("llm4rec-generative", "llm4rec.model:LLM4RecGenerative", "llm4rec.config:LLM4RecConfig",
                   "LLM4Rec decoding item titles by beam search constrained to the catalogue (evaluated through recommend)",
                   LLM4REC_TRAIN, LLM4REC_PAPER),
    )
)  # fmt: skip


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise BenchmarkError(f"unknown model {name!r}{did_you_mean(name, MODELS)}; choose from: {', '.join(MODELS)}")
    return MODELS[name]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """" (did you mean 'x'?)" for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def register_model(
    name: str, cls: type, config: Any, *, description: str = "", train_defaults: dict[str, Any] | None = None,
    paper: str = "", replace: bool = False,
) -> ModelSpec:
    """Register your own model under ``name`` (then ``run``, ``Experiment``, sweeps and
    ``evaluate`` know it). ``cls``: a ``RecModule`` subclass taking ``(n_users, n_items, config)``;
    ``config``: its config dataclass or an instance of it (the defaults); ``train_defaults``:
    training keys it changes (e.g. ``{"patience": 30}``). A taken name is refused unless ``replace``."""
    from benchmark.model import RecModule

    if not isinstance(cls, type) or not issubclass(cls, RecModule):
        raise BenchmarkError(f"register_model: {cls!r} is not a RecModule subclass (benchmark.model)")
    instance = config() if isinstance(config, type) else config
    if not dataclasses.is_dataclass(instance):
        raise BenchmarkError(f"register_model: the config of {name!r} must be a dataclass (or an instance of one), got {type(instance).__name__}")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise BenchmarkError(f"register_model: {name!r} is not a valid model name (letters, digits, '-', '_', '.')")
    if name in MODELS and not replace:
        raise BenchmarkError(f"register_model: the name {name!r} is taken ({MODELS.entry(name).description})")
    spec = ModelSpec(name, cls, instance, description or (cls.__doc__ or cls.__name__).strip().splitlines()[0], dict(train_defaults or {}), paper)
    MODELS[name] = spec
    return spec
