"""Pop: most-popular-items baseline.

Every user gets the same scores: the number of training interactions of each item
(the "MostPop" baseline of the recommender-systems literature, e.g. Cremonesi et al.,
"Performance of Recommender Algorithms on Top-N Recommendation Tasks", RecSys 2010;
RecBole's ``Pop``).

"Training" is one pass over the pairwise training batches: each training interaction
appears once per epoch as ``(user, pos_item)`` and is counted; the sampled negatives
are ignored (counting them, as RecBole does by default, adds noise: see
shared/reference/recbole-ml-latest-small.md, section 5.3). Counts are accumulated per
epoch, summed over processes under DDP at the end of the epoch and then replace the
stored counts, so a second epoch gives the same counts, not twice them.

Defaults: batch_size 65536 (counting is cheap; big batches only save Python
overhead), one epoch.

DDP note: ``torch.nn.parallel.DistributedDataParallel`` refuses to wrap a module without
a parameter that requires a gradient, so Pop holds one empty (zero-element) parameter
that is never used; no backward pass ever runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from benchmark.model import RecModule


@dataclass
class PopConfig:
    """Hyper-parameters of Pop."""

    batch_size: int = 65536
    """Pairwise training batch size; it affects only speed, never the counts."""
    epochs_needed: int = 1
    """Epochs the harness needs to run: one pass counts every training interaction."""


class Pop(RecModule):
    """Scores every item by its number of training interactions, the same for all users."""

    def __init__(self, n_users: int, n_items: int, config: PopConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        self.automatic_optimization = False
        # int64 so that mixed/half precision never rounds the counts
        self.register_buffer("item_counts", torch.zeros(n_items, dtype=torch.long))
        # counts of the epoch in progress; a plain attribute, not a buffer, so that DDP's
        # buffer broadcast and checkpoints never see a half-counted epoch
        self._epoch_counts: torch.Tensor | None = None
        # empty and unused: lets DDP wrap the module (see the module docstring)
        self._ddp_anchor = torch.nn.Parameter(torch.zeros(0))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return []  # nothing to optimise (an empty list, unlike None, raises no warning)

    def on_train_epoch_start(self) -> None:
        self._epoch_counts = torch.zeros(self.n_items, dtype=torch.long, device=self.device)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        assert self._epoch_counts is not None, "on_train_epoch_start has not run"
        self._epoch_counts += torch.bincount(batch["pos_items"], minlength=self.n_items)

    def on_validation_epoch_start(self) -> None:
        # Lightning validates at the end of a training epoch *before* on_train_epoch_end,
        # so the epoch's counts must be in place here already.
        self._finish_epoch()
        super().on_validation_epoch_start()

    def on_train_epoch_end(self) -> None:
        self._finish_epoch()

    def _finish_epoch(self) -> None:
        """Publish the counts of the epoch that just ended (summed over processes); no-op otherwise."""
        counts = self._epoch_counts
        if counts is None:
            return
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        self.item_counts.copy_(counts)
        self._epoch_counts = None

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        n_rows = batch["users"].shape[0]
        # a fresh [B, n_items] tensor: the evaluator may mask it in place
        return self.item_counts.to(torch.float32).repeat(n_rows, 1)
