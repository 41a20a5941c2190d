"""``perf train``: epoch timing through Lightning and its breakdown."""

from __future__ import annotations

import json
import math

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.data.datasets import load_dataset
from benchmark.runner import resolve


def test_perf_train_times_epochs_and_splits_them(tiny_ml, tmp_path, capsys) -> None:
    out = tmp_path / "perf.json"
    code = main(["perf", "train", "--model", "bpr", "--data", "ml-latest-small", "--raw-dir", str(tiny_ml),
                 "--epochs", "3", "--profile", "--set", "batch_size=256", "--output", str(out)])  # fmt: skip
    assert code in (0, None)
    figures = json.loads(out.read_text())
    cfg = resolve("bpr", "ml-latest-small", {}, raw_dir=str(tiny_ml))
    n_train = len(load_dataset("ml-latest-small", cfg.data_config, str(tiny_ml)).train.user)
    assert figures["batches_per_epoch"] == math.ceil(n_train / 256)
    assert figures["epochs"] == 3 and figures["threads"] == 1
    assert figures["seconds_per_epoch"] > 0 and figures["first_epoch_seconds"] > 0
    assert figures["batch_build_seconds_per_epoch"] > 0 and figures["step_seconds_per_epoch"] > 0
    # the breakdown is a split of the measured epoch, so its parts cannot exceed it by much
    assert figures["batch_build_seconds_per_epoch"] + figures["step_seconds_per_epoch"] < 3 * figures["seconds_per_epoch"]
    assert "seconds_per_epoch" in capsys.readouterr().out


def test_perf_train_needs_two_epochs(tiny_ml) -> None:
    import pytest

    from benchmark.perf_train import perf_train

    with pytest.raises(BenchmarkError, match="at least 2"):
        perf_train(resolve("pop", "ml-latest-small", {}, raw_dir=str(tiny_ml)), epochs=1)
