"""The model contract (DESIGN.md): every recommender is a `RecModule`.

A model implements training (``training_step`` / ``configure_optimizers``) and ONE of
``score`` (dense scorers) or ``recommend`` (generative models). It never masks seen
items, never takes the top K and never computes metrics: the harness attaches an
``Evaluator`` (benchmark.evaluation) before fitting, and the shared ``validation_step``
/ ``test_step`` below hand every evaluation batch to it.

Batches served by ``RecDataModule`` (all LongTensors; ``pad = n_items``):

- ``pairwise``:   users [B], pos_items [B], neg_items [B, num_negatives]
- ``sequential``: users [B], input_seq [B, L], target_seq [B, L]; windows of a user's
  chronological training sequence, left-padded with ``pad``; ``target_seq[:, t]`` is
  the item that follows ``input_seq[:, t]`` (``pad`` where there is none).
- evaluation:     users [B], history [B, L] (the most recent L items before the
  evaluated period, left-padded, most recent last; L = max(history_length, 1)),
  seen_rows / seen_items [nnz] (row in the batch, item id: every item to mask),
  rel_rows / rel_items [m] (the relevant held-out items).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import lightning.pytorch as L
import torch

if TYPE_CHECKING:
    from benchmark.evaluation import Evaluator

TrainBatchKind = Literal["pairwise", "sequential"]


def adam(parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one (CPU and CUDA float tensors).

    Same algorithm as the default implementation (results equal to float rounding); on
    this 2-core CPU it makes the optimiser step of embedding models about 2x faster, and
    that step dominates a BPR/LightGCN epoch.
    """
    params = [p for p in parameters if p.requires_grad]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


@dataclass(frozen=True)
class BatchSpec:
    """What training batches a model needs from the RecDataModule."""

    kind: TrainBatchKind
    batch_size: int
    num_negatives: int = 1
    history_length: int = 0  # items of history in evaluation batches (0: the model ignores it)
    # sequential: batches of windows of similar length with equal target counts, padding columns
    # trimmed (RecDataModule, LengthBucketSampler); same steps per epoch, far less padding
    bucket_batches: bool = False


class RecModule(L.LightningModule):
    """Base class of every registered model.

    Subclasses set ``self.config`` (a dataclass with at least ``batch_size``) in
    ``__init__`` and override ``batch_spec`` when they need more than pairwise batches.
    """

    train_batches: ClassVar[TrainBatchKind] = "pairwise"
    #: True for models that use item side information: the harness then extracts (or loads
    #: from the cache) the dataset's ``ItemFeatures`` and passes them as ``features=``.
    needs_item_features: ClassVar[bool] = False
    #: True for graph models: the harness passes the training split's (users, items) as
    #: ``train_pairs=`` at construction (also when a checkpoint is restored).
    needs_train_graph: ClassVar[bool] = False
    #: True for models that learn from review texts: the harness passes the training split's
    #: (user, item, text) rows as ``texts=`` (benchmark.data.reviews; never a held-out review).
    needs_interaction_texts: ClassVar[bool] = False
    #: True for models that read the item table itself (GenRec's titles): passed as ``items=``.
    needs_item_table: ClassVar[bool] = False
    #: Streaming protocol (benchmark/streaming.py): False opts out of real-time updates (the
    #: adaptive figures then equal the frozen ones). A class or instance attribute, so an
    #: ablation (a config of the same class) can set it in ``__init__``.
    supports_adaptation: bool = True
    #: True when ``training_step`` weights its loss by ``batch["weights"]`` ([B] pairwise,
    #: [B, L] sequential, aligned with ``target_seq``); else streaming applies recency
    #: weights by weighted sampling of the update rows.
    supports_sample_weights: bool = False
    #: True for models that generate natural-language explanations through ``explain``; the
    #: harness then explains held-out test pairs and scores the texts (benchmark.runner)
    generates_explanations: bool = False

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.evaluator: Evaluator | None = None
        self.evaluation_results: dict[str, dict[str, float]] = {}

    #: training steps per logged ``train/loss`` (a running mean over them). Lightning's
    #: ``self.log`` costs ~0.6 ms per call on this CPU (it re-applies ``.to(device)`` to the
    #: stored result), a third of a BPR step; the logger writes every 10 steps anyway.
    train_loss_every: ClassVar[int] = 10

    def log_train_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Log the running mean of the training loss every ``train_loss_every`` steps (and at
        the epoch's last batch), on the progress bar and to the logger."""
        trainer = self._trainer
        if trainer is None:  # called outside a Trainer (unit tests)
            return
        value = loss.detach() * batch_size
        self._loss_sum = value if getattr(self, "_loss_sum", None) is None else self._loss_sum + value
        self._loss_count = getattr(self, "_loss_count", 0) + batch_size
        step = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # batches of this epoch so far
        last = isinstance(trainer.num_training_batches, int) and step >= trainer.num_training_batches
        if step % self.train_loss_every == 0 or last:
            self.log("train/loss", self._loss_sum / self._loss_count, prog_bar=True, batch_size=self._loss_count)
            self._loss_sum, self._loss_count = None, 0

    # --- what the data module must serve -------------------------------------------
    def batch_spec(self) -> BatchSpec:
        cfg = self.config  # type: ignore[attr-defined]
        return BatchSpec(
            kind=self.train_batches,
            batch_size=cfg.batch_size,
            num_negatives=getattr(cfg, "num_negatives", 1),
            history_length=getattr(cfg, "max_seq_length", 0),
            bucket_batches=getattr(cfg, "bucket_batches", False),
        )

    def adaptation_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters the streaming protocol updates with momentum SGD (default: every
        trainable one; LLM4Rec narrows it to its adapters and fusion layers)."""
        return [p for p in self.parameters() if p.requires_grad]

    # --- the contract: implement one of these --------------------------------------
    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores of every item for the batch's users: FloatTensor [B, n_items].

        Return a fresh tensor: the harness masks seen items in place.
        """
        raise NotImplementedError

    def recommend(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        """Top-k item ids for the batch's users (generative models): LongTensor [B, k]."""
        raise NotImplementedError

    def explain(self, batch: dict[str, torch.Tensor], items: torch.Tensor) -> list[str]:
        """One explanation per row of an evaluation ``batch`` for the item ``items[row]``
        (models with ``generates_explanations``)."""
        raise NotImplementedError

    @classmethod
    def is_generative(cls) -> bool:
        return cls.recommend is not RecModule.recommend and cls.score is RecModule.score

    # --- evaluation is the harness's job --------------------------------------------
    def attach_evaluator(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def _evaluate(self, batch: dict[str, torch.Tensor]) -> None:
        if self.evaluator is None:
            raise RuntimeError("no Evaluator attached: the harness attaches one before fit/test")
        self.evaluator.update(self, batch)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def on_validation_epoch_start(self) -> None:
        self._reset_evaluator()

    def on_test_epoch_start(self) -> None:
        self._reset_evaluator()

    def _reset_evaluator(self) -> None:
        if self.evaluator is not None:
            self.evaluator.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("valid")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        assert self.evaluator is not None
        values = self.evaluator.compute()  # synced across processes by torchmetrics
        self.evaluation_results[stage] = values  # exact (float64) values; logging casts to float32
        self.log_dict({f"{stage}/{name}": value for name, value in values.items()}, sync_dist=False)
