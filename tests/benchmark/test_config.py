"""Config overrides: typed, validated, with helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import dataclasses
import math
import typing

from benchmark.config import RANGES, SECTIONS, DataConfig, TrainConfig, apply_overrides, load_config_file, parse_set_options
from benchmark.errors import BenchmarkError


def test_set_values_are_parsed_and_typed() -> None:
    overrides = parse_set_options(["split=temporal", "min_rating=4", "ks=[5, 10]", "kcore=", "deterministic=false"])
    configs = apply_overrides({DataConfig: DataConfig()}, {k: v for k, v in overrides.items() if k in ("split", "min_rating", "kcore")})
    data, train = configs[DataConfig], TrainConfig().overridden({k: overrides[k] for k in ("ks", "deterministic")})
    assert data.split == "temporal" and data.min_rating == 4.0 and isinstance(data.min_rating, float)
    assert data.kcore is None and train.loop.ks == [5, 10] and train.loop.deterministic is False
    assert train.flat()["ks"] == [5, 10] and TrainConfig.from_flat(train.flat()) == train


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(BenchmarkError, match="unknown config key 'spilt'.*split"):
        apply_overrides({DataConfig: DataConfig()}, {"spilt": "loo"})


@pytest.mark.parametrize("item, message", [("split=random", "one of"), ("kcore=2.5", "int"), ("patience=x", "int")])
def test_wrong_values_are_rejected(item: str, message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        apply_overrides({DataConfig: DataConfig(), **{c: c() for c in SECTIONS.values()}}, parse_set_options([item]))


def test_malformed_set_option() -> None:
    with pytest.raises(BenchmarkError, match="key=value"):
        parse_set_options(["split"])


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("split: ratio\npatience: 3\n")
    assert load_config_file(path) == {"split": "ratio", "patience": 3}
    path.write_text("- a\n- b\n")
    with pytest.raises(BenchmarkError, match="flat mapping"):
        load_config_file(path)


@pytest.mark.parametrize("item", ["valid_users=-1", "patience=-2", "max_epochs=0"])
def test_resolve_rejects_out_of_range_loop_settings(item: str) -> None:
    from benchmark.runner import resolve

    with pytest.raises(BenchmarkError, match=item.split("=")[0]):
        resolve("pop", "synthetic-ml", parse_set_options([item]))


@pytest.mark.parametrize(
    ("item", "shown"),
    [("lr=-1", "lr=-1.0"), ("lr=.nan", "lr=nan"), ("embedding_dim=-4", "embedding_dim=-4"), ("embedding_dim=0", "[1, inf)"),
     ("batch_size=-1", "batch_size=-1"), ("eval_batch_size=0", "eval_batch_size=0"), ("devices=0", "devices=0"),
     ("kcore=-3", "kcore=-3"), ("dropout=1.0", "[0, 1)"), ("max_epochs=0", "max_epochs=0"), ("ips_clip=.inf", "ips_clip=inf")],
)
def test_out_of_range_values_name_the_key_the_value_and_the_range(item: str, shown: str) -> None:
    from benchmark.runner import resolve

    model = {"embedding_dim": "bpr", "batch_size": "bpr", "lr": "bpr", "dropout": "gru4rec", "ips_clip": "llm4rec"}.get(item.split("=")[0], "bpr")
    with pytest.raises(BenchmarkError, match="out of range") as info:
        resolve(model, "synthetic-ml", parse_set_options([item]))
    assert shown in str(info.value) and "must be a finite number in" in str(info.value)


def _numeric_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if {int, float} & set(typing.get_args(hints[f.name]) or (hints[f.name],))
            and hints[f.name] is not bool]  # fmt: skip


def test_every_numeric_config_field_declares_its_range_and_its_default_lies_in_it() -> None:
    from benchmark.registry import MODELS

    classes = {DataConfig, *SECTIONS.values(), *(type(spec.config) for spec in MODELS.values())}
    for cls in classes:
        for name in _numeric_fields(cls):
            assert name in RANGES, f"{cls.__name__}.{name} has no declared range"
    for spec in MODELS.values():  # every registered default (and train default) is valid
        for name, value in {**dataclasses.asdict(spec.config), **spec.train_defaults}.items():
            if name in RANGES and isinstance(value, (int, float)) and not isinstance(value, bool):
                assert RANGES[name].contains(value), f"{spec.name}: default {name}={value} outside {RANGES[name]}"
    assert not RANGES["lr"].contains(math.nan) and not RANGES["lr"].contains(math.inf)
