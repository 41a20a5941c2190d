"""What `run` prints: the results and the library's log lines, nothing from Lightning or torch
(no model summary table, no FutureWarning about ``torch.load``)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from benchmark.config import DataConfig, TrainConfig
from benchmark.data.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[3]
METRICS = {"ndcg", "hr", "recall", "mrr", "map", "ild", "coverage", "gini", "entropy", "novelty", "tailshare", "usergap-ndcg", "ndcg-true"}


@pytest.mark.parametrize("model", ["bpr", "pop"])  # pop: its checkpoint is saved by the runner, not by Lightning's callback
def test_run_without_progress_prints_only_the_results(model: str, tiny_ml: Path, tmp_path: Path) -> None:
    load_dataset("synthetic-ml", DataConfig(), str(tiny_ml))  # prepared (and cached) here: the run has nothing to log
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("BENCHMARK_RUN_ID", None)
    env.pop("PYTHONWARNINGS", None)  # Python's default warning filters, as a user has them
    argv = [sys.executable, "-m", "benchmark", "run", "--model", model, "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--max-epochs", "2",
            "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""  # the data were prepared: no library log line, and nothing else
    lines = done.stdout.splitlines()
    assert lines[0] == "" and lines[1] == f"{model} on synthetic-ml (synthetic data, split loo, full ranking)"
    assert lines[2].startswith("epochs ") and lines[3].split()[:2] == ["metric", "valid@5"] and set(lines[4]) <= {"-", " "}
    table = lines[5 : lines.index("", 5)]
    assert {line.split()[0] for line in table} == METRICS
    (record,) = tmp_path.glob("runs/*/result.json")
    assert lines[len(table) + 5 :] == ["", f"run record: {tmp_path / 'runs' / record.parent.name / 'result.json'}"]
    assert "FLOPs" not in done.stdout and "weights_only" not in done.stdout


def test_the_trainer_has_no_model_summary_and_silences_the_weights_only_warning() -> None:
    from lightning.pytorch.callbacks import ModelSummary

    from benchmark.runner import make_trainer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        trainer = make_trainer(TrainConfig(), max_epochs=1, callbacks=[], logger=False, progress=True)
        warnings.warn("You are using `torch.load` with `weights_only=False` (the current default value)", FutureWarning, stacklevel=1)
        warnings.warn("an unrelated FutureWarning", FutureWarning, stacklevel=1)
    assert not [c for c in trainer.callbacks if isinstance(c, ModelSummary)]  # with progress bars too
    assert [str(w.message) for w in caught] == ["an unrelated FutureWarning"]
