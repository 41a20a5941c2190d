"""The prepared-data cache: keyed by the fingerprint, written atomically, reloaded identically;
orphans of killed preparations removed; the checksum memo and --rehash; permission errors;
``build`` against the direct definition of the preparation; streamed CSV columns."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data import prepare, splits, tables
from benchmark.data.datasets import load_dataset
from benchmark.data.raw import RawData
from tests.benchmark.data.unprivileged import ChildRaised, call_unprivileged, cli_unprivileged


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


# --- temporary folders of killed preparations ------------------------------------------

_KILLED_WHILE_WRITING = """
import os, signal, sys
from benchmark.data import prepare
from benchmark.data.datasets import load_dataset

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer or a closed terminal would

prepare.pd.DataFrame.to_parquet = killed
load_dataset("synthetic-ml", raw_dir=sys.argv[1])
"""


def test_a_killed_preparation_leaves_no_orphan_after_the_next_one(tiny_ml: Path, own_cache: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", _KILLED_WHILE_WRITING, str(tiny_ml)], cwd=repo, env=dict(os.environ),
                          capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    prepared = own_cache / "prepared" / "synthetic-ml"
    orphans = [p for p in prepared.iterdir() if p.name.startswith(".")]
    assert len(orphans) == 1 and (orphans[0] / "interactions.npz").is_file()  # killed mid-write
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)  # the next preparation of the dataset
    assert [p.name for p in prepared.iterdir()] == [data.fingerprint[:20]]


def test_orphan_rules_dead_owner_or_older_than_an_hour(own_cache: Path) -> None:
    folder = own_cache / "prepared" / "some-data"
    host = socket.gethostname()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    made = {
        "dead owner": f".abc.tmp+{host}+{dead_pid}+x1",
        "live owner": f".abc.tmp+{host}+{os.getpid()}+x2",
        "other host, recent": f".abc.tmp+elsewhere.example+{dead_pid}+x3",
        "other host, old": f".abc.tmp+elsewhere.example+{os.getpid()}+x4",
        "older name format, old": ".abc.k2j3h4",
        "older name format, recent": ".abc.q9w8e7",
        "a prepared cache": "0123456789abcdef0123",
    }
    for name in made.values():
        (folder / name).mkdir(parents=True)
    two_hours_ago = time.time() - 2 * 3600
    for key in ("other host, old", "older name format, old", "a prepared cache"):
        os.utime(folder / made[key], (two_hours_ago, two_hours_ago))
    removed = {p.name for p in prepare.remove_orphans(folder)}
    assert removed == {made["dead owner"], made["other host, old"], made["older name format, old"]}
    assert sorted(p.name for p in folder.iterdir()) == sorted(set(made.values()) - removed)


# --- the checksum memo and --rehash ------------------------------------------------------


def _edit_in_place_keeping_size_and_mtime(path: Path) -> None:
    """Change one rating digit; restore the modification time (as `touch -r` or some copies do)."""
    before = path.stat()
    content = path.read_bytes()
    first_rating = content.index(b"\n") + 1
    line_end = content.index(b"\n", first_rating)
    fields = content[first_rating:line_end].split(b",")
    fields[2] = b"1.0" if fields[2] != b"1.0" else b"2.0"
    edited = content[:first_rating] + b",".join(fields) + content[line_end:]
    assert len(edited) == len(content) and edited != content
    path.write_bytes(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size


def test_memo_trusts_size_and_mtime_and_rehash_does_not(tiny_ml: Path, tmp_path: Path, own_cache: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    before = load_dataset("synthetic-ml", raw_dir=raw)
    old_sha = prepare.file_sha256(raw / "ratings.csv")
    _edit_in_place_keeping_size_and_mtime(raw / "ratings.csv")
    fresh_sha = hashlib.sha256((raw / "ratings.csv").read_bytes()).hexdigest()
    assert fresh_sha != old_sha
    # the shortcut: same size and mtime, so the memo answers and the old cache is reused
    assert prepare.file_sha256(raw / "ratings.csv") == old_sha
    assert load_dataset("synthetic-ml", raw_dir=raw).fingerprint == before.fingerprint
    # --rehash reads the file again, prepares anew and refreshes the memo
    assert prepare.file_sha256(raw / "ratings.csv", rehash=True) == fresh_sha
    assert prepare.file_sha256(raw / "ratings.csv") == fresh_sha
    _edit_in_place_keeping_size_and_mtime(raw / "ratings.csv")  # edit again: the memo is stale once more
    assert main(["data", "prepare", "--data", "synthetic-ml", "--raw-dir", str(raw)]) == 0
    stale = capsys.readouterr().out
    assert main(["data", "prepare", "--data", "synthetic-ml", "--raw-dir", str(raw), "--rehash"]) == 0
    rehashed = capsys.readouterr().out
    raw_files = ("ratings.csv", "movies.csv", "tags.csv", "links.csv", "ground_truth.npz", "heldout.parquet")
    expected = prepare.fingerprint("synthetic-ml", [raw / f for f in raw_files], DataConfig(), rehash=True)
    assert f"fingerprint {expected[:16]}" in rehashed and f"fingerprint {expected[:16]}" not in stale


def test_run_rehash_refreshes_the_memo_before_the_run(tiny_ml: Path, tmp_path: Path, own_cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from benchmark import runner
    from benchmark.errors import BenchmarkError

    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    load_dataset("synthetic-ml", raw_dir=raw)
    _edit_in_place_keeping_size_and_mtime(raw / "ratings.csv")
    seen: list[str] = []

    def stop(cfg: object, *args: object, **kwargs: object) -> None:
        seen.append(load_dataset("synthetic-ml", raw_dir=raw).fingerprint)  # what the run would read
        raise BenchmarkError("stopped before training")

    monkeypatch.setattr(runner, "run", stop)
    argv = ["run", "--model", "pop", "--data", "synthetic-ml", "--raw-dir", str(raw), "--no-progress"]
    assert main(argv) == 2 and main(argv + ["--rehash"]) == 2
    fresh = hashlib.sha256((raw / "ratings.csv").read_bytes()).hexdigest()
    assert seen[0] != seen[1] and prepare.file_sha256(raw / "ratings.csv") == fresh



# --- the simulator's ground truth: prepared side information --------------------------------


def _reindexed(raw: Path, data: prepare.PreparedData) -> dict[str, np.ndarray]:
    """The simulator's arrays in ``raw``, re-indexed here to ``data``'s internal ids."""
    from benchmark.data.simulator import load_ground_truth

    truth = load_ground_truth(raw)
    users = pd.Index(truth.user_ids).get_indexer(data.user_ids)
    items = pd.Index(truth.item_ids).get_indexer(data.item_ids)
    assert (users >= 0).all() and (items >= 0).all()
    out = {name: getattr(truth, name)[users] for name in ("user_factors", "user_drift", "slates")}
    out.update({name: getattr(truth, name)[items] for name in ("item_factors", "item_popularity", "exposure")})
    return out


def test_synthetic_truth_survives_the_cache_round_trip(tiny_ml: Path, own_cache: Path) -> None:
    from benchmark.data.simulator import load_ground_truth

    config = DataConfig(kcore=12)  # drops users and items: the truth must follow the internal ids, not the raw rows
    fresh = load_dataset("synthetic-ml", config, raw_dir=tiny_ml)
    raw_truth = load_ground_truth(tiny_ml)
    assert fresh.n_users < len(raw_truth.user_ids) and fresh.n_items < len(raw_truth.item_ids)
    assert {"truth.npz", "truth_heldout.parquet"} <= {p.name for p in fresh.cache_path.iterdir()}
    cached = load_dataset("synthetic-ml", config, raw_dir=tiny_ml)
    assert cached.cache_path == fresh.cache_path and cached._truth is None  # read from the cache on first use
    expected = _reindexed(tiny_ml, fresh)
    for data in (fresh, cached):
        truth = data.truth
        for name, values in expected.items():
            np.testing.assert_array_equal(getattr(truth, name), values, err_msg=name)
        assert (truth.slate, truth.affinity_mean, truth.affinity_std, truth.rating_center) == (
            raw_truth.slate, raw_truth.affinity_mean, raw_truth.affinity_std, raw_truth.rating_center)  # fmt: skip
        np.testing.assert_array_equal(truth.user_ids, fresh.user_ids)
        held, raw_held = truth.heldout, raw_truth.heldout
        known = raw_held["user_id"].isin(fresh.user_ids) & raw_held["item_id"].isin(fresh.item_ids)
        assert 0 < len(held) == known.sum() < len(raw_held)
        np.testing.assert_array_equal(fresh.user_ids[held["user"]], held["user_id"])
        np.testing.assert_array_equal(fresh.item_ids[held["item"]], held["item_id"])
        np.testing.assert_array_equal(held["propensity"], raw_held.loc[known, "propensity"])
        # the truth's own methods agree with the raw truth's, in raw ids
        np.testing.assert_allclose(truth.propensity(held["user_id"], held["item_id"]), held["propensity"])


def test_ground_truth_files_are_raw_files_of_the_fingerprint(tiny_ml: Path, tmp_path: Path, own_cache: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    before = load_dataset("synthetic-ml", raw_dir=raw)
    held = pd.read_parquet(raw / "heldout.parquet")
    held.loc[0, "propensity"] = 0.5  # another truth beside the same interactions
    held.to_parquet(raw / "heldout.parquet", index=False)
    after = load_dataset("synthetic-ml", raw_dir=raw)
    assert after.fingerprint != before.fingerprint and after.cache_path != before.cache_path
    assert after.truth.heldout.loc[after.truth.heldout["user_id"] == held.loc[0, "user_id"], "propensity"].iloc[0] == 0.5


def test_real_data_has_no_truth(tmp_path: Path, own_cache: Path, tiny_ml: Path) -> None:
    import dataclasses

    real = tmp_path / "real"
    real.mkdir()
    for name in ("ratings.csv", "movies.csv"):  # the interactions without the simulator's files beside them
        shutil.copy(tiny_ml / name, real / name)
    data = load_dataset("ml-latest-small", raw_dir=real)
    assert data.source == "real" and data.truth is None
    assert not {"truth.npz", "truth_heldout.parquet"} & {p.name for p in data.cache_path.iterdir()}
    simulated = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    assert simulated.truth is not None and dataclasses.replace(simulated, source="real").truth is None


def test_a_truth_of_other_users_is_not_kept(tiny_ml: Path, tmp_path: Path, own_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_ml, raw)
    with np.load(raw / "ground_truth.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["user_ids"] = arrays["user_ids"] + 10_000  # ids of another simulation
    np.savez_compressed(raw / "ground_truth.npz", **arrays)
    with caplog.at_level("WARNING", logger="benchmark.data.truth"):
        data = load_dataset("synthetic-ml", raw_dir=raw)
    assert data.source == "synthetic" and data.truth is None
    assert "does not cover the prepared users and items" in caplog.text


# --- permissions -------------------------------------------------------------------------


def test_read_only_cache_folder_is_one_paragraph(tiny_ml: Path, own_cache: Path) -> None:
    own_cache.mkdir()
    own_cache.chmod(0o555)
    try:
        code, err = cli_unprivileged(["data", "prepare", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml)])
    finally:
        own_cache.chmod(0o755)
    assert code == 2 and err.count("\n") == 1
    assert f"{own_cache / 'prepared'}: cannot write the prepared data there (Permission denied)" in err
    assert "BENCHMARK_CACHE" in err and not (own_cache / "prepared").exists()


def test_read_only_cache_still_serves_what_it_holds(tiny_ml: Path, own_cache: Path) -> None:
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    (own_cache / "checksums.json").unlink()  # the memo must be rewritten, and cannot be
    for folder in (own_cache, *own_cache.rglob("*")):
        if folder.is_dir():
            folder.chmod(0o555)
    try:
        loaded = call_unprivileged(lambda: load_dataset("synthetic-ml", raw_dir=tiny_ml).fingerprint)
    finally:
        for folder in (own_cache, *own_cache.rglob("*")):
            if folder.is_dir():
                folder.chmod(0o755)
    assert loaded == data.fingerprint


def test_unreadable_prepared_cache_is_one_paragraph(tiny_ml: Path, own_cache: Path) -> None:
    data = load_dataset("synthetic-ml", raw_dir=tiny_ml)
    cached = prepare.cache_dir("synthetic-ml", data.fingerprint)
    (cached / "interactions.npz").chmod(0)
    with pytest.raises(ChildRaised) as info:
        call_unprivileged(lambda: load_dataset("synthetic-ml", raw_dir=tiny_ml))
    assert info.value.kind == "BenchmarkError"
    assert f"{cached / 'interactions.npz'}: cannot read the prepared data (Permission denied)" in info.value.message


# --- the preparation against its definition ------------------------------------------------


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


def _valid_ranges() -> dict[str, tables.Check]:
    from benchmark.data.raw import RATING_RANGE, TIMESTAMP_RANGE, bad_ratings, bad_timestamps

    return {"rating": tables.Check(bad_ratings, RATING_RANGE), "timestamp": tables.Check(bad_timestamps, TIMESTAMP_RANGE)}


# line 1501 (in a late block) replaced -> words in the error: read_csv's verdict on every value
STREAMED_BAD_LINES = {
    "NaN rating": ("7,8,NaN,1000\n", "a finite number in column 'rating'"),
    "infinite rating": ("7,8,inf,1000\n", "a finite number in column 'rating'"),
    "rating above 5": ("7,8,5.5,1000\n", "a finite rating from 0 to 5 in column 'rating'"),
    "negative rating": ("7,8,-0.5,1000\n", "a finite rating from 0 to 5 in column 'rating'"),
    "timestamp in milliseconds": ("7,8,3.5,1588687728923\n", "a time from 1970-01-01 to 2100-01-01 (Unix seconds 0 to 4102444799) in column 'timestamp'"),
    "negative timestamp": ("7,8,3.5,-1\n", "a time from 1970-01-01 to 2100-01-01 (Unix seconds 0 to 4102444799) in column 'timestamp'"),
    "null token as an id": ("NA,8,3.5,1000\n", "a 64-bit integer in column 'userId'"),
    "missing field": ("7,8,3.5\n", "4 comma-separated fields"),
}


@pytest.mark.parametrize("case", list(STREAMED_BAD_LINES))
def test_streamed_csv_honours_the_valid_ranges(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.errors import DataFormatError

    monkeypatch.setattr(tables, "STREAM_BLOCK", 4096)
    path = _ratings_csv(tmp_path / "ratings.csv", 2_000)
    lines = path.read_text().splitlines(keepends=True)
    lines[1500], words = STREAMED_BAD_LINES[case]
    path.write_text("".join(lines))
    checks = _valid_ranges()
    with pytest.raises(DataFormatError, match=re.escape("line 1501: expected " + words)):
        tables.read_csv_arrays(path, COLUMNS, narrow=("userId", "movieId"), float32=("rating",), checks=checks)
    with pytest.raises(DataFormatError, match=re.escape("line 1501: expected " + words)):
        tables.read_csv(path, COLUMNS, checks=checks)
    arrays, skipped = tables.read_csv_arrays(path, COLUMNS, narrow=("userId", "movieId"), float32=("rating",), on_bad_line="skip", checks=checks)
    table, table_skipped = tables.read_csv(path, COLUMNS, on_bad_line="skip", checks=checks)
    assert skipped == table_skipped == 1 and len(arrays["userId"]) == 1_999
    for name in COLUMNS:
        expected = table.column(name).to_numpy()
        np.testing.assert_array_equal(arrays[name], expected.astype(np.float32) if name == "rating" else expected)


@pytest.mark.parametrize("layout", ["CR line endings", "blank lines", "range boundaries"])
def test_streamed_csv_reads_irregular_but_valid_files_like_the_table_reader(layout: str, tmp_path: Path) -> None:
    path = _ratings_csv(tmp_path / "ratings.csv", 300)
    text = path.read_text()
    if layout == "CR line endings":
        header, body = text.split("\n", 1)
        text = header + "\n" + body.replace("\n", "\r")  # data lines ended by CR alone
    elif layout == "blank lines":
        text = text.replace("\n", "\n\n", 40)
    else:
        text += "1,2,0,0\n1,3,5,4102444799\n"
    path.write_text(text)
    checks = _valid_ranges()
    table, _ = tables.read_csv(path, COLUMNS, checks=checks)
    arrays, skipped = tables.read_csv_arrays(path, COLUMNS, narrow=("userId", "movieId"), float32=("rating",), checks=checks)
    assert skipped == 0 and len(arrays["userId"]) == table.num_rows == 300 + 2 * (layout == "range boundaries")
    for name in COLUMNS:
        expected = table.column(name).to_numpy()
        np.testing.assert_array_equal(arrays[name], expected.astype(np.float32) if name == "rating" else expected)
