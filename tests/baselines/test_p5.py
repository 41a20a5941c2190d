"""P5: items as single new tokens, whole-item generation, random item numbering (tiny-llama)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.p5 import P5, P5Config
from benchmark.evaluation import rank, top_k
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, fit, round_trip, sequential_batches

N_USERS, N_ITEMS = 8, 20
CONFIG = P5Config(
    backbone="tiny-llama", num_layers=0, lora_dropout=0.0, max_seq_length=4, lr=1e-2, batch_size=64, train_windows_per_epoch=0,
)  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra intra-op threads only add synchronisation (10x slower on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cycle(start: int, length: int) -> list[int]:
    """Planted pattern: item i is always followed by item (i + 1) mod N_ITEMS."""
    return [(start + step) % N_ITEMS for step in range(length)]


def _model(config: P5Config = CONFIG) -> P5:
    torch.manual_seed(0)
    return P5(N_USERS, N_ITEMS, config)


@pytest.fixture(scope="module")
def trained() -> tuple[P5, list[float]]:
    model = _model()
    sequences = {user: _cycle(start=3 * user, length=12) for user in range(N_USERS)}
    losses = fit(model, sequential_batches(sequences, N_ITEMS, CONFIG.max_seq_length, CONFIG.batch_size), epochs=40)
    return model.eval(), losses


def _lists(model: P5, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """The harness's top-k lists of a scorer (known items masked; -1 where fewer than k remain)."""
    items, valid = rank(model, batch, k)
    return items.masked_fill(~valid, -1)


def _histories() -> list[list[int]]:
    return [_cycle(start=(last - length + 1) % N_ITEMS, length=length) for last in range(N_ITEMS) for length in (1, 3)]


def test_learns_the_next_item_of_a_cycle(trained) -> None:
    model, losses = trained
    assert sum(losses[-3:]) < 0.1 * sum(losses[:3])
    histories = _histories()
    batch = eval_batch([0] * len(histories), histories, N_ITEMS, CONFIG.max_seq_length)
    batch["seen_rows"], batch["seen_items"] = torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)  # rank the planted item
    items = _lists(model, batch, 3)
    assert items[:, 0].tolist() == [(history[-1] + 1) % N_ITEMS for history in histories]


def test_numbering_is_a_seeded_random_permutation(trained) -> None:
    model, _ = trained
    codes = model.item_code.tolist()
    assert sorted(codes) == list(range(N_ITEMS)) and codes != list(range(N_ITEMS))
    assert codes == np.random.default_rng(CONFIG.numbering_seed).permutation(N_ITEMS).tolist()  # fixed by the seed
    assert np.random.default_rng(1).permutation(N_ITEMS).tolist() != codes
    assert model.item_token(0) == f"<item_{codes[0]}>"
    assert model.first_item_token == len(model.tokenizer)  # the new tokens follow the text vocabulary


def test_state_dict_round_trip_restores_numbering_and_recommendations(trained, tmp_path) -> None:
    model, _ = trained
    state = model.state_dict()
    assert "item_code" in state and "item_embedding.weight" in state
    assert all(k in ("item_code", "item_embedding.weight") or "lora_" in k for k in state)  # no frozen backbone weights
    restored = round_trip(model, lambda: _model(P5Config(**{**vars(CONFIG), "numbering_seed": 5})), tmp_path).eval()
    assert torch.equal(restored.item_code, model.item_code)  # the checkpoint's numbering wins
    histories = _histories()[:6]
    batch = eval_batch(list(range(6)), histories, N_ITEMS, CONFIG.max_seq_length)
    assert torch.equal(restored.score(batch), model.score(batch)) and torch.equal(_lists(restored, batch, 5), _lists(model, batch, 5))


def test_ranked_lists_through_the_harness(trained) -> None:
    model, _ = trained
    histories = [[1, 2, 3], [7], [], [4, 5]]
    batch = eval_batch([0, 1, 2, 3], histories, N_ITEMS, CONFIG.max_seq_length)
    batch["seen_rows"] = torch.tensor([0, 0, 0, 0, 1, 3, 3])
    batch["seen_items"] = torch.tensor([1, 2, 3, 4, 8, 4, 5])
    items = _lists(model, batch, 6)
    assert items.shape == (4, 6) and items.dtype == torch.long
    for row in range(4):
        got = items[row].tolist()
        assert len(set(got)) == 6 and all(0 <= i < N_ITEMS for i in got)
        assert not set(got) & set(batch["seen_items"][batch["seen_rows"] == row].tolist())
    assert items[0, 0] != 4  # the planted next item is seen: never recommended


def test_p5_is_a_scorer_of_the_item_token_logits(trained) -> None:
    model, _ = trained
    batch = eval_batch([0, 1], [[1, 2], [9]], N_ITEMS, CONFIG.max_seq_length)
    batch["seen_rows"], batch["seen_items"] = torch.tensor([0, 1]), torch.tensor([3, 10])
    scores = model.score(batch)
    assert scores.shape == (2, N_ITEMS) and not P5.is_generative()
    scores[batch["seen_rows"], batch["seen_items"]] = float("-inf")
    assert torch.equal(_lists(model, batch, 4), top_k(scores, 4)[0])


def test_fewer_unseen_items_than_k_leave_minus_one(trained) -> None:
    model, _ = trained
    batch = eval_batch([0], [[1, 2]], N_ITEMS, CONFIG.max_seq_length)
    batch["seen_rows"], batch["seen_items"] = torch.zeros(N_ITEMS - 2, dtype=torch.long), torch.arange(2, N_ITEMS)
    items = _lists(model, batch, 4)
    assert sorted(items[0, :2].tolist()) == [0, 1] and items[0, 2:].tolist() == [-1, -1]
    one = eval_batch([0], [[1]], N_ITEMS, CONFIG.max_seq_length)
    assert _lists(model, one, N_ITEMS + 2).shape == (1, N_ITEMS)  # never more items than the catalogue


def test_right_padding_does_not_change_scores(trained) -> None:
    model, _ = trained
    histories = [[4, 5, 6], [9, 2], [7], []]
    together = model.score(eval_batch([0, 1, 2, 3], histories, N_ITEMS, CONFIG.max_seq_length))
    for row, history in enumerate(histories):
        alone = model.score(eval_batch([0], [history], N_ITEMS, CONFIG.max_seq_length))
        torch.testing.assert_close(alone[0], together[row], rtol=1e-4, atol=1e-4)


def test_default_config_and_batch_spec(trained) -> None:
    config = P5Config()
    assert (config.backbone, config.num_layers, config.lora_r, config.max_seq_length) == ("smollm2-135m", 8, 8, 20)
    assert (config.lr, config.batch_size, config.train_windows_per_epoch, config.numbering_seed) == (1e-3, 16, 2048, 0)
    assert trained[0].batch_spec() == BatchSpec(kind="sequential", batch_size=64, num_negatives=1, history_length=4)
    assert not P5.is_generative()


def test_trains_and_evaluates_through_the_harness(tiny_ml, tmp_path) -> None:
    """`run` then `evaluate --checkpoint`: the slim checkpoint (LoRA, item tokens, numbering) restores the test figures."""
    import json

    from benchmark.cli import main

    out = tmp_path / "out"
    sets = ["backbone=tiny-llama", "num_layers=0", "train_windows_per_epoch=64", "numbering_seed=3"]
    argv = ["run", "--model", "p5", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(out), "--no-progress", "--max-epochs", "1"]
    assert main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    (path,) = out.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    assert "valid_ratio" not in record["metrics"]["test"]  # a scorer: the harness builds the lists, always valid
    assert main(["evaluate", "--checkpoint", str(path.parent / "checkpoints" / "best.ckpt"), "--output", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["ndcg@10"] == record["metrics"]["test"]["ndcg@10"] and again["hr@10"] == record["metrics"]["test"]["hr@10"]
