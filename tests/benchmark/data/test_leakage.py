"""The leakage rules of DESIGN.md: user tags only from training pairs within the user's
training period; whole-period item fields never reach any consumer. Checked on what a
model is given (`features --dump-text`, the prepared items, the feature arrays)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data import amazon, yelp
from benchmark.data.datasets import load_dataset
from benchmark.data.features import categorical_columns, numerical_columns
from tests.conftest import SHARED_DATA

ML_SMALL = SHARED_DATA / "ml-latest-small"


def _dump(tmp_path: Path, data: str, raw: Path, *extra: str) -> pd.DataFrame:
    out = tmp_path / f"dump-{data}.tsv"
    assert main(["features", "--data", data, "--raw-dir", str(raw), "--dump-text", str(out), *extra]) == 0
    return pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)


# --- MovieLens tags --------------------------------------------------------------------------


def _write_tagged_movielens(folder: Path) -> Path:
    """4 users x 5 movies, one rating a day per user (user u rates movies u..u+4 mod 6); tags:
    'goodtag' on a training pair before the user's last training event, 'testpairtag' on the
    user's test pair, 'latetag' on a training pair after the user's test event, 'outsidetag' on
    a movie the user never rated, 'validtag' on the validation pair."""
    folder.mkdir(parents=True, exist_ok=True)
    day = 86_400
    ratings, order = [], {}
    for u in range(1, 5):
        movies = [(u + j) % 6 + 1 for j in range(5)]
        order[u] = movies
        ratings += [f"{u},{m},4.0,{1_000_000 + j * day}" for j, m in enumerate(movies)]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(ratings) + "\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(f"{m},Movie {m} (2000),Drama" for m in range(1, 7)) + "\n")
    m = order[1]  # user 1: train m[0..2], validation m[3], test m[4]; last training event at day 2
    tags = [
        f"1,{m[0]},goodtag,{1_000_000 + day}",
        f"1,{m[4]},testpairtag,{1_000_000 + 4 * day}",
        f"1,{m[1]},latetag,{1_000_000 + 4 * day + 5}",
        f"1,{[x for x in range(1, 7) if x not in m][0]},outsidetag,{1_000_000}",
        f"1,{m[3]},validtag,{1_000_000 + 3 * day}",
    ]
    (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n" + "\n".join(tags) + "\n")
    return folder


def test_dump_text_shows_only_tags_of_training_pairs_within_the_training_period(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw = _write_tagged_movielens(tmp_path / "raw")
    dump = _dump(tmp_path, "ml-latest-small", raw)
    assert list(dump.columns[:3]) == ["item", "raw_id", "text"] and len(dump) == 6
    everything = "\n".join(dump.astype(str).agg(" ".join, axis=1))
    assert "goodtag" in everything
    for planted in ("testpairtag", "latetag", "outsidetag", "validtag"):
        assert planted not in everything, planted
    data = load_dataset("ml-latest-small", raw_dir=raw)
    assert data.stats["user_text_rows"] == {"kept": 1, "dropped": 4}


def test_temporal_split_keeps_only_tags_before_the_validation_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    raw = _write_tagged_movielens(tmp_path / "raw")
    config = DataConfig(split="temporal", valid_fraction=0.2, test_fraction=0.2)
    data = load_dataset("ml-latest-small", config, raw)
    cut = data.stats["valid_cut"]
    kept = {tag for tags in data.items["tags"] for tag in tags}
    # goodtag (day 1) is before the cut (day 3); every other planted tag is on a held-out or
    # unrated pair, or after the cut
    assert cut == 1_000_000 + 3 * 86_400 and kept == {"goodtag"}


def test_real_ml_latest_small_tags_follow_the_rule() -> None:
    """On the real files: 238 of 3,683 tag rows come from pairs that are not training
    interactions (15 of them, on 7 pairs, the test pair of the tagging user); 6 more, on training pairs, are
    dated after the user's last training event. Recomputed here from the raw CSVs and the
    reference split, independently of the suite's preparation."""
    if not (ML_SMALL / "tags.csv").is_file():
        pytest.skip("ml-latest-small not found")
    tags = pd.read_csv(ML_SMALL / "tags.csv")
    ratings = pd.read_csv(ML_SMALL / "ratings.csv")
    split = pd.read_csv(SHARED_DATA.parent / "reference" / "splits" / "ml-latest-small.loo_split.tsv", sep="\t")
    held = pd.concat([split.rename(columns={"valid_item_id": "movieId"})[["user_id", "movieId"]],
                      split.rename(columns={"test_item_id": "movieId"})[["user_id", "movieId"]]]).rename(columns={"user_id": "userId"})  # fmt: skip
    train = ratings.merge(held.assign(held=True), on=["userId", "movieId"], how="left")
    train = train[train["held"].isna()]
    last = train.groupby("userId")["timestamp"].max()
    on_train = tags.merge(train[["userId", "movieId"]].drop_duplicates(), on=["userId", "movieId"], how="left", indicator=True)
    outside = on_train["_merge"] == "left_only"
    test_pairs = tags.merge(split.rename(columns={"user_id": "userId", "test_item_id": "movieId"})[["userId", "movieId"]], on=["userId", "movieId"])
    late = ~outside & (on_train["timestamp"].to_numpy() > last.reindex(on_train["userId"]).to_numpy())
    n_test_pairs = len(test_pairs.drop_duplicates(["userId", "movieId"]))
    assert (len(tags), int(outside.sum()), n_test_pairs, len(test_pairs), int(late.sum())) == (3_683, 238, 7, 15, 6)

    data = load_dataset("ml-latest-small", raw_dir=ML_SMALL)
    assert data.stats["user_text_rows"] == {"kept": 3_683 - 238 - 6, "dropped": 244}
    allowed = tags[~outside.to_numpy() & ~late]
    expected = allowed.assign(tag=allowed["tag"].str.strip().str.lower()).groupby("movieId")["tag"].agg(lambda v: list(dict.fromkeys(v)))
    got = {m: list(v) for m, v in zip(data.item_ids.tolist(), data.items["tags"])}  # lists, or arrays once reloaded from the cache
    assert {m: got[m] for m in expected.index} == expected.to_dict()
    assert sum(len(v) for v in got.values()) == sum(len(v) for v in expected)


# --- whole-period item fields -----------------------------------------------------------------

PLANTED = 987_654  # a number no honest field of the fixtures holds


def _write_amazon_2018(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reviews = [{"overall": 4.0, "reviewerID": f"U{u}", "asin": f"I{i}", "unixReviewTime": 1000 + 10 * u + i} for u in range(6) for i in range(5)]
    meta = [{"asin": f"I{i}", "title": f"Thing {i}", "category": ["Electronics"], "price": "$5.00",
             "rank": f">#{PLANTED:,} in Electronics", "also_buy": [f"ALSOBUY{PLANTED}"], "also_view": [f"ALSOVIEW{PLANTED}"]}
            for i in range(5)]  # fmt: skip
    (folder / "Electronics_5.json").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    (folder / "meta_Electronics.json").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return folder


def _write_amazon_2023(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reviews = [{"rating": 4.0, "user_id": f"U{u}", "parent_asin": f"P{i}", "timestamp": (1000 + 10 * u + i) * 1000, "text": "ok", "title": "t"}
               for u in range(6) for i in range(5)]  # fmt: skip
    meta = [{"parent_asin": f"P{i}", "title": f"Thing {i}", "categories": ["Electronics"], "price": 5.0,
             "average_rating": 4.987654, "rating_number": PLANTED} for i in range(5)]  # fmt: skip
    (folder / "Electronics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    (folder / "meta_Electronics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return folder


def _write_amazon_2014(folder: Path) -> Path:
    """2014 metadata lines are Python literals; salesRank and related hold the planted number."""
    folder.mkdir(parents=True, exist_ok=True)
    reviews = [{"overall": 4.0, "reviewerID": f"U{u}", "asin": f"I{i}", "unixReviewTime": 1000 + 10 * u + i, "helpful": [0, 0]}
               for u in range(6) for i in range(5)]  # fmt: skip
    meta = [{"asin": f"I{i}", "title": f"Thing {i}", "categories": [["Musical Instruments", "Guitars"]], "price": 5.0,
             "salesRank": {"Musical Instruments": PLANTED},
             "related": {"also_bought": [f"ALSOBUY{PLANTED}"], "also_viewed": [f"ALSOVIEW{PLANTED}"], "bought_together": [f"TOGETHER{PLANTED}"]}}
            for i in range(5)]  # fmt: skip
    (folder / "reviews_Musical_Instruments_5.json").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    (folder / "meta_Musical_Instruments.json").write_text("".join(repr(m) + "\n" for m in meta))
    return folder


def _write_yelp(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reviews = [{"review_id": f"R{u}{b}", "user_id": f"U{u}", "business_id": f"B{b}", "stars": 4.0, "text": "good",
                "date": f"2019-01-{u + 1:02d} 10:00:0{b}"} for u in range(6) for b in range(5)]  # fmt: skip
    businesses = [{"business_id": f"B{b}", "name": f"Place {b}", "city": "Reno", "state": "NV", "categories": "Bars, Pizza",
                   "attributes": None, "stars": 4.987654, "review_count": PLANTED, "is_open": 0} for b in range(5)]  # fmt: skip
    (folder / yelp.BUSINESS).write_text("".join(json.dumps(b) + "\n" for b in businesses))
    (folder / yelp.REVIEW).write_text("".join(json.dumps(r) + "\n" for r in reviews))
    return folder


LAYOUTS = {
    "amazon-2018": ("amazon-electronics", _write_amazon_2018, ("rank", "also_buy", "also_view")),
    "amazon-2023": ("amazon-electronics", _write_amazon_2023, ("average_rating", "rating_number")),
    "amazon-2014": ("amazon-musical-instruments", _write_amazon_2014, ("salesRank", "related")),
    "yelp": ("yelp", _write_yelp, ("stars", "review_count", "is_open")),
}
CASES = [(layout, field) for layout, (_, _, fields) in LAYOUTS.items() for field in fields]


@pytest.mark.parametrize(("layout", "field"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_whole_period_field_reaches_no_consumer(layout: str, field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    dataset, write, _ = LAYOUTS[layout]
    raw = write(tmp_path / "raw")
    assert field in (amazon.WHOLE_PERIOD_FIELDS if dataset.startswith("amazon") else yelp.WHOLE_PERIOD_FIELDS)
    data = load_dataset(dataset, DataConfig(kcore=0), raw)
    assert data.n_items == 5
    names = {field, "sales_rank", "salesRank"} if field in ("rank", "salesRank") else {field}
    if field == "related":
        names |= {"also_bought", "also_viewed", "bought_together"}
    assert not names & set(data.items.columns)
    assert not names & set(numerical_columns(data.items)) and not names & set(categorical_columns(data.items))
    dump = _dump(tmp_path, dataset, raw, "--set", "kcore=0")
    text = "\n".join(dump.astype(str).agg(" ".join, axis=1))
    assert "987654" not in text.replace(",", "") and "4.98" not in text
    assert all(str(PLANTED) not in str(v) for v in data.items.to_numpy().ravel())
    assert not np.isin(list(names), list(dump.columns)).any()
