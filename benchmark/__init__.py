"""llm4rec-bench: the harness (data, evaluation, metrics, run records, tables) and its Python API.

``from benchmark import Experiment, register_model, RunRecord, load_records``; the names are
imported on first use, so ``import benchmark`` (and ``python -m benchmark --help``) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Experiment": "benchmark.experiment",
    "register_model": "benchmark.registry",
    "RunRecord": "benchmark.records",
    "load_records": "benchmark.records",
    "load_dataset": "benchmark.data.datasets",
    "Evaluator": "benchmark.evaluation",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
