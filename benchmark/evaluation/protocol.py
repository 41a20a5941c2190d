"""The test protocol of a run: the Evaluator of its test pass (full ranking with the
beyond-accuracy metrics and ``ndcg-true``, or sampled negatives) and those negatives."""

from __future__ import annotations

import numpy as np

from benchmark.evaluation.context import EvalContext
from benchmark.evaluation.evaluator import Evaluator
from benchmark.evaluation.sampled import SampledNegatives, sample_negatives
from benchmark.evaluation.truth import TrueRelevance


def test_evaluator(dm: object, train: object, *, seed: int, negatives: SampledNegatives | None = None, true_relevance: TrueRelevance | None = None) -> Evaluator:
    """The Evaluator of a run's test pass, built from a ``RecDataModule`` and a ``TrainConfig``.

    Full protocol: accuracy at ``train.loop.ks`` and every beyond-accuracy metric the dataset
    supports (at the same ks), plus ``ndcg-true`` when ``true_relevance`` is given. Sampled
    protocol: accuracy only, over each user's relevant items and ``train.evaluation.eval_negatives``
    sampled negatives (``negatives`` if given, else drawn now with ``seed``).
    """
    data = dm.data  # type: ignore[attr-defined]
    ks = tuple(train.loop.ks)  # type: ignore[attr-defined]
    if train.evaluation.eval_protocol == "sampled":  # type: ignore[attr-defined]
        if negatives is None:
            negatives = test_negatives(dm, train, seed=seed)
        return Evaluator(data.n_items, ks=ks, collect_per_user=True, negatives=negatives)
    context = EvalContext.from_data(data, features=train.evaluation.ild_features, item_group=train.evaluation.eval_item_group)  # type: ignore[attr-defined]
    return Evaluator(data.n_items, ks=ks, collect_per_user=True, context=context, true_relevance=true_relevance)


def test_negatives(dm: object, train: object, *, seed: int) -> SampledNegatives:
    """Sampled negatives of every test user (deterministic in the seed): never a seen or relevant item."""
    test_set = dm.test_set  # type: ignore[attr-defined]
    popularity = np.bincount(dm.data.train.item, minlength=dm.data.n_items)  # type: ignore[attr-defined]
    return sample_negatives(
        test_set.users, [test_set.seen, test_set.relevant], dm.data.n_items, train.evaluation.eval_negatives,  # type: ignore[attr-defined]
        sampler=train.evaluation.eval_sampler, popularity=popularity, seed=seed,  # type: ignore[attr-defined]
    )  # fmt: skip

