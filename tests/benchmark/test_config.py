"""Config overrides: typed, validated, with helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.config import DataConfig, TrainConfig, apply_overrides, load_config_file, parse_set_options
from benchmark.errors import BenchmarkError


def test_set_values_are_parsed_and_typed() -> None:
    overrides = parse_set_options(["split=temporal", "min_rating=4", "ks=[5, 10]", "kcore=", "deterministic=false"])
    configs = apply_overrides({DataConfig: DataConfig(), TrainConfig: TrainConfig()}, overrides)
    data, train = configs[DataConfig], configs[TrainConfig]
    assert data.split == "temporal" and data.min_rating == 4.0 and isinstance(data.min_rating, float)
    assert data.kcore is None and train.ks == [5, 10] and train.deterministic is False


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(BenchmarkError, match="unknown config key 'spilt'.*split"):
        apply_overrides({DataConfig: DataConfig()}, {"spilt": "loo"})


@pytest.mark.parametrize("item, message", [("split=random", "one of"), ("kcore=2.5", "int"), ("patience=x", "int")])
def test_wrong_values_are_rejected(item: str, message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        apply_overrides({DataConfig: DataConfig(), TrainConfig: TrainConfig()}, parse_set_options([item]))


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
