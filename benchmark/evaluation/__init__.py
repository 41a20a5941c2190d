"""Full-ranking evaluation: mask seen items, take the top K, update the metrics.

Models only score (or, if generative, decode) items; this package owns everything after
that (DESIGN.md, "The model contract"), so every model is measured by the same code.
Ties in scores are broken by the lower item index, exactly, wherever they fall.

Modules: ``ranking`` (masking, exact top-K, ``rank``), ``evaluator`` (the ``Evaluator``),
``context`` (the ``EvalContext`` of the beyond-accuracy metrics), ``sampled`` (the
sampled-negative protocol), ``truth`` (true relevance of simulated data, ``ndcg-true``)
and ``protocol`` (the Evaluator of a run's test pass).
"""

from __future__ import annotations

from benchmark.evaluation.context import ACTIVE_FRACTION, HEAD_FRACTION, EvalContext, category_multi_hot, pd_factorize
from benchmark.evaluation.evaluator import Evaluator
from benchmark.evaluation.protocol import test_evaluator, test_negatives
from benchmark.evaluation.ranking import _valid_ids, mask_seen, rank, top_k  # noqa: F401 (_valid_ids: predictions)
from benchmark.evaluation.sampled import SampledNegatives, sample_negatives
from benchmark.evaluation.truth import TrueRelevance, true_relevance_for
from benchmark.metrics import ACCURACY_METRICS, BEYOND_METRICS  # noqa: F401 (the metric tables, beside the engine)

__all__ = [
    "ACTIVE_FRACTION", "HEAD_FRACTION", "EvalContext", "Evaluator", "SampledNegatives", "TrueRelevance",
    "category_multi_hot", "mask_seen", "pd_factorize", "rank", "sample_negatives", "test_evaluator", "test_negatives",
    "top_k", "true_relevance_for",
]  # fmt: skip
