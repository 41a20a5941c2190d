"""`perf data`: a tiny smoke test here; the full-size measurements are `-m slow` (minutes, GBs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli import main


def test_perf_data_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "perf.json"
    argv = ["perf", "data", "--like", "yelp", "--users", "300", "--items", "100", "--interactions", "3000", "--repeats", "1", "--output", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["raw_interactions"] == 3000 and result["n_interactions"] > 0
    assert result["prepare_seconds"] > 0 and result["reload_seconds"] > 0 and result["prepare_peak_rss_gb"] > 0
    assert "reload the prepared cache" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("like", ["ml", "yelp", "amazon"])
def test_full_scale_targets(like: str, tmp_path: Path) -> None:
    """The issue's targets on simulator files of full size (median of 3 fresh processes)."""
    out = tmp_path / "perf.json"
    assert main(["perf", "data", "--like", like, "--full", "--repeats", "3", "--workdir", str(tmp_path / "work"), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["prepare_seconds"] <= result["target_prepare_seconds"]
    assert result["prepare_peak_rss_gb"] <= result["target_peak_rss_gb"]
    assert result["reload_seconds"] <= 5.0
