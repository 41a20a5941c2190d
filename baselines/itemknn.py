"""ItemKNN: item-based collaborative filtering with cosine similarity and shrinkage.

Reference: Sarwar et al., "Item-Based Collaborative Filtering Recommendation
Algorithms", WWW 2001; Deshpande & Karypis, "Item-Based Top-N Recommendation
Algorithms", TOIS 2004. Follows RecBole's ``ItemKNN`` (the peer implementation we are
compared with): on the binary user-item training matrix R,

    sim(i, j) = <R[:, i], R[:, j]> / (||R[:, i]|| * ||R[:, j]|| + shrink),   sim(j, j) = 0,

only the ``k`` most similar items i of each target item j are kept (a column-wise top-k,
as RecBole's ``ComputeSimilarity``), and score(u, j) = sum over the user's known items i
of sim(i, j). The known items are those the evaluation batch masks (``seen_items``): the
training items at validation, training + validation items at test, the suite's one rule
for every model that reads a user's history (README, Protocol); the similarities come
from the training matrix only. (RecBole adds 1e-6 to the denominator; we only guard against 0/0
for items without training interactions, which score 0.)

"Training" is one pass over the pairwise training batches: each training interaction
appears once per epoch as ``(user, pos_item)`` and is recorded; the sampled negatives
are ignored. As in ``baselines.pop``, the epoch's pairs are gathered over processes
under DDP when the epoch's data is complete (Lightning validates *before*
``on_train_epoch_end``, hence ``on_validation_epoch_start``) and then replace the stored
matrix, so a second epoch gives the same model. The similarity is computed in blocks of
target items (sparse R^T times a dense block of R's columns), so memory stays bounded:
never a dense n_items x n_items matrix.

Stored (``state_dict``, so checkpoints restore it): the top-k neighbours of every item
(``nbr_items`` / ``nbr_sims`` [n_items, k]).

Defaults (RecBole's): k 100, shrink 0, batch_size 65536 (it affects only speed), one
epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.distributed as dist

from benchmark.model import RecModule


@dataclass
class ItemKNNConfig:
    """Hyper-parameters of ItemKNN."""

    k: int = 100
    """Neighbours kept per item (RecBole's ``k``); capped at n_items."""
    shrink: float = 0.0
    """Added to the cosine denominator; damps similarities resting on few co-occurrences."""
    batch_size: int = 65536
    """Pairwise training batch size; it affects only speed, never the model."""
    epochs_needed: int = 1
    """Epochs the harness needs to run: one pass sees every training interaction."""
    block_elements: int = 2**25
    """Upper bound on the elements of a dense block built while computing similarities (128 MiB in float32)."""


def _all_gather_1d(values: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-d tensor of varying length over all DDP processes."""
    size = torch.tensor([values.numel()], device=values.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=values.dtype, device=values.device)
    padded[: values.numel()] = values
    gathered = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes)])


class ItemKNN(RecModule):
    """Item-based CF: score(u, j) = sum of the top-k cosine similarities sim(i, j) over the user's items i."""

    def __init__(self, n_users: int, n_items: int, config: ItemKNNConfig) -> None:
        super().__init__(n_users, n_items)
        self.config = config
        self.automatic_optimization = False
        self.k = max(1, min(config.k, n_items))
        self.register_buffer("nbr_items", torch.zeros(n_items, self.k, dtype=torch.long))
        self.register_buffer("nbr_sims", torch.zeros(n_items, self.k, dtype=torch.float32))
        # pairs of the epoch in progress; plain attributes, never seen by DDP or checkpoints
        self._epoch_users: list[torch.Tensor] | None = None
        self._epoch_items: list[torch.Tensor] | None = None
        self._weights: torch.Tensor | None = None  # sparse [target item, source item], built lazily
        # empty and unused: lets DDP wrap the module (see baselines.pop)
        self._ddp_anchor = torch.nn.Parameter(torch.zeros(0))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return []

    def on_train_epoch_start(self) -> None:
        self._epoch_users, self._epoch_items = [], []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        assert self._epoch_users is not None and self._epoch_items is not None, "on_train_epoch_start has not run"
        self._epoch_users.append(batch["users"].detach())
        self._epoch_items.append(batch["pos_items"].detach())

    def on_validation_epoch_start(self) -> None:
        # Lightning validates before on_train_epoch_end: the model must be built here already.
        self._finish_epoch()
        super().on_validation_epoch_start()

    def on_train_epoch_end(self) -> None:
        self._finish_epoch()

    def _finish_epoch(self) -> None:
        """Build the model from the epoch that just ended (pairs of all processes); no-op otherwise."""
        if self._epoch_users is None or self._epoch_items is None:
            return
        empty = torch.zeros(0, dtype=torch.long, device=self.device)
        users = torch.cat(self._epoch_users) if self._epoch_users else empty
        items = torch.cat(self._epoch_items) if self._epoch_items else empty
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            users, items = _all_gather_1d(users), _all_gather_1d(items)
        self.fit_pairs(users, items)
        self._epoch_users = self._epoch_items = None

    @torch.no_grad()
    def fit_pairs(self, users: torch.Tensor, items: torch.Tensor) -> None:
        """Compute the top-k similarities of the binary training matrix of ``(users, items)``."""
        device = self.nbr_sims.device
        keys = torch.unique(users.to(device) * self.n_items + items.to(device))  # sorted, duplicates dropped
        rows, cols = keys // self.n_items, keys % self.n_items
        r = torch.sparse_coo_tensor(
            torch.stack([rows, cols]), torch.ones(len(keys), device=device), (self.n_users, self.n_items), check_invariants=True
        ).coalesce()
        r_t = r.t().coalesce()  # [n_items, n_users]
        norms = torch.bincount(cols, minlength=self.n_items).to(torch.float32).sqrt()  # binary: sqrt(count)
        block = max(1, min(self.n_items, self.config.block_elements // max(self.n_users, self.n_items)))
        for start in range(0, self.n_items, block):
            stop = min(start + block, self.n_items)
            # dense columns start:stop of R, [n_users, b]
            cols_block = torch.zeros(self.n_users, stop - start, device=device)
            in_block = (cols >= start) & (cols < stop)
            cols_block[rows[in_block], cols[in_block] - start] = 1.0
            dots = torch.sparse.mm(r_t, cols_block)  # [n_items (source i), b (target j)]
            denom = norms.unsqueeze(1) * norms[start:stop].unsqueeze(0) + self.config.shrink
            sims = torch.where(denom > 0, dots / denom.clamp_min(1e-30), torch.zeros_like(dots))
            targets = torch.arange(start, stop, device=device)
            sims[targets, targets - start] = 0.0  # no self-similarity
            top = sims.topk(self.k, dim=0)  # the k most similar source items of each target
            self.nbr_items[start:stop] = top.indices.T
            self.nbr_sims[start:stop] = top.values.T
        self._weights = None

    def _weight_matrix(self) -> torch.Tensor:
        """Sparse [n_items (target j), n_items (source i)] matrix of the kept similarities."""
        if self._weights is None or self._weights.device != self.nbr_sims.device:
            targets = torch.arange(self.n_items, device=self.nbr_items.device).repeat_interleave(self.k)
            self._weights = torch.sparse_coo_tensor(
                torch.stack([targets, self.nbr_items.reshape(-1)]), self.nbr_sims.reshape(-1), (self.n_items, self.n_items),
                check_invariants=True,
            ).coalesce()
        return self._weights

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users = batch["users"]
        history = torch.zeros(len(users), self.n_items, device=self.nbr_sims.device)
        history[batch["seen_rows"].to(history.device), batch["seen_items"].to(history.device)] = 1.0
        # scores[b, j] = sum_i history[b, i] * W[j, i]; a fresh contiguous tensor
        return torch.sparse.mm(self._weight_matrix(), history.T).T.contiguous()
