"""`sweep`: Optuna search over a model's space, then the best config re-run with several seeds."""

from __future__ import annotations

import argparse
from typing import Any

from benchmark.cli.common import add_command, add_overrides, add_raw_dir, dataset_name, model_name, overrides, print_table, write_output

DEVICE_KEYS = ("accelerator", "devices", "num_nodes", "strategy")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    sweep = add_command(
        commands, "sweep", "Optuna hyper-parameter search (sweeps/<model>.yaml), then the best config re-run with several seeds",
        description="Search MODEL's space (sweeps/MODEL.yaml) with a seeded TPE sampler; each trial trains with early stopping and "
        "is scored by its best validation NDCG@10 (never the test split); bad trials are pruned from their validation curve. Trial "
        "0 is the default config. The study is stored in SQLite (runs/sweeps/STUDY.db) or any SQLAlchemy URL; workers sharing it "
        "split the trials, and a killed sweep resumes when run again. When N trials are finished, the best config is written to "
        "runs/sweeps/STUDY.best.yaml (for `run --config`) and re-run with --seeds seeds. `optuna-dashboard <storage>` shows the "
        "study (trials, values, intermediate values).",
        examples=["python -m benchmark sweep --model bpr --data ml-latest-small --raw-dir path/to/ml-latest-small --trials 20 --seeds 3",
                  "python -m benchmark sweep --model sasrec --data ml-25m --trials 200 --storage postgresql://u@host/optuna --seeds 0"],
    )  # fmt: skip
    sweep.add_argument("--model", required=True, type=model_name, help="registered model name")
    sweep.add_argument("--data", required=True, type=dataset_name, help="dataset name")
    add_raw_dir(sweep)
    sweep.add_argument("--trials", type=int, required=True, metavar="N", help="finished (complete or pruned) trials the study should reach")
    sweep.add_argument("--study", help="study name (default <model>-<data>)")
    sweep.add_argument("--storage", help="SQLAlchemy URL (e.g. postgresql://user@host/db) or SQLite file path (default runs/sweeps/<study>.db)")
    sweep.add_argument("--timeout", type=float, metavar="S", help="start no new trial after S seconds; then conclude with the best so far")
    sweep.add_argument("--seeds", type=int, default=3, help="seeds the best config is re-run with through `run` (default 3; 0: none)")
    sweep.add_argument("--seed", type=int, default=0, help="seed of the trials and of the TPE sampler (default 0); re-runs use seed, seed+1, ...")
    sweep.add_argument("--pruner", choices=["median", "none"], default="median", help="median: stop a trial whose validation NDCG@10 is below the median of earlier trials at the same epoch (default)")
    sweep.add_argument("--prune-warmup", type=int, default=5, metavar="EPOCHS", help="epochs every trial runs before it can be pruned (default 5)")
    sweep.add_argument("--space", metavar="FILE.yaml", help="search space file (default sweeps/<model>.yaml)")
    add_overrides(sweep)
    sweep.add_argument("--max-epochs", type=int, help="maximum training epochs of every trial and re-run")
    sweep.add_argument("--accelerator", choices=["cpu", "gpu", "auto"], help="default cpu")
    sweep.add_argument("--devices", type=int, help="processes/devices per trial (default 1)")
    sweep.add_argument("--num-nodes", type=int, help="machines per trial (default 1; see README, Running at scale)")
    sweep.add_argument("--strategy", choices=["auto", "ddp"], help="default auto")
    sweep.add_argument("--out", default=".", help="folder that receives runs/sweeps/ and the re-runs' runs/<run_id>/ (default: current folder)")
    sweep.add_argument("--no-progress", action="store_true", help="hide Lightning's progress bars (the per-trial lines stay)")
    sweep.add_argument("--output", metavar="FILE.json", help="also write the summary as JSON")
    sweep.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> None:
    from benchmark.sweep import SweepOptions, run_sweep

    fixed = overrides(args)
    for key in ("max_epochs", *DEVICE_KEYS):
        if getattr(args, key) is not None:
            fixed[key] = getattr(args, key)
    options = SweepOptions(
        model=args.model, data=args.data, trials=args.trials, raw_dir=args.raw_dir, overrides=fixed, study=args.study,
        storage=args.storage, timeout=args.timeout, seeds=args.seeds, seed=args.seed, out=args.out, pruner=args.pruner,
        prune_warmup=args.prune_warmup, progress=not args.no_progress, space_file=args.space, report=lambda line: print(line, flush=True),
    )  # fmt: skip
    summary = run_sweep(options)
    if summary is None:
        return
    print_summary(summary)
    write_output(args.output, summary)


def print_summary(summary: dict[str, Any]) -> None:
    from benchmark.sweep import short_value

    print(f"\nsweep {summary['study']}: {summary['n_complete']} complete, {summary['n_pruned']} pruned, {summary['n_failed']} failed "
          f"(target {summary['target_trials']} finished); this worker ran {summary['worker_trials']} in {summary['wall_seconds']} s")  # fmt: skip
    default = summary["default_valid_ndcg@10"]
    rows = [["best (trial %d)" % summary["best_trial"], summary["best_valid_ndcg@10"]]]
    if default is not None:
        rows.append(["default config (trial 0)", default])
    print_table(rows, ["configuration", "valid ndcg@10"])
    print("best params: " + (", ".join(f"{k}={short_value(v)}" for k, v in summary["best_params"].items()) or "none searched"))
    if summary["rerun_seeds"]:
        print(f"\nbest config re-run with seeds {summary['rerun_seeds']} (test split):")
        print_table(
            [[n, summary[f"test_{n}_mean"], summary[f"test_{n}_std"]] for n in ("ndcg@10", "hr@10", "recall@10", "mrr@10") if f"test_{n}_mean" in summary],
            ["metric", "mean", "std"],
        )
    print(f"\nbest config: {summary['best_config']} (python -m benchmark run --model {summary['model']} --data {summary['dataset']} --config FILE)")
