"""`run --logger tensorboard|csv|wandb|mlflow`: Lightning's own loggers, the resolved config as
hyperparameters and the recorded metrics as final figures (TensorBoard's HParams), read back
from the files the loggers wrote; wandb and mlflow only when installed."""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from benchmark import loggers
from benchmark.cli import main
from benchmark.config import LOGGERS, TrainConfig, config_hash
from benchmark.errors import BenchmarkError


def _run(raw: Path, out: Path, *extra: str) -> tuple[dict[str, Any], Path]:
    argv = ["run", "--model", "bpr", "--data", "synthetic-ml", "--raw-dir", str(raw), "--out", str(out), "--no-progress", "--max-epochs", "2"]
    assert main([*argv, *extra]) == 0
    (file,) = out.glob("runs/*/result.json")
    return json.loads(file.read_text()), file.parent


@pytest.fixture(scope="module")
def tb_run(tiny_ml: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    return _run(tiny_ml, tmp_path_factory.mktemp("tb"))


@pytest.fixture(scope="module")
def csv_run(tiny_ml: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    return _run(tiny_ml, tmp_path_factory.mktemp("csv"), "--logger", "csv")


def _flat_config(record: dict[str, Any]) -> dict[str, Any]:
    config = record["config"]
    return {"model": config["model"], "data": config["data"], "seed": config["seed"], **config["data_config"], **config["train_config"],
            **config["model_config"]}  # fmt: skip


def test_tensorboard_holds_the_config_as_hparams_and_the_recorded_metrics(tb_run: tuple[dict[str, Any], Path]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    record, run_dir = tb_run
    assert record["config"]["train_config"]["logger"] == "tensorboard"
    assert record["logging"] == {"logger": "tensorboard", "dir": "tb"} and record["files"]["tensorboard"] == "tb"
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    flat = _flat_config(record)
    assert set(hparams) == set(flat) | {"config_hash"} and hparams["config_hash"] == record["config_hash"]
    for key, value in flat.items():  # TensorBoard keeps numbers, strings and booleans; other values as their str
        expected = value if isinstance(value, (bool, str)) else float(value) if isinstance(value, (int, float)) else str(value)
        assert hparams[key] == expected, key
    assert hparams["model"] == "bpr" and hparams["embedding_dim"] == 64.0 and hparams["ks"] == "[5, 10, 20]"
    # the HParams dashboard's metrics are the record's final figures, validation and test
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    tags = {info.name.tag for info in experiment.metric_infos}
    assert tags == {f"final/{stage}/{name}" for stage, values in record["metrics"].items() for name in values}
    for stage in ("valid", "test"):
        for name, value in record["metrics"][stage].items():
            (point,) = events.Scalars(f"final/{stage}/{name}")
            assert point.value == np.float32(value), (stage, name)  # TensorBoard stores float32
    assert events.Scalars("final/test/ndcg@10")[0].value == np.float32(record["metrics"]["test"]["ndcg@10"])
    # the curves the model logs are there too: validation NDCG@10 after every epoch
    curve = [p.value for p in events.Scalars("valid/ndcg@10")]
    assert curve[: len(record["valid_curve"])] == [np.float32(p["ndcg@10"]) for p in record["valid_curve"]]
    assert "test/ndcg@10" in events.Tags()["scalars"]


def test_csv_logger_writes_the_curves_and_the_recorded_metrics(csv_run: tuple[dict[str, Any], Path], tb_run: tuple[dict[str, Any], Path]) -> None:
    record, run_dir = csv_run
    assert record["config"]["train_config"]["logger"] == "csv" and record["logging"] == {"logger": "csv", "dir": "csv"}
    assert record["files"]["csv"] == "csv" and "tensorboard" not in record["files"] and not (run_dir / "tb").exists()
    with open(run_dir / "csv" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    final = [r for r in rows if r.get("final/test/ndcg@10")]
    assert len(final) == 1
    for stage in ("valid", "test"):
        for name, value in record["metrics"][stage].items():
            assert float(final[0][f"final/{stage}/{name}"]) == value, (stage, name)  # written as full-precision text
    curve = [float(r["valid/ndcg@10"]) for r in rows if r.get("valid/ndcg@10")]
    assert curve[:2] == pytest.approx([p["ndcg@10"] for p in record["valid_curve"]], rel=1e-6)  # logged as float32
    hparams = yaml.safe_load((run_dir / "csv" / "hparams.yaml").read_text())
    assert hparams["config_hash"] == record["config_hash"] and hparams["lr"] == record["config"]["model_config"]["lr"]
    # where a run is logged is not what it computes: the same config hash and the same figures
    tb_record, _ = tb_run
    assert record["config_hash"] == tb_record["config_hash"] and record["metrics"] == tb_record["metrics"]


def test_logger_is_a_typed_key_left_out_of_the_config_hash() -> None:
    assert LOGGERS == ("tensorboard", "csv", "wandb", "mlflow") and TrainConfig().logging.logger == "tensorboard"
    assert TrainConfig().overridden({"logger": "csv"}).flat()["logger"] == "csv"
    with pytest.raises(BenchmarkError, match="logger='nope'.*one of"):
        TrainConfig().overridden({"logger": "nope"})
    base = {"model": "bpr", "train_config": {"max_epochs": 3}}
    assert config_hash({**base, "train_config": {"max_epochs": 3, "logger": "mlflow"}}) == config_hash(base)
    assert config_hash({**base, "train_config": {"max_epochs": 4}}) != config_hash(base)


@pytest.mark.parametrize("kind", ["wandb", "mlflow"])
def test_a_missing_optional_logger_names_its_extra(kind: str, tiny_ml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec(kind) is not None:
        pytest.skip(f"{kind} is installed here")
    argv = ["run", "--model", "pop", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(tmp_path), "--no-progress", "--logger", kind]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"the {kind} logger needs the {kind} package" in err and f'pip install -e ".[{kind}]"' in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused before the run started
    assert kind in (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]


class _Fake:
    """Stands in for a Lightning logger class: keeps its keyword arguments and logged metrics."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.logged: list[dict[str, Any]] = []

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.logged.append(dict(metrics))


def _pretend_installed(monkeypatch: pytest.MonkeyPatch, name: str, fake: type) -> None:
    import lightning.pytorch.loggers as pl_loggers

    monkeypatch.setattr(loggers, "_installed", lambda module: True)
    monkeypatch.setattr(pl_loggers, name, fake)
    # a fresh cache for the test: the subclass of the fake never outlives it
    monkeypatch.setattr(loggers, "_mlflow_class", functools.lru_cache(maxsize=1)(loggers._mlflow_class.__wrapped__))


def _unset(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset ``names`` for the test and restore them (also when the code under test sets them)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_wandb_logger_is_offline_unless_a_mode_is_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _pretend_installed(monkeypatch, "WandbLogger", _Fake)
    _unset(monkeypatch, "WANDB_MODE", "WANDB_PROJECT")
    made = loggers.make_logger("wandb", tmp_path / "run", "run-1")
    assert made.kwargs == {"name": "run-1", "save_dir": str(tmp_path / "run"), "project": "llm4rec-bench", "offline": True}
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    made = loggers.make_logger("wandb", tmp_path / "run", "run-1")
    assert made.kwargs["offline"] is False and made.kwargs["project"] == "mine"


def test_mlflow_logger_uses_a_file_store_in_the_run_folder_and_valid_metric_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _pretend_installed(monkeypatch, "MLFlowLogger", _Fake)
    _unset(monkeypatch, "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE")
    made = loggers.make_logger("mlflow", tmp_path / "run", "run-1")
    assert isinstance(made, _Fake) and type(made).__name__ == "BenchmarkMLFlowLogger"
    assert made.kwargs == {"experiment_name": "llm4rec-bench", "run_name": "run-1", "tracking_uri": (tmp_path / "run" / "mlruns").resolve().as_uri()}
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"  # MLflow 3 opens a file store only when allowed
    made.log_metrics({"valid/ndcg@10": 0.5, "train/loss": 1.0})
    assert made.logged == [{"valid/ndcg_at_10": 0.5, "train/loss": 1.0}]  # MLflow refuses '@' in names
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///shared.db")
    assert loggers.make_logger("mlflow", tmp_path / "run", "run-1").kwargs["tracking_uri"] == "sqlite:///shared.db"


def test_log_final_passes_the_metrics_with_the_hyperparameters_to_tensorboard_only(tmp_path: Path) -> None:
    class _Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, Any]] = []

        def log_hyperparams(self, params: Any, metrics: Any = None, step: Any = None) -> None:
            self.calls.append(("hparams", (params, metrics)))

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            self.calls.append(("metrics", (metrics, step)))

        def save(self) -> None:
            self.calls.append(("save", None))

        def finalize(self, status: str) -> None:
            self.calls.append(("finalize", status))

    recorder = _Recorder()
    loggers.log_start(recorder, {"lr": 0.1})
    loggers.log_final(recorder, {"lr": 0.1}, {"valid": {"ndcg@10": 0.2}, "test": {"ndcg@10": 0.3}}, step=7)
    assert recorder.calls == [("hparams", ({"lr": 0.1}, None)), ("metrics", ({"final/valid/ndcg@10": 0.2, "final/test/ndcg@10": 0.3}, 7)),
                              ("save", None), ("finalize", "success")]  # fmt: skip
    tb = loggers.make_logger("tensorboard", tmp_path, "run-1")
    calls: list[Any] = []
    tb.log_hyperparams = lambda params, metrics=None, step=None: calls.append((params, metrics, step))  # type: ignore[method-assign]
    loggers.log_start(tb, {"lr": 0.1})
    loggers.log_final(tb, {"lr": 0.1}, {"test": {"ndcg@10": 0.3}}, step=7)
    assert calls == [({"lr": 0.1}, {"final/test/ndcg@10": 0.3}, 7)]  # HParams need the metrics with the config
    with pytest.raises(BenchmarkError, match="unknown logger 'nope'"):
        loggers.require("nope")
