"""GenRec: title generation constrained to the catalogue, on a tiny catalogue with tiny-llama."""

from __future__ import annotations

import random

import pandas as pd
import pytest
import torch

from baselines.genrec import INSTRUCTION, GenRec, GenRecConfig, window_items
from benchmark.errors import BenchmarkError
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, fit, round_trip, sequential_batches

N_USERS, N_ITEMS, FAVOURITE = 16, 20, 7
WORDS = [
    "Apple", "Banana", "Cherry", "Dragon", "Eagle", "Falcon", "Grape", "Harbor", "Island", "Jungle",
    "Kettle", "Lemon", "Mango", "Nectar", "Ocean", "Pepper", "Quartz", "River", "Sunset", "Tiger",
]  # fmt: skip
ITEMS = pd.DataFrame({"raw_id": [str(100 + i) for i in range(N_ITEMS)], "title": WORDS})
# full fine-tuning: rank-8 LoRA on a random 2-layer backbone learns the planted preference
# too slowly for a unit test (loss 3.8 -> 2.8 and flat); the training path is the same
CONFIG = GenRecConfig(
    backbone="tiny-llama", num_layers=0, finetune="full", lora_dropout=0.0, max_seq_length=2,
    lr=3e-3, batch_size=16, train_windows_per_epoch=0, num_beams=5,
)  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra intra-op threads only add synchronisation (10x slower on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(config: GenRecConfig = CONFIG, items: pd.DataFrame = ITEMS) -> GenRec:
    torch.manual_seed(0)
    return GenRec(N_USERS, N_ITEMS, config, items=items)


def _favourite_sequences() -> dict[int, list[int]]:
    """Planted preference: every other item of every user is the favourite (it follows any other item)."""
    rng = random.Random(0)
    return {u: [FAVOURITE if step % 2 else rng.choice([i for i in range(N_ITEMS) if i != FAVOURITE]) for step in range(8)] for u in range(N_USERS)}


@pytest.fixture(scope="module")
def trained() -> tuple[GenRec, list[float]]:
    model = _model()
    batches = sequential_batches(_favourite_sequences(), N_ITEMS, CONFIG.max_seq_length, CONFIG.batch_size)
    losses = fit(model, batches, epochs=40)
    return model.eval(), losses


def _histories() -> list[list[int]]:
    """Two-item histories without the favourite (a known item is never generated)."""
    return [[(i + 5) % N_ITEMS, i] for i in range(N_ITEMS) if FAVOURITE not in (i, (i + 5) % N_ITEMS)]


def test_learns_the_planted_favourite(trained) -> None:
    model, losses = trained
    assert sum(losses[-3:]) < 0.85 * sum(losses[:3])
    histories = _histories()
    items = model.recommend(eval_batch(list(range(len(histories))), histories, N_ITEMS, CONFIG.max_seq_length), 3)
    assert items[:, 0].tolist() == [FAVOURITE] * len(histories)


def test_seen_items_are_never_generated(trained) -> None:
    model, _ = trained
    histories = _histories()[:4]
    batch = eval_batch([0, 1, 2, 3], histories, N_ITEMS, CONFIG.max_seq_length)
    batch["seen_rows"] = torch.tensor([0, 1, 1, 3, 3, 3])
    batch["seen_items"] = torch.tensor([FAVOURITE, FAVOURITE, 2, 0, 1, 5])
    items = model.recommend(batch, 5)
    assert items.shape == (4, 5) and items.dtype == torch.long
    for row in range(4):
        got = items[row].tolist()
        assert len(set(got)) == 5 and all(0 <= i < N_ITEMS for i in got)
        assert not set(got) & set(batch["seen_items"][batch["seen_rows"] == row].tolist())
    assert FAVOURITE not in items[:2].flatten().tolist()
    assert items[2, 0] == FAVOURITE and items[3, 0] == FAVOURITE  # still first where not seen


def test_fewer_admissible_items_than_k_leave_minus_one(trained) -> None:
    model, _ = trained
    batch = eval_batch([0], [[1, 2]], N_ITEMS, CONFIG.max_seq_length)
    batch["seen_rows"] = torch.zeros(N_ITEMS - 2, dtype=torch.long)
    batch["seen_items"] = torch.arange(2, N_ITEMS)
    items = model.recommend(batch, 5)
    assert sorted(items[0, :2].tolist()) == [0, 1] and items[0, 2:].tolist() == [-1, -1, -1]


def test_decoding_in_chunks_equals_decoding_at_once(trained) -> None:
    model, _ = trained
    histories = _histories()[:7]
    batch = eval_batch(list(range(7)), histories, N_ITEMS, CONFIG.max_seq_length)
    batch["seen_rows"], batch["seen_items"] = torch.tensor([0, 4, 6]), torch.tensor([FAVOURITE, 3, 9])
    at_once = model.recommend(batch, 4)
    model.config.decode_batch_size = 3
    try:
        assert torch.equal(model.recommend(batch, 4), at_once)
    finally:
        model.config.decode_batch_size = CONFIG.decode_batch_size


def test_state_dict_round_trip_holds_only_trained_weights(tmp_path) -> None:
    config = GenRecConfig(**{**vars(CONFIG), "finetune": "lora", "lr": 1e-2})
    model = _model(config)
    fit(model, sequential_batches(_favourite_sequences(), N_ITEMS, config.max_seq_length, config.batch_size), epochs=2)
    model.eval()
    state = model.state_dict()
    assert state and all("lora_" in key for key in state)  # the frozen backbone is reloaded, not stored
    restored = round_trip(model, lambda: _model(config), tmp_path).eval()
    histories = _histories()[:5]
    batch = eval_batch(list(range(5)), histories, N_ITEMS, CONFIG.max_seq_length)
    assert torch.equal(restored.recommend(batch, 4), model.recommend(batch, 4))
    with pytest.raises(RuntimeError, match="unexpected keys"):
        restored.load_state_dict({**state, "nonsense.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="missing keys"):
        restored.load_state_dict({k: v for k, v in state.items() if "layers.0." not in k})


def test_prompt_holds_the_last_titles_in_order(trained) -> None:
    model, _ = trained
    assert model.prompt_text([3, 4, 5]) == INSTRUCTION + "Eagle\nFalcon\n"
    assert model.prompt_text([]) == INSTRUCTION


def test_duplicate_titles_stay_distinct_items() -> None:
    items = ITEMS.copy()
    items.loc[4, "title"] = items.loc[3, "title"]  # two "Dragon"
    model = _model(items=items)
    assert model.titles[3] == model.titles[4] == "Dragon"
    assert model.sequences[3] != model.sequences[4]
    assert model.trie.lookup(model.sequences[3]) == 3 and model.trie.lookup(model.sequences[4]) == 4
    assert model.tokenizer.decode(model.sequences[4]) == "Dragon [104]\n"


def test_training_window_budget_limits_the_batches_of_an_epoch() -> None:
    config = GenRecConfig(**{**vars(CONFIG), "batch_size": 4, "train_windows_per_epoch": 8})
    model = _model(config)
    batches = sequential_batches(_favourite_sequences(), N_ITEMS, config.max_seq_length, config.batch_size)
    assert len(batches) > 3
    assert len(fit(model, batches, epochs=2)) == 4  # ceil(8 / 4) batches in each epoch


def test_windows_give_inputs_then_the_last_target() -> None:
    pad = N_ITEMS
    assert window_items(torch.tensor([[pad, 3, 4]]), torch.tensor([[pad, 4, 9]]), pad) == [[3, 4, 9]]
    assert window_items(torch.tensor([[pad, pad, pad]]), torch.tensor([[pad, pad, pad]]), pad) == [[]]


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_windows_without_targets_give_a_zero_loss_with_gradients(trained) -> None:
    model = _model()
    pad = N_ITEMS
    batch = {"users": torch.tensor([0]), "input_seq": torch.tensor([[pad, 3]]), "target_seq": torch.tensor([[pad, pad]])}
    loss = model.training_step(batch, 0)
    loss.backward()
    assert loss.item() == 0.0


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(BenchmarkError, match="item table"):
        GenRec(N_USERS, N_ITEMS, CONFIG)
    with pytest.raises(BenchmarkError, match="rows for"):
        GenRec(N_USERS, N_ITEMS + 1, CONFIG, items=ITEMS)
    with pytest.raises(BenchmarkError, match="no 'title' column"):
        GenRec(N_USERS, N_ITEMS, CONFIG, items=ITEMS[["raw_id"]])
    with pytest.raises(BenchmarkError, match="finetune"):
        GenRec(N_USERS, N_ITEMS, GenRecConfig(**{**vars(CONFIG), "finetune": "frozen"}), items=ITEMS)
    with pytest.raises(BenchmarkError, match="train_windows_per_epoch"):
        GenRec(N_USERS, N_ITEMS, GenRecConfig(**{**vars(CONFIG), "train_windows_per_epoch": -1}), items=ITEMS)


def test_default_config_and_batch_spec(trained) -> None:
    config = GenRecConfig()
    assert (config.backbone, config.num_layers, config.lora_r, config.max_seq_length) == ("smollm2-135m", 8, 8, 5)
    assert (config.num_beams, config.lr, config.batch_size, config.train_windows_per_epoch) == (20, 1e-3, 8, 1024)
    assert trained[0].batch_spec() == BatchSpec(kind="sequential", batch_size=16, num_negatives=1, history_length=2)
    assert GenRec.is_generative() and GenRec.needs_item_table


@pytest.mark.slow
def test_smollm2_learns_a_history_dependent_rule() -> None:
    """The real backbone (first 4 blocks): item i is followed by item i + 1 (needs the history)."""
    config = GenRecConfig(num_layers=4, max_seq_length=2, lr=2e-3, batch_size=64, train_windows_per_epoch=0, num_beams=5, lora_dropout=0.0)
    torch.manual_seed(0)
    model = GenRec(N_USERS, N_ITEMS, config, items=ITEMS)
    rng = random.Random(0)
    sequences = {}
    for user in range(N_USERS):
        seq = [rng.randrange(N_ITEMS)]
        for step in range(7):
            seq.append((seq[-1] + 1) % N_ITEMS if step % 2 == 0 else rng.randrange(N_ITEMS))
        sequences[user] = seq
    losses = fit(model, sequential_batches(sequences, N_ITEMS, 2, 64), epochs=60)
    assert sum(losses[-3:]) < 0.2 * sum(losses[:3])
    histories = [[(i + 7) % N_ITEMS, i] for i in range(N_ITEMS)]
    items = model.eval().recommend(eval_batch(list(range(N_ITEMS)), histories, N_ITEMS, 2), 3)
    hits = sum(int(items[i, 0]) == (i + 1) % N_ITEMS for i in range(N_ITEMS))
    assert hits >= 12, hits  # chance: 1 of 20 (measured: 14 of 20 after these 60 steps)


def test_trains_and_evaluates_through_the_harness(tiny_ml, tmp_path) -> None:
    """`run` hands GenRec the item table, restores its slim checkpoint and records the valid ratio."""
    import json

    from benchmark.cli import main

    out = tmp_path / "out"
    sets = ["backbone=tiny-llama", "num_layers=0", "max_seq_length=2", "train_windows_per_epoch=32", "batch_size=16"]
    code = main(["run", "--model", "genrec", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out),
                 "--no-progress", "--max-epochs", "1", *[a for s in sets for a in ("--set", s)]])  # fmt: skip
    assert code == 0
    (path,) = out.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    assert record["metrics"]["test"]["valid_ratio"] == 1.0  # 20 distinct unseen catalogue items for every user
    assert 0.0 <= record["metrics"]["test"]["ndcg@10"] <= 1.0 and record["timings"]["epochs"] == 1
