"""`perf eval` runs end to end at a tiny size (a smoke test; no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.cli import main


def test_perf_eval_smoke(tmp_path: Path, capsys) -> None:
    out = tmp_path / "perf.json"
    argv = ["perf", "eval", "--users", "96", "--items", "400", "--batch-size", "32", "--torchmetrics-users", "16", "--output", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "raw limit" in printed and "torchmetrics" in printed
    result = json.loads(out.read_text())
    for key in ("engine_users_per_s", "raw_users_per_s", "torchmetrics_users_per_s"):
        assert result[key] > 0
    assert result["engine_vs_raw"] == result["engine_users_per_s"] / result["raw_users_per_s"]
