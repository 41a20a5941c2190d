"""`data info`: the dataset card (counts, density, Gini, quantiles, time span, modality coverage)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data.datasets import load_dataset
from benchmark.data.features import gini
from tests.benchmark.data.test_features import write_ml_files


def test_gini_matches_the_design_formula() -> None:
    assert gini(np.array([5, 5, 5, 5])) == 0.0
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(3 / 4)  # (n-1)/n when one item has everything
    assert gini(np.array([1, 2, 3])) == pytest.approx(sum((2 * j - 4) * c for j, c in enumerate([1, 2, 3], 1)) / (3 * 6))
    assert gini(np.zeros(3)) == 0.0


def test_data_info_prints_and_writes_the_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw = write_ml_files(tmp_path / "raw")
    out = tmp_path / "info.json"
    assert main(["data", "info", "--data", "ml-latest-small", "--raw-dir", str(raw), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    info = json.loads(out.read_text())
    data = load_dataset("ml-latest-small", raw_dir=raw)

    # the keys that existed before the card keep working
    for key in ("n_users", "n_items", "n_interactions", "density", "split", "n_train", "n_valid", "n_test",
                "time_start", "time_end", "time_span_days", "fingerprint", "skipped_lines"):  # fmt: skip
        assert key in info and key in printed
    assert (info["n_users"], info["n_items"], info["n_interactions"]) == (data.n_users, data.n_items, data.n_interactions)
    assert info["density"] == pytest.approx(data.n_interactions / (data.n_users * data.n_items))
    assert info["fingerprint"] == data.fingerprint and info["skipped_lines"] == 0

    train_counts = np.bincount(data.train.item, minlength=data.n_items)
    assert info["popularity_gini"] == pytest.approx(gini(train_counts))
    users = np.concatenate([data.train.user, data.valid.user, data.test.user])
    per_user = np.bincount(users, minlength=data.n_users)
    for key, q in (("min", 0), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("max", 1)):
        assert info[f"interactions_per_user_{key}"] == pytest.approx(np.quantile(per_user, q))
    assert info["interactions_per_user_min"] >= 4 and info["interactions_per_user_max"] <= 11
    assert info["interactions_per_item_min"] <= info["interactions_per_item_p50"] <= info["interactions_per_item_max"]

    n = data.n_items
    assert info["coverage_title"] == 1.0
    assert info["coverage_categories"] == pytest.approx((n - 1) / n)  # movie 1 has "(no genres listed)"
    assert info["coverage_year"] == pytest.approx((n - 1) / n) and info["coverage_numerical"] == info["coverage_year"]
    # a tag counts only when its (user, movie) pair is a training interaction dated after the tag
    train_pairs = {(int(data.user_ids[u]), int(data.item_ids[i])) for u, i in zip(data.train.user, data.train.item)}
    tagged = {m for u, m in ((1, 2), (2, 2), (3, 5), (4, 7)) if (u, m) in train_pairs}
    assert info["coverage_tags"] == pytest.approx(len(tagged) / n) and 0 < len(tagged) < 4
    assert info["coverage_image"] == 0.0
    for key in ("popularity_gini", "interactions_per_item_p75", "coverage_tags"):
        assert key in printed


def test_data_info_counts_local_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw = write_ml_files(tmp_path / "raw", n_items=12)
    (raw / "images").mkdir()
    for movie in (2, 3):
        Image.new("RGB", (4, 4)).save(raw / "images" / f"{movie}.png")
    out = tmp_path / "info.json"
    assert main(["data", "info", "--data", "ml-latest-small", "--raw-dir", str(raw), "--output", str(out)]) == 0
    info = json.loads(out.read_text())
    assert info["coverage_image"] == pytest.approx(2 / info["n_items"])
