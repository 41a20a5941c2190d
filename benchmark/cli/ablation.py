"""`ablation`: a model and each of its registered ablations over seeds, with seed-level tests."""

from __future__ import annotations

import argparse
from typing import Any

from benchmark.cli.common import (
    add_command, add_logger, add_output, add_overrides, add_raw_dir, dataset_name, model_name, overrides, print_table, write_output,
)  # fmt: skip


def add_parsers(commands: argparse._SubParsersAction) -> None:
    text = "run a model and each of its registered ablations over several seeds; print a summary table"
    parser = add_command(
        commands, "ablation", text,
        description=text + ". Every (variant, seed) is a full `run` (record under <out>/runs/). Columns: mean ± std over seeds of "
        "the test metrics, the per-seed NDCG@10, its relative change vs the full model, and two tests whose unit is the seed: a "
        "paired t-test over the per-seed means and a hierarchical bootstrap (seeds, then users) with its 95% interval, each "
        "Holm-adjusted over the variants; then training seconds and test users ranked per second.",
        examples=["python -m benchmark ablation --model llm4rec --data synthetic-yelp --seeds 3 --variants no-rag,no-debias --reuse"],
    )  # fmt: skip
    parser.add_argument("--model", required=True, type=model_name, help="the full model (its ablations are the registered <model>-no-* names)")
    parser.add_argument("--data", required=True, type=dataset_name)
    add_raw_dir(parser)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant (default 3)")
    parser.add_argument("--variants", help="comma-separated subset of ablations, e.g. no-rag,no-llm (default: all)")
    add_overrides(parser)
    parser.add_argument("--max-epochs", type=int, help="maximum training epochs (default: the model's)")
    add_logger(parser)
    parser.add_argument("--out", default=".", help="folder that receives runs/<run_id>/ (default: current folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse completed runs under --out with the same config hash and seed")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_output(parser)
    parser.set_defaults(handler=cmd_ablation)


def cmd_ablation(args: argparse.Namespace) -> None:
    from benchmark.ablation import propensity_agreement_for, run_ablation, summarise, summary_rows

    given = overrides(args)
    if args.max_epochs is not None:
        given["max_epochs"] = args.max_epochs
    names = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else None

    def report(event: str, name: str, seed: int, record: Any) -> None:
        if event == "reused" and record is not None:
            print(f"{name} seed {seed}: reusing {record.path}")
        elif event == "start":
            print(f"\n=== {name}, seed {seed} ===", flush=True)

    result = run_ablation(
        args.model, args.data, seeds=args.seeds, raw_dir=args.raw_dir, overrides=given, out=args.out,
        names=names, reuse=args.reuse, progress=not args.no_progress, on_run=report,
    )  # fmt: skip
    summary = summarise(result, args.model)
    first = next(iter(result["variants"].values()))[0]
    print(f"\n{args.model} ablations on {args.data} ({first.data_source} data, split {first.split}, "
          f"{first.eval_protocol} ranking), {args.seeds} seed(s); mean ± std over seeds")  # fmt: skip
    header, *rows = summary_rows(summary)
    print_table(rows, header)
    output: dict[str, Any] = {"model": args.model, "dataset": args.data, "seeds": args.seeds, "variants": summary}
    agreement = propensity_agreement_for(args.data, args.raw_dir, given)
    if agreement:
        print("\npropensity models vs the simulator's true exposure propensity (held-out pairs):")
        for kind, values in agreement.items():
            print(f"  {kind}: Spearman {values['spearman']:.3f}, Pearson of logs {values['pearson_log']:.3f} ({int(values['n_pairs'])} pairs)")
        output["propensity_agreement"] = agreement
    write_output(args.output, output)
