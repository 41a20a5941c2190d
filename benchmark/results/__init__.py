"""`python -m benchmark collect`: comparison, ablation and cross-dataset tables, and plots, from run records.

- ``loading``: run records read through ``benchmark.records`` (``RunRecord``), checked, and
  grouped by protocol; a record a table cannot use is skipped with its reason.
- ``tables``: the tables (mean ± std over seeds, ranks, paired tests over users with Holm
  adjustment, ablation deltas, duplicate columns under one held-out item per user).
- ``render``: Markdown, CSV, LaTeX and HTML (pandas Styler), JSON.
- ``plots``: PNG plots.
The command line (``collect``) is ``benchmark.cli.results``.

Metric names, families and directions come from ``benchmark.metrics.metric_catalogue``.
"""

from benchmark.results.loading import Protocol, Setting, load_runs
from benchmark.results.plots import (
    Plot,
    make_plots,
    plot_ablation,
    plot_accuracy_fairness,
    plot_across_datasets,
    plot_ndcg_by_popularity,
    plot_streaming,
    streaming_windows,
)
from benchmark.results.render import EXTENSIONS, FORMATS, latex_escape, output_format, render
from benchmark.results.tables import (
    BETTER,
    POPULARITY_COLUMN,
    TESTS,
    WORSE,
    Cell,
    Collection,
    CrossTable,
    Row,
    Table,
    build_tables,
    collect,
    collect_across_datasets,
    duplicate_columns,
)

__all__ = [
    "BETTER", "EXTENSIONS", "FORMATS", "POPULARITY_COLUMN", "TESTS", "WORSE", "Cell", "Collection", "CrossTable", "Plot",
    "Protocol", "Row", "Setting", "Table", "build_tables", "collect",
    "collect_across_datasets", "duplicate_columns", "latex_escape", "load_runs", "make_plots", "output_format",
    "plot_ablation", "plot_accuracy_fairness", "plot_across_datasets", "plot_ndcg_by_popularity", "plot_streaming",
    "render", "streaming_windows",
]  # fmt: skip
