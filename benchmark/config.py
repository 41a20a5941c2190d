"""Typed configuration: dataclasses for each concern and one way to override them.

A run's configuration is ``DataConfig`` (how raw data is prepared and split), ``TrainConfig``
(typed sections: loop, hardware, evaluation, features, streaming, explanation, logging) and the
model's own config dataclass (declared in its file). Every field is settable by name, from
a YAML file (a flat mapping) or with ``--set key=value``; names are unique across all of
them, so no section prefixes are needed. Precedence: defaults < model-specific defaults
(registry) < config file < ``--set``. Every numeric field has a valid range (``RANGES``):
a value outside it, NaN or infinity is refused with the key, the value and the range.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from benchmark.errors import BenchmarkError


@dataclass
class DataConfig:
    """Preparation of a dataset; part of the dataset fingerprint."""

    min_rating: float | None = None  # keep interactions rated >= this; None keeps all (implicit feedback)
    kcore: int | None = None  # k-core filter on users and items; None = the dataset's default; 0 = none
    split: Literal["loo", "temporal", "ratio"] = "loo"
    valid_fraction: float = 0.1  # temporal: share of interactions after the validation cut; ratio: per user
    test_fraction: float = 0.1  # temporal: share after the test cut; ratio: per user
    on_bad_line: Literal["error", "skip"] = "error"
    # a repeated (user, item) pair: "first" counts it once, at its first occurrence (implicit
    # feedback); "keep" keeps every occurrence (the S3-Rec files' published protocol); None = the
    # dataset's default ("keep" for s3rec-*, else "first")
    repeats: Literal["first", "keep"] | None = None


@dataclass
class LoopConfig:
    """The training loop and early stopping."""

    max_epochs: int = 200
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    eval_batch_size: int = 1024
    num_workers: int = 0  # data-loader workers; 0 is fastest for in-memory numpy batches
    deterministic: bool = True
    # validation (early stopping, sweep objective) on a fixed seeded sample of this many users; 0 = all.
    # For models whose evaluation is costly (LLM decoding); the test always ranks for every user
    valid_users: int = 0


@dataclass
class HardwareConfig:
    """Where a run happens (never what it computes: a config hash ignores nothing, but sweeps do)."""

    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int = 1
    num_nodes: int = 1  # machines; devices * num_nodes processes (SLURM/torchrun launch them, see README)
    strategy: Literal["auto", "ddp"] = "auto"


@dataclass
class EvaluationConfig:
    """The test protocol (benchmark/evaluation/protocol.py); validation is always full ranking, accuracy only."""

    eval_protocol: Literal["full", "sampled"] = "full"
    eval_negatives: int = 100  # sampled protocol: negatives per test user
    eval_sampler: Literal["uniform", "popularity"] = "uniform"  # sampled protocol: how negatives are drawn
    ild_features: str = "categories"  # ILD item features: "categories" (multi-hot) or a .npy [n_items, d] path
    eval_item_group: str | None = "auto"  # item column for groupdisparity; "auto": state/brand if present


@dataclass
class FeatureConfig:
    """Item features for models that use side information (extracted once, cached per encoder)."""

    text_encoder: str | None = "all-MiniLM-L6-v2"  # sentence-transformers name/path; None: no text features
    image_encoder: str | None = None  # e.g. "open-clip:ViT-B-32" (extra `vision`); None: no image features


@dataclass
class StreamingConfig:
    """The protocol after the test pass (benchmark/streaming.py): "streaming" also replays the
    evaluation period in windows, predicting each before updating on it (adaptive vs frozen)."""

    protocol: Literal["offline", "streaming"] = "offline"
    stream_windows: int = 10  # equal-count windows of the evaluation period
    stream_lr: float = 0.001  # momentum-SGD learning rate of the per-window updates (models may set their own default)
    stream_momentum: float = 0.9  # SGD momentum (gamma); buffers persist across windows
    stream_replay_size: int = 2048  # replay reservoir capacity (0: no replay); each update mixes in <= its event count
    stream_recency_half_life: float | None = 1.0  # recency-weight half-life in window lengths; None: uniform
    stream_steps_per_window: int | None = None  # optimizer steps per window; None: one pass over the update set


@dataclass
class ExplanationConfig:
    """Explanations (models that generate them, e.g. LLM4Rec): test users whose held-out pair the
    model explains and the harness scores (seeded sample; 0 = all), and samples written to
    runs/<id>/explanations.jsonl."""

    explanation_users: int = 1000
    explanation_samples: int = 20


LoggerName = Literal["tensorboard", "csv", "wandb", "mlflow"]
#: the experiment loggers the ``logger`` key chooses from (benchmark.loggers builds them)
LOGGERS: tuple[str, ...] = typing.get_args(LoggerName)


@dataclass
class LoggingConfig:
    """Where a run's curves, hyperparameters and final figures are logged (benchmark/loggers.py);
    never what the run computes, so the config hash leaves this section out."""

    # tensorboard (tb/, the default), csv (csv/metrics.csv), wandb (extra `wandb`; offline unless
    # WANDB_MODE is set) or mlflow (extra `mlflow`; a file store mlruns/ unless MLFLOW_TRACKING_URI is set)
    logger: LoggerName = "tensorboard"


SECTIONS = {"loop": LoopConfig, "hardware": HardwareConfig, "evaluation": EvaluationConfig, "features": FeatureConfig,
            "streaming": StreamingConfig, "explanation": ExplanationConfig, "logging": LoggingConfig}  # fmt: skip
#: training keys that say where a run is observed, not what it computes: left out of ``config_hash``
UNHASHED_KEYS = frozenset(f.name for f in fields(LoggingConfig))


@dataclass
class TrainConfig:
    """Everything about a run but the data preparation and the model: one typed section each.
    Keys are unique across sections, so ``--set key=value`` needs no section prefix, and records
    store the sections merged into one flat mapping (``flat``)."""

    loop: LoopConfig = field(default_factory=LoopConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    explanation: ExplanationConfig = field(default_factory=ExplanationConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def flat(self) -> dict[str, Any]:
        return {k: v for name in SECTIONS for k, v in dataclasses.asdict(getattr(self, name)).items()}

    @classmethod
    def from_flat(cls, content: dict[str, Any]) -> TrainConfig:
        """From a flat mapping (a record's ``train_config``), checked like ``--set``."""
        return cls().overridden(content)

    def overridden(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with ``overrides`` (flat keys) applied and checked."""
        sections = {type(getattr(self, name)): getattr(self, name) for name in SECTIONS}
        changed = apply_overrides(sections, overrides)
        return TrainConfig(**{name: changed[section] for name, section in SECTIONS.items()})


# --- valid ranges ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """The valid values of a number: bounds inclusive (ge/le) or exclusive (gt/lt); never NaN or infinite."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))  # fmt: skip

    def __str__(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else "(-inf"
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else "inf)"
        return f"{low}, {high}"


POSITIVE_INT = Range(ge=1)
COUNT = Range(ge=0)
POSITIVE = Range(gt=0)
NON_NEGATIVE = Range(ge=0)
PROBABILITY = Range(ge=0, le=1)
DROPOUT = Range(ge=0, lt=1)

#: The valid range of every numeric config field, by name (names mean the same in every model);
#: tests/benchmark/test_config.py checks that every registered config's numeric field is listed.
RANGES: dict[str, Range] = {
    # data and loop
    "min_rating": Range(), "kcore": COUNT, "valid_fraction": Range(gt=0, lt=1), "test_fraction": Range(gt=0, lt=1),
    "max_epochs": POSITIVE_INT, "patience": COUNT, "ks": POSITIVE_INT, "eval_batch_size": POSITIVE_INT, "num_workers": COUNT,
    "valid_users": COUNT, "devices": POSITIVE_INT, "num_nodes": POSITIVE_INT, "eval_negatives": POSITIVE_INT,
    "stream_windows": POSITIVE_INT, "stream_lr": POSITIVE, "stream_momentum": Range(ge=0, lt=1), "stream_replay_size": COUNT,
    "stream_recency_half_life": POSITIVE, "stream_steps_per_window": POSITIVE_INT, "explanation_users": COUNT,
    "explanation_samples": COUNT,
    # sizes and counts of models
    "embedding_dim": POSITIVE_INT, "embedding_size": POSITIVE_INT, "hidden_size": POSITIVE_INT, "inner_size": POSITIVE_INT,
    "feature_dim": POSITIVE_INT, "dim": POSITIVE_INT, "n_layers": POSITIVE_INT, "n_heads": POSITIVE_INT, "n_mm_layers": COUNT,
    "n_ui_layers": COUNT, "num_layers": COUNT, "batch_size": POSITIVE_INT, "num_negatives": COUNT, "max_seq_length": POSITIVE_INT,
    "k": POSITIVE_INT, "knn_k": POSITIVE_INT, "epochs_needed": POSITIVE_INT, "block_elements": POSITIVE_INT,
    "decode_batch_size": POSITIVE_INT, "max_title_tokens": POSITIVE_INT, "num_beams": POSITIVE_INT, "numbering_seed": COUNT,
    "train_windows_per_epoch": COUNT, "lora_r": POSITIVE_INT, "lora_alpha": POSITIVE_INT, "fusion_heads": POSITIVE_INT,
    "rag_top_r": POSITIVE_INT, "rag_query_items": POSITIVE_INT, "rag_nlist": POSITIVE_INT, "rag_nprobe": POSITIVE_INT,
    "rag_hnsw_m": Range(ge=2), "rag_snippets": COUNT, "rank_layers": COUNT, "scratch_layers": COUNT, "title_tokens": POSITIVE_INT,
    "popularity_groups": Range(ge=2), "parity_k": POSITIVE_INT, "explain_every": POSITIVE_INT, "explain_batch": POSITIVE_INT,
    "explain_max_length": Range(ge=2), "explain_new_tokens": POSITIVE_INT, "explain_history": COUNT, "generative_beams": POSITIVE_INT,
    "generative_title_tokens": POSITIVE_INT, "warmup_steps": COUNT,
    # rates, weights, probabilities
    "lr": POSITIVE, "backbone_lr": POSITIVE, "weight_decay": NON_NEGATIVE, "reg_weight": NON_NEGATIVE, "shrink": NON_NEGATIVE,
    "image_weight": PROBABILITY, "hidden_dropout": DROPOUT, "attn_dropout": DROPOUT, "dropout": DROPOUT, "lora_dropout": DROPOUT,
    "edge_dropout": DROPOUT, "mask_ratio": Range(gt=0, lt=1), "ft_ratio": PROBABILITY, "layer_norm_eps": POSITIVE,
    "initializer_range": POSITIVE, "propensity_power": NON_NEGATIVE, "min_propensity": Range(gt=0, le=1),
    "ips_clip": Range(gt=0, le=1), "adversarial_weight": NON_NEGATIVE, "parity_weight": NON_NEGATIVE,
    "parity_temperature": POSITIVE, "parity_epsilon": NON_NEGATIVE, "explain_weight": NON_NEGATIVE,
    "generative_weight": NON_NEGATIVE, "rag_temperature": POSITIVE, "score_temperature": POSITIVE,
}  # fmt: skip


def check_ranges(config: Any) -> None:
    """Refuse a config dataclass instance whose numeric fields lie outside ``RANGES`` (the
    check ``--set`` makes, for configs built in Python)."""
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and f.name in RANGES and not RANGES[f.name].contains(value):
            raise BenchmarkError(f"{type(config).__name__}.{f.name}={value!r}: out of range; {f.name} must be a finite number in {RANGES[f.name]}")


def config_keys(*configs: type) -> dict[str, type]:
    """Map every settable key to the dataclass that owns it; names must not collide."""
    owners: dict[str, type] = {}
    for cls in configs:
        for f in fields(cls):
            if f.name in owners:
                raise TypeError(f"config key {f.name!r} is defined by both {owners[f.name].__name__} and {cls.__name__}")
            owners[f.name] = cls
    return owners


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "split=temporal"]`` -> ``{"lr": 0.01, "split": "temporal"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchmarkError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"config file {path} not found")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BenchmarkError(f"config file {path} is not valid YAML: {exc}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise BenchmarkError(f"config file {path} must be a flat mapping of key: value")
    return content


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Check ``value`` against the declared field type (ints widen to floats)."""
    hint = typing.get_type_hints(cls)[name]
    allowed = _allowed(hint)
    for kind in allowed:
        if kind is type(None) and value is None:
            return None
        if isinstance(kind, tuple):  # Literal choices
            if value in kind:
                return value
            continue
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _in_range(name, float(value))
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return _in_range(name, value)
        if kind is list and isinstance(value, list):
            if name in RANGES:  # list[int] of counts (ks): every element checked
                for element in value:
                    if isinstance(element, bool) or not isinstance(element, int):
                        raise BenchmarkError(f"--set {name}={value!r}: expected a list of integers")
                    _in_range(name, element)
            return value
        if kind in (bool, str) and isinstance(value, kind):
            return value
    readable = " or ".join(f"one of {list(k)}" if isinstance(k, tuple) else getattr(k, "__name__", str(k)) for k in allowed)
    raise BenchmarkError(f"--set {name}={value!r}: expected {readable}")


def _in_range(name: str, value: float) -> float:
    valid = RANGES.get(name, Range())
    if not valid.contains(value):
        raise BenchmarkError(f"--set {name}={value!r}: out of range; {name} must be a finite number in {valid}")
    return value


def _allowed(hint: Any) -> list[Any]:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return [tuple(typing.get_args(hint))]
    if origin in (typing.Union, types.UnionType):
        return [k for arg in typing.get_args(hint) for k in _allowed(arg)]
    if origin is list:
        return [list]
    return [hint]


def apply_overrides(configs: dict[type, Any], overrides: dict[str, Any]) -> dict[type, Any]:
    """Return copies of ``configs`` (instances keyed by class) with ``overrides`` applied."""
    owners = config_keys(*configs)
    changes: dict[type, dict[str, Any]] = {cls: {} for cls in configs}
    for key, value in overrides.items():
        if key not in owners:
            import difflib

            close = difflib.get_close_matches(key, list(owners), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(sorted(owners))
            raise BenchmarkError(f"unknown config key {key!r}{hint}; valid keys: {valid}")
        cls = owners[key]
        changes[cls][key] = _coerce(cls, key, value)
    return {cls: dataclasses.replace(obj, **changes[cls]) for cls, obj in configs.items()}


def config_hash(resolved: dict[str, Any]) -> str:
    """Stable short hash of a resolved configuration (JSON with sorted keys). The keys of
    ``UNHASHED_KEYS`` in its ``train_config`` are left out: a run logged to CSV computes what
    the same run logged to TensorBoard does, and records written before they existed keep their hash."""
    train = resolved.get("train_config")
    if isinstance(train, dict) and UNHASHED_KEYS & train.keys():
        resolved = {**resolved, "train_config": {k: v for k, v in train.items() if k not in UNHASHED_KEYS}}
    blob = json.dumps(resolved, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
