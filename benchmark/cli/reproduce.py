"""`reproduce`: run a recorded run or a leaderboard entry again with the current code and compare."""

from __future__ import annotations

import argparse
from typing import Any

from benchmark.cli.common import (
    add_command,
    add_logger,
    add_raw_dir,
    print_table,
    write_output,
)
from benchmark.leaderboard import DEFAULT_DIR  # a light constant

DEFAULT_OUT = "reproductions"  # benchmark.reproduce.DEFAULT_OUT (not imported: the parser stays light)


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "reproduce", "run a recorded run or a leaderboard entry again with the current code; compare every metric",
        description="ENTRY_OR_RUN is a run folder (<out>/runs/<run_id>, or its result.json) or the first 6+ hex digits of a "
        "leaderboard entry's id. Nothing is checked out: the recorded model, dataset, config and seed (each seed of an "
        "entry) run again with the code in place, at the recorded thread count, into a fresh run folder under --out, once "
        "the data prepared now are found to have the recorded dataset fingerprint (otherwise nothing runs). Reports the code "
        "version (git sha, dirty flag) and package versions that differ from the record, and compares every metric: "
        "'identical' when all are equal to the last bit, else each difference (metric, recorded, now, abs diff). An entry's "
        "new lists are scored as `submit` scores them and their SHA-256 compared too. Exit code 0 when identical, 1 when a "
        "figure or the lists differ, 2 when it cannot run.",
        examples=["python -m benchmark reproduce runs/20260101-120000-bpr-ml-latest-small-s0-1a2b3c --raw-dir path/to/ml-latest-small",
                  "python -m benchmark reproduce 3f9a1c0b2d4e --raw-dir path/to/ml-latest-small      a leaderboard entry, by its id"],
    )  # fmt: skip
    parser.add_argument("target", metavar="ENTRY_OR_RUN", help="a run folder (or its result.json), or a leaderboard entry id prefix")
    add_raw_dir(parser)
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder that receives the new runs/<run_id>/ (default: ./{DEFAULT_OUT})")
    parser.add_argument("--leaderboard-dir", default=DEFAULT_DIR, metavar="DIR", help=f"folder of the leaderboard files (default: ./{DEFAULT_DIR})")
    parser.add_argument("--threads", type=int, help="torch threads for the new runs (default: the recorded count)")
    add_logger(parser, default="the default of new runs; reproduce keeps the recorded logger unless given")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--output", metavar="FILE.json", help="also write the comparison as JSON (environment changes, per seed: the new run, every difference)")
    parser.set_defaults(handler=cmd_reproduce)


def _value(value: Any, digits: int = 17) -> Any:
    """Numbers in full (a difference in the 10th digit must show), None as '-'."""
    if value is None:
        return "-"
    return format(value, f".{digits}g") if isinstance(value, float) else value


def cmd_reproduce(args: argparse.Namespace) -> int:
    from benchmark.reproduce import reproduce

    def report(seed: int, stage: str) -> None:
        if stage == "start":
            print(f"\n=== seed {seed} ===", flush=True)

    result = reproduce(args.target, out=args.out, raw_dir=args.raw_dir, leaderboard_dir=args.leaderboard_dir, threads=args.threads,
                       logger=args.logger, progress=not args.no_progress, on_seed=report)  # fmt: skip
    print(f"\nreproducing {result.kind} {result.target}: {result.model} on {result.dataset} "
          f"(dataset fingerprint {result.dataset_fingerprint[:16]}..., as recorded)")  # fmt: skip
    changes = [(c.name, c.recorded, c.now) for c in result.code + result.packages + ([result.threads] if result.threads else [])]
    if changes:
        print("environment: differs from the record")
        print_table([[name, _value(old), _value(new)] for name, old, new in changes], ["field", "recorded", "now"])
    else:
        print("environment: the same code version, package versions and thread count as recorded")
    for note in result.notes:
        print(f"note: {note}")
    for seed in result.seeds:
        verdict = "identical" if seed.identical else f"{len(seed.differences)} of {seed.compared} metrics differ"
        print(f"\nseed {seed.seed}: {verdict} ({seed.compared} metrics compared); new run: {seed.run_dir}")
        if seed.lists_recorded != seed.lists_now:
            print(f"top-K lists differ: SHA-256 {str(seed.lists_recorded)[:16]}... recorded, {str(seed.lists_now)[:16]}... now")
        if seed.differences:
            rows = [[d.metric, _value(d.recorded), _value(d.now), _value(d.abs_diff, 3)] for d in seed.differences]
            print_table(rows, ["metric", "recorded", "now", "abs diff"])
    print(f"\n{'identical' if result.identical else 'not identical'}")
    write_output(args.output, result.to_dict())
    return 0 if result.identical else 1
