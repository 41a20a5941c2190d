"""Reproduce a run or a leaderboard entry with the code in place: ``reproduce(target)``.

``target`` is a run folder (``<out>/runs/<run_id>/`` or its ``result.json``: model, dataset,
resolved config, seed, dataset fingerprint, code and package versions, thread count, metrics)
or the id prefix of a leaderboard entry (``benchmark.leaderboard``: its config, seeds, dataset
fingerprint and each seed's recomputed figures and lists hash). Nothing is checked out: the
recorded model, dataset, config and seed run again with the current code, each seed an ordinary
``run`` into a fresh run folder under ``out`` (tagged ``{"reproduces": ...}``), at the recorded
thread count unless another is given. Before anything trains, the data the current preparation
gives are checked against the recorded fingerprint; another fingerprint (raw files or the
preparation code changed) is refused.

The result (``Reproduction``) says which code version fields (git sha, dirty flag, version),
package versions and thread count differ from the record, and compares every recorded metric
with the new one: identical means equal to the last bit, which the suite gives for one seed at
the same thread count and versions on CPU; otherwise each difference (metric, recorded, now,
absolute difference), with the environment changes that may explain it. For an entry, each
seed's top-K lists are written from the new run's best checkpoint (``predictions.tsv`` in its
folder) and scored as ``submit`` scores them, so the figures compared are the entry's own, and
the lists' SHA-256 is compared with the entry's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmark.errors import BenchmarkError
from benchmark.records import RESULT_FILE, RecordError, RunRecord

DEFAULT_OUT = "reproductions"  # the new runs go to <out>/runs/<run_id>/, apart from the runs they reproduce
PREDICTIONS_FILE = "predictions.tsv"  # an entry's reproduction: the new run's top-K lists, scored as submit scores them
MIN_PREFIX = 6
RUN_KEYS = ("model", "data", "data_config", "train_config", "model_config")
CODE_KEYS = ("git_sha", "dirty", "version")


@dataclass(frozen=True)
class Difference:
    """One metric that is not the same: ``recorded`` or ``now`` is None where only the other has it."""

    metric: str  # "test/ndcg@10", "valid/hr@5", "explanation/bleu4"
    recorded: float | None
    now: float | None

    @property
    def abs_diff(self) -> float | None:
        if self.recorded is None or self.now is None:
            return None
        return abs(self.now - self.recorded)


@dataclass(frozen=True)
class Change:
    """An environment field whose recorded value is not the current one."""

    name: str  # "git_sha", "dirty", "torch", "threads", ...
    recorded: Any
    now: Any


@dataclass
class SeedReproduction:
    """One seed run again: its new run folder and how its figures compare."""

    seed: int
    run_dir: Path
    compared: int  # metrics compared
    differences: list[Difference]
    lists_recorded: str | None = None  # entries: the SHA-256 of the recorded and of the new top-K lists
    lists_now: str | None = None

    @property
    def identical(self) -> bool:
        return not self.differences and self.lists_recorded == self.lists_now


@dataclass
class Reproduction:
    """What ``reproduce`` found."""

    kind: Literal["run", "entry"]
    target: str  # the run folder, or the entry's full id
    model: str
    dataset: str
    dataset_fingerprint: str
    seeds: list[SeedReproduction]
    code: list[Change]  # git sha, dirty flag, suite version that differ
    packages: list[Change]  # package versions that differ
    threads: Change | None  # the thread count, when it differs
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why

    @property
    def identical(self) -> bool:
        return all(s.identical for s in self.seeds)

    @property
    def same_environment(self) -> bool:
        return not self.code and not self.packages and self.threads is None

    def to_dict(self) -> dict[str, Any]:
        def change(c: Change) -> dict[str, Any]:
            return {"name": c.name, "recorded": c.recorded, "now": c.now}

        return {
            "kind": self.kind, "target": self.target, "model": self.model, "dataset": self.dataset,
            "dataset_fingerprint": self.dataset_fingerprint, "identical": self.identical, "same_environment": self.same_environment,
            "code": [change(c) for c in self.code], "packages": [change(c) for c in self.packages],
            "threads": change(self.threads) if self.threads else None, "notes": list(self.notes),
            "seeds": [
                {"seed": s.seed, "run_dir": str(s.run_dir), "identical": s.identical, "compared": s.compared,
                 "differences": [{"metric": d.metric, "recorded": d.recorded, "now": d.now, "abs_diff": d.abs_diff} for d in s.differences],
                 **({"lists_sha256": {"recorded": s.lists_recorded, "now": s.lists_now}} if s.lists_recorded or s.lists_now else {})}
                for s in self.seeds
            ],
        }  # fmt: skip


@dataclass
class Recorded:
    """What a run record or a leaderboard entry says a run was."""

    kind: Literal["run", "entry"]
    target: str
    config: dict[str, Any]  # a RunConfig's resolved content, without its seed
    seeds: list[tuple[int, dict[str, float | None], str | None]]  # (seed, flat metrics "stage/name", lists hash)
    fingerprint: str
    code: dict[str, Any] | None  # per seed for entries: the first seed's (they share one config and code)
    packages: dict[str, Any] | None
    threads: int | None
    raw_dir: str | None = None
    notes: list[str] = field(default_factory=list)


# --- what to reproduce -------------------------------------------------------------------------


def find_target(target: str | Path, *, leaderboard_dir: str | Path | None = None) -> Recorded:
    """The run folder or leaderboard entry ``target`` names; a clear refusal otherwise."""
    text = str(target)
    path = Path(text)
    if path.exists():
        return _from_run(path.parent if path.is_file() and path.name == RESULT_FILE else path)
    if re.fullmatch(r"[0-9a-f]+", text):
        from benchmark.leaderboard import DEFAULT_DIR

        return _from_entry(text, Path(leaderboard_dir if leaderboard_dir is not None else DEFAULT_DIR))
    if "/" in text or "\\" in text or text.startswith("."):
        raise BenchmarkError(f"run folder {text} not found")
    raise BenchmarkError(
        f"{text!r} is neither a run folder nor a leaderboard entry id: give <out>/runs/<run_id> (as `run` writes it) or "
        f"the first {MIN_PREFIX} or more hex digits of an entry's id (the id column of the leaderboard pages)"
    )


def _from_run(folder: Path) -> Recorded:
    if not folder.is_dir():
        raise BenchmarkError(f"{folder} is not a run folder (a run folder is <out>/runs/<run_id>/ with its {RESULT_FILE})")
    if not (folder / RESULT_FILE).is_file():
        raise BenchmarkError(
            f"{folder} has no run record ({RESULT_FILE}): there is nothing to reproduce it from. A run folder is "
            f"<out>/runs/<run_id>/ as `python -m benchmark run` writes it"
        )
    try:
        record = RunRecord.read(folder)
    except RecordError as exc:
        raise BenchmarkError(f"cannot reproduce {folder}: {exc}") from None
    if not record.completed:
        raise BenchmarkError(f"cannot reproduce {folder}: its record says status {record.status!r}, so it has no final figures to compare with")
    config = dict(record.config)
    missing = [k for k in RUN_KEYS if not isinstance(config.get(k), (dict, str))]
    if missing:
        raise BenchmarkError(f"cannot reproduce {folder}: its record's config lacks {', '.join(missing)}")
    config.pop("seed", None)
    metrics = {f"{stage}/{name}": value for stage, values in record.metrics.items() for name, value in values.items()}
    if record.explanations and isinstance(record.explanations.get("metrics"), dict):
        metrics.update({f"explanation/{k}": v for k, v in record.explanations["metrics"].items()})
    threads = record.hardware.get("torch_threads") if isinstance(record.hardware, dict) else None
    return Recorded(
        kind="run", target=str(folder), config=config, seeds=[(record.seed, metrics, None)], fingerprint=record.dataset_fingerprint,
        code=record.code or None, packages=record.packages or None, threads=threads if isinstance(threads, int) else None,
        raw_dir=_checkpoint_raw_dir(folder),
    )  # fmt: skip


def _checkpoint_raw_dir(folder: Path) -> str | None:
    """The raw folder the run read (kept in its checkpoint), when it still exists."""
    checkpoint = folder / "checkpoints" / "best.ckpt"
    if not checkpoint.is_file():
        return None
    from benchmark.runner import CHECKPOINT_KEY, load_checkpoint

    try:
        stored = load_checkpoint(checkpoint).get(CHECKPOINT_KEY) or {}
    except BenchmarkError:
        return None
    raw = stored.get("raw_dir")
    return raw if isinstance(raw, str) and Path(raw).is_dir() else None


def find_entry(prefix: str, directory: str | Path) -> tuple[str, dict[str, Any]]:
    """(dataset, entry) of the one leaderboard entry in ``directory`` whose id starts with ``prefix``."""
    from benchmark.leaderboard.board import (
        describe,
        entry_id,
        load_board,
        real_datasets,
    )

    if not re.fullmatch(rf"[0-9a-f]{{{MIN_PREFIX},64}}", prefix):
        raise BenchmarkError(f"entry id {prefix!r}: give {MIN_PREFIX} to 64 lowercase hex digits of the entry's id (the id column of the leaderboard pages)")
    directory = Path(directory)
    if not directory.is_dir():
        raise BenchmarkError(f"leaderboard folder {directory} not found (--leaderboard-dir)")
    found = [(name, e) for name in real_datasets() for e in load_board(directory, name)["entries"] if entry_id(e).startswith(prefix)]
    if not found:
        raise BenchmarkError(f"no leaderboard entry in {directory} has an id starting with {prefix!r} (the ids are the id column of {directory}/README.md)")
    if len(found) > 1:
        listing = "".join(f"\n  {name}: {describe(e)}" for name, e in found)
        raise BenchmarkError(f"{len(found)} leaderboard entries have ids starting with {prefix!r}; give more digits:{listing}")
    return found[0]


def _from_entry(prefix: str, directory: Path) -> Recorded:
    from benchmark.leaderboard.board import entry_id

    dataset, entry = find_entry(prefix, directory)
    label = f"{dataset} entry {entry_id(entry)[:12]}"
    config = dict(entry.get("config") or {})
    missing = [k for k in RUN_KEYS if k not in config]
    if missing:
        raise BenchmarkError(
            f"cannot reproduce the {label}: its config is not a run config of this suite (it lacks {', '.join(missing)}); only "
            "entries submitted with --run records (or made from a run's resolved config) can be run again"
        )
    fallback_seed = config.pop("seed", None)
    seeds = entry.get("seeds") if isinstance(entry.get("seeds"), list) and entry.get("seeds") else [
        {"seed": fallback_seed, "metrics": entry.get("metrics"), "predictions_sha256": entry.get("predictions_sha256")}
    ]  # fmt: skip
    out = []
    for item in seeds:
        seed = item.get("seed") if isinstance(item, dict) else None
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise BenchmarkError(f"cannot reproduce the {label}: it records no seed for its lists, so the run cannot be repeated")
        metrics = item.get("metrics") if isinstance(item.get("metrics"), dict) else {}
        out.append((seed, {f"test/{k}": v for k, v in metrics.items()}, item.get("predictions_sha256")))
    codes = [s.get("code") for s in seeds if isinstance(s, dict) and isinstance(s.get("code"), dict)]
    notes = ["the entry records no package versions and no thread count: only the code version and the figures are compared"]
    if not codes:
        notes.append("the entry records no code version for its lists")
    return Recorded(kind="entry", target=label, config=config, seeds=out, fingerprint=str(entry.get("dataset_fingerprint", "")),
                    code=codes[0] if codes else None, packages=None, threads=None, notes=notes)  # fmt: skip


# --- comparing -----------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = float(a), float(b)
    return a == b or (math.isnan(a) and math.isnan(b))


def compare_metrics(recorded: dict[str, Any], now: dict[str, Any]) -> tuple[int, list[Difference]]:
    """(metrics compared, the ones that differ): every metric either side has, compared exactly."""
    names = list(dict.fromkeys([*recorded, *now]))
    out = []
    for name in names:
        a, b = recorded.get(name), now.get(name)
        if not _same(a, b):
            out.append(Difference(name, None if a is None else float(a), None if b is None else float(b)))
    return len(names), out


def code_changes(recorded: dict[str, Any] | None, now: dict[str, Any]) -> list[Change]:
    if not recorded:
        return []
    return [Change(k, recorded.get(k), now.get(k)) for k in CODE_KEYS if k in recorded and recorded.get(k) != now.get(k)]


def package_changes(recorded: dict[str, Any] | None, now: dict[str, Any]) -> list[Change]:
    if not recorded:
        return []
    return [Change(k, recorded.get(k), now.get(k)) for k in sorted(set(recorded) | set(now)) if recorded.get(k) != now.get(k)]


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` while the runs last (None: as it is)."""
    import torch

    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


# --- reproducing ---------------------------------------------------------------------------------


def reproduce(
    target: str | Path, *, out: str | Path = DEFAULT_OUT, raw_dir: str | None = None, leaderboard_dir: str | Path | None = None,
    threads: int | None = None, logger: str | None = None, progress: bool = True, on_seed: Callable[[int, str], None] | None = None,
) -> Reproduction:
    """Run ``target`` (a run folder or an entry id prefix) again and compare (module docstring).

    ``raw_dir``: the raw files (default: the folder the run read, kept in its checkpoint, else the
    dataset's default folder); ``threads``: torch threads for the runs (default: the recorded
    count); ``logger``: another experiment logger than the recorded one (it changes no figure);
    ``on_seed(seed, stage)``: called with ``"start"`` and ``"done"`` around each seed."""
    recorded = find_target(target, leaderboard_dir=leaderboard_dir)
    if logger is not None:
        recorded.config = {**recorded.config, "train_config": {**(recorded.config.get("train_config") or {}), "logger": logger}}
    from benchmark.data.datasets import load_dataset
    from benchmark.data.prepare import PREPARATION_VERSION
    from benchmark.provenance import code_version, package_versions
    from benchmark.runner import RunConfig, run

    raw = raw_dir if raw_dir is not None else recorded.raw_dir
    first = _run_config(recorded, recorded.seeds[0][0], raw)
    data = load_dataset(first.data, first.data_config, raw)
    if data.fingerprint != recorded.fingerprint:
        where = f"raw files in {raw}" if raw else f"raw files of {first.data} in their default folder"
        raise BenchmarkError(
            f"cannot reproduce {recorded.target}: the data prepared now are not the recorded ones (dataset fingerprint "
            f"{data.fingerprint[:16]}... here, {recorded.fingerprint[:16]}... recorded). The {where} (--raw-dir) or the suite's "
            f"preparation code (now PREPARATION_VERSION {PREPARATION_VERSION}) changed since. Nothing was run."
        )
    tag = {"reproduces": recorded.target if recorded.kind == "entry" else Path(recorded.target).name}
    count = threads if threads is not None else recorded.threads
    results: list[SeedReproduction] = []
    used_threads: int | None = None
    now_code, now_packages = code_version(), package_versions()
    with _threads(count):
        for seed, metrics, lists in recorded.seeds:
            if on_seed:
                on_seed(seed, "start")
            cfg: RunConfig = first if seed == first.seed else _run_config(recorded, seed, raw)
            record = run(cfg, out, progress=progress, tags=tag)
            now_code = record.code or now_code
            now_packages = record.packages or now_packages
            used_threads = record.hardware.get("torch_threads")
            run_dir = Path(out) / "runs" / record.run_id
            if recorded.kind == "entry":
                lists_now, figures = _score_lists(run_dir, raw, data, progress=progress)
                compared, differences = compare_metrics(metrics, {f"test/{k}": v for k, v in figures.items()})
            else:
                lists_now = None
                now = {f"{stage}/{name}": value for stage, values in record.metrics.items() for name, value in values.items()}
                if record.explanations and isinstance(record.explanations.get("metrics"), dict):
                    now.update({f"explanation/{k}": v for k, v in record.explanations["metrics"].items()})
                compared, differences = compare_metrics(metrics, now)
            results.append(SeedReproduction(seed, run_dir, compared, differences, lists, lists_now))
            if on_seed:
                on_seed(seed, "done")
    notes = list(recorded.notes)
    if now_code.get("dirty"):
        notes.append("the code here has uncommitted changes: it may differ from its git sha")
    if recorded.code and recorded.code.get("dirty"):
        notes.append("the recorded code had uncommitted changes: the recorded git sha does not pin it")
    changed_threads = Change("threads", recorded.threads, used_threads) if recorded.threads is not None and used_threads != recorded.threads else None
    return Reproduction(
        kind=recorded.kind, target=recorded.target, model=first.model, dataset=first.data, dataset_fingerprint=data.fingerprint,
        seeds=results, code=code_changes(recorded.code, now_code), packages=package_changes(recorded.packages, now_packages),
        threads=changed_threads, notes=notes,
    )  # fmt: skip


def _run_config(recorded: Recorded, seed: int, raw_dir: str | None) -> Any:
    from benchmark.runner import RunConfig

    try:
        return RunConfig.from_dict({**recorded.config, "seed": seed}, raw_dir)
    except BenchmarkError as exc:
        raise BenchmarkError(f"cannot reproduce {recorded.target}: its config does not fit the current code: {exc}") from None
    except (TypeError, KeyError, AttributeError) as exc:
        raise BenchmarkError(f"cannot reproduce {recorded.target}: its config does not fit the current code ({type(exc).__name__}: {exc})") from None


def _score_lists(run_dir: Path, raw_dir: str | None, data: Any, *, progress: bool) -> tuple[str, dict[str, float | None]]:
    """The new run's top-K lists from its best checkpoint (``evaluate --write-predictions``),
    scored as ``submit`` scores a seed: (their SHA-256, the figures)."""
    from benchmark.config import TrainConfig
    from benchmark.leaderboard.submission import official_scores, predictions_hash
    from benchmark.predictions import evaluation_datamodule, read_predictions
    from benchmark.runner import evaluate_checkpoint

    path = run_dir / PREDICTIONS_FILE
    evaluate_checkpoint(run_dir / "checkpoints" / "best.ckpt", raw_dir=raw_dir, write_predictions=path, predictions_format="tsv", progress=progress)
    dm = evaluation_datamodule(data)
    lists = read_predictions(path, data, dm, max(TrainConfig().loop.ks), "tsv")
    return predictions_hash(lists.items), official_scores(lists, dm)


__all__ = [
    "DEFAULT_OUT", "Change", "Difference", "Recorded", "Reproduction", "SeedReproduction", "compare_metrics", "find_entry", "find_target",
    "reproduce",
]  # fmt: skip