"""The streaming protocol: order (predict before update), frozen model, drift, replay, weights."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from baselines.bpr import BPR, BPRConfig
from baselines.pop import Pop, PopConfig
from baselines.sasrec import SASRec, SASRecConfig
from benchmark.cli import main
from benchmark.config import DataConfig, TrainConfig
from benchmark.data.datamodule import CSR
from benchmark.data.datasets import load_dataset
from benchmark.data.prepare import Interactions, PreparedData
from benchmark.errors import BenchmarkError
from benchmark.model import RecModule
from benchmark.streaming import (
    ReplayBuffer, UpdateSet, check_streaming, pairwise_rows, recency_weights, run_stream, sequential_rows, stream_events,
    update_batches, window_slices,
)  # fmt: skip
from tests.baselines.helpers import fit, pairwise_batches


def _log(rows: list[tuple[int, int, int]]) -> Interactions:
    rows = sorted(rows, key=lambda r: (r[0], r[2]))
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return Interactions(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())


def _prepared(train: list, valid: list, test: list, n_users: int, n_items: int, split: str = "temporal") -> PreparedData:
    return PreparedData(
        name="hand", source="synthetic", fingerprint="0" * 64, config=DataConfig(split=split), n_users=n_users, n_items=n_items,
        train=_log(train), valid=_log(valid), test=_log(test), user_ids=np.arange(n_users), item_ids=np.arange(n_items),
        items=pd.DataFrame({"raw_id": np.arange(n_items)}), stats={},
    )  # fmt: skip


def _train_config(**changes: object) -> TrainConfig:
    base = dict(ks=[10], eval_batch_size=64, protocol="streaming", stream_windows=3, stream_lr=0.1, stream_replay_size=4, stream_recency_half_life=None)
    return TrainConfig.from_flat({**base, **changes})


class Recorder(RecModule):
    """A dot-product model that logs what it is shown: scored (user, seen item) and
    (user, relevant item) pairs, and the positives of every update batch."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__(n_users, n_items)
        self.config = SimpleNamespace(batch_size=4, num_negatives=1)
        torch.manual_seed(0)
        self.user_emb = nn.Embedding(n_users, 4)
        self.item_emb = nn.Embedding(n_items, 4)
        self.calls: list[tuple[str, set[tuple[int, int]], set[tuple[int, int]]]] = []

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users = batch["users"].tolist()
        seen = {(users[r], i) for r, i in zip(batch["seen_rows"].tolist(), batch["seen_items"].tolist())}
        relevant = {(users[r], i) for r, i in zip(batch["rel_rows"].tolist(), batch["rel_items"].tolist())}
        self.calls.append(("score", seen, relevant))
        return self.user_emb(batch["users"]) @ self.item_emb.weight.T

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.calls.append(("train", set(zip(batch["users"].tolist(), batch["pos_items"].tolist())), set()))
        u = self.user_emb(batch["users"])
        margin = (u * self.item_emb(batch["pos_items"])).sum(-1) - (u.unsqueeze(1) * self.item_emb(batch["neg_items"])).sum(-1).mean(1)
        self.log("train/loss", margin.mean())  # must be harmless outside a Trainer
        return torch.nn.functional.softplus(-margin).mean()


# 4 users, 12 items; training at t < 100, then 9 streamed events at t = 100..108
TRAIN = [(0, 0, 1), (0, 1, 2), (1, 2, 3), (1, 3, 4), (2, 4, 5), (2, 5, 6), (3, 6, 7), (3, 7, 8)]
VALID = [(0, 8, 100), (1, 9, 101), (2, 10, 102), (3, 11, 103), (0, 2, 104)]
TEST = [(1, 0, 105), (2, 1, 106), (3, 2, 107), (0, 3, 108)]


def test_each_window_is_scored_before_its_update_and_without_its_events() -> None:
    data = _prepared(TRAIN, VALID, TEST, 4, 12)
    events = stream_events(data)
    assert events.timestamp.tolist() == list(range(100, 109))  # global time order over valid + test
    windows = [set(zip(events.user[s].tolist(), events.item[s].tolist())) for s in window_slices(len(events), 3)]
    model = Recorder(4, 12)
    stream = run_stream(model, data, _train_config(), seed=0)
    phases: list[tuple[str, list]] = []
    for kind, a, b in model.calls:
        if not phases or phases[-1][0] != kind:
            phases.append((kind, []))
        phases[-1][1].append((a, b))
    assert [kind for kind, _ in phases] == ["score", "train"] * 3  # predict, then update, window by window
    before = {(u, i) for u, i, _ in TRAIN}
    for w in range(3):
        seen = set().union(*(a for a, _ in phases[2 * w][1]))
        relevant = set().union(*(b for _, b in phases[2 * w][1]))
        assert relevant == windows[w]  # the window's events are what is ranked ...
        assert not seen & windows[w]  # ... and are not known history when it is scored
        assert {p for p in before if p[0] in {u for u, _ in windows[w]}} <= seen  # everything earlier is
        positives = set().union(*(a for a, _ in phases[2 * w + 1][1]))
        assert windows[w] <= positives <= windows[w] | before  # the window, plus replayed earlier events
        before |= windows[w]
    assert [w["n_events"] for w in stream["windows"]] == [3, 3, 3]
    assert [(w["start"], w["end"]) for w in stream["windows"]] == [(100, 102), (103, 105), (106, 108)]
    latency = stream["update_latency_ms"]
    assert latency["n_batches"] == sum(w["update_steps"] for w in stream["windows"]) > 0
    assert 0 < latency["p50"] <= latency["p99"]
    for window in stream["windows"]:
        assert set(window["adaptive"]) == set(window["frozen"]) == {"ndcg@10", "hr@10"}
    assert stream["config"]["globally_causal"] is True
    loo = run_stream(Recorder(4, 12), _prepared(TRAIN, VALID, TEST, 4, 12, split="loo"), _train_config(), seed=0)
    assert loo["config"]["globally_causal"] is False  # per-user held-out events: not one causal stream


def test_the_frozen_model_never_changes_and_opting_out_equals_frozen() -> None:
    data = _prepared(TRAIN, VALID, TEST, 4, 12)
    model, frozen = Recorder(4, 12), Recorder(4, 12)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    stream = run_stream(model, data, _train_config(stream_lr=0.5), seed=0, frozen=frozen)
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the adaptive one moved
    assert not [c for c in frozen.calls if c[0] == "train"]
    assert stream["config"]["adapted"] and stream["windows"][0]["adaptive"] == stream["windows"][0]["frozen"]

    still = Recorder(4, 12)
    still.supports_adaptation = False  # what the llm4rec-no-adaptive ablation sets
    opted = run_stream(still, data, _train_config(stream_lr=0.5), seed=0)
    assert not opted["config"]["adapted"] and opted["update_latency_ms"]["n_batches"] == 0
    assert all(w["adaptive"] == w["frozen"] for w in opted["windows"])
    assert [w["frozen"] for w in opted["windows"]] == [w["frozen"] for w in stream["windows"]]
    counting = Pop(4, 12, PopConfig())  # optimises itself by counting: streaming never steps it
    assert not run_stream(counting, data, _train_config(), seed=0)["config"]["adapted"]


def _drifting(seed: int = 0) -> PreparedData:
    """40 users who consume items 0-19 during training and switch to items 20-39 afterwards."""
    rng = np.random.default_rng(seed)
    train, stream = [], []
    for u in range(40):
        for k, i in enumerate(rng.choice(20, 8, replace=False)):
            train.append((u, int(i), 10 * k + u % 7))
        for i in rng.choice(20, 6, replace=False):
            stream.append((u, 20 + int(i), 1000 + int(rng.integers(0, 1000))))
    stream.sort(key=lambda r: r[2])
    return _prepared(train, stream[: len(stream) // 2], stream[len(stream) // 2 :], 40, 40)


def test_adaptation_follows_a_preference_shift_that_the_frozen_model_misses() -> None:
    data = _drifting()
    torch.manual_seed(0)
    model = BPR(40, 40, BPRConfig(embedding_dim=16, batch_size=64, lr=0.05))
    pairs = list(zip(data.train.user.tolist(), data.train.item.tolist()))
    fit(model, pairwise_batches(pairs, 40, 64, seed=0), epochs=30)
    config = _train_config(stream_windows=4, stream_lr=2.0, stream_replay_size=64, stream_recency_half_life=1.0, stream_steps_per_window=10)
    stream = run_stream(model, data, config, seed=0)
    adaptive = [w["adaptive"]["ndcg@10"] for w in stream["windows"]]
    frozen = [w["frozen"]["ndcg@10"] for w in stream["windows"]]
    assert adaptive[0] == frozen[0]  # nothing learned before the first window
    assert all(a > f for a, f in zip(adaptive[1:], frozen[1:])), (adaptive, frozen)
    assert np.mean(adaptive[1:]) > np.mean(frozen[1:]) + 0.1, (adaptive, frozen)  # measured: 0.18 vs 0.03
    assert stream["config"]["weighting"] == "weighted sampling"  # BPR does not take batch weights


def test_sequential_models_update_on_their_extended_histories() -> None:
    data = _drifting()
    torch.manual_seed(0)
    model = SASRec(40, 40, SASRecConfig(n_layers=1, n_heads=1, hidden_size=8, inner_size=16, max_seq_length=4, batch_size=16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stream = run_stream(model, data, _train_config(stream_windows=2, stream_lr=0.05, stream_replay_size=16), seed=0)
    assert stream["config"]["train_batches"] == "sequential" and stream["update_latency_ms"]["n_batches"] > 0
    assert not torch.equal(before["item_emb.weight"], model.state_dict()["item_emb.weight"])
    assert stream["windows"][1]["adaptive"] != stream["windows"][1]["frozen"]


def test_recency_weights_by_hand() -> None:
    weights = recency_weights(np.array([100, 50, 0, -50]), start=0, end=100, half_life=1.0)
    assert weights == pytest.approx([1.0, 2**-0.5, 0.5, 0.5])  # ages 0, 0.5, 1 and 1.5 clipped to 1 window
    assert recency_weights(np.array([0]), 0, 100, 0.5) == pytest.approx([0.25])
    assert recency_weights(np.array([5, 5]), 5, 5, 1.0).tolist() == [1.0, 1.0]  # one timestamp: no ages
    assert recency_weights(np.array([0, 100]), 0, 100, None).tolist() == [1.0, 1.0]
    with pytest.raises(BenchmarkError, match="half_life"):
        recency_weights(np.array([0]), 0, 1, 0.0)


def _reservoir_by_hand(stream: list[int], capacity: int, draws: list[float]) -> list[int]:
    """Algorithm R one element at a time, with the buffer's uniform draws for elements past capacity."""
    buffer: list[int] = []
    draw = iter(draws)
    for n, x in enumerate(stream):
        if n < capacity:
            buffer.append(x)
        else:
            j = int(next(draw) * (n + 1))
            if j < capacity:
                buffer[j] = x
    return buffer


def test_replay_buffer_is_algorithm_r() -> None:
    items = np.arange(50)
    log = Interactions(np.zeros(50, dtype=np.int64), items, items)
    buffer = ReplayBuffer(8, seed=3)
    buffer.add(log.take(items < 20))
    buffer.add(log.take(items >= 20))  # two additions behave as one stream
    draws = np.random.default_rng([3, 7919]).random(42).tolist()  # the buffer's generator: 12 + 30 late elements
    assert buffer.contents().item.tolist() == _reservoir_by_hand(items.tolist(), 8, draws)
    assert len(buffer) == 8 and buffer.n_seen == 50

    small = ReplayBuffer(100)
    small.add(log)
    assert small.contents().item.tolist() == items.tolist()  # under capacity: everything, in order
    assert len(ReplayBuffer(0)) == 0
    picked = small.sample(10, np.random.default_rng(0))
    assert len(set(picked.item.tolist())) == 10 and set(picked.item.tolist()) <= set(items.tolist())
    assert len(small.sample(500, np.random.default_rng(0))) == 50  # never more than it holds

    # every element of the stream is kept with probability capacity / n
    counts = np.zeros(50)
    for seed in range(400):
        b = ReplayBuffer(10, seed=seed)
        b.add(log)
        counts[b.contents().item] += 1
    assert np.abs(counts / 400 - 0.2).max() < 0.1


def test_sequential_rows_by_hand() -> None:
    pad = 10
    known = CSR.from_interactions(_log([(0, 1, 1), (0, 2, 2), (0, 3, 3)]), 1)
    window = _log([(0, 4, 10), (0, 5, 11)])
    update = sequential_rows(known, window, np.array([0.5, 1.0]), _log([]), np.zeros(0), pad, 3)
    assert update.rows["input_seq"].tolist() == [[2, 3, 4]]
    assert update.rows["target_seq"].tolist() == [[pad, 4, 5]]
    assert update.weights.tolist() == [[0.0, 0.5, 1.0]] and update.row_weights.tolist() == [0.75]

    replay = _log([(0, 2, 2)])  # the user's item 2 (position 1 of its known sequence) is replayed
    update = sequential_rows(known, window, np.array([0.5, 1.0]), replay, np.array([0.25]), pad, 3)
    assert update.rows["input_seq"].tolist() == [[2, 3, 4], [pad, pad, 1]]
    assert update.rows["target_seq"].tolist() == [[pad, 4, 5], [pad, pad, 2]]
    assert update.weights.tolist() == [[0.0, 0.5, 1.0], [0.0, 0.0, 0.25]]


def test_pairwise_negatives_avoid_every_known_item() -> None:
    events = _log([(0, 0, 5), (1, 1, 6)])
    known_keys = np.array([0 * 5 + 0, 0 * 5 + 1, 0 * 5 + 2, 1 * 5 + 1, 1 * 5 + 3])  # user * n_items + item
    update = pairwise_rows(events, np.ones(2), known_keys, 5, 20, np.random.default_rng(0))
    assert set(update.rows["neg_items"][0].tolist()) <= {3, 4} and set(update.rows["neg_items"][1].tolist()) <= {0, 2, 4}


def test_update_batches_weighting() -> None:
    rows = {"users": np.arange(3), "pos_items": np.arange(3), "neg_items": np.zeros((3, 1), dtype=np.int64)}
    update = UpdateSet(rows, np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.5, 1.5]))
    sampled = list(update_batches(update, 2, 5, weighted=True, pass_weights=False, rng=np.random.default_rng(0)))
    assert len(sampled) == 5 and all(b["users"].tolist() == [0, 0] for b in sampled)  # drawn by weight
    passed = list(update_batches(update, 2, None, weighted=True, pass_weights=True, rng=np.random.default_rng(0)))
    assert len(passed) == 2 and sorted(sum((b["users"].tolist() for b in passed), [])) == [0, 1, 2]  # one pass
    weights = {int(u): float(w) for b in passed for u, w in zip(b["users"], b["weights"])}
    assert weights == pytest.approx({0: 1.0, 1: 0.5, 2: 1.5})  # already mean 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(BenchmarkError, match="one process"):
        check_streaming(_train_config(devices=2))
    with pytest.raises(BenchmarkError, match="stream_lr"):
        check_streaming(_train_config(stream_lr=0.0))
    with pytest.raises(BenchmarkError, match="fewer than stream_windows"):
        window_slices(3, 5)


def test_run_with_streaming_protocol(tiny_ml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["run", "--model", "bpr", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress",
            "--max-epochs", "2", "--protocol", "streaming", "--set", "split=temporal", "--set", "stream_windows=4",
            "--set", "stream_lr=5.0", "--output", str(tmp_path / "flat.json")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "adaptive NDCG@10" in printed and "update latency per batch" in printed
    (path,) = out.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    assert record["protocol"] == "streaming"
    stream = record["streaming"]
    assert [w["window"] for w in stream["windows"]] == [0, 1, 2, 3]
    data = load_dataset("synthetic-ml", DataConfig(split="temporal"), tiny_ml)
    assert sum(w["n_events"] for w in stream["windows"]) == stream["config"]["n_events"] == len(data.valid) + len(data.test)
    assert stream["config"]["windows"] == 4 and stream["config"]["globally_causal"] is True
    assert stream["update_latency_ms"]["p50"] > 0
    flat = json.loads((tmp_path / "flat.json").read_text())
    assert flat["stream/adaptive-ndcg@10"] == pytest.approx(np.mean([w["adaptive"]["ndcg@10"] for w in stream["windows"]]))

