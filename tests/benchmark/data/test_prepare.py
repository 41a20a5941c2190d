"""The prepared-data cache: keyed by the fingerprint, written atomically, reloaded identically."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.config import DataConfig
from benchmark.data import prepare
from benchmark.data.datasets import load_dataset


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    return cache


def test_fingerprint_depends_on_files_and_config(tiny_ml: Path, tmp_path: Path, own_cache: Path) -> None:
    files = sorted(tiny_ml.glob("*.csv"))
    base = prepare.fingerprint("synthetic-ml", files, DataConfig())
    assert prepare.fingerprint("synthetic-ml", files, DataConfig()) == base
    assert prepare.fingerprint("synthetic-ml", files, DataConfig(split="temporal")) != base
    assert prepare.fingerprint("synthetic-ml", files, DataConfig(kcore=5)) != base
    changed = tmp_path / "changed"
    shutil.copytree(tiny_ml, changed)
    with open(changed / "ratings.csv", "a") as fh:
        fh.write("1,1,5.0,1600000000\n")
    assert prepare.fingerprint("synthetic-ml", sorted(changed.glob("*.csv")), DataConfig()) != base


def test_cache_reload_is_identical(tiny_ml: Path, own_cache: Path) -> None:
    fresh = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    cached_dir = prepare.cache_dir("synthetic-ml", fresh.fingerprint)
    assert (cached_dir / "meta.json").is_file()
    again = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    assert again.fingerprint == fresh.fingerprint and again.n_items == fresh.n_items
    for part in ("train", "valid", "test"):
        for col in ("user", "item", "timestamp"):
            np.testing.assert_array_equal(getattr(getattr(again, part), col), getattr(getattr(fresh, part), col))
    np.testing.assert_array_equal(again.item_ids, fresh.item_ids)
    assert again.items["title"].tolist() == fresh.items["title"].tolist()


def test_crash_while_writing_leaves_no_cache(tiny_ml: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(prepare.pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        load_dataset("synthetic-ml", raw_dir=tiny_ml)
    prepared = own_cache / "prepared" / "synthetic-ml"
    assert not list(prepared.iterdir())  # neither a final nor a temporary folder


def test_synthetic_data_is_generated_deterministically(own_cache: Path, tmp_path: Path) -> None:
    from benchmark.data.simulator import SimulationConfig, write_movielens

    write_movielens(SimulationConfig(n_users=50, n_items=40, seed=7), tmp_path / "a")
    write_movielens(SimulationConfig(n_users=50, n_items=40, seed=7), tmp_path / "b")
    for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    write_movielens(SimulationConfig(n_users=50, n_items=40, seed=8), tmp_path / "c")
    assert (tmp_path / "a" / "ratings.csv").read_bytes() != (tmp_path / "c" / "ratings.csv").read_bytes()
    data = load_dataset("synthetic-ml", raw_dir=tmp_path / "a")
    assert data.source == "synthetic" and data.n_users == 50
