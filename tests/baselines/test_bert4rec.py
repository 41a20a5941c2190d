import pytest
import torch

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, round_trip, sequential_batches

N_USERS, N_ITEMS = 48, 12
PAD, MASK = N_ITEMS, N_ITEMS + 1
CONFIG = BERT4RecConfig(
    n_layers=2,
    n_heads=2,
    hidden_size=32,
    inner_size=64,
    hidden_dropout=0.0,
    attn_dropout=0.0,
    mask_ratio=0.3,
    max_seq_length=8,
    lr=3e-3,
    batch_size=16,
)


def _cycle(start: int, length: int) -> list[int]:
    """Planted pattern: item i is always followed by item (i + 1) mod N_ITEMS."""
    return [(start + step) % N_ITEMS for step in range(length)]


def _model(config: BERT4RecConfig = CONFIG) -> BERT4Rec:
    torch.manual_seed(0)
    return BERT4Rec(N_USERS, N_ITEMS, config)


@pytest.fixture(scope="module")
def trained() -> tuple[BERT4Rec, list[float]]:
    model = _model()
    # the Cloze task learns slowly and, with positions, memorises a small set: many short and
    # long sequences (2 to 18 items, every start) and many epochs
    sequences = {user: _cycle(start=5 * user, length=2 + user % 17) for user in range(N_USERS)}
    losses = fit(model, sequential_batches(sequences, N_ITEMS, CONFIG.max_seq_length, CONFIG.batch_size), epochs=300)
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
    assert scores.dtype == torch.float32 and scores.shape == (3, N_ITEMS)  # no score for pad or [MASK]
    assert torch.isfinite(scores).all()  # also for the all-pad history


def test_left_padding_does_not_change_scores(trained) -> None:
    model, _ = trained
    histories = [[4, 5, 6], [9, 2], [7]]
    short = eval_scores(model, eval_batch([0, 1, 2], histories, N_ITEMS, 3))
    padded = eval_scores(model, eval_batch([0, 1, 2], histories, N_ITEMS, CONFIG.max_seq_length))
    torch.testing.assert_close(padded, short, rtol=1e-5, atol=1e-5)
    for row, history in enumerate(histories):
        alone = eval_scores(model, eval_batch([row], [history], N_ITEMS, len(history)))
        torch.testing.assert_close(alone[0], padded[row], rtol=1e-5, atol=1e-5)


def test_only_the_last_max_seq_length_minus_one_items_count(trained) -> None:
    model, _ = trained
    long_history = [(3 * step) % N_ITEMS for step in range(CONFIG.max_seq_length + 5)]
    keep = CONFIG.max_seq_length - 1  # and [MASK]
    full = eval_scores(model, eval_batch([0], [long_history], N_ITEMS, len(long_history)))
    cut = eval_scores(model, eval_batch([0], [long_history[-keep:]], N_ITEMS, keep))
    torch.testing.assert_close(full, cut, rtol=1e-5, atol=1e-5)


def test_training_sequence_and_masking() -> None:
    model = _model()
    window = {
        "users": torch.tensor([0, 1]),
        "input_seq": torch.tensor([[PAD] * 5 + [1, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7]]),
        "target_seq": torch.tensor([[PAD] * 5 + [2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]]),
    }
    seq = model.training_sequence(window)  # the window's real items, last max_seq_length of them
    assert seq.tolist() == [[PAD] * 4 + [1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]]
    torch.manual_seed(7)
    first, where = model.mask(seq)
    torch.manual_seed(7)
    again, _ = model.mask(seq)
    assert torch.equal(first, again)  # deterministic given the torch seed
    assert not where[:, :4][0].any()  # never a pad position
    assert torch.equal(first[where], torch.full_like(first[where], MASK)) and torch.equal(first[~where], seq[~where])
    many = model.mask(seq.repeat(500, 1))[1]
    assert abs(many[seq.repeat(500, 1) != PAD].float().mean().item() - CONFIG.mask_ratio) < 0.03


def test_ft_ratio_masks_only_the_last_item_of_a_share_of_sequences() -> None:
    from dataclasses import replace

    model = _model(replace(CONFIG, ft_ratio=0.4))
    seq = torch.tensor([[PAD] * 4 + [1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]]).repeat(1000, 1)
    torch.manual_seed(3)
    _, where = model.mask(seq)
    last_only = where[:, -1] & (where.sum(1) == 1)
    # Cloze rows with only the last item masked occur too (0.3 * 0.7^3 and 0.3 * 0.7^7), so
    # the share of last-item-only rows is ft_ratio + (1 - ft_ratio) * those probabilities
    cloze_alone = 0.5 * (0.3 * 0.7**3 + 0.3 * 0.7**7)
    assert abs(last_only.float().mean().item() - (0.4 + 0.6 * cloze_alone)) < 0.03
    assert not where[0::2, :4].any()  # never a pad position
    plain = _model()
    torch.manual_seed(3)
    cloze = (torch.rand(seq.shape) < CONFIG.mask_ratio) & (seq != PAD)
    torch.manual_seed(3)
    assert torch.equal(plain.mask(seq)[1], cloze)  # ft_ratio 0: the plain Cloze draw, unchanged


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered")
def test_windows_without_masked_items_give_a_finite_loss_and_gradients() -> None:
    model = _model()
    model.train()
    pad_row = [PAD] * CONFIG.max_seq_length
    batch = {"users": torch.tensor([0]), "input_seq": torch.tensor([pad_row]), "target_seq": torch.tensor([pad_row])}
    loss = model.training_step(batch, 0)
    loss.backward()
    assert loss.item() == 0.0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_default_config_and_batch_spec() -> None:
    config = BERT4RecConfig()
    assert (config.n_layers, config.n_heads, config.hidden_size, config.inner_size) == (2, 2, 64, 256)
    assert (config.hidden_dropout, config.attn_dropout, config.mask_ratio) == (0.2, 0.2, 0.2)
    assert (config.max_seq_length, config.lr, config.batch_size) == (50, 1e-3, 128)
    model = BERT4Rec(N_USERS, N_ITEMS, config)
    assert model.batch_spec() == BatchSpec(kind="sequential", batch_size=128, num_negatives=1, history_length=50)
    assert model.item_emb.num_embeddings == N_ITEMS + 2 and model.item_emb.padding_idx == PAD
