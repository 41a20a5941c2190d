"""The ``collect`` command line: ``add_collect_parser`` and ``cmd_collect`` (the only code here that prints)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_text
from benchmark.records import RunRecord
from benchmark.results.plots import make_plots
from benchmark.results.render import FORMATS, render, render_markdown
from benchmark.results.tables import (
    DEFAULT_ACROSS,
    TESTS,
    collect,
    collect_across_datasets,
)

EXTENSIONS = {".md": "md", ".csv": "csv", ".tex": "latex", ".html": "html", ".json": "json"}


def output_format(output: str | None, fmt: str | None) -> str:
    """The format to write: ``--format`` (default md) on stdout; the extension of ``--output``
    otherwise, refused when unknown or when ``--format`` says something else."""
    if output is None:
        return fmt or "md"
    suffix = Path(output).suffix.lower()
    inferred = EXTENSIONS.get(suffix)
    if inferred is None:
        known = ", ".join(f"{ext} ({name})" for ext, name in EXTENSIONS.items())
        raise BenchmarkError(f"--output {output}: unknown extension {suffix or '(none)'!r}; the format follows the extension: {known}")
    if fmt is not None and fmt != inferred:
        raise BenchmarkError(f"--format {fmt} conflicts with --output {output}, whose extension {suffix} means {inferred}: "
                             "drop --format or change the extension")  # fmt: skip
    return inferred


def add_collect_parser(commands: argparse._SubParsersAction) -> None:
    from benchmark.data.datasets import DATASET_NAMES, canonical_name

    text = "comparison and ablation tables (mean ± std over seeds, significance markers) and plots from run records"
    parser = commands.add_parser(
        "collect", help=text,
        description=f"{text}. Runs are never mixed across datasets, data fingerprints, splits, evaluation protocols or K sets: "
        "each combination gets its own tables (--across-datasets: datasets side by side, one table per split, evaluation "
        "protocol and K set). Only runs with status 'completed' count; the others are listed as skipped, with the reason.",
    )  # fmt: skip
    parser.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders <run_id>/result.json (default: runs)")
    parser.add_argument("--data", type=canonical_name, choices=DATASET_NAMES, help="only this dataset's runs (default: all)")
    parser.add_argument("--format", choices=FORMATS, help="md (default), csv (long form: one line per model and metric), latex (booktabs), "
                        "html (self-contained page) or json; with --output the extension decides, and a different --format is refused")  # fmt: skip
    parser.add_argument("--output", metavar="FILE", help="write the tables to FILE (.md, .csv, .tex, .html or .json) and print them as Markdown")
    parser.add_argument("--plots", metavar="DIR", help="also write PNG plots here: accuracy vs fairness, NDCG by test-item popularity, "
                        "ablations, streaming windows; with --across-datasets, one panel per dataset")  # fmt: skip
    parser.add_argument("--k", type=int, default=10, help="cut-off of every column (default 10)")
    parser.add_argument("--metrics", metavar="LIST", help="comma-separated columns, e.g. ndcg,hr,recall@20 (a bare name is @K); default: "
                        f"every metric the runs have ({'/'.join(DEFAULT_ACROSS)} with --across-datasets)")  # fmt: skip
    parser.add_argument("--across-datasets", action="store_true", help="one table with the datasets as column groups (real data only unless --include-synthetic)")
    parser.add_argument("--include-synthetic", action="store_true", help="with --across-datasets: add synthetic datasets, labelled SYNTHETIC")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the ▲/▼ markers, on Holm-adjusted p (default 0.05)")
    parser.add_argument("--test", choices=TESTS, default="ttest", help="paired test over users for the markers (default ttest)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _progress(records: list[RunRecord]) -> Iterable[RunRecord]:
    from tqdm import tqdm

    return tqdm(records, desc="run records", unit="run", file=sys.stderr)


def cmd_collect(args: argparse.Namespace) -> None:
    fmt = output_format(args.output, args.format)
    metrics = [m for m in args.metrics.split(",") if m.strip()] if args.metrics is not None else None
    progress = None if args.no_progress else _progress
    options = {"k": args.k, "alpha": args.alpha, "test": args.test, "metrics": metrics, "progress": progress}
    if args.across_datasets:
        if args.data:
            raise BenchmarkError("--across-datasets puts every dataset side by side; --data keeps one (use one or the other)")
        collection = collect_across_datasets(args.runs, include_synthetic=args.include_synthetic, **options)
    else:
        if args.include_synthetic:
            raise BenchmarkError("--include-synthetic only applies to --across-datasets (per-dataset tables always include synthetic data, labelled)")
        collection = collect(args.runs, args.data, **options)
    if args.output:
        path = atomic_write_text(args.output, render(collection, fmt))
        print(render_markdown(collection))
        print(f"wrote {path} ({fmt})")
    else:
        print(render(collection, fmt), end="")
    if args.plots:
        not_drawn: list[str] = []
        for plot in make_plots(collection, args.plots, not_drawn):
            print(f"plot ({plot.kind}): {plot.path}")
        for line in not_drawn:
            print(f"no plot {line}")
