"""A run's experiment logger: one of Lightning's own loggers, chosen by the ``logger`` key.

- ``tensorboard`` (default): ``TensorBoardLogger`` under ``<run>/tb/`` (``tensorboard --logdir runs``).
- ``csv``: ``CSVLogger``, ``<run>/csv/metrics.csv`` and ``hparams.yaml``.
- ``wandb`` (extra ``wandb``): ``WandbLogger`` under ``<run>/wandb/``, offline unless
  ``WANDB_MODE`` is set (``wandb sync`` uploads an offline run later); project
  ``$WANDB_PROJECT`` or ``llm4rec-bench``.
- ``mlflow`` (extra ``mlflow``): ``MLFlowLogger`` to ``$MLFLOW_TRACKING_URI`` (e.g. a shared
  ``sqlite:///mlflow.db`` or a server), else a local file store ``<run>/mlruns/``
  (``mlflow ui --backend-store-uri <run>/mlruns``; MLflow 3 keeps that store in maintenance mode
  and opens it only with ``MLFLOW_ALLOW_FILE_STORE=true``, which is then set unless given);
  experiment ``$MLFLOW_EXPERIMENT_NAME`` or ``llm4rec-bench``. MLflow refuses ``@`` in metric
  names, so ``ndcg@10`` is logged there as ``ndcg_at_10``.

Every logger gets the training curves the model logs (``train/loss``, ``valid/<metric>`` per
epoch, ``test/<metric>``), the run's resolved config as flat hyperparameters
(``hyperparameters``) and, when the run ends, its recorded validation and test figures as
``final/valid/<metric>`` and ``final/test/<metric>`` (``log_final``). In TensorBoard the two
form the HParams dashboard (``log_hyperparams(params, metrics)``), so runs compare by config.
The wandb and mlflow packages are imported only when asked for.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from benchmark.config import LOGGERS
from benchmark.errors import BenchmarkError

PROJECT = "llm4rec-bench"  # default wandb project and MLflow experiment
#: where each logger writes inside the run folder (MLflow: with the default file store)
LOG_DIRS = {"tensorboard": "tb", "csv": "csv", "wandb": "wandb", "mlflow": "mlruns"}
#: logger -> (module it needs, the extra that installs it)
EXTRAS = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}
FINAL_PREFIX = "final"


def require(kind: str) -> None:
    """Refuse a logger whose package is not installed, naming the extra that installs it."""
    if kind not in LOGGERS:
        raise BenchmarkError(f"unknown logger {kind!r}; choose from {', '.join(LOGGERS)}")
    if kind in EXTRAS:
        module, extra = EXTRAS[kind]
        if not _installed(module):
            raise BenchmarkError(
                f"the {kind} logger needs the {module} package, which is not installed: pip install -e \".[{extra}]\" "
                f"(or pip install \"llm4rec-bench[{extra}]\"), or choose another logger ({', '.join(k for k in LOGGERS if k not in EXTRAS)} need nothing more)"
            )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def make_logger(kind: str, run_dir: str | Path, run_id: str) -> Any:
    """The Lightning logger ``kind`` for the run in ``run_dir`` (module docstring)."""
    require(kind)
    run_dir = Path(run_dir)
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run_dir), name=LOG_DIRS[kind], version="", default_hp_metric=False)
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name=LOG_DIRS[kind], version="")
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        # offline unless the user chose a mode; wandb writes <save_dir>/wandb/
        return WandbLogger(name=run_id, save_dir=str(run_dir), project=os.environ.get("WANDB_PROJECT") or PROJECT,
                           offline="WANDB_MODE" not in os.environ)  # fmt: skip
    logging.getLogger("lightning.pytorch.loggers.mlflow").setLevel(logging.ERROR)  # "Experiment ... not found. Creating it."
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:  # the local file store, which MLflow 3 serves only when allowed explicitly
        uri = (run_dir / LOG_DIRS[kind]).resolve().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return _mlflow_class()(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT, run_name=run_id, tracking_uri=uri)


def mlflow_key(name: str) -> str:
    """A metric name MLflow accepts: ``valid/ndcg@10`` -> ``valid/ndcg_at_10``."""
    return name.replace("@", "_at_")


@lru_cache(maxsize=1)
def _mlflow_class() -> type:
    from lightning.pytorch.loggers import MLFlowLogger

    class BenchmarkMLFlowLogger(MLFlowLogger):  # type: ignore[misc]
        """MLFlowLogger with the suite's metric names made valid for MLflow."""

        def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
            super().log_metrics({mlflow_key(k): v for k, v in metrics.items()}, step)

    return BenchmarkMLFlowLogger


def hyperparameters(resolved: dict[str, Any], config_hash: str) -> dict[str, Any]:
    """The resolved run config as one flat mapping (its keys are unique across sections):
    model, data, seed, config_hash, then every data, training and model key."""
    flat: dict[str, Any] = {"model": resolved["model"], "data": resolved["data"], "seed": resolved["seed"], "config_hash": config_hash}
    for section in ("data_config", "train_config", "model_config"):
        flat.update(resolved.get(section) or {})
    return flat


def final_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"final/valid/ndcg@10": ..., "final/test/ndcg@10": ...}`` from a record's ``metrics``."""
    return {f"{FINAL_PREFIX}/{stage}/{name}": float(value) for stage, values in metrics.items() for name, value in values.items()}


def log_start(logger: Any, params: dict[str, Any]) -> None:
    """The hyperparameters, as the run starts, for loggers that show them while it trains
    (TensorBoard's HParams need the final metrics with them: ``log_final``)."""
    if logger and not _is_tensorboard(logger):
        logger.log_hyperparams(params)


def log_final(logger: Any, params: dict[str, Any], metrics: dict[str, dict[str, float]], *, step: int) -> None:
    """The recorded validation and test figures (and, for TensorBoard, the hyperparameters
    with them: the HParams dashboard), then flush and close the logger."""
    if not logger:
        return
    figures = final_metrics(metrics)
    if _is_tensorboard(logger):
        logger.log_hyperparams(params, figures, step=step)
    else:
        logger.log_metrics(figures, step=step)
    logger.save()
    logger.finalize("success")


def describe(kind: str, logger: Any, run_dir: Path) -> dict[str, Any]:
    """What the run record keeps of its logger: the kind, where it wrote (relative to the run
    folder when inside it) and, for wandb and MLflow, the run's id there."""
    out: dict[str, Any] = {"logger": kind}
    if kind == "mlflow":
        uri = str(getattr(logger, "_tracking_uri", "") or "")
        local = (run_dir / LOG_DIRS[kind]).resolve().as_uri()
        out.update(tracking_uri=LOG_DIRS[kind] if uri == local else uri, experiment=getattr(logger, "_experiment_name", None),
                   run=getattr(logger, "run_id", None))  # fmt: skip
        return out
    out["dir"] = LOG_DIRS[kind]
    if kind == "wandb":
        mode = os.environ.get("WANDB_MODE", "online")
        out["mode"] = "offline" if getattr(logger, "_offline", False) or mode in ("offline", "dryrun") else mode
        out["run"] = getattr(getattr(logger, "_experiment", None), "id", None)
    return out


def _is_tensorboard(logger: Any) -> bool:
    from lightning.pytorch.loggers import TensorBoardLogger

    return isinstance(logger, TensorBoardLogger)
