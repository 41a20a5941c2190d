"""`collect` (comparison tables and plots from run records) and `compare` (two runs, paired)."""

from __future__ import annotations

import argparse

from benchmark.cli.common import add_command, add_output, dataset_name, print_table, write_output


def add_parsers(commands: argparse._SubParsersAction) -> None:
    text = "comparison and ablation tables (mean ± std over seeds, significance markers) and plots from run records"
    collect = add_command(
        commands, "collect", text,
        description=f"{text}. Runs are never mixed across datasets, data fingerprints, splits, evaluation protocols or K sets: "
        "each combination gets its own tables (--across-datasets: datasets side by side, one table per split, evaluation "
        "protocol and K set). Only runs with status 'completed' count; the others are listed as skipped, with the reason.",
        examples=["python -m benchmark collect --runs runs --plots plots", "python -m benchmark collect --runs runs --output table.tex",
                  "python -m benchmark collect --runs runs --across-datasets --metrics ndcg,hr --output across.md"],
    )  # fmt: skip
    collect.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders <run_id>/result.json (default: runs)")
    collect.add_argument("--data", type=dataset_name, help="only this dataset's runs (default: all)")
    collect.add_argument("--format", choices=("md", "csv", "latex", "html", "json"),
                         help="md (default), csv (long form: one line per model and metric), latex (booktabs), html (self-contained "
                         "page) or json; with --output the extension decides, and a different --format is refused")  # fmt: skip
    collect.add_argument("--output", metavar="FILE", help="write the tables to FILE (.md, .csv, .tex, .html or .json) and print them as Markdown")
    collect.add_argument("--plots", metavar="DIR", help="also write PNG plots here: accuracy vs fairness, NDCG by test-item popularity, "
                         "ablations, streaming windows; with --across-datasets, one panel per dataset")  # fmt: skip
    collect.add_argument("--k", type=int, default=10, help="cut-off of every column (default 10)")
    collect.add_argument("--metrics", metavar="LIST", help="comma-separated columns, e.g. ndcg,hr,recall@20 (a bare name is @K); default: "
                         "every metric the runs have (ndcg/hr with --across-datasets)")  # fmt: skip
    collect.add_argument("--across-datasets", action="store_true", help="one table with the datasets as column groups (real data only unless --include-synthetic)")
    collect.add_argument("--include-synthetic", action="store_true", help="with --across-datasets: add synthetic datasets, labelled SYNTHETIC")
    collect.add_argument("--alpha", type=float, default=0.05, help="significance level of the ▲/▼ markers, on Holm-adjusted p (default 0.05)")
    collect.add_argument("--test", choices=("ttest", "wilcoxon"), default="ttest", help="paired test over users for the markers (default ttest)")
    collect.add_argument("--no-progress", action="store_true", help="hide progress bars")
    collect.set_defaults(handler=cmd_collect)

    compare = add_command(
        commands, "compare", "paired significance tests between two runs over their shared test users",
        description="Per metric: both means, the difference (B - A) and the p-values of a paired t-test and a Wilcoxon "
        "signed-rank test over the test users both runs evaluated (from each run's per_user_test.parquet), each also "
        "Holm-adjusted over the metrics compared.",
        examples=["python -m benchmark compare runs/RUN_A runs/RUN_B --output compare.json"],
    )  # fmt: skip
    compare.add_argument("run_a", metavar="RUN_A", help="run folder (runs/<run_id>), its result.json, or a run id under ./runs")
    compare.add_argument("run_b", metavar="RUN_B")
    add_output(compare)
    compare.set_defaults(handler=cmd_compare)


def cmd_collect(args: argparse.Namespace) -> None:
    import sys

    from tqdm import tqdm

    from benchmark.errors import BenchmarkError
    from benchmark.files import atomic_write_text
    from benchmark.results import collect, collect_across_datasets, make_plots, output_format, render
    from benchmark.results.render import render_markdown

    fmt = output_format(args.output, args.format)
    metrics = [m for m in args.metrics.split(",") if m.strip()] if args.metrics is not None else None
    progress = None if args.no_progress else (lambda records: tqdm(records, desc="run records", unit="run", file=sys.stderr))
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


def cmd_compare(args: argparse.Namespace) -> None:
    from benchmark.compare import compare_runs, comparison_rows

    result = compare_runs(args.run_a, args.run_b)
    for side in ("a", "b"):
        run = result[side]
        print(f"{side.upper()} = {run['model']} on {run['dataset']}, seed {run['seed']} ({run['run_id']})")
    if "warning" in result:
        print(f"warning: {result['warning']}")
    print(f"{result['n_users']} shared test users ({result['eval_protocol']} protocol); Holm: adjusted over the {len(comparison_rows(result))} metrics\n")
    rows = [[m, a, b, d, f"{pt:.3g}", f"{ph:.3g}", f"{pw:.3g}", f"{wh:.3g}", n] for m, a, b, d, pt, ph, pw, wh, n in comparison_rows(result)]
    print_table(rows, ["metric", "A", "B", "B - A", "p (t-test)", "Holm", "p (Wilcoxon)", "Holm", "users"])
    write_output(args.output, result)
