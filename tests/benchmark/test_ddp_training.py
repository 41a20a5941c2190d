"""`run --devices 2 --strategy ddp` (2 gloo processes through the CLI) trains to the quality of a
1-process run: the data module's per-rank shards, per-rank negative sampling and torchmetrics'
metric sync together give the same result as one process, up to seed-to-seed noise.

Setting: BPR on simulated data with a strong personal signal (300 users, 100 items, low
temperature, no drift), lr 0.01, the same effective batch (256 on one process, 128 on each of
two), early stopping. Measured seed-to-seed spread of test NDCG@10 (seeds 0, 1, 2): one process
0.274, 0.280, 0.267 (std 0.007); two processes 0.253, 0.272, 0.271. A single DDP run then differs
from the 3-seed single-process mean with a standard deviation of about 0.007 * sqrt(1 + 1/3)
= 0.008, so the tolerance of 0.03 is about 3.7 of those; both sit far above Pop (0.096), so
the comparison is between two models that learned."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.data.simulator import SimulationConfig, write_movielens
from benchmark.runner import resolve, run

ROOT = Path(__file__).resolve().parents[2]
TRAIN = {"lr": 0.01, "max_epochs": 30}
TOLERANCE = 0.03


@pytest.fixture(scope="module")
def personal_ml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "personal-ml"
    write_movielens(SimulationConfig(n_users=300, n_items=100, mean_interactions=25, temperature=0.2, pop_sigma=0.3, drift=0.0, seed=5), out)
    return out


def _single(raw: Path, out: Path, model: str, seed: int, overrides: dict) -> dict:
    os.environ.pop("BENCHMARK_RUN_ID", None)
    return run(resolve(model, "synthetic-ml", overrides, seed=seed, raw_dir=str(raw)), out, progress=False).to_dict()


def test_two_process_ddp_training_matches_one_process(personal_ml: Path, tmp_path: Path) -> None:
    single = [_single(personal_ml, tmp_path / "single", "bpr", seed, {**TRAIN, "batch_size": 256})["metrics"]["test"]["ndcg@10"] for seed in (0, 1, 2)]
    pop = _single(personal_ml, tmp_path / "pop", "pop", 0, {})["metrics"]["test"]["ndcg@10"]

    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("BENCHMARK_RUN_ID", None)
    argv = [sys.executable, "-m", "benchmark", "run", "--model", "bpr", "--data", "synthetic-ml", "--raw-dir", str(personal_ml),
            "--seed", "0", "--set", "lr=0.01", "--set", "batch_size=128", "--max-epochs", "30",
            "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--no-progress", "--out", str(out)]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run record:") == 1  # only rank 0 reports
    (path,) = out.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    assert record["config"]["train_config"]["devices"] == 2 and record["config"]["train_config"]["strategy"] == "ddp"
    assert record["dataset_stats"]["n_users"] == 300
    ddp = record["metrics"]["test"]["ndcg@10"]

    mean = statistics.fmean(single)
    assert min(single) > pop + 0.1 and ddp > pop + 0.1, (single, ddp, pop)  # both learned the personal signal
    assert abs(ddp - mean) <= TOLERANCE, f"DDP test NDCG@10 {ddp:.4f} vs 1-process {single} (mean {mean:.4f})"


class _Captured(Exception):
    pass


def test_num_nodes_reaches_lightning_from_run_evaluate_and_sweep(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import benchmark.runner as runner
    import benchmark.sweep as sweep
    from benchmark.cli import main

    seen: dict[str, object] = {}

    def capture(name: str):  # noqa: ANN202
        def fake(*args: object, **kwargs: object) -> None:
            seen[name] = (args, kwargs)
            raise _Captured

        return fake

    monkeypatch.setattr(runner, "run", capture("run"))
    monkeypatch.setattr(runner, "evaluate_checkpoint", capture("evaluate"))
    monkeypatch.setattr(sweep, "run_sweep", capture("sweep"))
    flags = ["--accelerator", "cpu", "--devices", "2", "--num-nodes", "3", "--strategy", "ddp"]
    for argv in (["run", "--model", "bpr", "--data", "synthetic-ml"], ["evaluate", "--checkpoint", "x.ckpt"],
                 ["sweep", "--model", "bpr", "--data", "synthetic-ml", "--trials", "2"]):  # fmt: skip
        with pytest.raises(_Captured):
            main([*argv, *flags])
    cfg = seen["run"][0][0]
    trainer = runner.make_trainer(cfg.train_config, max_epochs=1, callbacks=[], logger=False, progress=False)
    assert trainer.num_nodes == 3 and trainer.num_devices == 2 and cfg.train_config.hardware.strategy == "ddp"
    assert seen["evaluate"][1]["overrides"]["num_nodes"] == 3  # applied to the checkpoint's TrainConfig
    assert seen["sweep"][0][0].overrides == {"accelerator": "cpu", "devices": 2, "num_nodes": 3, "strategy": "ddp"}
    assert main(["evaluate", "--predictions", str(tmp_path / "p.tsv"), "--data", "synthetic-ml", "--num-nodes", "2"]) == 2
