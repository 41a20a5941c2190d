"""Full training runs on the real ml-latest-small slice (slow: `python -m pytest -m slow`).

The acceptance figures of the walking skeleton: SASRec clearly beats Pop and BPR beats Pop
under the chronological leave-one-out, full-ranking protocol, and Pop matches RecBole's
Pop (../shared/reference/recbole-ml-latest-small.md: NDCG@10 0.0191, HR@10 0.0410).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli import main

pytestmark = pytest.mark.slow


def _test_metrics(model: str, ml_small: Path, out: Path) -> dict[str, float]:
    argv = ["run", "--model", model, "--data", "ml-latest-small", "--raw-dir", str(ml_small), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    (record,) = out.glob("runs/*/result.json")
    return json.loads(record.read_text())["metrics"]["test"]


@pytest.fixture(scope="module")
def results(ml_small: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    return {m: _test_metrics(m, ml_small, tmp_path_factory.mktemp(m)) for m in ("pop", "bpr", "sasrec")}


def test_pop_matches_recbole(results: dict[str, dict[str, float]]) -> None:
    assert results["pop"]["ndcg@10"] == pytest.approx(0.0191, abs=0.002)
    assert results["pop"]["hr@10"] == pytest.approx(0.0410, abs=0.004)


def test_bpr_beats_pop(results: dict[str, dict[str, float]]) -> None:
    assert results["bpr"]["ndcg@10"] > results["pop"]["ndcg@10"]


def test_sasrec_clearly_beats_pop(results: dict[str, dict[str, float]]) -> None:
    assert results["sasrec"]["ndcg@10"] > 1.5 * results["pop"]["ndcg@10"]
    assert results["sasrec"]["hr@10"] > 1.5 * results["pop"]["hr@10"]
