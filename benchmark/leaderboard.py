"""Verified leaderboards: ``submit`` recomputes every metric from submitted top-K lists,
``leaderboard render`` writes the pages.

A leaderboard is ``leaderboards/<dataset>.json`` (real datasets only): its data identity
and a list of entries (model, authors, code/paper URLs, config and its hash, the
*recomputed* test metrics, mean and sample std over seeds, each seed's lists hash and
figures, the data identity and preparation fingerprint, date and suite version).

The rules ``python -m benchmark submit --predictions FILE [--predictions FILE ...] --data D
--meta META.yaml [--run RUN ...]`` applies:

- Data identity. A board has one official data identity: the SHA-256 of each raw file the
  dataset's reader uses, by file name, with the official protocol (default preparation,
  ``loo`` split, full ranking). It is declared in code where the published files were
  measured (``leaderboard_board.DECLARED_RAW_FILES``: ml-latest-small, the 2018-09-26
  release) and otherwise fixed by the board's first entry. The submission's raw files
  (``--raw-dir`` or the default folder, hashed again, not from the checksum memo) must
  have exactly these checksums; any other file set is refused, naming each file that
  differs. The preparation fingerprint (raw checksums + preparation config + the suite's
  ``PREPARATION_VERSION``) changes whenever the preparation code does, so it does not key
  the board: it is recorded per entry with the preparation version, and the meta's
  ``dataset_fingerprint`` must equal the current one (the lists were made on this split).
- Simulator output is never real: raw files with the simulator's markers beside them
  (``SIMULATION.txt``, ``ground_truth.npz``, ``heldout.parquet``) are labelled synthetic by
  ``load_dataset`` under any dataset name, and refused here, naming the markers. Without
  the markers their checksums still differ from the board's.
- Lists: each file (TSV or TREC run, ``benchmark.predictions``) is parsed strictly and
  scored on the official split by the same engine as ``evaluate``; unknown users or items,
  repeated items or ranks, ranks that are not 1..n and items the user interacted with before
  the test period are refused.
- Seeds: one predictions file per seed, with ``seeds: [..]`` in the meta file or one
  ``--run`` record per file (its seed and code version; all runs complete, of one config,
  on this dataset's official split). Every seed's lists are scored on their own; the
  entry holds each seed's figures, the mean and the sample std (ddof = 1) over seeds, and
  n. Two seeds with the same lists are refused.
- Code versions: a meta ``code`` or a run record's ``code`` with ``dirty: true`` is
  refused, and so is a verifying suite checkout with uncommitted changes: an entry names
  code versions that exist.
- Names: a duplicate is the same lists (any seed) or the same model, authors and config
  hash, names compared after NFKC normalisation, a Cyrillic/Greek-to-Latin look-alike map
  (the common letters only, not all of Unicode's confusables), casefolding, dropping
  accents and ignoring spaces and . - _ ' / : (``leaderboard_submission.name_key``).
- Meta files are plain YAML data (``yaml.safe_load``) with safe names and http(s) URLs;
  predictions files over 512 MiB and meta files over 64 KiB are refused before reading.

The entry is appended under a lock and the file replaced atomically; its name comes from
the dataset registry, never from the submission. ``python -m benchmark leaderboard render``
writes ``README.md`` and ``index.html`` (``benchmark.leaderboard_page``);
``python -m benchmark leaderboard remove --data D --model NAME [--id PREFIX]`` withdraws one
entry (exactly one must match), under the same lock.

The code is split along its seams: ``leaderboard_submission`` (meta files, names, submit),
``leaderboard_board`` (board files, data identity, duplicates, removal) and
``leaderboard_page`` (the pages); this module keeps the public names and the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.data.datasets import DATASETS
from benchmark.leaderboard_board import (
    DECLARED_RAW_FILES,
    DEFAULT_DIR,
    ID_CHARS,
    OFFICIAL_PROTOCOL,
    SCHEMA_VERSION,
    SORT_METRIC,
    TABLE_METRICS,
    board_path,
    data_identity,
    describe,
    empty_board,
    entry_id,
    find_duplicate,
    load_board,
    official_data,
    real_datasets,
    remove,
)
from benchmark.leaderboard_page import (
    _md,
    embed_json,
    page_columns,
    render,
    render_html,
    render_markdown,
    reproduce_command,
)
from benchmark.leaderboard_submission import (
    MAX_META_BYTES,
    MAX_PREDICTIONS_BYTES,
    MAX_SEEDS,
    Meta,
    check_plain_data,
    check_url,
    identity_key,
    load_meta,
    name_key,
    predictions_hash,
    submit,
    validate_meta,
)

__all__ = [
    "DECLARED_RAW_FILES", "DEFAULT_DIR", "ID_CHARS", "MAX_META_BYTES", "MAX_PREDICTIONS_BYTES", "MAX_SEEDS", "OFFICIAL_PROTOCOL",
    "SCHEMA_VERSION", "SORT_METRIC", "TABLE_METRICS", "Meta", "_md", "add_parsers", "board_path", "check_plain_data", "check_url",
    "cmd_leaderboard", "cmd_submit", "data_identity", "embed_json", "empty_board", "entry_id", "find_duplicate", "identity_key",
    "load_board", "load_meta", "name_key", "official_data", "page_columns", "predictions_hash", "real_datasets", "remove", "render",
    "render_html", "render_markdown", "reproduce_command", "submit", "validate_meta",
]  # fmt: skip


# --- command line (wired in benchmark.cli) -----------------------------------------------


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """``submit`` and ``leaderboard render|remove``."""
    sub = commands.add_parser(
        "submit", help="verify top-K predictions on the official split and add them to a leaderboard",
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
    sub.add_argument("--data", required=True, choices=list(DATASETS), help="dataset (real datasets only)")
    sub.add_argument("--meta", required=True, metavar="META.yaml", help="submission metadata (see above)")
    sub.add_argument("--raw-dir", help="folder with the raw files (default: $BENCHMARK_DATA/<name>/)")
    sub.add_argument("--leaderboard-dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder of the leaderboard files (default: ./{DEFAULT_DIR})")
    sub.add_argument("--output", metavar="FILE.json", help="also write the accepted entry as JSON")

    board = commands.add_parser("leaderboard", help="leaderboard pages")
    board_commands = board.add_subparsers(dest="leaderboard_command", required=True, metavar="SUBCOMMAND")
    text = "write README.md (one table per dataset) and index.html (sortable tables, one tab per dataset) from the leaderboard files"
    render_parser = board_commands.add_parser("render", help=text, description=text)
    render_parser.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder with <dataset>.json; the pages are written there (default: ./{DEFAULT_DIR})")
    text = "withdraw one entry from <dir>/D.json (exactly one must match); then run `leaderboard render`"
    remove_parser = board_commands.add_parser("remove", help=text, description=text)
    remove_parser.add_argument("--data", required=True, choices=real_datasets(), help="dataset of the leaderboard")
    remove_parser.add_argument("--model", metavar="NAME", help="model name of the entry (case-insensitive)")
    remove_parser.add_argument("--id", dest="entry_id", metavar="PREFIX", help="first 8+ hex digits of the entry's predictions_sha256 (listed when --model matches several)")
    remove_parser.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder with <dataset>.json (default: ./{DEFAULT_DIR})")


def cmd_submit(args: argparse.Namespace) -> None:
    """Print the accepted entry (or let the refusal's error reach the CLI)."""
    from benchmark.cli import print_metrics, write_output

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
    if args.leaderboard_command == "remove":
        entry = remove(args.data, model=args.model, entry_id=args.entry_id, directory=args.dir)
        print(f"removed from {board_path(args.dir, args.data)}: {describe(entry)}; `python -m benchmark leaderboard render` updates the pages")
        return
    counts = render(args.dir)
    print(f"wrote {Path(args.dir) / 'README.md'} and {Path(args.dir) / 'index.html'}: "
          + ", ".join(f"{name} {n} entr{'y' if n == 1 else 'ies'}" for name, n in counts.items()))  # fmt: skip
