"""RecModule.log_train_loss: a running mean of the training loss, logged every N steps and at an epoch's end."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers.logger import Logger
from torch import nn

from benchmark.model import RecModule


class _Recorder(Logger):
    """Keeps every logged (step, metrics) in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows.append((int(step or 0), dict(metrics)))


class _ConstantLoss(RecModule):
    """Loss of batch i = w * (i + 1) with w = 1 fixed (lr 0): the expected means are known."""

    def __init__(self) -> None:
        super().__init__(n_users=1, n_items=1)
        self.w = nn.Parameter(torch.ones(()))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.w * batch.float().sum()
        self.log_train_loss(loss, batch_size=2 if batch_idx % 2 else 1)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_train_loss_is_a_batch_weighted_running_mean_every_ten_steps() -> None:
    batches = [torch.tensor([i + 1]) for i in range(12)]  # losses 1..12; batch sizes 1, 2, 1, 2, ...
    recorder = _Recorder()
    trainer = L.Trainer(max_epochs=1, logger=recorder, log_every_n_steps=1, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu")  # fmt: skip
    trainer.fit(_ConstantLoss(), train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    logged = [(step, m["train/loss"]) for step, m in recorder.rows if "train/loss" in m]
    weights = [2 if i % 2 else 1 for i in range(12)]
    first = sum((i + 1) * w for i, w in enumerate(weights[:10])) / sum(weights[:10])
    last = (11 * 1 + 12 * 2) / 3  # the epoch's last two batches
    values = [round(v, 6) for _, v in logged]
    # Lightning may hand the logger the latest value again at a step that logged nothing new
    assert list(dict.fromkeys(values)) == [round(first, 6), round(last, 6)]
    assert logged[0][0] == 9 and logged[-1][0] == 11  # first after the 10th batch; the last batch's mean at the end
