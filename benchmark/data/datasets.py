"""The dataset registry: names, where their raw files live, how they are read.

Raw files are read from ``--raw-dir`` if given, else ``$BENCHMARK_DATA/<name>/``, else
``<cache>/raw/<name>/``. Synthetic datasets are written there by the simulator on first use.
Besides the registered names, ``amazon-<category>`` names any Amazon review category
(``get_dataset`` builds its spec; the name is canonical in lower case with hyphens).

Prepared data are labelled ``synthetic`` when the dataset is, and also when the raw folder
holds what the simulator writes beside its raw files (``SIMULATOR_MARKERS``): simulated
files read under a real dataset's name are still simulated, in the run record and at
``submit``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmark.config import DataConfig
from benchmark.data.names import AMAZON_PREFIX, DATASET_NAMES, REGISTERED, amazon_category, canonical_name  # noqa: F401 (re-exported)
from benchmark.data import amazon, movielens, prepare, s3rec, yelp
from benchmark.data.download import ML_25M, ML_LATEST_SMALL, Download, download_dataset
from benchmark.data.raw import RawData
from benchmark.data.simulator import SimulationConfig, write_amazon, write_movielens, write_yelp
from benchmark.data.truth import prepared_truth, truth_files
from benchmark.errors import ENVIRONMENT_ERRNOS, BenchmarkError, cannot_write, reading


# What benchmark.data.simulator writes beside the raw files (its ground truth and a note):
# never found beside published data.
SIMULATOR_MARKERS = ("SIMULATION.txt", "ground_truth.npz", "heldout.parquet")


def simulator_markers(raw: Path, files: list[Path] | None = None) -> list[Path]:
    """The simulator's marker files in ``raw`` or beside any of ``files``."""
    folders = sorted({Path(raw), *(Path(f).parent for f in files or [])})
    return [folder / name for folder in folders for name in SIMULATOR_MARKERS if (folder / name).exists()]


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
    default_repeats: Literal["first", "keep"] = "first"  # DataConfig.repeats when it is None
    has_timestamps: bool = True  # False: only each user's order is known (S3-Rec files); loo only
    # item fields the raw files compute over the whole period (leakage; DESIGN.md validity rules):
    # the reader never puts them into the items table, so no feature, prompt or snippet sees them
    whole_period_fields: tuple[str, ...] = ()
    # per-interaction review texts (raw_dir, on_bad_line) -> DataFrame user, item, timestamp, text
    # [, summary] in raw ids: prepared side information (benchmark.data.reviews); None: no text
    read_texts: Callable[[Path, str], object] | None = None
    # with locate: why nothing was found in raw_dir (what was looked for, what is there); default: required_files
    missing: Callable[[Path], str] | None = None

    def raw_files(self, raw_dir: Path) -> list[Path]:
        if self.locate is not None:
            found = self.locate(raw_dir) if raw_dir.is_dir() else None
            if found is None:
                hint = f" {self.where_to_get}" if self.where_to_get else ""
                what = self.missing(raw_dir) if self.missing is not None else f"raw files ({', '.join(self.required_files)}) not found in {raw_dir}."
                raise BenchmarkError(
                    f"dataset {self.name!r}: {what}{hint} "
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
_S3REC = (
    "These are the S3-Rec benchmark files (https://github.com/RUCAIBox/CIKM2020-S3Rec, data/), also shipped by ICLRec, "
    "DuoRec and others: put {name}.txt (and {name}_item2attributes.json, {name}_items.tsv when you have them) in the raw folder."
)


def _s3rec(name: str, file: str, description: str) -> DatasetSpec:
    return DatasetSpec(
        name, description, "real",
        lambda raw_dir, on_bad_line: s3rec.read_s3rec(raw_dir, file, on_bad_line),
        (f"{file}.txt",), (f"{file}_item2attributes.json", f"{file}_items.tsv"),
        where_to_get=_S3REC.format(name=file), default_repeats="keep", has_timestamps=s3rec.HAS_TIMESTAMPS,
    )  # fmt: skip


def _amazon(name: str, category: str, description: str) -> DatasetSpec:
    """A real Amazon review category (any layout; the metadata file is optional)."""
    stem = amazon.file_stem(category)
    return DatasetSpec(
        name, description, "real",
        functools.partial(amazon.read_amazon, category=category),
        tuple(template.format(stem) for template in amazon.REVIEW_NAMES),
        tuple(template.format(stem) for template in amazon.META_NAMES),
        default_kcore=5,  # the published 5-core files; the full files are filtered to the same
        where_to_get=amazon.where_to_get(category),
        locate=functools.partial(amazon.locate, category=category),
        whole_period_fields=amazon.WHOLE_PERIOD_FIELDS,
        read_texts=functools.partial(amazon.read_review_texts, category=category),
        missing=functools.partial(amazon.missing_files, category=category),
    )  # fmt: skip


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
        _amazon(
            "amazon-electronics", "Electronics",
            "Amazon Reviews Electronics (2014, 2018 5-core/full or 2023 layout, auto-detected): title, brand, categories, price, text, images",
        ),
        _amazon(
            "amazon-musical-instruments", "Musical_Instruments",
            "Amazon Reviews Musical Instruments (2014 5-core: 10k reviews, 1.4k users, 900 items; any layout): review texts; "
            "metadata optional",
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
            whole_period_fields=yelp.WHOLE_PERIOD_FIELDS,
            read_texts=yelp.read_review_texts,
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
            whole_period_fields=yelp.WHOLE_PERIOD_FIELDS,
            read_texts=yelp.read_review_texts,
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
            whole_period_fields=amazon.WHOLE_PERIOD_FIELDS,
            read_texts=amazon.read_review_texts,
        ),
        _s3rec("s3rec-beauty", "Beauty", "Amazon 2014 Beauty 5-core in the S3-Rec sequence format (22k users, 12k items): brand, categories, title words"),
        _s3rec("s3rec-sports", "Sports_and_Outdoors", "Amazon 2014 Sports and Outdoors 5-core, S3-Rec format (36k users, 18k items): category attributes, title words"),
        _s3rec("s3rec-toys", "Toys_and_Games", "Amazon 2014 Toys and Games 5-core, S3-Rec format (19k users, 12k items): attributes"),
        _s3rec("s3rec-yelp", "Yelp", "Yelp (2019 reviews) 5-core, S3-Rec format (30k users, 20k businesses): categories, name words"),
    )
}


@functools.lru_cache(maxsize=None)
def _amazon_category_spec(name: str) -> DatasetSpec:
    category = amazon_category(name)
    assert category is not None
    stem = amazon.file_stem(category)
    return _amazon(name, category, f"Amazon Reviews {stem.replace('_', ' ')} (2014, 2018 or 2023 layout, auto-detected; metadata optional)")


def get_dataset(name: str) -> DatasetSpec:
    """The spec of a registered name, or of ``amazon-<category>`` for any category."""
    name = canonical_name(name)
    if name in DATASETS:
        return DATASETS[name]
    if amazon_category(name) is not None:
        return _amazon_category_spec(name)
    raise BenchmarkError(f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)}, or amazon-<category> for any Amazon review category")





def default_raw_dir(name: str) -> Path:
    base = os.environ.get("BENCHMARK_DATA")
    return Path(base) / name if base else prepare.cache_root() / "raw" / name


def load_dataset(
    name: str, config: DataConfig | None = None, raw_dir: str | Path | None = None, *, rehash: bool = False
) -> prepare.PreparedData:
    """Prepared data for ``name``: from the cache when the fingerprint matches, else prepared now.

    ``rehash`` hashes the raw files again instead of trusting the checksum memo (see
    ``prepare.file_sha256``); it is not part of the fingerprint. The simulator's ground truth
    in the raw folder counts among the raw files; prepared, it is ``data.truth``.
    """
    spec = get_dataset(name)
    name = spec.name
    config = config or DataConfig()
    raw = Path(raw_dir) if raw_dir is not None else default_raw_dir(name)
    with reading(raw):  # an unreadable raw folder or file: one paragraph naming it
        files = _raw_files(spec, raw, download=raw_dir is None)
        truth_paths = truth_files(raw)
        fp = prepare.fingerprint(name, files + truth_paths, config, rehash=rehash)
        # decided from the folder read now, not from the cache: identical files may sit in a
        # folder with the simulator's markers and in one without
        source = "synthetic" if spec.source == "synthetic" or simulator_markers(raw, files) else "real"
    target = prepare.cache_dir(name, fp)
    if prepare.is_cached(target):
        data = prepare.load(target)
        data.source = source
        return data
    with reading(raw):
        raw_data = spec.read(raw, config.on_bad_line)
    data = prepare.build(
        raw_data, config, name=name, source=source, fp=fp, default_kcore=spec.default_kcore,
        default_repeats=spec.default_repeats, has_timestamps=spec.has_timestamps,
    )  # fmt: skip
    with reading(raw):
        aligned = prepared_truth(raw, data.user_ids, data.item_ids) if truth_paths else None
    prepare.save(data, target, truth=aligned)
    return data


def _raw_files(spec: DatasetSpec, raw: Path, *, download: bool) -> list[Path]:
    """The raw files of ``spec`` in ``raw``: generated (synthetic) or downloaded first when missing."""
    if spec.generate is not None and not (
        (spec.locate(raw) if raw.is_dir() else None) if spec.locate is not None else all((raw / f).is_file() for f in spec.required_files)
    ):
        try:
            spec.generate(raw)
        except OSError as exc:
            if exc.errno not in ENVIRONMENT_ERRNOS:
                raise
            raise cannot_write(exc.filename or raw, exc, "the simulated raw files") from None
    if download and spec.download is not None and not all((raw / f).is_file() for f in spec.required_files):
        download_dataset(spec.name, spec.download, raw, spec.required_files)
    return spec.raw_files(raw)
