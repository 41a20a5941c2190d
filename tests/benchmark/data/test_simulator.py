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
