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


# --- the preparation against its definition ------------------------------------------------

import pandas as pd  # noqa: E402

from benchmark.data import splits, tables  # noqa: E402
from benchmark.data.raw import RawData  # noqa: E402


def _raw(user: object, item: object, ts: object, rating: object = None, items: pd.DataFrame | None = None) -> RawData:
    user, item, ts = np.asarray(user), np.asarray(item), np.asarray(ts, dtype=np.int64)
    rating = np.full(len(user), 4.0, dtype=np.float32) if rating is None else np.asarray(rating, dtype=np.float32)
    return RawData(user, item, ts, rating, pd.DataFrame(index=pd.Index([], name="raw_id")) if items is None else items)


def _build(raw: RawData, **config: object) -> prepare.PreparedData:
    kcore = config.pop("default_kcore", 0)
    return prepare.build(raw, DataConfig(**config), name="t", source="synthetic", fp="x", default_kcore=kcore)


def test_build_on_a_hand_checked_fixture() -> None:
    # file order; (b, x) repeats, its earlier review (row 4) counts; (a, y) repeats later (row 8)
    rows = [("b", "x", 5), ("a", "y", 3), ("b", "y", 5), ("a", "x", 1), ("b", "x", 2), ("a", "z", 3), ("c", "z", 9), ("b", "z", 7), ("a", "y", 8)]
    data = _build(_raw(*zip(*rows)))
    assert data.stats["duplicates_removed"] == 2
    assert data.user_ids.tolist() == ["a", "b", "c"] and data.item_ids.tolist() == ["y", "x", "z"]  # first kept appearance
    # per user chronological, ties (a: y and z at 3; b: x and y at 5, x dropped) in file order
    expected = {"train": ([0, 1, 2], [1, 1, 2], [1, 2, 9]), "valid": ([0, 1], [0, 0], [3, 5]), "test": ([0, 1], [2, 2], [3, 7])}
    for part, (user, item, ts) in expected.items():
        log = getattr(data, part)
        for got, want in ((log.user, user), (log.item, item), (log.timestamp, ts)):
            assert got.dtype == np.int64 and got.tolist() == want


def _reference(raw: RawData, config: DataConfig, default_kcore: int = 0) -> dict[str, object]:
    """The preparation written the direct way (factorize, chronological unique, k-core loop,
    lexsort): what ``build`` must reproduce exactly."""
    keep = np.ones(len(raw), dtype=bool) if config.min_rating is None else raw.rating >= config.min_rating
    user_raw, item_raw, ts = raw.user[keep], raw.item[keep], raw.timestamp[keep]
    if user_raw.dtype.kind in "iu":
        user_raw = user_raw.astype(np.int64)
    if item_raw.dtype.kind in "iu":
        item_raw = item_raw.astype(np.int64)
    user_code, user_uniques = pd.factorize(user_raw)
    item_code, item_uniques = pd.factorize(item_raw)
    kept = np.ones(len(user_code), dtype=bool)
    if (config.repeats or "first") == "first":
        chrono = np.argsort(ts, kind="stable")
        _, first = np.unique(user_code[chrono] * (item_code.max() + 1) + item_code[chrono], return_index=True)
        kept = np.zeros(len(chrono), dtype=bool)
        kept[chrono[first]] = True
    n_duplicates = int((~kept).sum())
    k = default_kcore if config.kcore is None else config.kcore
    while k > 1:
        users, items = user_code[kept], item_code[kept]
        ok = kept & (np.bincount(users, minlength=len(user_uniques))[user_code] >= k) & (np.bincount(items, minlength=len(item_uniques))[item_code] >= k)
        if ok.sum() == kept.sum():
            break
        kept = ok
    user, used_users = pd.factorize(user_code[kept])
    item, used_items = pd.factorize(item_code[kept])
    stamp = ts[kept]
    order = np.lexsort((np.arange(len(user)), stamp, user))
    user, item, stamp = user[order], item[order], stamp[order]
    n_users = len(used_users)
    if config.split == "loo":
        label = splits.leave_one_out(user, n_users)
    elif config.split == "ratio":
        label = splits.ratio(user, n_users, config.valid_fraction, config.test_fraction)
    else:
        label = splits.temporal(stamp, config.valid_fraction, config.test_fraction)[0]
    out: dict[str, object] = {"user_ids": user_uniques[used_users], "item_ids": item_uniques[used_items], "duplicates": n_duplicates}
    for part, code in (("train", splits.TRAIN), ("valid", splits.VALID), ("test", splits.TEST)):
        out[part] = (user[label == code], item[label == code], stamp[label == code])
    return out


def _random_raw(seed: int, kind: str) -> RawData:
    rng = np.random.default_rng(seed)
    n_users, n_items, n = int(rng.integers(20, 60)), int(rng.integers(10, 40)), int(rng.integers(400, 1500))
    user = rng.zipf(1.6, n) % n_users
    item = rng.zipf(1.4, n) % n_items
    ts = rng.integers(1_000, 1_000 + int(rng.integers(5, 400)), n)  # many ties, many repeated pairs
    rating = rng.integers(1, 11, n) / 2
    if kind == "str":
        user = np.array([f"U{u:03d}x" * (1 + u % 3) for u in user])  # different lengths
        item = np.array([f"I{i}" for i in item])
    elif kind == "int32":
        user, item = (user * 7919 + 13).astype(np.int32), (item * 104_729).astype(np.int32)
    elif kind == "sparse":  # ids too spread out for a lookup table, some negative
        user, item = user.astype(np.int64) * 10**12 - 5 * 10**12, item.astype(np.int64) * 3 * 10**9
    return _raw(user, item, ts, rating, pd.DataFrame({"title": [f"t{i}" for i in np.unique(item)]}, index=pd.Index(np.unique(item), name="raw_id")))


CONFIGS = [
    {}, {"kcore": 3}, {"kcore": 2, "split": "temporal"}, {"split": "ratio"}, {"min_rating": 3.0, "kcore": 2},
    {"repeats": "keep"}, {"repeats": "keep", "kcore": 4, "split": "ratio"}, {"min_rating": 2.5, "split": "temporal"},
]  # fmt: skip


@pytest.mark.parametrize("kind", ["int64", "int32", "str", "sparse"])
@pytest.mark.parametrize("config", CONFIGS, ids=[",".join(f"{k}={v}" for k, v in c.items()) or "defaults" for c in CONFIGS])
def test_build_equals_the_direct_definition(kind: str, config: dict[str, object]) -> None:
    for seed in range(3):
        raw = _random_raw(seed, kind)
        cfg = DataConfig(**config)
        try:
            want = _reference(raw, cfg)
        except Exception as exc:  # e.g. the temporal cuts coincide: build must refuse the same way
            with pytest.raises(type(exc)):
                _build(raw, **config)
            continue
        got = _build(raw, **config)
        assert got.stats["duplicates_removed"] == want["duplicates"]
        assert got.user_ids.dtype == want["user_ids"].dtype and got.user_ids.tolist() == want["user_ids"].tolist()
        assert got.item_ids.dtype == want["item_ids"].dtype and got.item_ids.tolist() == want["item_ids"].tolist()
        assert (got.n_users, got.n_items) == (len(want["user_ids"]), len(want["item_ids"]))
        for part in ("train", "valid", "test"):
            log = getattr(got, part)
            for got_column, want_column in zip((log.user, log.item, log.timestamp), want[part]):
                assert got_column.dtype == np.int64
                np.testing.assert_array_equal(got_column, want_column)
        assert got.items["raw_id"].tolist() == want["item_ids"].tolist()
        assert got.items["title"].tolist() == [f"t{i}" for i in want["item_ids"]]


def test_int32_reader_ids_prepare_like_int64_ids() -> None:
    raw64 = _random_raw(5, "int64")
    raw32 = RawData(raw64.user.astype(np.int32), raw64.item.astype(np.int32), raw64.timestamp, raw64.rating, raw64.items)
    a, b = _build(raw64, kcore=2), _build(raw32, kcore=2)
    assert b.user_ids.dtype == np.int64 and b.item_ids.dtype == np.int64
    np.testing.assert_array_equal(a.user_ids, b.user_ids)
    for part in ("train", "valid", "test"):
        for col in ("user", "item", "timestamp"):
            np.testing.assert_array_equal(getattr(getattr(a, part), col), getattr(getattr(b, part), col))
    assert a.items.equals(b.items)


def test_user_time_order_is_a_stable_lexsort() -> None:
    rng = np.random.default_rng(1)
    for n, users, span in ((1, 1, 1), (1000, 30, 5), (5000, 2000, 10**9)):
        user = rng.integers(0, users, n).astype(np.int32)
        ts = rng.integers(-span, span, n)
        np.testing.assert_array_equal(prepare._user_time_order(user, ts), np.lexsort((np.arange(n), ts, user)))
    big = np.array([0, 2**40, 1, 2**40]), np.array([7, 7, -(2**62), 2**62])  # keys that do not fit: the lexsort fallback
    np.testing.assert_array_equal(prepare._user_time_order(*big), np.lexsort((np.arange(4), big[1], big[0])))


# --- streamed CSV ------------------------------------------------------------------------------


COLUMNS = {"userId": tables.INT, "movieId": tables.INT, "rating": tables.FLOAT, "timestamp": tables.INT}


def _ratings_csv(path: Path, rows: int, big_id_at: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    user, item = rng.integers(1, 5000, rows), rng.integers(1, 90_000, rows)
    if big_id_at is not None:
        item[big_id_at] = 2**33
    rating, ts = rng.integers(1, 11, rows) / 2, rng.integers(800_000_000, 1_600_000_000, rows)
    lines = "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in zip(user, item, rating, ts))
    path.write_text("userId,movieId,rating,timestamp\n" + lines)
    return path


@pytest.mark.parametrize("big_id_at", [None, 0, 4_000])
def test_streamed_csv_equals_the_table_reader(big_id_at: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _ratings_csv(tmp_path / "ratings.csv", 5_000, big_id_at)
    monkeypatch.setattr(tables, "STREAM_BLOCK", 4096)  # many blocks: an id beyond int32 arrives late
    table, _ = tables.read_csv(path, COLUMNS)
    monkeypatch.setattr(tables, "read_csv", lambda *a, **k: pytest.fail("a regular file is streamed, not read whole"))
    arrays, skipped = tables.read_csv_arrays(path, COLUMNS, narrow=("userId", "movieId"), float32=("rating",))
    assert skipped == 0 and len(arrays["userId"]) == 5_000
    assert arrays["userId"].dtype == np.int32 and arrays["rating"].dtype == np.float32 and arrays["timestamp"].dtype == np.int64
    assert arrays["movieId"].dtype == (np.int32 if big_id_at is None else np.int64)  # int32 only where every id fits
    for name in COLUMNS:
        expected = table.column(name).to_numpy()
        np.testing.assert_array_equal(arrays[name], expected.astype(np.float32) if name == "rating" else expected)


def test_streamed_csv_errors_are_the_table_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.errors import DataFormatError

    monkeypatch.setattr(tables, "STREAM_BLOCK", 4096)
    path = _ratings_csv(tmp_path / "ratings.csv", 2_000)
    lines = path.read_text().splitlines(keepends=True)
    lines[1500] = "7,,3.5,1000\n"  # an empty required value, line 1501, in a late block
    path.write_text("".join(lines))
    with pytest.raises(DataFormatError, match="movieId") as info:
        tables.read_csv_arrays(path, COLUMNS, narrow=("userId", "movieId"))
    assert info.value.line == 1501 and str(path) in str(info.value)
    arrays, skipped = tables.read_csv_arrays(path, COLUMNS, narrow=("userId", "movieId"), on_bad_line="skip")
    assert skipped == 1 and len(arrays["userId"]) == 1_999 and arrays["userId"].dtype == np.int32
