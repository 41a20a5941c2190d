"""Shared fixtures: an isolated cache per test session, the real data slices, tiny simulated data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.data.simulator import SimulationConfig, write_movielens

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ML_SMALL = SHARED_DATA / "ml-latest-small"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the user's ~/.cache or $BENCHMARK_DATA from tests."""
    os.environ["BENCHMARK_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("BENCHMARK_DATA", None)
    os.environ.pop("BENCHMARK_RUN_ID", None)


@pytest.fixture(autouse=True)
def _fresh_run_id() -> None:
    os.environ.pop("BENCHMARK_RUN_ID", None)


@pytest.fixture(scope="session")
def ml_small() -> Path:
    if not (ML_SMALL / "ratings.csv").is_file():
        pytest.skip(f"real data slice not found at {ML_SMALL} (the project expects ../shared beside it)")
    return ML_SMALL


@pytest.fixture(scope="session")
def tiny_ml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated MovieLens-format dataset (200 users, 120 movies)."""
    out = tmp_path_factory.mktemp("sim") / "tiny-ml"
    write_movielens(SimulationConfig(n_users=200, n_items=120, mean_interactions=20, seed=3), out)
    return out
