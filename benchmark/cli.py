"""`python -m benchmark <command>`: run, evaluate, data prepare|info, models, datasets.

Every command that reports figures prints a table and, with ``--output FILE.json``,
writes the same figures as a flat JSON map (DESIGN.md, "Names and machine-readable
output"). Input problems end with a one-paragraph message and exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.ablation import add_ablation_parser, cmd_ablation
from benchmark.config import DataConfig, apply_overrides, load_config_file, parse_set_options
from benchmark.data.datasets import DATASET_NAMES, DATASETS, canonical_name, load_dataset
from benchmark.data.features import dataset_card
from benchmark.errors import BenchmarkError
from benchmark.leaderboard import add_parsers as add_leaderboard_parsers, cmd_leaderboard, cmd_submit
from benchmark.perf_data import add_perf_data_parser, add_synth_parser, cmd_perf_data, cmd_synth
from benchmark.registry import MODELS
from benchmark.results import add_collect_parser, cmd_collect
from benchmark.sweep import add_sweep_parser, cmd_sweep


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", metavar="FILE.json", help="also write the reported figures as a flat JSON map")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="flat YAML mapping of config keys (see `run --help`)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set split=temporal --set lr=0.01 (repeatable; wins over --config)",
    )  # fmt: skip


def _add_rehash(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rehash", action="store_true",
        help="hash the raw files again instead of trusting the checksum memo (which trusts size and modification time): "
        "use after editing a raw file in place with its size and mtime kept",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description="llm4rec-bench: benchmark suite for LLM-based recommendation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="train a model with early stopping, test the best checkpoint, write a run record",
        description="Train MODEL on DATA (early stopping on validation NDCG@10), evaluate the best checkpoint on the "
        "test split by full ranking, print the metrics and write <out>/runs/<run_id>/result.json.",
    )
    run.add_argument("--model", required=True, choices=list(MODELS), help="registered model name (see `models`)")
    run.add_argument("--data", required=True, type=canonical_name, choices=DATASET_NAMES, help="dataset name (see `datasets`)")
    run.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    _add_overrides(run)
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--max-epochs", type=int, help="maximum training epochs (default: the model's)")
    run.add_argument("--accelerator", choices=["cpu", "gpu", "auto"], help="default cpu")
    run.add_argument("--devices", type=int, help="processes/devices (default 1)")
    run.add_argument("--num-nodes", type=int, help="machines, each running --devices processes (default 1; see README, Running at scale)")
    run.add_argument("--strategy", choices=["auto", "ddp"], help="default auto")
    _add_protocol(run)
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
    _add_rehash(run)
    _add_output(run)

    evaluate = commands.add_parser(
        "evaluate", help="re-evaluate a run's checkpoint, or score an external top-K predictions file, on the test split",
        description="Exactly one of --checkpoint (re-evaluate a saved run) or --predictions FILE --data D (score external "
        "top-K lists in raw ids, as `data export-split` ids them: TSV user, item, rank, or a TREC run `qid Q0 docid rank "
        "score tag` as trec_eval and ranx read it) with every metric.",
    )  # fmt: skip
    _add_evaluate_options(evaluate)
    evaluate.add_argument("--raw-dir", help="raw files, if they moved since the run")
    evaluate.add_argument("--devices", type=int, help="processes/devices")
    evaluate.add_argument("--num-nodes", type=int, help="machines, each running --devices processes")
    evaluate.add_argument("--accelerator", choices=["cpu", "gpu", "auto"])
    evaluate.add_argument("--strategy", choices=["auto", "ddp"])
    _add_output(evaluate)

    data = commands.add_parser("data", help="prepare datasets and describe them")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    for name, text in (("prepare", "parse, filter, split and cache a dataset"), ("info", "the dataset card: counts, density, popularity Gini, time span, interaction quantiles, modality coverage, fingerprint")):
        sub = data_commands.add_parser(name, help=text, description=text)
        sub.add_argument("--data", required=True, type=canonical_name, choices=DATASET_NAMES)
        sub.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
        _add_overrides(sub)
        if name == "info":
            _add_output(sub)
        else:
            _add_rehash(sub)
    add_synth_parser(data_commands)

    _add_evaluation_commands(commands, data_commands)
    add_leaderboard_parsers(commands)
    add_collect_parser(commands)
    add_sweep_parser(commands)
    add_ablation_parser(commands, _add_overrides, _add_output, list(DATASETS))
    commands.add_parser("models", help="list registered models", description="List registered models.")
    commands.add_parser("datasets", help="list datasets", description="List datasets.")

    feats = commands.add_parser(
        "features", help="extract and cache multimodal item features (text, categorical, numerical, image)",
        description="Extract item features with frozen encoders and cache them (keyed by encoder and dataset "
        "fingerprint); print dimensions and the share of items with each modality.",
    )  # fmt: skip
    feats.add_argument("--data", required=True, type=canonical_name, choices=DATASET_NAMES)
    feats.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    _add_overrides(feats)
    feats.add_argument("--text-encoder", default="all-MiniLM-L6-v2", help="sentence-transformers name or folder; 'none' skips text (default: offline all-MiniLM-L6-v2)")
    feats.add_argument("--image-encoder", help="open-clip:<arch>[:<pretrained>] (extra `vision`), or random-cnn (tests only); default: no images")
    feats.add_argument("--download-images", action="store_true", help="fetch image URLs into the cache (only where the licence allows)")
    feats.add_argument("--batch-size", type=int, default=64)
    feats.add_argument(
        "--dump-text", metavar="FILE.tsv",
        help="write what each item gives a model (its encoder text and categorical values, one TSV row per item) and exit "
        "without encoding: the audit of the leakage rules",
    )  # fmt: skip
    feats.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_output(feats)
    return parser


def _add_protocol(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--eval-protocol", choices=["full", "sampled"],
        help="test protocol: full ranking over all items (default) or sampled negatives "
        "(--set eval_negatives=100 --set eval_sampler=uniform|popularity; labelled 'sampled' in every output)",
    )  # fmt: skip


def _add_evaluate_options(evaluate: argparse.ArgumentParser) -> None:
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="CKPT", help="runs/<run_id>/checkpoints/best.ckpt")
    source.add_argument("--predictions", metavar="FILE", help="external top-K lists (raw ids), TSV or TREC (see --predictions-format); needs --data")
    evaluate.add_argument("--data", type=canonical_name, choices=DATASET_NAMES, help="with --predictions: the dataset the lists are for")
    evaluate.add_argument("--write-predictions", metavar="FILE", help="with --checkpoint: also write the model's top-K lists as a predictions file")
    evaluate.add_argument(
        "--predictions-format", choices=["tsv", "trec"],
        help="format of --predictions / --write-predictions: tsv (user, item, rank) or trec (qid Q0 docid rank score tag); "
        "default: by the file name, .trec and .run are TREC, anything else TSV",
    )  # fmt: skip
    _add_overrides(evaluate)
    _add_protocol(evaluate)


def _add_evaluation_commands(commands: argparse._SubParsersAction, data_commands: argparse._SubParsersAction) -> None:
    text = "write the official split in raw ids: train/valid/test TSV (user, item, timestamp) and split.json"
    export = data_commands.add_parser("export-split", help=text, description=text)
    export.add_argument("--data", required=True, type=canonical_name, choices=DATASET_NAMES)
    export.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    export.add_argument("--out", required=True, metavar="DIR", help="folder that receives the files")
    _add_overrides(export)

    compare = commands.add_parser(
        "compare", help="paired significance tests between two runs over their shared test users",
        description="Per metric: both means, the difference (B - A) and the p-values of a paired t-test and a Wilcoxon "
        "signed-rank test over the test users both runs evaluated (from each run's per_user_test.parquet).",
    )  # fmt: skip
    compare.add_argument("run_a", metavar="RUN_A", help="run folder (runs/<run_id>), its result.json, or a run id under ./runs")
    compare.add_argument("run_b", metavar="RUN_B")
    _add_output(compare)

    perf = commands.add_parser("perf", help="performance measurements")
    perf_commands = perf.add_subparsers(dest="perf_command", required=True, metavar="SUBCOMMAND")
    text = "throughput of the evaluation engine vs. the raw limit (matmul+mask+topk) and torchmetrics' RetrievalNormalizedDCG"
    perf_eval = perf_commands.add_parser("eval", help=text, description=text)
    for name, default, what in (
        ("users", 20_000, "users"), ("items", 59_047, "items"), ("dim", 64, "embedding size"), ("k", 10, "cut-off"),
        ("seen", 50, "seen (masked) items per user"), ("batch-size", 1024, "users per evaluation batch"),
        ("torchmetrics-users", 200, "users fed to torchmetrics (its state keeps every score)"), ("repeats", 1, "rounds (median reported)"),
    ):  # fmt: skip
        perf_eval.add_argument(f"--{name}", type=int, default=default, help=f"{what} (default {default})")
    _add_output(perf_eval)
    add_perf_data_parser(perf_commands)
    text = "median seconds per training epoch of a model (validation off), optionally split into batch building, steps and Lightning"
    perf_train = perf_commands.add_parser("train", help=text, description=text)
    perf_train.add_argument("--model", required=True, choices=list(MODELS))
    perf_train.add_argument("--data", required=True, type=canonical_name, choices=DATASET_NAMES)
    perf_train.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    perf_train.add_argument("--epochs", type=int, default=5, help="epochs to time; the first is reported apart (default 5)")
    perf_train.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as RecBole's reference figures)")
    perf_train.add_argument("--profile", action="store_true", help="also time batch building and bare steps without Lightning")
    perf_train.add_argument("--seed", type=int, default=0)
    _add_overrides(perf_train)
    _add_output(perf_train)


def _protocol_label(record: dict[str, Any]) -> str:
    if record.get("eval_protocol") == "sampled":
        sampling = record.get("eval_sampling", {})
        return f"SAMPLED evaluation: {sampling.get('negatives')} {sampling.get('sampler')} negatives per user, seed {sampling.get('seed')}"
    return "full ranking"


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


def cmd_perf_train(args: argparse.Namespace) -> None:
    from benchmark.perf_train import perf_train
    from benchmark.runner import resolve

    cfg = resolve(args.model, args.data, _overrides(args), seed=args.seed, raw_dir=args.raw_dir)
    result = perf_train(cfg, epochs=args.epochs, threads=args.threads, profile=args.profile)
    figures = result.figures()
    print(f"\n{args.model} on {args.data}: {result.batches_per_epoch} batches per epoch, {result.threads} thread(s)")
    print_table([[k, v] for k, v in figures.items()], ["figure", "value"])
    write_output(args.output, figures)


def cmd_perf(args: argparse.Namespace) -> None:
    if args.perf_command == "data":
        return cmd_perf_data(args)
    if args.perf_command == "train":
        return cmd_perf_train(args)
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


# --- output -----------------------------------------------------------------------------


def print_table(rows: list[list[Any]], header: list[str]) -> None:
    """Plain-text table: text left-aligned, numbers right-aligned."""
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(header))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    """Rows: metric names; columns: stage@K."""
    columns = [(stage, key.split("@")[1]) for stage, values in metrics.items() for key in values if "@" in key]
    columns = list(dict.fromkeys(columns))
    names = list(dict.fromkeys(key.split("@")[0] for values in metrics.values() for key in values if "@" in key))
    rows = [[name] + [metrics[stage].get(f"{name}@{k}", "") for stage, k in columns] for name in names]
    print_table(rows, ["metric"] + [f"{stage}@{k}" for stage, k in columns])


def write_output(path: str | None, content: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(content, indent=2, default=str) + "\n")


def _flat(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """Test metrics keyed by their plain names, validation ones prefixed (`valid/ndcg@10`)."""
    out = dict(metrics.get("test", {}))
    out.update({f"valid/{k}": v for k, v in metrics.get("valid", {}).items()})
    return out


# --- commands ---------------------------------------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    merged = load_config_file(args.config) if args.config else {}
    merged.update(parse_set_options(args.overrides))
    return merged


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.runner import resolve, run  # lightning import only where needed

    overrides = _overrides(args)
    for key in ("max_epochs", "accelerator", "devices", "num_nodes", "strategy", "eval_protocol", "protocol"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    cfg = resolve(args.model, args.data, overrides, seed=args.seed, raw_dir=args.raw_dir)
    if args.rehash:  # refresh the checksum memo (and the prepared cache) before the run reads it
        load_dataset(cfg.data, cfg.data_config, cfg.raw_dir, rehash=True)
    record = run(cfg, args.out, progress=not args.no_progress, resume=args.resume).to_dict()
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # under DDP every process holds the record; rank 0 reports it
        return
    if record.get("resumed"):
        print(f"\nresumed from {record['resumed']['checkpoint']} (the run had status {record['resumed'].get('previous_status')!r})")
    timings = record["timings"]
    print(f"\n{record['model']} on {record['dataset']} ({record['data_source']} data, split {record['split']}, {_protocol_label(record)})")
    print(f"epochs {timings['epochs']} (best {record['best_epoch']}), {timings['seconds_per_epoch']} s/epoch, test pass {timings['eval_seconds']} s")
    print_metrics(record["metrics"])
    extra = print_run_extras(record, Path(args.out) / "runs" / record["run_id"])
    print(f"\nrun record: {Path(args.out) / 'runs' / record['run_id'] / 'result.json'}")
    write_output(args.output, {**_flat(record["metrics"]), **{k: v for k, v in timings.items()}, **extra, "run_id": record["run_id"], "eval_protocol": record["eval_protocol"]})


def print_run_extras(record: dict[str, Any], run_dir: Path, n_examples: int = 3) -> dict[str, Any]:
    """Explanation metrics and a few examples; the streaming table. Returns their flat figures
    (``explanation/bleu4``, ``stream/adaptive-ndcg@10`` = mean over windows, ...)."""
    flat: dict[str, Any] = {}
    if "explanations" in record:
        metrics = record["explanations"]["metrics"]
        reference = record["explanations"].get("reference")
        note = "BLEU/ROUGE against each user's own held-out review" if reference == "reviews" else "no reference text on this dataset: no BLEU/ROUGE"
        print(f"\nexplanations ({record['explanations']['n_users']} test users; {note})")
        print_table([[k, v] for k, v in metrics.items()], ["metric", "value"])
        flat.update({f"explanation/{k}": v for k, v in metrics.items()})
        path = run_dir / record["explanations"]["file"]
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines()[:n_examples]:
                sample = json.loads(line)
                print(f"- user {sample.get('user')}, {sample.get('title')!r}: {sample.get('explanation')}")
                if sample.get("reference"):
                    print(f"  reference: {sample['reference']}")
    if "streaming" in record:
        from benchmark.streaming import streaming_rows

        stream = record["streaming"]
        config = stream["config"]
        print(f"\nstreaming: {config['n_events']} events in {len(stream['windows'])} windows; updates: "
              f"{'momentum SGD on ' + format(config['n_adaptation_parameters'], ',') + ' parameters' if config['adapted'] else 'none (the model does not adapt)'}")  # fmt: skip
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


def cmd_evaluate(args: argparse.Namespace) -> None:
    from benchmark.predictions import evaluate_command

    if args.num_nodes is not None:  # a TrainConfig key: the checkpoint's config takes it as an override
        if args.predictions:
            raise BenchmarkError("--num-nodes goes with --checkpoint")
        args.overrides = [*args.overrides, f"num_nodes={args.num_nodes}"]
    evaluate_command(args)


def _data_config(args: argparse.Namespace) -> DataConfig:
    overrides = _overrides(args)
    return apply_overrides({DataConfig: DataConfig()}, overrides)[DataConfig]


def dataset_info(name: str, config: DataConfig, raw_dir: str | None, *, rehash: bool = False) -> dict[str, Any]:
    data = load_dataset(name, config, raw_dir, rehash=rehash)
    stamps = [part.timestamp for part in (data.train, data.valid, data.test) if len(part)]
    first, last = min(int(s.min()) for s in stamps), max(int(s.max()) for s in stamps)
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    return {
        "dataset": name,
        "data_source": data.source,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": data.n_interactions,
        "density": data.n_interactions / (data.n_users * data.n_items),
        "split": data.config.split,
        "n_train": len(data.train),
        "n_valid": len(data.valid),
        "n_test": len(data.test),
        "time_start": iso(first),
        "time_end": iso(last),
        "time_span_days": round((last - first) / 86400, 1),
        **dataset_card(data, raw_dir),
        "fingerprint": data.fingerprint,
        **{k: v for k, v in data.stats.items()},
    }


def cmd_data(args: argparse.Namespace) -> None:
    if args.data_command == "synth":
        return cmd_synth(args)
    if args.data_command == "export-split":
        from benchmark.predictions import export_split_command

        return export_split_command(args, _data_config(args))
    config = _data_config(args)
    info = dataset_info(args.data, config, args.raw_dir, rehash=getattr(args, "rehash", False))
    if args.data_command == "prepare":
        print(f"{args.data}: {info['n_users']} users, {info['n_items']} items, {info['n_interactions']} interactions; "
              f"split {info['split']}; fingerprint {info['fingerprint'][:16]}")  # fmt: skip
        return
    print_table([[k, v] for k, v in info.items()], ["field", "value"])
    write_output(args.output, info)


def cmd_models(_: argparse.Namespace) -> None:
    print_table([[spec.name, spec.description] for spec in MODELS.values()], ["model", "description"])


def cmd_datasets(_: argparse.Namespace) -> None:
    rows = [[spec.name, spec.source, spec.description] for spec in DATASETS.values()]
    rows.append(["amazon-<category>", "real", "any other Amazon review category (2014, 2018 or 2023 files of that category; e.g. amazon-books)"])
    print_table(rows, ["dataset", "source", "description"])


def cmd_features(args: argparse.Namespace) -> None:
    from benchmark.data.features import features_summary, item_features, write_item_inputs

    data = load_dataset(args.data, _data_config(args), args.raw_dir)
    if args.dump_text:
        path = write_item_inputs(data.items, args.dump_text)
        print(f"{data.n_items} items: text and categorical values written to {path}")
        return
    feats = item_features(
        data, text_encoder=None if args.text_encoder == "none" else args.text_encoder, image_encoder=args.image_encoder,
        raw_dir=args.raw_dir, allow_image_download=args.download_images, batch_size=args.batch_size, progress=not args.no_progress,
    )  # fmt: skip
    summary = features_summary(feats)
    print_table([[k, v] for k, v in summary.items()], ["field", "value"])
    write_output(args.output, summary)


COMMANDS = {
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "sweep": cmd_sweep,
    "ablation": lambda args: write_output(args.output, cmd_ablation(args, _overrides(args))),
    "compare": cmd_compare,
    "collect": cmd_collect,
    "data": cmd_data,
    "features": cmd_features,
    "perf": cmd_perf,
    "models": cmd_models,
    "datasets": cmd_datasets,
    "submit": cmd_submit,
    "leaderboard": cmd_leaderboard,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
