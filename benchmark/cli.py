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

from benchmark.config import DataConfig, apply_overrides, load_config_file, parse_set_options
from benchmark.data.datasets import DATASETS, load_dataset
from benchmark.errors import BenchmarkError
from benchmark.registry import MODELS


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", metavar="FILE.json", help="also write the reported figures as a flat JSON map")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="flat YAML mapping of config keys (see `run --help`)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set split=temporal --set lr=0.01 (repeatable; wins over --config)",
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
    run.add_argument("--data", required=True, choices=list(DATASETS), help="dataset name (see `datasets`)")
    run.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    _add_overrides(run)
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--max-epochs", type=int, help="maximum training epochs (default: the model's)")
    run.add_argument("--accelerator", choices=["cpu", "gpu", "auto"], help="default cpu")
    run.add_argument("--devices", type=int, help="processes/devices (default 1)")
    run.add_argument("--strategy", choices=["auto", "ddp"], help="default auto")
    run.add_argument("--out", default=".", help="folder that receives runs/<run_id>/ (default: current folder)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_output(run)

    evaluate = commands.add_parser("evaluate", help="re-evaluate a saved run's checkpoint on its test split")
    evaluate.add_argument("--checkpoint", required=True, metavar="CKPT", help="runs/<run_id>/checkpoints/best.ckpt")
    evaluate.add_argument("--raw-dir", help="raw files, if they moved since the run")
    evaluate.add_argument("--devices", type=int, help="processes/devices")
    evaluate.add_argument("--accelerator", choices=["cpu", "gpu", "auto"])
    evaluate.add_argument("--strategy", choices=["auto", "ddp"])
    _add_output(evaluate)

    data = commands.add_parser("data", help="prepare datasets and describe them")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    for name, text in (("prepare", "parse, filter, split and cache a dataset"), ("info", "counts, density, time span and fingerprint")):
        sub = data_commands.add_parser(name, help=text, description=text)
        sub.add_argument("--data", required=True, choices=list(DATASETS))
        sub.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
        _add_overrides(sub)
        if name == "info":
            _add_output(sub)

    commands.add_parser("models", help="list registered models", description="List registered models.")
    commands.add_parser("datasets", help="list datasets", description="List datasets.")
    return parser


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
    for key in ("max_epochs", "accelerator", "devices", "strategy"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    cfg = resolve(args.model, args.data, overrides, seed=args.seed, raw_dir=args.raw_dir)
    record = run(cfg, args.out, progress=not args.no_progress)
    timings = record["timings"]
    print(f"\n{record['model']} on {record['dataset']} ({record['data_source']} data, split {record['split']}, full ranking)")
    print(f"epochs {timings['epochs']} (best {record['best_epoch']}), {timings['seconds_per_epoch']} s/epoch, test pass {timings['eval_seconds']} s")
    print_metrics(record["metrics"])
    print(f"\nrun record: {Path(args.out) / 'runs' / record['run_id'] / 'result.json'}")
    write_output(args.output, {**_flat(record["metrics"]), **{k: v for k, v in timings.items()}, "run_id": record["run_id"]})


def cmd_evaluate(args: argparse.Namespace) -> None:
    from benchmark.runner import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, raw_dir=args.raw_dir, devices=args.devices, accelerator=args.accelerator, strategy=args.strategy)
    print(f"\n{result['model']} on {result['dataset']} ({result['data_source']} data), run {result['run_id']}")
    print_metrics(result["metrics"])
    write_output(args.output, {**result["metrics"]["test"], "eval_seconds": result["timings"]["eval_seconds"]})


def _data_config(args: argparse.Namespace) -> DataConfig:
    overrides = _overrides(args)
    return apply_overrides({DataConfig: DataConfig()}, overrides)[DataConfig]


def dataset_info(name: str, config: DataConfig, raw_dir: str | None) -> dict[str, Any]:
    data = load_dataset(name, config, raw_dir)
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
        "fingerprint": data.fingerprint,
        **{k: v for k, v in data.stats.items()},
    }


def cmd_data(args: argparse.Namespace) -> None:
    config = _data_config(args)
    info = dataset_info(args.data, config, args.raw_dir)
    if args.data_command == "prepare":
        print(f"{args.data}: {info['n_users']} users, {info['n_items']} items, {info['n_interactions']} interactions; "
              f"split {info['split']}; fingerprint {info['fingerprint'][:16]}")  # fmt: skip
        return
    print_table([[k, v] for k, v in info.items()], ["field", "value"])
    write_output(args.output, info)


def cmd_models(_: argparse.Namespace) -> None:
    print_table([[spec.name, spec.description] for spec in MODELS.values()], ["model", "description"])


def cmd_datasets(_: argparse.Namespace) -> None:
    print_table([[spec.name, spec.source, spec.description] for spec in DATASETS.values()], ["dataset", "source", "description"])


COMMANDS = {"run": cmd_run, "evaluate": cmd_evaluate, "data": cmd_data, "models": cmd_models, "datasets": cmd_datasets}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
