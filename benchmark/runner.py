"""The pipeline: train with early stopping, test the best checkpoint, write the record.

``Pipeline.build(cfg)`` turns a ``RunConfig`` into prepared data, the model and its data
module (what ``run``, ``evaluate``, sweeps and ``perf train`` all start from);
``run(cfg)`` trains and tests it and writes the run record (``benchmark.records``) to
``<out>/runs/<run_id>/result.json``, with per-user test metrics beside it
(``per_user_test.parquet``), the experiment logger's files (TensorBoard under ``tb/`` by
default, or CSV, wandb, MLflow: ``benchmark.loggers``) and checkpoints under
``checkpoints/`` (``best.ckpt``, and ``last.ckpt`` to resume from). The checkpoint carries
the resolved run configuration, so ``evaluate --checkpoint`` needs nothing else.

Run folders are never shared by two runs: every run gets a new id unless
``BENCHMARK_RUN_ID`` names one (SLURM, torchrun, a requeued job). A folder that exists is
refused, or with ``resume=True`` continued from its last checkpoint (the record says so in
``resumed``); a folder without a checkpoint to resume from is started clean. The record is
written when the run starts (``status: running``), and again when it ends (``completed``,
or ``failed`` with the error), so a killed run leaves a record that says it did not finish.
Checkpoints are read with ``torch.load(weights_only=True)``: a crafted file cannot run code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import statistics
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from benchmark.config import SECTIONS, DataConfig, TrainConfig, apply_overrides, config_hash
from benchmark.data.datamodule import RecDataModule
from benchmark.data.datasets import load_dataset
from benchmark.data.prepare import PreparedData
from benchmark.errors import BenchmarkError
from benchmark.compare import write_per_user
from benchmark.evaluation import Evaluator, SampledNegatives, rank, test_evaluator, test_negatives, true_relevance_for
from benchmark.loggers import LOG_DIRS, describe, hyperparameters, log_final, log_start, make_logger
from benchmark.loggers import require as require_logger
from benchmark.model import RecModule
from benchmark.provenance import code_version, hardware, package_versions, weight_digests, weight_files
from benchmark.records import RunRecord
from benchmark.registry import ModelSpec, get_model

MONITOR = "ndcg@10"
NEGATIVES_FILE = "sampled_negatives.npz"  # sampled protocol: the test negatives, with sampler and seed
CHECKPOINT_KEY = "benchmark_run"


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run; stored in the record and in the checkpoint."""

    model: str
    data: str
    raw_dir: str | None
    seed: int
    data_config: DataConfig
    train_config: TrainConfig
    model_config: Any

    def resolved(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "seed": self.seed,
            "data_config": dataclasses.asdict(self.data_config),
            "train_config": self.train_config.flat(),
            "model_config": dataclasses.asdict(self.model_config),
        }

    @property
    def hash(self) -> str:
        content = self.resolved()
        content.pop("seed")  # runs that differ only in seed share a config hash
        return config_hash(content)

    @classmethod
    def from_dict(cls, content: dict[str, Any], raw_dir: str | None) -> RunConfig:
        spec = get_model(content["model"])
        return cls(
            model=content["model"],
            data=content["data"],
            raw_dir=raw_dir,
            seed=content["seed"],
            data_config=DataConfig(**content["data_config"]),
            train_config=TrainConfig.from_flat(content["train_config"]),
            model_config=type(spec.config)(**content["model_config"]),
        )


def resolve(model: str, data: str, overrides: dict[str, Any], *, seed: int = 0, raw_dir: str | None = None) -> RunConfig:
    """Defaults < model's train defaults < ``overrides`` (config file, then --set)."""
    spec: ModelSpec = get_model(model)
    merged = {**spec.train_defaults, **overrides}
    sections = {section: section() for section in SECTIONS.values()}
    configs = apply_overrides({DataConfig: DataConfig(), **sections, type(spec.config): spec.config}, merged)
    train = TrainConfig(**{name: configs[section] for name, section in SECTIONS.items()})
    if 10 not in train.loop.ks:
        raise BenchmarkError(f"ks must include 10 (early stopping monitors {MONITOR}); got {train.loop.ks}")
    return RunConfig(model, data, raw_dir, seed, configs[DataConfig], train, configs[type(spec.config)])



# --- Lightning plumbing -----------------------------------------------------------------


class EpochTimer(Callback):
    """Training time per epoch, excluding the validation pass that ends it."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def _stop(self) -> None:
        if self._start is not None:
            self.epoch_seconds.append(time.perf_counter() - self._start)
            self._start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning has already switched the stage to "validating" here (trainer.training is
        # False), so no stage test: outside a training epoch _start is None and this is a no-op
        self._stop()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop()

    def state_dict(self) -> dict[str, Any]:  # kept in checkpoints: a resumed run keeps its earlier epochs
        return {"epoch_seconds": list(self.epoch_seconds)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch_seconds = list(state_dict.get("epoch_seconds", []))


class ValidationCurve(Callback):
    """Validation accuracy after every training epoch (the learning curve in the record)."""

    def __init__(self) -> None:
        self.points: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after the module's on_validation_epoch_end has computed the figures
        values = getattr(pl_module, "evaluation_results", {}).get("valid")
        if trainer.state.fn == "fit" and not trainer.sanity_checking and values is not None:
            self.points.append({"epoch": trainer.current_epoch + 1, **{k: float(v) for k, v in values.items()}})

    def state_dict(self) -> dict[str, Any]:
        return {"points": [dict(p) for p in self.points]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.points = [dict(p) for p in state_dict.get("points", [])]


class StoreRunConfig(Callback):
    """Puts the resolved run configuration into every checkpoint."""

    def __init__(self, content: dict[str, Any]) -> None:
        self.content = content

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.content


def _quiet_lightning() -> None:
    """Drop Lightning's start-up chatter and warnings that say nothing about the run (the
    suite reads every checkpoint itself with ``weights_only=True``, so torch's FutureWarning
    about ``torch.load``'s ``weights_only`` default, which some Lightning and torch versions
    raise on their own loads, says nothing about this run)."""
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*weights_only.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")  # DDP: the Evaluator's torchmetrics state is synced before logging
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def make_trainer(train: TrainConfig, *, max_epochs: int, callbacks: list[Callback], logger: Any, progress: bool) -> L.Trainer:
    _quiet_lightning()
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=train.hardware.accelerator,
        devices=train.hardware.devices,
        num_nodes=train.hardware.num_nodes,
        strategy=train.hardware.strategy,
        callbacks=callbacks,
        logger=logger,
        deterministic=train.loop.deterministic,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # RecDataModule shards itself (no padded duplicate users)
        enable_progress_bar=progress,
        enable_model_summary=False,  # its table (parameters, FLOPs) would stand among the results
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        log_every_n_steps=10,
    )


def build_model(cfg: RunConfig, data: PreparedData, *, progress: bool = True) -> RecModule:
    """The model of ``cfg`` for ``data``, given the side information its class declares it needs."""
    spec = get_model(cfg.model)
    # Graph models (LightGCN) build their graph from the training split before the first
    # step, and rebuild it when a checkpoint is restored through here.
    extra: dict[str, Any] = {"train_pairs": (data.train.user, data.train.item)} if spec.cls.needs_train_graph else {}
    if getattr(spec.cls, "needs_item_table", False):  # models that read item text (GenRec's titles)
        extra["items"] = data.items
    if getattr(spec.cls, "needs_interaction_texts", False):  # the training split's reviews only (benchmark.data.reviews)
        from benchmark.data.reviews import interaction_texts

        texts = interaction_texts(data, cfg.raw_dir)
        extra["texts"] = texts.train if texts is not None else None
    if not spec.cls.needs_item_features:
        return spec.cls(data.n_users, data.n_items, cfg.model_config, **extra)
    from benchmark.data.features import item_features  # sentence-transformers only when needed

    train = cfg.train_config
    features = item_features(
        data, text_encoder=train.features.text_encoder, image_encoder=train.features.image_encoder, raw_dir=cfg.raw_dir, progress=progress
    )
    return spec.cls(data.n_users, data.n_items, cfg.model_config, features=features, **extra)


@dataclasses.dataclass
class Pipeline:
    """What every command builds from a ``RunConfig``: prepared data, the model (with its
    validation evaluator attached) and the data module that serves both."""

    cfg: RunConfig
    data: PreparedData
    model: RecModule
    dm: RecDataModule

    @classmethod
    def build(cls, cfg: RunConfig, *, progress: bool = True, fingerprint: str | None = None) -> Pipeline:
        """``fingerprint``: the dataset the run was made on (a restored checkpoint); refused if
        the prepared data differ."""
        data = load_dataset(cfg.data, cfg.data_config, cfg.raw_dir)
        if fingerprint is not None and data.fingerprint != fingerprint:
            raise BenchmarkError(f"the prepared data no longer match the run's dataset fingerprint ({cfg.data}); were the raw files changed?")
        model = build_model(cfg, data, progress=progress)
        loop = cfg.train_config.loop
        model.attach_evaluator(Evaluator(data.n_items, ks=tuple(loop.ks)))
        dm = RecDataModule(
            data, model.batch_spec(), eval_batch_size=loop.eval_batch_size, seed=cfg.seed, num_workers=loop.num_workers,
            valid_users=loop.valid_users,
        )  # fmt: skip
        return cls(cfg, data, model, dm)

    def trainer(self, *, max_epochs: int | None = None, callbacks: list[Callback] | None = None, logger: Any = False,
                progress: bool = True) -> L.Trainer:  # fmt: skip
        train = self.cfg.train_config
        return make_trainer(train, max_epochs=max_epochs or train.loop.max_epochs, callbacks=callbacks or [], logger=logger, progress=progress)

    def test_evaluator(self, negatives: SampledNegatives | None = None) -> Evaluator:
        """The test pass's evaluator: every metric of the protocol (sampled negatives drawn now
        when not given), ``ndcg-true`` on simulated data."""
        train, seed = self.cfg.train_config, self.cfg.seed
        if train.evaluation.eval_protocol == "sampled" and negatives is None:
            negatives = test_negatives(self.dm, train, seed=seed)
        return test_evaluator(self.dm, train, seed=seed, negatives=negatives, true_relevance=true_relevance_for(self.data))


def _test(trainer: L.Trainer, model: RecModule, dm: RecDataModule, evaluator: Evaluator) -> tuple[dict[str, float], pd.DataFrame, float]:
    model.attach_evaluator(evaluator)
    start = time.perf_counter()
    trainer.test(model, datamodule=dm, verbose=False)
    seconds = time.perf_counter() - start
    per_user = pd.DataFrame(model.evaluator.per_user())
    if "user" in per_user:
        per_user.insert(0, "raw_user_id", dm.data.user_ids[per_user["user"].to_numpy()].astype(str))
        per_user["n_test_items"], per_user["test_item_popularity"] = relevant_item_popularity(dm, per_user["user"].to_numpy())
    return dict(model.evaluation_results["test"]), per_user, seconds


def relevant_item_popularity(dm: RecDataModule, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(number of relevant test items, their mean training interactions) per user: lets
    `collect` plot NDCG by the popularity of the item to be found (one item under loo)."""
    train_counts = np.bincount(dm.data.train.item, minlength=dm.data.n_items)
    relevant = dm.test_set.relevant
    n = relevant.lengths(users)
    rows, items = relevant.gather(users)
    total = np.bincount(rows, weights=train_counts[items], minlength=len(users))
    return n.astype(np.int64), total / np.maximum(n, 1)


EXPLANATIONS_FILE = "explanations.jsonl"
EXPLANATION_K = 10


@torch.no_grad()
def top_k_lists(model: RecModule, dm: RecDataModule, rows: np.ndarray, k: int, batch_size: int) -> dict[int, list[int]]:
    """Top-k items (seen ones masked, as in the test pass) of the test users at ``rows`` of
    ``dm.test_set``: {internal user id: item ids}."""
    model.eval()
    out: dict[int, list[int]] = {}
    for start in range(0, len(rows), batch_size):
        batch = {key: v.to(model.device) for key, v in dm.test_set[(0, 0, rows[start : start + batch_size])].items()}
        items, valid = rank(model, batch, k, n_items=dm.data.n_items)
        for user, row, ok in zip(batch["users"].tolist(), items.tolist(), valid.tolist()):
            out[user] = [item for item, good in zip(row, ok) if good]
    return out


def explanations(model: RecModule, dm: RecDataModule, train: TrainConfig, *, seed: int, raw_dir: str | None, run_dir: Path, write: bool) -> dict[str, Any] | None:
    """For models that generate explanations (``generates_explanations``, ``explain(batch, items)``):
    explain the held-out test pair of ``train.explanation.explanation_users`` test users (seeded sample;
    0 = all) and score the texts (``benchmark.metrics.text_metrics``): BLEU-4 and ROUGE-L
    against the user's own review of the item where the dataset has review text (the
    held-out reference, which the model never sees), feature match against the item's
    attributes, distinct-2. ``explanation_samples`` users also get an explanation of their
    top-1 recommendation; the samples go to ``explanations.jsonl``."""
    if not getattr(model, "generates_explanations", False):
        return None
    from benchmark.data.features import item_attributes
    from benchmark.data.reviews import interaction_texts
    from benchmark.metrics import text_metrics

    start = time.perf_counter()
    data, test_set = dm.data, dm.test_set
    rows = np.arange(len(test_set))
    if 0 < train.explanation.explanation_users < len(rows):
        rows = np.sort(np.random.default_rng([seed, 17]).choice(len(rows), train.explanation.explanation_users, replace=False))
    users = test_set.users[rows]
    rel_rows, rel_items = test_set.relevant.gather(users)
    first = np.unique(rel_rows, return_index=True)[1]
    items = rel_items[first]  # the (first) held-out test item of each user
    texts = interaction_texts(data, raw_dir)
    references: list[str] | None = None
    if texts is not None:
        lookup = dict(zip(zip(texts.test["user"].tolist(), texts.test["item"].tolist()), texts.test["text"].tolist()))
        with_text = np.array([(int(u), int(i)) in lookup for u, i in zip(users, items)], dtype=bool)
        rows, users, items = rows[with_text], users[with_text], items[with_text]
        references = [lookup[(int(u), int(i))] for u, i in zip(users, items)]
    if not len(rows):
        return None
    attributes = item_attributes(data.items)
    titles = data.items["title"].fillna("").astype(str).tolist() if "title" in data.items else [""] * data.n_items
    generated: list[str] = []
    for s in range(0, len(rows), train.loop.eval_batch_size):
        batch = {k: v.to(model.device) for k, v in test_set[(0, 0, rows[s : s + train.loop.eval_batch_size])].items()}
        generated += model.explain(batch, torch.as_tensor(items[s : s + train.loop.eval_batch_size]))
    metrics = text_metrics(generated, references, [attributes[int(i)] for i in items])
    metrics["seconds_per_explanation"] = (time.perf_counter() - start) / len(generated)
    n = min(train.explanation.explanation_samples, len(rows))
    top1 = top_k_lists(model, dm, rows[:n], 1, train.loop.eval_batch_size)
    samples: list[dict[str, Any]] = []
    for j in range(n):
        user, item = int(users[j]), int(items[j])
        samples.append({"user": str(data.user_ids[user]), "item": str(data.item_ids[item]), "title": titles[item], "kind": "test item",
                        "explanation": generated[j], "reference": references[j] if references is not None else None})  # fmt: skip
    picked = [j for j in range(n) if top1.get(int(users[j]))]
    if picked:
        batch = {k: v.to(model.device) for k, v in test_set[(0, 0, rows[picked])].items()}
        recommended = [top1[int(users[j])][0] for j in picked]
        for j, item, text in zip(picked, recommended, model.explain(batch, torch.as_tensor(recommended))):
            samples.append({"user": str(data.user_ids[int(users[j])]), "item": str(data.item_ids[item]), "title": titles[item], "kind": "top-1 recommendation",
                            "explanation": text, "reference": None})  # fmt: skip
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / EXPLANATIONS_FILE, "w", encoding="utf-8") as fh:
            for sample in samples:
                fh.write(json.dumps(sample, ensure_ascii=False, default=str) + "\n")
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "n_users": len(rows), "n_samples": len(samples),
            "reference": "reviews" if references is not None else "none", "file": EXPLANATIONS_FILE,
            "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip


def launch_rank() -> int:
    """This process's global rank as its launcher set it (0 for a single process, for the first
    process of Lightning's own DDP launch, and for rank 0 under torchrun or SLURM)."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def new_run_id(cfg: RunConfig) -> str:
    """``BENCHMARK_RUN_ID`` when set (SLURM, torchrun, a requeue; DDP processes share it),
    else a new id: a timestamp, the model, data and seed, and a random suffix."""
    given = os.environ.get("BENCHMARK_RUN_ID")
    if given:
        if not all(c.isalnum() or c in "-_." for c in given) or given.startswith("."):
            raise BenchmarkError(f"BENCHMARK_RUN_ID={given!r}: use letters, digits, '-', '_' and '.' only")
        return given
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{cfg.model}-{cfg.data}-s{cfg.seed}-{uuid.uuid4().hex[:6]}"


@contextmanager
def _shared_run_id(run_id: str) -> Iterator[None]:
    """The run id in the environment while the run lasts: the DDP processes Lightning starts
    inherit it; afterwards the process is as before (the next run gets its own id)."""
    before = os.environ.get("BENCHMARK_RUN_ID")
    os.environ["BENCHMARK_RUN_ID"] = run_id
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("BENCHMARK_RUN_ID", None)
        else:
            os.environ["BENCHMARK_RUN_ID"] = before


LAST_CHECKPOINT = "last.ckpt"


def claim_run_dir(run_dir: Path, *, resume: bool) -> dict[str, Any] | None:
    """Make ``run_dir`` this run's, or refuse. Returns what a resumed run continues from
    ({"checkpoint", "previous_status", "previous_started"}) or None for a fresh start."""
    if not run_dir.exists():
        return None
    last = run_dir / "checkpoints" / LAST_CHECKPOINT
    previous: RunRecord | None = None
    try:
        previous = RunRecord.read(run_dir)
    except BenchmarkError:
        pass
    if not resume:
        status = f" (its record says {previous.status!r})" if previous is not None else ""
        raise BenchmarkError(
            f"run folder {run_dir} exists{status}: another run has this id. Pass --resume to continue it from its last "
            "checkpoint, or give a new BENCHMARK_RUN_ID (unset, each run gets a new one). Nothing was changed."
        )
    if previous is not None and previous.completed:
        raise BenchmarkError(f"run {run_dir.name} has completed already; nothing to resume (its record: {run_dir / 'result.json'})")
    if not last.is_file():  # killed before its first checkpoint: nothing to continue, start clean
        shutil.rmtree(run_dir)
        return None
    return {"checkpoint": str(last), "previous_status": previous.status if previous else None,
            "previous_started": previous.started if previous else None}  # fmt: skip


def run(
    cfg: RunConfig, out_dir: str | Path = ".", *, progress: bool = True, tags: dict[str, Any] | None = None, resume: bool = False
) -> RunRecord:
    """Train ``cfg.model`` on ``cfg.data``, test the best checkpoint, write and return the run record.

    ``tags`` (e.g. ``{"sweep": study}`` for a sweep's re-runs) go into the record as ``tags``;
    ``resume``: continue a run whose folder exists from its last checkpoint (module docstring).
    """
    require_logger(cfg.train_config.logging.logger)  # a missing optional package stops the run before it starts
    started = dt.datetime.now(dt.timezone.utc)
    code = code_version()  # the code that runs: the working tree may change during a long run
    run_id = new_run_id(cfg)
    run_dir = Path(out_dir) / "runs" / run_id
    first = launch_rank() == 0
    resumed = claim_run_dir(run_dir, resume=resume) if first else None
    if not first and resume and (run_dir / "checkpoints" / LAST_CHECKPOINT).is_file():
        resumed = {"checkpoint": str(run_dir / "checkpoints" / LAST_CHECKPOINT)}  # every process resumes the same state
    with _shared_run_id(run_id):
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        if cfg.train_config.streaming.protocol == "streaming":
            from benchmark.streaming import check_streaming

            check_streaming(cfg.train_config)  # before training, not after
        pipeline = Pipeline.build(cfg, progress=progress)
        record = _start_record(cfg, pipeline.data, run_id, code, started, tags, resumed)
        if first:
            record.write(run_dir)
        try:
            _train_and_test(pipeline, record, run_dir, resumed, progress=progress, first=first)
        except BaseException as exc:
            record.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            record.extra["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            record.finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            if first:
                record.write(run_dir)
            raise
    return record


def _start_record(
    cfg: RunConfig, data: PreparedData, run_id: str, code: dict[str, Any], started: dt.datetime, tags: dict[str, Any] | None,
    resumed: dict[str, Any] | None,
) -> RunRecord:  # fmt: skip
    """The record as a run starts (status ``running``): what defines it and where it runs."""
    train = cfg.train_config
    return RunRecord(
        run_id=run_id, model=cfg.model, dataset=cfg.data, dataset_fingerprint=data.fingerprint, status="running", metrics={},
        data_source=data.source,
        dataset_stats={"n_users": data.n_users, "n_items": data.n_items, "n_interactions": data.n_interactions, **data.stats},
        split=data.config.split, eval_protocol=train.evaluation.eval_protocol, config=cfg.resolved(), config_hash=cfg.hash,
        seed=cfg.seed, code=code, packages=package_versions(),
        weights=weight_digests(weight_files(cfg.model_config, train, get_model(cfg.model).cls.needs_item_features)),
        hardware=hardware(), started=started.isoformat(timespec="seconds"), protocol=train.streaming.protocol, tags=tags or None,
        resumed=resumed, logging={"logger": train.logging.logger},
    )  # fmt: skip


def _train_and_test(pipeline: Pipeline, record: RunRecord, run_dir: Path, resumed: dict[str, Any] | None, *, progress: bool, first: bool) -> None:
    cfg, data, model, dm = pipeline.cfg, pipeline.data, pipeline.model, pipeline.dm
    train = cfg.train_config
    monitor = f"valid/{MONITOR}"
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="max", save_top_k=1, save_last=True,
        enable_version_counter=False,  # one best.ckpt per run: a resumed run overwrites its own, never best-v1.ckpt
    )  # fmt: skip
    timer, curve = EpochTimer(), ValidationCurve()
    stored = {**cfg.resolved(), "run_id": record.run_id, "dataset_fingerprint": data.fingerprint,
              "raw_dir": str(Path(cfg.raw_dir).resolve()) if cfg.raw_dir else None}  # fmt: skip
    callbacks = [checkpoint, EarlyStopping(monitor=monitor, mode="max", patience=train.loop.patience), timer, curve, StoreRunConfig(stored)]
    kind = train.logging.logger
    logger = make_logger(kind, run_dir, record.run_id)
    params = hyperparameters(cfg.resolved(), cfg.hash)
    trainer = pipeline.trainer(callbacks=callbacks, logger=logger, progress=progress)
    if trainer.is_global_zero:
        log_start(logger, params)

    fit_start = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=resumed["checkpoint"] if resumed else None, weights_only=True)
    train_seconds = time.perf_counter() - fit_start
    epochs = trainer.current_epoch
    best_epoch = epochs
    if not checkpoint.best_model_path:
        # Lightning saves only after an optimizer step; a model that trains by counting
        # (Pop) takes none, so its final state, which is also its best, is saved here.
        trainer.save_checkpoint(run_dir / "checkpoints" / "best.ckpt", weights_only=False)  # said: else Lightning logs its default
        checkpoint.best_model_path = str(run_dir / "checkpoints" / "best.ckpt")
    best = load_checkpoint(checkpoint.best_model_path)
    if checkpoint.best_model_score is not None:
        best_epoch = int(best["epoch"]) + 1  # saved during its (0-based) epoch
    model.load_state_dict(best["state_dict"])
    trainer.validate(model, datamodule=dm, verbose=False)
    valid = dict(model.evaluation_results["valid"])
    evaluator = pipeline.test_evaluator()
    test, per_user, eval_seconds = _test(trainer, model, dm, evaluator)
    # after the test pass, in this order: explanations read the tested model, streaming then updates it
    explained = explanations(model, dm, train, seed=cfg.seed, raw_dir=cfg.raw_dir, run_dir=run_dir, write=trainer.is_global_zero)
    if train.streaming.protocol == "streaming":
        from benchmark.streaming import run_stream

        record.streaming = run_stream(model, data, train, seed=cfg.seed)
    negatives = evaluator.negatives
    record.eval_protocol = evaluator.protocol
    if negatives is not None:
        record.eval_sampling = {"negatives": train.evaluation.eval_negatives, "sampler": train.evaluation.eval_sampler, "seed": cfg.seed}
    record.metrics = {"valid": valid, "test": test}
    record.valid_curve = curve.points
    record.best_epoch = best_epoch
    record.timings = {
        "train_seconds": round(train_seconds, 3),
        "epochs": epochs,
        "seconds_per_epoch": round(statistics.median(timer.epoch_seconds), 4) if timer.epoch_seconds else None,
        "eval_seconds": round(eval_seconds, 3),
    }
    record.explanations = explained
    record.finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record.status = "completed"
    if trainer.is_global_zero:
        log_final(logger, params, record.metrics, step=trainer.global_step)
        record.logging = describe(kind, logger, run_dir)
    local_logs = {kind: LOG_DIRS[kind]} if (record.logging or {}).get("tracking_uri", LOG_DIRS[kind]) == LOG_DIRS[kind] else {}
    record.files = {"checkpoint": "checkpoints/best.ckpt", "last_checkpoint": f"checkpoints/{LAST_CHECKPOINT}", "per_user": "per_user_test.parquet",
                    **local_logs, **({"sampled_negatives": NEGATIVES_FILE} if negatives is not None else {})}  # fmt: skip
    if trainer.is_global_zero:
        write_per_user(per_user, run_dir / "per_user_test.parquet", evaluator.protocol)
        if negatives is not None:
            negatives.save(run_dir / NEGATIVES_FILE, data.user_ids)
        record.write(run_dir)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's content, read with ``weights_only=True`` (tensors and plain data only, so a
    crafted file cannot run code); anything else is refused with a clear message."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BenchmarkError(f"checkpoint {path} not found") from None
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise BenchmarkError(
            f"{path} is not a checkpoint this suite can load safely ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "checkpoints are read as weights and plain data only, never as code"
        ) from None


def evaluate_checkpoint(
    path: str | Path, *, raw_dir: str | None = None, devices: int | None = None, accelerator: str | None = None, strategy: str | None = None,
    eval_protocol: str | None = None, overrides: dict[str, Any] | None = None, write_predictions: str | Path | None = None,
    predictions_format: str | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Re-evaluate a saved run's best checkpoint on its test split."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"checkpoint {path} not found")
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise BenchmarkError(f"{path} is not a checkpoint written by `python -m benchmark run`")
    content = checkpoint[CHECKPOINT_KEY]
    cfg = RunConfig.from_dict(content, raw_dir or content.get("raw_dir"))
    given = {"devices": devices, "accelerator": accelerator, "strategy": strategy, "eval_protocol": eval_protocol}
    cfg.train_config = cfg.train_config.overridden({**(overrides or {}), **{k: v for k, v in given.items() if v is not None}})
    pipeline = Pipeline.build(cfg, fingerprint=content["dataset_fingerprint"], progress=progress)
    data, model, dm = pipeline.data, pipeline.model, pipeline.dm
    model.load_state_dict(checkpoint["state_dict"])
    trainer = pipeline.trainer(max_epochs=1, progress=progress)
    train = cfg.train_config
    negatives = None
    saved = path.parent.parent / NEGATIVES_FILE
    if train.evaluation.eval_protocol == "sampled" and saved.is_file():
        negatives = SampledNegatives.load(saved)
        if (negatives.sampler, negatives.seed, negatives.negatives.shape[1]) != (train.evaluation.eval_sampler, cfg.seed, train.evaluation.eval_negatives):
            negatives = None  # other sampling parameters asked for: draw them (deterministic in the seed)
    evaluator = pipeline.test_evaluator(negatives)
    test, per_user, eval_seconds = _test(trainer, model, dm, evaluator)
    if write_predictions and trainer.is_global_zero:
        from benchmark.predictions import write_predictions as write_lists

        write_lists(model, dm, write_predictions, evaluator.max_k, fmt=predictions_format)
    return {
        "is_global_zero": trainer.is_global_zero,
        "eval_protocol": evaluator.protocol,
        **({"eval_sampling": {"negatives": train.evaluation.eval_negatives, "sampler": train.evaluation.eval_sampler, "seed": cfg.seed}} if evaluator.negatives else {}),
        "per_user": per_user,
        "run_id": content.get("run_id"),
        "model": cfg.model,
        "dataset": cfg.data,
        "data_source": data.source,
        "dataset_fingerprint": data.fingerprint,
        "metrics": {"test": test},
        "timings": {"eval_seconds": round(eval_seconds, 3)},
    }

