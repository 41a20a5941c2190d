"""`perf eval|train|data`: throughput figures against their limits."""

from __future__ import annotations

import argparse

from benchmark.cli.common import add_command, add_output, add_overrides, add_raw_dir, dataset_name, model_name, overrides, print_table, write_output


def add_parsers(commands: argparse._SubParsersAction) -> None:
    perf = add_command(commands, "perf", "performance measurements: evaluation engine, training epochs, data preparation",
                       examples=["python -m benchmark perf train --model bpr --data ml-latest-small --raw-dir path/to/ml-latest-small --threads 1",
                                 "python -m benchmark perf data --like ml --full --repeats 3"])  # fmt: skip
    sub = perf.add_subparsers(dest="perf_command", required=True, metavar="SUBCOMMAND")
    text = "throughput of the evaluation engine vs. the raw limit (matmul+mask+topk) and torchmetrics' RetrievalNormalizedDCG"
    perf_eval = add_command(sub, "eval", text, examples=["python -m benchmark perf eval --users 20000 --items 59047"])
    for name, default, what in (
        ("users", 20_000, "users"), ("items", 59_047, "items"), ("dim", 64, "embedding size"), ("k", 10, "cut-off"),
        ("seen", 50, "seen (masked) items per user"), ("batch-size", 1024, "users per evaluation batch"),
        ("torchmetrics-users", 200, "users fed to torchmetrics (its state keeps every score)"), ("repeats", 1, "rounds (median reported)"),
    ):  # fmt: skip
        perf_eval.add_argument(f"--{name}", type=int, default=default, help=f"{what} (default {default})")
    add_output(perf_eval)
    perf_eval.set_defaults(handler=cmd_perf_eval)

    text = ("median seconds per training epoch of a model (validation off) beside a bare PyTorch loop over the same model, "
            "batches and data (no Lightning), optionally split into batch building and steps")  # fmt: skip
    perf_train = add_command(sub, "train", text, examples=["python -m benchmark perf train --model sasrec --data ml-latest-small --epochs 6 --threads 1"])
    perf_train.add_argument("--model", required=True, type=model_name)
    perf_train.add_argument("--data", required=True, type=dataset_name)
    add_raw_dir(perf_train)
    perf_train.add_argument("--epochs", type=int, default=5, help="epochs to time; the first is reported apart (default 5)")
    perf_train.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as RecBole's reference figures)")
    perf_train.add_argument("--profile", action="store_true", help="also time batch building and bare steps without Lightning")
    perf_train.add_argument("--seed", type=int, default=0)
    add_overrides(perf_train)
    add_output(perf_train)
    perf_train.set_defaults(handler=cmd_perf_train)

    text = "data preparation at scale: time and peak memory to prepare and to reload simulated files of a real dataset's size"
    data = add_command(sub, "data", text, examples=["python -m benchmark perf data --like yelp --full --repeats 3 --output yelp.json"])
    data.add_argument("--like", required=True, choices=["ml", "yelp", "amazon"])
    data.add_argument("--full", action="store_true", help="the real dataset's size (else --users/--items/--interactions)")
    data.add_argument("--users", type=int, default=20_000)
    data.add_argument("--items", type=int, default=5_000)
    data.add_argument("--interactions", type=int, default=500_000)
    data.add_argument("--repeats", type=int, default=3, help="fresh-process preparations (median reported; default 3)")
    data.add_argument("--workdir", help="where the raw files and caches go (default: a temporary folder, deleted afterwards)")
    data.add_argument("--keep", action="store_true", help="keep the raw files and caches")
    add_output(data)
    data.set_defaults(handler=cmd_perf_data)


def cmd_perf_eval(args: argparse.Namespace) -> None:
    from benchmark.perf import PerfSetup, perf_eval

    setup = PerfSetup(args.users, args.items, args.dim, args.k, args.seen, args.batch_size, args.torchmetrics_users, args.repeats)
    result = perf_eval(setup)
    print(f"\n{setup.users:,} users, {setup.items:,} items, d = {setup.dim}, K = {setup.k}, {setup.seen} seen items per user; "
          f"{result['torch_threads']} threads; torchmetrics on the first {result['torchmetrics_users']} users")  # fmt: skip
    print_table(
        [
            ["engine (all accuracy metrics)", result["engine_users_per_s"], 1.0],
            ["raw limit (matmul + mask + topk)", result["raw_users_per_s"], result["raw_users_per_s"] / result["engine_users_per_s"]],
            ["torchmetrics RetrievalNormalizedDCG", result["torchmetrics_users_per_s"], result["torchmetrics_users_per_s"] / result["engine_users_per_s"]],
        ],
        ["pipeline", "users/s", "x engine"],
    )
    print(f"engine / raw = {result['engine_vs_raw']:.3f}; engine / torchmetrics = {result['engine_vs_torchmetrics']:.1f}")
    write_output(args.output, result)


def cmd_perf_train(args: argparse.Namespace) -> None:
    from benchmark.perf_train import perf_train
    from benchmark.runner import resolve

    cfg = resolve(args.model, args.data, overrides(args), seed=args.seed, raw_dir=args.raw_dir)
    result = perf_train(cfg, epochs=args.epochs, threads=args.threads, profile=args.profile)
    figures = result.figures()
    print(f"\n{args.model} on {args.data}: {result.batches_per_epoch} batches per epoch, {result.threads} thread(s)")
    print_table([[k, v] for k, v in figures.items()], ["figure", "value"])
    write_output(args.output, figures)


def cmd_perf_data(args: argparse.Namespace) -> None:
    from benchmark.perf_data import DATASET, perf_data

    result = perf_data(
        args.like, full=args.full, users=args.users, items=args.items, interactions=args.interactions, repeats=args.repeats,
        workdir=args.workdir, keep=args.keep, report=lambda line: print(line, flush=True),
    )  # fmt: skip
    print(f"\n{DATASET[args.like]} ({args.like} format{', full size' if args.full else ''}): {result['raw_interactions']:,} raw interactions, "
          f"{result['raw_mb']:,.0f} MB raw files (generated in {result['generate_seconds']:.0f} s); median of {args.repeats} fresh processes")  # fmt: skip
    rows = [
        ["prepare (parse+checksum+filter+split+cache)", result["prepare_seconds"], result["prepare_cpu_seconds"], result["prepare_peak_rss_gb"],
         result["target_prepare_seconds"], result["target_peak_rss_gb"]],
        ["  of which reading the raw files", result["read_seconds"], "", "", "", ""],
        ["reload the prepared cache", result["reload_seconds"], result["reload_cpu_seconds"], result["reload_peak_rss_gb"], 5.0, ""],
    ]  # fmt: skip
    print_table(rows, ["step", "wall s", "CPU s", "peak RSS GB", "target s", "target GB"])
    print(f"load average during the measurement: {result['load_average']:.1f} on {result['cpu_count']} cores (wall times grow with other load)")
    write_output(args.output, result)
