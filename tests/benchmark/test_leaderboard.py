"""`submit` and `leaderboard render`: verified entries on the official ml-latest-small split,
one data identity per board, refusals of hostile submissions with clear messages (simulated
or changed raw files, dirty code, look-alike names), several seeds per entry, and pages that
never run injected markup and that an auditor can use (headless Chromium)."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark import leaderboard
from benchmark.leaderboard import submission as leaderboard_submission
from benchmark.cli import main
from benchmark.config import config_hash
from benchmark.data import prepare
from benchmark.data.datasets import DATASETS, SIMULATOR_MARKERS, load_dataset
from benchmark.data.prepare import PREPARATION_VERSION
from benchmark.data.simulator import SimulationConfig, write_movielens
from benchmark.errors import BenchmarkError
from benchmark.leaderboard import name_key, validate_meta
from benchmark.predictions import evaluate_predictions_file
from benchmark.records import RunRecord

DATASET = "ml-latest-small"
INJECTED = '<script>window.__pwned=1;document.title="pwned"</script><img src=x onerror="window.__pwned=2">'
ROOT = Path(__file__).resolve().parents[2]
CLEAN = {"git_sha": "0123abcd" * 5, "dirty": False, "version": "0.1.0"}

REAL = [name for name, spec in DATASETS.items() if spec.source == "real"]


@pytest.fixture(autouse=True)
def _clean_suite(monkeypatch) -> None:
    """A working tree under development is dirty: the verifying suite's own state is set here
    and tested in one test (test_dirty_code_versions_are_refused)."""
    monkeypatch.setattr(leaderboard_submission, "code_version", lambda: dict(CLEAN))


@pytest.fixture(scope="module")
def data(ml_small: Path):
    return load_dataset(DATASET, raw_dir=ml_small)


def pop_lists(data: Any, k: int = 20, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Most-popular top-k per test user (noise > 0: popularity plus Gaussian noise, one draw per
    seed), seen (train + valid) items skipped; raw ids."""
    counts = np.bincount(data.train.item, minlength=data.n_items).astype(float)
    if noise:
        counts = counts + np.random.default_rng(seed).normal(0, noise, len(counts))
    order = np.argsort(-counts, kind="stable")
    seen: dict[int, set[int]] = {}
    for part in (data.train, data.valid):
        for u, i in zip(part.user.tolist(), part.item.tolist()):
            seen.setdefault(u, set()).add(i)
    rows = []
    for u in np.unique(data.test.user).tolist():
        mine = seen.get(u, set())
        top = [i for i in order[: k + len(mine)].tolist() if i not in mine][:k]
        rows += [(data.user_ids[u], data.item_ids[i], r) for r, i in enumerate(top, start=1)]
    return pd.DataFrame(rows, columns=["user", "item", "rank"])


def write_tsv(frame: pd.DataFrame, path: Path, header: bool = True) -> Path:
    frame.to_csv(path, sep="\t", index=False, header=header)
    return path


def write_trec(frame: pd.DataFrame, path: Path) -> Path:
    path.write_text("".join(f"{u} Q0 {i} {r} {1 / r!r} mine\n" for u, i, r in frame.itertuples(index=False)))
    return path


def meta_dict(data: Any, **changes: Any) -> dict[str, Any]:
    meta = {
        "model": "Pop (test)",
        "authors": ["llm4rec-bench team"],
        "config": {"k": 20, "note": "most popular in training"},
        "dataset_fingerprint": data.fingerprint,
        "protocol": {"split": "loo", "eval_protocol": "full"},
        "paper_url": "https://example.org/papers/pop",
        "dataset": DATASET,
    }
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


def write_meta(path: Path, meta: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    return path


def submit(predictions: Path | list[Path], meta: Path, board_dir: Path, ml_small: Path, *extra: str, data: str = DATASET) -> list[str]:
    files = predictions if isinstance(predictions, list) else [predictions]
    return ["submit", *[a for p in files for a in ("--predictions", str(p))], "--data", data, "--meta", str(meta), "--raw-dir", str(ml_small),
            "--leaderboard-dir", str(board_dir), *extra]  # fmt: skip


def board(board_dir: Path, dataset: str = DATASET) -> dict[str, Any]:
    return json.loads((board_dir / f"{dataset}.json").read_text())


@pytest.fixture(scope="module")
def pop_file(data: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tsv(pop_lists(data), tmp_path_factory.mktemp("pop") / "pop.tsv")


def _refused(argv: list[str], capsys, *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, (text, err)
    return err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- submit -----------------------------------------------------------------------------


def test_valid_submission_gets_recomputed_metrics_and_duplicates_are_refused(data, pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    forged = {"ndcg@10": 0.99, "hr@10": 1.0}  # claims are never trusted
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data, metrics=forged))
    assert main(submit(pop_file, meta, board_dir, ml_small, "--output", str(tmp_path / "entry.json"))) == 0
    out = capsys.readouterr().out
    assert "accepted: Pop (test)" in out and "claimed metrics ignored; 2 differ" in out and ", 1 seed, id " in out
    assert sorted(p.name for p in board_dir.iterdir() if not p.name.startswith(".")) == [f"{DATASET}.json"]
    saved = board(board_dir)
    assert saved["dataset"] == DATASET and saved["schema"] == 2 and len(saved["entries"]) == 1
    entry = saved["entries"][0]
    assert json.loads((tmp_path / "entry.json").read_text()) == entry

    # the same engine as `evaluate --predictions`
    engine = evaluate_predictions_file(pop_file, DATASET, {}, raw_dir=str(ml_small))["metrics"]
    assert set(entry["metrics"]) == set(engine)
    for key, value in engine.items():
        assert entry["metrics"][key] == pytest.approx(value, abs=1e-12), key
    # and an independent check: one held-out item per user (leave-one-out)
    lists = pop_lists(data)
    test_item = dict(zip(data.user_ids[data.test.user].tolist(), data.item_ids[data.test.item].tolist()))
    hit_rank = {u: r for u, i, r in lists.itertuples(index=False) if test_item[u] == i}
    n = len(test_item)
    assert entry["metrics"]["hr@10"] == pytest.approx(sum(r <= 10 for r in hit_rank.values()) / n, abs=1e-12)
    assert entry["metrics"]["ndcg@10"] == pytest.approx(sum(1 / math.log2(r + 1) for r in hit_rank.values() if r <= 10) / n, abs=1e-12)
    assert entry["metrics"]["ndcg@10"] != forged["ndcg@10"] and 0 < entry["metrics"]["hr@10"] < 0.2

    # provenance: the board's declared data identity, the preparation recorded per entry
    declared = {name: _sha256(ml_small / name) for name in ("links.csv", "movies.csv", "ratings.csv", "tags.csv")}
    assert declared == leaderboard.DECLARED_RAW_FILES[DATASET]
    assert saved["data"] == {"identity": leaderboard.data_identity(DATASET, declared), "raw_files": declared,
                             "fixed_by": "declared in benchmark.leaderboard.board"}  # fmt: skip
    assert entry["data_identity"] == saved["data"]["identity"] and entry["preparation_version"] == PREPARATION_VERSION
    assert entry["dataset_fingerprint"] == data.fingerprint and entry["data_source"] == "real" and entry["verified"] is True
    assert entry["protocol"] == {"split": "loo", "eval_protocol": "full", "ks": [5, 10, 20]}
    assert entry["config_hash"] == config_hash({"k": 20, "note": "most popular in training"})
    assert entry["n_test_users"] == n and entry["n_users_missing"] == 0
    assert entry["n_seeds"] == 1 and "metrics_std" not in entry
    assert entry["seeds"] == [{"seed": None, "predictions_sha256": entry["predictions_sha256"], "format": "tsv", "metrics": entry["metrics"], "n_users_missing": 0}]
    assert entry["paper_url"] == "https://example.org/papers/pop" and entry["code_url"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry["date"]) and entry["suite_version"] == CLEAN
    assert "metrics" not in entry["config"] and "claimed" not in json.dumps(entry)

    # duplicate: same model, authors (any case/order) and config
    again = write_meta(tmp_path / "again.yaml", meta_dict(data, model="POP (TEST)", authors=["LLM4Rec-bench team"]))
    assert main(submit(pop_file, again, board_dir, ml_small)) == 2
    assert "same model, authors and config (hash" in capsys.readouterr().err
    # duplicate: the same lists under another name, reformatted (no header, rows shuffled), or as a TREC run
    shuffled = write_tsv(lists.sample(frac=1.0, random_state=1), tmp_path / "shuffled.tsv", header=False)
    renamed = write_meta(tmp_path / "renamed.yaml", meta_dict(data, model="Not Pop", config={"k": 20}))
    for path in (shuffled, write_trec(lists, tmp_path / "pop.trec")):
        assert main(submit(path, renamed, board_dir, ml_small)) == 2
        assert "the same top-K lists are already on the leaderboard: Pop (test)" in capsys.readouterr().err
    assert len(board(board_dir)["entries"]) == 1

    # a different model is accepted and ranked by NDCG@10
    top10 = write_tsv(lists[lists["rank"] <= 10], tmp_path / "top10.tsv")
    other = write_meta(tmp_path / "other.yaml", meta_dict(data, model="Pop top-10", config={"k": 10}))
    assert main(submit(top10, other, board_dir, ml_small)) == 0
    entries = board(board_dir)["entries"]
    assert [e["model"] for e in entries] == ["Pop (test)", "Pop top-10"]  # equal NDCG@10, name order
    assert entries[1]["metrics"]["ndcg@10"] == pytest.approx(entries[0]["metrics"]["ndcg@10"], abs=1e-12)
    assert entries[1]["metrics"]["hr@20"] < entries[0]["metrics"]["hr@20"]  # no ranks past 10


def test_forged_fingerprint_and_other_protocols_are_refused(data, pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    meta = write_meta(tmp_path / "fp.yaml", meta_dict(data, dataset_fingerprint="0" * 64))
    _refused(submit(pop_file, meta, board_dir, ml_small), capsys, "dataset fingerprint mismatch", "00000000", data.fingerprint[:16], "export-split")
    meta = write_meta(tmp_path / "temporal.yaml", meta_dict(data, protocol={"split": "temporal", "eval_protocol": "full"}))
    _refused(submit(pop_file, meta, board_dir, ml_small), capsys, "protocol mismatch", "split 'temporal'", "split 'loo'")
    meta = write_meta(tmp_path / "sampled.yaml", meta_dict(data, protocol={"split": "loo", "eval_protocol": "sampled"}))
    _refused(submit(pop_file, meta, board_dir, ml_small), capsys, "protocol mismatch", "eval_protocol 'sampled'")
    meta = write_meta(tmp_path / "other-data.yaml", meta_dict(data, dataset="ml-25m"))
    _refused(submit(pop_file, meta, board_dir, ml_small), capsys, "the predictions are for ml-25m, but --data is ml-latest-small")
    # raw files changed (the last rating dropped): not the board's data, whatever the meta says
    changed = tmp_path / "changed-raw"
    shutil.copytree(ml_small, changed)
    ratings = (changed / "ratings.csv").read_text().splitlines()
    (changed / "ratings.csv").write_text("\n".join(ratings[:-1]) + "\n")
    meta = write_meta(tmp_path / "ok.yaml", meta_dict(data))
    _refused(submit(pop_file, meta, board_dir, changed), capsys, "these are not the board's data", "ratings.csv: SHA-256")
    assert not (board_dir / f"{DATASET}.json").exists()


def test_predictions_for_another_split_or_malformed_are_refused(data, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data))
    # made for the validation split: each user's validation item ranked first (masked at test time)
    valid = pd.DataFrame({"user": data.user_ids[data.valid.user], "item": data.item_ids[data.valid.item], "rank": 1})
    path = write_tsv(valid, tmp_path / "valid.tsv")
    _refused(submit(path, meta, board_dir, ml_small), capsys, f"{len(valid)} items the user already interacted with before the test period", "nothing was scored")
    # a training item
    u, i = data.user_ids[data.train.user[0]], data.item_ids[data.train.item[0]]
    path = write_tsv(pd.DataFrame({"user": [u], "item": [i], "rank": [1]}), tmp_path / "train.tsv")
    _refused(submit(path, meta, board_dir, ml_small), capsys, "already interacted", f"line 2 ({u} / {i})")
    # malformed: unknown item, bad rank, missing rank, an extra column on one line
    lists = pop_lists(data).head(8).astype(str)
    lists.loc[0, "item"] = "999999999"
    lists.loc[1, "rank"] = "first"
    lists = lists.drop(index=2)  # ranks 1, 2, 4, ... left for the first user -> not 1..n
    path = write_tsv(lists, tmp_path / "bad.tsv")
    _refused(submit(path, meta, board_dir, ml_small), capsys, "unknown item: line 2 (999999999)", "not a positive integer: line 3 (first)")
    lines = path.read_text().splitlines()
    lines[5] += "\textra"
    path.write_text("\n".join(lines) + "\n")
    _refused(submit(path, meta, board_dir, ml_small), capsys, "1 lines without exactly 3 fields (user, item, rank separated by tabs): line 6 (4 fields)")
    # no test user covered at all
    path = tmp_path / "header-only.tsv"
    path.write_text("user\titem\trank\n")
    _refused(submit(path, meta, board_dir, ml_small), capsys, "none of the 610 test users has a list")
    assert not (board_dir / f"{DATASET}.json").exists()


def test_bad_meta_files_are_refused(data, pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\nauthors: x\n")
    _refused(submit(pop_file, bad, board_dir, ml_small), capsys, "is not valid YAML data")
    # data, never code: a tag that would construct an object (and run a command) is refused
    marker = tmp_path / "pwned"
    bad.write_text(f'model: !!python/object/apply:os.system ["touch {marker}"]\n')
    _refused(submit(pop_file, bad, board_dir, ml_small), capsys, "is not valid YAML data", "constructor")
    assert not marker.exists()
    bad.write_text("- just\n- a list\n")
    _refused(submit(pop_file, bad, board_dir, ml_small), capsys, "expected a YAML mapping")
    write_meta(bad, {"model": "X", "dataset_fingerprint": data.fingerprint, "extra": 1, "protocol": {"split": "loo", "eval_protocol": "full"}})
    _refused(submit(pop_file, bad, board_dir, ml_small), capsys, "missing required fields: authors, config", "unknown fields: extra")
    write_meta(bad, meta_dict(data, config={"when": "x", "deep": [[[[[[[[[[1]]]]]]]]]]}, dataset_fingerprint="abc", protocol="loo"))
    _refused(submit(pop_file, bad, board_dir, ml_small), capsys, "config: too large or too deeply nested", "dataset_fingerprint: expected the 64 hex digits", "protocol: expected a mapping")
    # a YAML alias bomb stays small in memory but would explode when walked
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    meta = meta_dict(data)
    text = yaml.safe_dump({k: v for k, v in meta.items() if k != "config"}) + "config:\n" + "".join(f"  {line}\n" for line in bomb.splitlines())
    bad.write_text(text)
    _refused(submit(pop_file, bad, board_dir, ml_small), capsys, "config: too large or too deeply nested")
    assert not (board_dir / f"{DATASET}.json").exists()


# --- provenance: one data identity per board ------------------------------------------------


def test_the_simulator_writes_exactly_its_markers(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    write_movielens(SimulationConfig(n_users=30, n_items=20, mean_interactions=5, seed=1), out)
    raw = {"ratings.csv", "movies.csv", "tags.csv", "links.csv"}
    assert {p.name for p in out.iterdir()} - raw == set(SIMULATOR_MARKERS)


def test_simulated_files_under_a_real_name_are_refused(tiny_ml: Path, tmp_path: Path, capsys) -> None:
    sim = tmp_path / "looks-real"
    shutil.copytree(tiny_ml, sim)
    fake = load_dataset(DATASET, raw_dir=sim)  # simulated files under the real dataset's name
    assert fake.source == "synthetic" and load_dataset("synthetic-ml", raw_dir=sim).source == "synthetic"
    lists = write_tsv(pop_lists(fake), tmp_path / "fake.tsv")
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(fake))  # the fingerprint of the simulated split
    board_dir = tmp_path / "boards"
    _refused(submit(lists, meta, board_dir, sim), capsys, "were written by the project's simulator (SIMULATION.txt, ground_truth.npz, heldout.parquet beside them)",
             "simulated data is never real")  # fmt: skip
    # without the markers the files look real, but they are not the board's files
    for name in SIMULATOR_MARKERS:
        (sim / name).unlink()
    unmarked = load_dataset(DATASET, raw_dir=sim)
    # the ground-truth files were raw files of the simulated data (part of its fingerprint); without them, another fingerprint
    assert unmarked.source == "real" and unmarked.fingerprint != fake.fingerprint
    err = _refused(submit(lists, meta, board_dir, sim), capsys, "these are not the board's data", "declared in benchmark.leaderboard.board")
    for name in ("links.csv", "movies.csv", "ratings.csv", "tags.csv"):
        assert f"- {name}: SHA-256 {_sha256(sim / name)[:16]}... here, {leaderboard.DECLARED_RAW_FILES[DATASET][name][:16]}... on the board" in err
    assert not board_dir.exists() or not (board_dir / f"{DATASET}.json").exists()


def test_one_changed_rating_is_refused_even_when_size_and_mtime_are_kept(data, pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(ml_small, raw)
    assert load_dataset(DATASET, raw_dir=raw).fingerprint == data.fingerprint  # the copy's checksums are now memoised
    ratings = raw / "ratings.csv"
    before = ratings.stat()
    text = ratings.read_bytes()
    assert b"\n1,1,4.0,964982703\r\n" in text  # the published file has CRLF line ends
    ratings.write_bytes(text.replace(b"\n1,1,4.0,964982703\r\n", b"\n1,1,3.0,964982703\r\n", 1))  # one line, same size
    os.utime(ratings, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert ratings.stat().st_size == before.st_size
    # the memo trusts size and mtime: an ordinary load still sees the unchanged file's fingerprint
    assert load_dataset(DATASET, raw_dir=raw).fingerprint == data.fingerprint
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data))
    board_dir = tmp_path / "boards"
    err = _refused(submit(pop_file, meta, board_dir, raw), capsys, "these are not the board's data")
    assert f"- ratings.csv: SHA-256 {_sha256(ratings)[:16]}... here, aa289ca83157595d... on the board" in err
    assert "movies.csv" not in err  # only the changed file is named
    assert not (board_dir / f"{DATASET}.json").exists()


def test_the_first_entry_fixes_an_undeclared_board(ml_small: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """ml-25m has no declared checksums (its files were not measured): the first entry fixes its
    identity. ml-latest-small's files stand in for it here; the reader is the same."""
    name = "ml-25m"
    assert name not in leaderboard.DECLARED_RAW_FILES
    data = load_dataset(name, raw_dir=ml_small)
    lists = pop_lists(data)
    board_dir = tmp_path / "boards"
    first = write_meta(tmp_path / "first.yaml", meta_dict(data, dataset=name))
    assert main(submit(write_tsv(lists, tmp_path / "pop.tsv"), first, board_dir, ml_small, data=name)) == 0
    saved = board(board_dir, name)
    files = {f: _sha256(ml_small / f) for f in ("links.csv", "movies.csv", "ratings.csv", "tags.csv")}
    assert saved["data"]["raw_files"] == files and saved["data"]["identity"] == leaderboard.data_identity(name, files)
    assert saved["data"]["fixed_by"].startswith("the first entry (Pop (test), ")
    # a file missing from the set
    partial = tmp_path / "partial"
    shutil.copytree(ml_small, partial)
    (partial / "links.csv").unlink()
    partial_data = load_dataset(name, raw_dir=partial)
    other = write_meta(tmp_path / "other.yaml", meta_dict(partial_data, dataset=name, model="Pop top-10", config={"k": 10}))
    top10 = write_tsv(lists[lists["rank"] <= 10], tmp_path / "top10.tsv")
    err = _refused(submit(top10, other, board_dir, partial, data=name), capsys, "these are not the board's data", "- links.csv: missing here (the board's files include it)")
    assert "ratings.csv" not in err
    # the suite's preparation code changes: a new fingerprint, the same data identity, the same board
    monkeypatch.setattr(prepare, "PREPARATION_VERSION", PREPARATION_VERSION + 1)
    newer = load_dataset(name, raw_dir=ml_small)
    assert newer.fingerprint != data.fingerprint
    stale = write_meta(tmp_path / "stale.yaml", meta_dict(data, dataset=name, model="Pop top-10", config={"k": 10}))
    _refused(submit(top10, stale, board_dir, ml_small, data=name), capsys, "dataset fingerprint mismatch", "another version of the suite's preparation code")
    fresh = write_meta(tmp_path / "fresh.yaml", meta_dict(newer, dataset=name, model="Pop top-10", config={"k": 10}))
    assert main(submit(top10, fresh, board_dir, ml_small, data=name)) == 0
    entries = board(board_dir, name)["entries"]
    assert [e["preparation_version"] for e in entries] == [PREPARATION_VERSION, PREPARATION_VERSION + 1]
    assert [e["dataset_fingerprint"] for e in entries] == [data.fingerprint, newer.fingerprint]
    assert {e["data_identity"] for e in entries} == {saved["data"]["identity"]}


# --- look-alike names, dirty code ---------------------------------------------------------


@pytest.mark.parametrize(
    "theirs, ours",
    [
        ("S\u0410SRec", "SASRec"),  # Cyrillic capital A
        ("SASR\u0435c", "SASRec"),  # Cyrillic small ie
        ("\uff33\uff21\uff33\uff32\uff45\uff43", "SASRec"),  # fullwidth letters
        ("\u0392\u03a1R-\u039cF", "BPR-MF"),  # Greek Beta, Rho, Mu
        ("\U0001d412\U0001d400\U0001d412\U0001d411\U0001d41e\U0001d41c", "SASRec"),  # mathematical bold letters
        ("SAS-Rec", "SASRec"),  # separators
        ("sas rec.", "SASRec"),
        ("Zoe\u0308 O'Brien", "Zoë OBrien"),  # decomposed accent, apostrophe
        ("\u0456temKNN", "ItemKNN"),  # Cyrillic i (the small letter: casefolded 'I' is 'i')
    ],
)
def test_look_alike_names_compare_equal(theirs: str, ours: str) -> None:
    assert name_key(theirs) == name_key(ours) and theirs != ours


@pytest.mark.parametrize("theirs, ours", [("SASRec+", "SASRec"), ("BPR2", "BPR"), ("GRU4Rec", "GRU5Rec"), ("LightGCN", "LightGNN")])
def test_different_names_stay_different(theirs: str, ours: str) -> None:
    assert name_key(theirs) != name_key(ours)


def _hand_board(board_dir: Path, *entries: dict[str, Any]) -> None:
    board_dir.mkdir(parents=True, exist_ok=True)
    (board_dir / f"{DATASET}.json").write_text(json.dumps({"dataset": DATASET, "schema": 2, "entries": list(entries)}))


def test_look_alike_duplicates_are_refused(data, pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    config = {"k": 20}
    _hand_board(board_dir, _entry("SASRec", 0.05, 0.09, config_hash=config_hash(config), authors=["Ann Lee", "Bo Chen"], predictions_sha256="a" * 64))
    for model, authors in (
        ("S\u0410SRec", ["Ann Lee", "Bo Chen"]),  # Cyrillic A in the model name
        ("\uff33\uff21\uff33\uff32\uff45\uff43", ["Ann Lee", "Bo Chen"]),  # fullwidth
        ("SASRec", ["B\u03bf Chen", "\u0410nn Lee"]),  # Greek omicron and Cyrillic A in the authors, order swapped
    ):
        meta = write_meta(tmp_path / "meta.yaml", meta_dict(data, model=model, authors=authors, config=config))
        _refused(submit(pop_file, meta, board_dir, ml_small), capsys, "duplicate submission: the same model, authors and config", "SASRec by Ann Lee, Bo Chen")
    assert len(board(board_dir)["entries"]) == 1
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data, model="SASRec+", authors=["Ann Lee", "Bo Chen"], config=config))
    assert main(submit(pop_file, meta, board_dir, ml_small)) == 0  # another model name: accepted
    capsys.readouterr()


def test_dirty_code_versions_are_refused(data, pop_file: Path, ml_small: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    board_dir = tmp_path / "boards"
    dirty = write_meta(tmp_path / "dirty.yaml", meta_dict(data, code={"git_sha": "abcdef1", "dirty": True, "version": "0.1.0"}))
    _refused(submit(pop_file, dirty, board_dir, ml_small), capsys, "the meta file's code version abcdef1 is dirty (uncommitted changes)")
    monkeypatch.setattr(leaderboard_submission, "code_version", lambda: {**CLEAN, "dirty": True})
    clean = write_meta(tmp_path / "clean.yaml", meta_dict(data, code={"git_sha": "abcdef1", "dirty": False}))
    _refused(submit(pop_file, clean, board_dir, ml_small), capsys, "the suite verifying this submission has uncommitted changes")
    assert not (board_dir / f"{DATASET}.json").exists()
    monkeypatch.setattr(leaderboard_submission, "code_version", lambda: dict(CLEAN))
    assert main(submit(pop_file, clean, board_dir, ml_small)) == 0
    capsys.readouterr()
    assert board(board_dir)["entries"][0]["seeds"][0]["code"] == {"git_sha": "abcdef1", "dirty": False, "version": None}


# --- several seeds ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_files(data, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three noisy-popularity lists (as by three seeds of one model); the second as a TREC run."""
    folder = tmp_path_factory.mktemp("seeds")
    files = [write_tsv(pop_lists(data, noise=30.0, seed=s), folder / f"seed{s}.tsv") for s in (0, 2)]
    files.insert(1, write_trec(pop_lists(data, noise=30.0, seed=1), folder / "seed1.trec"))
    return files


def test_several_seeds_are_scored_one_by_one(data, seed_files: list[Path], ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data, model="Noisy Pop", config={"noise": 30.0}, seeds=[7, 3, 5]))
    assert main(submit(seed_files, meta, board_dir, ml_small)) == 0
    assert "3 seeds (3, 5, 7), mean" in capsys.readouterr().out
    entry = board(board_dir)["entries"][0]
    assert entry["n_seeds"] == 3 and [s["seed"] for s in entry["seeds"]] == [3, 5, 7]  # in seed order
    assert [s["format"] for s in entry["seeds"]] == ["trec", "tsv", "tsv"]
    alone = {seed: evaluate_predictions_file(path, DATASET, {}, raw_dir=str(ml_small))["metrics"] for seed, path in zip((7, 3, 5), seed_files)}
    for s in entry["seeds"]:
        for key in ("ndcg@10", "hr@10", "coverage@10"):
            assert s["metrics"][key] == pytest.approx(alone[s["seed"]][key], abs=1e-12)
    values = {key: [alone[seed][key] for seed in (3, 5, 7)] for key in ("ndcg@10", "hr@10", "gini@10")}
    assert len({round(v, 9) for v in values["ndcg@10"]}) == 3  # three different results
    for key, v in values.items():
        assert entry["metrics"][key] == pytest.approx(float(np.mean(v)), abs=1e-12)
        assert entry["metrics_std"][key] == pytest.approx(float(np.std(v, ddof=1)), abs=1e-12) and entry["metrics_std"][key] > 0
    digests = [s["predictions_sha256"] for s in entry["seeds"]]
    assert entry["predictions_sha256"] == hashlib.sha256("\n".join(digests).encode()).hexdigest()
    # one seed's lists again, under another name: the same lists
    single = write_meta(tmp_path / "single.yaml", meta_dict(data, model="Other", config={"noise": 1}))
    _refused(submit(seed_files[1], single, board_dir, ml_small), capsys, "the same top-K lists are already on the leaderboard: Noisy Pop")


def test_seed_refusals(data, seed_files: list[Path], pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    unseeded = write_meta(tmp_path / "unseeded.yaml", meta_dict(data, config={"noise": 30.0}))
    _refused(submit(seed_files, unseeded, board_dir, ml_small), capsys, "3 predictions files but no seeds")
    two = write_meta(tmp_path / "two.yaml", meta_dict(data, config={"noise": 30.0}, seeds=[0, 1]))
    _refused(submit(seed_files, two, board_dir, ml_small), capsys, "the meta file lists 2 seeds for 3 predictions files")
    seeded_config = write_meta(tmp_path / "seeded.yaml", meta_dict(data, config={"noise": 30.0, "seed": 0}, seeds=[0, 1]))
    _refused(submit(seed_files[:2], seeded_config, board_dir, ml_small), capsys, "remove its 'seed' key")
    twice = write_meta(tmp_path / "twice.yaml", meta_dict(data, config={"noise": 30.0}, seeds=[0, 1]))
    _refused(submit([pop_file, pop_file], twice, board_dir, ml_small), capsys, "(seed 1) holds the same lists as", "(seed 0): a deterministic model is one seed")
    assert not (board_dir / f"{DATASET}.json").exists()


def _record(folder: Path, data: Any, seed: int, config: dict[str, Any], **changes: Any) -> Path:
    content = {
        "run_id": f"run-s{seed}", "model": "pop", "dataset": DATASET, "dataset_fingerprint": data.fingerprint, "status": "completed",
        "metrics": {"test": {"ndcg@10": 0.5}}, "data_source": "real", "split": "loo", "eval_protocol": "full",
        "config": {**config, "seed": seed}, "config_hash": config_hash(config), "seed": seed,
        "code": {"git_sha": "feedbeef" * 5, "dirty": False, "version": "0.1.0"},
    }  # fmt: skip
    content.update(changes)
    RunRecord.from_dict(content).write(folder / f"s{seed}")
    return folder / f"s{seed}"


def test_runs_give_seeds_and_code_versions(data, seed_files: list[Path], ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    config = {"model": "pop", "noise": 30.0}
    runs = [_record(tmp_path / "runs", data, seed, config) for seed in (0, 1, 2)]
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data, model="Noisy Pop", config={**config, "seed": 0}))  # the record's config, seed and all

    def argv(records: list[Path], meta_path: Path = meta) -> list[str]:
        return submit(seed_files, meta_path, board_dir, ml_small, *[a for r in records for a in ("--run", str(r))])

    bad = {
        "dirty": ({"code": {"git_sha": "feedbeef", "dirty": True}}, "its code version feedbeef is dirty (uncommitted changes)"),
        "failed": ({"status": "failed"}, "its status is 'failed', not 'completed'"),
        "sampled": ({"eval_protocol": "sampled"}, "its protocol is split 'loo', eval_protocol 'sampled'"),
        "synthetic": ({"data_source": "synthetic"}, "its data were synthetic"),
        "other-split": ({"dataset_fingerprint": "e" * 64}, "it was trained on data with fingerprint eeeeeeeeeeeeeeee..."),
        "other-config": ({"config_hash": "0" * 12}, "the runs have different configs"),
    }
    for name, (changes, expected) in bad.items():
        odd = _record(tmp_path / name, data, 1, config, **changes)
        _refused(argv([runs[0], odd, runs[2]]), capsys, expected)
    _refused(argv(runs[:2]), capsys, "2 --run records for 3 predictions files")
    _refused(argv([runs[0], runs[0], runs[2]]), capsys, "two runs have the same seed (0, 0, 2)")
    wrong_seeds = write_meta(tmp_path / "wrong.yaml", meta_dict(data, model="Noisy Pop", config=config, seeds=[5, 6, 7]))
    _refused(argv(runs, wrong_seeds), capsys, "the meta file's seeds [5, 6, 7] are not the runs' seeds [0, 1, 2]")
    other = write_meta(tmp_path / "other.yaml", meta_dict(data, model="Noisy Pop", config={"model": "pop", "noise": 1.0}))
    _refused(argv(runs, other), capsys, "is not the runs' config (hash")
    assert not (board_dir / f"{DATASET}.json").exists()
    assert main(argv(runs)) == 0
    capsys.readouterr()
    entry = board(board_dir)["entries"][0]
    assert entry["config"] == config and entry["config_hash"] == config_hash(config)
    assert [s["seed"] for s in entry["seeds"]] == [0, 1, 2] and all(s["code"]["git_sha"] == "feedbeef" * 5 for s in entry["seeds"])


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"model": "<script>alert(1)</script>"}, "model: only letters, digits, spaces"),
        ({"authors": ["Ann", 'Bob" onmouseover="x']}, "authors[1]: only letters"),
        ({"model": "x" * 81}, "model: must be 1 to 80 characters"),
        ({"model": " "}, "model: must be 1 to 80 characters"),
        ({"authors": []}, "authors: expected a list of 1 to 30 names"),
        ({"code_url": "javascript:alert(1)"}, "code_url: only http:// and https:// URLs are accepted (got scheme 'javascript')"),
        ({"paper_url": " JaVaScRiPt:alert(document.cookie)"}, "paper_url: only http:// and https://"),
        ({"code_url": "data:text/html,<script>alert(1)</script>"}, "(got scheme 'data')"),
        ({"code_url": "https://example.org/\"><script>"}, "code_url: contains characters that are not allowed"),
        ({"code_url": "https://user:pw@example.org/"}, "credentials"),
        ({"code_url": "https:///nohost"}, "not an absolute URL with a host"),
        ({"paper_url": "https://example.org/" + "a" * 300}, "longer than 300 characters"),
        ({"config": {"bad key!": 1}}, "config: keys must be"),
        ({"config": {"text": "a\u202eb"}}, "no control characters"),
        ({"metrics": {"ndcg@10": "high"}}, "metrics: expected a mapping of metric name to number"),
        ({"dataset": "../../etc/passwd"}, "dataset: unknown dataset"),
        ({"seeds": [0, 0]}, "seeds: a seed is listed twice"),
        ({"seeds": [0, True]}, "seeds: expected a list of 1 to 20 integer seeds"),
        ({"seeds": list(range(21))}, "seeds: expected a list of 1 to 20"),
        ({"code": {"git_sha": "xyz", "dirty": "no"}}, "code.git_sha: expected 7 to 40 lowercase hex digits"),
        ({"code": {"git_sha": "abcdef1", "dirty": "no"}}, "code.dirty: expected true or false"),
        ({"code": {"sha": "abcdef1"}}, "code: expected a mapping with some of git_sha, dirty, version"),
    ],
)
def test_meta_validation_refuses_unsafe_names_and_urls(data, changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(BenchmarkError, match="nothing was submitted") as info:
        validate_meta(meta_dict(data, **changes))
    assert expected in str(info.value)


def test_meta_validation_accepts_international_names(data) -> None:
    meta = validate_meta(meta_dict(data, model="BPR-MF (Rendle et al. 2009)", authors="Zoë O'Brien-Müller", code_url="http://example.org/a?b=1#c"))
    assert meta.authors == ["Zoë O'Brien-Müller"] and meta.model == "BPR-MF (Rendle et al. 2009)" and meta.code_url == "http://example.org/a?b=1#c"


def test_synthetic_data_and_oversize_files_are_refused(data, pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data, dataset=None))
    _refused(submit(pop_file, meta, board_dir, tmp_path / "never-written", data="synthetic-ml"), capsys,
             f"synthetic-ml is synthetic data: leaderboards rank real datasets only ({', '.join(REAL)})")  # fmt: skip
    assert not (tmp_path / "never-written").exists()  # refused before any data were generated
    big = tmp_path / "big.tsv"
    with open(big, "wb") as fh:  # sparse: no disk space used
        fh.truncate(leaderboard.MAX_PREDICTIONS_BYTES + 1)
    _refused(submit(big, meta, board_dir, ml_small), capsys, f"is {leaderboard.MAX_PREDICTIONS_BYTES + 1:,} bytes; the limit is {leaderboard.MAX_PREDICTIONS_BYTES:,} bytes")
    big_meta = write_meta(tmp_path / "big.yaml", meta_dict(data, config={"padding": ["x" * 400] * 200}))
    _refused(submit(pop_file, big_meta, board_dir, ml_small), capsys, "meta file", f"the limit is {leaderboard.MAX_META_BYTES:,} bytes")
    assert not board_dir.exists()



@pytest.mark.parametrize(
    "argv, expected", [(["submit"], "--leaderboard-dir"), (["leaderboard", "render"], "--dir DIR"), (["leaderboard", "remove"], "--id PREFIX")]
)
def test_commands_have_help(argv: list[str], expected: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "usage:" in out and expected in out


# --- render -----------------------------------------------------------------------------


def _entry(model: str, ndcg: float, hr: float, **extra: Any) -> dict[str, Any]:
    return {
        "model": model, "authors": ["suite team"], "code_url": None, "paper_url": "https://example.org/p", "config": {"lr": 0.01, "dim": 64},
        "config_hash": "abcdef012345", "dataset_fingerprint": "f" * 64, "metrics": {"ndcg@10": ndcg, "hr@10": hr, "recall@10": hr},
        "n_users_missing": 0, "date": "2026-01-02", "suite_version": {"version": "0.1.0", "git_sha": "0123456789", "dirty": False},
        "predictions_sha256": hashlib.sha256(model.encode()).hexdigest(), **extra,
    }  # fmt: skip


def _seeded(model: str, means: tuple[float, float], stds: tuple[float, float]) -> dict[str, Any]:
    """An entry over three seeds (its per-seed figures average to ``means``)."""
    seeds = [
        {"seed": s, "predictions_sha256": f"{s:x}" * 64, "format": "tsv", "metrics": {"ndcg@10": means[0] + d, "hr@10": means[1] + d, "recall@10": means[1] + d},
         "n_users_missing": 0, "code": {"git_sha": "feedbeef" * 5, "dirty": False, "version": "0.1.0"}}
        for s, d in ((1, -0.01), (2, 0.0), (3, 0.01))
    ]  # fmt: skip
    return _entry(model, means[0], means[1], seeds=seeds, n_seeds=3, metrics_std={"ndcg@10": stds[0], "hr@10": stds[1], "recall@10": stds[1]},
                  config={"lr": 0.001, "layers": [64, 32], "note": "three seeds"}, config_hash="0f0f0f0f0f0f", data_identity="d" * 64, preparation_version=4)  # fmt: skip


def write_boards(board_dir: Path, *, committed: bool = False) -> None:
    """A small board with injected strings (and, with ``committed``, the repository's own
    ml-latest-small entries: real configs and names, as an auditor sees them)."""
    board_dir.mkdir(parents=True, exist_ok=True)
    small = [
        _entry("alpha", 0.20, 0.60),
        _entry(INJECTED, 0.10, 0.40, authors=["</script><script>window.__pwned=3</script>"], code_url="javascript:window.__pwned=4"),
        _entry("Zeta", 0.30, 0.50),
        _seeded("Beta", (0.25, 0.45), (0.01, 0.02)),
    ]
    if committed:
        small += json.loads((ROOT / "leaderboards" / f"{DATASET}.json").read_text())["entries"]
    for name, entries in ((DATASET, small), ("ml-25m", [_entry("Only25m", 0.05, 0.09)])):
        (board_dir / f"{name}.json").write_text(json.dumps({"dataset": name, "schema": 1, "entries": entries}))


def _embedded(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', page, re.DOTALL)
    assert match
    return json.loads(match.group(1))


def _csp_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_render_escapes_injected_strings(tmp_path: Path) -> None:
    write_boards(tmp_path)
    assert main(["leaderboard", "render", "--dir", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert page.count("<script") == 2 and page.count("</script>") == 2  # only the data block and the page's own script
    assert "<img" not in page and "onerror=" in page  # the attribute survives only as escaped data
    payload = _embedded(page)
    rows = {ds["name"]: ds["rows"] for ds in payload["datasets"]}
    assert list(rows) == REAL
    injected = next(r for r in rows[DATASET] if r["model"] == INJECTED)  # round-trips exactly, as data
    assert injected["authors"] == "</script><script>window.__pwned=3</script>" and injected["code_url"] is None  # javascript: dropped
    assert [r["model"] for r in rows[DATASET]] == ["Zeta", "Beta", "alpha", INJECTED] and [r["rank"] for r in rows[DATASET]] == [1, 2, 3, 4]
    assert rows["yelp"] == []
    static = re.sub(r'(<script type="application/json"[^>]*>).*?</script>', r"\1</script>", page, flags=re.DOTALL)
    assert "innerHTML" not in page and not re.search(r"\b(src|href)=|@import|url\(", static)  # no external assets
    # the script and the style are the package's static files, inlined; the CSP allows exactly them
    script = (ROOT / "benchmark" / "leaderboard" / "page.js").read_text()
    style = (ROOT / "benchmark" / "leaderboard" / "page.css").read_text()
    assert f"<script>{script}</script>" in page and f"<style>{style}</style>" in page
    assert f"style-src {_csp_source(style)}; script-src {_csp_source(script)};" in page and "unsafe-inline" not in page

    # several seeds: mean, std and n; per-seed figures; the reproduce command and the full config
    beta = next(r for r in rows[DATASET] if r["model"] == "Beta")
    assert beta["n"] == 3 and beta["metrics"]["ndcg@10"] == 0.25 and beta["std"]["ndcg@10"] == 0.01
    assert [(s["seed"], s["ndcg"]) for s in beta["seeds"]] == [(1, 0.24), (2, 0.25), (3, 0.26)] and beta["seeds"][0]["code"] == "feedbeef"
    assert beta["reproduce"] == f"python -m benchmark reproduce {hashlib.sha256(b'Beta').hexdigest()[:12]}"
    assert json.loads(beta["config"]) == {"lr": 0.001, "layers": [64, 32], "note": "three seeds"}
    assert next(r for r in rows[DATASET] if r["model"] == "Zeta")["n"] == 1
    board_data = next(ds["data"] for ds in payload["datasets"] if ds["name"] == DATASET)
    assert board_data["identity"] == leaderboard.data_identity(DATASET, leaderboard.DECLARED_RAW_FILES[DATASET])
    assert next(ds["data"] for ds in payload["datasets"] if ds["name"] == "ml-25m") is None  # not fixed yet

    readme = (tmp_path / "README.md").read_text()
    assert "<script" not in readme and "<img" not in readme and "&lt;script&gt;" in readme
    assert "javascript:" not in readme and "[paper](<https://example.org/p>)" in readme
    assert readme.count("\n## ") == len(REAL) and readme.count("No verified entries yet.") == len(REAL) - 2
    assert f"Data identity `{board_data['identity'][:16]}` (declared in benchmark.leaderboard.board)" in readme
    lines = [ln for ln in readme.splitlines() if re.match(r"\| \d+ \| ", ln)]
    assert [ln.split(" | ")[1] for ln in lines] == ["Only25m", "Zeta", "Beta", "alpha", leaderboard._md(INJECTED)]  # registry order, then NDCG@10
    assert "| 0.3000 | 0.5000 |" in lines[1] and "| 0.2500 ± 0.0100 | 0.4500 ± 0.0200 |" in lines[2]
    assert f"| 3 | [paper](<https://example.org/p>) | 2026-01-02 | 0.1.0 01234567 | `0f0f0f0f0f0f` | ffffffffffff | `{hashlib.sha256(b'Beta').hexdigest()[:12]}` |" in lines[2]
    assert f"- 1 Zeta: `python -m benchmark reproduce {hashlib.sha256(b'Zeta').hexdigest()[:12]}`" in readme.splitlines()  # one line per entry
    # unit checks of the escaping helpers
    assert leaderboard.embed_json({"a": "</script><!--&"}) == '{"a": "\\u003c/script\\u003e\\u003c!--\\u0026"}'
    assert leaderboard._md("a|b<c>[x](y) *_`") == "a\\|b&lt;c&gt;\\[x\\](y) \\*\\_\\`" and leaderboard._md("# 1") == "\\# 1"
    # deterministic: rendering again changes nothing
    before = page, readme
    leaderboard.render(tmp_path)
    assert ((tmp_path / "index.html").read_text(), (tmp_path / "README.md").read_text()) == before


def test_the_public_functions_stay_in_benchmark_leaderboard() -> None:
    for name in ("submit", "render", "render_html", "render_markdown", "remove", "load_board", "load_meta", "validate_meta",
                 "find_duplicate", "predictions_hash", "check_url", "name_key"):  # fmt: skip
        assert callable(getattr(leaderboard, name)), name
    assert leaderboard.MAX_PREDICTIONS_BYTES == 512 * 2**20 and leaderboard.OFFICIAL_PROTOCOL == {"split": "loo", "eval_protocol": "full"}




def test_render_refuses_a_corrupt_board(tmp_path: Path, capsys) -> None:
    (tmp_path / f"{DATASET}.json").write_text('{"dataset": "yelp", "entries": []}')
    _refused(["leaderboard", "render", "--dir", str(tmp_path)], capsys, "is not a leaderboard file of ml-latest-small")
    _refused(["leaderboard", "render", "--dir", str(tmp_path / "missing")], capsys, "leaderboard folder")


def test_remove_takes_exactly_one_matching_entry(tmp_path: Path, capsys) -> None:
    entries = [
        _entry("alpha", 0.20, 0.60, predictions_sha256="a1" * 32),
        _entry("Alpha", 0.22, 0.61, predictions_sha256="b2" * 32, date="2026-02-03"),
        _entry("Zeta", 0.30, 0.50, predictions_sha256="c3" * 32),
    ]
    (tmp_path / f"{DATASET}.json").write_text(json.dumps({"dataset": DATASET, "schema": 1, "entries": entries}))

    def models() -> list[str]:
        return [e["model"] for e in json.loads((tmp_path / f"{DATASET}.json").read_text())["entries"]]

    # two entries are named alpha (case-insensitive): refused, both listed with their ids
    err = _refused(["leaderboard", "remove", "--data", DATASET, "--model", "ALPHA", "--dir", str(tmp_path)], capsys, "2 entries", "Nothing was removed")
    assert "id a1a1a1a1a1a1" in err and "id b2b2b2b2b2b2" in err and "Zeta" not in err
    assert models() == ["alpha", "Alpha", "Zeta"]
    # no match lists the board; a short or non-hex id is refused before reading anything
    assert "Zeta" in _refused(["leaderboard", "remove", "--data", DATASET, "--model", "omega", "--dir", str(tmp_path)], capsys, "0 entries")
    _refused(["leaderboard", "remove", "--data", DATASET, "--id", "b2b2", "--dir", str(tmp_path)], capsys, "8 to 64")
    _refused(["leaderboard", "remove", "--data", DATASET, "--dir", str(tmp_path)], capsys, "say which entry")
    _refused(["leaderboard", "remove", "--data", "yelp", "--model", "alpha", "--dir", str(tmp_path)], capsys, "not found")
    # model and id together pick one
    assert main(["leaderboard", "remove", "--data", DATASET, "--model", "alpha", "--id", "b2b2b2b2", "--dir", str(tmp_path)]) == 0
    assert "removed from" in capsys.readouterr().out
    assert models() == ["alpha", "Zeta"]
    assert leaderboard.remove(DATASET, model="zeta", directory=tmp_path)["metrics"]["ndcg@10"] == 0.30
    assert models() == ["alpha"]
    leaderboard.render(tmp_path)  # the pages follow the file
    assert "Zeta" not in (tmp_path / "README.md").read_text() and "alpha" in (tmp_path / "README.md").read_text()


# --- the page in a real browser ------------------------------------------------------------


def _browser_or_skip() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    if binary is None:
        reason = "Chromium not found: `apt-get install -y chromium` (.ci/run installs it)"
    else:
        try:
            import websocket  # noqa: F401
        except ImportError:
            reason = "websocket-client not installed: `pip install -e '.[dev]'`"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; the page test must run in CI")
        pytest.skip(reason)
    return binary  # type: ignore[return-value]


def test_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Chromium not found.*must run in CI"):
        _browser_or_skip()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        _browser_or_skip()


class DevTools:
    """Just enough of the Chrome DevTools protocol: evaluate JavaScript, click with the mouse."""

    def __init__(self, binary: str, profile: Path) -> None:
        import websocket

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=1400,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"Chromium did not start (exit code {self.proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre (scrolled into view first)."""
        x, y = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}}); "
                       f"const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")  # fmt: skip
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass




@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One headless Chromium and one local server for the page tests: ``small/`` holds the
    test boards, ``full/`` also the repository's committed ml-latest-small entries."""
    binary = _browser_or_skip()
    site = tmp_path_factory.mktemp("site")
    for name, committed in (("small", False), ("full", True)):
        write_boards(site / name, committed=committed)
        leaderboard.render(site / name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tmp_path_factory.mktemp("profile")
    devtools = DevTools(binary, profile)
    devtools.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        devtools.call("Runtime.enable")
        devtools.call("Page.enable")
        devtools.call("Log.enable")
        yield devtools
        problems = [e for e in devtools.events if e.get("method") == "Runtime.exceptionThrown"
                    or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]  # fmt: skip
        assert problems == []  # no script error, no Content-Security-Policy violation
    finally:
        devtools.close()
        server.shutdown()
        server.server_close()


def _wait(browser: Any, expression: str, what: str) -> None:
    deadline = time.monotonic() + 30
    while not browser.js(expression):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _open(browser: Any, path: str) -> None:
    """A fresh load of ``path`` (about:blank first, so that a hash is not a same-page jump)."""
    browser.call("Page.navigate", url="about:blank")
    _wait(browser, "location.href === 'about:blank'", "about:blank did not load")
    browser.call("Page.navigate", url=f"{browser.base}/{path}")
    _wait(browser, f"document.readyState === 'complete' && document.querySelectorAll('#tabs button').length === {len(REAL)}", "the page did not build its tabs")


def _shown(browser: Any) -> list[str]:
    return browser.js("Array.from(document.querySelectorAll('section[role=tabpanel]')).filter(s => !s.hidden && s.offsetParent !== null).map(s => s.dataset.dataset)")


def _models(browser: Any, dataset: str) -> list[str]:
    return browser.js(f"Array.from(document.querySelectorAll('section[data-dataset=\"{dataset}\"] tbody tr.entry-row')).map(tr => tr.querySelector('td[data-key=model]').textContent)")


def _row(model: str) -> str:
    return f'section[data-dataset="{DATASET}"] tr.entry-row[data-id="{hashlib.sha256(model.encode()).hexdigest()}"]'


def test_page_sorts_switches_tabs_and_runs_no_injected_script(browser: Any) -> None:
    _open(browser, "small/index.html")
    assert browser.js("typeof window.__pwned") == "undefined"  # checked first: an injection also breaks the page
    assert browser.js("document.title") == "llm4rec-bench leaderboards"
    assert browser.js("document.querySelectorAll('#panels script, #panels img').length") == 0
    assert _shown(browser) == ["ml-25m"]  # the first dataset (registry order) with entries
    browser.click(f'#tabs button[data-dataset="{DATASET}"]')
    assert _shown(browser) == [DATASET] and _models(browser, DATASET) == ["Zeta", "Beta", "alpha", INJECTED]
    assert browser.js("Array.from(document.querySelectorAll('#panels a')).map(a => a.href).filter(h => !h.startsWith('https://')).length") == 0

    header = f'section[data-dataset="{DATASET}"] th[data-key="hr@10"]'
    browser.click(header)  # a metric sorts best first
    assert _models(browser, DATASET) == ["alpha", "Zeta", "Beta", INJECTED]
    assert browser.js(f"document.querySelector({json.dumps(header)}).getAttribute('aria-sort')") == "descending"
    browser.click(header)
    assert _models(browser, DATASET) == [INJECTED, "Beta", "Zeta", "alpha"]
    browser.click(f'section[data-dataset="{DATASET}"] th[data-key="model"]')  # text: A to Z, case-insensitive
    assert _models(browser, DATASET) == [INJECTED, "alpha", "Beta", "Zeta"]
    assert browser.js(f"document.querySelector('{_row('alpha')} td[data-key=\"hr@10\"]').textContent") == "0.6000"
    browser.click('#tabs button[data-dataset="ml-25m"]')
    assert _shown(browser) == ["ml-25m"] and _models(browser, "ml-25m") == ["Only25m"]
    browser.click(f'#tabs button[data-dataset="{DATASET}"]')
    assert _models(browser, DATASET) == [INJECTED, "alpha", "Beta", "Zeta"]  # sort state kept
    assert browser.js("typeof window.__pwned") == "undefined" and browser.js("document.title") == "llm4rec-bench leaderboards"


def test_page_deep_links_open_a_tab_and_tabs_update_the_address(browser: Any) -> None:
    _open(browser, f"small/index.html#{DATASET}")
    assert _shown(browser) == [DATASET]
    assert browser.js(f"document.querySelector('#tabs button[data-dataset=\"{DATASET}\"]').getAttribute('aria-selected')") == "true"
    browser.click('#tabs button[data-dataset="yelp"]')
    assert browser.js("location.hash") == "#yelp" and _shown(browser) == ["yelp"]
    assert browser.js("document.querySelector('section[data-dataset=\"yelp\"] .empty').textContent") == "No verified entries yet."
    browser.click('#tabs button[data-dataset="ml-25m"]')
    assert browser.js("location.hash") == "#ml-25m"
    browser.js("history.back()")  # the address bar history follows the tabs
    _wait(browser, "location.hash === '#yelp'", "history.back() did not return to #yelp")
    _wait(browser, "!document.querySelector('section[data-dataset=\"yelp\"]').hidden", "the yelp tab did not open on history.back()")
    browser.call("Page.navigate", url=f"{browser.base}/small/index.html#{DATASET}")  # same page, another hash
    _wait(browser, f"!document.querySelector('section[data-dataset=\"{DATASET}\"]').hidden", "a hash change did not switch the tab")
    assert _shown(browser) == [DATASET]
    # an entry's link opens its details; an unknown name falls back to the first board with entries
    beta = hashlib.sha256(b"Beta").hexdigest()
    _open(browser, f"small/index.html#{DATASET}/{beta[:12]}")
    assert _shown(browser) == [DATASET]
    assert browser.js(f"document.querySelector('{_row('Beta')}').nextSibling.hidden") is False
    _open(browser, "small/index.html#no-such-dataset")
    assert _shown(browser) == ["ml-25m"]


def test_page_shows_the_config_reproduce_command_and_seeds_on_a_click(browser: Any) -> None:
    _open(browser, f"small/index.html#{DATASET}")
    zeta = _row("Zeta")
    details = f"document.querySelector('{zeta}').nextSibling"
    assert browser.js(f"{details}.hidden") is True
    # a short line under every entry: its reproduce command, shown without a click
    line = f"{details}.nextSibling"
    command = f"python -m benchmark reproduce {hashlib.sha256(b'Zeta').hexdigest()[:12]}"
    assert browser.js(f"{line}.classList.contains('reproduce-row') && {line}.offsetParent !== null") is True
    assert browser.js(f"{line}.textContent") == f"reproduce: {command}"
    assert browser.js(f"document.querySelectorAll('section[data-dataset=\"{DATASET}\"] tr.reproduce-row').length") == len(_models(browser, DATASET))
    assert browser.js(f"document.querySelector('{zeta} button.config-toggle').textContent") == "abcdef012345"
    browser.click(f"{zeta} button.config-toggle")
    assert browser.js(f"{details}.hidden") is False
    assert browser.js(f"document.querySelector('{zeta} button.config-toggle').getAttribute('aria-expanded')") == "true"
    config = browser.js(f"{details}.querySelector('pre.config').textContent")
    assert config == json.dumps({"dim": 64, "lr": 0.01}, indent=2) and json.loads(config) == {"lr": 0.01, "dim": 64}
    box = browser.js(f"(() => {{ const r = {details}.querySelector('pre.config').getBoundingClientRect(); return [r.width, r.height, r.top, r.bottom, innerHeight]; }})()")
    assert box[0] > 100 and box[1] > 30 and box[3] > 0 and box[2] < box[4]  # laid out and on screen
    assert browser.js(f"{details}.querySelector('pre.reproduce').textContent") == f"python -m benchmark reproduce {hashlib.sha256(b'Zeta').hexdigest()[:12]}"
    dl = browser.js(f"Array.from({details}.querySelectorAll('dt')).map(dt => dt.textContent + '=' + dt.nextSibling.textContent)")
    assert "suite=0.1.0 0123456789" in dl and f"preparation fingerprint={'f' * 64}" in dl and f"entry id={hashlib.sha256(b'Zeta').hexdigest()}" in dl
    # the open details stay with their row when the table is sorted
    browser.click(f'section[data-dataset="{DATASET}"] th[data-key="hr@10"]')
    assert browser.js(f"{details}.hidden") is False and browser.js(f"{details}.classList.contains('details')") is True
    browser.click(f"{zeta} button.config-toggle")  # a second click closes them
    assert browser.js(f"{details}.hidden") is True

    # an entry over three seeds: mean and std in the cell, n in its column, every seed in the details
    beta = _row("Beta")
    assert browser.js(f"document.querySelector('{beta} td[data-key=\"ndcg@10\"]').textContent") == "0.2500\u00b1 0.0100"
    assert browser.js(f"document.querySelector('{beta} td[data-key=\"hr@10\"] .std').textContent") == "\u00b1 0.0200"
    assert browser.js(f"document.querySelector('{beta} td[data-key=\"n\"]').textContent") == "3"
    assert browser.js(f"document.querySelector('{zeta} td[data-key=\"ndcg@10\"] .std')") is None  # one seed: no std
    browser.click(f"{beta} button.config-toggle")
    seeds = browser.js(f"Array.from(document.querySelector('{beta}').nextSibling.querySelectorAll('table.seeds tbody tr')).map(tr => Array.from(tr.children).map(td => td.textContent))")
    assert seeds == [["1", "0.2400", "0.4400", "0.4400", "1" * 12, "feedbeef"], ["2", "0.2500", "0.4500", "0.4500", "2" * 12, "feedbeef"],
                     ["3", "0.2600", "0.4600", "0.4600", "3" * 12, "feedbeef"]]  # fmt: skip


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_page_fits_1400_px_with_the_provenance_in_view(browser: Any, tmp_path: Path) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
    try:
        _open(browser, f"full/index.html#{DATASET}")
        assert browser.js("innerWidth") == 1400 and len(_models(browser, DATASET)) == 15  # the committed entries and the test ones
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
        (tmp_path / "leaderboard-1400x900.png").write_bytes(shot)
        assert _png_size(shot) == (1400, 900)
        boxes = browser.js(f"""(() => {{
            const panel = document.querySelector('section[data-dataset="{DATASET}"]');
            const box = e => {{ const r = e.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; }};
            const out = {{}};
            for (const key of ["suite", "config_hash", "fingerprint"]) {{
                out[key] = [box(panel.querySelector(`th[data-key="${{key}}"]`))].concat(Array.from(panel.querySelectorAll(`tr.entry-row td[data-key="${{key}}"]`)).map(box));
            }}
            const wrap = panel.querySelector('.wrap');
            out.scroll = [wrap.scrollWidth, wrap.clientWidth, document.documentElement.scrollWidth, innerWidth];
            return out;
        }})()""")  # fmt: skip
        wrap_width, wrap_client, page_width, width = boxes.pop("scroll")
        assert wrap_width <= wrap_client and page_width <= width  # no horizontal scrolling anywhere
        for key, cells in boxes.items():
            assert len(cells) == 16, key  # the header and 15 rows
            for left, right, top, _ in cells:
                assert 0 <= left < right <= width, (key, left, right)
            assert cells[0][3] <= 900 and cells[1][3] <= 900, key  # the header and the first row are on the first screen
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
