import json
from pathlib import Path

import pytest
import torch

from baselines.gru4rec import GRU4Rec, GRU4RecConfig
from benchmark.cli import main
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, round_trip, sequential_batches

N_USERS, N_ITEMS = 12, 12
PAD = N_ITEMS
CONFIG = GRU4RecConfig(embedding_size=32, hidden_size=64, n_layers=1, dropout=0.1, max_seq_length=8, lr=1e-2, batch_size=16)


def _cycle(start: int, length: int) -> list[int]:
    """Planted pattern: item i is always followed by item (i + 1) mod N_ITEMS."""
    return [(start + step) % N_ITEMS for step in range(length)]


def _model(config: GRU4RecConfig = CONFIG) -> GRU4Rec:
    torch.manual_seed(0)
    return GRU4Rec(N_USERS, N_ITEMS, config)


@pytest.fixture(scope="module")
def trained() -> tuple[GRU4Rec, list[float]]:
    model = _model()
    # unlike attention, a GRU's first step (from the zero state) is a function of its own: every
    # item starts some training window here, so that histories of one item are learned too
    sequences = {user: _cycle(start=5 * user, length=13 + user) for user in range(N_USERS)}
    losses = fit(model, sequential_batches(sequences, N_ITEMS, CONFIG.max_seq_length, CONFIG.batch_size), epochs=40)
    return model, losses


def test_learns_the_next_item_of_a_cycle(trained) -> None:
    model, losses = trained
    assert sum(losses[-3:]) < 0.2 * sum(losses[:3])
    # histories of every length from 1 to past max_seq_length, ending in every item
    histories = [
        _cycle(start=(last - length + 1) % N_ITEMS, length=length) for last in range(N_ITEMS) for length in (1, 4, 11)
    ]
    scores = eval_scores(model, eval_batch([0] * len(histories), histories, N_ITEMS, 11))
    expected = torch.tensor([(history[-1] + 1) % N_ITEMS for history in histories])
    assert torch.equal(scores.argmax(dim=1), expected)


def test_state_dict_round_trip(trained, tmp_path) -> None:
    model, _ = trained
    restored = round_trip(model, _model, tmp_path)
    batch = eval_batch([0, 1], [[1, 2, 3], [5]], N_ITEMS, CONFIG.max_seq_length)
    assert torch.equal(eval_scores(restored, batch), eval_scores(model, batch))


def test_score_contract(trained) -> None:
    model, _ = trained
    batch = eval_batch([0, 1, 2], [[4, 5, 6], [7], []], N_ITEMS, CONFIG.max_seq_length)
    scores = eval_scores(model, batch)
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)  # no score for the pad id
    assert torch.isfinite(scores).all()  # also for the all-pad history


def test_left_padding_does_not_change_scores(trained) -> None:
    model, _ = trained
    histories = [[4, 5, 6], [9, 2], [7]]
    short = eval_scores(model, eval_batch([0, 1, 2], histories, N_ITEMS, 3))
    padded = eval_scores(model, eval_batch([0, 1, 2], histories, N_ITEMS, CONFIG.max_seq_length))
    torch.testing.assert_close(padded, short, rtol=1e-5, atol=1e-5)
    # each row alone, without any padding, scores the same as in the padded batch
    for row, history in enumerate(histories):
        alone = eval_scores(model, eval_batch([row], [history], N_ITEMS, len(history)))
        torch.testing.assert_close(alone[0], padded[row], rtol=1e-5, atol=1e-5)


def test_only_the_last_max_seq_length_items_count(trained) -> None:
    model, _ = trained
    long_history = [(3 * step) % N_ITEMS for step in range(CONFIG.max_seq_length + 5)]
    full = eval_scores(model, eval_batch([0], [long_history], N_ITEMS, len(long_history)))
    cut = eval_scores(model, eval_batch([0], [long_history[-CONFIG.max_seq_length :]], N_ITEMS, CONFIG.max_seq_length))
    torch.testing.assert_close(full, cut, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_training_loss_ignores_left_padding() -> None:
    """The loss of a window is the same whatever padding precedes it; windows without targets add nothing."""
    model = _model()
    model.eval()  # no dropout: compare exactly
    short = {"users": torch.tensor([0]), "input_seq": torch.tensor([[1, 2, 3]]), "target_seq": torch.tensor([[2, 3, 4]])}
    pad_row = [PAD] * CONFIG.max_seq_length
    padded = {
        "users": torch.tensor([0, 1]),
        "input_seq": torch.tensor([pad_row[:-3] + [1, 2, 3], pad_row]),
        "target_seq": torch.tensor([pad_row[:-3] + [2, 3, 4], pad_row]),
    }
    torch.testing.assert_close(model.training_step(padded, 0), model.training_step(short, 0), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_windows_without_targets_give_a_finite_loss_and_gradients() -> None:
    model = _model()
    model.train()
    pad_row = [PAD] * CONFIG.max_seq_length
    batch = {
        "users": torch.tensor([0, 1]),
        "input_seq": torch.tensor([pad_row, pad_row[:-1] + [3]]),
        "target_seq": torch.tensor([pad_row, pad_row]),
    }
    loss = model.training_step(batch, 0)
    loss.backward()
    assert loss.item() == 0.0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_default_config_and_batch_spec() -> None:
    config = GRU4RecConfig()
    assert (config.embedding_size, config.hidden_size, config.n_layers, config.dropout) == (64, 128, 1, 0.3)
    assert (config.max_seq_length, config.lr, config.batch_size) == (50, 1e-3, 48)
    model = GRU4Rec(N_USERS, N_ITEMS, config)
    assert model.batch_spec() == BatchSpec(kind="sequential", batch_size=48, num_negatives=1, history_length=50)
    assert model.item_emb.num_embeddings == N_ITEMS + 1 and model.item_emb.padding_idx == PAD


def test_cli_run_end_to_end(tiny_ml: Path, tmp_path: Path) -> None:
    argv = ["run", "--model", "gru4rec", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(tmp_path)]
    assert main([*argv, "--max-epochs", "2", "--no-progress", "--set", "max_seq_length=10"]) == 0
    (record,) = tmp_path.glob("runs/*/result.json")
    result = json.loads(record.read_text())
    assert result["model"] == "gru4rec" and result["status"] == "completed"
    assert result["config"]["model_config"]["max_seq_length"] == 10 and result["timings"]["epochs"] == 2
    assert 0.0 <= result["metrics"]["test"]["ndcg@10"] <= 1.0
