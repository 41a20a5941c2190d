"""The simulator: real formats read by the real readers, determinism, ground truth, `data synth`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data.amazon import read_amazon
from benchmark.data.datasets import load_dataset
from benchmark.data.movielens import read_movielens
from benchmark.data.simulator import SimulationConfig, load_ground_truth, simulate, write_amazon, write_movielens, write_yelp
from benchmark.data.yelp import read_yelp

CFG = SimulationConfig(n_users=120, n_items=80, mean_interactions=15, seed=5)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formats")
    write_movielens(CFG, root / "ml")
    write_yelp(CFG, root / "yelp")
    write_amazon(CFG, root / "amazon")
    write_amazon(CFG, root / "amazon-2023", layout="2023", compress=True)
    return {p.name: p for p in root.iterdir()}


READERS = {"ml": read_movielens, "yelp": read_yelp, "amazon": read_amazon, "amazon-2023": read_amazon}


@pytest.mark.parametrize("fmt", list(READERS))
def test_every_format_is_read_by_the_real_reader(fmt: str, written: dict[str, Path]) -> None:
    raw = READERS[fmt](written[fmt])
    sim = simulate(CFG)
    assert len(raw) == len(sim["user"]) and raw.skipped_lines == 0
    assert len(np.unique(raw.user)) == CFG.n_users
    assert set(np.unique(raw.item)) <= set(raw.items.index)
    for column in ("title", "categories"):
        assert column in raw.items.columns
    assert raw.items["title"].str.len().gt(0).all()
    if fmt != "ml":
        assert {"price", "categories"} <= set(raw.items.columns)
        assert set(np.unique(raw.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    gt = load_ground_truth(written[fmt])
    assert set(np.unique(raw.user)) == set(gt.user_ids.tolist()) and set(gt.item_ids.tolist()) == set(raw.items.index)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    cfg = SimulationConfig(n_users=40, n_items=30, seed=9)
    for writer, name in ((write_yelp, "yelp_academic_dataset_review.json"), (write_amazon, "meta_Electronics.json")):
        writer(cfg, tmp_path / "a")
        writer(cfg, tmp_path / "b")
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        writer(SimulationConfig(n_users=40, n_items=30, seed=10), tmp_path / "c")
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


PINNED_CFG = SimulationConfig(n_users=60, n_items=40, mean_interactions=8, seed=7)


def content_digest(path: Path) -> str:
    """SHA-256 (16 hex digits) of what a file holds: its bytes; decompressed for .gz; the arrays
    of a .npz and the values of a .parquet (their containers' bytes vary with library versions)."""
    import gzip
    import hashlib

    digest = hashlib.sha256()
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            for key in sorted(npz.files):
                digest.update(f"{key}|{npz[key].dtype.str}|{npz[key].shape}|".encode() + np.ascontiguousarray(npz[key]).tobytes())
    elif path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        digest.update(repr(frame.dtypes.to_dict()).encode() + frame.to_csv(index=False, float_format="%.17g").encode())
    else:
        digest.update(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    return digest.hexdigest()[:16]


def written_digests(root: Path) -> dict[str, dict[str, str]]:
    writers = {
        "ml": lambda out: write_movielens(PINNED_CFG, out), "yelp": lambda out: write_yelp(PINNED_CFG, out),
        "amazon": lambda out: write_amazon(PINNED_CFG, out), "amazon-2023": lambda out: write_amazon(PINNED_CFG, out, layout="2023", compress=True),
    }  # fmt: skip
    for name, write in writers.items():
        write(root / name)
    return {name: {p.name: content_digest(p) for p in sorted((root / name).iterdir())} for name in writers}

# Content digests of the files written for PINNED_CFG. The simulator's output is part of the
# benchmark (synthetic results are compared across versions): a change here is a change of
# every synthetic dataset, to be made on purpose, never by a refactoring.
PINNED_DIGESTS = {
    "ml": {
        "SIMULATION.txt": "b306900770e4bd9f", "ground_truth.npz": "fc53187338a3e51a", "heldout.parquet": "053b7511afc11ff9",
        "links.csv": "8a1c8343cf58cd4a", "movies.csv": "06675ad46b301427", "ratings.csv": "fd5dbc66cc0f5163",
        "tags.csv": "e7ea8236fe89d466",
    },
    "yelp": {
        "SIMULATION.txt": "d63a41d91472d623", "ground_truth.npz": "e0a1a040e0d884a7", "heldout.parquet": "39cba122446f7e20",
        "yelp_academic_dataset_business.json": "18321c518b7a5d1b", "yelp_academic_dataset_review.json": "b1aefb4f959c8e53",
        "yelp_academic_dataset_user.json": "910751a3ba26f8bb",
    },
    "amazon": {
        "Electronics_5.json": "23dc218818cd52a2", "SIMULATION.txt": "08d78917a4973c19", "ground_truth.npz": "b46b2f77fad6e5c2",
        "heldout.parquet": "09103ea9117c971e", "meta_Electronics.json": "bf4ebf3cf0481a3d",
    },
    "amazon-2023": {
        "Electronics.jsonl.gz": "41a0fc811a582bcf", "SIMULATION.txt": "08d78917a4973c19", "ground_truth.npz": "3ce5904eadd2bd09",
        "heldout.parquet": "e4f069192f9ebef9", "meta_Electronics.jsonl.gz": "1a99df3ad2c463db",
    },
}  # fmt: skip


def test_written_files_match_their_pinned_digests(tmp_path: Path) -> None:
    assert written_digests(tmp_path) == PINNED_DIGESTS


def test_gzip_files_do_not_depend_on_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    cfg = SimulationConfig(n_users=30, n_items=20, mean_interactions=6, seed=2)
    write_amazon(cfg, tmp_path / "a", layout="2023", compress=True)
    later = time.time() + 86_400
    monkeypatch.setattr(time, "time", lambda: later)  # a gzip header stamped with the clock would change
    write_amazon(cfg, tmp_path / "b", layout="2023", compress=True)
    for name in ("Electronics.jsonl.gz", "meta_Electronics.jsonl.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_exact_size_and_popularity_skew() -> None:
    sim = simulate(SimulationConfig(n_users=500, n_items=300, n_interactions=12_345, seed=1))
    assert abs(len(sim["user"]) - 12_345) <= 10  # only unresolvable repeats of very heavy users are dropped
    pairs = sim["user"] * 300 + sim["item"]
    assert len(np.unique(pairs)) == len(pairs)  # a user consumes an item once
    counts = np.bincount(sim["item"], minlength=300)
    top = np.argsort(-sim["item_popularity"])[:30]
    assert counts[top].mean() > 2 * counts.mean()  # popular items are exposed (and consumed) more
    assert np.all(np.diff(sim["timestamp"])[np.diff(sim["user"]) == 0] > 0)  # time increases within a user


def test_ground_truth_matches_the_split(written: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    gt = load_ground_truth(written["yelp"])
    data = load_dataset("synthetic-yelp", DataConfig(kcore=0), raw_dir=written["yelp"])
    test_pairs = set(zip(data.user_ids[data.test.user], data.item_ids[data.test.item]))
    heldout = gt.heldout
    truth_test = heldout[heldout["split"] == "test"]
    assert set(zip(truth_test["user_id"], truth_test["item_id"])) == test_pairs  # the leave-one-out test pairs
    assert heldout["propensity"].between(0, 1, inclusive="right").all()
    random = heldout[heldout["split"] == "random"]
    assert not random["observed"].any() and truth_test["observed"].all()
    # consumed items are, on average, more relevant and more exposed than random unobserved ones
    assert truth_test["expected_rating"].mean() > random["expected_rating"].mean() + 0.5
    assert truth_test["propensity"].mean() > random["propensity"].mean()
    recomputed = gt.propensity(truth_test["user_id"], truth_test["item_id"])
    np.testing.assert_allclose(recomputed, truth_test["propensity"])


def test_side_information_carries_signal(written: dict[str, Path]) -> None:
    """Items sharing a category are closer in the latent space than random pairs."""
    raw = read_amazon(written["amazon"])
    gt = load_ground_truth(written["amazon"])
    factors = gt.item_factors[pd.Index(gt.item_ids).get_indexer(raw.items.index)]
    second = raw.items["categories"].map(lambda c: c[1])
    same = second.to_numpy()[:, None] == second.to_numpy()[None, :]
    sim = factors @ factors.T
    off = ~np.eye(len(sim), dtype=bool)
    assert sim[same & off].mean() > sim[~same].mean() + 1.0
    corr = np.corrcoef(np.log(raw.items["price"].dropna()), factors[raw.items["price"].notna().to_numpy(), 0])[0, 1]
    assert corr > 0.5


def test_data_synth_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth"
    argv = ["data", "synth", "--like", "amazon", "--users", "60", "--items", "40", "--interactions", "600", "--layout", "2023", "--gzip", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "Electronics.jsonl.gz").is_file() and (out / "heldout.parquet").is_file()
    assert "synthetic-amazon" in capsys.readouterr().out
    assert len(read_amazon(out)) >= 590
    before = (out / "Electronics.jsonl.gz").stat().st_mtime_ns
    data = load_dataset("synthetic-amazon", DataConfig(kcore=0), raw_dir=out)  # the 2023 layout is found, not regenerated
    assert data.source == "synthetic" and (out / "Electronics.jsonl.gz").stat().st_mtime_ns == before


@pytest.mark.slow
def test_sasrec_learns_the_simulated_signal(tmp_path: Path) -> None:
    """`run --model sasrec --data synthetic-yelp` clearly beats Pop (the simulator's signal is learnable)."""
    import json

    ndcg = {}
    for model in ("pop", "sasrec"):
        out = tmp_path / model
        assert main(["run", "--model", model, "--data", "synthetic-yelp", "--max-epochs", "12", "--out", str(out), "--no-progress"]) == 0
        (record,) = out.glob("runs/*/result.json")
        ndcg[model] = json.loads(record.read_text())["metrics"]["test"]["ndcg@10"]
    assert ndcg["sasrec"] > 1.5 * ndcg["pop"]
