"""Review texts as prepared side information, aligned with the prepared interactions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmark.config import DataConfig
from benchmark.data.amazon import read_review_texts as amazon_texts
from benchmark.data.datasets import load_dataset
from benchmark.data.features import item_attributes
from benchmark.data.prepare import PreparedData
from benchmark.data.reviews import interaction_texts
from benchmark.data.simulator import SimulationConfig, write_amazon, write_yelp
from benchmark.data.yelp import read_review_texts as yelp_texts


@pytest.fixture(scope="module")
def tiny_yelp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "tiny-yelp"
    write_yelp(SimulationConfig(n_users=80, n_items=40, mean_interactions=12, seed=5), out)
    return out


def _check(data: PreparedData, texts, raw: pd.DataFrame) -> None:  # noqa: ANN001
    # the simulator writes one review per interaction: every prepared pair has its own text
    assert (len(texts.train), len(texts.valid), len(texts.test)) == (len(data.train), len(data.valid), len(data.test))
    by_pair = {(u, i, t): x for u, i, t, x in zip(raw["user"], raw["item"], raw["timestamp"], raw["text"])}
    for part in ("train", "test"):
        for row in texts.part(part).head(20).itertuples():
            original = by_pair[(data.user_ids[row.user], data.item_ids[row.item], row.timestamp)]
            assert row.text == " ".join(original.split()) and len(row.text) <= 200  # simulated reviews are short
    train_pairs = set(zip(texts.train["user"], texts.train["item"]))
    assert not train_pairs & set(zip(data.test.user.tolist(), data.test.item.tolist()))  # no held-out pair in training


def test_yelp_reviews_align_with_every_split(tiny_yelp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("synthetic-yelp", DataConfig(split="temporal"), tiny_yelp)
    texts = interaction_texts(data, tiny_yelp)
    _check(data, texts, yelp_texts(tiny_yelp))
    assert "\n" not in texts.train["text"].iloc[0]
    short = interaction_texts(data, tiny_yelp, max_chars=30)  # another length: another cache entry
    assert short.train["text"].str.len().max() <= 30 and len(short.train) == len(texts.train)
    assert all(long.startswith(cut) for long, cut in zip(texts.train["text"], short.train["text"]))  # cut at a word
    monkeypatch.setattr("benchmark.data.yelp.read_review_texts", lambda *a, **k: pytest.fail("raw reviews read again"))
    assert interaction_texts(data, tiny_yelp).test.equals(texts.test)  # the cache, not the raw files


def test_amazon_reviews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "amazon"
    write_amazon(SimulationConfig(n_users=60, n_items=30, mean_interactions=10, seed=2), raw)
    data = load_dataset("synthetic-amazon", DataConfig(kcore=0), raw)
    _check(data, interaction_texts(data, raw), amazon_texts(raw))
    assert any(item_attributes(data.items))  # categories and brands


def test_datasets_without_reviews_have_none(tiny_ml: Path) -> None:
    assert interaction_texts(load_dataset("synthetic-ml", DataConfig(), tiny_ml), tiny_ml) is None


def test_item_attributes_by_hand() -> None:
    items = pd.DataFrame({"categories": [["Pizza", "Italian"], []], "tags": [["BikeParking", "WiFi=free"], None], "brand": ["", "Sonix"]})
    assert item_attributes(items) == [["Pizza", "Italian", "BikeParking"], ["Sonix"]]
