"""Shared test helpers: hand-made batches in the RecDataModule formats and a tiny trainer.

Batch formats are those of ``benchmark.model`` (all LongTensors, ``pad = n_items``).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader

from benchmark.model import RecModule

Batch = dict[str, torch.Tensor]


def pairwise_batches(
    interactions: list[tuple[int, int]],
    n_items: int,
    batch_size: int,
    num_negatives: int = 1,
    seed: int = 0,
) -> list[Batch]:
    """One epoch of pairwise batches: every (user, item) once, in shuffled order, with
    ``num_negatives`` uniform negatives per row drawn from the items the user never had."""
    rng = random.Random(seed)
    seen: dict[int, set[int]] = {}
    for user, item in interactions:
        seen.setdefault(user, set()).add(item)
    rows = list(interactions)
    rng.shuffle(rows)
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        negatives = [
            rng.sample(sorted(set(range(n_items)) - seen[user]), num_negatives) for user, _ in chunk
        ]
        batches.append(
            {
                "users": torch.tensor([user for user, _ in chunk]),
                "pos_items": torch.tensor([item for _, item in chunk]),
                "neg_items": torch.tensor(negatives),
            }
        )
    return batches


def left_pad(sequences: list[list[int]], length: int, pad: int) -> torch.Tensor:
    """[len(sequences), length] LongTensor: the last ``length`` items of each sequence, left-padded."""
    rows = [([pad] * length + list(seq))[-length:] for seq in sequences]
    return torch.tensor(rows, dtype=torch.long)


def sequential_batches(sequences: dict[int, list[int]], n_items: int, window: int, batch_size: int) -> list[Batch]:
    """Sequential batches: each user's sequence cut, from its end, into windows of at most
    ``window`` (input item, next item) steps, left-padded with ``pad = n_items``."""
    users, inputs, targets = [], [], []
    for user, seq in sequences.items():
        for end in range(len(seq) - 1, 0, -window):
            start = max(end - window, 0)
            users.append(user)
            inputs.append(seq[start:end])
            targets.append(seq[start + 1 : end + 1])
    batches = []
    for lo in range(0, len(users), batch_size):
        hi = lo + batch_size
        batches.append(
            {
                "users": torch.tensor(users[lo:hi]),
                "input_seq": left_pad(inputs[lo:hi], window, n_items),
                "target_seq": left_pad(targets[lo:hi], window, n_items),
            }
        )
    return batches


def eval_batch(users: list[int], histories: list[list[int]], n_items: int, length: int) -> Batch:
    """The parts of an evaluation batch a scorer reads: users [B], history [B, length]
    (most recent item last, left-padded with ``pad = n_items``) and the known items
    ``seen_rows`` / ``seen_items`` (every item of each history)."""
    rows = [row for row, history in enumerate(histories) for _ in history]
    items = [item for history in histories for item in history]
    return {
        "users": torch.tensor(users), "history": left_pad(histories, length, n_items),
        "seen_rows": torch.tensor(rows, dtype=torch.long), "seen_items": torch.tensor(items, dtype=torch.long),
    }  # fmt: skip


class _LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if outputs:  # models without an optimizer (Pop) return nothing
            self.losses.append(float(outputs["loss"]))


def fit(model: RecModule, batches: list[Batch], epochs: int) -> list[float]:
    """Train with a Lightning Trainer on CPU (no validation); returns the loss of every step."""
    recorder = _LossRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=[recorder],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You defined a `validation_step` but have no `val_dataloader`")
        trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    return recorder.losses


@torch.no_grad()
def eval_scores(model: RecModule, batch: Batch) -> torch.Tensor:
    """``model.score(batch)`` in evaluation mode, without gradients."""
    model.eval()
    return model.score(batch)


def round_trip(model: RecModule, make: Callable[[], RecModule], tmp_path: Path) -> RecModule:
    """Save ``model``'s state_dict with torch.save and load it into a fresh ``make()``."""
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    fresh = make()
    fresh.load_state_dict(torch.load(path, weights_only=True))
    return fresh
