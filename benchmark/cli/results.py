"""`collect` (comparison tables and plots from run records) and `compare` (two runs, paired)."""

from __future__ import annotations

import argparse

from benchmark.cli.common import add_command, add_output, dataset_name, print_table, write_output


def add_parsers(commands: argparse._SubParsersAction) -> None:
    text = "comparison and ablation tables (mean ± std over seeds, significance markers) and plots from run records"
    collect = add_command(
        commands, "collect", text,
        description=f"{text}. Runs are never mixed across datasets, data fingerprints, splits, evaluation protocols or K sets: "
        "each combination gets its own tables. Only runs with status 'completed' count; the others are listed as skipped.",
        examples=["python -m benchmark collect --runs runs --plots plots", "python -m benchmark collect --runs runs --output table.tex"],
    )  # fmt: skip
    collect.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders <run_id>/result.json (default: runs)")
    collect.add_argument("--data", type=dataset_name, help="only this dataset's runs (default: all)")
    collect.add_argument("--format", choices=("md", "csv", "latex", "html"), default="md",
                         help="md (default), csv (long form: one line per model and metric), latex (booktabs) or html (self-contained page)")  # fmt: skip
    collect.add_argument("--plots", metavar="DIR", help="also write PNG plots here: accuracy vs fairness, NDCG by test-item popularity, ablations, streaming windows")
    collect.add_argument("--output", metavar="FILE", help="write the tables in --format to FILE (FILE.json: as JSON) and print the Markdown tables")
    collect.add_argument("--k", type=int, default=10, help="cut-off of every column (default 10)")
    collect.add_argument("--alpha", type=float, default=0.05, help="significance level of the markers (default 0.05)")
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
    from benchmark.results import cmd_collect as collect_tables

    collect_tables(args)


def cmd_compare(args: argparse.Namespace) -> None:
    from benchmark.compare import compare_runs, comparison_rows

    result = compare_runs(args.run_a, args.run_b)
    for side in ("a", "b"):
        run = result[side]
        print(f"{side.upper()} = {run['model']} on {run['dataset']}, seed {run['seed']} ({run['run_id']})")
    print(f"{result['n_users']} shared test users ({result['eval_protocol']} protocol); Holm: adjusted over the {len(comparison_rows(result))} metrics\n")
    rows = [[m, a, b, d, f"{pt:.3g}", f"{ph:.3g}", f"{pw:.3g}", f"{wh:.3g}", n] for m, a, b, d, pt, ph, pw, wh, n in comparison_rows(result)]
    print_table(rows, ["metric", "A", "B", "B - A", "p (t-test)", "Holm", "p (Wilcoxon)", "Holm", "users"])
    write_output(args.output, result)
