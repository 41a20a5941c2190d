"""``python -m benchmark perf train``: seconds per training epoch of a model, and where they go.

It prepares the dataset and builds the model exactly as ``run`` does, then trains for
``--epochs`` epochs through Lightning with validation switched off and reports the median
seconds per epoch (the first epoch is reported apart: it pays one-off warm-up costs).
With ``--profile`` it also times, on the same batches, the two parts of an epoch that a
fast epoch must keep small: building the batches (data loading and negative sampling)
and the model's steps (forward, backward, optimiser) without Lightning, so the Lightning
loop's own share is the remainder.

``--threads`` sets torch's intra-op threads (RecBole's reference figures used 1 thread per
job; compare like with like).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as L
import torch

from benchmark.data.datamodule import RecDataModule
from benchmark.errors import BenchmarkError
from benchmark.data.datasets import load_dataset
from benchmark.runner import EpochTimer, RunConfig, _trainer, build_model


@dataclass
class TrainPerf:
    model: str
    data: str
    threads: int
    epochs: int
    batches_per_epoch: int
    first_epoch_seconds: float
    median_epoch_seconds: float
    epoch_seconds: list[float]
    batch_build_seconds: float | None = None  # per epoch, median
    step_seconds: float | None = None  # per epoch without Lightning, median

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seconds_per_epoch": round(self.median_epoch_seconds, 4),
            "first_epoch_seconds": round(self.first_epoch_seconds, 4),
            "epochs": self.epochs,
            "batches_per_epoch": self.batches_per_epoch,
            "threads": self.threads,
        }
        if self.batch_build_seconds is not None and self.step_seconds is not None:
            out["batch_build_seconds_per_epoch"] = round(self.batch_build_seconds, 4)
            out["step_seconds_per_epoch"] = round(self.step_seconds, 4)
            out["lightning_overhead_seconds_per_epoch"] = round(self.median_epoch_seconds - self.batch_build_seconds - self.step_seconds, 4)
        return out


def _manual_epochs(model: L.LightningModule, dm: RecDataModule, epochs: int) -> tuple[float, float]:
    """Median per-epoch seconds of batch building and of bare optimisation steps."""
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, (list, tuple)):
        optimizer = optimizer[0]
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    loader = dm.train_dataloader()
    model.log = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer attached
    model.train()
    build, step = [], []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        batches = list(loader)
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        for i, batch in enumerate(batches):
            optimizer.zero_grad(set_to_none=True)
            loss = model.training_step(batch, i)
            if loss is not None:
                loss.backward()
                optimizer.step()
        step.append(time.perf_counter() - start)
    return statistics.median(build), statistics.median(step)


def perf_train(cfg: RunConfig, *, epochs: int = 5, threads: int = 1, profile: bool = False, progress: bool = False) -> TrainPerf:
    if epochs < 2:
        raise BenchmarkError("--epochs must be at least 2 (the first epoch is reported apart)")
    torch.set_num_threads(threads)
    L.seed_everything(cfg.seed, verbose=False)
    data = load_dataset(cfg.data, cfg.data_config, cfg.raw_dir)
    model = build_model(cfg, data, progress=progress)
    dm = RecDataModule(data, model.batch_spec(), eval_batch_size=cfg.train_config.loop.eval_batch_size, seed=cfg.seed)
    timer = EpochTimer()
    trainer = _trainer(cfg.train_config, max_epochs=epochs, callbacks=[timer], logger=False, progress=progress)
    trainer.limit_val_batches = 0
    trainer.fit(model, datamodule=dm)
    seconds = timer.epoch_seconds
    result = TrainPerf(
        model=cfg.model, data=cfg.data, threads=threads, epochs=len(seconds), batches_per_epoch=len(dm.train_dataloader()),
        first_epoch_seconds=seconds[0], median_epoch_seconds=statistics.median(seconds[1:]), epoch_seconds=seconds,
    )
    if profile:
        fresh = build_model(cfg, data, progress=False)
        result.batch_build_seconds, result.step_seconds = _manual_epochs(fresh, dm, epochs)
    return result
