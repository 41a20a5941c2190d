"""`submit` and `leaderboard render`: verified entries on the official ml-latest-small split,
refusals with clear messages, and pages that never run injected markup (headless Chromium)."""

from __future__ import annotations

import functools
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
from benchmark.cli import main
from benchmark.config import config_hash
from benchmark.data.datasets import DATASETS, load_dataset
from benchmark.errors import BenchmarkError
from benchmark.leaderboard import validate_meta
from benchmark.predictions import evaluate_predictions_file

DATASET = "ml-latest-small"
INJECTED = '<script>window.__pwned=1;document.title="pwned"</script><img src=x onerror="window.__pwned=2">'

REAL = [name for name, spec in DATASETS.items() if spec.source == "real"]


@pytest.fixture(scope="module")
def data(ml_small: Path):
    return load_dataset(DATASET, raw_dir=ml_small)


def pop_lists(data: Any, k: int = 20) -> pd.DataFrame:
    """Most-popular top-k per test user, seen (train + valid) items skipped; raw ids."""
    counts = np.bincount(data.train.item, minlength=data.n_items)
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
    path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return path


def submit(predictions: Path, meta: Path, board_dir: Path, ml_small: Path, *extra: str, data: str = DATASET) -> list[str]:
    return ["submit", "--predictions", str(predictions), "--data", data, "--meta", str(meta), "--raw-dir", str(ml_small),
            "--leaderboard-dir", str(board_dir), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def pop_file(data: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tsv(pop_lists(data), tmp_path_factory.mktemp("pop") / "pop.tsv")


# --- submit -----------------------------------------------------------------------------


def test_valid_submission_gets_recomputed_metrics_and_duplicates_are_refused(data, pop_file: Path, ml_small: Path, tmp_path: Path, capsys) -> None:
    board_dir = tmp_path / "boards"
    forged = {"ndcg@10": 0.99, "hr@10": 1.0}  # claims are never trusted
    meta = write_meta(tmp_path / "meta.yaml", meta_dict(data, metrics=forged))
    assert main(submit(pop_file, meta, board_dir, ml_small, "--output", str(tmp_path / "entry.json"))) == 0
    out = capsys.readouterr().out
    assert "accepted: Pop (test)" in out and "claimed metrics ignored; 2 differ" in out
    assert sorted(p.name for p in board_dir.iterdir() if not p.name.startswith(".")) == [f"{DATASET}.json"]
    board = json.loads((board_dir / f"{DATASET}.json").read_text())
    assert board["dataset"] == DATASET and len(board["entries"]) == 1
    entry = board["entries"][0]
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

    assert entry["dataset_fingerprint"] == data.fingerprint and entry["data_source"] == "real" and entry["verified"] is True
    assert entry["protocol"] == {"split": "loo", "eval_protocol": "full", "ks": [5, 10, 20]}
    assert entry["config_hash"] == config_hash({"k": 20, "note": "most popular in training"})
    assert entry["n_test_users"] == n and entry["n_users_missing"] == 0
    assert entry["paper_url"] == "https://example.org/papers/pop" and entry["code_url"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry["date"]) and entry["suite_version"]["version"] == "0.1.0"
    assert "metrics" not in entry["config"] and "claimed" not in json.dumps(entry)

    # duplicate: same model, authors (any case/order) and config
    again = write_meta(tmp_path / "again.yaml", meta_dict(data, model="POP (TEST)", authors=["LLM4Rec-bench team"]))
    assert main(submit(pop_file, again, board_dir, ml_small)) == 2
    assert "same model, authors and config (hash" in capsys.readouterr().err
    # duplicate: the same lists under another name, reformatted (no header, rows shuffled)
    shuffled = write_tsv(lists.sample(frac=1.0, random_state=1), tmp_path / "shuffled.tsv", header=False)
    renamed = write_meta(tmp_path / "renamed.yaml", meta_dict(data, model="Not Pop", config={"k": 20}))
    assert main(submit(shuffled, renamed, board_dir, ml_small)) == 2
    assert "the same top-K lists are already on the leaderboard: Pop (test)" in capsys.readouterr().err
    assert len(json.loads((board_dir / f"{DATASET}.json").read_text())["entries"]) == 1

    # a different model is accepted and ranked by NDCG@10
    top10 = write_tsv(lists[lists["rank"] <= 10], tmp_path / "top10.tsv")
    other = write_meta(tmp_path / "other.yaml", meta_dict(data, model="Pop top-10", config={"k": 10}))
    assert main(submit(top10, other, board_dir, ml_small)) == 0
    entries = json.loads((board_dir / f"{DATASET}.json").read_text())["entries"]
    assert [e["model"] for e in entries] == ["Pop (test)", "Pop top-10"]  # equal NDCG@10, name order
    assert entries[1]["metrics"]["ndcg@10"] == pytest.approx(entries[0]["metrics"]["ndcg@10"], abs=1e-12)
    assert entries[1]["metrics"]["hr@20"] < entries[0]["metrics"]["hr@20"]  # no ranks past 10


def _refused(argv: list[str], capsys, *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, (text, err)
    return err


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
    # raw files changed: the official split here differs from the one the lists were made for
    changed = tmp_path / "changed-raw"
    shutil.copytree(ml_small, changed)
    ratings = (changed / "ratings.csv").read_text().splitlines()
    (changed / "ratings.csv").write_text("\n".join(ratings[:-1]) + "\n")
    meta = write_meta(tmp_path / "ok.yaml", meta_dict(data))
    _refused(submit(pop_file, meta, board_dir, changed), capsys, "dataset fingerprint mismatch")
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
    # malformed: unknown item, bad rank, missing rank
    lists = pop_lists(data).head(4).astype(str)
    lists.loc[0, "item"] = "999999999"
    lists.loc[1, "rank"] = "first"
    lists = lists.drop(index=2)  # ranks 1, 2, 4 left for the first user -> not 1..n
    path = write_tsv(lists, tmp_path / "bad.tsv")
    _refused(submit(path, meta, board_dir, ml_small), capsys, "unknown item: line 2 (999999999)", "not a positive integer: line 3 (first)", "ranks missing")
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
        "model": model, "authors": ["suite team"], "code_url": None, "paper_url": "https://example.org/p", "config": {},
        "config_hash": "abcdef012345", "dataset_fingerprint": "f" * 64, "metrics": {"ndcg@10": ndcg, "hr@10": hr, "recall@10": hr},
        "n_users_missing": 0, "date": "2026-01-02", "suite_version": {"version": "0.1.0", "git_sha": "0123456789", "dirty": False}, **extra,
    }  # fmt: skip


def write_boards(board_dir: Path) -> None:
    board_dir.mkdir(parents=True, exist_ok=True)
    small = [
        _entry("alpha", 0.20, 0.60),
        _entry(INJECTED, 0.10, 0.40, authors=["</script><script>window.__pwned=3</script>"], code_url="javascript:window.__pwned=4"),
        _entry("Zeta", 0.30, 0.50),
        _entry("Beta", 0.25, 0.45),
    ]
    for name, entries in ((DATASET, small), ("ml-25m", [_entry("Only25m", 0.05, 0.09)])):
        (board_dir / f"{name}.json").write_text(json.dumps({"dataset": name, "schema": 1, "entries": entries}))


def _embedded(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))


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
    static = re.sub(r'(<script type="application/json"[^>]*>).*?</script>', r"\1</script>", page, flags=re.S)
    assert "innerHTML" not in page and not re.search(r"\b(src|href)=|@import|url\(", static)  # no external assets
    assert "script-src 'sha256-" in page

    readme = (tmp_path / "README.md").read_text()
    assert "<script" not in readme and "<img" not in readme and "&lt;script&gt;" in readme
    assert "javascript:" not in readme and "[paper](<https://example.org/p>)" in readme
    assert readme.count("\n## ") == len(REAL) and readme.count("No verified entries yet.") == len(REAL) - 2
    lines = [ln for ln in readme.splitlines() if re.match(r"\| \d+ \| ", ln)]
    assert [ln.split(" | ")[1] for ln in lines] == ["Only25m", "Zeta", "Beta", "alpha", leaderboard._md(INJECTED)]  # registry order, then NDCG@10
    assert "| 0.3000 | 0.5000 |" in lines[1]
    # unit checks of the escaping helpers
    assert leaderboard.embed_json({"a": "</script><!--&"}) == '{"a": "\\u003c/script\\u003e\\u003c!--\\u0026"}'
    assert leaderboard._md("a|b<c>[x](y) *_`") == "a\\|b&lt;c&gt;\\[x\\](y) \\*\\_\\`" and leaderboard._md("# 1") == "\\# 1"
    # deterministic: rendering again changes nothing
    before = page, readme
    leaderboard.render(tmp_path)
    assert ((tmp_path / "index.html").read_text(), (tmp_path / "README.md").read_text()) == before


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
             "--window-size=1600,1000", "about:blank"],
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
        x, y = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect(); "
                       f"return [r.x + r.width / 2, r.y + r.height / 2]; }})()")  # fmt: skip
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


def test_page_sorts_switches_tabs_and_runs_no_injected_script(tmp_path: Path) -> None:
    binary = _browser_or_skip()
    site = tmp_path / "site"
    write_boards(site)
    leaderboard.render(site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = DevTools(binary, profile)
    try:
        browser.call("Runtime.enable")
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"http://127.0.0.1:{server.server_address[1]}/index.html")
        deadline = time.monotonic() + 30
        while browser.js("document.readyState") != "complete":
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.1)
        assert browser.js("typeof window.__pwned") == "undefined"  # checked first: an injection also breaks the page
        assert browser.js("document.querySelectorAll('#tabs button').length") == len(REAL), "the page script did not build the tabs"

        def models(dataset: str) -> list[str]:
            return browser.js(f"Array.from(document.querySelectorAll('section[data-dataset=\"{dataset}\"] tbody tr')).map(tr => tr.children[1].textContent)")

        def shown() -> list[str]:
            return browser.js("Array.from(document.querySelectorAll('section[role=tabpanel]')).filter(s => !s.hidden && s.offsetParent !== null).map(s => s.dataset.dataset)")

        # nothing injected ran, and the injected name is plain text in its cell
        assert browser.js("typeof window.__pwned") == "undefined"
        assert browser.js("document.title") == "llm4rec-bench leaderboards"
        assert browser.js("document.querySelectorAll('#panels script, #panels img').length") == 0
        assert shown() == ["ml-25m"]  # the first dataset (registry order) with entries
        browser.click(f'#tabs button[data-dataset="{DATASET}"]')
        assert shown() == [DATASET] and models(DATASET) == ["Zeta", "Beta", "alpha", INJECTED]
        assert browser.js("Array.from(document.querySelectorAll('#panels a')).map(a => a.href).filter(h => !h.startsWith('https://')).length") == 0

        header = f'section[data-dataset="{DATASET}"] th[data-key="hr@10"]'
        browser.click(header)  # a metric sorts best first
        assert models(DATASET) == ["alpha", "Zeta", "Beta", INJECTED]
        assert browser.js(f"document.querySelector({json.dumps(header)}).getAttribute('aria-sort')") == "descending"
        browser.click(header)
        assert models(DATASET) == [INJECTED, "Beta", "Zeta", "alpha"]
        browser.click(f'section[data-dataset="{DATASET}"] th[data-key="model"]')  # text: A to Z, case-insensitive
        assert models(DATASET) == [INJECTED, "alpha", "Beta", "Zeta"]
        assert browser.js(f"document.querySelector('section[data-dataset=\"{DATASET}\"] tbody tr td:nth-child(5)').textContent") == "0.4000"

        browser.click('#tabs button[data-dataset="ml-25m"]')
        assert shown() == ["ml-25m"] and models("ml-25m") == ["Only25m"]
        assert browser.js("document.querySelector('#tabs button[data-dataset=\"ml-25m\"]').getAttribute('aria-selected')") == "true"
        browser.click('#tabs button[data-dataset="yelp"]')
        assert shown() == ["yelp"] and browser.js("document.querySelector('section[data-dataset=\"yelp\"] .empty').textContent") == "No verified entries yet."
        browser.click(f'#tabs button[data-dataset="{DATASET}"]')
        assert shown() == [DATASET] and models(DATASET) == [INJECTED, "alpha", "Beta", "Zeta"]  # sort state kept

        assert browser.js("typeof window.__pwned") == "undefined" and browser.js("document.title") == "llm4rec-bench leaderboards"
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
        assert errors == []
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
