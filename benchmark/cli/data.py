"""`data prepare|info|synth|export-split` and `features`."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

from benchmark.cli.common import add_command, add_output, add_overrides, add_raw_dir, add_rehash, data_config, dataset_name, print_table, write_output


def add_parsers(commands: argparse._SubParsersAction) -> None:
    data = add_command(commands, "data", "prepare datasets, describe them, write simulated ones, export the official split",
                       examples=["python -m benchmark data info --data s3rec-beauty --raw-dir path/to/s3rec",
                                 "python -m benchmark data synth --like yelp --users 3000 --items 1000 --out sim-yelp"])  # fmt: skip
    sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    for name, text in (
        ("prepare", "parse, filter, split and cache a dataset"),
        ("info", "the dataset card: counts, density, popularity Gini, time span, interaction quantiles, modality coverage, fingerprint"),
    ):  # fmt: skip
        parser = add_command(sub, name, text, examples=[f"python -m benchmark data {name} --data ml-latest-small --raw-dir path/to/ml-latest-small"])
        parser.add_argument("--data", required=True, type=dataset_name)
        add_raw_dir(parser)
        add_overrides(parser)
        add_rehash(parser)
        if name == "info":
            add_output(parser)
        parser.set_defaults(handler=cmd_data_info)

    text = "write simulated raw files in a real dataset's format, with ground truth (factors, exposure, true relevance)"
    synth = add_command(sub, "synth", text, description=text + "; see benchmark/data/simulator/process.py for the generative process.",
                        examples=["python -m benchmark data synth --like amazon --layout 2023 --gzip --out sim-amazon"])  # fmt: skip
    synth.add_argument("--like", required=True, choices=["ml", "yelp", "amazon"], help="format: MovieLens CSV, Yelp JSON, Amazon JSON")
    synth.add_argument("--users", type=int, default=2000, help="users (default 2000)")
    synth.add_argument("--items", type=int, default=1000, help="items (default 1000)")
    synth.add_argument("--interactions", type=int, help="total interactions (default: 40 per user)")
    synth.add_argument("--min-interactions", type=int, default=5, help="per user (default 5)")
    synth.add_argument("--seed", type=int, default=0, help="random seed of the simulator (default 0)")
    synth.add_argument("--layout", choices=["2018", "2023"], default="2018", help="amazon: published layout (default 2018)")
    synth.add_argument("--gzip", action="store_true", help="amazon: write .gz files")
    synth.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced atomically)")
    synth.set_defaults(handler=cmd_synth)

    text = "write the official split in raw ids: train/valid/test TSV (user, item, timestamp), test.qrels and split.json"
    export = add_command(sub, "export-split", text, examples=["python -m benchmark data export-split --data ml-latest-small --out split/"])
    export.add_argument("--data", required=True, type=dataset_name)
    add_raw_dir(export)
    export.add_argument("--out", required=True, metavar="DIR", help="folder that receives the files")
    add_overrides(export)
    export.set_defaults(handler=cmd_export_split)

    feats = add_command(
        commands, "features", "extract and cache multimodal item features (text, categorical, numerical, image)",
        description="Extract item features with frozen encoders and cache them (keyed by encoder and dataset fingerprint); print "
        "dimensions and the share of items with each modality. --dump-text writes what every item gives a model instead.",
        examples=["python -m benchmark features --data ml-latest-small --raw-dir path/to/ml-latest-small --dump-text items.tsv"],
    )  # fmt: skip
    feats.add_argument("--data", required=True, type=dataset_name)
    add_raw_dir(feats)
    add_overrides(feats)
    feats.add_argument("--text-encoder", default="all-MiniLM-L6-v2", help="sentence-transformers name or folder; 'none' skips text (default: offline all-MiniLM-L6-v2)")
    feats.add_argument("--image-encoder", help="open-clip:<arch>[:<pretrained>] (extra `vision`), or random-cnn (tests only); default: no images")
    feats.add_argument("--download-images", action="store_true", help="fetch image URLs into the cache (only where the licence allows)")
    feats.add_argument("--batch-size", type=int, default=64, help="encoder batch size (default 64)")
    feats.add_argument(
        "--dump-text", metavar="FILE.tsv",
        help="write what each item gives a model (its encoder text and categorical values, one TSV row per item) and exit "
        "without encoding: the audit of the leakage rules",
    )  # fmt: skip
    feats.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_output(feats)
    feats.set_defaults(handler=cmd_features)


def dataset_info(name: str, config: Any, raw_dir: str | None, *, rehash: bool = False) -> dict[str, Any]:
    from benchmark.data.datasets import load_dataset
    from benchmark.data.features import dataset_card

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


def cmd_data_info(args: argparse.Namespace) -> None:
    info = dataset_info(args.data, data_config(args), args.raw_dir, rehash=args.rehash)
    if args.data_command == "prepare":
        print(f"{args.data}: {info['n_users']} users, {info['n_items']} items, {info['n_interactions']} interactions; "
              f"split {info['split']}; fingerprint {info['fingerprint'][:16]}")  # fmt: skip
        return
    print_table([[k, v] for k, v in info.items()], ["field", "value"])
    write_output(args.output, info)


def cmd_synth(args: argparse.Namespace) -> None:
    from benchmark.perf_data import DATASET, write_simulated

    start = time.perf_counter()
    files = write_simulated(args.like, Path(args.out), users=args.users, items=args.items, interactions=args.interactions,
                            min_interactions=args.min_interactions, seed=args.seed, layout=args.layout, compress=args.gzip)  # fmt: skip
    print(f"wrote {args.like}-format simulated data to {args.out} in {time.perf_counter() - start:.1f} s:")
    for path in files:
        print(f"  {path.name:45s} {path.stat().st_size / 1e6:10.1f} MB")
    print(f"use it with: python -m benchmark data info --data {DATASET[args.like]} --raw-dir {args.out}")


def cmd_export_split(args: argparse.Namespace) -> None:
    from benchmark.data.datasets import load_dataset
    from benchmark.predictions import export_split

    data = load_dataset(args.data, data_config(args), args.raw_dir)
    meta = export_split(data, args.out)
    print(f"{args.data} ({data.source} data, split {meta['split']}): wrote {meta['n_train']} train, {meta['n_valid']} valid, "
          f"{meta['n_test']} test interactions (raw ids) to {args.out}/{{train,valid,test}}.tsv and the test qrels to "
          f"{args.out}/test.qrels; fingerprint {data.fingerprint[:16]}")  # fmt: skip


def cmd_features(args: argparse.Namespace) -> None:
    from benchmark.data.datasets import load_dataset
    from benchmark.data.features import features_summary, item_features, write_item_inputs

    data = load_dataset(args.data, data_config(args), args.raw_dir)
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
