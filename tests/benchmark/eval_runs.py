"""Session fixtures shared by the evaluation tests: tiny simulated data with an odd number of
test users (201) and one short BPR run on it (import the fixtures into a test module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.data.simulator import SimulationConfig, write_movielens

N_USERS = 201  # odd: DDP on 2 processes gets shards of 101 and 100 users


@pytest.fixture(scope="session")
def odd_ml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "odd-ml"
    write_movielens(SimulationConfig(n_users=N_USERS, n_items=120, mean_interactions=20, seed=3), out)
    return out


def run_model(raw: Path, out: Path, model: str, *extra: str) -> tuple[dict, Path]:
    argv = ["run", "--model", model, "--data", "synthetic-ml", "--raw-dir", str(raw), "--out", str(out), "--no-progress"]
    assert main([*argv, "--set", "eval_item_group=year", *extra]) == 0
    (record,) = out.glob("runs/*/result.json")
    return json.loads(record.read_text()), record.parent


@pytest.fixture(scope="session")
def bpr_run(odd_ml: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """(record, run folder) of a 2-epoch BPR run on ``odd_ml``."""
    return run_model(odd_ml, tmp_path_factory.mktemp("bpr"), "bpr", "--max-epochs", "2")


@pytest.fixture(scope="session")
def pop_run(odd_ml: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    return run_model(odd_ml, tmp_path_factory.mktemp("pop"), "pop")
