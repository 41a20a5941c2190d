"""`data export-split` and `evaluate --predictions`: the official split in raw ids, external
top-K lists (TSV or TREC runs) scored by the same engine, strict parsing with exact line
numbers, bounded memory, and agreement with ranx on TREC runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.config import DataConfig
from benchmark.data.datasets import load_dataset
from benchmark.errors import BenchmarkError
from benchmark.predictions import evaluate_predictions_file, predictions_format
from tests.benchmark.eval_runs import N_USERS, bpr_run, odd_ml  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_export_split_writes_raw_ids(odd_ml: Path, tmp_path: Path) -> None:  # noqa: F811
    assert main(["data", "export-split", "--data", "synthetic-ml", "--raw-dir", str(odd_ml), "--out", str(tmp_path / "split")]) == 0
    data = load_dataset("synthetic-ml", raw_dir=odd_ml)
    meta = json.loads((tmp_path / "split" / "split.json").read_text())
    assert meta["dataset_fingerprint"] == data.fingerprint and meta["split"] == "loo"
    ratings = pd.read_csv(odd_ml / "ratings.csv")
    raw_pairs = set(zip(ratings["userId"], ratings["movieId"]))
    for part in ("train", "valid", "test"):
        frame = pd.read_csv(tmp_path / "split" / f"{part}.tsv", sep="\t")
        assert list(frame.columns) == ["user", "item", "timestamp"]
        assert len(frame) == len(getattr(data, part)) == meta[f"n_{part}"]
        assert set(zip(frame["user"], frame["item"])) <= raw_pairs  # raw ids, not internal ones
    test = pd.read_csv(tmp_path / "split" / "test.tsv", sep="\t")
    assert test["user"].nunique() == len(test) == N_USERS  # leave-one-out: one test item per user
    qrels = pd.read_csv(tmp_path / "split" / "test.qrels", sep=" ", header=None, names=["user", "iter", "item", "rel"])
    assert list(zip(qrels["user"], qrels["item"])) == list(zip(test["user"], test["item"]))
    assert set(qrels["iter"]) == {0} and set(qrels["rel"]) == {1}
    assert meta["files"] == ["train.tsv", "valid.tsv", "test.tsv", "test.qrels"]


def test_predictions_round_trip_reproduces_the_run(bpr_run, odd_ml: Path, tmp_path: Path) -> None:  # noqa: F811
    record, run_dir = bpr_run
    lists, again, scored = tmp_path / "lists.tsv", tmp_path / "again.json", tmp_path / "scored.json"
    ckpt = str(run_dir / "checkpoints" / "best.ckpt")
    assert main(["evaluate", "--checkpoint", ckpt, "--set", "eval_item_group=year", "--write-predictions", str(lists), "--output", str(again)]) == 0
    frame = pd.read_csv(lists, sep="\t")
    assert list(frame.columns) == ["user", "item", "rank"] and len(frame) == N_USERS * 20
    argv = ["evaluate", "--predictions", str(lists), "--data", "synthetic-ml", "--raw-dir", str(odd_ml), "--set", "eval_item_group=year"]
    assert main([*argv, "--output", str(scored)]) == 0
    result = json.loads(scored.read_text())
    assert result["valid_ratio"] == 1.0 and result["n_users_missing"] == 0 and result["eval_protocol"] == "full"
    for key, value in record["metrics"]["test"].items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    # headerless files work too; a user missing from the file counts as zero
    first_user = frame["user"].iloc[0]
    frame[frame["user"] != first_user].to_csv(tmp_path / "short.tsv", sep="\t", index=False, header=False)
    argv[2] = str(tmp_path / "short.tsv")
    assert main([*argv, "--output", str(scored)]) == 0
    short = json.loads(scored.read_text())
    assert short["n_users_missing"] == 1
    per_user = pd.read_parquet(run_dir / "per_user_test.parquet").set_index("raw_user_id")
    expected = (per_user["hr@10"].sum() - per_user.loc[str(first_user), "hr@10"]) / N_USERS
    assert short["hr@10"] == pytest.approx(expected, abs=1e-12)
    assert short["valid_ratio"] == pytest.approx((N_USERS - 1) / N_USERS)

    # the same lists as a TREC run (chosen by the name, or by --predictions-format for any name)
    trec, named = tmp_path / "lists.trec", tmp_path / "lists-as-trec.txt"
    assert main(["evaluate", "--checkpoint", ckpt, "--set", "eval_item_group=year", "--write-predictions", str(trec)]) == 0
    assert main(["evaluate", "--checkpoint", ckpt, "--set", "eval_item_group=year", "--write-predictions", str(named), "--predictions-format", "trec"]) == 0
    assert named.read_text() == trec.read_text() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    run = pd.read_csv(trec, sep=" ", header=None, names=["user", "q0", "item", "rank", "score", "tag"])
    assert len(run) == N_USERS * 20 and set(run["q0"]) == {"Q0"} and set(run["tag"]) == {"llm4rec-bench"}
    assert (run["score"] == 21 - run["rank"]).all()
    assert list(zip(run["user"], run["item"], run["rank"])) == list(zip(frame["user"], frame["item"], frame["rank"]))
    for path, extra in ((trec, []), (named, ["--predictions-format", "trec"])):
        argv = ["evaluate", "--predictions", str(path), "--data", "synthetic-ml", "--raw-dir", str(odd_ml), "--set", "eval_item_group=year", *extra]
        assert main([*argv, "--output", str(scored)]) == 0
        assert {k: json.loads(scored.read_text())[k] for k in record["metrics"]["test"]} == pytest.approx(record["metrics"]["test"], abs=1e-12)
    assert predictions_format("a.RUN") == "trec" and predictions_format("a.tsv") == "tsv" and predictions_format("a.trec", "tsv") == "tsv"


def _report(path: Path, raw: Path, capsys, *extra: str) -> str:
    code = main(["evaluate", "--predictions", str(path), "--data", "synthetic-ml", "--raw-dir", str(raw), *extra])
    err = capsys.readouterr().err
    assert code == 2 and "nothing was scored" in err and "Traceback" not in err, err
    return err


def _problems(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("- ")]


@pytest.fixture(scope="module")
def lists(odd_ml: Path) -> pd.DataFrame:  # noqa: F811
    """Valid top-5 lists in raw ids for the first three test users (items never seen by them)."""
    data = load_dataset("synthetic-ml", raw_dir=odd_ml)
    seen: dict[int, set[int]] = {}
    for part in (data.train, data.valid):
        for u, i in zip(part.user.tolist(), part.item.tolist()):
            seen.setdefault(u, set()).add(i)
    rows = []
    for u in np.unique(data.test.user)[:3].tolist():
        fresh = [i for i in range(data.n_items) if i not in seen.get(u, set())][:5]
        rows += [(str(data.user_ids[u]), str(data.item_ids[i]), r) for r, i in enumerate(fresh, start=1)]
    return pd.DataFrame(rows, columns=["user", "item", "rank"])


def _write(path: Path, lines: list[str], ending: str = "\n") -> Path:
    path.write_bytes((ending.join(lines) + ending).encode("utf-8"))
    return path


def _tsv(frame: pd.DataFrame) -> list[str]:
    return ["user\titem\trank"] + [f"{u}\t{i}\t{r}" for u, i, r in frame.itertuples(index=False)]


def test_bad_prediction_files_get_a_full_report(odd_ml: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    data = load_dataset("synthetic-ml", raw_dir=odd_ml)
    user, other, third, fourth = (data.user_ids[u] for u in range(4))
    trained = data.item_ids[data.train.item[data.train.user == 0][0]]
    seen = set(data.item_ids[np.concatenate([data.train.item[data.train.user <= 3], data.valid.item[data.valid.user <= 3]])])
    fresh = [i for i in data.item_ids if i not in seen][:6]
    rows = [
        ("user", "item", "rank"),
        (user, fresh[0], 1),
        (user, fresh[0], 2),  # line 3: repeated item
        (user, trained, 3),  # line 4: a training item
        ("nobody", fresh[1], 1),  # line 5: unknown user
        (other, "999999999", 1),  # line 6: unknown item
        (other, fresh[2], "x"),  # line 7: rank not a number (other's other ranks are then not checked for gaps)
        (third, fresh[3], 1),
        (third, fresh[4], 3),  # third's ranks: 1, 3 -> not 1..n
        (fourth, fresh[3], 1),
        (fourth, fresh[4], 3),
        (fourth, fresh[5], 3),  # line 12: repeated rank
    ]
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join("\t".join(str(c) for c in row) for row in rows) + "\n")
    err = _report(path, odd_ml, capsys)
    assert _problems(err) == [
        "- 1 rows with an unknown user: line 5 (nobody)",
        "- 1 rows with an unknown item: line 6 (999999999)",
        "- 1 rows whose rank is not a positive integer: line 7 (x)",
        f"- 1 repeated items in a user's list: line 3 ({user} / {fresh[0]})",
        f"- 1 repeated ranks in a user's list: line 12 ({fourth} / rank 3)",
        f"- 1 users whose ranks are not 1..n (ranks missing): line 8 ({third})",
        f"- 1 items the user already interacted with before the test period (training or validation items): line 4 ({user} / {trained})",
    ]
    assert main(["evaluate", "--predictions", str(path)]) == 2  # --data is required with --predictions
    assert "needs --data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--predictions", str(path), "--checkpoint", "x.ckpt"])  # exactly one of the two


def test_field_counts_are_exact_on_every_line(lists: pd.DataFrame, odd_ml: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    good = _tsv(lists)
    n = len(lists)
    # an extra column on every line (pandas took the first column as an index and accepted it)
    err = _report(_write(tmp_path / "extra.tsv", [good[0]] + [f"{line}\t0.5" for line in good[1:]]), odd_ml, capsys)
    expected = (f"- {n} lines without exactly 3 fields (user, item, rank separated by tabs): "
                f"line 2 (4 fields), line 3 (4 fields), line 4 (4 fields), line 5 (4 fields), line 6 (4 fields), ... ({n - 5} more)")  # fmt: skip
    assert _problems(err) == [expected]
    # one line with a different count: exactly that line is reported, nothing shifts after it
    odd = list(good)
    odd[7] += "\t9"
    assert _problems(_report(_write(tmp_path / "one.tsv", odd), odd_ml, capsys)) == ["- 1 lines without exactly 3 fields (user, item, rank separated by tabs): line 8 (4 fields)"]
    # more of the class: a missing field, an empty line, a quoted field is not unquoted
    odd = list(good)
    odd[3] = odd[3].rsplit("\t", 1)[0]
    odd[9] = ""
    odd[11] = '"' + odd[11].replace("\t", '"\t', 1)
    err = _report(_write(tmp_path / "more.tsv", odd), odd_ml, capsys)
    assert _problems(err) == [
        "- 1 empty lines: line 10",
        "- 1 lines without exactly 3 fields (user, item, rank separated by tabs): line 4 (2 fields)",
        f"- 1 rows with an unknown user: line 12 (\"{lists['user'][10]}\")",
    ]
    # CRLF line endings and spaces around fields are fine; metrics equal the clean file's
    clean = evaluate_predictions_file(_write(tmp_path / "clean.tsv", good), "synthetic-ml", {}, raw_dir=str(odd_ml))["metrics"]
    crlf = evaluate_predictions_file(_write(tmp_path / "crlf.tsv", [line.replace("\t", " \t ") for line in good], "\r\n"), "synthetic-ml", {}, raw_dir=str(odd_ml))
    assert crlf["metrics"] == clean and crlf["n_rows"] == n


def test_ranks_must_be_integers_in_range(lists: pd.DataFrame, odd_ml: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    data = load_dataset("synthetic-ml", raw_dir=odd_ml)
    odd = _tsv(lists)
    for line, rank in ((2, "99999999999999999999"), (3, str(data.n_items + 1)), (4, "0"), (5, "3.0"), (6, "-1"), (7, "1e3"), (8, "٣")):
        odd[line - 1] = odd[line - 1].rsplit("\t", 1)[0] + "\t" + rank
    err = _report(_write(tmp_path / "ranks.tsv", odd), odd_ml, capsys)
    assert _problems(err) == [
        "- 5 rows whose rank is not a positive integer: line 4 (0), line 5 (3.0), line 6 (-1), line 7 (1e3), line 8 (٣)",
        f"- 2 rows whose rank is larger than the number of items ({data.n_items}): line 2 (99999999999999999999), line 3 ({data.n_items + 1})",
    ]
    # leading zeros are still the number
    padded = [odd[0]] + [f"{u}\t{i}\t000{r}" for u, i, r in lists.itertuples(index=False)]
    scored = evaluate_predictions_file(_write(tmp_path / "zeros.tsv", padded), "synthetic-ml", {}, raw_dir=str(odd_ml))
    assert scored["n_rows"] == len(lists)


def test_trec_runs_are_parsed_strictly(lists: pd.DataFrame, odd_ml: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    run = [f"{u} Q0 {i} {r} {10 - r}.5 mine" for u, i, r in lists.itertuples(index=False)]
    clean = evaluate_predictions_file(_write(tmp_path / "clean.tsv", _tsv(lists)), "synthetic-ml", {}, raw_dir=str(odd_ml))["metrics"]
    # tabs, several spaces and spaces at the ends are whitespace as trec_eval reads it
    spaced = [line.replace(" ", "\t  ", 2) + "  " for line in run]
    assert evaluate_predictions_file(_write(tmp_path / "spaced.run", spaced), "synthetic-ml", {}, raw_dir=str(odd_ml))["metrics"] == clean
    odd = list(run)
    odd[1] = odd[1].replace(" Q0 ", " 0 ")  # line 2
    odd[2] = odd[2].rsplit(" ", 1)[0] + " other"  # line 3: a second run's tag
    odd[3] = odd[3].replace(" 6.5 ", " nan ")  # line 4: rank 4's score
    odd[6] = odd[6].replace(" 8.5 ", " 9.9 ")  # line 7: the second user's rank 2 scores above its rank 1
    odd[8] = odd[8].rsplit(" ", 1)[0]  # line 9: five fields
    odd.insert(0, "user item rank")  # a TSV-style header is not a TREC line
    err = _report(_write(tmp_path / "bad.trec", odd), odd_ml, capsys)
    assert _problems(err) == [
        "- 2 lines without exactly 6 fields (qid Q0 docid rank score tag separated by spaces or tabs): line 1 (3 fields), line 10 (5 fields)",
        "- 1 rows whose second field is not Q0: line 3 (0)",
        "- 1 rows whose score is not a finite decimal number: line 5 (nan)",
        "- 1 rows whose tag differs from the first row's (a run file holds one run): line 4 (other)",
        f"- 1 users whose scores do not strictly decrease as the rank grows (trec_eval and ranx order a list by score): line 7 ({lists['user'][5]})",
    ]
    # equal scores are ambiguous for tools that order by score
    ties = [f"{u} Q0 {i} {r} 1.0 mine" for u, i, r in lists.itertuples(index=False)]
    assert "3 users whose scores do not strictly decrease" in _report(_write(tmp_path / "ties.trec", ties), odd_ml, capsys)
    with pytest.raises(BenchmarkError, match="unknown predictions format 'csv'"):
        predictions_format("x.tsv", "csv")


def test_hostile_bytes_are_reported_not_crashing(lists: pd.DataFrame, odd_ml: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    good = _tsv(lists)
    path = tmp_path / "bytes.tsv"
    path.write_bytes(("\n".join(good[:3]) + "\n").encode() + b"\xff\xfe\t1\t1\n" + ("\n".join(good[3:]) + "\n").encode())
    err = _report(path, odd_ml, capsys)
    assert _problems(err) == ["- 1 lines that are not UTF-8 text: line 4"]
    long = tmp_path / "long.tsv"
    long.write_text("\n".join(good[:2]) + "\n" + "a" * 5000 + "\t1\t1\n")
    assert _problems(_report(long, odd_ml, capsys)) == ["- 1 lines longer than 4,096 bytes: line 3"]
    endless = tmp_path / "endless.tsv"
    with open(endless, "wb") as fh:
        fh.write(b"x" * (5 << 20))  # one 5 MB line: refused without reading it whole into a table
    assert "line 1 is longer than 4,096 bytes" in _report(endless, odd_ml, capsys)
    escape = tmp_path / "escape.tsv"
    escape.write_text(good[0] + "\n\x1b[31mred\t1\t1\n")  # a terminal escape in an id is shown escaped
    err = _report(escape, odd_ml, capsys)
    assert "line 2 (\\x1b[31mred)" in err and "\x1b" not in err


_MEASURE = r"""
import json, os, resource, sys
from benchmark.data.datasets import load_dataset
from benchmark.predictions import evaluation_datamodule, read_predictions
data = load_dataset("ml-latest-small", raw_dir=sys.argv[2])
dm = evaluation_datamodule(data)
dm.test_set
try:  # reset the peak (VmHWM) so that only the read is measured
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    def peak():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
except OSError:
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
def current():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = current()
lists = read_predictions(sys.argv[1], data, dm, 20)
print(json.dumps({"before": before, "peak": peak(), "rows": lists.n_rows}))
"""


def test_memory_stays_bounded_on_a_large_file(ml_small: Path, tmp_path: Path) -> None:
    """Full-length lists (every unseen item) for 250 users: a 33.5 MB file, 2.4M rows. The peak
    RSS of the read in a child process stays within 3 x the file size + 64 MiB (it was 120 MiB);
    a whole-file pandas.read_csv takes about 13 x (the figures on 100 MB files: README)."""
    data = load_dataset("ml-latest-small", raw_dir=ml_small)
    order = np.argsort(-np.bincount(data.train.item, minlength=data.n_items), kind="stable")
    seen = np.zeros((data.n_users, data.n_items), dtype=bool)
    for part in (data.train, data.valid):
        seen[part.user, part.item] = True
    path = tmp_path / "large.tsv"
    n_rows = 0
    with open(path, "w") as fh:
        fh.write("user\titem\trank\n")
        for u in np.unique(data.test.user)[:250]:
            items = data.item_ids[order[~seen[u, order]]]
            fh.write("".join(f"{data.user_ids[u]}\t{i}\t{r}\n" for r, i in enumerate(items, start=1)))
            n_rows += len(items)
    size = path.stat().st_size
    assert size > 30e6
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(ml_small)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["rows"] == n_rows
    growth = figures["peak"] - figures["before"]
    assert growth < 3 * size + 64 * 2**20, f"reading {size / 1e6:.0f} MB took {growth / 2**20:.0f} MiB"


def _ranx_or_skip():
    try:
        import ranx  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("ranx not installed: `pip install -e '.[dev]'`; the TREC agreement test must run in CI")
        pytest.skip("ranx not installed: `pip install -e '.[dev]'`")
    import warnings

    warnings.filterwarnings("ignore", module="ranx")
    from ranx import Qrels, Run, evaluate

    return Qrels, Run, evaluate


def _qrels(split_dir: Path) -> dict[str, dict[str, int]]:
    """The test split's relevant items per user, built from the exported test.tsv."""
    test = pd.read_csv(split_dir / "test.tsv", sep="\t", dtype=str)
    qrels: dict[str, dict[str, int]] = {}
    for user, item in zip(test["user"], test["item"]):
        qrels.setdefault(user, {})[item] = 1
    return qrels


def test_trec_runs_score_the_same_in_ranx(bpr_run, odd_ml: Path, tmp_path: Path) -> None:  # noqa: F811
    Qrels, Run, evaluate = _ranx_or_skip()
    _, run_dir = bpr_run
    # a model's run (leave-one-out: one relevant item per user)
    assert main(["data", "export-split", "--data", "synthetic-ml", "--raw-dir", str(odd_ml), "--out", str(tmp_path / "loo")]) == 0
    trec = tmp_path / "bpr.trec"
    assert main(["evaluate", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"), "--write-predictions", str(trec)]) == 0
    ours = evaluate_predictions_file(trec, "synthetic-ml", {}, raw_dir=str(odd_ml))["metrics"]
    theirs = evaluate(Qrels.from_dict(_qrels(tmp_path / "loo")), Run.from_file(str(trec), kind="trec"), ["ndcg@10", "recall@10"])
    assert 0 < ours["ndcg@10"] < 1 and 0 < ours["recall@10"] < 1
    assert abs(ours["ndcg@10"] - theirs["ndcg@10"]) < 1e-9 and abs(ours["recall@10"] - theirs["recall@10"]) < 1e-9
    # hand-written lists on the ratio split: several relevant items per user, so the ideal DCG
    # and the recall denominators differ between users
    ratio = {"split": "ratio"}
    assert main(["data", "export-split", "--data", "synthetic-ml", "--raw-dir", str(odd_ml), "--set", "split=ratio", "--out", str(tmp_path / "ratio")]) == 0
    data = load_dataset("synthetic-ml", DataConfig(split="ratio"), odd_ml)
    counts = np.bincount(data.train.item, minlength=data.n_items)
    seen: dict[int, set[int]] = {}
    for part in (data.train, data.valid):
        for u, i in zip(part.user.tolist(), part.item.tolist()):
            seen.setdefault(u, set()).add(i)
    rng = np.random.default_rng(0)
    lines = []
    for u in np.unique(data.test.user).tolist():
        noisy = np.argsort(-(counts + rng.normal(0, 3, data.n_items)), kind="stable")
        top = [i for i in noisy.tolist() if i not in seen.get(u, set())][:15]
        lines += [f"{data.user_ids[u]} Q0 {data.item_ids[i]} {r} {1 / r!r} hand" for r, i in enumerate(top, start=1)]
    hand = _write(tmp_path / "hand.run", lines)
    qrels = _qrels(tmp_path / "ratio")
    assert max(len(v) for v in qrels.values()) > 1
    ours = evaluate_predictions_file(hand, "synthetic-ml", ratio, raw_dir=str(odd_ml))["metrics"]
    theirs = evaluate(Qrels.from_dict(qrels), Run.from_file(str(hand), kind="trec"), ["ndcg@10", "recall@10"])
    assert 0 < ours["ndcg@10"] < 1 and 0 < ours["recall@10"] < 1
    assert abs(ours["ndcg@10"] - theirs["ndcg@10"]) < 1e-9 and abs(ours["recall@10"] - theirs["recall@10"]) < 1e-9
