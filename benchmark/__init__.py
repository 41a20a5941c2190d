"""llm4rec-bench: the harness (CLI, config, data, metrics, evaluation, run records)."""

__version__ = "0.1.0"
