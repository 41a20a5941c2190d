"""`evaluate --checkpoint --devices 2 --strategy ddp` (2 gloo processes through the CLI) reports
what one process reports, on data whose number of test users (201) is odd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.benchmark.eval_runs import N_USERS, bpr_run, odd_ml  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_ddp_evaluate_equals_single_process(bpr_run, tmp_path: Path) -> None:  # noqa: F811
    record, run_dir = bpr_run
    per_user = pd.read_parquet(run_dir / "per_user_test.parquet")
    assert len(per_user) == N_USERS and N_USERS % 2 == 1  # every user is a test user; shards of 101 and 100
    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("BENCHMARK_RUN_ID", None)
    argv = [sys.executable, "-m", "benchmark", "evaluate", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
            "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--set", "eval_item_group=year", "--output", str(out)]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("\nndcg ") == 1  # only rank 0 reports
    ddp = json.loads(out.read_text())
    single = record["metrics"]["test"]
    assert {"ndcg@10", "ild@10", "coverage@10", "gini@10", "usergap-ndcg@10", "groupdisparity@10"} <= set(single)
    assert set(ddp) - {"eval_seconds", "eval_protocol"} == set(single)
    for key, value in single.items():
        assert ddp[key] == pytest.approx(value, abs=1e-6), key
