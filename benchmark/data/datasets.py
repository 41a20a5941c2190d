"""The dataset registry: names, where their raw files live, how they are read.

Raw files are read from ``--raw-dir`` if given, else ``$BENCHMARK_DATA/<name>/``, else
``<cache>/raw/<name>/``. Synthetic datasets are written there by the simulator on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmark.config import DataConfig
from benchmark.data import movielens, prepare
from benchmark.data.raw import RawData
from benchmark.data.simulator import SimulationConfig, write_movielens
from benchmark.errors import BenchmarkError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    source: Literal["real", "synthetic"]
    read: Callable[[Path, str], RawData]
    required_files: tuple[str, ...]
    optional_files: tuple[str, ...] = ()
    default_kcore: int = 0
    generate: Callable[[Path], None] | None = None  # synthetic datasets: writes the raw files
    where_to_get: str = ""

    def raw_files(self, raw_dir: Path) -> list[Path]:
        missing = [f for f in self.required_files if not (raw_dir / f).is_file()]
        if missing:
            hint = f" {self.where_to_get}" if self.where_to_get else ""
            raise BenchmarkError(
                f"dataset {self.name!r}: {', '.join(missing)} not found in {raw_dir}.{hint} "
                f"Put the raw files in $BENCHMARK_DATA/{self.name}/ or pass --raw-dir DIR."
            )
        return [raw_dir / f for f in self.required_files + self.optional_files if (raw_dir / f).is_file()]


_GROUPLENS = "Download it from https://grouplens.org/datasets/movielens/ and unzip it."

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ml-25m",
            "MovieLens 25M (GroupLens): 25M ratings, 162k users, 62k movies; genres, tags",
            "real",
            movielens.read_movielens,
            movielens.REQUIRED_FILES,
            movielens.OPTIONAL_FILES,
            where_to_get=_GROUPLENS,
        ),
        DatasetSpec(
            "ml-latest-small",
            "MovieLens latest-small (GroupLens): 100k ratings, 610 users, 9.7k movies",
            "real",
            movielens.read_movielens,
            movielens.REQUIRED_FILES,
            movielens.OPTIONAL_FILES,
            where_to_get=_GROUPLENS,
        ),
        DatasetSpec(
            "synthetic-ml",
            "Simulated MovieLens-format data (2,000 users, 1,000 movies) with known latent factors",
            "synthetic",
            movielens.read_movielens,
            movielens.REQUIRED_FILES,
            movielens.OPTIONAL_FILES,
            generate=lambda out: write_movielens(SimulationConfig(), out),
        ),
    )
}


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise BenchmarkError(f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)}")
    return DATASETS[name]


def default_raw_dir(name: str) -> Path:
    base = os.environ.get("BENCHMARK_DATA")
    return Path(base) / name if base else prepare.cache_root() / "raw" / name


def load_dataset(name: str, config: DataConfig | None = None, raw_dir: str | Path | None = None) -> prepare.PreparedData:
    """Prepared data for ``name``: from the cache when the fingerprint matches, else prepared now."""
    spec = get_dataset(name)
    config = config or DataConfig()
    raw = Path(raw_dir) if raw_dir is not None else default_raw_dir(name)
    if spec.generate is not None and not all((raw / f).is_file() for f in spec.required_files):
        spec.generate(raw)
    if not raw.is_dir():
        spec.raw_files(raw)  # raises the "where to put the files" error
    files = spec.raw_files(raw)
    fp = prepare.fingerprint(name, files, config)
    target = prepare.cache_dir(name, fp)
    if (target / "meta.json").is_file():
        return prepare.load(target)
    data = prepare.build(
        spec.read(raw, config.on_bad_line), config, name=name, source=spec.source, fp=fp, default_kcore=spec.default_kcore
    )
    prepare.save(data, target)
    return data
