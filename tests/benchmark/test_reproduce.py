"""`reproduce ENTRY_OR_RUN`: a recorded run (or a leaderboard entry) run again with the current
code: identical figures at the same threads and versions, every difference reported otherwise,
and clear refusals for what cannot be reproduced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmark import reproduce as reproduce_module
from benchmark.cli import main
from benchmark.cli import reproduce as reproduce_cli
from benchmark.config import DataConfig
from benchmark.data.datasets import load_dataset
from benchmark.leaderboard.submission import predictions_hash
from benchmark.predictions import evaluation_datamodule, read_predictions
from benchmark.reproduce import reproduce


def _run(raw: Path, out: Path, model: str, *extra: str) -> tuple[dict[str, Any], Path]:
    argv = ["run", "--model", model, "--data", "synthetic-ml", "--raw-dir", str(raw), "--out", str(out), "--no-progress", *extra]
    assert main(argv) == 0
    (file,) = out.glob("runs/*/result.json")
    return json.loads(file.read_text()), file.parent


@pytest.fixture(scope="module")
def bpr_run(tiny_ml: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    return _run(tiny_ml, tmp_path_factory.mktemp("orig"), "bpr", "--max-epochs", "2")


def _altered(run_dir: Path, tmp_path: Path, change: Any) -> Path:
    copy = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, copy)
    record = json.loads((copy / "result.json").read_text())
    change(record)
    (copy / "result.json").write_text(json.dumps(record))
    return copy


def test_a_run_reproduces_exactly(bpr_run: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record, run_dir = bpr_run
    out = tmp_path / "again"
    argv = ["reproduce", str(run_dir), "--out", str(out), "--no-progress", "--output", str(tmp_path / "r.json"), "--logger", "csv"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.rstrip().endswith("identical") and "environment: the same code version, package versions and thread count" in printed
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["identical"] is True and result["same_environment"] is True and result["kind"] == "run"
    (seed,) = result["seeds"]
    n_metrics = len(record["metrics"]["valid"]) + len(record["metrics"]["test"])
    assert seed["seed"] == 0 and seed["differences"] == [] and seed["compared"] == n_metrics > 50
    again = json.loads((Path(seed["run_dir"]) / "result.json").read_text())  # a fresh run folder under --out
    assert Path(seed["run_dir"]).parent == out / "runs" and again["run_id"] != record["run_id"]
    assert again["tags"] == {"reproduces": record["run_id"]} and again["metrics"] == record["metrics"]
    assert again["config_hash"] == record["config_hash"] and again["hardware"]["torch_threads"] == record["hardware"]["torch_threads"]
    assert again["logging"]["logger"] == "csv" and record["logging"]["logger"] == "tensorboard"  # another logger: the same figures
    assert reproduce_cli.DEFAULT_OUT == reproduce_module.DEFAULT_OUT


def test_an_altered_record_reports_each_difference(bpr_run: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record, run_dir = bpr_run
    recorded = record["metrics"]["test"]["ndcg@10"]

    def alter(content: dict[str, Any]) -> None:
        content["metrics"]["test"]["ndcg@10"] = recorded + 0.001
        content["packages"]["torch"] = "0.0.1"
        content["code"] = {**content["code"], "git_sha": "0" * 40}

    copy = _altered(run_dir, tmp_path, alter)
    result = reproduce(copy, out=tmp_path / "again", progress=False)
    assert not result.identical and not result.same_environment
    (seed,) = result.seeds
    (difference,) = seed.differences
    assert (difference.metric, difference.recorded, difference.now) == ("test/ndcg@10", recorded + 0.001, recorded)
    assert difference.abs_diff == pytest.approx(0.001)
    assert [(c.name, c.recorded) for c in result.packages] == [("torch", "0.0.1")] and [c.name for c in result.code] == ["git_sha"]
    # the command line: the difference in a table with full precision, exit code 1
    assert main(["reproduce", str(copy), "--out", str(tmp_path / "cli"), "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert "1 of" in printed and "metrics differ" in printed and printed.rstrip().endswith("not identical")
    row = next(line for line in printed.splitlines() if line.startswith("test/ndcg@10"))
    assert row.split()[1:3] == [format(recorded + 0.001, ".17g"), format(recorded, ".17g")]
    assert "torch" in printed and "0.0.1" in printed and "git_sha" in printed


def test_a_run_whose_data_changed_is_refused_before_training(bpr_run: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, run_dir = bpr_run
    copy = _altered(run_dir, tmp_path, lambda content: content.update(dataset_fingerprint="0" * 64))
    assert main(["reproduce", str(copy), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "the data prepared now are not the recorded ones" in err and "0000000000000000... recorded" in err and "Nothing was run" in err
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: (root / "runs" / "r1").mkdir(parents=True) or root / "runs" / "r1", "has no run record (result.json)"),
        (lambda root: root / "runs" / "missing", "run folder"),
        (lambda root: "not-a-run", "is neither a run folder nor a leaderboard entry id"),
    ],
)
def test_a_folder_without_a_record_is_refused(setup: Any, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = setup(tmp_path)
    assert main(["reproduce", str(target), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "again").exists()


def _entry(digest: str, **extra: Any) -> dict[str, Any]:
    return {"model": f"M{digest[:4]}", "authors": ["A"], "predictions_sha256": digest, "metrics": {"ndcg@10": 0.1}, "date": "2026-01-01",
            "config": {"lr": 0.1}, "config_hash": "abc", **extra}  # fmt: skip


def _board(directory: Path, dataset: str, entries: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{dataset}.json").write_text(json.dumps({"dataset": dataset, "schema": 2, "entries": entries}))
    return directory


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("123456", "no leaderboard entry in"),
        ("abcdef", "2 leaderboard entries have ids starting with 'abcdef'; give more digits"),
        ("abc", "give 6 to 64 lowercase hex digits"),
        ("abcdef01", "its config is not a run config of this suite (it lacks model, data, data_config, train_config, model_config)"),
    ],
)
def test_entry_prefixes_unknown_ambiguous_or_not_runnable_are_refused(prefix: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boards = _board(tmp_path / "boards", "ml-latest-small", [_entry("abcdef01" + "1" * 56), _entry("abcdef02" + "2" * 56)])
    _board(boards, "ml-25m", [_entry("99" * 32)])
    assert main(["reproduce", prefix, "--leaderboard-dir", str(boards), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    if prefix == "abcdef":  # both candidates are named
        assert "Mabcd" in err and err.count("ml-latest-small:") == 2
    assert not (tmp_path / "again").exists()


def test_an_entry_reproduces_its_lists_and_figures(tiny_ml: Path, tmp_path: Path) -> None:
    """An entry made from a run as `submit --run` makes one: its seed's lists and their figures
    (scored by `evaluate --predictions`); reproducing it gives the same lists and figures."""
    record, run_dir = _run(tiny_ml, tmp_path / "orig", "pop")
    lists, scored = tmp_path / "lists.tsv", tmp_path / "scored.json"
    assert main(["evaluate", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"), "--write-predictions", str(lists)]) == 0
    assert main(["evaluate", "--predictions", str(lists), "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--output", str(scored)]) == 0
    reported = json.loads(scored.read_text())  # every figure submit keeps (no ndcg-true: an entry's scoring knows no ground truth)
    figures = {k: v for k, v in reported.items() if k not in ("eval_protocol", "n_test_users", "n_users_missing") and not k.startswith("ndcg-true")}
    data = load_dataset("synthetic-ml", DataConfig(), str(tiny_ml))
    digest = predictions_hash(read_predictions(lists, data, evaluation_datamodule(data), 20, "tsv").items)
    config = {k: v for k, v in record["config"].items() if k != "seed"}
    seeds = [{"seed": record["seed"], "predictions_sha256": digest, "metrics": figures, "code": record["code"]}]
    boards = _board(tmp_path / "boards", "ml-latest-small", [_entry(digest, config=config, seeds=seeds, dataset_fingerprint=record["dataset_fingerprint"])])

    result = reproduce(digest[:12], leaderboard_dir=boards, raw_dir=str(tiny_ml), out=tmp_path / "again", progress=False)
    assert result.kind == "entry" and result.target == f"ml-latest-small entry {digest[:12]}" and result.model == "pop"
    (seed,) = result.seeds
    assert seed.lists_recorded == seed.lists_now == digest and seed.differences == [] and seed.compared == len(figures) > 30
    assert result.identical and result.code == [] and result.packages == [] and result.threads is None
    assert any("no package versions" in note for note in result.notes)
    assert (seed.run_dir / reproduce_module.PREDICTIONS_FILE).is_file()
