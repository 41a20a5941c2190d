"""Leaderboard files: one JSON per real dataset, its data identity, duplicates, withdrawals.

A board is ``<dir>/<registry name>.json``: ``{"dataset", "schema", "protocol", "data",
"entries"}``. ``data`` is the board's one official data identity (see
``benchmark.leaderboard``): the SHA-256 of every raw file the dataset's reader uses, keyed
by file name, and ``identity``, the SHA-256 of the dataset name, those checksums and the
official protocol. It is declared here for the datasets whose published files were measured
(``DECLARED_RAW_FILES``), and otherwise fixed by the board's first entry. Every change of the
file happens under a lock on the folder and replaces the file atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmark.data.datasets import DATASETS, get_dataset
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_text
from benchmark.metrics import metric_info

SCHEMA_VERSION = 2  # 2: the board's data identity; entries with seeds, data identity and preparation version
READABLE_SCHEMAS = (1, 2)
from benchmark.leaderboard import DEFAULT_DIR  # noqa: E402
# The official protocol of every leaderboard: default preparation, per-user leave-one-out
# split, full ranking over all items.
OFFICIAL_PROTOCOL = {"split": "loo", "eval_protocol": "full"}
# Columns of the rendered tables: (metric, label, higher is better).
#: the pages' columns: (key, label, higher is better), the direction from the metric classes
TABLE_METRICS = tuple(
    (key, label, metric_info(key).direction == "higher")  # type: ignore[union-attr]
    for key, label in (("ndcg@10", "NDCG@10"), ("hr@10", "HR@10"), ("recall@10", "Recall@10"), ("mrr@10", "MRR@10"), ("map@10", "MAP@10"),
                       ("coverage@10", "Coverage@10"), ("gini@10", "Gini@10"), ("novelty@10", "Novelty@10"), ("tailshare@10", "TailShare@10"))
)  # fmt: skip
SORT_METRIC = "ndcg@10"
ID_CHARS = 12  # the entry id prefix shown on the pages and in the reproduce command

# SHA-256 of the raw files of the ml-latest-small release generated on 2018-09-26 (README.txt
# of ml-latest-small.zip; 100,836 ratings, 610 users, 9,742 movies). Their MD5s are
# links 316913f95cdad64c745ca22f3630e230, movies ed94fab72b62442ef8150d9446e000d6,
# ratings 325a6f09399d1c45671f187505e1a100, tags 1b2d21a7be1cc23d327b11155a4a6aea.
# ml-25m's archive MD5 is pinned in benchmark.data.download, but its files' checksums were
# not measured here: its board's identity is fixed by its first entry.
DECLARED_RAW_FILES: dict[str, dict[str, str]] = {
    "ml-latest-small": {
        "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
        "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
        "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
        "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
    },
}


def real_datasets() -> list[str]:
    """Names of the datasets that have leaderboards, in registry order."""
    return [name for name, spec in DATASETS.items() if spec.source == "real"]


# --- the data identity ----------------------------------------------------------------------


def data_identity(dataset: str, raw_files: dict[str, str]) -> str:
    """SHA-256 of the dataset name, the raw files' SHA-256 (by file name) and the official protocol."""
    content = {"dataset": dataset, "raw_files": dict(sorted(raw_files.items())), "protocol": OFFICIAL_PROTOCOL}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def official_data(board: dict[str, Any]) -> dict[str, Any] | None:
    """The board's data identity: declared for its dataset, else the one its first entry fixed,
    else None (an empty board of an undeclared dataset)."""
    dataset = board["dataset"]
    if dataset in DECLARED_RAW_FILES:
        files = DECLARED_RAW_FILES[dataset]
        return {"identity": data_identity(dataset, files), "raw_files": dict(files), "fixed_by": "declared in benchmark.leaderboard.board"}
    data = board.get("data")
    if isinstance(data, dict) and isinstance(data.get("raw_files"), dict):
        files = {str(k): str(v) for k, v in data["raw_files"].items()}
        return {"identity": data_identity(dataset, files), "raw_files": files, "fixed_by": str(data.get("fixed_by", "the first entry"))}
    return None


def identity_differences(official: dict[str, str], found: dict[str, str]) -> list[str]:
    """What differs between the board's raw files and the submission's, file by file."""
    out = []
    for name in sorted(set(official) | set(found)):
        if name not in found:
            out.append(f"{name}: missing here (the board's files include it)")
        elif name not in official:
            out.append(f"{name}: not among the board's files")
        elif official[name] != found[name]:
            out.append(f"{name}: SHA-256 {found[name][:16]}... here, {official[name][:16]}... on the board")
    return out


# --- files ------------------------------------------------------------------------------


def board_path(directory: str | Path, dataset: str) -> Path:
    """``<directory>/<registry name>.json``: the name comes from the registry only."""
    spec = get_dataset(dataset)
    return Path(directory) / f"{spec.name}.json"


def empty_board(dataset: str) -> dict[str, Any]:
    """A board with no entries (its data identity, if declared, is written with the first entry)."""
    return {"dataset": dataset, "schema": SCHEMA_VERSION, "protocol": dict(OFFICIAL_PROTOCOL), "entries": []}


def load_board(directory: str | Path, dataset: str) -> dict[str, Any]:
    """The leaderboard of ``dataset`` (empty when its file does not exist yet)."""
    path = board_path(directory, dataset)
    if not path.is_file():
        return empty_board(dataset)
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{path} is not a readable leaderboard file: {exc}") from None
    if not isinstance(board, dict) or board.get("dataset") != dataset or not isinstance(board.get("entries"), list) or not all(isinstance(e, dict) for e in board["entries"]):
        raise BenchmarkError(f"{path} is not a leaderboard file of {dataset} (expected dataset: {dataset!r} and a list of entries)")
    if board.get("schema", 1) not in READABLE_SCHEMAS:
        raise BenchmarkError(f"{path}: leaderboard schema {board.get('schema')!r} is newer than this suite reads ({', '.join(map(str, READABLE_SCHEMAS))})")
    return board


def write_board(directory: Path, board: dict[str, Any]) -> None:
    """Replace the board's file atomically (call under ``locked``)."""
    board["schema"] = SCHEMA_VERSION
    text = json.dumps(board, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(board_path(directory, board["dataset"]), text)  # published files: 0644


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Serialise read-check-append between concurrent submissions: a lock on the folder itself,
    so no lock file is left beside the published ones."""
    import fcntl  # POSIX; leaderboards are maintained on Linux

    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- entries ----------------------------------------------------------------------------


def entry_id(entry: dict[str, Any]) -> str:
    """An entry's id: its ``predictions_sha256`` (one seed: the lists' hash; several: the hash of theirs)."""
    return str(entry.get("predictions_sha256", ""))


def seed_hashes(entry: dict[str, Any]) -> set[str]:
    """The hashes of every seed's lists (an entry without ``seeds``: its one ``predictions_sha256``)."""
    seeds = entry.get("seeds")
    found = {str(s.get("predictions_sha256")) for s in seeds if isinstance(s, dict) and s.get("predictions_sha256")} if isinstance(seeds, list) else set()
    return found or ({entry_id(entry)} if entry_id(entry) else set())


def find_duplicate(board: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """Why ``entry`` duplicates one already on ``board``, or None: the same lists (of any seed),
    or the same model, authors and config hash, names compared by ``name_key``."""
    from benchmark.leaderboard.submission import identity_key

    mine = identity_key(entry["model"], entry["authors"], entry["config_hash"])
    lists = seed_hashes(entry) if entry.get("predictions_sha256") else set()
    for old in board["entries"]:
        when = f"{old.get('model')!s} by {', '.join(map(str, old.get('authors', [])))} ({old.get('date')})"
        if lists & seed_hashes(old):
            return f"the same top-K lists are already on the leaderboard: {when}"
        authors = old.get("authors") if isinstance(old.get("authors"), list) else []
        if identity_key(str(old.get("model", "")), [str(a) for a in authors], str(old.get("config_hash"))) == mine:
            return f"the same model, authors and config (hash {entry['config_hash']}) are already on the leaderboard: {when}"
    return None


def rank_key(entry: dict[str, Any]) -> tuple[float, str, str]:
    """Best NDCG@10 first (a missing or non-finite value last), then model name, then date."""
    value = (entry.get("metrics") or {}).get(SORT_METRIC)
    score = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else -math.inf
    return (-score, str(entry.get("model", "")).casefold(), str(entry.get("date", "")))


def describe(entry: dict[str, Any]) -> str:
    """One line naming an entry: model, authors, date, NDCG@10 and id."""
    ndcg = (entry.get("metrics") or {}).get(SORT_METRIC)
    score = f"{ndcg:.4f}" if isinstance(ndcg, (int, float)) and not isinstance(ndcg, bool) else "-"
    return (f"{entry.get('model')!s} by {', '.join(map(str, entry.get('authors', [])))} ({entry.get('date')}, "
            f"{SORT_METRIC} {score}, id {entry_id(entry)[:ID_CHARS]})")  # fmt: skip


def remove(dataset: str, *, model: str | None = None, entry_id: str | None = None, directory: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    """Remove one entry from ``<directory>/<dataset>.json`` and return it.

    ``model`` matches the model name (case-insensitive); ``entry_id`` is a prefix (>= 8 hex digits) of the
    entry's ``predictions_sha256``. Exactly one entry must match both given selectors: a withdrawal never
    takes more than the maintainer meant. The pages are not re-rendered (as after ``submit``)."""
    spec = get_dataset(dataset)
    if model is None and entry_id is None:
        raise BenchmarkError("say which entry to remove: --model NAME and/or --id PREFIX (of its predictions_sha256)")
    if entry_id is not None and not re.fullmatch(r"[0-9a-f]{8,64}", entry_id):
        raise BenchmarkError(f"--id {entry_id!r}: expected 8 to 64 lowercase hex digits of the entry's predictions_sha256")
    directory = Path(directory)
    path = board_path(directory, spec.name)
    if not path.is_file():
        raise BenchmarkError(f"{path} not found: {spec.name} has no leaderboard file in {directory}")

    def matches(entry: dict[str, Any]) -> bool:
        return (model is None or str(entry.get("model", "")).casefold() == model.casefold()) and (
            entry_id is None or str(entry.get("predictions_sha256", "")).startswith(entry_id)
        )

    with locked(directory):
        board = load_board(directory, spec.name)
        found = [e for e in board["entries"] if matches(e)]
        if len(found) != 1:
            listing = "".join(f"\n  {describe(e)}" for e in (found or board["entries"]))
            what = "matches" if found else "entries on the board"
            raise BenchmarkError(
                f"{len(found)} entries of {spec.name} match; expected exactly one (add --id to choose). Nothing was removed. "
                f"The {what}:{listing or ' none'}"
            )
        board["entries"] = [e for e in board["entries"] if e is not found[0]]
        write_board(directory, board)
    return found[0]
