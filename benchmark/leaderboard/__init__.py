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
  measured (``board.DECLARED_RAW_FILES``: ml-latest-small, the 2018-09-26
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
  accents and ignoring spaces and . - _ ' / : (``submission.name_key``).
- Meta files are plain YAML data (``yaml.safe_load``) with safe names and http(s) URLs;
  predictions files over 512 MiB and meta files over 64 KiB are refused before reading.

The entry is appended under a lock and the file replaced atomically; its name comes from
the dataset registry, never from the submission. ``python -m benchmark leaderboard render``
writes ``README.md`` and ``index.html`` (``benchmark.leaderboard.page``);
``python -m benchmark leaderboard remove --data D --model NAME [--id PREFIX]`` withdraws one
entry (exactly one must match), under the same lock.

The package is split along its seams: ``submission`` (meta files, names, submit), ``board``
(board files, data identity, duplicates, removal) and ``page`` (the pages, with their
JavaScript and CSS as static files); this module holds the public names. The command line
is ``benchmark.cli.leaderboard``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule that defines it; imported on first use, so the command line
#: can read the limits below without loading the data readers
_WHERE = {
    **dict.fromkeys(("DECLARED_RAW_FILES", "ID_CHARS", "OFFICIAL_PROTOCOL", "SCHEMA_VERSION", "SORT_METRIC",
                     "TABLE_METRICS", "board_path", "data_identity", "describe", "empty_board", "entry_id", "find_duplicate",
                     "load_board", "official_data", "real_datasets", "remove"), "board"),
    **dict.fromkeys(("_md", "embed_json", "page_columns", "render", "render_html", "render_markdown", "reproduce_command"), "page"),
    **dict.fromkeys(("Meta", "check_plain_data", "check_url", "identity_key", "load_meta", "name_key", "predictions_hash", "submit",
                     "validate_meta"), "submission"),
}  # fmt: skip
MAX_PREDICTIONS_BYTES = 512 * 2**20  # a predictions file over this is refused unread
MAX_META_BYTES = 64 * 2**10
MAX_SEEDS = 20  # seeds (predictions files) of one entry
DEFAULT_DIR = "leaderboards"  # the boards and their pages, in the project
__all__ = [*_WHERE, "DEFAULT_DIR", "MAX_META_BYTES", "MAX_PREDICTIONS_BYTES", "MAX_SEEDS"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"benchmark.leaderboard.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'benchmark.leaderboard' has no attribute {name!r}")
