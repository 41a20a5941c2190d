"""The streaming protocol (``--protocol streaming``): prequential evaluation with real-time adaptation.

After the usual offline run (training on the training split, test pass), the evaluation
period is replayed in ``stream_windows`` windows of equal event counts. For each window:

1. **Predict first** (prequential): every user with events in the window ranks all items
   given everything before the window (the training split plus the earlier windows:
   that is the history sequential models read and the set of masked, already-seen items);
   the window's items the user had not seen before are the relevant ones. The metrics
   (NDCG@K, HR@K at the run's ``ks``) come from the same ``Evaluator`` as every other
   figure: averages over the window's users, each user's window items forming R_u.
2. **Then update** on the window with momentum SGD (``torch.optim.SGD`` with momentum
   ``stream_momentum``, lr ``stream_lr``; the optimizer and its momentum buffers persist
   across windows, as v_t = gamma v_(t-1) + eta grad L in the paper) on
   ``model.adaptation_parameters()``, through the model's own ``training_step``, on
   batches of its training kind:

   - pairwise: one row per event (user, item, ``num_negatives`` uniform negatives that
     are not among the user's known items, the window's included);
   - sequential: per user, its known sequence extended with the window's events, cut
     from the end into rows of ``max_seq_length`` inputs whose targets are the new events
     (and the user's replayed events); other positions carry ``pad`` as target.

   A replay buffer against forgetting: a reservoir sample (Vitter's algorithm R,
   seeded) of capacity ``stream_replay_size`` over every interaction the model has
   learned from (the training split, then each window after its update). Each update
   mixes in min(len(buffer), events in the window) events drawn uniformly from it
   without replacement, so replay at most doubles an update.

   Recency importance weights: an event at time t in window [start, end] weighs
   0.5 ** (min((end - t) / (end - start), 1) / stream_recency_half_life): the newest
   event 1, one half-life (in window lengths) older 0.5; ages are clipped at one window
   length, so replayed (older) events weigh as much as the window's oldest event instead
   of vanishing. Models with ``supports_sample_weights`` get them in the batch as
   ``"weights"`` ([B] for pairwise rows, [B, L] aligned with ``target_seq``; normalised
   to mean 1 over the update); other models get them by weighted sampling: each batch
   draws its rows with replacement, with probability proportional to the row's weight (a
   sequential row: the mean weight of its targets). ``stream_recency_half_life=None``
   turns weighting off (uniform shuffled passes).

   ``stream_steps_per_window`` optimizer steps per window (None: one pass over the
   update set, ceil(rows / batch_size) steps).

``update_latency_ms``: wall time of one update batch (zero_grad, ``training_step``,
backward, optimizer step; building the batch excluded), p50 and p99 over all windows.

A frozen copy of the trained model ranks the same windows (same histories, same masks)
and is never updated. Models that opt out (``supports_adaptation = False``, e.g. the
``llm4rec-no-adaptive`` ablation), have no adaptation parameters or optimise themselves
(``automatic_optimization = False``: pop and itemknn count) are not updated: their
adaptive figures equal the frozen ones (``config.adapted = false``).

The evaluation period. ``split=temporal``: the validation and test interactions, i.e.
exactly the period after the global validation cut, in time order (ties: validation
before test, then user order): a causal stream, no event depends on a later one.
``split=loo`` / ``ratio``: every user's held-out interactions (validation + test), which
are the only ones the model was not trained on, ordered by timestamp. Each user's events
stay in order, but the stream is not globally causal: the training split holds other
users' interactions from after many streamed events (recorded as
``config.globally_causal = false``); prefer ``split=temporal`` for the protocol.

The streaming protocol runs in one process (``devices=1``).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmark.config import TrainConfig
from benchmark.data.datamodule import CSR, EvalDataset, _contains, _relevant
from benchmark.data.prepare import Interactions, PreparedData
from benchmark.errors import BenchmarkError
from benchmark.evaluation import Evaluator
from benchmark.model import RecModule

__all__ = [
    "ReplayBuffer", "UpdateSet", "check_streaming", "momentum_sgd", "pairwise_rows", "recency_weights", "run_stream",
    "sequential_rows", "stream_events", "streaming_rows", "update_batches", "window_slices",
]  # fmt: skip

Batch = dict[str, torch.Tensor]
STREAM_METRICS = ("ndcg", "hr")


# --- the stream ---------------------------------------------------------------------------


def stream_events(data: PreparedData) -> Interactions:
    """The evaluation period (validation + test interactions) in global time order.

    Ties keep validation before test and then the prepared order (user, time), so each
    user's events stay chronological.
    """
    log = Interactions(*(np.concatenate([getattr(data.valid, c), getattr(data.test, c)]) for c in ("user", "item", "timestamp")))
    order = np.argsort(log.timestamp, kind="stable")
    return Interactions(log.user[order], log.item[order], log.timestamp[order])


def window_slices(n_events: int, n_windows: int) -> list[slice]:
    """``n_windows`` consecutive slices of near-equal size (the first ones one longer)."""
    if n_windows < 1:
        raise BenchmarkError(f"stream_windows must be >= 1, got {n_windows}")
    if n_events < n_windows:
        raise BenchmarkError(f"the evaluation period has {n_events} events, fewer than stream_windows={n_windows}")
    bounds = np.concatenate([[0], np.cumsum([len(part) for part in np.array_split(np.arange(n_events), n_windows)])])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def recency_weights(timestamps: np.ndarray, start: int, end: int, half_life: float | None) -> np.ndarray:
    """0.5 ** (min((end - t) / (end - start), 1) / half_life) per event (1 for all without a half-life).

    Ages are in window lengths and clipped at one window (older events: replayed ones);
    a window whose events share one timestamp gives every event weight 1.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if half_life is None:
        return np.ones(len(timestamps))
    if half_life <= 0:
        raise BenchmarkError(f"stream_recency_half_life must be > 0 (or None), got {half_life}")
    span = float(end - start)
    age = np.zeros(len(timestamps)) if span <= 0 else np.clip((end - timestamps) / span, 0.0, 1.0)
    return 0.5 ** (age / half_life)


class ReplayBuffer:
    """A reservoir sample (algorithm R) of capacity ``capacity`` over every interaction added.

    After n additions each of them is in the buffer with probability min(1, capacity / n).
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 0:
            raise BenchmarkError(f"stream_replay_size must be >= 0, got {capacity}")
        self.capacity = capacity
        self.n_seen = 0
        self.rng = np.random.default_rng([seed, 7919])
        self.user = np.zeros(capacity, dtype=np.int64)
        self.item = np.zeros(capacity, dtype=np.int64)
        self.timestamp = np.zeros(capacity, dtype=np.int64)

    def __len__(self) -> int:
        return min(self.n_seen, self.capacity)

    def add(self, log: Interactions) -> None:
        n = len(log)
        if n == 0 or self.capacity == 0:
            self.n_seen += n
            return
        position = self.n_seen + np.arange(n)  # 0-based index of each new element in the whole stream
        slot = np.where(position < self.capacity, position, -1)
        late = position >= self.capacity
        # element j replaces a uniform slot of 0..position_j with probability capacity / (position_j + 1)
        draw = (self.rng.random(int(late.sum())) * (position[late] + 1)).astype(np.int64)
        slot[late] = np.where(draw < self.capacity, draw, -1)
        keep = np.flatnonzero(slot >= 0)
        # a later element wins a slot drawn twice: keep each slot's last writer
        _, last = np.unique(slot[keep][::-1], return_index=True)
        keep = keep[::-1][last]
        self.user[slot[keep]], self.item[slot[keep]], self.timestamp[slot[keep]] = log.user[keep], log.item[keep], log.timestamp[keep]
        self.n_seen += n

    def contents(self) -> Interactions:
        m = len(self)
        return Interactions(self.user[:m].copy(), self.item[:m].copy(), self.timestamp[:m].copy())

    def sample(self, n: int, rng: np.random.Generator) -> Interactions:
        """``min(n, len(self))`` buffered events, uniformly without replacement."""
        m = len(self)
        pick = rng.choice(m, size=min(n, m), replace=False) if m else np.zeros(0, dtype=np.int64)
        return Interactions(self.user[pick], self.item[pick], self.timestamp[pick])


# --- update batches ---------------------------------------------------------------------------


@dataclass
class UpdateSet:
    """Training rows for one window's update: ``rows`` maps batch keys to arrays with one
    row per training example; ``row_weights`` [n_rows] (for weighted sampling) and
    ``weights`` (the per-example/per-target weights passed to models that support them)."""

    rows: dict[str, np.ndarray]
    row_weights: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.row_weights)


def _known_keys(known: Interactions, extra: Interactions, n_items: int) -> np.ndarray:
    return np.unique(np.concatenate([known.user * n_items + known.item, extra.user * n_items + extra.item]))


def pairwise_rows(events: Interactions, weights: np.ndarray, known_keys: np.ndarray, n_items: int, num_negatives: int, rng: np.random.Generator) -> UpdateSet:
    """One (user, pos, negatives) row per event; negatives uniform over items the user has
    not interacted with (``known_keys``: sorted user * n_items + item)."""
    users = events.user
    negatives = rng.integers(0, n_items, (len(users), num_negatives))
    for _ in range(100):  # resample collisions with known positives (bounded, as the training sampler)
        hit = _contains(known_keys, users[:, None] * n_items + negatives)
        if not hit.any():
            break
        negatives[hit] = rng.integers(0, n_items, int(hit.sum()))
    rows = {"users": users, "pos_items": events.item, "neg_items": negatives}
    return UpdateSet(rows, weights, weights)


def sequential_rows(
    known: CSR, events: Interactions, weights: np.ndarray, replay: Interactions, replay_weights: np.ndarray,
    n_items: int, length: int,
) -> UpdateSet:
    """Rows of ``length`` inputs over each user's known sequence extended with the window's events.

    Targets are the window's events and the user's replayed events (positions in its known
    sequence); every other position gets ``pad = n_items``. Rows are cut from the end of
    the sequence backwards, each ending at a target, until every target is covered once.
    """
    if length < 1:
        raise BenchmarkError("a sequential model needs max_seq_length >= 1 for streaming updates")
    pad = n_items
    inputs, targets, row_users, target_w = [], [], [], []
    new_by_user: dict[int, list[int]] = {}
    for j, u in enumerate(events.user.tolist()):
        new_by_user.setdefault(u, []).append(j)
    replay_by_user: dict[int, list[int]] = {}
    for j, u in enumerate(replay.user.tolist()):
        replay_by_user.setdefault(u, []).append(j)
    for u in sorted(set(new_by_user) | set(replay_by_user)):
        past = known.items[known.ptr[u] : known.ptr[u + 1]]
        new = new_by_user.get(u, [])
        seq = np.concatenate([past, events.item[new]]).astype(np.int64)
        weight = np.zeros(len(seq))
        weight[len(past) :] = weights[new]
        is_target = np.zeros(len(seq), dtype=bool)
        is_target[len(past) :] = True
        for j in replay_by_user.get(u, []):
            where = np.flatnonzero(past == replay.item[j])
            if len(where):
                is_target[where[0]] = True
                weight[where[0]] = replay_weights[j]
        is_target[0] = False  # the first item of a sequence has no input before it
        pending = np.flatnonzero(is_target)
        while len(pending):
            end = int(pending[-1])  # the row's last target; inputs seq[end - length : end]
            lo = max(end - length, 0)
            row_in = seq[lo:end]
            row_t = np.where(is_target[lo + 1 : end + 1], seq[lo + 1 : end + 1], pad)
            row_w = np.where(is_target[lo + 1 : end + 1], weight[lo + 1 : end + 1], 0.0)
            fill = length - len(row_in)
            inputs.append(np.concatenate([np.full(fill, pad), row_in]))
            targets.append(np.concatenate([np.full(fill, pad), row_t]))
            target_w.append(np.concatenate([np.zeros(fill), row_w]))
            row_users.append(u)
            pending = pending[pending <= lo]
    if not inputs:
        empty = np.zeros((0, length), dtype=np.int64)
        return UpdateSet({"users": np.zeros(0, dtype=np.int64), "input_seq": empty, "target_seq": empty}, np.zeros(0), np.zeros((0, length)))
    t = np.stack(targets)
    w = np.stack(target_w)
    row_weights = w.sum(1) / np.maximum((t != pad).sum(1), 1)
    return UpdateSet({"users": np.array(row_users, dtype=np.int64), "input_seq": np.stack(inputs), "target_seq": t}, row_weights, w)


def update_batches(update: UpdateSet, batch_size: int, steps: int | None, *, weighted: bool, pass_weights: bool, rng: np.random.Generator) -> Iterator[Batch]:
    """``steps`` batches (None: one pass) of the update set.

    ``weighted`` and not ``pass_weights``: rows drawn with replacement, probability
    proportional to their weight; otherwise shuffled passes, with ``"weights"`` (normalised
    to mean 1 over the set's targets) when ``pass_weights``.
    """
    n = len(update)
    if n == 0:
        return
    n_steps = math.ceil(n / batch_size) if steps is None else steps
    weights = update.weights
    if pass_weights:
        real = weights[weights > 0] if weights.ndim == 2 else weights
        weights = weights / max(float(real.mean()), 1e-12)
    probs = update.row_weights / update.row_weights.sum() if weighted and not pass_weights and update.row_weights.sum() > 0 else None
    # shuffled passes; one pass (steps=None) ends with the remainder batch
    order = rng.permutation(n) if steps is None else np.zeros(0, dtype=np.int64)
    for step in range(n_steps):
        if probs is not None:
            idx = rng.choice(n, size=min(batch_size, n), replace=True, p=probs)
        elif steps is None:
            idx = order[step * batch_size : (step + 1) * batch_size]
        else:
            while len(order) < min(batch_size, n):
                order = np.concatenate([order, rng.permutation(n)])
            idx, order = order[:batch_size], order[batch_size:]
        batch = {key: torch.from_numpy(np.ascontiguousarray(value[idx], dtype=np.int64)) for key, value in update.rows.items()}
        if pass_weights:
            batch["weights"] = torch.from_numpy(np.ascontiguousarray(weights[idx], dtype=np.float32))
        yield batch


# --- prediction -----------------------------------------------------------------------------


def _eval_batches(known: Interactions, window: Interactions, n_users: int, n_items: int, history_length: int, batch_size: int) -> Iterator[Batch]:
    """Evaluation batches for a window: history and seen items = ``known`` (everything
    before the window); relevant = the window's items each user had not seen."""
    known_csr = CSR.from_interactions(known, n_users)
    dataset = EvalDataset(known_csr, known_csr, _relevant(window, known_csr, n_users, n_items), n_items, history_length)
    for start in range(0, len(dataset), batch_size):
        yield dataset[(0, 0, np.arange(start, min(start + batch_size, len(dataset))))]


def _evaluator(n_items: int, ks: list[int], device: torch.device) -> Evaluator:
    return Evaluator(n_items, ks=tuple(ks), metrics=STREAM_METRICS).to(device)


# --- the protocol ---------------------------------------------------------------------------


def _concat(a: Interactions, b: Interactions) -> Interactions:
    return Interactions(*(np.concatenate([getattr(a, c), getattr(b, c)]) for c in ("user", "item", "timestamp")))


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


class _Detached:
    """The model without its Trainer while ``training_step`` runs outside the Lightning loop
    (``self.log`` then only warns, and that warning is silenced)."""

    def __init__(self, model: RecModule) -> None:
        self.model = model

    def __enter__(self) -> RecModule:
        self.trainer = self.model._trainer
        self.model.trainer = None  # type: ignore[assignment]
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*You are trying to `self.log\\(\\)`.*")
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.warnings.__exit__(*exc)
        self.model.trainer = self.trainer  # type: ignore[assignment]


def stream_config(train: TrainConfig) -> dict[str, Any]:
    return {
        "windows": train.streaming.stream_windows,
        "lr": train.streaming.stream_lr,
        "momentum": train.streaming.stream_momentum,
        "replay_size": train.streaming.stream_replay_size,
        "recency_half_life": train.streaming.stream_recency_half_life,
        "steps_per_window": train.streaming.stream_steps_per_window,
    }


def momentum_sgd(params: list[torch.nn.Parameter], lr: float, momentum: float) -> torch.optim.SGD:
    """The paper's update v_t = gamma v_(t-1) + eta grad, theta_t = theta_(t-1) - v_t.

    torch's SGD keeps b_t = mu b_(t-1) + grad and steps theta -= lr b_t; with a constant lr,
    v_t = lr b_t, so gamma = momentum and eta = lr exactly (no dampening, no Nesterov).
    """
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=0.0, nesterov=False)


def check_streaming(train: TrainConfig) -> None:
    """Refuse settings the streaming protocol cannot honour (called before training)."""
    if train.hardware.devices != 1 or train.hardware.num_nodes != 1:
        raise BenchmarkError("the streaming protocol runs in one process: use devices=1 (and num_nodes=1)")


def run_stream(model: RecModule, data: PreparedData, train: TrainConfig, *, seed: int = 0, frozen: RecModule | None = None) -> dict[str, Any]:
    """Replay the evaluation period window by window: predict, then update (module docstring).

    ``model`` is updated in place (it is the adaptive model); ``frozen`` (default: a deep
    copy of ``model`` made here) is evaluated alongside and never updated. Returns what the
    run record stores under ``"streaming"``.
    """
    check_streaming(train)
    events = stream_events(data)
    slices = window_slices(len(events), train.streaming.stream_windows)
    spec = model.batch_spec()
    history_length = max(spec.history_length, 1)
    n_users, n_items = data.n_users, data.n_items
    device = model.device

    if frozen is None:
        with _Detached(model):  # a copy without the Trainer it would otherwise drag along
            frozen = copy.deepcopy(model)
    frozen.requires_grad_(False)
    frozen.eval()
    # models that optimise themselves (automatic_optimization off: pop, itemknn count) are not driven by SGD here
    params = [p for p in model.adaptation_parameters() if p.requires_grad and p.numel()] if model.supports_adaptation and model.automatic_optimization else []
    adapts = bool(params)
    optimizer = momentum_sgd(params, train.streaming.stream_lr, train.streaming.stream_momentum) if adapts else None
    pass_weights = bool(getattr(model, "supports_sample_weights", False))
    weighted = train.streaming.stream_recency_half_life is not None
    replay = ReplayBuffer(train.streaming.stream_replay_size if adapts else 0, seed)
    replay.add(data.train)

    known = data.train
    windows: list[dict[str, Any]] = []
    latencies: list[float] = []
    for w, part in enumerate(slices):
        window = Interactions(events.user[part], events.item[part], events.timestamp[part])
        start, end = int(window.timestamp.min()), int(window.timestamp.max())
        # 1. predict: both models, same batches, history and masks = everything before the window
        model.eval()
        adaptive_eval, frozen_eval = _evaluator(n_items, train.loop.ks, device), _evaluator(n_items, train.loop.ks, device)
        n_scored = 0
        with torch.no_grad():
            for batch in _eval_batches(known, window, n_users, n_items, history_length, train.loop.eval_batch_size):
                batch = {k: v.to(device) for k, v in batch.items()}
                n_scored += int(batch["users"].shape[0])
                frozen_eval.update(frozen, batch)
                if adapts:
                    adaptive_eval.update(model, batch)
        frozen_values = _stream_metrics(frozen_eval)
        adaptive_values = _stream_metrics(adaptive_eval) if adapts else dict(frozen_values)
        # 2. update on the window (plus replay), then the window becomes known history
        update_seconds, n_steps = 0.0, 0
        if adapts:
            assert optimizer is not None
            rng = np.random.default_rng([seed, w, 1])
            replayed = replay.sample(len(window), rng)
            weights = recency_weights(window.timestamp, start, end, train.streaming.stream_recency_half_life)
            replay_weights = recency_weights(replayed.timestamp, start, end, train.streaming.stream_recency_half_life)
            if spec.kind == "pairwise":
                both = _concat(window, replayed)
                update = pairwise_rows(both, np.concatenate([weights, replay_weights]), _known_keys(known, window, n_items), n_items, spec.num_negatives, rng)
            elif spec.kind == "sequential":
                update = sequential_rows(CSR.from_interactions(known, n_users), window, weights, replayed, replay_weights, n_items, spec.history_length)
            else:
                raise BenchmarkError(f"streaming updates support pairwise and sequential training batches, not {spec.kind!r}")
            model.train()
            with _Detached(model):
                for step, batch in enumerate(update_batches(update, spec.batch_size, train.streaming.stream_steps_per_window, weighted=weighted, pass_weights=pass_weights, rng=rng)):
                    batch = {k: v.to(device) for k, v in batch.items()}
                    tick = time.perf_counter()
                    optimizer.zero_grad(set_to_none=True)
                    loss = model.training_step(batch, step)
                    if loss is None:  # nothing to differentiate: the model does not adapt
                        adapts = False
                        break
                    loss.backward()
                    optimizer.step()
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    elapsed = time.perf_counter() - tick
                    latencies.append(elapsed * 1000)
                    update_seconds += elapsed
                    n_steps += 1
            model.eval()
        known = _concat(known, window)
        replay.add(window)
        windows.append({
            "window": w, "start": start, "end": end, "n_events": len(window), "n_users": n_scored,
            "adaptive": adaptive_values, "frozen": frozen_values, "update_steps": n_steps, "update_seconds": round(update_seconds, 4),
        })  # fmt: skip
    return {
        "windows": windows,
        "update_latency_ms": {"p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99), "n_batches": len(latencies)},
        "config": {
            **stream_config(train),
            "adapted": bool(latencies),  # False: opted out, no adaptation parameters, or no differentiable loss
            "weighting": ("batch weights" if pass_weights else "weighted sampling") if weighted else "none",
            "train_batches": spec.kind,
            "split": data.config.split,
            "globally_causal": data.config.split == "temporal",
            "n_events": len(events),
            "n_adaptation_parameters": int(sum(p.numel() for p in params)),
        },
    }


def _stream_metrics(evaluator: Evaluator) -> dict[str, float]:
    return {key: value for key, value in evaluator.compute().items() if "@" in key}


def streaming_rows(stream: dict[str, Any], k: int = 10) -> tuple[list[list[Any]], list[str]]:
    """The per-window table the CLI prints: window, events, adaptive and frozen NDCG@k / HR@k."""
    key_n, key_h = f"ndcg@{k}", f"hr@{k}"
    rows = [
        [w["window"], w["n_events"], w["adaptive"].get(key_n, float("nan")), w["frozen"].get(key_n, float("nan")),
         w["adaptive"].get(key_h, float("nan")), w["frozen"].get(key_h, float("nan"))]
        for w in stream["windows"]
    ]  # fmt: skip
    return rows, ["window", "events", f"adaptive NDCG@{k}", f"frozen NDCG@{k}", f"adaptive HR@{k}", f"frozen HR@{k}"]
