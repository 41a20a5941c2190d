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
from benchmark.data import amazon, movielens, prepare, yelp
from benchmark.data.download import ML_25M, ML_LATEST_SMALL, Download, download_dataset
from benchmark.data.raw import RawData
from benchmark.data.simulator import SimulationConfig, write_amazon, write_movielens, write_yelp
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
    download: Download | None = None  # published archive fetched (verified) into the default raw folder
    locate: Callable[[Path], list[Path] | None] | None = None  # several layouts (.gz, tar, 2018/2023): the files found, or None

    def raw_files(self, raw_dir: Path) -> list[Path]:
        if self.locate is not None:
            found = self.locate(raw_dir) if raw_dir.is_dir() else None
            if found is None:
                hint = f" {self.where_to_get}" if self.where_to_get else ""
                raise BenchmarkError(
                    f"dataset {self.name!r}: raw files ({', '.join(self.required_files)}) not found in {raw_dir}.{hint} "
                    f"Put the raw files in $BENCHMARK_DATA/{self.name}/ or pass --raw-dir DIR."
                )
            return found
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
            download=ML_25M,
        ),
        DatasetSpec(
            "ml-latest-small",
            "MovieLens latest-small (GroupLens): 100k ratings, 610 users, 9.7k movies",
            "real",
            movielens.read_movielens,
            movielens.REQUIRED_FILES,
            movielens.OPTIONAL_FILES,
            where_to_get=_GROUPLENS,
            download=ML_LATEST_SMALL,
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
        DatasetSpec(
            "amazon-electronics",
            "Amazon Reviews Electronics (2018 5-core/full or 2023 layout, auto-detected): title, brand, categories, price, text, images",
            "real",
            amazon.read_amazon,
            ("Electronics_5.json", "meta_Electronics.json"),
            default_kcore=5,
            where_to_get=amazon.WHERE_TO_GET,
            locate=amazon.locate,
        ),
        DatasetSpec(
            "yelp",
            "Yelp Open Dataset: 7M reviews, 150k businesses; name, categories, city/state, stars, attributes, photos",
            "real",
            yelp.read_yelp,
            yelp.REQUIRED_FILES,
            default_kcore=5,
            where_to_get=yelp.WHERE_TO_GET,
            locate=yelp.locate,
        ),
        DatasetSpec(
            "synthetic-yelp",
            "Simulated Yelp-format data (3,000 users, 1,000 businesses) with known factors, exposure and relevance",
            "synthetic",
            yelp.read_yelp,
            yelp.REQUIRED_FILES,
            default_kcore=5,
            generate=lambda out: write_yelp(SimulationConfig(n_users=3000, n_items=1000, mean_interactions=30), out),
            locate=yelp.locate,
        ),
        DatasetSpec(
            "synthetic-amazon",
            "Simulated Amazon-2018-format data (3,000 users, 1,000 products) with known factors, exposure and relevance",
            "synthetic",
            amazon.read_amazon,
            ("Electronics_5.json", "meta_Electronics.json"),
            default_kcore=5,
            generate=lambda out: write_amazon(SimulationConfig(n_users=3000, n_items=1000, mean_interactions=30), out),
            locate=amazon.locate,
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
    if spec.generate is not None and not (
        (spec.locate(raw) if raw.is_dir() else None) if spec.locate is not None else all((raw / f).is_file() for f in spec.required_files)
    ):
        spec.generate(raw)
    if raw_dir is None and spec.download is not None and not all((raw / f).is_file() for f in spec.required_files):
        download_dataset(name, spec.download, raw, spec.required_files)
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
