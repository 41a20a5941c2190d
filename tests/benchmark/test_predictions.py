"""`data export-split` and `evaluate --predictions`: the official split in raw ids, external
top-K lists scored by the same engine, and clear reports for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.data.datasets import load_dataset
from tests.benchmark.eval_runs import N_USERS, bpr_run, odd_ml  # noqa: F401


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


def test_bad_prediction_files_get_a_full_report(odd_ml: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    data = load_dataset("synthetic-ml", raw_dir=odd_ml)
    user, other = data.user_ids[0], data.user_ids[1]
    trained = data.item_ids[data.train.item[data.train.user == 0][0]]
    fresh = [i for i in data.item_ids if i not in set(data.item_ids[data.train.item[data.train.user <= 1]])][:4]
    rows = [
        ("user", "item", "rank"),
        (user, fresh[0], 1),
        (user, fresh[0], 2),  # line 3: repeated item
        (user, trained, 3),  # line 4: a training item
        ("nobody", fresh[1], 1),  # line 5: unknown user
        (other, "999999999", 1),  # line 6: unknown item
        (other, fresh[2], "x"),  # line 7: rank not a number
        (other, fresh[3], 4),  # other's ranks: 4 only -> not 1..n
    ]
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join("\t".join(str(c) for c in row) for row in rows) + "\n")
    code = main(["evaluate", "--predictions", str(path), "--data", "synthetic-ml", "--raw-dir", str(odd_ml)])
    err = capsys.readouterr().err
    assert code == 2 and "nothing was scored" in err and "Traceback" not in err
    for expected in ("1 repeated items in a user's list: line 3", "already interacted", "line 4", "1 rows with an unknown user: line 5 (nobody)",
                     "1 rows with an unknown item: line 6 (999999999)", "not a positive integer: line 7 (x)", "ranks missing"):  # fmt: skip
        assert expected in err, expected
    assert main(["evaluate", "--predictions", str(path)]) == 2  # --data is required with --predictions
    assert "needs --data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--predictions", str(path), "--checkpoint", "x.ckpt"])  # exactly one of the two
