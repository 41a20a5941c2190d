import warnings
from collections import Counter

import lightning.pytorch as L
import pytest
import torch
from torch.utils.data import DataLoader

from baselines.pop import Pop, PopConfig
from benchmark.model import BatchSpec
from tests.baselines.helpers import eval_batch, eval_scores, fit, pairwise_batches, round_trip

N_USERS, N_ITEMS = 5, 7
# item 6 is never interacted with
INTERACTIONS = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 3), (2, 0), (2, 1), (3, 4), (3, 0), (4, 1), (4, 5)]
COUNTS = Counter(item for _, item in INTERACTIONS)
EXPECTED = torch.tensor([float(COUNTS[i]) for i in range(N_ITEMS)])


def _model() -> Pop:
    return Pop(N_USERS, N_ITEMS, PopConfig())


def _trained(epochs: int) -> Pop:
    model = _model()
    fit(model, pairwise_batches(INTERACTIONS, N_ITEMS, batch_size=4), epochs=epochs)
    return model


def test_scores_are_the_training_counts_for_every_user() -> None:
    scores = eval_scores(_trained(epochs=1), eval_batch([0, 3, 4], [[], [], []], N_ITEMS, 1))
    assert torch.equal(scores, EXPECTED.expand(3, -1))


def test_a_second_epoch_does_not_double_the_counts() -> None:
    scores = eval_scores(_trained(epochs=2), eval_batch([1], [[]], N_ITEMS, 1))
    assert torch.equal(scores, EXPECTED.unsqueeze(0))


def test_training_raises_no_optimizer_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trained(epochs=1)
    assert not [w for w in caught if "optimizer" in str(w.message).lower()]


def test_state_dict_round_trip(tmp_path) -> None:
    model = _trained(epochs=1)
    restored = round_trip(model, _model, tmp_path)
    batch = eval_batch([0, 2], [[], []], N_ITEMS, 1)
    assert torch.equal(eval_scores(restored, batch), eval_scores(model, batch))


def test_score_contract() -> None:
    model = _trained(epochs=1)
    scores = eval_scores(model, eval_batch([0, 1, 2, 3], [[], [], [], []], N_ITEMS, 1))
    assert scores.dtype == torch.float32 and scores.shape == (4, N_ITEMS)
    assert torch.isfinite(scores).all()
    scores[0, 0] = -torch.inf  # the evaluator masks in place: it must not reach the model
    assert torch.equal(eval_scores(model, eval_batch([0], [[]], N_ITEMS, 1))[0], EXPECTED)


def test_batch_spec() -> None:
    assert _model().batch_spec() == BatchSpec(kind="pairwise", batch_size=65536, num_negatives=1, history_length=0)


@pytest.mark.slow
def test_counts_are_summed_over_ddp_processes() -> None:
    """Two CPU processes each count half of the batches; rank 0's counts (copied back into
    the main process) are the totals, also after a second epoch."""
    model = _model()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=2,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
    )
    # 6 batches: 3 per process, none repeated by the DistributedSampler
    trainer.fit(model, DataLoader(pairwise_batches(INTERACTIONS, N_ITEMS, batch_size=2), batch_size=None))
    assert torch.equal(model.item_counts, EXPECTED.long())
