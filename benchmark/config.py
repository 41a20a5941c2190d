"""Typed configuration: three flat dataclasses and one way to override them.

A run's configuration is ``DataConfig`` (how raw data is prepared and split),
``TrainConfig`` (the loop) and the model's own config dataclass (declared in its file).
Every field of the three is settable by name, from a YAML file (a flat mapping) or with
``--set key=value``; names are unique across the three, so no section prefixes are needed.
Precedence: defaults < model-specific defaults (registry) < config file < ``--set``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
class TrainConfig:
    """The training/evaluation loop (Lightning Trainer options and early stopping)."""

    max_epochs: int = 200
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    eval_batch_size: int = 1024
    num_workers: int = 0  # data-loader workers; 0 is fastest for in-memory numpy batches
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int = 1
    num_nodes: int = 1  # machines; devices * num_nodes processes (SLURM/torchrun launch them, see README)
    strategy: Literal["auto", "ddp"] = "auto"
    deterministic: bool = True
    # validation (early stopping, sweep objective) on a fixed seeded sample of this many users; 0 = all.
    # For models whose evaluation is costly (LLM decoding); the test always ranks for every user
    valid_users: int = 0
    # test protocol (benchmark/evaluation.py); validation is always full ranking, accuracy only
    eval_protocol: Literal["full", "sampled"] = "full"
    eval_negatives: int = 100  # sampled protocol: negatives per test user
    eval_sampler: Literal["uniform", "popularity"] = "uniform"  # sampled protocol: how negatives are drawn
    ild_features: str = "categories"  # ILD item features: "categories" (multi-hot) or a .npy [n_items, d] path
    eval_item_group: str | None = "auto"  # item column for groupdisparity; "auto": state/brand if present
    # item features for models that use side information (extracted once, cached per encoder)
    text_encoder: str | None = "all-MiniLM-L6-v2"  # sentence-transformers name/path; None: no text features
    image_encoder: str | None = None  # e.g. "open-clip:ViT-B-32" (extra `vision`); None: no image features
    # evaluation protocol after the test pass (benchmark/streaming.py): "streaming" also replays the
    # evaluation period in windows, predicting each before updating on it (adaptive vs frozen model)
    protocol: Literal["offline", "streaming"] = "offline"
    stream_windows: int = 10  # equal-count windows of the evaluation period
    stream_lr: float = 0.001  # momentum-SGD learning rate of the per-window updates (models may set their own default)
    stream_momentum: float = 0.9  # SGD momentum (gamma); buffers persist across windows
    stream_replay_size: int = 2048  # replay reservoir capacity (0: no replay); each update mixes in <= its event count
    stream_recency_half_life: float | None = 1.0  # recency-weight half-life in window lengths; None: uniform
    stream_steps_per_window: int | None = None  # optimizer steps per window; None: one pass over the update set
    # explanations (models that generate them, e.g. LLM4Rec): test users whose held-out pair the model
    # explains and the harness scores (seeded sample; 0 = all), and samples written to runs/<id>/explanations.jsonl
    explanation_users: int = 1000
    explanation_samples: int = 20


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
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is list and isinstance(value, list):
            return value
        if kind in (bool, str) and isinstance(value, kind):
            return value
    readable = " or ".join(f"one of {list(k)}" if isinstance(k, tuple) else getattr(k, "__name__", str(k)) for k in allowed)
    raise BenchmarkError(f"--set {name}={value!r}: expected {readable}")


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
            valid = ", ".join(sorted(owners))
            raise BenchmarkError(f"unknown config key {key!r}; valid keys: {valid}")
        cls = owners[key]
        changes[cls][key] = _coerce(cls, key, value)
    return {cls: dataclasses.replace(obj, **changes[cls]) for cls, obj in configs.items()}


def config_hash(resolved: dict[str, Any]) -> str:
    """Stable short hash of a resolved configuration (JSON with sorted keys)."""
    blob = json.dumps(resolved, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
