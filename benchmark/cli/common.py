"""What every command shares: common options, name checks with suggestions, and printing.

Light on purpose (argparse, the registry's name table, the dataset names): building the
parser imports no model and no data library, so ``--help`` answers at once; each command's
handler imports what it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmark.data.names import DATASET_NAMES, REGISTERED, SOURCES, canonical_name
from benchmark.registry import MODELS, did_you_mean


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples."""


def add_command(commands: argparse._SubParsersAction, name: str, help: str, *, description: str | None = None,
                examples: list[str] | tuple[str, ...] = ()) -> argparse.ArgumentParser:  # fmt: skip
    """A subcommand whose help ends with its examples."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    return commands.add_parser(name, help=help, description=description or help, epilog=epilog, formatter_class=Formatter)


# --- checked names ---------------------------------------------------------------------------------


def model_name(value: str) -> str:
    """A registered model name (argparse ``type=``); a typo gets the closest name."""
    if value in MODELS:
        return value
    raise argparse.ArgumentTypeError(f"unknown model {value!r}{did_you_mean(value, MODELS)}; `python -m benchmark models` lists them")


def dataset_name(value: str) -> str:
    """A dataset name (``amazon-<category>`` made canonical); a typo gets the closest name."""
    name = canonical_name(value)
    if name in DATASET_NAMES:
        return name
    raise argparse.ArgumentTypeError(
        f"unknown dataset {value!r}{did_you_mean(value, REGISTERED)}; choose from {', '.join(REGISTERED)}, or amazon-<category>"
    )


def real_dataset_name(value: str) -> str:
    """A real dataset (leaderboards hold real data only)."""
    name = dataset_name(value)
    if SOURCES.get(name, "real") != "real":
        real = [n for n in REGISTERED if SOURCES[n] == "real"]
        raise argparse.ArgumentTypeError(f"{name} is synthetic data: leaderboards rank real datasets only ({', '.join(real)})")
    return name


# --- shared options ------------------------------------------------------------------------------


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", metavar="FILE.json", help="also write the reported figures as a flat JSON map")


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="flat YAML mapping of config keys (`run --print-config` lists them)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set split=temporal --set lr=0.01 (repeatable; wins over --config)",
    )  # fmt: skip


def add_rehash(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rehash", action="store_true",
        help="hash the raw files again instead of trusting the checksum memo (which trusts size and modification time): "
        "use after editing a raw file in place with its size and mtime kept",
    )  # fmt: skip


def add_raw_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")


def add_eval_protocol(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--eval-protocol", choices=["full", "sampled"],
        help="test protocol: full ranking over all items (default) or sampled negatives "
        "(--set eval_negatives=100 --set eval_sampler=uniform|popularity; labelled 'sampled' in every output)",
    )  # fmt: skip


def add_logger(parser: argparse.ArgumentParser, *, default: str = "default") -> None:
    from benchmark.config import LOGGERS  # light: yaml and dataclasses only

    parser.add_argument(
        "--logger", choices=LOGGERS,
        help=f"experiment logger (the `logger` key): tensorboard ({default}; <run>/tb/), csv (<run>/csv/metrics.csv), wandb "
        "(pip install -e \".[wandb]\"; offline under <run>/wandb/ unless WANDB_MODE is set) or mlflow (pip install -e \".[mlflow]\"; "
        "a file store <run>/mlruns/ unless MLFLOW_TRACKING_URI is set); each gets the curves, the resolved config as "
        "hyperparameters and the final validation/test metrics",
    )  # fmt: skip


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--config then --set (then --logger where the command has it), as one flat mapping of config keys."""
    from benchmark.config import load_config_file, parse_set_options

    merged = load_config_file(args.config) if getattr(args, "config", None) else {}
    merged.update(parse_set_options(getattr(args, "overrides", [])))
    if getattr(args, "logger", None) is not None:
        merged["logger"] = args.logger
    return merged


def data_config(args: argparse.Namespace) -> Any:
    """The DataConfig of --config/--set (data keys only; other keys are left to the command)."""
    from benchmark.config import DataConfig, apply_overrides

    keys = {k: v for k, v in overrides(args).items() if k in DataConfig.__dataclass_fields__}
    return apply_overrides({DataConfig: DataConfig()}, keys)[DataConfig]


# --- printing ---------------------------------------------------------------------------------------


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
    """``--output FILE.json``: the reported figures, written atomically."""
    if path:
        from benchmark.files import atomic_write_json

        atomic_write_json(Path(path), content)


def flat_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """Test metrics keyed by their plain names, validation ones prefixed (`valid/ndcg@10`)."""
    out = dict(metrics.get("test", {}))
    out.update({f"valid/{k}": v for k, v in metrics.get("valid", {}).items()})
    return out


def protocol_label(record: dict[str, Any]) -> str:
    if record.get("eval_protocol") == "sampled":
        sampling = record.get("eval_sampling", {})
        return f"SAMPLED evaluation: {sampling.get('negatives')} {sampling.get('sampler')} negatives per user, seed {sampling.get('seed')}"
    return "full ranking"
