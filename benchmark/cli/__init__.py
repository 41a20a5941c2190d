"""`python -m benchmark <command>`: the suite's one command line.

Every command that reports figures prints a table and, with ``--output FILE.json``, writes
the same figures as a flat JSON map (DESIGN.md, "Names and machine-readable output").
Input problems end with a one-paragraph message and exit code 2; a handler may return its own
exit code (``reproduce``: 1 when a figure differs). Parsers are built from
light modules only (argparse, name tables); each command's handler imports what it runs,
so ``--help`` and ``models`` answer at once. Nothing outside this package imports it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from benchmark.cli import ablation, data, leaderboard, perf, reproduce, results, run, sweep
from benchmark.cli.common import Formatter
from benchmark.errors import BenchmarkError

MODULES = (run, data, results, sweep, ablation, leaderboard, reproduce, perf)
EXAMPLES = """examples:
  python -m benchmark run --model bpr --data synthetic-ml              a first run, under a minute
  python -m benchmark run --model llm4rec --data synthetic-yelp        the main model (about 10 minutes on 2 cores)
  python -m benchmark run --model sasrec --data s3rec-beauty --raw-dir path/to/s3rec
  python -m benchmark collect --runs runs                              tables from the run records
  python -m benchmark reproduce runs/RUN_ID                            run a recorded run again, compare every metric
  python -m benchmark COMMAND --help                                   every option of a command"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark", description="llm4rec-bench: benchmark suite for LLM-based recommendation.", epilog=EXAMPLES,
        formatter_class=Formatter,
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.add_parsers(commands)
    return parser


class _Stderr(logging.Handler):
    """The library's progress and notes (``logging``), printed to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def _show_library_messages() -> None:
    logger = logging.getLogger("benchmark")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr())
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_library_messages()
    try:
        code = args.handler(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0
