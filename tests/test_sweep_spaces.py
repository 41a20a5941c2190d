"""Every registered model has a search space in sweeps/<model>.yaml whose defaults are the
registry's, whose keys are `--set` keys, and whose every sampled point is a valid config."""

from __future__ import annotations

import optuna
import pytest

from benchmark.config import SECTIONS, DataConfig, config_keys
from benchmark.registry import MODELS
from benchmark.runner import resolve
from benchmark.sweep import SWEEPS_DIR, load_space, registered_defaults, space_path


@pytest.mark.parametrize("model", list(MODELS))
def test_space_matches_the_registry(model: str) -> None:
    assert space_path(model).is_file(), f"sweeps/{model}.yaml is missing"
    space = load_space(model)  # raises on bad keys or malformed params
    spec = MODELS[model]
    valid = set(config_keys(DataConfig, *SECTIONS.values(), type(spec.config)))
    assert set(space.defaults) | {p.name for p in space.params} <= valid
    defaults = registered_defaults(model)
    assert space.defaults == defaults, f"sweeps/{model}.yaml defaults differ from the registry's"
    assert {k: type(v) for k, v in space.defaults.items()} == {k: type(v) for k, v in defaults.items()}  # 1e-5 is a str in YAML: write 1.0e-5
    # the default config is a point of the space: trial 0 (enqueued defaults) is exactly it
    resolved = resolve(model, "synthetic-ml", {})
    flat = {**vars(resolved.data_config), **vars(resolved.train_config), **vars(resolved.model_config)}
    for name, value in space.point(flat).items():
        param = next(p for p in space.params if p.name == name)
        assert param.contains(value), f"default {name}={value!r} is outside its range in sweeps/{model}.yaml"


@pytest.mark.parametrize("model", list(MODELS))
def test_sampled_points_are_valid_configs(model: str) -> None:
    space = load_space(model)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    resolved = resolve(model, "synthetic-ml", {})
    flat = {**vars(resolved.data_config), **vars(resolved.train_config), **vars(resolved.model_config)}
    for _ in range(20):
        trial = study.ask()
        params = space.sample(trial, flat)
        cfg = resolve(model, "synthetic-ml", params)  # types and Literal choices are checked here
        for key, value in params.items():
            assert getattr(cfg.model_config, key, getattr(cfg.train_config, key, getattr(cfg.data_config, key, None))) == value
        if hasattr(cfg.model_config, "n_heads") and hasattr(cfg.model_config, "hidden_size"):
            assert cfg.model_config.hidden_size % cfg.model_config.n_heads == 0  # the models reject the rest
        study.tell(trial, 0.0)


def test_no_space_without_a_model() -> None:
    stray = {p.stem for p in SWEEPS_DIR.glob("*.yaml")} - set(MODELS)
    assert not stray, f"sweeps/ has spaces for unregistered models: {sorted(stray)}"
