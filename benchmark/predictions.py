"""The official split in raw ids, and scoring of external top-K predictions.

``python -m benchmark data export-split --data D --out DIR`` writes ``train.tsv``,
``valid.tsv`` and ``test.tsv`` (header ``user, item, timestamp``; raw ids; tab-separated)
plus ``split.json`` (dataset, fingerprint, split protocol, counts), so any external system
trains on exactly the suite's split. ``python -m benchmark evaluate --predictions FILE
--data D`` scores that system's top-K lists (TSV ``user, item, rank``; raw ids; ranks 1..n
per user; a header line is optional) with the same engine and every metric. Users missing
from the file get empty lists (0 on every accuracy metric); a file with unknown users or
items, repeated items or ranks in a list, ranks that are not 1..n, or an item the user
interacted with before the test period (a masked item) is refused with a report of every
problem found, with line numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmark.data.datamodule import CSR, RecDataModule, _contains
from benchmark.data.prepare import PreparedData
from benchmark.errors import BenchmarkError
from benchmark.evaluation import Evaluator, _valid_ids, mask_seen, top_k
from benchmark.model import BatchSpec, RecModule

SPLIT_FILES = ("train", "valid", "test")
MAX_EXAMPLES = 5


def export_split(data: PreparedData, out_dir: str | Path) -> dict[str, Any]:
    """Write the split in raw ids; returns what ``split.json`` holds."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for part in SPLIT_FILES:
        log = getattr(data, part)
        frame = pd.DataFrame({"user": data.user_ids[log.user], "item": data.item_ids[log.item], "timestamp": log.timestamp})
        frame.to_csv(out / f"{part}.tsv", sep="\t", index=False)
        counts[f"n_{part}"] = len(frame)
    meta = {
        "dataset": data.name,
        "data_source": data.source,
        "dataset_fingerprint": data.fingerprint,
        "split": data.config.split,
        "n_users": data.n_users,
        "n_items": data.n_items,
        **counts,
        "files": [f"{part}.tsv" for part in SPLIT_FILES],
    }
    (out / "split.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return meta


@dataclass
class Predictions:
    """Top-K lists of every test user: ``items`` [n_test_users, K] internal ids (-1 = empty)."""

    users: np.ndarray  # internal ids of the test users, in the test set's order
    items: np.ndarray
    n_missing: int  # test users absent from the file
    n_rows: int
    notes: list[str] = field(default_factory=list)


def _id_lookup(raw_ids: np.ndarray) -> pd.Index:
    return pd.Index(raw_ids.astype(str))


def _problem(problems: list[str], what: str, lines: np.ndarray, detail: pd.Series | None = None) -> None:
    if len(lines) == 0:
        return
    shown = [f"line {int(n)}" + (f" ({d})" if detail is not None else "") for n, d in zip(lines[:MAX_EXAMPLES], (detail if detail is not None else lines)[:MAX_EXAMPLES])]
    more = f", ... ({len(lines) - MAX_EXAMPLES} more)" if len(lines) > MAX_EXAMPLES else ""
    problems.append(f"- {len(lines)} {what}: {', '.join(shown)}{more}")


def read_predictions(path: str | Path, data: PreparedData, dm: RecDataModule, k: int) -> Predictions:
    """Parse and check a predictions file against the prepared data; raise with a full report."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"predictions file {path} not found")
    try:
        frame = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False, names=["user", "item", "rank"], engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise BenchmarkError(f"{path}: not a TSV of user, item, rank: {exc}") from None
    frame["line"] = np.arange(1, len(frame) + 1)
    if len(frame) and not frame["rank"].iloc[0].strip().lstrip("+").isdigit():  # a header line
        frame = frame.iloc[1:]
    problems: list[str] = []
    rank = pd.to_numeric(frame["rank"].str.strip(), errors="coerce")
    bad_rank = rank.isna() | (rank < 1) | (rank != rank.round())
    _problem(problems, "rows whose rank is missing or not a positive integer", frame["line"][bad_rank].to_numpy(), frame["rank"][bad_rank])
    user = _id_lookup(data.user_ids).get_indexer(frame["user"].str.strip())
    item = _id_lookup(data.item_ids).get_indexer(frame["item"].str.strip())
    _problem(problems, "rows with an unknown user", frame["line"][user < 0].to_numpy(), frame["user"][user < 0])
    _problem(problems, "rows with an unknown item", frame["line"][item < 0].to_numpy(), frame["item"][item < 0])
    ok = (user >= 0) & (item >= 0) & ~bad_rank.to_numpy()
    rows = pd.DataFrame({"user": user[ok], "item": item[ok], "rank": rank[ok].astype(np.int64).to_numpy(), "line": frame["line"][ok].to_numpy()})
    raw = frame[ok].reset_index(drop=True)
    dup_item = rows.duplicated(["user", "item"]).to_numpy()
    _problem(problems, "repeated items in a user's list", rows["line"][dup_item].to_numpy(), raw["user"][dup_item] + " / " + raw["item"][dup_item])
    dup_rank = rows.duplicated(["user", "rank"]).to_numpy()
    _problem(problems, "repeated ranks in a user's list", rows["line"][dup_rank].to_numpy(), raw["user"][dup_rank] + " / rank " + raw["rank"][dup_rank])
    stats = rows.groupby("user")["rank"].agg(["max", "count"])
    gappy = stats.index[stats["max"] != stats["count"]].to_numpy()
    if len(gappy):
        first_line = rows.groupby("user")["line"].min()
        _problem(problems, "users whose ranks are not 1..n (ranks missing)", first_line[gappy].to_numpy(), pd.Series(data.user_ids[gappy].astype(str)))
    seen: CSR = dm.test_set.seen
    seen_keys = np.unique(np.repeat(np.arange(data.n_users), np.diff(seen.ptr)) * data.n_items + seen.items)
    masked = _contains(seen_keys, rows["user"].to_numpy() * data.n_items + rows["item"].to_numpy())
    _problem(problems, "items the user already interacted with before the test period (training or validation items)",
             rows["line"][masked].to_numpy(), raw["user"][masked] + " / " + raw["item"][masked])  # fmt: skip
    if problems:
        raise BenchmarkError(f"{path}: the predictions file has problems; nothing was scored:\n" + "\n".join(problems))

    test_users = dm.test_set.users
    position = np.full(data.n_users, -1, dtype=np.int64)
    position[test_users] = np.arange(len(test_users))
    rows = rows[(position[rows["user"].to_numpy()] >= 0) & (rows["rank"].to_numpy() <= k)]
    items = np.full((len(test_users), k), -1, dtype=np.int64)
    items[position[rows["user"].to_numpy()], rows["rank"].to_numpy() - 1] = rows["item"].to_numpy()
    listed = np.zeros(len(test_users), dtype=bool)
    listed[position[rows["user"].to_numpy()]] = True
    notes = []
    n_missing = int((~listed).sum())
    if n_missing:
        notes.append(f"{n_missing} of {len(test_users)} test users are not in the file: they count as 0")
    return Predictions(test_users, items, n_missing, len(frame), notes)


def score_predictions(predictions: Predictions, dm: RecDataModule, evaluator: Evaluator, batch_size: int = 1024) -> dict[str, float]:
    """Feed the lists to ``evaluator`` batch by batch (the same engine as model evaluation)."""
    evaluator.reset()
    test_set = dm.test_set
    for start in range(0, len(test_set), batch_size):
        idx = np.arange(start, min(start + batch_size, len(test_set)))
        batch = test_set[(0, 0, idx)]
        evaluator.update_lists(batch, torch.from_numpy(predictions.items[idx]), lists_from_ids=True)
    return evaluator.compute()


@torch.no_grad()
def write_predictions(model: RecModule, dm: RecDataModule, path: str | Path, k: int, batch_size: int = 1024) -> int:
    """Write ``model``'s top-k list of every test user as a predictions TSV (raw ids; ranks 1..n
    over the valid items, so masked or invalid slots are left out). Returns the rows written."""
    data, test_set = dm.data, dm.test_set
    model.eval()
    parts = []
    for start in range(0, len(test_set), batch_size):
        batch = test_set[(0, 0, np.arange(start, min(start + batch_size, len(test_set))))]
        batch = {key: value.to(model.device) for key, value in batch.items()}
        if type(model).is_generative():
            items = model.recommend(batch, k)
            valid = _valid_ids(items, data.n_items)
        else:
            scores = model.score(batch).clone()
            mask_seen(scores, batch["seen_rows"], batch["seen_items"])
            items, valid = top_k(scores, k)
        items, valid = items.cpu().numpy(), valid.cpu().numpy()
        rank = np.cumsum(valid, axis=1)
        users = np.broadcast_to(batch["users"].cpu().numpy()[:, None], items.shape)
        parts.append(pd.DataFrame({"user": data.user_ids[users[valid]], "item": data.item_ids[items[valid]], "rank": rank[valid]}))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["user", "item", "rank"])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)
    return len(frame)


def evaluation_datamodule(data: PreparedData, eval_batch_size: int = 1024) -> RecDataModule:
    """A RecDataModule used only for its evaluation sets (no model needed)."""
    return RecDataModule(data, BatchSpec("pairwise", 1), eval_batch_size=eval_batch_size)


# --- commands (called by benchmark.cli) ---------------------------------------------------


def export_split_command(args: Any, config: Any) -> None:
    from benchmark.data.datasets import load_dataset

    data = load_dataset(args.data, config, args.raw_dir)
    meta = export_split(data, args.out)
    print(f"{args.data} ({data.source} data, split {meta['split']}): wrote {meta['n_train']} train, {meta['n_valid']} valid, "
          f"{meta['n_test']} test interactions (raw ids) to {args.out}/{{train,valid,test}}.tsv; fingerprint {data.fingerprint[:16]}")  # fmt: skip


def evaluate_command(args: Any) -> None:
    """``evaluate --checkpoint CKPT`` or ``evaluate --predictions FILE --data D``."""
    from benchmark.cli import _overrides, _protocol_label, print_metrics, write_output

    overrides = _overrides(args)
    if args.predictions:
        if args.data is None:
            raise BenchmarkError("evaluate --predictions needs --data (the dataset the lists were made for)")
        if args.write_predictions:
            raise BenchmarkError("--write-predictions goes with --checkpoint")
        if args.eval_protocol == "sampled" or overrides.get("eval_protocol") == "sampled":
            raise BenchmarkError("external top-K lists are fixed: they can only be scored by the full protocol")
        for option in ("devices", "accelerator", "strategy"):
            if getattr(args, option) is not None:
                raise BenchmarkError(f"--{option} goes with --checkpoint")
        result = evaluate_predictions_file(args.predictions, args.data, overrides, raw_dir=args.raw_dir)
        print(f"\n{args.predictions} on {args.data} ({result['data_source']} data, split {result['split']}, full ranking): "
              f"{result['n_rows']} rows, {result['n_test_users']} test users")  # fmt: skip
        for note in result["notes"]:
            print(f"note: {note}")
        print_metrics({"test": result["metrics"]})
        write_output(args.output, {**result["metrics"], "eval_protocol": "full", "n_test_users": result["n_test_users"], "n_users_missing": result["n_users_missing"]})
        return
    if args.data is not None:
        raise BenchmarkError("--data goes with --predictions (a checkpoint knows its dataset)")
    from benchmark.runner import evaluate_checkpoint

    result = evaluate_checkpoint(
        args.checkpoint, raw_dir=args.raw_dir, devices=args.devices, accelerator=args.accelerator, strategy=args.strategy,
        eval_protocol=args.eval_protocol, overrides=overrides, write_predictions=args.write_predictions,
    )  # fmt: skip
    if not result["is_global_zero"]:
        return
    print(f"\n{result['model']} on {result['dataset']} ({result['data_source']} data, {_protocol_label(result)}), run {result['run_id']}")
    print_metrics(result["metrics"])
    if args.write_predictions:
        print(f"top-K lists written to {args.write_predictions}")
    write_output(args.output, {**result["metrics"]["test"], "eval_seconds": result["timings"]["eval_seconds"], "eval_protocol": result["eval_protocol"]})


def evaluate_predictions_file(path: str | Path, dataset: str, overrides: dict[str, Any], *, raw_dir: str | None = None) -> dict[str, Any]:
    """Score a predictions file on ``dataset`` (prepared with the data keys of ``overrides``)
    with every metric at the ``ks`` of ``overrides`` (default 5, 10, 20)."""
    from benchmark.config import DataConfig, TrainConfig, apply_overrides
    from benchmark.data.datasets import load_dataset
    from benchmark.evaluation import test_evaluator, true_relevance_for

    data_keys = {k: v for k, v in overrides.items() if k in DataConfig.__dataclass_fields__}
    train = TrainConfig().overridden({k: v for k, v in overrides.items() if k not in data_keys})
    data = load_dataset(dataset, apply_overrides({DataConfig: DataConfig()}, data_keys)[DataConfig], raw_dir)
    dm = evaluation_datamodule(data, train.loop.eval_batch_size)
    evaluator = test_evaluator(dm, train, seed=0, true_relevance=true_relevance_for(data, raw_dir))
    predictions = read_predictions(path, data, dm, evaluator.max_k)
    metrics = score_predictions(predictions, dm, evaluator, train.loop.eval_batch_size)
    return {
        "metrics": metrics,
        "data_source": data.source,
        "split": data.config.split,
        "dataset_fingerprint": data.fingerprint,
        "n_rows": predictions.n_rows,
        "n_test_users": len(predictions.users),
        "n_users_missing": predictions.n_missing,
        "notes": predictions.notes,
    }
