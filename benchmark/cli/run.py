"""`run`, `evaluate`, `models` and `datasets`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmark.cli.common import (
    add_command, add_eval_protocol, add_logger, add_output, add_overrides, add_raw_dir, add_rehash, dataset_name, flat_metrics,
    model_name, overrides, print_metrics, print_table, protocol_label, write_output,
)  # fmt: skip
from benchmark.errors import BenchmarkError


def add_parsers(commands: argparse._SubParsersAction) -> None:
    run = add_command(
        commands, "run", "train a model with early stopping, test the best checkpoint, write a run record",
        description="Train MODEL on DATA (early stopping on validation NDCG@10), evaluate the best checkpoint on the test split "
        "by full ranking, print the metrics and write <out>/runs/<run_id>/result.json.",
        examples=["python -m benchmark run --model bpr --data ml-latest-small --raw-dir path/to/ml-latest-small",
                  "python -m benchmark run --model sasrec --data s3rec-beauty --set bucket_batches=true --seed 1",
                  "python -m benchmark run --model bpr --data synthetic-ml --logger csv --no-progress",
                  "python -m benchmark run --model llm4rec --data synthetic-yelp --print-config > llm4rec.yaml"],
    )  # fmt: skip
    run.add_argument("--model", required=True, type=model_name, help="registered model name (see `models`)")
    run.add_argument("--data", required=True, type=dataset_name, help="dataset name (see `datasets`)")
    add_raw_dir(run)
    add_overrides(run)
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--max-epochs", type=int, help="maximum training epochs (default: the model's)")
    run.add_argument("--accelerator", choices=["cpu", "gpu", "auto"], help="default cpu")
    run.add_argument("--devices", type=int, help="processes/devices (default 1)")
    run.add_argument("--num-nodes", type=int, help="machines, each running --devices processes (default 1; see README, Running at scale)")
    run.add_argument("--strategy", choices=["auto", "ddp"], help="default auto")
    add_eval_protocol(run)
    add_logger(run)
    run.add_argument(
        "--protocol", choices=["offline", "streaming"],
        help="streaming: after the test pass, replay the evaluation period in windows, predicting each window before a "
        "momentum-SGD update on it, adaptive vs frozen model (--set stream_windows=10 stream_lr=... stream_momentum=0.9 "
        "stream_replay_size=... stream_recency_half_life=1.0 stream_steps_per_window=...; see benchmark/streaming.py)",
    )  # fmt: skip
    run.add_argument("--out", default=".", help="folder that receives runs/<run_id>/ (default: current folder)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--resume", action="store_true",
        help="if the run folder of this run id (BENCHMARK_RUN_ID) exists, continue it from its last checkpoint instead of "
        "refusing; without one, start it clean (e.g. a requeued SLURM job)",
    )  # fmt: skip
    run.add_argument(
        "--print-config", action="store_true",
        help="print every resolved key of this run (model, training sections, data) with its type, default and help, as YAML "
        "that --config accepts back, and exit without running",
    )  # fmt: skip
    add_rehash(run)
    add_output(run)
    run.set_defaults(handler=cmd_run)

    evaluate = add_command(
        commands, "evaluate", "re-evaluate a run's checkpoint, or score an external top-K predictions file, on the test split",
        description="Exactly one of --checkpoint (re-evaluate a saved run) or --predictions FILE --data D (score external top-K "
        "lists in raw ids, as `data export-split` ids them: TSV user, item, rank, or a TREC run `qid Q0 docid rank score tag` "
        "as trec_eval and ranx read it) with every metric.",
        examples=["python -m benchmark evaluate --checkpoint runs/RUN_ID/checkpoints/best.ckpt --write-predictions lists.trec",
                  "python -m benchmark evaluate --predictions lists.tsv --data ml-latest-small --raw-dir path/to/ml-latest-small"],
    )  # fmt: skip
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="CKPT", help="runs/<run_id>/checkpoints/best.ckpt")
    source.add_argument("--predictions", metavar="FILE", help="external top-K lists (raw ids), TSV or TREC (see --predictions-format); needs --data")
    evaluate.add_argument("--data", type=dataset_name, help="with --predictions: the dataset the lists are for")
    evaluate.add_argument("--write-predictions", metavar="FILE", help="with --checkpoint: also write the model's top-K lists as a predictions file")
    evaluate.add_argument(
        "--predictions-format", choices=["tsv", "trec"],
        help="format of --predictions / --write-predictions: tsv (user, item, rank) or trec (qid Q0 docid rank score tag); "
        "default: by the file name, .trec and .run are TREC, anything else TSV",
    )  # fmt: skip
    add_overrides(evaluate)
    add_eval_protocol(evaluate)
    evaluate.add_argument("--raw-dir", help="raw files, if they moved since the run")
    evaluate.add_argument("--devices", type=int, help="processes/devices")
    evaluate.add_argument("--num-nodes", type=int, help="machines, each running --devices processes")
    evaluate.add_argument("--accelerator", choices=["cpu", "gpu", "auto"])
    evaluate.add_argument("--strategy", choices=["auto", "ddp"])
    add_output(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    models = add_command(commands, "models", "list registered models: name, what it is, paper, file, config class",
                         examples=["python -m benchmark models"])  # fmt: skip
    models.set_defaults(handler=cmd_models)
    datasets = add_command(commands, "datasets", "list datasets: name, source (real/synthetic), description",
                           examples=["python -m benchmark datasets"])  # fmt: skip
    datasets.set_defaults(handler=cmd_datasets)


# --- run ---------------------------------------------------------------------------------------


def _run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = overrides(args)
    for key in ("max_epochs", "accelerator", "devices", "num_nodes", "strategy", "eval_protocol", "protocol"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    return given


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.runner import resolve, run

    cfg = resolve(args.model, args.data, _run_overrides(args), seed=args.seed, raw_dir=args.raw_dir)
    if args.print_config:
        from benchmark.config_doc import config_yaml

        print(config_yaml(cfg), end="")
        return
    if args.rehash:  # refresh the checksum memo (and the prepared cache) before the run reads it
        from benchmark.data.datasets import load_dataset

        load_dataset(cfg.data, cfg.data_config, cfg.raw_dir, rehash=True)
    record = run(cfg, args.out, progress=not args.no_progress, resume=args.resume).to_dict()
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # under DDP every process holds the record; rank 0 reports it
        return
    if record.get("resumed"):
        print(f"\nresumed from {record['resumed']['checkpoint']} (the run had status {record['resumed'].get('previous_status')!r})")
    timings = record["timings"]
    print(f"\n{record['model']} on {record['dataset']} ({record['data_source']} data, split {record['split']}, {protocol_label(record)})")
    print(f"epochs {timings['epochs']} (best {record['best_epoch']}), {timings['seconds_per_epoch']} s/epoch, test pass {timings['eval_seconds']} s")
    print_metrics(record["metrics"])
    extra = print_run_extras(record, Path(args.out) / "runs" / record["run_id"])
    print(f"\nrun record: {Path(args.out) / 'runs' / record['run_id'] / 'result.json'}")
    write_output(args.output, {**flat_metrics(record["metrics"]), **timings, **extra, "run_id": record["run_id"], "eval_protocol": record["eval_protocol"]})


def print_run_extras(record: dict[str, Any], run_dir: Path, n_examples: int = 3) -> dict[str, Any]:
    """Explanation metrics and a few examples; the streaming table. Returns their flat figures
    (``explanation/bleu4``, ``stream/adaptive-ndcg@10`` = mean over windows, ...)."""
    flat: dict[str, Any] = {}
    if record.get("explanations"):
        explained = record["explanations"]
        metrics = explained["metrics"]
        note = ("BLEU/ROUGE against each user's own held-out review" if explained.get("reference") == "reviews"
                else "no reference text on this dataset: no BLEU/ROUGE")  # fmt: skip
        print(f"\nexplanations ({explained['n_users']} test users; {note})")
        print_table([[k, v] for k, v in metrics.items()], ["metric", "value"])
        flat.update({f"explanation/{k}": v for k, v in metrics.items()})
        path = run_dir / explained["file"]
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines()[:n_examples]:
                sample = json.loads(line)
                print(f"- user {sample.get('user')}, {sample.get('title')!r}: {sample.get('explanation')}")
                if sample.get("reference"):
                    print(f"  reference: {sample['reference']}")
    if record.get("streaming"):
        from benchmark.streaming import streaming_rows

        stream = record["streaming"]
        config = stream["config"]
        updates = f"momentum SGD on {config['n_adaptation_parameters']:,} parameters" if config["adapted"] else "none (the model does not adapt)"
        print(f"\nstreaming: {config['n_events']} events in {len(stream['windows'])} windows; updates: {updates}")
        rows, header = streaming_rows(stream)
        print_table(rows, header)
        latency = stream["update_latency_ms"]
        print(f"update latency per batch: p50 {latency['p50']} ms, p99 {latency['p99']} ms ({latency['n_batches']} batches)")
        for model in ("adaptive", "frozen"):
            for key in ("ndcg@10", "hr@10"):
                values = [w[model][key] for w in stream["windows"] if key in w[model]]
                if values:
                    flat[f"stream/{model}-{key}"] = sum(values) / len(values)
        flat["stream/update-latency-p50-ms"], flat["stream/update-latency-p99-ms"] = latency["p50"], latency["p99"]
    return flat


# --- evaluate ----------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``evaluate --checkpoint CKPT`` or ``evaluate --predictions FILE --data D``."""
    given = overrides(args)
    if args.num_nodes is not None:  # a training key: the checkpoint's config takes it as an override
        if args.predictions:
            raise BenchmarkError("--num-nodes goes with --checkpoint")
        given["num_nodes"] = args.num_nodes
    if args.predictions:
        _evaluate_predictions(args, given)
    else:
        _evaluate_checkpoint(args, given)


def _evaluate_predictions(args: argparse.Namespace, given: dict[str, Any]) -> None:
    from benchmark.predictions import evaluate_predictions_file

    if args.data is None:
        raise BenchmarkError("evaluate --predictions needs --data (the dataset the lists were made for)")
    if args.write_predictions:
        raise BenchmarkError("--write-predictions goes with --checkpoint")
    if args.eval_protocol == "sampled" or given.get("eval_protocol") == "sampled":
        raise BenchmarkError("external top-K lists are fixed: they can only be scored by the full protocol")
    for option in ("devices", "accelerator", "strategy"):
        if getattr(args, option) is not None:
            raise BenchmarkError(f"--{option} goes with --checkpoint")
    result = evaluate_predictions_file(args.predictions, args.data, given, raw_dir=args.raw_dir, fmt=args.predictions_format)
    print(f"\n{args.predictions} ({result['format'].upper()}) on {args.data} ({result['data_source']} data, split {result['split']}, "
          f"full ranking): {result['n_rows']} rows, {result['n_test_users']} test users")  # fmt: skip
    for note in result["notes"]:
        print(f"note: {note}")
    print_metrics({"test": result["metrics"]})
    write_output(args.output, {**result["metrics"], "eval_protocol": "full", "n_test_users": result["n_test_users"], "n_users_missing": result["n_users_missing"]})


def _evaluate_checkpoint(args: argparse.Namespace, given: dict[str, Any]) -> None:
    from benchmark.predictions import predictions_format
    from benchmark.runner import evaluate_checkpoint

    if args.data is not None:
        raise BenchmarkError("--data goes with --predictions (a checkpoint knows its dataset)")
    result = evaluate_checkpoint(
        args.checkpoint, raw_dir=args.raw_dir, devices=args.devices, accelerator=args.accelerator, strategy=args.strategy,
        eval_protocol=args.eval_protocol, overrides=given, write_predictions=args.write_predictions, predictions_format=args.predictions_format,
    )  # fmt: skip
    if not result["is_global_zero"]:
        return
    print(f"\n{result['model']} on {result['dataset']} ({result['data_source']} data, {protocol_label(result)}), run {result['run_id']}")
    print_metrics(result["metrics"])
    if args.write_predictions:
        print(f"top-K lists written to {args.write_predictions} ({predictions_format(args.write_predictions, args.predictions_format).upper()})")
    write_output(args.output, {**result["metrics"]["test"], "eval_seconds": result["timings"]["eval_seconds"], "eval_protocol": result["eval_protocol"]})


# --- listings ----------------------------------------------------------------------------------


def cmd_models(_: argparse.Namespace) -> None:
    """From the registry's static table: nothing is imported."""
    from benchmark.registry import MODELS

    rows = []
    for name in MODELS:
        entry = MODELS.entry(name)
        config = entry.config_class if hasattr(entry, "config_class") else type(entry.config).__name__
        rows.append([name, entry.description, entry.paper or "", entry.file, config])
    print_table(rows, ["model", "what it is", "paper", "file", "config class"])


def cmd_datasets(_: argparse.Namespace) -> None:
    from benchmark.data.datasets import DATASETS

    rows = [[spec.name, spec.source, spec.description] for spec in DATASETS.values()]
    rows.append(["amazon-<category>", "real", "any other Amazon review category (2014, 2018 or 2023 files of that category; e.g. amazon-books)"])
    print_table(rows, ["dataset", "source", "description"])
