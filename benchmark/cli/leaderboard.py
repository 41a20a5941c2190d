"""`submit` (verify predictions and add a leaderboard entry) and `leaderboard render|remove`."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.common import add_command, dataset_name, print_metrics, real_dataset_name, write_output
from benchmark.leaderboard import DEFAULT_DIR, MAX_META_BYTES, MAX_PREDICTIONS_BYTES, MAX_SEEDS  # light constants


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """``submit`` and ``leaderboard render|remove``."""
    sub = add_command(
        commands, "submit", "verify top-K predictions on the official split and add them to a leaderboard",
        examples=["python -m benchmark submit --data ml-latest-small --meta META.yaml --predictions s0.tsv --run runs/RUN_0 --predictions s1.tsv --run runs/RUN_1"],
        description="Recompute every metric from each FILE (one per seed: TSV user, item, rank, or a TREC run `qid Q0 docid "
        "rank score tag`, raw ids as `data export-split` ids them) on the official split of D (default preparation, loo, "
        "full ranking) and append a verified entry to <leaderboard-dir>/D.json. META.yaml (plain YAML data) has: model, "
        "authors (list), config (mapping), dataset_fingerprint (from split.json), protocol {split: loo, eval_protocol: "
        "full}; optional code_url, paper_url (http/https), dataset, seeds (one per FILE, in order), code (git_sha, dirty: "
        "the code that made the lists), metrics (claims: ignored, every metric is recomputed). Refused: synthetic or "
        "simulated data, raw files other than the board's (SHA-256), other fingerprints or protocols, dirty code versions, "
        f"duplicates (look-alike names included), bad files, predictions over {MAX_PREDICTIONS_BYTES // 2**20} MiB or meta "
        f"files over {MAX_META_BYTES // 2**10} KiB.",
    )  # fmt: skip
    sub.add_argument("--predictions", required=True, action="append", metavar="FILE",
                     help=f"top-K lists in raw ids, TSV or TREC; repeat once per seed (at most {MAX_SEEDS})")  # fmt: skip
    sub.add_argument("--predictions-format", choices=["tsv", "trec"], help="format of every FILE (default: by name: .trec and .run are TREC, others TSV)")
    sub.add_argument("--run", dest="runs", action="append", default=[], metavar="RUN",
                     help="run folder (or its result.json) that made the matching --predictions FILE: gives its seed and code version")  # fmt: skip
    sub.add_argument("--data", required=True, type=dataset_name, help="dataset (real datasets only)")
    sub.add_argument("--meta", required=True, metavar="META.yaml", help="submission metadata (see above)")
    sub.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    sub.add_argument("--leaderboard-dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder of the leaderboard files (default: ./{DEFAULT_DIR})")
    sub.add_argument("--output", metavar="FILE.json", help="also write the accepted entry as JSON")
    sub.set_defaults(handler=cmd_submit)

    board = add_command(commands, "leaderboard", "leaderboard pages: render them, withdraw an entry",
                        examples=["python -m benchmark leaderboard render", "python -m benchmark leaderboard remove --data ml-latest-small --model SASRec"])  # fmt: skip
    board_commands = board.add_subparsers(dest="leaderboard_command", required=True, metavar="SUBCOMMAND")
    text = "write README.md (one table per dataset) and index.html (sortable tables, one tab per dataset) from the leaderboard files"
    render_parser = board_commands.add_parser("render", help=text, description=text)
    render_parser.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder with <dataset>.json; the pages are written there (default: ./{DEFAULT_DIR})")
    text = "withdraw one entry from <dir>/D.json (exactly one must match); then run `leaderboard render`"
    remove_parser = board_commands.add_parser("remove", help=text, description=text)
    remove_parser.add_argument("--data", required=True, type=real_dataset_name, help="dataset of the leaderboard")
    remove_parser.add_argument("--model", metavar="NAME", help="model name of the entry (case-insensitive)")
    remove_parser.add_argument("--id", dest="entry_id", metavar="PREFIX", help="first 8+ hex digits of the entry's predictions_sha256 (listed when --model matches several)")
    remove_parser.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder with <dataset>.json (default: ./{DEFAULT_DIR})")
    board.set_defaults(handler=cmd_leaderboard)


def cmd_submit(args: argparse.Namespace) -> None:
    """Print the accepted entry (or let the refusal's error reach the CLI)."""
    from benchmark.leaderboard import ID_CHARS, board_path, submit

    result = submit(args.predictions, args.data, args.meta, raw_dir=args.raw_dir, directory=args.leaderboard_dir, runs=args.runs,
                    fmt=args.predictions_format)  # fmt: skip
    entry = result["entry"]
    seeds = [s["seed"] for s in entry["seeds"]]
    seed_text = f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), mean" if len(seeds) > 1 else "1 seed"
    print(f"\naccepted: {entry['model']} by {', '.join(entry['authors'])} on {entry['dataset']} (real data, split loo, full ranking), "
          f"{entry['n_test_users']} test users, config {entry['config_hash']}, {seed_text}, id {entry['predictions_sha256'][:ID_CHARS]}")  # fmt: skip
    for note in result["notes"]:
        print(f"note: {note}")
    print_metrics({"test": {k: v for k, v in entry["metrics"].items() if v is not None}})
    if entry.get("metrics_std"):
        print_metrics({"std": {k: v for k, v in entry["metrics_std"].items() if v is not None}})
    print(f"\nadded to {board_path(args.leaderboard_dir, entry['dataset'])}; `python -m benchmark leaderboard render` updates the pages")
    write_output(args.output, entry)


def cmd_leaderboard(args: argparse.Namespace) -> None:
    """``leaderboard render`` and ``leaderboard remove``."""
    from benchmark.leaderboard import board_path, describe, remove, render

    if args.leaderboard_command == "remove":
        entry = remove(args.data, model=args.model, entry_id=args.entry_id, directory=args.dir)
        print(f"removed from {board_path(args.dir, args.data)}: {describe(entry)}; `python -m benchmark leaderboard render` updates the pages")
        return
    counts = render(args.dir)
    print(f"wrote {Path(args.dir) / 'README.md'} and {Path(args.dir) / 'index.html'}: "
          + ", ".join(f"{name} {n} entr{'y' if n == 1 else 'ies'}" for name, n in counts.items()))  # fmt: skip
